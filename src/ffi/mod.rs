//! The C ABI: `libugreen.a` + `include/ugreen.h` (generated from this module
//! by cbindgen; see tests/header.rs).
//!
//! Conventions:
//! * every symbol is `ugreen_<noun>_<verb>`; `_new` pairs with a
//!   NULL-tolerant `_free`;
//! * fallible calls return a [`ugreen_result`]; outputs go through trailing
//!   out-parameters, written only on success;
//! * every pointer argument is checked for NULL;
//! * no Rust panic crosses this boundary: every export catches and returns
//!   [`ugreen_result::UGREEN_RESULT_PANIC`].
#![allow(non_camel_case_types)]

use crate::context::{EntryFn, RawContext};
use crate::error::Error;
use crate::stack::Stack;
use core::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Result codes of the C API. 0 is success.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ugreen_result {
    /// Success.
    UGREEN_RESULT_OK = 0,
    /// A required pointer argument was NULL.
    UGREEN_RESULT_NULL_ARGUMENT = 1,
    /// A size of zero, one that overflows, or one beyond the maximum.
    UGREEN_RESULT_INVALID_SIZE = 2,
    /// The system refused the memory.
    UGREEN_RESULT_OUT_OF_MEMORY = 3,
    /// The object is in the wrong state for the call (e.g. a context made on
    /// a stack that a suspended or running context still uses).
    UGREEN_RESULT_WRONG_STATE = 4,
    /// An internal panic was caught; nothing was changed.
    UGREEN_RESULT_PANIC = 5,
    /// A system call failed (see errno).
    UGREEN_RESULT_SYSTEM_ERROR = 6,
}

use ugreen_result::*;

impl ugreen_result {
    /// Every result code, in order.
    const ALL: [ugreen_result; 7] = [
        UGREEN_RESULT_OK,
        UGREEN_RESULT_NULL_ARGUMENT,
        UGREEN_RESULT_INVALID_SIZE,
        UGREEN_RESULT_OUT_OF_MEMORY,
        UGREEN_RESULT_WRONG_STATE,
        UGREEN_RESULT_PANIC,
        UGREEN_RESULT_SYSTEM_ERROR,
    ];

    /// The code's text: the one of the [`Error`] it stands for, if any.
    const fn message(self) -> &'static CStr {
        match self {
            UGREEN_RESULT_OK => c"ok",
            UGREEN_RESULT_NULL_ARGUMENT => c"a required pointer argument is NULL",
            UGREEN_RESULT_INVALID_SIZE => Error::InvalidSize.as_c_str(),
            UGREEN_RESULT_OUT_OF_MEMORY => Error::OutOfMemory.as_c_str(),
            UGREEN_RESULT_WRONG_STATE => Error::WrongState.as_c_str(),
            UGREEN_RESULT_PANIC => c"internal error: a panic was caught",
            UGREEN_RESULT_SYSTEM_ERROR => Error::System.as_c_str(),
        }
    }

    /// The result whose code is `code`, if any.
    fn from_code(code: c_int) -> Option<ugreen_result> {
        Self::ALL.into_iter().find(|r| *r as c_int == code)
    }
}

// `ALL` lists each code once, at its own index, and nothing after the last.
const _: () = {
    let mut i = 0;
    while i < ugreen_result::ALL.len() {
        assert!(ugreen_result::ALL[i] as usize == i);
        i += 1;
    }
};

impl From<Error> for ugreen_result {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidSize => UGREEN_RESULT_INVALID_SIZE,
            Error::OutOfMemory => UGREEN_RESULT_OUT_OF_MEMORY,
            Error::WrongState => UGREEN_RESULT_WRONG_STATE,
            Error::System => UGREEN_RESULT_SYSTEM_ERROR,
        }
    }
}

/// Runs `f`, turning a panic into `UGREEN_RESULT_PANIC`.
fn guard(f: impl FnOnce() -> ugreen_result) -> ugreen_result {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(UGREEN_RESULT_PANIC)
}

/// A static, NUL-terminated description of a result code (also for codes
/// this version does not know). Never NULL.
#[no_mangle]
pub extern "C" fn ugreen_result_str(result: c_int) -> *const c_char {
    ugreen_result::from_code(result)
        .map_or(c"unknown ugreen result code", ugreen_result::message)
        .as_ptr()
}

/// The library version, e.g. "0.1.0" (the same as the UGREEN_VERSION macros).
#[no_mangle]
pub extern "C" fn ugreen_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The switch backend this library was built with: "asm" or "ucontext".
#[no_mangle]
pub extern "C" fn ugreen_backend() -> *const c_char {
    match crate::BACKEND {
        "asm" => c"asm".as_ptr(),
        _ => c"ucontext".as_ptr(),
    }
}

/// Maps a stack of `pages` usable pages of the system page size, with a
/// PROT_NONE guard page below and above; never executable. Memory is
/// reserved, not committed: a page costs memory once touched.
///
/// Errors: NULL_ARGUMENT if `out` is NULL; INVALID_SIZE for 0 pages or a size
/// that overflows or exceeds 64 GiB; OUT_OF_MEMORY if the mapping fails.
/// `*out` is written only on success.
///
/// # Safety
/// `out` is NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_new(pages: usize, out: *mut *mut Stack) -> ugreen_result {
    guard(|| {
        if out.is_null() {
            return UGREEN_RESULT_NULL_ARGUMENT;
        }
        match Stack::new(pages) {
            Ok(stack) => {
                // SAFETY: `out` is non-NULL and valid per the contract.
                unsafe { out.write(Box::into_raw(Box::new(stack))) };
                UGREEN_RESULT_OK
            }
            Err(e) => e.into(),
        }
    })
}

/// Unmaps a stack. NULL is ignored. A stack that is still in use (a
/// context made on it has not finished: it is suspended or running) is never
/// unmapped under that context: its mapping is leaked instead. Call
/// ugreen_stack_abandon first for a stack whose context will never run
/// again.
///
/// # Safety
/// `stack` is NULL or a pointer from `ugreen_stack_new` not freed before, and
/// no context that may still run uses it.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_free(stack: *mut Stack) {
    if stack.is_null() {
        return;
    }
    // SAFETY: per the contract `stack` came from Box::into_raw in
    // ugreen_stack_new and is freed once. Drop (munmap) cannot panic.
    drop(unsafe { Box::from_raw(stack) });
}

/// Usable size of the stack in bytes; 0 for NULL.
///
/// # Safety
/// `stack` is NULL or a live stack.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_size(stack: *const Stack) -> usize {
    // SAFETY: per the contract.
    unsafe { stack.as_ref() }.map_or(0, Stack::size)
}

/// Usable size of the stack in pages; 0 for NULL.
///
/// # Safety
/// `stack` is NULL or a live stack.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_pages(stack: *const Stack) -> usize {
    // SAFETY: per the contract.
    unsafe { stack.as_ref() }.map_or(0, Stack::pages)
}

/// Whether a context made on the stack has not finished yet; false for NULL.
/// It turns false only once the finished context has left the stack for
/// good, so another thread may free the stack as soon as it reads false.
///
/// # Safety
/// `stack` is NULL or a live stack.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_in_use(stack: *const Stack) -> bool {
    // SAFETY: per the contract.
    unsafe { stack.as_ref() }.is_some_and(Stack::is_in_use)
}

/// How many bytes of the stack were ever used: from its top down to the
/// deepest page touched, in whole pages (0 for a stack never used). Measured
/// by page residency (mincore(2)) when called; nothing is prepared at
/// creation, so it costs nothing until asked. A page swapped out under
/// memory pressure counts as untouched. Use it to size stacks (uWSGI's
/// `--ugreen-stacksize`) from real workloads. It uses little stack: it may
/// be called from a green thread on a one-page stack, the one it measures
/// included.
///
/// Errors: NULL_ARGUMENT if `stack` or `out` is NULL; SYSTEM_ERROR if
/// mincore fails. `*out` is written only on success.
///
/// # Safety
/// `stack` is NULL or a live stack; `out` is NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_high_water(
    stack: *const Stack,
    out: *mut usize,
) -> ugreen_result {
    guard(|| {
        if stack.is_null() || out.is_null() {
            return UGREEN_RESULT_NULL_ARGUMENT;
        }
        // SAFETY: both non-NULL and valid per the contract.
        match unsafe { (*stack).try_high_water() } {
            Ok(bytes) => {
                // SAFETY: as above.
                unsafe { out.write(bytes) };
                UGREEN_RESULT_OK
            }
            Err(_) => UGREEN_RESULT_SYSTEM_ERROR,
        }
    })
}

/// Gives the pages of `stack` below its top `keep_bytes` (rounded up to
/// whole pages) back to the system: they stop counting in the resident
/// memory and read as zero when touched again (one page fault each). The top
/// `keep_bytes` stay as they are. One madvise(MADV_DONTNEED) system call, or
/// none when `keep_bytes` covers the whole stack. For long-lived stacks that
/// a deep call touched once (e.g. a server's per-core stacks after a burst).
///
/// Errors: NULL_ARGUMENT; WRONG_STATE while a context made on the stack has
/// not finished (nothing is released); SYSTEM_ERROR if the kernel refuses
/// (e.g. locked pages; nothing is released).
///
/// # Safety
/// `stack` is NULL or a live stack not used concurrently.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_release_pages(
    stack: *mut Stack,
    keep_bytes: usize,
) -> ugreen_result {
    guard(|| {
        // SAFETY: per the contract.
        match unsafe { stack.as_mut() } {
            None => UGREEN_RESULT_NULL_ARGUMENT,
            Some(stack) => match stack.release_pages(keep_bytes) {
                Ok(()) => UGREEN_RESULT_OK,
                Err(e) => e.into(),
            },
        }
    })
}

/// Declares that the context made on `stack`, if any, will never run again,
/// so that a new one can be made on it (ugreen_context_make answers
/// WRONG_STATE until the previous context finished otherwise). Its frames
/// are abandoned as they are. For servers that drop a request whose green
/// thread is still suspended.
///
/// Errors: NULL_ARGUMENT.
///
/// # Safety
/// `stack` is NULL or a live stack; no context suspended on it is ever
/// resumed again unless re-made, and none is running on it.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_abandon(stack: *mut Stack) -> ugreen_result {
    // SAFETY: per the contract.
    match unsafe { stack.as_ref() } {
        None => UGREEN_RESULT_NULL_ARGUMENT,
        Some(stack) => {
            // SAFETY: per the contract.
            unsafe { stack.abandon() };
            UGREEN_RESULT_OK
        }
    }
}

/// Sets the label that diagnostics name the stack by (e.g. "core 17"). The
/// string is copied (at most 63 bytes; invalid UTF-8 is replaced).
///
/// # Safety
/// `stack` is NULL or a live stack not used concurrently; `label` is NULL or
/// a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ugreen_stack_set_label(
    stack: *mut Stack,
    label: *const c_char,
) -> ugreen_result {
    guard(|| {
        if stack.is_null() || label.is_null() {
            return UGREEN_RESULT_NULL_ARGUMENT;
        }
        // SAFETY: both non-NULL and valid per the contract.
        let (stack, label) = unsafe { (&mut *stack, CStr::from_ptr(label)) };
        stack.set_label(&label.to_string_lossy());
        UGREEN_RESULT_OK
    })
}

/// Prepares `ctx` to run `entry(arg)` on `stack` at the next swap into it.
/// When `entry` returns, the stack is free again and control switches to
/// `link` (like `uc_link`), which must be suspended then; with a NULL `link`,
/// a return from `entry` aborts the process with a message.
///
/// Making a context again on a stack whose previous context finished is the
/// normal, cheap path (no system call).
///
/// Errors: NULL_ARGUMENT if `ctx`, `stack` or `entry` is NULL; WRONG_STATE if
/// a context made on `stack` has not finished (it is suspended or running).
/// Nothing is changed on error.
///
/// # Safety
/// `ctx` is valid for writes and does not move while suspended; `stack`
/// outlives the context, and no other thread makes a context on it at the
/// same time; `link` is NULL or a context that is suspended
/// whenever `entry` returns; `entry` must not unwind (C++ exceptions,
/// longjmp out of it). Resume the context on the OS thread that made it,
/// unless its code is written for migration: compilers keep addresses of
/// thread-local data (errno, _Thread_local, pthread_self()) across a swap.
#[no_mangle]
pub unsafe extern "C" fn ugreen_context_make(
    ctx: *mut RawContext,
    stack: *mut Stack,
    entry: Option<unsafe extern "C" fn(arg: *mut c_void)>,
    arg: *mut c_void,
    link: *mut RawContext,
) -> ugreen_result {
    guard(|| {
        let Some(entry) = entry else {
            return UGREEN_RESULT_NULL_ARGUMENT;
        };
        if ctx.is_null() || stack.is_null() {
            return UGREEN_RESULT_NULL_ARGUMENT;
        }
        // SAFETY: a C `void (*)(void *)` called with an extra argument in the
        // next argument register is sound for the C ABIs supported: the
        // callee ignores it. The call is made from assembly.
        let entry: EntryFn =
            unsafe { core::mem::transmute::<unsafe extern "C" fn(*mut c_void), EntryFn>(entry) };
        // SAFETY: pointers checked for NULL; the rest is the caller's contract.
        match unsafe { RawContext::make(ctx, &*stack, entry, arg, link) } {
            Ok(()) => UGREEN_RESULT_OK,
            Err(e) => e.into(),
        }
    })
}

/// Whether a swap into `ctx` is allowed now (it is suspended); false for
/// NULL, a zeroed context, a running or a finished one.
///
/// # Safety
/// `ctx` is NULL or valid for reads.
#[no_mangle]
pub unsafe extern "C" fn ugreen_context_is_suspended(ctx: *const RawContext) -> bool {
    // SAFETY: per the contract.
    unsafe { ctx.as_ref() }.is_some_and(RawContext::is_suspended)
}

#[cfg(not(any(feature = "ucontext", feature = "asan")))]
extern "C" {
    /// Saves the current context into `from` and resumes `to`; returns when
    /// something swaps back into `from`. The hot path: the assembly routine
    /// itself, no wrapper. It saves the callee-saved registers and the FP
    /// control state, never the signal mask.
    ///
    /// Per context: on x86_64 MXCSR (control bits and status flags) and the
    /// x87 control word, on aarch64 FPCR. Per OS thread (shared by every
    /// context of a thread): the signal mask, the x87 status word, aarch64
    /// FPSR, and thread-local data, whose addresses compiled code keeps
    /// across a swap: resume a context on the thread that made it unless
    /// its code is written for migration. Do not swap from a signal handler
    /// (preemption is not supported).
    ///
    /// `to` is marked running (no longer suspended) by the swap, so a second
    /// swap into a running or finished context is caught: if `from` or `to`
    /// is NULL, or `to` is not suspended, the process aborts with a message
    /// on stderr instead of corrupting memory.
    ///
    /// # Safety
    /// `from` stays at its address while suspended; the stack `to` was
    /// suspended on is still mapped.
    pub fn ugreen_context_swap(from: *mut RawContext, to: *mut RawContext);
}

/// The same as the assembly `ugreen_context_swap`, as a Rust wrapper: on
/// swapcontext (the `ucontext` feature) or with AddressSanitizer's fiber
/// annotations around the assembly routine (the `asan` feature). Same name
/// and path in every build, so Rust callers never declare it themselves.
///
/// # Safety
/// As for the assembly version.
///
/// cbindgen:ignore
#[cfg(any(feature = "ucontext", feature = "asan"))]
#[no_mangle]
pub unsafe extern "C" fn ugreen_context_swap(from: *mut RawContext, to: *mut RawContext) {
    // SAFETY: the caller's contract.
    unsafe { crate::arch::switch(from, to, 0) };
}

/// Installs a SIGSEGV/SIGBUS handler that reports an overflow of a ugreen
/// stack with one line on stderr naming the stack's label and size, then
/// runs the handler installed before it (or restores the default action, so
/// the process dies by the signal). Stacks mapped before the call are named
/// too. Any other SIGSEGV/SIGBUS gets the effect the previous action would
/// have given it, as the kernel applies it: a previous handler runs with its
/// sa_mask, SA_NODEFER, SA_RESETHAND and SA_SIGINFO honoured; the default
/// action kills, also for a sent signal (raise, kill); SIG_IGN ignores a sent
/// signal (a fault cannot be ignored). Also gives the calling thread an
/// alternate signal stack. Idempotent.
///
/// Errors: SYSTEM_ERROR if sigaction or sigaltstack fails.
#[no_mangle]
pub extern "C" fn ugreen_overflow_handler_install() -> ugreen_result {
    guard(|| match crate::overflow::install() {
        Ok(()) => UGREEN_RESULT_OK,
        Err(_) => UGREEN_RESULT_SYSTEM_ERROR,
    })
}

/// Gives the calling thread an alternate signal stack of 64 KiB if it has
/// none, so the overflow handler can run on it; an alternate stack the thread
/// already has is kept. The one mapped here is unmapped when the thread
/// exits. Only needed on threads other than the one that called
/// `ugreen_overflow_handler_install`.
#[no_mangle]
pub extern "C" fn ugreen_overflow_thread_init() -> ugreen_result {
    guard(|| match crate::overflow::prepare_thread() {
        Ok(()) => UGREEN_RESULT_OK,
        Err(_) => UGREEN_RESULT_SYSTEM_ERROR,
    })
}

/// Replaces the advice that ends the overflow line (default: "give it a
/// larger stack"), e.g. "raise --ugreen-stacksize". Copied, at most 192
/// bytes.
///
/// # Safety
/// `advice` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ugreen_overflow_set_advice(advice: *const c_char) -> ugreen_result {
    guard(|| {
        if advice.is_null() {
            return UGREEN_RESULT_NULL_ARGUMENT;
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        crate::overflow::set_advice(&unsafe { CStr::from_ptr(advice) }.to_string_lossy());
        UGREEN_RESULT_OK
    })
}
