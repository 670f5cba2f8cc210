//! The assembly backend (asm/switch_*.S), shared by every architecture that
//! has one. The per-architecture module (`frame`) mirrors the saved frame
//! and holds the inline coroutine switch; `asan` adds AddressSanitizer's
//! annotations.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "aarch64")]
use aarch64 as frame;
#[cfg(target_arch = "x86_64")]
mod x86_64;
#[cfg(target_arch = "x86_64")]
use x86_64 as frame;

use super::{EntryFn, RawContext};
use core::ffi::c_void;
use core::mem::size_of;
use frame::SwitchFrame;

pub(crate) const BACKEND: &str = "asm";

#[cfg(feature = "asan")]
mod asan;

/// Bytes below the top of the stack that a new context's frame occupies
/// (with the `asan` feature, also the block holding its real entry).
#[cfg(not(feature = "asan"))]
pub(crate) const INIT_RESERVE: usize = size_of::<SwitchFrame>();
#[cfg(feature = "asan")]
pub(crate) const INIT_RESERVE: usize = size_of::<SwitchFrame>() + asan::START_RESERVE;

extern "C" {
    /// `ugreen_context_swap` with its transfer word (asm/switch_*.S).
    fn ugreen_internal_switch(from: *mut RawContext, to: *mut RawContext, transfer: usize)
        -> usize;
    fn ugreen_internal_trampoline();
    fn ugreen_internal_trampoline_nolink();
    #[cfg(target_arch = "aarch64")]
    fn ugreen_internal_sign_return(addr: usize, sp: usize) -> usize;
}

/// Saves the current context into `from` and resumes `to`, passing `transfer`.
/// Returns the word passed by whoever resumes `from` later.
///
/// # Safety
/// `from` and `to` point to valid contexts; `to` is suspended (checked: a
/// violation aborts with a message); the stack `to` was suspended on is
/// still mapped and not used by anyone else.
#[inline(always)]
pub(crate) unsafe fn switch(from: *mut RawContext, to: *mut RawContext, transfer: usize) -> usize {
    // SAFETY: forwarded contract of this function; the routine follows the C
    // ABI and preserves every callee-saved register of the ABI.
    #[cfg(not(feature = "asan"))]
    unsafe {
        ugreen_internal_switch(from, to, transfer)
    }
    // SAFETY: as above; the wrapper only adds the ASan annotations.
    #[cfg(feature = "asan")]
    unsafe {
        asan::switch(from, to, transfer, ugreen_internal_switch)
    }
}

/// What the trampoline finds in callee-saved registers on first entry
/// (each architecture's `initial` puts them in its frame).
struct Start {
    entry: usize,
    arg: usize,
    link: usize,
    live: usize,
}

/// Prepares `ctx` to run `entry(arg, transfer)` on the stack below `top`.
///
/// # Safety
/// `top` is 16-byte aligned, and `[top - INIT_RESERVE, top)` plus the space
/// the entry function needs below it is writable memory owned by the new
/// context; `link` is NULL or valid whenever `entry` returns; `live` is valid
/// until `entry` returns.
pub(crate) unsafe fn init_frame(
    ctx: *mut RawContext,
    _bottom: *mut u8,
    top: *mut u8,
    entry: EntryFn,
    arg: *mut c_void,
    link: *mut RawContext,
    live: *mut usize,
) {
    debug_assert_eq!(top as usize % 16, 0);
    // SAFETY: the caller's contract covers the reserve for the entry block.
    #[cfg(feature = "asan")]
    let (entry, arg) = unsafe { asan::prepare(ctx, _bottom, top, entry, arg) };
    let trampoline = if link.is_null() {
        ugreen_internal_trampoline_nolink as *const () as usize
    } else {
        ugreen_internal_trampoline as *const () as usize
    };
    // Only aarch64 signs return addresses (PAC); elsewhere the call is
    // skipped on this hot path.
    #[cfg(target_arch = "aarch64")]
    // SAFETY: a leaf routine with no preconditions.
    let resume_at = unsafe { ugreen_internal_sign_return(trampoline, top as usize) };
    #[cfg(not(target_arch = "aarch64"))]
    let resume_at = trampoline;
    let frame = frame::initial(
        Start {
            entry: entry as *const () as usize,
            arg: arg as usize,
            link: link as usize,
            live: live as usize,
        },
        0, // the FP control slot, written below
        resume_at,
    );
    // SAFETY: the caller guarantees the reserve below `top` is writable and
    // 16-byte aligned, which satisfies the frame's alignment.
    unsafe {
        let sp = top.sub(INIT_RESERVE).cast::<SwitchFrame>();
        sp.write(frame);
        frame::store_fp_control(sp);
        (*ctx).sp = sp.cast();
    }
}

// ------------------------------------------------- the coroutine switch

/// The link of a coroutine: where its resumer's stack pointer is saved
/// while the coroutine runs (its first word, which the switch and the
/// trampoline read). It lies on the coroutine's stack directly above the
/// coroutine's first frame; its address is what the entry function
/// receives. The coroutine's own saved stack pointer is kept by whoever
/// resumes it (returned by `co_resume`).
#[repr(C)]
pub(crate) struct CoContext {
    sp: usize,
    /// The bounds of the stack the resumer runs on (see asan.rs).
    #[cfg(feature = "asan")]
    bounds: core::cell::Cell<(usize, usize)>,
    /// The bounds of the coroutine's stack.
    #[cfg(feature = "asan")]
    co_bounds: core::cell::Cell<(usize, usize)>,
}

/// The first frame of a coroutine that has never run, directly below its
/// link: the first `co_resume` calls the trampoline (`resume`), which calls
/// `entry` with the stack pointer at the link.
#[repr(C)]
struct CoStart {
    /// The trampoline (what `co_is_fresh` looks for).
    resume: usize,
    entry: usize,
}

/// Bytes below its link that a new coroutine's first frame occupies. The
/// link is 16-aligned and so is this, so the trampoline calls `entry` with
/// the stack pointer aligned as the ABI wants.
pub(crate) const CO_RESERVE: usize = size_of::<CoStart>();

const _: () = {
    assert!(core::mem::offset_of!(CoStart, resume) == 0);
    assert!(core::mem::offset_of!(CoStart, entry) == 8);
    assert!(CO_RESERVE == 16);
};

/// The address of the coroutine trampoline (in the architecture's module).
/// Declared inside a function so that cbindgen, which lists the crate's
/// `extern "C"` blocks in include/ugreen.h, does not see it.
#[inline(always)]
fn co_trampoline() -> usize {
    extern "C" {
        fn ugreen_internal_coroutine_trampoline();
    }
    ugreen_internal_coroutine_trampoline as *const () as usize
}

/// Prepares a coroutine that runs `entry(transfer, link)` on the stack
/// `[bottom, link)` when first resumed; returns its saved stack pointer.
/// The link sits directly above the coroutine's first frame, which is how
/// the trampoline finds it again when `entry` returns: control then goes
/// back to the resumer saved in `link` for good (its `co_resume` returns
/// (0, 0)).
///
/// # Safety
/// `link` is 16-byte aligned, `[link - CO_RESERVE, link)` plus the space the
/// entry function needs below it is writable memory owned by the new
/// coroutine; `link` is valid for writes, stays where it is until `entry`
/// returns, and is the `link` of every `co_resume` of the coroutine.
#[inline]
pub(crate) unsafe fn co_init(
    link: *mut CoContext,
    _bottom: *mut u8,
    entry: super::CoEntryFn,
) -> usize {
    debug_assert_eq!(link as usize % 16, 0);
    #[cfg(feature = "asan")]
    // SAFETY: `[bottom, link)` is the new coroutine's stack (the caller's
    // contract).
    unsafe {
        asan::co_prepare(link, _bottom, link.cast())
    };
    let sp = link as usize - CO_RESERVE;
    // SAFETY: the frame lies in the reserve below `link`, which the caller
    // guarantees writable.
    unsafe {
        (sp as *mut CoStart).write(CoStart {
            resume: co_trampoline(),
            entry: entry as usize,
        })
    };
    sp
}

/// Resumes the coroutine suspended at `sp` (from `co_init` or the previous
/// `co_resume`), passing `transfer`; `link` receives the resumer's state.
/// Returns the word the coroutine passes to `co_suspend` and its new saved
/// stack pointer, or (0, 0) once its entry function has returned; and the
/// link again (from a register the switch sets, so the caller need not keep
/// it across the switch).
///
/// # Safety
/// `sp` is a suspended coroutine's on a stack that is still mapped; `link`
/// is the link given to `co_init` and stays at its address until this
/// returns.
#[inline(always)]
pub(crate) unsafe fn co_resume(
    link: *mut CoContext,
    sp: usize,
    transfer: usize,
) -> (usize, usize, *mut CoContext) {
    // SAFETY: the caller's contract.
    #[cfg(not(feature = "asan"))]
    let (word, sp, link) =
        unsafe { frame::co_resume(core::ptr::addr_of_mut!((*link).sp), sp, transfer) };
    // SAFETY: as above; the annotations only tell ASan about the switch.
    #[cfg(feature = "asan")]
    let (word, sp, link) = unsafe {
        asan::around_switch(&(*link).bounds, &(*link).co_bounds, || {
            frame::co_resume(core::ptr::addr_of_mut!((*link).sp), sp, transfer)
        })
    };
    (word, sp, link.cast())
}

/// Suspends the running coroutine and returns to its resumer, saved in
/// `link`, passing `transfer` (not 0); returns the word passed by the next
/// `co_resume`.
///
/// # Safety
/// Runs on the coroutine's stack; `link` holds the resumer that entered it.
#[inline(always)]
pub(crate) unsafe fn co_suspend(link: *mut CoContext, transfer: usize) -> usize {
    // SAFETY: the caller's contract.
    #[cfg(not(feature = "asan"))]
    unsafe {
        frame::co_suspend(core::ptr::addr_of!((*link).sp), transfer)
    }
    // SAFETY: as above; the annotations only tell ASan about the switch.
    #[cfg(feature = "asan")]
    unsafe {
        asan::around_switch(&(*link).co_bounds, &(*link).bounds, || {
            frame::co_suspend(core::ptr::addr_of!((*link).sp), transfer)
        })
    }
}

/// Whether the coroutine suspended at `sp` has never run.
///
/// # Safety
/// `sp` is a suspended coroutine's (from `co_init` or `co_resume`) on a
/// stack that is still mapped; `link` is its link.
#[inline]
pub(crate) unsafe fn co_is_fresh(_link: *const CoContext, sp: usize) -> bool {
    // SAFETY: the caller's contract: the frame of a suspended coroutine
    // lies at `sp`, a `CoStart` or the architecture's `CoFrame`, and both
    // begin with the address it resumes at.
    unsafe { *(sp as *const usize) == co_trampoline() }
}

/// Called first thing by a coroutine's entry function.
#[inline(always)]
pub(crate) fn co_entered() {
    #[cfg(feature = "asan")]
    asan::first_entry();
}
