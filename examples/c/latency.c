/*
 * Switch latency from C: ugreen_context_swap called through include/ugreen.h
 * against glibc swapcontext, in one process, batches interleaved, medians.
 *
 * Build (from the repository root): scripts/c-latency.sh builds and runs it
 * (as `cargo run --release --example latency` does), linked like any C
 * program: the archive, then its native libraries (README, "C").
 *
 * Usage: latency_c [batches]
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "ugreen.h"

#define STACK_PAGES 16

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "latency_c: %s failed (%d: %s)\n", what, rc, ugreen_result_str(rc));
    exit(1);
}

/* Keeps a depth-1 helper from becoming a tail call. */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

/* ------------------------------------------------------------- ugreen */

struct ug_pair {
    ugreen_context main, green;
    volatile int stop;
};

__attribute__((noinline)) static void ug_swap_depth1(ugreen_context *from, ugreen_context *to)
{
    ugreen_context_swap(from, to);
    NO_TAIL_CALL();
}

static void ug_green0(void *arg)
{
    struct ug_pair *p = arg;
    do
        ugreen_context_swap(&p->green, &p->main);
    while (!p->stop);
}

static void ug_green1(void *arg)
{
    struct ug_pair *p = arg;
    do
        ug_swap_depth1(&p->green, &p->main);
    while (!p->stop);
}

static double ug_run(struct ug_pair *p, int depth, long switches)
{
    long rounds = switches / 2;
    double t = now_ns();
    if (depth == 0)
        for (long i = 0; i < rounds; i++)
            ugreen_context_swap(&p->main, &p->green);
    else
        for (long i = 0; i < rounds; i++)
            ug_swap_depth1(&p->main, &p->green);
    return now_ns() - t;
}

static void ug_entry_return(void *arg)
{
    (void)arg;
}

static double ug_create(ugreen_stack *stack, long n)
{
    static ugreen_context main_ctx, green;
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        int rc = ugreen_context_make(&green, stack, ug_entry_return, NULL, &main_ctx);
        if (rc != UGREEN_RESULT_OK)
            die("ugreen_context_make", rc);
        ugreen_context_swap(&main_ctx, &green);
    }
    return now_ns() - t;
}

/* -------------------------------------------------------- swapcontext */

struct uc_pair {
    ucontext_t main, green;
    volatile int stop;
    int depth;
};

static struct uc_pair *uc_current;

__attribute__((noinline)) static void uc_swap_depth1(ucontext_t *from, ucontext_t *to)
{
    swapcontext(from, to);
    NO_TAIL_CALL();
}

static void uc_green(void)
{
    struct uc_pair *p = uc_current;
    if (p->depth == 0)
        do
            swapcontext(&p->green, &p->main);
        while (!p->stop);
    else
        do
            uc_swap_depth1(&p->green, &p->main);
        while (!p->stop);
}

static double uc_run(struct uc_pair *p, long switches)
{
    long rounds = switches / 2;
    double t = now_ns();
    if (p->depth == 0)
        for (long i = 0; i < rounds; i++)
            swapcontext(&p->main, &p->green);
    else
        for (long i = 0; i < rounds; i++)
            uc_swap_depth1(&p->main, &p->green);
    return now_ns() - t;
}

static void uc_entry_return(void)
{
}

static double uc_create(char *stack, size_t size, long n)
{
    static ucontext_t main_uc, green;
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        getcontext(&green);
        green.uc_stack.ss_sp = stack;
        green.uc_stack.ss_size = size;
        green.uc_link = &main_uc;
        makecontext(&green, uc_entry_return, 0);
        swapcontext(&main_uc, &green);
    }
    return now_ns() - t;
}

/* A preallocated stack for swapcontext: one mapping, guard page below. */
static char *map_stack(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, size + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED || mprotect(base, page, PROT_NONE) != 0) {
        perror("mmap");
        exit(1);
    }
    return base + page;
}

/* Starts a swapcontext ping-pong pair (its green side suspends at once). */
__attribute__((noinline)) static void uc_pair_init(struct uc_pair *p, int depth, size_t stack_bytes)
{
    p->depth = depth;
    getcontext(&p->green);
    p->green.uc_stack.ss_sp = map_stack(stack_bytes);
    p->green.uc_stack.ss_size = stack_bytes;
    p->green.uc_link = &p->main;
    makecontext(&p->green, uc_green, 0);
    uc_current = p;
    swapcontext(&p->main, &p->green);
}

/* -------------------------------------------------------------- main */

enum { ASM0, ASM1, UC0, UC1, MK_UG, MK_UC, NCASES };

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 101;
    if (batches < 3)
        batches = 3;
    const long fast = 200000, slow = 8000; /* short batches: most run unpreempted */
    size_t stack_bytes = STACK_PAGES * (size_t)sysconf(_SC_PAGESIZE);

    ugreen_stack *s0, *s1, *smk;
    int rc;
    if ((rc = ugreen_stack_new(STACK_PAGES, &s0)) || (rc = ugreen_stack_new(STACK_PAGES, &s1)) ||
        (rc = ugreen_stack_new(STACK_PAGES, &smk)))
        die("ugreen_stack_new", rc);

    static struct ug_pair ug0, ug1;
    if ((rc = ugreen_context_make(&ug0.green, s0, ug_green0, &ug0, &ug0.main)) ||
        (rc = ugreen_context_make(&ug1.green, s1, ug_green1, &ug1, &ug1.main)))
        die("ugreen_context_make", rc);
    ugreen_context_swap(&ug0.main, &ug0.green);
    ugreen_context_swap(&ug1.main, &ug1.green);

    static struct uc_pair uc0, uc1;
    uc_pair_init(&uc0, 0, stack_bytes);
    uc_pair_init(&uc1, 1, stack_bytes);
    char *mk_stack = map_stack(stack_bytes);

    double *samples[NCASES];
    long ops[NCASES] = {fast, fast, slow, slow, fast / 4, slow / 4};
    for (int c = 0; c < NCASES; c++)
        samples[c] = calloc((size_t)batches, sizeof(double));

    for (int b = -1; b < batches; b++) { /* batch -1: warm-up */
        double ns[NCASES];
        ns[ASM0] = ug_run(&ug0, 0, ops[ASM0]);
        ns[ASM1] = ug_run(&ug1, 1, ops[ASM1]);
        ns[UC0] = uc_run(&uc0, ops[UC0]);
        ns[UC1] = uc_run(&uc1, ops[UC1]);
        ns[MK_UG] = ug_create(smk, ops[MK_UG]);
        ns[MK_UC] = uc_create(mk_stack, stack_bytes, ops[MK_UC]);
        if (b >= 0)
            for (int c = 0; c < NCASES; c++)
                samples[c][b] = ns[c] / (double)ops[c];
    }
    /* Median of per-round ratios: the two batches of a round ran
       milliseconds apart and saw the same load on a shared machine. */
    double pr[3], *tmp = calloc((size_t)batches, sizeof(double));
    int pairs[3][2] = {{UC0, ASM0}, {UC1, ASM1}, {MK_UC, MK_UG}};
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < batches; b++)
            tmp[b] = samples[pairs[k][0]][b] / samples[pairs[k][1]][b];
        pr[k] = median(tmp, batches);
    }
    free(tmp);

    double m[NCASES], q[NCASES]; /* median, fastest decile */
    for (int c = 0; c < NCASES; c++) {
        m[c] = median(samples[c], batches); /* sorts */
        q[c] = samples[c][batches / 10];
    }

    printf("C caller, libugreen %s (backend %s), median and p10 of %d interleaved batches\n", ugreen_version(),
           ugreen_backend(), batches);
    printf("  one-way switch, ns                     depth 0: median    p10   depth 1: median    p10\n");
    printf("    ugreen_context_swap (via ugreen.h)  %15.2f %7.2f %16.2f %7.2f\n", m[ASM0], q[ASM0], m[ASM1], q[ASM1]);
    printf("    glibc swapcontext                   %15.2f %7.2f %16.2f %7.2f\n", m[UC0], q[UC0], m[UC1], q[UC1]);
    printf("    ratio swapcontext / ugreen          %14.1fx %6.1fx %15.1fx %6.1fx\n", m[UC0] / m[ASM0],
           q[UC0] / q[ASM0], m[UC1] / m[ASM1], q[UC1] / q[ASM1]);
    printf("      paired (median of per-round ratios) %14.1fx %7s %15.1fx\n", pr[0], "", pr[1]);
    printf("  creation on a reused stack, ns                       median    p10\n");
    printf("    ugreen_context_make + ugreen_context_swap  %10.2f %7.2f\n", m[MK_UG], q[MK_UG]);
    printf("    getcontext + makecontext + swapcontext     %10.2f %7.2f\n", m[MK_UC], q[MK_UC]);
    printf("    ratio                                      %9.1fx %6.1fx\n", m[MK_UC] / m[MK_UG], q[MK_UC] / q[MK_UG]);
    printf("      paired (median of per-round ratios)      %9.1fx\n", pr[2]);

    /* Let the green sides return through their links. */
    ug0.stop = ug1.stop = 1;
    ugreen_context_swap(&ug0.main, &ug0.green);
    ugreen_context_swap(&ug1.main, &ug1.green);
    ugreen_stack_free(s0);
    ugreen_stack_free(s1);
    ugreen_stack_free(smk);
    return 0;
}
