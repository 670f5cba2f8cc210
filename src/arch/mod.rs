//! The switch backend: exactly one module is selected for the target, and
//! every backend offers the same items:
//!
//! * `BACKEND`: its name.
//! * `unsafe fn init_frame(ctx, bottom, top, entry, arg, link, live)`: prepare
//!   `ctx` so that the next swap into it runs `entry(arg, transfer)` on the
//!   stack `[bottom, top)`, then clears `*live` and switches to `link`.
//! * `unsafe fn switch(from, to, transfer) -> usize`: the swap.
//! * `INIT_RESERVE`: bytes below `top` that `init_frame` uses.
//!
//! and the switch of the safe `Coroutine` (inline at its call sites, no FP
//! control state):
//!
//! * `CoContext`: a coroutine's link, which sits directly above its first
//!   frame; `CO_RESERVE`: the bytes below the link that frame takes.
//! * `unsafe fn co_init(link, bottom, entry) -> sp`: the first frame.
//! * `unsafe fn co_resume(link, sp, transfer) -> (word, sp, link)` and
//!   `unsafe fn co_suspend(link, transfer) -> word`: the two directions.
//! * `unsafe fn co_is_fresh(link, sp)`, `fn co_entered()`.
//!
//! Both creation paths start with `Stack::begin` (room check and in-use
//! claim) and then write their first frame in one step.
//!
//! The layout every backend saves into, [`RawContext`] (`ugreen_context` in
//! C), and the raw entry function type are defined here, below the API that
//! `context.rs` builds on them.

use core::ffi::c_void;

/// The entry function of a raw context: `entry(arg, transfer)`, where `arg`
/// is the pointer given to [`RawContext::make`] and `transfer` the word passed
/// by the first swap into the context (0 from [`RawContext::swap`]).
///
/// A C function `void entry(void *arg)` is called the same way; it ignores
/// the second argument.
pub type EntryFn = unsafe extern "C" fn(arg: *mut c_void, transfer: usize);

/// A saved execution context (`ugreen_context` in C).
///
/// Plain, fixed-size, caller-allocated. A zeroed context is valid as the
/// `from` of a swap: it is where the current thread's state is saved. A
/// context is *suspended* (resumable) from the moment a swap saves into it,
/// or a make prepares it, until a swap resumes it; while it runs, after its
/// entry function returned, and before it is made it is not, and swapping
/// into it aborts the process with a message.
///
/// A context must stay at the same address while it is suspended.
#[repr(C)]
#[derive(Debug)]
pub struct RawContext {
    /// Saved stack pointer while suspended; NULL otherwise.
    pub(crate) sp: *mut c_void,
    /// Used only by a library built for AddressSanitizer (the `asan`
    /// feature): the bounds (lowest address, size) of the stack the context
    /// runs on, which ASan must be told at every switch; {NULL, 0} for a
    /// thread's own stack. Zero them with the rest of the context.
    pub(crate) asan_stack: [*mut c_void; 2],
}

/// The entry function of a coroutine: `entry(transfer, link)`, with the
/// word of the first resume and the coroutine's link (`co_init`).
pub(crate) type CoEntryFn = unsafe extern "C" fn(transfer: usize, link: *mut core::ffi::c_void);

#[cfg(not(feature = "ucontext"))]
mod asm;
#[cfg(not(feature = "ucontext"))]
pub(crate) use asm::*;

#[cfg(all(
    not(feature = "ucontext"),
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
compile_error!(
    "ugreen has no context-switch assembly for this architecture; \
     enable the `ucontext` feature to use getcontext/makecontext/swapcontext"
);

#[cfg(all(feature = "ucontext", feature = "asan"))]
compile_error!(
    "the `asan` feature annotates the assembly switch; it cannot be combined with `ucontext`"
);

#[cfg(all(feature = "ucontext", target_env = "musl"))]
compile_error!(
    "the `ucontext` feature needs getcontext/makecontext/swapcontext, which musl's libc lacks"
);

#[cfg(feature = "ucontext")]
mod ucontext;
#[cfg(feature = "ucontext")]
pub(crate) use ucontext::*;
