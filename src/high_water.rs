//! Page residency of a stack: how deep it was used (measured by which pages
//! the kernel backs) and giving unused pages back.
//!
//! A stack is an anonymous mapping whose pages cost nothing until touched,
//! and a stack grows down from its top: the lowest page the kernel has ever
//! backed is the deepest point reached. `mincore(2)` reports which pages are
//! backed, so the high-water mark needs no preparation when the stack is
//! created (no canary fill, which would touch and commit every page) and
//! costs one system call per 128 pages of stack when asked for.
//!
//! Properties of the measure:
//! * page granularity: the result is a multiple of the page size, rounded up
//!   from the true depth;
//! * "ever": a page stays counted after the context that touched it
//!   finished, across contexts made on the same stack, until
//!   [`Stack::release_pages`] gives it back;
//! * a page the kernel swapped out counts as untouched until touched again
//!   (an under-estimate only under memory pressure with swap);
//! * stacks are mapped with `MADV_NOHUGEPAGE` so that transparent huge pages
//!   cannot back (and mark) more than the pages actually used.
//!
//! It may be called from a green thread on the very stack it measures, and
//! that stack may be a single page: the residency buffer is small (128
//! bytes), so a query costs one system call per 128 pages (512 KiB with 4
//! KiB pages) until it finds the deepest touched page.

use crate::error::Error;
use crate::stack::{page_size, Stack};
use std::io;

/// Pages asked about per `mincore` call: also the bytes of the residency
/// buffer on the caller's stack, which may be a one-page green stack.
const CHUNK: usize = 128;

impl Stack {
    /// The number of bytes of this stack that were ever used, counted from
    /// its top down to the deepest page touched: a multiple of the page
    /// size, 0 for a stack never used. It counts every context made on the
    /// stack so far, not only the current one (since the last
    /// [`Stack::release_pages`]). Use it to size stacks from real workloads.
    ///
    /// Measured by page residency (`mincore(2)`) when called: nothing is
    /// prepared when the stack is created, and each call makes one system
    /// call per 128 pages until it finds the deepest touched page. Uses
    /// little stack: it may run on a one-page green stack, even the one it
    /// measures. A page
    /// the kernel swapped out counts as untouched until it is touched again.
    /// If the kernel refuses the query, returns [`Stack::size`]: the mark is
    /// never under-reported because of an error.
    pub fn high_water(&self) -> usize {
        self.try_high_water().unwrap_or(self.size())
    }

    /// [`Stack::high_water`], reporting a failed `mincore`.
    pub(crate) fn try_high_water(&self) -> io::Result<usize> {
        let page = page_size();
        let bottom = self.bottom() as usize;
        let pages = self.pages();
        let mut residency = [0u8; CHUNK];
        let mut first = 0;
        while first < pages {
            let n = (pages - first).min(CHUNK);
            let addr = bottom + first * page;
            // SAFETY: [addr, addr + n pages) lies inside this stack's usable
            // range, which is mapped; `residency` has room for n entries.
            let rc = unsafe {
                libc::mincore(addr as *mut libc::c_void, n * page, residency.as_mut_ptr())
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(i) = residency[..n].iter().position(|r| r & 1 != 0) {
                return Ok((pages - first - i) * page);
            }
            first += n;
        }
        Ok(0)
    }

    /// Gives the pages of this stack below its top `keep` bytes (rounded up
    /// to whole pages) back to the system: they stop counting in the
    /// process's resident memory, and read as zero when touched again
    /// (which costs a page fault each). The top `keep` bytes stay as they
    /// are. Keeps a long-lived stack that one deep call touched from
    /// holding that memory for good, e.g. a server's per-connection stacks
    /// after a burst of load.
    ///
    /// One `madvise(MADV_DONTNEED)` system call when there is something
    /// below `keep`; none when `keep` covers the whole stack.
    ///
    /// Errors: [`Error::WrongState`] while a context made on the stack has
    /// not finished (its frames would be lost); [`Error::System`] if the
    /// kernel refuses (e.g. pages locked with `mlock`), in which case the
    /// pages stay as they were.
    pub fn release_pages(&mut self, keep: usize) -> Result<(), Error> {
        if self.is_in_use() {
            return Err(Error::WrongState);
        }
        let page = page_size();
        let keep_pages = keep / page + usize::from(keep % page != 0);
        let pages = self.pages();
        if keep_pages >= pages {
            return Ok(());
        }
        let len = (pages - keep_pages) * page;
        // SAFETY: [bottom, bottom + len) lies inside the usable range of this
        // stack, a private anonymous mapping; no context lives on it (checked
        // above) and `&mut self` excludes making one meanwhile, so nothing
        // reads what the pages held.
        let rc = unsafe { libc::madvise(self.bottom().cast(), len, libc::MADV_DONTNEED) };
        if rc != 0 {
            return Err(Error::System);
        }
        Ok(())
    }
}
