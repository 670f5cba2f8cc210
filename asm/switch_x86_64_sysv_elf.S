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
 * rsp, the MXCSR control bits and the x87 control word); MXCSR is saved and
 * reloaded whole, so its status flags are per context too. The x87 status
 * word is not saved: it stays per thread. The signal mask is
 * NOT saved: a green thread that changes it changes it for the whole thread.
 *
 * `struct ugreen_context` (src/context.rs):
 *      0    sp: saved frame while suspended, NULL while running, finished or
 *           never made
 */

#include "common.h"

#define FRAME_SIZE 64

/*
 * DW_CFA_def_cfa_expression: CFA = *(reg) + FRAME_SIZE, where reg holds a
 * `ugreen_context *` whose saved frame is the caller's. Bytes: expression
 * length 5, DW_OP_breg<n> 0, DW_OP_deref, DW_OP_plus_uconst FRAME_SIZE (one
 * ULEB128 byte: FRAME_SIZE < 128, checked below).
 */
#define DW_OP_BREG_RSI 0x74
#define DW_OP_BREG_R13 0x7d
#define CFA_SAVED_FRAME_OF(breg) .cfi_escape 0x0f, 0x05, breg, 0x00, 0x06, 0x23, FRAME_SIZE
#if FRAME_SIZE >= 128
# error "CFA_SAVED_FRAME_OF encodes FRAME_SIZE as one ULEB128 byte"
#endif

/* Where the saved frame keeps each register, relative to the CFA (the
   stack pointer once the frame is popped): the table above. */
#define SAVED_FRAME_REGISTERS          \
    .cfi_offset rip, 56 - FRAME_SIZE;  \
    .cfi_offset rbp, 48 - FRAME_SIZE;  \
    .cfi_offset rbx, 40 - FRAME_SIZE;  \
    .cfi_offset r12, 32 - FRAME_SIZE;  \
    .cfi_offset r13, 24 - FRAME_SIZE;  \
    .cfi_offset r14, 16 - FRAME_SIZE;  \
    .cfi_offset r15, 8 - FRAME_SIZE

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
 *           to->sp = NULL (to is now running), rsp = the old to->sp,
 *           MXCSR of `to` always reloaded (control bits and status flags),
 *           its x87 control word reloaded only when it differs from ours,
 *           the registers of `to` popped, and a jmp (not ret) to its return
 *           address with rax = transfer.
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
    movzwl  4(%rsp), %ecx           /* our x87 CW (a load that forwards) */
    mov     %rax, %rsp              /* switch stacks */
    .cfi_def_cfa rsp, FRAME_SIZE    /* from here: the frame of `to` */
    movq    $0, (%rsi)              /* to is running from now on (only
                                       now: until the switch, an unwinder
                                       walking our stack may read to->sp) */
    .cfi_remember_state             /* for .Lreload_cw */

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
    .cfi_adjust_cfa_offset -8
    pop     %r15                    /*  8: r15 */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    pop     %r14                    /* 16: r14 */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    pop     %r13                    /* 24: r13 */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    pop     %r12                    /* 32: r12 */
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    pop     %rbx                    /* 40: rbx */
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    pop     %rbp                    /* 48: rbp */
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    mov     %rdx, %rax              /* transfer word for the resumed side */
    pop     %rcx                    /* 56: return address */
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    RESUME_JMP(%rcx)                /* jmp, not ret: keeps the return-stack
                                       predictor in step on both sides */
.Lreload_cw:
    .cfi_restore_state              /* the frame of `to`, whole */
    fldcw   4(%rsp)                 /*  4: x87 control word */
    jmp     .Lrestore

.Lmisuse:
    .cfi_restore_state              /* entry state */
    jmp     ugreen_internal_swap_misuse@PLT
    .cfi_endproc
    .size   ugreen_internal_switch, . - ugreen_internal_switch
#ifndef UGREEN_ASAN
FUNC_END(ugreen_context_swap)
#endif

/*
 * noreturn ugreen_internal_jump(uintptr_t *live     : rdi,
 *                               ugreen_context *to  : rsi,
 *                               void *transfer      : rdx)
 *
 * Resumes `to` without saving the current context: the end of a context
 * whose entry function returned. Once on the stack of `to` (and only then:
 * nothing touches the finished stack after that) stores 0 to `*live`, which
 * marks the finished context's stack free. Reloads MXCSR, and the x87 CW if
 * it differs.
 */
HIDDEN_BEGIN(ugreen_internal_jump)
    .cfi_startproc simple
    /* Reached by a jmp from the trampoline with rsi = link: as there, the
       caller is the frame `to` saved (CFA = to->sp + FRAME_SIZE). */
    CFA_SAVED_FRAME_OF(DW_OP_BREG_RSI)
    SAVED_FRAME_REGISTERS
    LANDING_PAD
    test    %rsi, %rsi
    jz      .Ljump_misuse
    mov     (%rsi), %rax            /* rax = to->sp */
    test    %rax, %rax
    jz      .Ljump_misuse
    .cfi_remember_state
    mov     %rax, %rsp              /* leave the finished stack for good */
    .cfi_def_cfa rsp, FRAME_SIZE    /* the same frame, now at rsp */
    movq    $0, (%rsi)              /* to is running */
    movq    $0, (%rdi)              /* *live = 0: that stack is free (a
                                       plain store is a release on x86) */
    fnstcw  -8(%rsp)                /* current x87 CW (below the frame of
                                       `to`: free space of its stack) */
    movzwl  -8(%rsp), %ecx
    ldmxcsr (%rsp)                  /*  0: MXCSR */
    cmp     4(%rsp), %cx            /*  4: x87 CW */
    jne     .Lreload_cw
    jmp     .Lrestore
.Ljump_misuse:
    .cfi_restore_state
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
 *     r14 = live   (uintptr_t *, cleared by ugreen_internal_jump once
 *                   the finished context has left this stack)
 *     rbp = 0, rax = transfer (from the swap)
 * rsp is 16-byte aligned here, so the call below is ABI-aligned.
 *
 * CFI: the canonical frame of the trampoline is described as the frame the
 * link context saved when it last switched away (CFA = link->sp + 64), so a
 * debugger or unwinder walking out of a green thread continues into the code
 * that is suspended in `link` (the resumer, for uWSGI's main and for the
 * Rust coroutine API).
 *
 * The FDE starts one instruction before the symbol: the initial frame's
 * return address is the trampoline's first instruction, and an unwinder
 * looks a caller's return address up one byte before it.
 */
    .text
    .p2align 4
    .cfi_startproc simple
    /* An exception that leaves the entry function ends the process
       (src/context.rs): the CFA below continues into the resumer, whose
       frames must never catch it. Indirect: a pointer in writable data. */
    .cfi_personality 0x9b, ugreen_personality_ref    /* indirect pcrel sdata4 */
    CFA_SAVED_FRAME_OF(DW_OP_BREG_R13)  /* r13 = link */
    SAVED_FRAME_REGISTERS
    nop                             /* (see above) */
    .globl  ugreen_internal_trampoline
    .hidden ugreen_internal_trampoline
    .type   ugreen_internal_trampoline, %function
ugreen_internal_trampoline:
    LANDING_PAD
    mov     %r12, %rdi              /* arg */
    mov     %rax, %rsi              /* transfer */
    call    *%rbx                   /* entry(arg, transfer) */
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
    mov     %r14, %rdi              /* live */
    mov     %r13, %rsi              /* to = link */
    xor     %edx, %edx              /* transfer = NULL */
    jmp     ugreen_internal_jump
    .cfi_endproc
FUNC_END(ugreen_internal_trampoline)

/* The personality routine's address, for the trampoline's CIE. */
    .section .data.rel.ro.ugreen_personality_ref, "aw", %progbits
    .p2align 3
    .type   ugreen_personality_ref, %object
    .size   ugreen_personality_ref, 8
ugreen_personality_ref:
    .quad   ugreen_internal_entry_personality
    .text

/*
 * The same for a context made without a link: the unwind ends here, and a
 * return from entry aborts with a message (ugreen_internal_no_link); the
 * stack stays marked in use.
 *     rbx = entry, r12 = arg
 */
HIDDEN_BEGIN(ugreen_internal_trampoline_nolink)
    .cfi_startproc
    .cfi_undefined rip
    LANDING_PAD
    mov     %r12, %rdi              /* arg */
    mov     %rax, %rsi              /* transfer */
    call    *%rbx                   /* entry(arg, transfer) */
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
