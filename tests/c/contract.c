/*
 * Every bad input of the C contract is answered with its result code, and
 * nothing is written on error.
 *
 * Prints "contract ok: <n> checks".
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "test.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static ugreen_context main_ctx;
static ugreen_context ctx;
static ugreen_context other;
static ugreen_stack *stack;
static void *volatile probe; /* volatile: the probing malloc stays */

static void noop(void *arg) {
    (void)arg;
}

/* Runs on `stack`: making another context on its own (running) stack fails. */
static void make_on_own_stack(void *arg) {
    (void)arg;
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_WRONG_STATE);
    CHECK(!ugreen_context_is_suspended(&ctx)); /* running */
    ugreen_context_swap(&ctx, &main_ctx);
}

/* Runs on a one-page stack (the smallest there is): measures it from there. */
static size_t small_high_water;
static void high_water_on_own_small_stack(void *arg) {
    ugreen_stack *own = (ugreen_stack *)arg;
    EXPECT(ugreen_stack_high_water(own, &small_high_water), UGREEN_RESULT_OK);
}

static int all_bytes(const void *p, size_t n, unsigned char value) {
    const unsigned char *b = (const unsigned char *)p;
    size_t i;
    for (i = 0; i < n; i++) {
        if (b[i] != value) {
            return 0;
        }
    }
    return 1;
}

int main(void) {
    ugreen_stack *out;
    ugreen_stack *const sentinel = (ugreen_stack *)test_checks(); /* never a stack */
    size_t page;
    int code;

    /* The result codes: OK is 0, all distinct. */
    CHECK(UGREEN_RESULT_OK == 0);
    {
        const int codes[] = {UGREEN_RESULT_OK,          UGREEN_RESULT_NULL_ARGUMENT, UGREEN_RESULT_INVALID_SIZE,
                             UGREEN_RESULT_OUT_OF_MEMORY, UGREEN_RESULT_WRONG_STATE, UGREEN_RESULT_PANIC,
                             UGREEN_RESULT_SYSTEM_ERROR};
        const size_t n = sizeof codes / sizeof codes[0];
        size_t i, j;
        for (i = 0; i < n; i++) {
            const char *msg = ugreen_result_str(codes[i]);
            CHECK(msg != NULL && msg[0] != '\0');
            CHECK(strcmp(msg, ugreen_result_str(-1)) != 0);
            for (j = 0; j < i; j++) {
                CHECK(codes[i] != codes[j]);
                CHECK(strcmp(msg, ugreen_result_str(codes[j])) != 0);
            }
            printf("code %d: %s\n", codes[i], msg);
        }
    }
    {
        const int unknown[] = {-1, 7, 100, INT_MAX, INT_MIN};
        size_t i;
        for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
            CHECK(strcmp(ugreen_result_str(unknown[i]), "unknown ugreen result code") == 0);
        }
    }

    /* ugreen_stack_new */
    EXPECT(ugreen_stack_new(1, NULL), UGREEN_RESULT_NULL_ARGUMENT);
    out = sentinel;
    EXPECT(ugreen_stack_new(0, &out), UGREEN_RESULT_INVALID_SIZE);
    CHECK(out == sentinel);
    EXPECT(ugreen_stack_new(SIZE_MAX, &out), UGREEN_RESULT_INVALID_SIZE);
    CHECK(out == sentinel);

    EXPECT(ugreen_stack_new(1, &stack), UGREEN_RESULT_OK);
    page = ugreen_stack_size(stack);
    CHECK(page >= 4096 && (page & (page - 1)) == 0);
    CHECK(ugreen_stack_pages(stack) == 1);
    /* pages * page overflows size_t. */
    EXPECT(ugreen_stack_new(SIZE_MAX / page + 1, &out), UGREEN_RESULT_INVALID_SIZE);
    CHECK(out == sentinel);
    /* Beyond the 64 GiB maximum. */
    EXPECT(ugreen_stack_new(((size_t)1 << 36) / page + 1, &out), UGREEN_RESULT_INVALID_SIZE);
    CHECK(out == sentinel);
    ugreen_stack_free(stack);
    stack = NULL;

    /* NULL is tolerated where documented. */
    ugreen_stack_free(NULL);
    CHECK(ugreen_stack_size(NULL) == 0);
    CHECK(ugreen_stack_pages(NULL) == 0);
    CHECK(!ugreen_stack_in_use(NULL));
    CHECK(!ugreen_context_is_suspended(NULL));

    EXPECT(ugreen_stack_new(8, &stack), UGREEN_RESULT_OK);
    EXPECT(ugreen_stack_set_label(NULL, "x"), UGREEN_RESULT_NULL_ARGUMENT);
    EXPECT(ugreen_stack_set_label(stack, NULL), UGREEN_RESULT_NULL_ARGUMENT);
    EXPECT(ugreen_stack_set_label(stack, "core 0"), UGREEN_RESULT_OK);
    EXPECT(ugreen_overflow_set_advice(NULL), UGREEN_RESULT_NULL_ARGUMENT);

    /* ugreen_context_make: NULL arguments, nothing written. */
    memset(&ctx, 0xa5, sizeof ctx);
    EXPECT(ugreen_context_make(NULL, stack, noop, NULL, &main_ctx), UGREEN_RESULT_NULL_ARGUMENT);
    EXPECT(ugreen_context_make(&ctx, NULL, noop, NULL, &main_ctx), UGREEN_RESULT_NULL_ARGUMENT);
    EXPECT(ugreen_context_make(&ctx, stack, NULL, NULL, &main_ctx), UGREEN_RESULT_NULL_ARGUMENT);
    CHECK(all_bytes(&ctx, sizeof ctx, 0xa5));
    CHECK(!ugreen_stack_in_use(stack));

    /* A zeroed context is not suspended; a made one is. */
    memset(&ctx, 0, sizeof ctx);
    CHECK(!ugreen_context_is_suspended(&ctx));
    EXPECT(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx), UGREEN_RESULT_OK);
    CHECK(ugreen_context_is_suspended(&ctx));
    CHECK(ugreen_stack_in_use(stack));

    /* The stack is in use by a made context: WRONG_STATE, nothing written. */
    memset(&other, 0x5a, sizeof other);
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_WRONG_STATE);
    CHECK(all_bytes(&other, sizeof other, 0x5a));
    /* ... also the same context made again before it ran. */
    EXPECT(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx), UGREEN_RESULT_WRONG_STATE);
    /* Once it finished, the stack can be used again. */
    ugreen_context_swap(&main_ctx, &ctx);
    CHECK(!ugreen_stack_in_use(stack));
    CHECK(!ugreen_context_is_suspended(&ctx));

    /* In use by a running context (checked from inside it), then by a
       suspended one. */
    EXPECT(ugreen_context_make(&ctx, stack, make_on_own_stack, NULL, &main_ctx), UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx);
    CHECK(ugreen_context_is_suspended(&ctx));
    CHECK(ugreen_stack_in_use(stack));
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_WRONG_STATE);
    ugreen_context_swap(&main_ctx, &ctx); /* returns from its entry */
    CHECK(!ugreen_stack_in_use(stack));
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &other);
    CHECK(!ugreen_stack_in_use(stack));

    /* ugreen_stack_high_water: NULL arguments, nothing written. */
    {
        size_t used = 12345;
        EXPECT(ugreen_stack_high_water(NULL, &used), UGREEN_RESULT_NULL_ARGUMENT);
        EXPECT(ugreen_stack_high_water(stack, NULL), UGREEN_RESULT_NULL_ARGUMENT);
        CHECK(used == 12345);
        EXPECT(ugreen_stack_high_water(stack, &used), UGREEN_RESULT_OK);
        CHECK(used > 0 && used <= ugreen_stack_size(stack) && used % page == 0);
    }

    /* ugreen_stack_high_water works on the smallest stack, from a green
       thread running on that stack. */
    {
        ugreen_stack *small = NULL;
        EXPECT(ugreen_stack_new(1, &small), UGREEN_RESULT_OK);
        EXPECT(ugreen_context_make(&ctx, small, high_water_on_own_small_stack, small, &main_ctx),
               UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx);
        CHECK(small_high_water == page);
        ugreen_stack_free(small);
    }

    /* ugreen_stack_release_pages: NULL; refused while a context lives on the
       stack; once it finished, the pages below the kept top are given back
       (and a kept top covering the stack releases nothing). */
    {
        size_t used = 0;
        EXPECT(ugreen_stack_release_pages(NULL, 0), UGREEN_RESULT_NULL_ARGUMENT);
        EXPECT(ugreen_context_make(&ctx, stack, make_on_own_stack, NULL, &main_ctx), UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx); /* suspends inside */
        EXPECT(ugreen_stack_release_pages(stack, 0), UGREEN_RESULT_WRONG_STATE);
        ugreen_context_swap(&main_ctx, &ctx); /* returns from its entry */
        EXPECT(ugreen_stack_high_water(stack, &used), UGREEN_RESULT_OK);
        CHECK(used > 0);
        EXPECT(ugreen_stack_release_pages(stack, SIZE_MAX), UGREEN_RESULT_OK);
        EXPECT(ugreen_stack_high_water(stack, &used), UGREEN_RESULT_OK);
        CHECK(used > 0);
        EXPECT(ugreen_stack_release_pages(stack, 0), UGREEN_RESULT_OK);
        EXPECT(ugreen_stack_high_water(stack, &used), UGREEN_RESULT_OK);
        CHECK(used == 0);
        /* the stack still works */
        EXPECT(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx), UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx);
        CHECK(!ugreen_stack_in_use(stack));
    }

    /* ugreen_stack_abandon: a stack whose context is suspended for good can
       take a new context. */
    EXPECT(ugreen_stack_abandon(NULL), UGREEN_RESULT_NULL_ARGUMENT);
    EXPECT(ugreen_context_make(&ctx, stack, make_on_own_stack, NULL, &main_ctx), UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx); /* suspends inside */
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_WRONG_STATE);
    EXPECT(ugreen_stack_abandon(stack), UGREEN_RESULT_OK);
    CHECK(!ugreen_stack_in_use(stack));
    EXPECT(ugreen_stack_abandon(stack), UGREEN_RESULT_OK); /* not in use: no-op */
    EXPECT(ugreen_context_make(&other, stack, noop, NULL, &main_ctx), UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &other);
    CHECK(!ugreen_stack_in_use(stack));
    ugreen_stack_free(stack);

    /* Out of memory: a valid size that the system refuses. */
    {
        struct rlimit old, low;
        CHECK(getrlimit(RLIMIT_AS, &old) == 0);
        low = old;
        low.rlim_cur = (rlim_t)1 << 30;
        /* Emulators such as qemu-user ignore RLIMIT_AS: check that it holds. */
        if (setrlimit(RLIMIT_AS, &low) == 0 && (probe = malloc((size_t)2 << 30)) == NULL) {
            out = sentinel;
            EXPECT(ugreen_stack_new(((size_t)16 << 30) / page, &out), UGREEN_RESULT_OUT_OF_MEMORY);
            CHECK(out == sentinel);
            CHECK(setrlimit(RLIMIT_AS, &old) == 0);
        } else {
            free(probe);
            CHECK(setrlimit(RLIMIT_AS, &old) == 0);
            printf("out-of-memory check skipped: RLIMIT_AS has no effect here\n");
        }
    }

    code = UGREEN_RESULT_OK;
    printf("contract ok: %ld checks (%s)\n", *test_checks(), ugreen_result_str(code));
    return 0;
}
