//! Guarded stacks: one anonymous mapping per stack, never executable.
//!
//! ```text
//!   low addresses                                         high addresses
//!   | guard page | usable pages ...                     | guard page |
//!   ^ base       ^ bottom()                     top() ^
//! ```
//!
//! The mapping is reserved with `MAP_NORESERVE`: pages cost memory only once
//! touched. Both guard pages are `PROT_NONE`, so running off either end of the
//! stack faults at once instead of corrupting a neighbour.
//!
//! Outward seam: the only calls this module makes beyond the system are the
//! two announcements of a stack's life, [`Stack::announce_mapped`] and
//! [`Stack::announce_unmapped`], to the leaf modules that listen: the
//! registry the overflow handler reads (src/registry.rs) and valgrind's
//! stack registration (src/valgrind.rs). Neither knows this module.
//!
//! A stack is never unmapped under a context that may still run on it or be
//! suspended on it: dropping a [`Stack`] while a context made on it has not
//! finished (e.g. after `mem::forget` of a `Coroutine` that borrowed it)
//! leaks the mapping instead.

use crate::diag::SignalText;
use crate::error::Error;
use crate::{registry, valgrind};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The system page size in bytes (`sysconf(_SC_PAGESIZE)`).
#[inline]
pub fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as usize } else { 4096 };
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// The longest label kept for a stack (bytes, UTF-8).
pub const LABEL_MAX: usize = 63;

/// Bookkeeping that must not move while contexts run on the stack: the
/// assembly trampoline clears `live` once a finished context has left the
/// stack, and the overflow handler reads the label from a signal handler.
/// Freed together with the mapping, so leaked with it.
pub(crate) struct StackMeta {
    /// Non-zero while a context made on this stack has not finished.
    pub(crate) live: AtomicUsize,
    /// The overflow handler may copy it on one thread while another
    /// relabels the stack.
    pub(crate) label: SignalText<LABEL_MAX>,
}

/// A guarded stack for green threads: one anonymous mapping whose usable
/// range (at least one page, page-aligned at both ends, readable and
/// writable, never executable) has a PROT_NONE guard page directly below and
/// above. Code that runs on it may rely on these invariants.
pub struct Stack {
    /// The lowest usable address (the mapping starts a page below).
    bottom: NonNull<u8>,
    map_len: usize,
    usable: usize,
    /// From `Box::into_raw`; freed with the mapping.
    meta: NonNull<StackMeta>,
    /// Where the registry records this stack.
    registry: registry::Handle,
    /// The id valgrind gave the stack (0 outside valgrind).
    valgrind_id: usize,
}

impl Stack {
    /// The largest usable size accepted (64 GiB): anything above is taken as
    /// an error in the caller's arithmetic, not as a stack.
    pub const MAX_BYTES: usize = 1 << 36;

    /// Maps a stack of `pages` usable pages of the system page size (uWSGI's
    /// unit), plus one guard page below and one above.
    ///
    /// Errors: [`Error::InvalidSize`] for 0 pages, a size that overflows or
    /// exceeds [`Stack::MAX_BYTES`]; [`Error::OutOfMemory`] when the system
    /// refuses the mapping.
    pub fn new(pages: usize) -> Result<Stack, Error> {
        let page = page_size();
        let usable = pages.checked_mul(page).ok_or(Error::InvalidSize)?;
        if pages == 0 || usable > Self::MAX_BYTES {
            return Err(Error::InvalidSize);
        }
        let map_len = usable + 2 * page;
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // chooses; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::OutOfMemory);
        }
        // SAFETY: [base + page, base + page + usable) lies inside the mapping
        // just created; the guard pages at both ends stay PROT_NONE.
        let rc = unsafe {
            libc::mprotect(
                base.cast::<u8>().add(page).cast(),
                usable,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            // SAFETY: unmapping exactly the mapping created above.
            unsafe { libc::munmap(base, map_len) };
            return Err(Error::OutOfMemory);
        }
        // Page-granular residency for Stack::high_water: no transparent huge
        // page may back more than the pages touched. Advisory; a kernel
        // without THP refuses it, which changes nothing.
        // SAFETY: advice on the mapping created above; no data changes.
        unsafe { libc::madvise(base, map_len, libc::MADV_NOHUGEPAGE) };
        let meta = Box::into_raw(Box::new(StackMeta {
            live: AtomicUsize::new(0),
            label: SignalText::new(),
        }));
        // SAFETY: mmap succeeded, so base is not NULL.
        let base = unsafe { NonNull::new_unchecked(base.cast::<u8>()) };
        // SAFETY: Box::into_raw never returns NULL.
        let meta = unsafe { NonNull::new_unchecked(meta) };
        let (registry, valgrind_id) = Stack::announce_mapped(base, usable, meta);
        Ok(Stack {
            // SAFETY: inside the mapping, so not NULL.
            bottom: unsafe { NonNull::new_unchecked(base.as_ptr().add(page)) },
            map_len,
            usable,
            meta,
            registry,
            valgrind_id,
        })
    }

    /// The seam, on mapping: records the stack for the overflow handler and
    /// registers it with valgrind.
    fn announce_mapped(
        base: NonNull<u8>,
        usable: usize,
        meta: NonNull<StackMeta>,
    ) -> (registry::Handle, usize) {
        let guard = base.as_ptr() as usize;
        let bottom = guard + page_size();
        let handle = registry::insert(registry::Record {
            guard,
            pages: usable / page_size(),
            owner: meta.as_ptr() as *const (),
        });
        (handle, valgrind::stack_register(bottom, bottom + usable))
    }

    /// The seam, on unmapping: the reverse of `announce_mapped`.
    fn announce_unmapped(&self) {
        valgrind::stack_deregister(self.valgrind_id);
        registry::remove(self.registry);
    }

    /// Maps a stack of at least `bytes` usable bytes (rounded up to pages).
    pub fn with_bytes(bytes: usize) -> Result<Stack, Error> {
        let page = page_size();
        let pages = bytes.checked_add(page - 1).ok_or(Error::InvalidSize)? / page;
        Stack::new(pages)
    }

    /// Usable size in bytes.
    #[inline]
    pub fn size(&self) -> usize {
        self.usable
    }

    /// Usable size in pages of [`page_size`].
    pub fn pages(&self) -> usize {
        self.usable / page_size()
    }

    /// Lowest usable address (just above the lower guard page).
    #[inline]
    pub fn bottom(&self) -> *mut u8 {
        self.bottom.as_ptr()
    }

    /// One past the highest usable address (the upper guard page starts here).
    #[inline]
    pub fn top(&self) -> *mut u8 {
        // SAFETY: bottom + usable is the end of the usable range, inside the mapping.
        unsafe { self.bottom().add(self.usable) }
    }

    /// The lower guard page: `[start, end)`.
    pub fn guard(&self) -> (usize, usize) {
        let start = self.base();
        (start, start + page_size())
    }

    /// The whole mapping, guard pages included: `[start, end)`.
    pub fn mapping(&self) -> (usize, usize) {
        let start = self.base();
        (start, start + self.map_len)
    }

    /// The start of the mapping (the lower guard page).
    fn base(&self) -> usize {
        self.bottom.as_ptr() as usize - page_size()
    }

    /// Whether a context made on this stack has not finished yet.
    pub fn is_in_use(&self) -> bool {
        self.meta().live.load(Ordering::Acquire) != 0
    }

    /// Sets the label named in diagnostics (e.g. `"core 17"`); truncated to
    /// `LABEL_MAX` (63) bytes at a character boundary.
    pub fn set_label(&mut self, label: &str) {
        self.meta().label.set(label);
    }

    /// The label set with [`Stack::set_label`] (empty by default).
    pub fn label(&self) -> &str {
        // SAFETY: the only writer, `set_label`, takes `&mut self`, so none
        // runs while `self` is borrowed.
        unsafe { self.meta().label.get() }
    }

    #[inline]
    pub(crate) fn meta(&self) -> &StackMeta {
        // SAFETY: `meta` is freed only by Drop, together with the mapping.
        unsafe { self.meta.as_ref() }
    }

    /// Declares that the context made on this stack, if any, will never run
    /// again, so a new one can be made on it. Its frames are abandoned as
    /// they are: no destructor on it runs.
    ///
    /// # Safety
    /// No context suspended on this stack is ever resumed again (re-make it
    /// first), and none is running on it.
    pub unsafe fn abandon(&self) {
        self.release();
    }

    /// Starts a new context on this stack: the one step that every
    /// creation path ([`RawContext::make`](crate::RawContext::make), and
    /// through it `ugreen_context_make`, and the `Coroutine` constructors)
    /// takes before it lays out its first frame. Checks that `reserve`
    /// bytes fit below the top ([`Error::InvalidSize`] if not), then marks
    /// the stack in use ([`Error::WrongState`] if a context made on it has
    /// not finished). Returns `(bottom, top)` of the usable range.
    ///
    /// The mark is a plain load and store, not a compare-exchange: a locked
    /// instruction costs ~4.6 ns of the ~20 ns a creation takes. It catches
    /// making a context on a stack that is still in use; making two contexts
    /// on one stack from two threads at the same time is outside the
    /// contract of `RawContext::make` (the safe API holds the stack
    /// exclusively).
    #[inline]
    pub(crate) fn begin(&self, reserve: usize) -> Result<(usize, usize), Error> {
        if reserve > self.usable {
            return Err(Error::InvalidSize);
        }
        let meta = self.meta();
        if meta.live.load(Ordering::Acquire) != 0 {
            return Err(Error::WrongState);
        }
        meta.live.store(1, Ordering::Relaxed);
        let bottom = self.bottom.as_ptr() as usize;
        Ok((bottom, bottom + self.usable))
    }

    /// Marks the stack free again.
    #[inline]
    pub(crate) fn release(&self) {
        self.meta().live.store(0, Ordering::Release);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.is_in_use() {
            // A context made on this stack has not finished: it may be
            // suspended on it (a `Coroutine` that was `mem::forget`-ten, a
            // thread that still reads one of its locals) or running on it.
            // Unmapping would pull the memory from under it; the mapping,
            // its registrations and its metadata are leaked instead.
            return;
        }
        self.announce_unmapped();
        // SAFETY: unmapping exactly the mapping this Stack owns: no context
        // made on it is unfinished (checked above), and the trampoline marks
        // a finished context only once it has left the stack for good.
        unsafe { libc::munmap(self.base() as *mut libc::c_void, self.map_len) };
        // SAFETY: from Box::into_raw in Stack::new, freed only here; the
        // registry no longer points to it.
        drop(unsafe { Box::from_raw(self.meta.as_ptr()) });
    }
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("bottom", &self.bottom())
            .field("size", &self.usable)
            .field("label", &self.label())
            .field("in_use", &self.is_in_use())
            .finish()
    }
}

// SAFETY: a Stack is plain memory plus atomics; the label is only written
// through `&mut self`.
unsafe impl Send for Stack {}
// SAFETY: shared access only reads the atomics and the published label bytes.
unsafe impl Sync for Stack {}
