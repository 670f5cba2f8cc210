/*
 * Misuse that ugreen turns into a clean, attributable death, one case per
 * process (the case is argv[1]); tests/c_abi.rs checks the signal and stderr.
 *
 *   swap-running    swap into the running context      -> SIGABRT + message
 *   swap-finished   swap into a finished context       -> SIGABRT + message
 *   swap-zeroed     swap into a never-made context     -> SIGABRT + message
 *   swap-null-to    swap with `to` NULL                -> SIGABRT + message
 *   swap-null-from  swap with `from` NULL              -> SIGABRT + message
 *   no-link         entry returns, no link             -> SIGABRT + message
 *   overflow        guard-page hit, no handler         -> SIGSEGV
 *   overflow-report guard-page hit, ugreen's handler   -> overflow line, SIGSEGV
 *   overflow-chain  as above, with a handler installed before ugreen's: the
 *                   line, then that handler runs       -> exit status 3
 *
 * Each case prints "<case>: armed" on stdout before the fatal step.
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* SA_ONSTACK */
#endif

#include "ugreen.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

#define OVERFLOW_PAGES 16

static ugreen_context main_ctx;
static ugreen_context ctx;
static ugreen_context zeroed;
static ugreen_stack *stack;
static const char *mode;

static void armed(void) {
    printf("%s: armed\n", mode);
    fflush(stdout);
}

static void noop(void *arg) {
    (void)arg;
}

static void swap_into_self(void *arg) {
    ugreen_context tmp;
    (void)arg;
    memset(&tmp, 0, sizeof tmp);
    armed();
    ugreen_context_swap(&tmp, &ctx); /* ctx is running: aborts */
}

/* Recursion deep enough to run off any green stack; the volatile buffer and
   the use of the result after the call keep every frame alive. */
static volatile unsigned long depth_limit = (unsigned long)-1;

static unsigned long recurse(unsigned long depth) {
    volatile char frame[512];
    frame[0] = (char)depth;
    if (depth == depth_limit) {
        return 0;
    }
    return recurse(depth + 1) + (unsigned long)frame[0];
}

static void overflow(void *arg) {
    (void)arg;
    armed();
    printf("%lu\n", recurse(0));
}

static void test_handler(int sig, siginfo_t *info, void *uc) {
    static const char msg[] = "test handler: SIGSEGV chained\n";
    (void)info;
    (void)uc;
    if (sig == SIGSEGV) {
        ssize_t n = write(2, msg, sizeof msg - 1);
        (void)n;
        _exit(3);
    }
    _exit(4);
}

static void run_overflow(int report, int chain) {
    if (chain) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = test_handler;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    }
    if (report) {
        CHECK(ugreen_overflow_handler_install() == UGREEN_RESULT_OK);
        CHECK(ugreen_overflow_handler_install() == UGREEN_RESULT_OK); /* idempotent */
        CHECK(ugreen_overflow_set_advice("raise the stack size") == UGREEN_RESULT_OK);
    }
    CHECK(ugreen_stack_new(OVERFLOW_PAGES, &stack) == UGREEN_RESULT_OK);
    CHECK(ugreen_stack_set_label(stack, "core 7") == UGREEN_RESULT_OK);
    CHECK(ugreen_context_make(&ctx, stack, overflow, NULL, &main_ctx) == UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx);
    fprintf(stderr, "the overflow did not fault\n");
    exit(1);
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    mode = argv[1];
    CHECK(ugreen_stack_new(8, &stack) == UGREEN_RESULT_OK);

    if (strcmp(mode, "swap-running") == 0) {
        CHECK(ugreen_context_make(&ctx, stack, swap_into_self, NULL, &main_ctx) == UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx);
    } else if (strcmp(mode, "swap-finished") == 0) {
        CHECK(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx) == UGREEN_RESULT_OK);
        ugreen_context_swap(&main_ctx, &ctx);
        CHECK(!ugreen_stack_in_use(stack));
        armed();
        ugreen_context_swap(&main_ctx, &ctx);
    } else if (strcmp(mode, "swap-zeroed") == 0) {
        armed();
        ugreen_context_swap(&main_ctx, &zeroed);
    } else if (strcmp(mode, "swap-null-to") == 0) {
        armed();
        ugreen_context_swap(&main_ctx, NULL);
    } else if (strcmp(mode, "swap-null-from") == 0) {
        CHECK(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx) == UGREEN_RESULT_OK);
        armed();
        ugreen_context_swap(NULL, &ctx);
    } else if (strcmp(mode, "no-link") == 0) {
        CHECK(ugreen_context_make(&ctx, stack, noop, NULL, NULL) == UGREEN_RESULT_OK);
        armed();
        ugreen_context_swap(&main_ctx, &ctx);
    } else if (strcmp(mode, "overflow") == 0) {
        ugreen_stack_free(stack);
        run_overflow(0, 0);
    } else if (strcmp(mode, "overflow-report") == 0) {
        ugreen_stack_free(stack);
        run_overflow(1, 0);
    } else if (strcmp(mode, "overflow-chain") == 0) {
        ugreen_stack_free(stack);
        run_overflow(1, 1);
    } else {
        fprintf(stderr, "unknown case %s\n", mode);
        return 2;
    }
    fprintf(stderr, "%s: survived\n", mode);
    return 1;
}
