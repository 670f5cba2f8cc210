//! Stack-overflow diagnostics: an opt-in SIGSEGV/SIGBUS handler that names
//! the green thread whose stack overflowed.
//!
//! Every [`Stack`] is recorded in a lock-free registry when mapped (and
//! removed when unmapped). Once [`install`] has run, a fault inside the guard
//! page of a recorded stack, or with the stack pointer in it, prints one line:
//!
//! ```text
//! ugreen: stack overflow in green thread "core 17" (stack of 64 pages = 256 KiB, fault at 0x7f..); give it a larger stack
//! ```
//!
//! and then, for every fault (ours or not), the handler that was installed
//! before it runs, exactly as it would have without ugreen; if there was none,
//! the default action is restored and the faulting instruction re-executed,
//! so the process still dies by that signal.
//!
//! The handler runs on an alternate signal stack, which [`install`] sets up
//! for the calling thread (and fork children inherit); other threads that run
//! green threads call [`prepare_thread`].

use crate::diag::{fmt_usize, write_stderr};
use crate::stack::{page_size, Stack, StackMeta};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::io;

const SLOTS_PER_CHUNK: usize = 128;

const FREE: usize = 0;
const WRITING: usize = 1;
const PUBLISHED: usize = 2;

struct Slot {
    state: AtomicUsize,
    /// Lower guard page `[lo, lo + page)`, and the end of the mapping.
    lo: AtomicUsize,
    end: AtomicUsize,
    pages: AtomicUsize,
    meta: AtomicPtr<StackMeta>,
}

struct Chunk {
    slots: [Slot; SLOTS_PER_CHUNK],
    next: AtomicPtr<Chunk>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY_SLOT: Slot = Slot {
    state: AtomicUsize::new(FREE),
    lo: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    pages: AtomicUsize::new(0),
    meta: AtomicPtr::new(ptr::null_mut()),
};

static REGISTRY: Chunk = Chunk {
    slots: [EMPTY_SLOT; SLOTS_PER_CHUNK],
    next: AtomicPtr::new(ptr::null_mut()),
};

/// Calls `f` on every chunk until it returns true. Chunks are never freed.
fn chunks(mut f: impl FnMut(&'static Chunk) -> bool) {
    let mut chunk: &'static Chunk = &REGISTRY;
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

/// The chunk where the last slot was freed or taken: registration looks
/// there first, so creating many stacks does not rescan the full chunks.
static HINT: AtomicPtr<Chunk> = AtomicPtr::new(ptr::null_mut());

/// Takes a free slot of `chunk` for the stack; returns its index.
fn claim_in(chunk: &'static Chunk, stack: &Stack) -> Option<usize> {
    let (lo, end) = stack.mapping();
    for (i, slot) in chunk.slots.iter().enumerate() {
        if slot.state.load(Ordering::Relaxed) == FREE
            && slot
                .state
                .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            slot.lo.store(lo, Ordering::Relaxed);
            slot.end.store(end, Ordering::Relaxed);
            slot.pages.store(stack.pages(), Ordering::Relaxed);
            slot.meta.store(
                stack.meta() as *const StackMeta as *mut StackMeta,
                Ordering::Relaxed,
            );
            slot.state.store(PUBLISHED, Ordering::Release);
            return Some(i);
        }
    }
    None
}

/// Records `stack` for the handler; returns where, for `deregister`.
pub(crate) fn register(stack: &Stack) -> (usize, usize) {
    let hint = HINT.load(Ordering::Relaxed);
    if !hint.is_null() {
        // SAFETY: chunks are never freed.
        let chunk: &'static Chunk = unsafe { &*hint };
        if let Some(i) = claim_in(chunk, stack) {
            return (chunk as *const Chunk as usize, i);
        }
    }
    loop {
        let mut found = None;
        let mut last: &'static Chunk = &REGISTRY;
        chunks(|chunk| {
            last = chunk;
            found = claim_in(chunk, stack).map(|i| (chunk, i));
            found.is_some()
        });
        if let Some((chunk, i)) = found {
            HINT.store(chunk as *const Chunk as *mut Chunk, Ordering::Relaxed);
            return (chunk as *const Chunk as usize, i);
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

/// Frees the slot `register` returned.
pub(crate) fn deregister((chunk, index): (usize, usize)) {
    // SAFETY: `chunk` came from `register`; chunks are never freed.
    let chunk_ref: &'static Chunk = unsafe { &*(chunk as *const Chunk) };
    let slot = &chunk_ref.slots[index];
    slot.state.store(WRITING, Ordering::Relaxed);
    slot.meta.store(ptr::null_mut(), Ordering::Relaxed);
    slot.state.store(FREE, Ordering::Release);
    HINT.store(chunk as *mut Chunk, Ordering::Relaxed);
}

/// A registered stack whose lower guard page holds `addr` (or `sp`).
struct Hit {
    pages: usize,
    meta: *const StackMeta,
}

fn find_overflow(addr: usize, sp: usize) -> Option<Hit> {
    let page = page_size();
    let mut hit = None;
    chunks(|chunk| {
        for slot in &chunk.slots {
            if slot.state.load(Ordering::Acquire) != PUBLISHED {
                continue;
            }
            let lo = slot.lo.load(Ordering::Relaxed);
            let in_guard = |a: usize| a >= lo && a < lo + page;
            if in_guard(addr) || in_guard(sp) {
                hit = Some(Hit {
                    pages: slot.pages.load(Ordering::Relaxed),
                    meta: slot.meta.load(Ordering::Relaxed),
                });
                return true;
            }
        }
        false
    });
    hit
}

static INSTALLED: AtomicBool = AtomicBool::new(false);
static mut PREVIOUS_SEGV: core::mem::MaybeUninit<libc::sigaction> =
    core::mem::MaybeUninit::uninit();
static mut PREVIOUS_BUS: core::mem::MaybeUninit<libc::sigaction> = core::mem::MaybeUninit::uninit();

const ADVICE_MAX: usize = 192;
static ADVICE_LEN: AtomicUsize = AtomicUsize::new(0);
static mut ADVICE: [u8; ADVICE_MAX] = [0; ADVICE_MAX];
const DEFAULT_ADVICE: &[u8] = b"give it a larger stack";

/// Replaces the advice at the end of the overflow line (default: "give it a
/// larger stack"), e.g. with the option that sets the stack size. Truncated
/// to 192 bytes. Call it before green threads run.
pub fn set_advice(advice: &str) {
    let mut len = advice.len().min(ADVICE_MAX);
    while !advice.is_char_boundary(len) {
        len -= 1;
    }
    ADVICE_LEN.store(0, Ordering::Release);
    // SAFETY: the handler reads only `ADVICE_LEN` bytes, 0 while this writes.
    unsafe { (&mut *ptr::addr_of_mut!(ADVICE))[..len].copy_from_slice(&advice.as_bytes()[..len]) };
    ADVICE_LEN.store(len, Ordering::Release);
}

/// Size of the alternate signal stack [`prepare_thread`] maps.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Gives the calling thread an alternate signal stack if it has none (or one
/// smaller than 64 KiB), so the handler can run when the thread's current
/// stack is exhausted.
pub fn prepare_thread() -> io::Result<()> {
    let mut current: libc::stack_t = unsafe_zeroed();
    // SAFETY: querying only; `current` is a valid out-parameter.
    if unsafe { libc::sigaltstack(ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= ALT_STACK_SIZE {
        return Ok(());
    }
    let alt = Stack::with_bytes(ALT_STACK_SIZE)
        .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
    let new = libc::stack_t {
        ss_sp: alt.bottom().cast(),
        ss_flags: 0,
        ss_size: alt.size(),
    };
    // SAFETY: `new` describes memory that stays mapped for the life of the
    // process (leaked below).
    if unsafe { libc::sigaltstack(&new, ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    core::mem::forget(alt);
    Ok(())
}

fn unsafe_zeroed<T>() -> T {
    // SAFETY: only used for plain C structs, for which all-zero is valid.
    unsafe { core::mem::zeroed() }
}

/// Installs the handler for SIGSEGV and SIGBUS, remembering the handlers it
/// replaces, and gives the calling thread an alternate signal stack. A
/// second call does nothing.
pub fn install() -> io::Result<()> {
    prepare_thread()?;
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    let mut action: libc::sigaction = unsafe_zeroed();
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `sa_mask` is a valid sigset_t to initialise; the previous
    // actions are written before the new handler can read them (they are
    // only read by the handler, which is installed by these very calls and
    // reads the slot of the signal it handles).
    unsafe {
        libc::sigemptyset(&mut action.sa_mask);
        for (sig, prev) in [
            (libc::SIGSEGV, ptr::addr_of_mut!(PREVIOUS_SEGV)),
            (libc::SIGBUS, ptr::addr_of_mut!(PREVIOUS_BUS)),
        ] {
            if libc::sigaction(sig, &action, (*prev).as_mut_ptr()) != 0 {
                INSTALLED.store(false, Ordering::Release);
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
}

#[cfg(target_arch = "aarch64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.sp as usize }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn interrupted_sp(_uc: *const libc::ucontext_t) -> usize {
    0
}

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let sp = interrupted_sp(uc.cast());
    if let Some(hit) = find_overflow(addr, sp) {
        report(&hit, addr);
    }
    chain(sig, info, uc);
}

fn report(hit: &Hit, addr: usize) {
    let mut pages_buf = [0u8; 20];
    let mut kib_buf = [0u8; 20];
    let pages = fmt_usize(hit.pages, &mut pages_buf);
    let kib = fmt_usize(hit.pages * page_size() / 1024, &mut kib_buf);
    let mut hex = [0u8; 18];
    hex[0] = b'0';
    hex[1] = b'x';
    for i in 0..16 {
        let nibble = (addr >> ((15 - i) * 4)) & 0xf;
        hex[2 + i] = b"0123456789abcdef"[nibble];
    }
    // SAFETY: the slot's metadata belongs to the faulting stack, which is
    // still mapped (a thread cannot overflow a stack that was unmapped).
    let label = unsafe { (*hit.meta).label_bytes() };
    let advice_len = ADVICE_LEN.load(Ordering::Acquire);
    // SAFETY: the first `advice_len` bytes were published by set_advice.
    let advice: &[u8] = if advice_len == 0 {
        DEFAULT_ADVICE
    } else {
        unsafe { &(&*ptr::addr_of!(ADVICE))[..advice_len] }
    };
    write_stderr(&[
        b"ugreen: stack overflow in green thread \"",
        if label.is_empty() {
            b"(unnamed)"
        } else {
            label
        },
        b"\" (stack of ",
        pages,
        b" pages = ",
        kib,
        b" KiB, fault at ",
        &hex,
        b"); ",
        advice,
        b"\n",
    ]);
}

/// Runs the handler installed before ours, or restores the default action.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
    let prev = if sig == libc::SIGBUS {
        ptr::addr_of!(PREVIOUS_BUS)
    } else {
        ptr::addr_of!(PREVIOUS_SEGV)
    };
    // SAFETY: written by install() before the handler was installed.
    let prev: libc::sigaction = unsafe { (*prev).assume_init_read() };
    let target = prev.sa_sigaction;
    if target == libc::SIG_DFL || target == libc::SIG_IGN {
        // A fault cannot be ignored: restore the default action and return,
        // so the faulting instruction re-executes and the process dies by it.
        let mut dfl: libc::sigaction = unsafe_zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        // SAFETY: plain sigaction call with a valid action.
        unsafe { libc::sigaction(sig, &dfl, ptr::null_mut()) };
        return;
    }
    // SAFETY: calling the previously installed handler the way the kernel
    // would have (three arguments with SA_SIGINFO, one without).
    unsafe {
        if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                core::mem::transmute(target);
            f(sig, info, uc);
        } else {
            let f: extern "C" fn(libc::c_int) = core::mem::transmute(target);
            f(sig);
        }
    }
}
