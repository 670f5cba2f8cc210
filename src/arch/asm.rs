//! The assembly backend (asm/switch_*.S), shared by every architecture that
//! has one. The per-architecture module (`frame`) mirrors the saved frame.

use super::frame::{self, SwitchFrame};
use crate::context::{EntryFn, RawContext};
use core::ffi::c_void;
use core::mem::size_of;

pub(crate) const BACKEND: &str = "asm";

#[cfg(feature = "asan")]
#[path = "asan.rs"]
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
    /// Stores the current FP control state into the FP slot of `frame`.
    fn ugreen_internal_fp_control(frame: *mut SwitchFrame);
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
        frame::Start {
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
        // Stored straight into the frame: reading the value back into a
        // register first would stall on the stmxcsr store (x86_64).
        ugreen_internal_fp_control(sp);
        (*ctx).sp = sp.cast();
    }
}
