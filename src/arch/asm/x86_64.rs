//! x86_64 System V: the frame saved by asm/switch_x86_64_sysv_elf.S.

use super::{CoStart, Start};
use core::mem::{offset_of, size_of};

/// One suspended context's saved state, at its saved stack pointer.
#[repr(C)]
pub(super) struct SwitchFrame {
    /// MXCSR in bits 0-31, x87 control word in bits 32-47, 48-63 unused.
    fp_control: u64,
    r15: usize,
    r14: usize,
    r13: usize,
    r12: usize,
    rbx: usize,
    rbp: usize,
    /// Where the context resumes.
    ret: usize,
}

// The table at the top of the assembly file, checked.
const _: () = {
    assert!(offset_of!(SwitchFrame, fp_control) == 0);
    assert!(offset_of!(SwitchFrame, r15) == 8);
    assert!(offset_of!(SwitchFrame, r14) == 16);
    assert!(offset_of!(SwitchFrame, r13) == 24);
    assert!(offset_of!(SwitchFrame, r12) == 32);
    assert!(offset_of!(SwitchFrame, rbx) == 40);
    assert!(offset_of!(SwitchFrame, rbp) == 48);
    assert!(offset_of!(SwitchFrame, ret) == 56);
    // FRAME_SIZE: popping the frame leaves rsp 16-byte aligned when it
    // started so, as the trampoline's `call` requires.
    assert!(size_of::<SwitchFrame>() == 64);
};

/// The frame of a context that has never run: the first swap into it pops
/// these registers and jumps to the trampoline.
pub(super) fn initial(start: Start, fp_control: u64, resume_at: usize) -> SwitchFrame {
    SwitchFrame {
        fp_control,
        r15: 0,
        r14: start.live,
        r13: start.link,
        r12: start.arg,
        rbx: start.entry,
        rbp: 0,
        ret: resume_at,
    }
}

/// Stores the current FP control state (MXCSR, x87 control word) into the
/// FP slot of `frame`, straight to memory: reading the value back into a
/// register first would stall on the `stmxcsr` store.
///
/// # Safety
/// `frame` is valid for writes.
#[inline(always)]
pub(super) unsafe fn store_fp_control(frame: *mut SwitchFrame) {
    // SAFETY: the caller's contract; the three stores stay inside the
    // 8-byte slot at offset 0.
    unsafe {
        core::arch::asm!(
            "stmxcsr [{f}]",                // 0: MXCSR
            "fnstcw [{f} + 4]",             // 4: x87 control word
            "mov word ptr [{f} + 6], 0",    // 6: unused
            f = in(reg) frame,
            options(nostack, preserves_flags),
        );
    }
}

// ------------------------------------------------- the coroutine switch
//
// The safe `Coroutine` switches with inline assembly at its call sites
// instead of calling the assembly routine: the `asm!` block declares every
// register the System V ABI lets a call clobber, plus r12-r15, as clobbered,
// so the compiler saves only those of them that are live at that call site.
// The block itself saves only what the compiler cannot be told about: rbx
// and rbp. No FP control state is switched on this path (Rust code cannot
// change it soundly; see the README).

/// What a suspended coroutine leaves at its saved stack pointer, and what
/// its resumer leaves at its own while the coroutine runs (there `resume`
/// is the return address pushed by the resumer's `call`).
#[repr(C)]
pub(super) struct CoFrame {
    /// Where the side resumes (`2:` of `co_suspend`, the trampoline, or
    /// the resumer's return address).
    resume: usize,
    rbx: usize,
    rbp: usize,
}

// The two directions of a coroutine switch are a call and a return, as the
// return-address predictor expects: `co_resume` calls into the coroutine
// (`call` to its resume address), `co_suspend` returns to the resumer
// (`ret` to the address that `call` pushed). The coroutine's saved stack
// pointer travels in rsi (the resumer keeps it); the resumer's is stored in
// the link.

/// Resumes the coroutine whose saved stack pointer is `sp`, passing
/// `transfer` (rdi); saves the resumer's stack pointer into `*link`.
/// Returns the word and the stack pointer passed by the coroutine's next
/// `co_suspend`, or (0, 0) when its entry function returned; and `link`
/// (rdx: `co_suspend` and the trampoline both switch back with it there).
///
/// # Safety
/// `sp` is the saved stack pointer of a suspended coroutine (returned by
/// `co_suspend` or `co_init`) on a stack that is still mapped; `link` is
/// its link, writable, and stays valid until the coroutine switches back.
#[inline(always)]
pub(super) unsafe fn co_resume(
    link: *mut usize,
    sp: usize,
    transfer: usize,
) -> (usize, usize, *mut usize) {
    let (word, sp_out, link_out): (usize, usize, *mut usize);
    // SAFETY: the caller's contract. The coroutine side saves the stack
    // pointer (pointing at the return address, with rbx and rbp above it)
    // into `*link` and comes back with `ret`; the block then restores rbx
    // and rbp. Everything else is declared clobbered.
    unsafe {
        core::arch::asm!(
            "push rbp",                 // CoFrame.rbp
            "push rbx",                 // CoFrame.rbx
            "call [rdx]",               // CoFrame.resume; rsi = link, rdx = sp
            "pop rbx",
            "pop rbp",
            inlateout("rdi") transfer => word,
            inlateout("rsi") link => sp_out,
            inlateout("rdx") sp => link_out,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (word, sp_out, link_out)
}

/// Suspends the running coroutine: saves its rbx, rbp and resume address
/// on its stack, and returns to the resumer saved in `*link`, passing
/// `transfer` (rdi) and its stack pointer (rsi). Returns the word passed by
/// the next `co_resume` (which enters at `2:` with rsi = the link, rdx =
/// this frame).
///
/// # Safety
/// Runs on the coroutine's stack; `*link` is the resumer saved by the
/// `co_resume` that entered the coroutine.
#[inline(always)]
pub(super) unsafe fn co_suspend(link: *const usize, transfer: usize) -> usize {
    let out: usize;
    // SAFETY: the caller's contract. When resumed, the block restores rsp,
    // rbx and rbp as they were; everything else is declared clobbered.
    unsafe {
        core::arch::asm!(
            "push rbp",                 // CoFrame.rbp
            "push rbx",                 // CoFrame.rbx
            "lea rax, [rip + 2f]",
            "push rax",                 // CoFrame.resume
            "mov rsi, rsp",             // this frame, for the resumer
            "mov rsp, [rdx]",           // the resumer's frame
            "ret",                      // to the resumer's `call`
            "2:",                       // entered by `call [rdx]` of co_resume
            "mov [rsi], rsp",           // *link = the resumer's frame
            "lea rsp, [rdx + 8]",       // this frame, past CoFrame.resume
            "pop rbx",                  // CoFrame.rbx
            "pop rbp",                  // CoFrame.rbp
            inlateout("rdi") transfer => out,
            inlateout("rdx") link => _,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    out
}

// `co_is_fresh` reads the resume address as the first word of either frame.
const _: () = {
    assert!(offset_of!(CoFrame, resume) == 0);
    assert!(offset_of!(CoFrame, rbx) == 8);
    assert!(offset_of!(CoFrame, rbp) == 16);
};

/// With the `asan` feature, the ending coroutine announces the switch to its
/// link and releases its fake stack (src/arch/asm/asan.rs) in the trampoline,
/// where no instrumented frame of it runs any more.
#[cfg(feature = "asan")]
macro_rules! co_exit_asan {
    () => {
        concat!(
            "mov rdi, rsp\n",                             // the link
            "call ugreen_internal_coroutine_asan_exit\n", // rax, rdx = link's stack bounds
            "xor edi, edi\n",                             // fake_stack_save = NULL
            "mov rsi, rax\n",                             // bottom; rdx = size
            "call __sanitizer_start_switch_fiber@PLT",
        )
    };
}
#[cfg(not(feature = "asan"))]
macro_rules! co_exit_asan {
    () => {
        ""
    };
}

// Entry of a new coroutine, called by its first `co_resume` (rsi = link,
// rdx = the first frame, directly below the link; rdi = transfer). Saves
// the resumer's stack pointer in the link like `2:` of `co_suspend`, then
// calls entry(transfer, link) with rsp at the link; when entry returns, rsp
// is at the link again, and the trampoline returns to the resumer for good,
// passing (0, 0) and the link. rbx and rbp keep the resumer's values (entry preserves
// them; the resumer restores its own from its frame).
//
// CFI: this frame's caller is the resumer, suspended in its `co_resume`
// with its CoFrame at its stack pointer. Until rsp leaves the resumer's
// stack, CFA = rsp + size_of::<CoFrame>(); while rsp is at the link,
// CFA = *link + size_of::<CoFrame>(). Either way rip, rbx and rbp are in
// that frame. So debuggers and unwinders walk from the coroutine's stack
// into the code that resumed it, at every instruction.
core::arch::global_asm!(
    ".pushsection .text.ugreen_internal_coroutine_trampoline,\"ax\",@progbits",
    ".globl ugreen_internal_coroutine_trampoline",
    ".hidden ugreen_internal_coroutine_trampoline",
    ".type ugreen_internal_coroutine_trampoline, @function",
    ".p2align 4",
    "ugreen_internal_coroutine_trampoline:",
    ".cfi_startproc simple",
    ".cfi_def_cfa rsp, {frame}",
    ".cfi_offset rip, -{frame}+{resume}",
    ".cfi_offset rbx, -{frame}+{rbx}",
    ".cfi_offset rbp, -{frame}+{rbp}",
    "mov [rsi], rsp",                   // *link = the resumer's frame
    "lea rsp, [rdx + {start}]",         // the link
    // DW_CFA_def_cfa_expression: DW_OP_breg7 (rsp) 0; DW_OP_deref; DW_OP_plus_uconst FRAME
    ".cfi_escape 0x0f, 0x05, 0x77, 0x00, 0x06, 0x23, {frame}",
    "call [rdx + {entry}]",             // entry(rdi = transfer, rsi = link)
    co_exit_asan!(),
    "mov rdx, rsp",                     // the link, for the resumer
    "mov rsp, [rsp]",                   // the resumer's frame
    ".cfi_def_cfa rsp, {frame}",
    "xor edi, edi",                     // transfer 0: finished
    "xor esi, esi",                     // no stack pointer to resume
    "ret",                              // to the resumer's `call`
    ".cfi_endproc",
    ".size ugreen_internal_coroutine_trampoline, . - ugreen_internal_coroutine_trampoline",
    ".popsection",
    frame = const size_of::<CoFrame>(),
    resume = const offset_of!(CoFrame, resume),
    rbx = const offset_of!(CoFrame, rbx),
    rbp = const offset_of!(CoFrame, rbp),
    start = const size_of::<CoStart>(),
    entry = const offset_of!(CoStart, entry),
);
