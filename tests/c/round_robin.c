/*
 * N green threads scheduled round-robin through the main context, as uWSGI's
 * uGreen does: every switch is main -> core or core -> main. Each core serves
 * several "requests"; a request suspends a few times, then its entry returns
 * and control lands back in main through the link. For the next request the
 * core's context is made again on the same stack.
 *
 * Prints "round_robin ok: <cores> cores, <requests> requests, <switches> switches".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORES 30
#define REQUESTS_PER_CORE 20
#define SUSPENDS_PER_REQUEST 7

struct core {
    int id;
    ugreen_context ctx;
    ugreen_stack *stack;
    int request;    /* number of the request being served */
    int suspends;   /* suspends done by the current request */
    int finished;   /* requests finished */
    double fp_sum;  /* checks that FP registers survive the switches */
};

static ugreen_context main_ctx;
static struct core cores[CORES];
static long switches;
static int current = -1; /* the core running now, -1 for main */

/* core -> main (uWSGI's schedule_to_main). */
static void schedule_to_main(struct core *core) {
    CHECK(current == core->id);
    current = -1;
    switches++;
    ugreen_context_swap(&core->ctx, &main_ctx);
    CHECK(current == core->id);
}

/* main -> core (uWSGI's schedule_to_req). */
static void schedule_to_req(struct core *core) {
    CHECK(current == -1);
    current = core->id;
    switches++;
    ugreen_context_swap(&main_ctx, &core->ctx);
    CHECK(current == -1);
}

/* The body of one request. Its locals live on the core's stack. */
static void serve(void *arg) {
    struct core *core = (struct core *)arg;
    volatile double acc = 0.5 * core->id;
    char scratch[256];
    int i;
    memset(scratch, core->id, sizeof scratch);
    for (i = 0; i < SUSPENDS_PER_REQUEST; i++) {
        acc = acc + 1.25;
        core->suspends++;
        schedule_to_main(core);
        CHECK(scratch[i] == (char)core->id);
    }
    CHECK(acc == 0.5 * core->id + 1.25 * SUSPENDS_PER_REQUEST);
    core->fp_sum += acc;
    core->finished++;
    current = -1;
    /* Returning lands in main through the link. */
}

int main(void) {
    int i, done = 0;
    long requests = 0;
    for (i = 0; i < CORES; i++) {
        char label[32];
        cores[i].id = i;
        CHECK(ugreen_stack_new(16, &cores[i].stack) == UGREEN_RESULT_OK);
        snprintf(label, sizeof label, "core %d", i);
        CHECK(ugreen_stack_set_label(cores[i].stack, label) == UGREEN_RESULT_OK);
    }

    while (done < CORES) {
        done = 0;
        for (i = 0; i < CORES; i++) {
            struct core *core = &cores[i];
            if (!ugreen_stack_in_use(core->stack)) {
                /* Idle core: accept the next request, if any. */
                if (core->request == REQUESTS_PER_CORE) {
                    done++;
                    continue;
                }
                core->request++;
                core->suspends = 0;
                requests++;
                CHECK(ugreen_context_make(&core->ctx, core->stack, serve, core, &main_ctx) == UGREEN_RESULT_OK);
            }
            schedule_to_req(core);
            /* Either suspended mid-request or finished through the link. */
            CHECK(ugreen_context_is_suspended(&core->ctx) == ugreen_stack_in_use(core->stack));
        }
    }

    for (i = 0; i < CORES; i++) {
        double expected = REQUESTS_PER_CORE * (0.5 * i + 1.25 * SUSPENDS_PER_REQUEST);
        CHECK(cores[i].finished == REQUESTS_PER_CORE);
        CHECK(cores[i].fp_sum == expected);
        ugreen_stack_free(cores[i].stack);
    }
    CHECK(requests == (long)CORES * REQUESTS_PER_CORE);
    /* Each request: SUSPENDS+1 entries from main, SUSPENDS suspends to main. */
    CHECK(switches == requests * (2 * SUSPENDS_PER_REQUEST + 1));
    printf("round_robin ok: %d cores, %ld requests, %ld switches\n", CORES, requests, switches);
    return 0;
}
