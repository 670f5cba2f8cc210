/*
 * ugreen context switch: aarch64, AAPCS64, ELF, GNU assembler.
 *
 * A suspended context is one pointer: the stack pointer of the frame below,
 * stored in the first word of its `ugreen_context`. The frame lives on the
 * suspended context's own stack. Mirrored by `SwitchFrame` in
 * src/arch/asm/aarch64.rs (offsets checked at compile time).
 *
 *   offset  slot
 *   ------  ---------------------------------------------------------------
 *      0    x19, x20
 *     16    x21, x22
 *     32    x23, x24
 *     48    x25, x26
 *     64    x27, x28
 *     80    x29 (frame pointer), x30 (link register: where it resumes;
 *           signed with the resumed sp when PAC is enabled)
 *     96    d8,  d9
 *    112    d10, d11
 *    128    d12, d13
 *    144    d14, d15
 *    160    FPCR, padding
 *    176    = stack pointer of the context once resumed
 *
 * Saved: exactly the callee-saved state of AAPCS64 (x19-x30, sp, the low
 * 64 bits of v8-v15) plus FPCR (rounding mode, flush-to-zero, trap enables).
 * The signal mask is NOT saved.
 */

#include "common.h"

#define FRAME_SIZE 176

/*
 * void *ugreen_context_swap(ugreen_context *from  : x0,
 *                           ugreen_context *to    : x1,
 *                           void *transfer        : x2)    -> x0
 *
 * On entry: from and to non-NULL, to->sp non-NULL (checked: a violation
 * branches to ugreen_internal_swap_misuse, which reports and aborts).
 * Effect:   callee-saved state stored on the current stack, from->sp = sp,
 *           to->sp = NULL (to is now running), sp = the old to->sp, FPCR
 *           written only when it differs, the registers of `to` loaded, and a
 *           return to its x30 with x0 = transfer.
 */
#ifndef UGREEN_ASAN
FUNC_BEGIN(ugreen_context_swap)
#else
    /* build.rs defines UGREEN_ASAN for the `asan` feature. The C
       symbol is then a Rust wrapper that annotates the switch for
       AddressSanitizer, and only the internal name is defined here. */
    .text
    .p2align 4
#endif
    .globl  ugreen_internal_switch      /* the same routine, for Rust */
    .hidden ugreen_internal_switch
    .type   ugreen_internal_switch, %function
ugreen_internal_switch:
    .cfi_startproc
    LANDING_PAD
    cbz     x0, .Lmisuse
    cbz     x1, .Lmisuse
    ldr     x9, [x1]                /* x9 = to->sp */
    cbz     x9, .Lmisuse
    SIGN_LR                         /* sign x30 with our sp */
    sub     sp, sp, #FRAME_SIZE
    .cfi_def_cfa_offset FRAME_SIZE
    stp     x19, x20, [sp, #0]      /*   0: x19, x20 */
    stp     x21, x22, [sp, #16]     /*  16: x21, x22 */
    stp     x23, x24, [sp, #32]     /*  32: x23, x24 */
    stp     x25, x26, [sp, #48]     /*  48: x25, x26 */
    stp     x27, x28, [sp, #64]     /*  64: x27, x28 */
    stp     x29, x30, [sp, #80]     /*  80: x29, x30 */
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8,  d9,  [sp, #96]     /*  96: d8,  d9  */
    stp     d10, d11, [sp, #112]    /* 112: d10, d11 */
    stp     d12, d13, [sp, #128]    /* 128: d12, d13 */
    stp     d14, d15, [sp, #144]    /* 144: d14, d15 */
    mrs     x10, fpcr
    str     x10, [sp, #160]         /* 160: FPCR */

    mov     x11, sp
    str     x11, [x0]               /* from->sp = our frame */
    str     xzr, [x1]               /* to is running from now on */
    mov     sp, x9                  /* switch stacks */

    ldr     x12, [sp, #160]         /* 160: FPCR of the resumed side */
    cmp     x12, x10
    b.ne    .Lreload_fp             /* msr fpcr is slow: only if it differs */
.Lrestore:
    ldp     x19, x20, [sp, #0]      /*   0: x19, x20 */
    ldp     x21, x22, [sp, #16]     /*  16: x21, x22 */
    ldp     x23, x24, [sp, #32]     /*  32: x23, x24 */
    ldp     x25, x26, [sp, #48]     /*  48: x25, x26 */
    ldp     x27, x28, [sp, #64]     /*  64: x27, x28 */
    ldp     x29, x30, [sp, #80]     /*  80: x29, x30 */
    ldp     d8,  d9,  [sp, #96]     /*  96: d8,  d9  */
    ldp     d10, d11, [sp, #112]    /* 112: d10, d11 */
    ldp     d12, d13, [sp, #128]    /* 128: d12, d13 */
    ldp     d14, d15, [sp, #144]    /* 144: d14, d15 */
    add     sp, sp, #FRAME_SIZE
    mov     x0, x2                  /* transfer word for the resumed side */
    AUTH_LR                         /* x30 was signed with this sp */
    ret
.Lreload_fp:
    msr     fpcr, x12
    b       .Lrestore

.Lmisuse:
    b       ugreen_internal_swap_misuse
    .cfi_endproc
#ifndef UGREEN_ASAN
FUNC_END(ugreen_context_swap)
#else
FUNC_END(ugreen_internal_switch)
#endif

/*
 * noreturn ugreen_internal_jump(ugreen_context *to : x1, void *transfer : x2)
 *
 * Resumes `to` without saving the current context (used when a context's
 * entry function has returned). Always writes FPCR.
 */
HIDDEN_BEGIN(ugreen_internal_jump)
    .cfi_startproc
    .cfi_undefined x30
    LANDING_PAD
    cbz     x1, .Ljump_misuse
    ldr     x9, [x1]                /* x9 = to->sp */
    cbz     x9, .Ljump_misuse
    str     xzr, [x1]               /* to is running */
    mov     sp, x9
    ldr     x12, [sp, #160]         /* 160: FPCR */
    b       .Lreload_fp
.Ljump_misuse:
    mov     x0, xzr                 /* no "from" */
    b       ugreen_internal_swap_misuse
    .cfi_endproc
FUNC_END(ugreen_internal_jump)

/*
 * Entry trampoline of a new context. Reached by the first swap into a context
 * made by `arch::init_frame`, whose frame holds:
 *     x19 = entry  (void (*)(void *arg, void *transfer))
 *     x20 = arg
 *     x21 = link   (ugreen_context *, never NULL here)
 *     x22 = live   (uintptr_t *, cleared when entry returns)
 *     x29 = 0, x0 = transfer (from the swap)
 * sp is 16-byte aligned here.
 *
 * CFI: the canonical frame of the trampoline is described as the frame the
 * link context saved when it last switched away (CFA = link->sp + 176), so a
 * debugger or unwinder walking out of a green thread continues into the code
 * suspended in `link`.
 */
HIDDEN_BEGIN(ugreen_internal_trampoline)
    .cfi_startproc simple
    .cfi_signal_frame
#if UGREEN_AARCH64_PAC
    /* The x30 saved in the link's frame was signed by paciasp with sp =
       link->sp + FRAME_SIZE, which is this CFA: unwinders authenticate it
       with the CFA as modifier. */
    .cfi_negate_ra_state
#endif
    /* DW_CFA_def_cfa_expression: DW_OP_breg21 0; DW_OP_deref; DW_OP_plus_uconst 176 */
    .cfi_escape 0x0f, 0x06, 0x85, 0x00, 0x06, 0x23, 0xb0, 0x01
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    LANDING_PAD
    mov     x1, x0                  /* transfer */
    mov     x0, x20                 /* arg */
    blr     x19                     /* entry(arg, transfer) */
    str     xzr, [x22]              /* the stack is free again */
#ifdef UGREEN_ASAN
    /* `asan` feature: this fiber ends. Announce the switch to `link` and
       release the fiber's fake stack; done here because no instrumented
       frame may run once it is released (src/arch/asm/asan.rs). */
    mov     x0, x21
    bl      ugreen_internal_asan_exit       /* x0, x1 = link's stack bounds */
    mov     x2, x1                          /* size */
    mov     x1, x0                          /* bottom */
    mov     x0, xzr                         /* fake_stack_save = NULL */
    bl      __sanitizer_start_switch_fiber
#endif
    mov     x1, x21                 /* to = link */
    mov     x2, xzr                 /* transfer = NULL */
    b       ugreen_internal_jump
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline)

/*
 * The same for a context made without a link: the unwind ends here, and a
 * return from entry aborts with a message (ugreen_internal_no_link).
 *     x19 = entry, x20 = arg, x22 = live
 */
HIDDEN_BEGIN(ugreen_internal_trampoline_nolink)
    .cfi_startproc
    .cfi_undefined x30
    LANDING_PAD
    mov     x1, x0                  /* transfer */
    mov     x0, x20                 /* arg */
    blr     x19                     /* entry(arg, transfer) */
    str     xzr, [x22]              /* the stack is free again */
    bl      ugreen_internal_no_link
    brk     #1
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline_nolink)

/*
 * void ugreen_internal_fp_control(SwitchFrame *frame : x0)
 * Stores the current FPCR into the FPCR slot (offset 160) of `frame`.
 */
HIDDEN_BEGIN(ugreen_internal_fp_control)
    .cfi_startproc
    LANDING_PAD
    mrs     x1, fpcr
    str     x1, [x0, #160]          /* 160: FPCR */
    ret
    .cfi_endproc
FUNC_END(ugreen_internal_fp_control)

/*
 * void *ugreen_internal_sign_return(void *addr : x0, void *sp : x1) -> x0
 * Signs a return address the way `paciasp` would with sp = x1, so the first
 * swap into a new context authenticates it. Identity without PAC (pacia1716
 * is a NOP on cores without pointer authentication).
 */
HIDDEN_BEGIN(ugreen_internal_sign_return)
    .cfi_startproc
    LANDING_PAD
#if UGREEN_AARCH64_PAC
    mov     x17, x0
    mov     x16, x1
    hint    8                       /* pacia1716 */
    mov     x0, x17
#endif
    ret
    .cfi_endproc
FUNC_END(ugreen_internal_sign_return)
