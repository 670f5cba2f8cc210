use core::ffi::CStr;
use std::fmt;

/// What a fallible ugreen operation reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A size of zero pages, or one whose byte count overflows or exceeds
    /// [`Stack::MAX_BYTES`](crate::Stack::MAX_BYTES).
    InvalidSize,
    /// The operating system refused the memory.
    OutOfMemory,
    /// The object is in the wrong state for the operation, e.g. a context is
    /// made on a stack that a suspended or running context still uses.
    WrongState,
    /// A system call failed on memory the library owns (e.g. `madvise` on a
    /// stack whose pages are locked with `mlock`).
    System,
}

impl Error {
    /// A static, human-readable description: the one text of this error,
    /// also what `ugreen_result_str` returns for its C result code.
    pub const fn as_str(self) -> &'static str {
        match self.as_c_str().to_str() {
            Ok(s) => s,
            Err(_) => unreachable!(),
        }
    }

    /// [`Error::as_str`], NUL-terminated.
    pub(crate) const fn as_c_str(self) -> &'static CStr {
        match self {
            Error::InvalidSize => c"invalid size: zero, overflowing or beyond the maximum",
            Error::OutOfMemory => c"out of memory: the system refused the mapping",
            Error::WrongState => c"wrong state: the stack or context is in use",
            Error::System => c"a system call failed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Error {}
