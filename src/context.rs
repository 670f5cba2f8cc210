//! The raw context: `swapcontext` semantics without the signal mask.

use crate::arch;
use crate::error::Error;
use crate::stack::Stack;
use core::ffi::c_void;
use core::ptr;

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
        stack.claim()?;
        // SAFETY: `stack` is a live mapping whose top is page-aligned and
        // which is now claimed for this context; `live` points into the
        // stack's heap-allocated metadata, which outlives the context; the
        // rest is the caller's contract.
        unsafe {
            arch::init_frame(
                ctx,
                stack.bottom(),
                stack.top(),
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

/// Called by the switch routine when its arguments are unusable.
#[no_mangle]
pub(crate) extern "C" fn ugreen_internal_swap_misuse(
    from: *const RawContext,
    to: *const RawContext,
) -> ! {
    use crate::diag::fatal;
    if to.is_null() {
        fatal(&[b"ugreen_context_swap: `to` is NULL"]);
    }
    if from.is_null() {
        // Also reached when a finished context's link cannot be resumed.
        fatal(&[b"ugreen_context_swap: `from` is NULL, or the link of a finished context is not suspended"]);
    }
    fatal(&[b"ugreen_context_swap: the target context is not suspended (it is running, has finished, or was never made)"])
}

/// Called by the trampoline when an entry function without a link returns.
#[no_mangle]
pub(crate) extern "C" fn ugreen_internal_no_link() -> ! {
    crate::diag::fatal(&[
        b"a context made without a link returned from its entry function; nothing to resume",
    ])
}

/// The personality routine of the entry trampolines (their unwind
/// information names it): an exception, or a forced unwind, that leaves a
/// context's entry function reaches it in the unwinder's first phase and
/// ends the process with a message. Without it, the trampoline's unwind
/// information, which continues into the resumer so that backtraces walk out
/// of a green thread, would let the resumer catch the exception and run on
/// while its own stack is still marked in use. Backtraces do not call
/// personality routines, so they are unaffected.
///
/// cbindgen:ignore
#[no_mangle]
pub(crate) extern "C" fn ugreen_internal_entry_personality(
    _version: core::ffi::c_int,
    _actions: core::ffi::c_int,
    _exception_class: u64,
    _exception: *mut c_void,
    _context: *mut c_void,
) -> core::ffi::c_int {
    crate::diag::fatal(&[
        b"an exception (or unwind) escaped a context's entry function; entry functions must not unwind",
    ])
}
