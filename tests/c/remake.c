/*
 * Making contexts again and again on a few reused stacks: the normal, cheap
 * path (uWSGI re-makes a core's context for every request).
 *
 * Prints "remake ok: <n> contexts on <stacks> stacks".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "test.h"

#include <stdio.h>
#include <stdlib.h>

#define CONTEXTS 100000L
#define STACKS 4

static ugreen_context main_ctx;
static ugreen_context ctx[STACKS];
static long runs;

static void body(void *arg) {
    long n = (long)(size_t)arg;
    CHECK(n == runs);
    runs++;
}

/* Suspends once before returning: the stack stays in use across a switch. */
static void body_suspending(void *arg) {
    ugreen_context *self = (ugreen_context *)arg;
    ugreen_context_swap(self, &main_ctx);
    runs++;
}

int main(void) {
    ugreen_stack *stacks[STACKS];
    long n;
    int i;
    for (i = 0; i < STACKS; i++) {
        CHECK(ugreen_stack_new(8, &stacks[i]) == UGREEN_RESULT_OK);
    }
    for (n = 0; n < CONTEXTS; n++) {
        int s = (int)(n % STACKS);
        CHECK(ugreen_context_make(&ctx[s], stacks[s], body, (void *)(size_t)n, &main_ctx) == UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx[s]);
        CHECK(!ugreen_stack_in_use(stacks[s]));
    }
    CHECK(runs == CONTEXTS);

    /* The same with every stack holding a suspended context in between. */
    runs = 0;
    for (n = 0; n < CONTEXTS / STACKS; n++) {
        for (i = 0; i < STACKS; i++) {
            CHECK(ugreen_context_make(&ctx[i], stacks[i], body_suspending, &ctx[i], &main_ctx) == UGREEN_RESULT_OK);
            ugreen_context_swap(&main_ctx, &ctx[i]);
            CHECK(ugreen_stack_in_use(stacks[i]));
        }
        for (i = 0; i < STACKS; i++) {
            ugreen_context_swap(&main_ctx, &ctx[i]);
            CHECK(!ugreen_stack_in_use(stacks[i]));
        }
    }
    CHECK(runs == CONTEXTS);

    for (i = 0; i < STACKS; i++) {
        ugreen_stack_free(stacks[i]);
    }
    printf("remake ok: %ld contexts on %d stacks\n", CONTEXTS, STACKS);
    return 0;
}
