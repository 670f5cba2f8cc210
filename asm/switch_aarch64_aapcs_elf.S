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
 * DW_CFA_def_cfa_expression: CFA = *(reg) + FRAME_SIZE, where reg holds a
 * `ugreen_context *` whose saved frame is the caller's. Bytes: expression
 * length 6, DW_OP_breg<n> 0, DW_OP_deref, DW_OP_plus_uconst FRAME_SIZE (two
 * ULEB128 bytes: 128 <= FRAME_SIZE < 16384, checked below).
 */
#define DW_OP_BREG_X1 0x71
#define DW_OP_BREG_X21 0x85
#define CFA_SAVED_FRAME_OF(breg) \
    .cfi_escape 0x0f, 0x06, breg, 0x00, 0x06, 0x23, (FRAME_SIZE & 0x7f) | 0x80, FRAME_SIZE >> 7
#if FRAME_SIZE < 128 || FRAME_SIZE >= 16384
# error "CFA_SAVED_FRAME_OF encodes FRAME_SIZE as two ULEB128 bytes"
#endif

/* Where the saved frame keeps a pair of registers (the table above),
   relative to the CFA: the stack pointer once the frame is popped. */
#define SAVED_PAIR(a, b, offset)             \
    .cfi_offset a, (offset) - FRAME_SIZE;    \
    .cfi_offset b, (offset) + 8 - FRAME_SIZE
#define SAVED_FRAME_REGISTERS       \
    SAVED_PAIR(x19, x20, 0);        \
    SAVED_PAIR(x21, x22, 16);       \
    SAVED_PAIR(x23, x24, 32);       \
    SAVED_PAIR(x25, x26, 48);       \
    SAVED_PAIR(x27, x28, 64);       \
    SAVED_PAIR(x29, x30, 80);       \
    SAVED_PAIR(d8, d9, 96);         \
    SAVED_PAIR(d10, d11, 112);      \
    SAVED_PAIR(d12, d13, 128);      \
    SAVED_PAIR(d14, d15, 144)
#define RESTORED_PAIR(a, b) \
    .cfi_restore a;         \
    .cfi_restore b

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
    .cfi_remember_state             /* entry state, for .Lmisuse */
    cbz     x0, .Lmisuse
    cbz     x1, .Lmisuse
    ldr     x9, [x1]                /* x9 = to->sp */
    cbz     x9, .Lmisuse
    SIGN_LR                         /* sign x30 with our sp */
    RA_SIGNED_TOGGLE                /* from here x30 is signed */
    sub     sp, sp, #FRAME_SIZE
    .cfi_def_cfa_offset FRAME_SIZE
    stp     x19, x20, [sp, #0]      /*   0: x19, x20 */
    SAVED_PAIR(x19, x20, 0)
    stp     x21, x22, [sp, #16]     /*  16: x21, x22 */
    SAVED_PAIR(x21, x22, 16)
    stp     x23, x24, [sp, #32]     /*  32: x23, x24 */
    SAVED_PAIR(x23, x24, 32)
    stp     x25, x26, [sp, #48]     /*  48: x25, x26 */
    SAVED_PAIR(x25, x26, 48)
    stp     x27, x28, [sp, #64]     /*  64: x27, x28 */
    SAVED_PAIR(x27, x28, 64)
    stp     x29, x30, [sp, #80]     /*  80: x29, x30 */
    SAVED_PAIR(x29, x30, 80)
    stp     d8,  d9,  [sp, #96]     /*  96: d8,  d9  */
    SAVED_PAIR(d8, d9, 96)
    stp     d10, d11, [sp, #112]    /* 112: d10, d11 */
    SAVED_PAIR(d10, d11, 112)
    stp     d12, d13, [sp, #128]    /* 128: d12, d13 */
    SAVED_PAIR(d12, d13, 128)
    stp     d14, d15, [sp, #144]    /* 144: d14, d15 */
    SAVED_PAIR(d14, d15, 144)
    mrs     x10, fpcr
    str     x10, [sp, #160]         /* 160: FPCR */

    mov     x11, sp
    str     x11, [x0]               /* from->sp = our frame */
    mov     sp, x9                  /* switch stacks: from here the CFI
                                       describes the frame of `to`, which has
                                       the same layout */
    str     xzr, [x1]               /* to is running from now on (only now:
                                       until the switch, an unwinder walking
                                       our stack may read to->sp) */
    .cfi_remember_state             /* for .Lreload_fp */

    ldr     x12, [sp, #160]         /* 160: FPCR of the resumed side */
    cmp     x12, x10
    b.ne    .Lreload_fp             /* msr fpcr is slow: only if it differs */
.Lrestore:
    ldp     x19, x20, [sp, #0]      /*   0: x19, x20 */
    RESTORED_PAIR(x19, x20)
    ldp     x21, x22, [sp, #16]     /*  16: x21, x22 */
    RESTORED_PAIR(x21, x22)
    ldp     x23, x24, [sp, #32]     /*  32: x23, x24 */
    RESTORED_PAIR(x23, x24)
    ldp     x25, x26, [sp, #48]     /*  48: x25, x26 */
    RESTORED_PAIR(x25, x26)
    ldp     x27, x28, [sp, #64]     /*  64: x27, x28 */
    RESTORED_PAIR(x27, x28)
    ldp     x29, x30, [sp, #80]     /*  80: x29, x30 */
    RESTORED_PAIR(x29, x30)
    ldp     d8,  d9,  [sp, #96]     /*  96: d8,  d9  */
    RESTORED_PAIR(d8, d9)
    ldp     d10, d11, [sp, #112]    /* 112: d10, d11 */
    RESTORED_PAIR(d10, d11)
    ldp     d12, d13, [sp, #128]    /* 128: d12, d13 */
    RESTORED_PAIR(d12, d13)
    ldp     d14, d15, [sp, #144]    /* 144: d14, d15 */
    RESTORED_PAIR(d14, d15)
    add     sp, sp, #FRAME_SIZE
    .cfi_def_cfa_offset 0
    mov     x0, x2                  /* transfer word for the resumed side */
    AUTH_LR                         /* x30 was signed with this sp */
    RA_SIGNED_TOGGLE                /* from here x30 is plain again */
    ret
.Lreload_fp:
    .cfi_restore_state              /* the frame of `to`, whole */
    msr     fpcr, x12
    b       .Lrestore

.Lmisuse:
    .cfi_restore_state              /* entry state */
    b       ugreen_internal_swap_misuse
    .cfi_endproc
    .size   ugreen_internal_switch, . - ugreen_internal_switch
#ifndef UGREEN_ASAN
FUNC_END(ugreen_context_swap)
#endif

/*
 * noreturn ugreen_internal_jump(uintptr_t *live     : x0,
 *                               ugreen_context *to  : x1,
 *                               void *transfer      : x2)
 *
 * Resumes `to` without saving the current context: the end of a context
 * whose entry function returned. Once on the stack of `to` (and only then:
 * nothing touches the finished stack after that) stores 0 to `*live` with
 * release semantics, which marks the finished context's stack free. Always
 * writes FPCR.
 */
HIDDEN_BEGIN(ugreen_internal_jump)
    .cfi_startproc simple
    .cfi_signal_frame
#if UGREEN_AARCH64_PAC
    .cfi_negate_ra_state
#endif
    /* Reached by a branch from the trampoline with x1 = link: as there, the
       caller is the frame `to` saved (CFA = to->sp + FRAME_SIZE). */
    CFA_SAVED_FRAME_OF(DW_OP_BREG_X1)
    SAVED_FRAME_REGISTERS
    LANDING_PAD
    cbz     x1, .Ljump_misuse
    ldr     x9, [x1]                /* x9 = to->sp */
    cbz     x9, .Ljump_misuse
    .cfi_remember_state
    mov     sp, x9                  /* leave the finished stack for good */
    .cfi_def_cfa sp, FRAME_SIZE     /* the same frame, now at sp */
    str     xzr, [x1]               /* to is running */
    stlr    xzr, [x0]               /* *live = 0, after every access to it */
    ldr     x12, [sp, #160]         /* 160: FPCR */
    b       .Lreload_fp
.Ljump_misuse:
    .cfi_restore_state
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
 *     x22 = live   (uintptr_t *, cleared by ugreen_internal_jump once
 *                   the finished context has left this stack)
 *     x29 = 0, x0 = transfer (from the swap)
 * sp is 16-byte aligned here.
 *
 * CFI: the canonical frame of the trampoline is described as the frame the
 * link context saved when it last switched away (CFA = link->sp + 176), so a
 * debugger or unwinder walking out of a green thread continues into the code
 * suspended in `link`.
 *
 * The FDE starts one instruction before the symbol: the initial frame's
 * return address is the trampoline's first instruction, and an unwinder
 * looks a caller's return address up one instruction before it.
 */
    .text
    .p2align 4
    .cfi_startproc simple
    /* An exception that leaves the entry function ends the process
       (src/context.rs): the CFA below continues into the resumer, whose
       frames must never catch it. Indirect: a pointer in writable data. */
    .cfi_personality 0x9b, ugreen_personality_ref    /* indirect pcrel sdata4 */
    .cfi_signal_frame
#if UGREEN_AARCH64_PAC
    /* The x30 saved in the link's frame was signed by paciasp with sp =
       link->sp + FRAME_SIZE, which is this CFA: unwinders authenticate it
       with the CFA as modifier. */
    .cfi_negate_ra_state
#endif
    CFA_SAVED_FRAME_OF(DW_OP_BREG_X21)  /* x21 = link */
    SAVED_FRAME_REGISTERS
    nop                             /* (see above) */
    .globl  ugreen_internal_trampoline
    .hidden ugreen_internal_trampoline
    .type   ugreen_internal_trampoline, %function
ugreen_internal_trampoline:
    LANDING_PAD
    mov     x1, x0                  /* transfer */
    mov     x0, x20                 /* arg */
    blr     x19                     /* entry(arg, transfer) */
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
    mov     x0, x22                 /* live */
    mov     x1, x21                 /* to = link */
    mov     x2, xzr                 /* transfer = NULL */
    b       ugreen_internal_jump
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline)

/* The personality routine's address, for the trampoline's CIE. */
    .section .data.rel.ro.ugreen_personality_ref, "aw", %progbits
    .p2align 3
    .type   ugreen_personality_ref, %object
    .size   ugreen_personality_ref, 8
ugreen_personality_ref:
    .xword   ugreen_internal_entry_personality
    .text

/*
 * The same for a context made without a link: the unwind ends here, and a
 * return from entry aborts with a message (ugreen_internal_no_link); the
 * stack stays marked in use.
 *     x19 = entry, x20 = arg
 */
HIDDEN_BEGIN(ugreen_internal_trampoline_nolink)
    .cfi_startproc
    .cfi_undefined x30
    LANDING_PAD
    mov     x1, x0                  /* transfer */
    mov     x0, x20                 /* arg */
    blr     x19                     /* entry(arg, transfer) */
    bl      ugreen_internal_no_link
    brk     #1
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline_nolink)


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
