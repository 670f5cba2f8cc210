//! Fatal-error reporting that is safe in any state: inside a signal handler,
//! on a green stack, or with the heap unusable. Writes with `write(2)` only.
//! Also the fatal entry points that the switch routines and trampolines
//! call by symbol, and the texts that the overflow report names.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Writes the pieces to stderr, unbuffered, ignoring errors.
pub(crate) fn write_stderr(pieces: &[&[u8]]) {
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            // SAFETY: `rest` is a valid readable buffer of `rest.len()` bytes.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                if n < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                return;
            }
            rest = &rest[n as usize..];
        }
    }
}

/// Prints `ugreen: <message>` and aborts the process.
pub(crate) fn fatal(pieces: &[&[u8]]) -> ! {
    write_stderr(&[b"ugreen: "]);
    write_stderr(pieces);
    write_stderr(&[b"\n"]);
    std::process::abort()
}

/// Formats `value` in decimal into `buf`, returning the digits.
pub(crate) fn fmt_usize(value: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut v = value;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// A short UTF-8 text that a signal handler may copy out on one thread while
/// another thread replaces it: atomic bytes, and a length that is 0 while
/// they change. Its owner keeps writers from racing each other (a lock, or
/// `&mut`).
pub(crate) struct SignalText<const N: usize> {
    len: AtomicUsize,
    bytes: [AtomicU8; N],
}

impl<const N: usize> SignalText<N> {
    pub(crate) const fn new() -> Self {
        SignalText {
            len: AtomicUsize::new(0),
            bytes: [const { AtomicU8::new(0) }; N],
        }
    }

    /// Replaces the text with `text`, truncated to `N` bytes at a character
    /// boundary.
    pub(crate) fn set(&self, text: &str) {
        let mut len = text.len().min(N);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        self.len.store(0, Ordering::Release);
        for (slot, &byte) in self.bytes.iter().zip(&text.as_bytes()[..len]) {
            slot.store(byte, Ordering::Relaxed);
        }
        self.len.store(len, Ordering::Release);
    }

    /// Copies the text into `buf` and returns it (empty if none); callable
    /// from a signal handler. A copy taken while a writer runs may mix the
    /// two texts, but reads only bytes that were stored.
    pub(crate) fn copy<'b>(&self, buf: &'b mut [u8; N]) -> &'b [u8] {
        let len = self.len.load(Ordering::Acquire);
        for (byte, slot) in buf.iter_mut().zip(&self.bytes[..len]) {
            *byte = slot.load(Ordering::Relaxed);
        }
        &buf[..len]
    }

    /// The text, borrowed.
    ///
    /// # Safety
    /// No writer runs while the result is in use.
    pub(crate) unsafe fn get(&self) -> &str {
        let len = self.len.load(Ordering::Acquire);
        // SAFETY: the first `len` bytes were stored before `len` was
        // published, and the caller's contract excludes stores to them while
        // they are borrowed; an AtomicU8 has the layout of a u8.
        let bytes = unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), len) };
        // `set` stores whole characters only.
        core::str::from_utf8(bytes).unwrap_or("")
    }
}

/// Called by the switch routine when its arguments are unusable.
#[no_mangle]
pub(crate) extern "C" fn ugreen_internal_swap_misuse(from: *const c_void, to: *const c_void) -> ! {
    use fatal;
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
    fatal(&[b"a context made without a link returned from its entry function; nothing to resume"])
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
    fatal(&[
        b"an exception (or unwind) escaped a context's entry function; entry functions must not unwind",
    ])
}
