//! The switch backend: exactly one module is selected for the target, and
//! every backend offers the same items:
//!
//! * `BACKEND`: its name.
//! * `unsafe fn init_frame(ctx, bottom, top, entry, arg, link, live)`: prepare
//!   `ctx` so that the next swap into it runs `entry(arg, transfer)` on the
//!   stack `[bottom, top)`, then clears `*live` and switches to `link`.
//! * `unsafe fn switch(from, to, transfer) -> usize`: the swap.
//! * `INIT_RESERVE`: bytes below `top` that `init_frame` uses.

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
