//! The raw context: `swapcontext` semantics without the signal mask.

use crate::arch;
use crate::error::Error;
use crate::stack::Stack;
use core::ffi::c_void;
use core::ptr;

pub use crate::arch::{EntryFn, RawContext};

impl Default for RawContext {
    fn default() -> Self {
        Self::new()
    }
}

impl RawContext {
    /// A context that is not suspended: valid as the `from` of a swap.
    pub const fn new() -> RawContext {
        RawContext {
            sp: ptr::null_mut(),
            asan_stack: [ptr::null_mut(); 2],
        }
    }

    /// Whether a swap into this context is allowed now.
    pub fn is_suspended(&self) -> bool {
        !self.sp.is_null()
    }

    /// Prepares `ctx` so that the next swap into it runs `entry(arg, transfer)`
    /// on `stack`. When `entry` returns, the stack is free again and control
    /// switches to `link` (its state must be suspended then); with a NULL
    /// `link` the process aborts with a message instead.
    ///
    /// Making a context on a stack whose previous context finished is the
    /// normal, cheap path (no system call). Fails with
    /// [`Error::WrongState`] while a context made on `stack` has not finished.
    ///
    /// # Safety
    /// `ctx` is valid for writes and stays at its address while suspended;
    /// `stack` outlives every use of the context, and no other thread makes
    /// a context on it at the same time; `link` is NULL or a context
    /// that is suspended whenever `entry` returns; `entry` never unwinds.
    pub unsafe fn make(
        ctx: *mut RawContext,
        stack: &Stack,
        entry: EntryFn,
        arg: *mut c_void,
        link: *mut RawContext,
    ) -> Result<(), Error> {
        let (bottom, top) = stack.begin(arch::INIT_RESERVE)?;
        // SAFETY: `[bottom, top)` is a live mapping whose top is page-aligned,
        // with room for the frame, and now claimed for this context; `live`
        // points into the stack's heap-allocated metadata, which outlives the
        // context; the rest is the caller's contract.
        unsafe {
            arch::init_frame(
                ctx,
                bottom as *mut u8,
                top as *mut u8,
                entry,
                arg,
                link,
                stack.meta().live.as_ptr(),
            );
        }
        Ok(())
    }

    /// Saves the current state into `from` and resumes `to`. Returns when
    /// something swaps back into `from`.
    ///
    /// # Safety
    /// Both point to valid contexts; `to` is suspended (a violation aborts
    /// with a message) and its stack is still mapped; `from` stays at its
    /// address while suspended.
    #[inline]
    pub unsafe fn swap(from: *mut RawContext, to: *mut RawContext) {
        // SAFETY: the caller's contract.
        unsafe { arch::switch(from, to, 0) };
    }

    /// [`RawContext::swap`] passing one word: the resumed side receives
    /// `transfer` as the return value of its own `swap_with` (or as the second
    /// argument of its entry function), and this call returns the word passed
    /// by whoever resumes `from`.
    ///
    /// # Safety
    /// As for [`RawContext::swap`].
    #[inline]
    pub unsafe fn swap_with(from: *mut RawContext, to: *mut RawContext, transfer: usize) -> usize {
        // SAFETY: the caller's contract.
        unsafe { arch::switch(from, to, transfer) }
    }
}
