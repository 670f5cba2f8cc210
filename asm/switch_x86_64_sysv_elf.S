/*
 * ugreen context switch: x86_64, System V ABI, ELF, GNU assembler.
 *
 * A suspended context is one pointer: the stack pointer of the frame below,
 * stored in the first word of its `ugreen_context`. The frame lives on the
 * suspended context's own stack. Mirrored by `SwitchFrame` in
 * src/arch/asm/x86_64.rs (offsets checked at compile time).
 *
 *   offset  slot
 *   ------  ---------------------------------------------------------------
 *      0    MXCSR (bytes 0-3), x87 control word (bytes 4-5), unused (6-7)
 *      8    r15
 *     16    r14
 *     24    r13
 *     32    r12
 *     40    rbx
 *     48    rbp
 *     56    return address (where the context resumes)
 *     64    = stack pointer of the context once resumed
 *
 * Saved: exactly the callee-saved state of the SysV ABI (rbx, rbp, r12-r15,
 * rsp, the MXCSR control bits and the x87 control word). The signal mask is
 * NOT saved: a green thread that changes it changes it for the whole thread.
 *
 * `struct ugreen_context` (src/context.rs):
 *      0    sp: saved frame while suspended, NULL while running, finished or
 *           never made
 */

#include "common.h"

#define FRAME_SIZE 64

/*
 * void *ugreen_context_swap(ugreen_context *from  : rdi,
 *                           ugreen_context *to    : rsi,
 *                           void *transfer        : rdx)   -> rax
 *
 * C sees `void ugreen_context_swap(ugreen_context *from, ugreen_context *to)`;
 * Rust uses the third argument to pass one word to the resumed side, which
 * receives it as the return value of its own suspended swap (or, on first
 * entry, as the second argument of its entry function).
 *
 * On entry: from and to non-NULL, to->sp non-NULL (checked: a violation
 * jumps to ugreen_internal_swap_misuse, which reports and aborts).
 * Effect:   callee-saved state pushed on the current stack, from->sp = rsp,
 *           to->sp = NULL (to is now running), rsp = the old to->sp, the
 *           FP control state reloaded only when it differs, the registers of
 *           `to` popped, and a jmp (not ret) to its return address with
 *           rax = transfer.
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
    test    %rdi, %rdi
    jz      .Lmisuse
    test    %rsi, %rsi
    jz      .Lmisuse
    mov     (%rsi), %rax            /* rax = to->sp */
    test    %rax, %rax
    jz      .Lmisuse

    push    %rbp                    /* 48: rbp */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    push    %rbx                    /* 40: rbx */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    push    %r12                    /* 32: r12 */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    push    %r13                    /* 24: r13 */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    push    %r14                    /* 16: r14 */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    push    %r15                    /*  8: r15 */
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    sub     $8, %rsp                /*  0: FP control (bytes 6-7 unused) */
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)                  /*  0: MXCSR */
    fnstcw  4(%rsp)                 /*  4: x87 control word */

    mov     %rsp, (%rdi)            /* from->sp = our frame */
    movq    $0, (%rsi)              /* to is running from now on */
    movzwl  4(%rsp), %ecx           /* our x87 CW (a load that forwards) */
    mov     %rax, %rsp              /* switch stacks */
    .cfi_def_cfa rsp, FRAME_SIZE

    /* FP control state. MXCSR is reloaded every time: on AMD Zen 4 a load
       of what stmxcsr just stored does not forward and stalls (+1.6 ns per
       switch for a 4-byte compare, +5 ns for an 8-byte one), while an
       unconditional ldmxcsr costs ~0.3 ns. The x87 CW compares cheaply
       (fnstcw forwards), so fldcw runs only when it differs. Reloading
       MXCSR also restores the resumed side's status flags (bits 0-5), as
       swapcontext does. */
    ldmxcsr (%rsp)                  /*  0: MXCSR */
    cmp     4(%rsp), %cx            /*  4: x87 CW */
    jne     .Lreload_cw
.Lrestore:
    lea     8(%rsp), %rsp           /*  0: FP control, already in place (no
                                       8-byte load of a slot written in parts) */
    pop     %r15                    /*  8: r15 */
    pop     %r14                    /* 16: r14 */
    pop     %r13                    /* 24: r13 */
    pop     %r12                    /* 32: r12 */
    pop     %rbx                    /* 40: rbx */
    pop     %rbp                    /* 48: rbp */
    mov     %rdx, %rax              /* transfer word for the resumed side */
    pop     %rcx                    /* 56: return address */
    RESUME_JMP(%rcx)                /* jmp, not ret: keeps the return-stack
                                       predictor in step on both sides */
.Lreload_cw:
    fldcw   4(%rsp)                 /*  4: x87 control word */
    jmp     .Lrestore

.Lmisuse:
    jmp     ugreen_internal_swap_misuse@PLT
    .cfi_endproc
#ifndef UGREEN_ASAN
FUNC_END(ugreen_context_swap)
#else
FUNC_END(ugreen_internal_switch)
#endif

/*
 * noreturn ugreen_internal_jump(ugreen_context *to : rsi, void *transfer : rdx)
 *
 * Resumes `to` without saving the current context (used when a context's
 * entry function has returned). Reloads MXCSR, and the x87 CW if it differs.
 */
HIDDEN_BEGIN(ugreen_internal_jump)
    .cfi_startproc
    .cfi_undefined rip
    LANDING_PAD
    test    %rsi, %rsi
    jz      .Ljump_misuse
    mov     (%rsi), %rax            /* rax = to->sp */
    test    %rax, %rax
    jz      .Ljump_misuse
    movq    $0, (%rsi)              /* to is running */
    fnstcw  -8(%rsp)                /* current x87 CW (red zone of a stack
                                       being left for good) */
    movzwl  -8(%rsp), %ecx
    mov     %rax, %rsp
    ldmxcsr (%rsp)                  /*  0: MXCSR */
    cmp     4(%rsp), %cx            /*  4: x87 CW */
    jne     .Lreload_cw
    jmp     .Lrestore
.Ljump_misuse:
    xor     %edi, %edi              /* no "from" */
    jmp     ugreen_internal_swap_misuse@PLT
    .cfi_endproc
FUNC_END(ugreen_internal_jump)

/*
 * Entry trampoline of a new context. Reached by the first swap into a context
 * made by `arch::init_frame`, whose frame holds:
 *     rbx = entry  (void (*)(void *arg, void *transfer))
 *     r12 = arg
 *     r13 = link   (ugreen_context *, never NULL here)
 *     r14 = live   (uintptr_t *, cleared when entry returns)
 *     rbp = 0, rax = transfer (from the swap)
 * rsp is 16-byte aligned here, so the call below is ABI-aligned.
 *
 * CFI: the canonical frame of the trampoline is described as the frame the
 * link context saved when it last switched away (CFA = link->sp + 64), so a
 * debugger or unwinder walking out of a green thread continues into the code
 * that is suspended in `link` (the resumer, for uWSGI's main and for the
 * Rust coroutine API).
 */
HIDDEN_BEGIN(ugreen_internal_trampoline)
    .cfi_startproc simple
    /* DW_CFA_def_cfa_expression: DW_OP_breg13 0; DW_OP_deref; DW_OP_plus_uconst 64 */
    .cfi_escape 0x0f, 0x05, 0x7d, 0x00, 0x06, 0x23, FRAME_SIZE
    .cfi_offset rip, -8
    .cfi_offset rbp, -16
    .cfi_offset rbx, -24
    .cfi_offset r12, -32
    .cfi_offset r13, -40
    .cfi_offset r14, -48
    .cfi_offset r15, -56
    LANDING_PAD
    mov     %r12, %rdi              /* arg */
    mov     %rax, %rsi              /* transfer */
    call    *%rbx                   /* entry(arg, transfer) */
    movq    $0, (%r14)              /* the stack is free again */
#ifdef UGREEN_ASAN
    /* `asan` feature: this fiber ends. Announce the switch to `link` and
       release the fiber's fake stack; done here because no instrumented
       frame may run once it is released (src/arch/asm/asan.rs). */
    mov     %r13, %rdi
    call    ugreen_internal_asan_exit       /* rax, rdx = link's stack bounds */
    xor     %edi, %edi                      /* fake_stack_save = NULL */
    mov     %rax, %rsi                      /* bottom */
    call    __sanitizer_start_switch_fiber@PLT  /* rdx = size */
#endif
    mov     %r13, %rsi              /* to = link */
    xor     %edx, %edx              /* transfer = NULL */
    jmp     ugreen_internal_jump
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline)

/*
 * The same for a context made without a link: the unwind ends here, and a
 * return from entry aborts with a message (ugreen_internal_no_link).
 *     rbx = entry, r12 = arg, r14 = live
 */
HIDDEN_BEGIN(ugreen_internal_trampoline_nolink)
    .cfi_startproc
    .cfi_undefined rip
    LANDING_PAD
    mov     %r12, %rdi              /* arg */
    mov     %rax, %rsi              /* transfer */
    call    *%rbx                   /* entry(arg, transfer) */
    movq    $0, (%r14)              /* the stack is free again */
    call    ugreen_internal_no_link@PLT
    ud2
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline_nolink)

/*
 * void ugreen_internal_fp_control(SwitchFrame *frame : rdi)
 * Stores the current FP control state into slot 0 of `frame`. Nothing reads
 * the stored value back here: a load of what stmxcsr just stored stalls.
 */
HIDDEN_BEGIN(ugreen_internal_fp_control)
    .cfi_startproc
    LANDING_PAD
    stmxcsr (%rdi)                  /*  0: MXCSR */
    fnstcw  4(%rdi)                 /*  4: x87 control word */
    movw    $0, 6(%rdi)             /*  6: unused */
    ret
    .cfi_endproc
FUNC_END(ugreen_internal_fp_control)
