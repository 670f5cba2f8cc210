//! Fatal-error reporting that is safe in any state: inside a signal handler,
//! on a green stack, or with the heap unusable. Writes with `write(2)` only.

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
