/*
 * Run by tests/gdb.rs under gdb, single-stepping (stepi) from
 * gdb_step_start to gdb_step_end with a backtrace at every instruction:
 * a first swap into a new context (the switch, the trampoline, the entry
 * function), a swap back to main from inside the entry, a second swap into
 * the context, and its end (the entry returns; the trampoline and
 * ugreen_internal_jump resume main through the link). Every backtrace must
 * reach main.
 *
 * Built with -O0 -g.
 */
#include <stdio.h>

#include "ugreen.h"

static ugreen_context main_ctx;
static ugreen_context green_ctx;
static volatile int hops;

void gdb_step_start(void);
void gdb_step_end(void);

void gdb_step_start(void)
{
    hops = 0;
}

void gdb_step_end(void)
{
    hops += 10;
}

static void green_entry(void *arg)
{
    (void)arg;
    hops++;
    ugreen_context_swap(&green_ctx, &main_ctx);
    hops++;
}

int main(void)
{
    ugreen_stack *stack = NULL;
    if (ugreen_stack_new(16, &stack) != UGREEN_RESULT_OK ||
        ugreen_context_make(&green_ctx, stack, green_entry, NULL, &main_ctx) != UGREEN_RESULT_OK) {
        fputs("setup failed\n", stderr);
        return 1;
    }
    gdb_step_start();
    ugreen_context_swap(&main_ctx, &green_ctx); /* runs until the entry suspends */
    ugreen_context_swap(&main_ctx, &green_ctx); /* the entry returns: back here */
    gdb_step_end();
    ugreen_stack_free(stack);
    printf("hops %d\n", hops);
    return hops == 12 ? 0 : 1;
}
