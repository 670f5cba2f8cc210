/*
 * Misuse and faults that must end the process the way the contract says,
 * one scenario per process. `SCENARIOS` below is the only definition of
 * the scenarios: `crash --list` prints every row (name, how the process must
 * end, what stderr must contain in that order, what it must not contain),
 * tests/c_abi.rs runs `crash NAME` for each row it lists and checks it, and
 * a scenario function outside the table does not compile (-Wunused-function
 * with -Werror).
 *
 * Each scenario prints "<name>: armed" on stdout before its decisive step.
 * An alarm ends a scenario that hangs (SIGALRM).
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* SA_ONSTACK, sigaltstack, kill */
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#endif

#include "test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define OVERFLOW_PAGES 16

#define NOT_SUSPENDED                                                          \
    "ugreen: ugreen_context_swap: the target context is not suspended (it is " \
    "running, has finished, or was never made)"
#define REPORT "ugreen: stack overflow in green thread \""
#define ESCAPED                                                                           \
    (strcmp(ugreen_backend(), "asm") == 0                                                 \
         ? "ugreen: an exception (or unwind) escaped a context's entry function"          \
         : "terminate called")

static ugreen_context main_ctx;
static ugreen_context ctx;
static ugreen_context zeroed;
static ugreen_stack *stack;
static const char *mode;

static void armed(void)
{
    printf("%s: armed\n", mode);
    fflush(stdout);
}

static void say(const char *msg)
{
    ssize_t n = write(2, msg, strlen(msg));
    (void)n;
}

static void noop(void *arg)
{
    (void)arg;
}

static void new_stack(size_t pages)
{
    CHECK(ugreen_stack_new(pages, &stack) == UGREEN_RESULT_OK);
}

/* ------------------------------------------------------------ misuse */

static void swap_into_self(void *arg)
{
    ugreen_context tmp;
    (void)arg;
    memset(&tmp, 0, sizeof tmp);
    armed();
    ugreen_context_swap(&tmp, &ctx); /* ctx is running: aborts */
}

static void swap_running(void)
{
    new_stack(8);
    CHECK(ugreen_context_make(&ctx, stack, swap_into_self, NULL, &main_ctx) == UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx);
}

static void swap_finished(void)
{
    new_stack(8);
    CHECK(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx) == UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx);
    CHECK(!ugreen_stack_in_use(stack));
    armed();
    ugreen_context_swap(&main_ctx, &ctx);
}

static void swap_zeroed(void)
{
    armed();
    ugreen_context_swap(&main_ctx, &zeroed);
}

static void swap_null_to(void)
{
    armed();
    ugreen_context_swap(&main_ctx, NULL);
}

static void swap_null_from(void)
{
    new_stack(8);
    CHECK(ugreen_context_make(&ctx, stack, noop, NULL, &main_ctx) == UGREEN_RESULT_OK);
    armed();
    ugreen_context_swap(NULL, &ctx);
}

static void no_link(void)
{
    new_stack(8);
    CHECK(ugreen_context_make(&ctx, stack, noop, NULL, NULL) == UGREEN_RESULT_OK);
    armed();
    ugreen_context_swap(&main_ctx, &ctx);
}

/* ---------------------------------------------------------- overflow */

/* Recursion deep enough to run off any green stack; the volatile buffer and
   the use of the result after the call keep every frame alive. */
static volatile unsigned long depth_limit = (unsigned long)-1;

static unsigned long recurse(unsigned long depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    if (depth == depth_limit) {
        return 0;
    }
    return recurse(depth + 1) + (unsigned long)frame[0];
}

static void overflow_entry(void *arg)
{
    (void)arg;
    armed();
    printf("%lu\n", recurse(0));
}

static void run_overflow(void)
{
    CHECK(ugreen_stack_set_label(stack, "core 7") == UGREEN_RESULT_OK);
    CHECK(ugreen_context_make(&ctx, stack, overflow_entry, NULL, &main_ctx) == UGREEN_RESULT_OK);
    ugreen_context_swap(&main_ctx, &ctx);
    say("the overflow did not fault\n");
    exit(1);
}

static void install(void)
{
    CHECK(ugreen_overflow_handler_install() == UGREEN_RESULT_OK);
    CHECK(ugreen_overflow_handler_install() == UGREEN_RESULT_OK); /* idempotent */
}

static void overflow(void)
{
    new_stack(OVERFLOW_PAGES);
    run_overflow();
}

static void overflow_report(void)
{
    /* The stack is mapped before the handler is installed (uWSGI's order). */
    new_stack(OVERFLOW_PAGES);
    install();
    CHECK(ugreen_overflow_set_advice("raise the stack size") == UGREEN_RESULT_OK);
    run_overflow();
}

static void overflow_many_stacks(void)
{
    /* Fill several chunks of the registry, free some, then map the faulting
       stack last: it is found wherever it lands. */
    static ugreen_stack *others[700];
    size_t i;
    install();
    for (i = 0; i < 700; i++) {
        CHECK(ugreen_stack_new(1, &others[i]) == UGREEN_RESULT_OK);
    }
    for (i = 100; i < 200; i++) {
        ugreen_stack_free(others[i]);
    }
    new_stack(OVERFLOW_PAGES);
    run_overflow();
}

static void chained_handler(int sig, siginfo_t *info, void *uc)
{
    (void)info;
    (void)uc;
    if (sig == SIGSEGV) {
        say("test handler: SIGSEGV chained\n");
        _exit(3);
    }
    _exit(4);
}

static void set_handler(int flags, void (*action)(int, siginfo_t *, void *),
                        void (*plain)(int), int extra_masked)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    if (action != NULL) {
        sa.sa_sigaction = action;
        flags |= SA_SIGINFO;
    } else {
        sa.sa_handler = plain;
    }
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (extra_masked != 0) {
        sigaddset(&sa.sa_mask, extra_masked);
    }
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
}

static void overflow_chain(void)
{
    set_handler(SA_ONSTACK, chained_handler, NULL, 0);
    new_stack(OVERFLOW_PAGES);
    install();
    run_overflow();
}

/* ------------------------------- signals that are not stack overflows */

/* A real fault (si_code SEGV_ACCERR): a write to a read-only page. Not a
   NULL write, which valgrind's memcheck would report as an error of the
   program (tests/c/ also runs under memcheck). */
static void bad_write(void)
{
    volatile int *page = (volatile int *)mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK((void *)page != MAP_FAILED);
    armed();
    *page = 1;
}

static void other_fault(void)
{
    new_stack(OVERFLOW_PAGES); /* a ugreen stack exists, and is not hit */
    install();
    bad_write();
}

static volatile sig_atomic_t app_runs;

static void counting_handler(int sig, siginfo_t *info, void *uc)
{
    char line[] = "app handler run 0\n";
    (void)sig;
    (void)info;
    (void)uc;
    app_runs++;
    line[16] = (char)('0' + (app_runs > 9 ? 9 : app_runs));
    say(line);
    /* returns: the instruction faults again */
}

static void chain_resethand(void)
{
    set_handler(SA_RESETHAND, counting_handler, NULL, 0);
    install();
    bad_write();
}

static int blocked(int sig)
{
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    return sigismember(&now, sig);
}

static void mask_reporting_handler(int sig, siginfo_t *info, void *uc)
{
    (void)sig;
    (void)info;
    (void)uc;
    say(blocked(SIGUSR1) ? "SIGUSR1 blocked: yes\n" : "SIGUSR1 blocked: no\n");
    say(blocked(SIGSEGV) ? "SIGSEGV blocked: yes\n" : "SIGSEGV blocked: no\n");
    _exit(3);
}

static void chain_mask(void)
{
    set_handler(0, mask_reporting_handler, NULL, SIGUSR1);
    install();
    bad_write();
}

static void plain_handler(int sig)
{
    say(sig == SIGSEGV ? "plain handler: SIGSEGV\n" : "plain handler: other\n");
    say(blocked(SIGSEGV) ? "SIGSEGV blocked: yes\n" : "SIGSEGV blocked: no\n");
    _exit(3);
}

static void chain_nodefer_plain(void)
{
    set_handler(SA_NODEFER, NULL, plain_handler, 0);
    install();
    bad_write();
}

static void ignored_fault(void)
{
    set_handler(0, NULL, SIG_IGN, 0);
    install();
    bad_write();
}

static void raise_default(void)
{
    install();
    armed();
    raise(SIGSEGV);
    say("still alive\n");
    exit(1);
}

static void kill_default(void)
{
    install();
    armed();
    kill(getpid(), SIGSEGV);
    say("still alive\n");
    exit(1);
}

static void raise_ignored(void)
{
    set_handler(0, NULL, SIG_IGN, 0);
    install();
    armed();
    raise(SIGSEGV);
    say("still alive\n");
    exit(0);
}

/* ------------------------------------------------------ C++ exceptions */

#ifdef __cplusplus
static void throwing_entry(void *arg)
{
    (void)arg;
    armed();
    throw 42;
}

/* An exception that leaves a context's entry function while the resumer
   sits in a try block ends the process; it is never caught in main. */
static void exception_escapes_entry(void)
{
    new_stack(16);
    CHECK(ugreen_context_make(&ctx, stack, throwing_entry, NULL, &main_ctx) == UGREEN_RESULT_OK);
    try {
        ugreen_context_swap(&main_ctx, &ctx);
    } catch (...) {
        say("caught in main\n");
        exit(5);
    }
}
#endif

/* ------------------------------------------------------------ the table */

enum death { SIGNAL, EXIT };

struct scenario {
    const char *name;
    void (*run)(void);
    enum death how;
    int value;              /* the signal or the exit status */
    const char *messages[3]; /* on stderr, in this order (NULL: fewer) */
    const char *absent;      /* never on stderr (NULL: no such check) */
};

static const struct scenario SCENARIOS[] = {
    {"swap-running", swap_running, SIGNAL, SIGABRT, {NOT_SUSPENDED, NULL, NULL}, NULL},
    {"swap-finished", swap_finished, SIGNAL, SIGABRT, {NOT_SUSPENDED, NULL, NULL}, NULL},
    {"swap-zeroed", swap_zeroed, SIGNAL, SIGABRT, {NOT_SUSPENDED, NULL, NULL}, NULL},
    {"swap-null-to", swap_null_to, SIGNAL, SIGABRT,
     {"ugreen: ugreen_context_swap: `to` is NULL", NULL, NULL}, NULL},
    {"swap-null-from", swap_null_from, SIGNAL, SIGABRT,
     {"ugreen: ugreen_context_swap: `from` is NULL", NULL, NULL}, NULL},
    {"no-link", no_link, SIGNAL, SIGABRT,
     {"ugreen: a context made without a link returned from its entry function", NULL, NULL},
     NULL},
    {"overflow", overflow, SIGNAL, SIGSEGV, {NULL, NULL, NULL}, REPORT},
    {"overflow-report", overflow_report, SIGNAL, SIGSEGV,
     {REPORT "core 7\" (stack of 16 pages = ", "); raise the stack size\n", NULL}, NULL},
    {"overflow-many-stacks", overflow_many_stacks, SIGNAL, SIGSEGV,
     {REPORT "core 7\" (stack of 16 pages = ", NULL, NULL}, NULL},
    {"overflow-chain", overflow_chain, EXIT, 3,
     {REPORT "core 7\" (stack of 16 pages", "test handler: SIGSEGV chained", NULL}, NULL},
    {"other-fault", other_fault, SIGNAL, SIGSEGV, {NULL, NULL, NULL}, REPORT},
    {"chain-resethand", chain_resethand, SIGNAL, SIGSEGV, {"app handler run 1\n", NULL, NULL},
     "app handler run 2"},
    {"chain-mask", chain_mask, EXIT, 3,
     {"SIGUSR1 blocked: yes\n", "SIGSEGV blocked: yes\n", NULL}, NULL},
    {"chain-nodefer-plain", chain_nodefer_plain, EXIT, 3,
     {"plain handler: SIGSEGV\n", "SIGSEGV blocked: no\n", NULL}, NULL},
    {"ignored-fault", ignored_fault, SIGNAL, SIGSEGV, {NULL, NULL, NULL}, "still alive"},
    {"raise-default", raise_default, SIGNAL, SIGSEGV, {NULL, NULL, NULL}, "still alive"},
    {"kill-default", kill_default, SIGNAL, SIGSEGV, {NULL, NULL, NULL}, "still alive"},
    {"raise-ignored", raise_ignored, EXIT, 0, {"still alive\n", NULL, NULL}, NULL},
#ifdef __cplusplus
    /* glibc's makecontext ends the unwind: std::terminate (ucontext backend). */
    {"exception-escapes-entry", exception_escapes_entry, SIGNAL, SIGABRT,
     {ESCAPED, NULL, NULL}, "caught in main"},
#endif
};

#define SCENARIO_COUNT (sizeof SCENARIOS / sizeof SCENARIOS[0])

/* One line per fact: "scenario NAME signal|exit N", then "message TEXT" and
   "absent TEXT" lines (newlines in TEXT written as \n). */
static void list(void)
{
    size_t i, j;
    for (i = 0; i < SCENARIO_COUNT; i++) {
        const struct scenario *s = &SCENARIOS[i];
        printf("scenario %s %s %d\n", s->name, s->how == SIGNAL ? "signal" : "exit", s->value);
        for (j = 0; j < 3 && s->messages[j] != NULL; j++) {
            const char *c;
            fputs("message ", stdout);
            for (c = s->messages[j]; *c != '\0'; c++) {
                if (*c == '\n') {
                    fputs("\\n", stdout);
                } else {
                    putchar(*c);
                }
            }
            putchar('\n');
        }
        if (s->absent != NULL) {
            printf("absent %s\n", s->absent);
        }
    }
}

int main(int argc, char **argv)
{
    size_t i;
    CHECK(argc == 2);
    mode = argv[1];
    if (strcmp(mode, "--list") == 0) {
        list();
        return 0;
    }
    alarm(60);
    for (i = 0; i < SCENARIO_COUNT; i++) {
        if (strcmp(mode, SCENARIOS[i].name) == 0) {
            SCENARIOS[i].run();
            fprintf(stderr, "%s: survived\n", mode);
            return 1;
        }
    }
    fprintf(stderr, "unknown scenario %s\n", mode);
    return 2;
}
