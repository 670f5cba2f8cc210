//! Fatal-error reporting that is safe in any state: inside a signal handler,
//! on a green stack, or with the heap unusable. Writes with `write(2)` only.
//! Also the fatal entry points that the switch routines and trampolines
//! call by symbol.

use core::ffi::c_void;

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
