//! aarch64 AAPCS64: the frame saved by asm/switch_aarch64_aapcs_elf.S.

use super::{CoStart, Start};
use core::mem::{offset_of, size_of};

/// One suspended context's saved state, at its saved stack pointer.
#[repr(C)]
pub(super) struct SwitchFrame {
    /// x19..=x28.
    x19_x28: [usize; 10],
    /// Frame pointer.
    x29: usize,
    /// Link register: where the context resumes.
    x30: usize,
    /// d8..=d15 (low 64 bits of v8-v15), as bit patterns.
    d8_d15: [u64; 8],
    fpcr: u64,
    _pad: u64,
}

// The table at the top of the assembly file, checked.
const _: () = {
    assert!(offset_of!(SwitchFrame, x19_x28) == 0);
    assert!(offset_of!(SwitchFrame, x29) == 80);
    assert!(offset_of!(SwitchFrame, x30) == 88);
    assert!(offset_of!(SwitchFrame, d8_d15) == 96);
    assert!(offset_of!(SwitchFrame, fpcr) == 160);
    // FRAME_SIZE: a multiple of 16, so sp stays aligned.
    assert!(size_of::<SwitchFrame>() == 176);
};

/// The frame of a context that has never run: the first swap into it loads
/// these registers and returns to the trampoline.
pub(super) fn initial(start: Start, fpcr: u64, resume_at: usize) -> SwitchFrame {
    let mut x = [0usize; 10];
    x[0] = start.entry; // x19
    x[1] = start.arg; // x20
    x[2] = start.link; // x21
    x[3] = start.live; // x22
    SwitchFrame {
        x19_x28: x,
        x29: 0,
        x30: resume_at,
        d8_d15: [0; 8],
        fpcr,
        _pad: 0,
    }
}

/// Stores the current FPCR into the FPCR slot of `frame`.
///
/// # Safety
/// `frame` is valid for writes.
#[inline(always)]
pub(super) unsafe fn store_fp_control(frame: *mut SwitchFrame) {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effect.
    unsafe {
        core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: the caller's contract.
    unsafe { core::ptr::addr_of_mut!((*frame).fpcr).write(fpcr) };
}

// ------------------------------------------------- the coroutine switch

/// `bti c`, the landing pad of an indirect call, when the Rust code is built
/// with BTI (build.rs sets `ugreen_bti`); nothing otherwise.
#[cfg(ugreen_bti)]
macro_rules! bti_c {
    () => {
        "hint 34"
    };
}
#[cfg(not(ugreen_bti))]
macro_rules! bti_c {
    () => {
        ""
    };
}
//
// The safe `Coroutine` switches with inline assembly at its call sites
// instead of calling the assembly routine: the `asm!` block declares every
// register AAPCS64 lets a call clobber (v8-v15 whole, so d8-d15 too), plus
// x20-x28, as clobbered, so the compiler saves only those of them that are
// live at that call site. The block itself saves only what the compiler
// cannot be told about: x19 and x29. No FP control state (FPCR) is switched
// on this path (Rust code cannot change it soundly; see the README).

/// What a suspended coroutine leaves at its saved stack pointer, and what
/// its resumer leaves at its own while the coroutine runs.
#[repr(C)]
pub(super) struct CoFrame {
    /// Where the side resumes (`2:` of `co_suspend`, the trampoline, or
    /// the resumer's return address).
    resume: usize,
    x19: usize,
    x29: usize,
    /// Keeps sp 16-byte aligned.
    _pad: usize,
}

// The two directions of a coroutine switch are a call and a return, as the
// return-address predictor expects: `co_resume` calls into the coroutine
// (`blr` to its resume address), `co_suspend` returns to the resumer
// (`ret` to the address that `blr` left in x30). The coroutine's saved
// stack pointer travels in x1 (the resumer keeps it); the resumer's is
// stored in the link.

/// Resumes the coroutine whose saved stack pointer is `sp`, passing
/// `transfer` (x0); saves the resumer's stack pointer into `*link`.
/// Returns the word and the stack pointer passed by the coroutine's next
/// `co_suspend`, or (0, 0) when its entry function returned; and `link`
/// (x2: `co_suspend` and the trampoline both switch back with it there).
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
    // SAFETY: the caller's contract. The coroutine side saves x19, x29 and
    // the return address on this stack, and restores them and sp before
    // its `ret`; everything else is declared clobbered.
    unsafe {
        core::arch::asm!(
            "ldr x9, [x2]",             // CoFrame.resume of the coroutine
            "blr x9",                   // x1 = link, x2 = sp
            inlateout("x0") transfer => word,
            inlateout("x1") link => sp_out,
            inlateout("x2") sp => link_out,
            lateout("x20") _, lateout("x21") _, lateout("x22") _, lateout("x23") _,
            lateout("x24") _, lateout("x25") _, lateout("x26") _, lateout("x27") _,
            lateout("x28") _,
            clobber_abi("C"),
        );
    }
    (word, sp_out, link_out)
}

/// Suspends the running coroutine: saves its x19, x29 and resume address on
/// its stack, and returns to the resumer saved in `*link`, passing
/// `transfer` (x0) and its stack pointer (x1). Returns the word passed by
/// the next `co_resume` (which enters at `2:` with x1 = the link, x2 = this
/// frame, x30 = its return address).
///
/// # Safety
/// Runs on the coroutine's stack; `*link` is the resumer saved by the
/// `co_resume` that entered the coroutine.
#[inline(always)]
pub(super) unsafe fn co_suspend(link: *const usize, transfer: usize) -> usize {
    let out: usize;
    // SAFETY: the caller's contract. When resumed, the block restores sp,
    // x19 and x29 as they were; everything else is declared clobbered.
    unsafe {
        core::arch::asm!(
            "adr x9, 2f",
            "stp x9, x19, [sp, #-32]!",  // CoFrame.resume, CoFrame.x19
            "str x29, [sp, #16]",        // CoFrame.x29
            "mov x1, sp",                // this frame, for the resumer
            "ldr x9, [x2]",              // the resumer's frame
            "ldp x30, x19, [x9]",        // its return address, x19
            "ldr x29, [x9, #16]",        // its x29
            "add sp, x9, #32",
            "ret",                       // to the resumer's `blr`
            "2:",                        // entered by `blr` of co_resume
            bti_c!(),                    // landing pad of the `blr`
            "stp x30, x19, [sp, #-32]!", // the resumer's CoFrame
            "str x29, [sp, #16]",
            "mov x9, sp",
            "str x9, [x1]",              // *link = the resumer's frame
            "ldp x19, x29, [x2, #8]",    // this frame: CoFrame.x19, CoFrame.x29
            "add sp, x2, #32",
            inlateout("x0") transfer => out,
            inlateout("x2") link => _,
            lateout("x20") _, lateout("x21") _, lateout("x22") _, lateout("x23") _,
            lateout("x24") _, lateout("x25") _, lateout("x26") _, lateout("x27") _,
            lateout("x28") _,
            clobber_abi("C"),
        );
    }
    out
}

// `co_is_fresh` reads the resume address as the first word of either frame.
const _: () = {
    assert!(offset_of!(CoFrame, resume) == 0);
    assert!(offset_of!(CoFrame, x19) == 8);
    assert!(offset_of!(CoFrame, x29) == 16);
    assert!(size_of::<CoFrame>() == 32);
};

/// With the `asan` feature, the ending coroutine announces the switch to its
/// link and releases its fake stack (src/arch/asm/asan.rs) in the trampoline,
/// where no instrumented frame of it runs any more.
#[cfg(feature = "asan")]
macro_rules! co_exit_asan {
    () => {
        concat!(
            "mov x0, sp\n",                             // the link
            "bl ugreen_internal_coroutine_asan_exit\n", // x0, x1 = link's stack bounds
            "mov x2, x1\n",                             // size
            "mov x1, x0\n",                             // bottom
            "mov x0, xzr\n",                            // fake_stack_save = NULL
            "bl __sanitizer_start_switch_fiber",
        )
    };
}
#[cfg(not(feature = "asan"))]
macro_rules! co_exit_asan {
    () => {
        ""
    };
}

// Entry of a new coroutine, called by its first `co_resume` (x1 = link,
// x2 = the first frame, directly below the link; x0 = transfer, x30 =
// return address). Saves the resumer's frame and stack pointer like `2:`
// of `co_suspend`, then calls entry(transfer, link) with sp at the link;
// when entry returns, sp is at the link again, and the trampoline returns
// to the resumer for good, passing (0, 0) and the link.
//
// CFI: this frame's caller is the resumer, suspended in its `co_resume`.
// At the first instruction its registers are live (CFA = sp); once they are
// saved, CFA = sp + size_of::<CoFrame>() with x30, x19 and x29 in that
// frame; while sp is at the link, CFA = *link + size_of::<CoFrame>(); once
// they are restored, CFA = sp again. So debuggers and unwinders walk from
// the coroutine's stack into the code that resumed it, at every
// instruction. A signal frame, so unwinders take the return address as it
// is (qemu-user's gdb stub needs that to continue past it).
core::arch::global_asm!(
    ".pushsection .text.ugreen_internal_coroutine_trampoline,\"ax\",%progbits",
    ".globl ugreen_internal_coroutine_trampoline",
    ".hidden ugreen_internal_coroutine_trampoline",
    ".type ugreen_internal_coroutine_trampoline, %function",
    ".p2align 4",
    "ugreen_internal_coroutine_trampoline:",
    ".cfi_startproc simple",
    ".cfi_signal_frame",
    ".cfi_def_cfa sp, 0",
    ".cfi_same_value x30",
    ".cfi_same_value x19",
    ".cfi_same_value x29",
    bti_c!(),                           // landing pad of the `blr`
    "stp x30, x19, [sp, #-{frame}]!",   // the resumer's CoFrame
    ".cfi_def_cfa sp, {frame}",
    ".cfi_offset x30, -{frame}+{resume}",
    ".cfi_offset x19, -{frame}+{x19}",
    "str x29, [sp, #{x29}]",
    ".cfi_offset x29, -{frame}+{x29}",
    "mov x9, sp",
    "str x9, [x1]",                     // *link = the resumer's frame
    "ldr x9, [x2, #{entry}]",           // CoStart.entry
    "add sp, x2, #{start}",             // the link
    // DW_CFA_def_cfa_expression: DW_OP_breg31 (sp) 0; DW_OP_deref; DW_OP_plus_uconst FRAME
    ".cfi_escape 0x0f, 0x05, 0x8f, 0x00, 0x06, 0x23, {frame}",
    "blr x9",                           // entry(x0 = transfer, x1 = link)
    co_exit_asan!(),
    "mov x2, sp",                       // the link, for the resumer
    "ldr x9, [sp]",                     // the resumer's frame
    "ldp x30, x19, [x9]",               // its return address, x19
    "ldr x29, [x9, #{x29}]",            // its x29
    "add sp, x9, #{frame}",
    ".cfi_def_cfa sp, 0",
    ".cfi_same_value x30",
    ".cfi_same_value x19",
    ".cfi_same_value x29",
    "mov x0, xzr",                      // transfer 0: finished
    "mov x1, xzr",                      // no stack pointer to resume
    "ret",                              // to the resumer's `blr`
    ".cfi_endproc",
    ".size ugreen_internal_coroutine_trampoline, . - ugreen_internal_coroutine_trampoline",
    ".popsection",
    frame = const size_of::<CoFrame>(),
    resume = const offset_of!(CoFrame, resume),
    x19 = const offset_of!(CoFrame, x19),
    x29 = const offset_of!(CoFrame, x29),
    start = const size_of::<CoStart>(),
    entry = const offset_of!(CoStart, entry),
);
