/*
 * Run by tests/gdb.rs under `gdb -batch`: a breakpoint on
 * `gdb_breakpoint_in_green_thread` is hit on a green thread, three calls
 * below its entry function, while `gdb_resumer_of_green_thread` (called from
 * main) is suspended in ugreen_context_swap. The backtrace there must list
 * the green frames, then ugreen_internal_trampoline, then the resumer and
 * main.
 *
 * Built with -O0 -g so that every function keeps its own frame.
 */
#include <stdio.h>
#include <stdlib.h>

#include "ugreen.h"

static ugreen_context main_ctx;
static ugreen_context green_ctx;
static volatile int visited;

void gdb_breakpoint_in_green_thread(int depth);
void gdb_green_work(int depth);
void gdb_resumer_of_green_thread(void);

void gdb_breakpoint_in_green_thread(int depth)
{
    visited += depth + 1;
}

void gdb_green_work(int depth)
{
    if (depth > 0) {
        gdb_green_work(depth - 1);
    } else {
        gdb_breakpoint_in_green_thread(depth);
    }
}

static void gdb_green_entry(void *arg)
{
    (void)arg;
    gdb_green_work(2);
}

void gdb_resumer_of_green_thread(void)
{
    ugreen_context_swap(&main_ctx, &green_ctx);
}

int main(void)
{
    ugreen_stack *stack = NULL;
    if (ugreen_stack_new(16, &stack) != UGREEN_RESULT_OK) {
        fputs("ugreen_stack_new failed\n", stderr);
        return 1;
    }
    if (ugreen_context_make(&green_ctx, stack, gdb_green_entry, NULL, &main_ctx) !=
        UGREEN_RESULT_OK) {
        fputs("ugreen_context_make failed\n", stderr);
        return 1;
    }
    /* The entry returns through the link: back here. */
    gdb_resumer_of_green_thread();
    ugreen_stack_free(stack);
    printf("visited %d\n", visited);
    return visited == 1 ? 0 : 1;
}
