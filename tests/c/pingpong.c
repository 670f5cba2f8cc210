/*
 * Ping-pong between the main context and one green thread, with a counter
 * that both sides check; then entry functions returning to their link, one
 * link being a context that was made but has not run yet.
 *
 * Prints "pingpong ok: <round trips> round trips, backend <name>".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUND_TRIPS 100000L

static ugreen_context main_ctx;
static ugreen_context ping_ctx;
static long counter;

/* Increments the counter, checks that main saw the previous value, and
   hands control back to main; returns after ROUND_TRIPS turns. */
static void ping(void *arg) {
    long *seen_by_main = (long *)arg;
    long local = 0; /* lives on the green stack across every switch */
    while (counter < ROUND_TRIPS) {
        CHECK(*seen_by_main == counter);
        counter++;
        local++;
        ugreen_context_swap(&ping_ctx, &main_ctx);
    }
    CHECK(local == ROUND_TRIPS);
    /* Returning switches to the link: main. */
}

static ugreen_context chain_ctx[2];
static char order[8];
static size_t order_len;

static void record(void *arg) {
    order[order_len++] = *(const char *)arg;
}

int main(void) {
    ugreen_stack *stack = NULL;
    long seen = 0;
    long turns = 0;

    CHECK(strcmp(ugreen_version(), UGREEN_VERSION) == 0);
    CHECK(UGREEN_VERSION_MAJOR >= 0 && UGREEN_VERSION_MINOR >= 0 && UGREEN_VERSION_PATCH >= 0);
    CHECK(sizeof(ugreen_context) == 3 * sizeof(void *));

    CHECK(ugreen_stack_new(16, &stack) == UGREEN_RESULT_OK);
    CHECK(stack != NULL);
    CHECK(ugreen_stack_pages(stack) == 16);
    CHECK(!ugreen_stack_in_use(stack));
    CHECK(!ugreen_context_is_suspended(&main_ctx)); /* zeroed */

    CHECK(ugreen_context_make(&ping_ctx, stack, ping, &seen, &main_ctx) == UGREEN_RESULT_OK);
    CHECK(ugreen_stack_in_use(stack));
    CHECK(ugreen_context_is_suspended(&ping_ctx));

    while (ugreen_stack_in_use(stack)) {
        ugreen_context_swap(&main_ctx, &ping_ctx);
        turns++;
        if (ugreen_stack_in_use(stack)) {
            CHECK(counter == turns);
            CHECK(ugreen_context_is_suspended(&ping_ctx));
            seen = counter;
        }
    }
    /* The last swap returned through the link when ping's entry returned. */
    CHECK(counter == ROUND_TRIPS);
    CHECK(turns == ROUND_TRIPS + 1);
    CHECK(!ugreen_context_is_suspended(&ping_ctx));

    /* Links: chain_ctx[0] returns into chain_ctx[1] (made, never run), which
       returns into main. Both stacks are free again afterwards. */
    {
        ugreen_stack *second = NULL;
        static const char one = '1', two = '2';
        CHECK(ugreen_stack_new(4, &second) == UGREEN_RESULT_OK);
        CHECK(ugreen_context_make(&chain_ctx[1], second, record, (void *)&two, &main_ctx) == UGREEN_RESULT_OK);
        CHECK(ugreen_context_make(&chain_ctx[0], stack, record, (void *)&one, &chain_ctx[1]) == UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &chain_ctx[0]);
        CHECK(order_len == 2 && order[0] == '1' && order[1] == '2');
        CHECK(!ugreen_stack_in_use(stack) && !ugreen_stack_in_use(second));
        CHECK(!ugreen_context_is_suspended(&chain_ctx[0]) && !ugreen_context_is_suspended(&chain_ctx[1]));
        ugreen_stack_free(second);
    }

    ugreen_stack_free(stack);
    printf("pingpong ok: %ld round trips, backend %s\n", ROUND_TRIPS, ugreen_backend());
    return 0;
}
