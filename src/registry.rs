//! The set of mapped stacks, readable from a signal handler: a lock-free
//! list of fixed-size chunks of slots (chunks are never freed), so that the
//! overflow handler can tell a guard-page fault of a ugreen stack from any
//! other fault without locks or allocation.
//!
//! Every stack is recorded while it is mapped (src/stack.rs adds and removes
//! it), also before the overflow handler is installed: an application
//! (uWSGI) maps its stacks first and installs the handler afterwards, and
//! those stacks must be named too.
//!
//! A leaf module: a record is an address range, a page count and an opaque
//! owner pointer that only the reader interprets.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

const SLOTS_PER_CHUNK: usize = 128;

const FREE: usize = 0;
const WRITING: usize = 1;
const PUBLISHED: usize = 2;

/// What is recorded about one stack.
#[derive(Clone, Copy)]
pub(crate) struct Record {
    /// The lower guard page: `[guard, guard + page)`.
    pub(crate) guard: usize,
    /// Usable pages.
    pub(crate) pages: usize,
    /// Whatever the stack layer passed; stays valid while recorded.
    pub(crate) owner: *const (),
}

struct Slot {
    state: AtomicUsize,
    guard: AtomicUsize,
    pages: AtomicUsize,
    owner: AtomicPtr<()>,
}

struct Chunk {
    slots: [Slot; SLOTS_PER_CHUNK],
    next: AtomicPtr<Chunk>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Slot = Slot {
    state: AtomicUsize::new(FREE),
    guard: AtomicUsize::new(0),
    pages: AtomicUsize::new(0),
    owner: AtomicPtr::new(ptr::null_mut()),
};

static FIRST: Chunk = Chunk {
    slots: [EMPTY_SLOT; SLOTS_PER_CHUNK],
    next: AtomicPtr::new(ptr::null_mut()),
};

/// The chunk where the last slot was freed or taken: `insert` looks there
/// first, so creating many stacks does not rescan the full chunks.
static HINT: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());

/// Where a record is kept, for [`remove`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle {
    chunk: *const Chunk,
    index: usize,
}

// SAFETY: a handle names a slot of a chunk that is never freed; the slot's
// fields are atomics.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// Calls `f` on every chunk until it returns true.
fn chunks(mut f: impl FnMut(&'static Chunk) -> bool) {
    let mut chunk: &'static Chunk = &FIRST;
    loop {
        if f(chunk) {
            return;
        }
        let next = chunk.next.load(Ordering::Acquire);
        if next.is_null() {
            return;
        }
        // SAFETY: chunks are leaked boxes, never freed.
        chunk = unsafe { &*next };
    }
}

/// Takes a free slot of `chunk` for `record`; returns its index.
fn claim_in(chunk: &'static Chunk, record: &Record) -> Option<usize> {
    for (i, slot) in chunk.slots.iter().enumerate() {
        if slot.state.load(Ordering::Relaxed) == FREE
            && slot
                .state
                .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            slot.guard.store(record.guard, Ordering::Relaxed);
            slot.pages.store(record.pages, Ordering::Relaxed);
            slot.owner.store(record.owner as *mut (), Ordering::Relaxed);
            slot.state.store(PUBLISHED, Ordering::Release);
            return Some(i);
        }
    }
    None
}

/// Records a stack; returns where, for [`remove`].
pub(crate) fn insert(record: Record) -> Handle {
    let hint = HINT.load(Ordering::Relaxed);
    if !hint.is_null() {
        // SAFETY: chunks are never freed.
        let chunk: &'static Chunk = unsafe { &*hint };
        if let Some(index) = claim_in(chunk, &record) {
            return Handle { chunk, index };
        }
    }
    loop {
        let mut found = None;
        let mut last: &'static Chunk = &FIRST;
        chunks(|chunk| {
            last = chunk;
            found = claim_in(chunk, &record).map(|i| (chunk, i));
            found.is_some()
        });
        if let Some((chunk, index)) = found {
            HINT.store(chunk as *const Chunk as *mut Chunk, Ordering::Relaxed);
            return Handle { chunk, index };
        }
        // Every slot taken: append a chunk (or use the one another thread appended).
        let fresh = Box::into_raw(Box::new(Chunk {
            slots: [EMPTY_SLOT; SLOTS_PER_CHUNK],
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        if last
            .next
            .compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `fresh` was never published.
            drop(unsafe { Box::from_raw(fresh) });
        }
    }
}

/// Frees the slot `insert` returned.
pub(crate) fn remove(handle: Handle) {
    // SAFETY: `handle` came from `insert`; chunks are never freed.
    let chunk: &'static Chunk = unsafe { &*handle.chunk };
    let slot = &chunk.slots[handle.index];
    slot.state.store(WRITING, Ordering::Relaxed);
    slot.owner.store(ptr::null_mut(), Ordering::Relaxed);
    slot.state.store(FREE, Ordering::Release);
    HINT.store(handle.chunk as *mut Chunk, Ordering::Relaxed);
}

/// The recorded stack whose lower guard page (`page` bytes) holds `addr` or
/// `sp`. Async-signal-safe: atomics only.
pub(crate) fn find_guard_hit(addr: usize, sp: usize, page: usize) -> Option<Record> {
    let mut hit = None;
    chunks(|chunk| {
        for slot in &chunk.slots {
            if slot.state.load(Ordering::Acquire) != PUBLISHED {
                continue;
            }
            let guard = slot.guard.load(Ordering::Relaxed);
            let in_guard = |a: usize| a >= guard && a < guard + page;
            if in_guard(addr) || in_guard(sp) {
                hit = Some(Record {
                    guard,
                    pages: slot.pages.load(Ordering::Relaxed),
                    owner: slot.owner.load(Ordering::Relaxed),
                });
                return true;
            }
        }
        false
    });
    hit
}
