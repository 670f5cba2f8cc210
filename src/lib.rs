//! ugreen: fast user-space context switching for green threads.
//!
//! * [`Stack`]: a guarded, never-executable stack (one `mmap`, sized in pages,
//!   reused for any number of successive contexts).
//! * [`Coroutine`]: the safe API. `resume(input)` runs the coroutine until it
//!   calls [`Yielder::suspend`] or returns; panics inside propagate to the
//!   resumer; dropping a suspended coroutine unwinds its stack.
//! * [`RawContext`]: the `unsafe` layer with `swapcontext` semantics (make a
//!   context on a stack with an entry function and a link, swap between
//!   contexts), the same that the C ABI (`include/ugreen.h`) exports.
//! * [`overflow`]: an opt-in SIGSEGV/SIGBUS handler that names the green
//!   thread whose stack overflowed.
//!
//! The switch is a hand-written assembly routine per architecture (x86_64
//! System V, aarch64 AAPCS64) that saves exactly the callee-saved registers
//! and the FP control state of the ABI, and never the signal mask: a green
//! thread that changes the signal mask changes it for the whole OS thread.
//! With the `ucontext` feature the same API runs on
//! `getcontext`/`makecontext`/`swapcontext` instead.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod arch;
mod context;
mod coroutine;
mod diag;
mod error;
pub mod ffi;
mod high_water;
pub mod overflow;
mod registry;
mod stack;
mod valgrind;

pub use context::{EntryFn, RawContext};
pub use coroutine::{Coroutine, CoroutineResult, Yielder};
pub use error::Error;
pub use stack::{page_size, Stack};

/// The backend this build switches with: `"asm"` or `"ucontext"`.
pub const BACKEND: &str = arch::BACKEND;
