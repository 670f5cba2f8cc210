//! The `ucontext` backend: the same raw API on getcontext/makecontext/
//! swapcontext. The fallback for targets without assembly and the baseline
//! of every comparison (it makes a signal-mask system call per switch).
//!
//! A suspended context's `sp` points to a `ucontext_t`: for a context saved
//! by a swap, one in the swap's own stack frame (which lives exactly as long
//! as the context stays suspended); for a new context, one placed below the
//! top of its stack by `init_frame`.

use super::{EntryFn, RawContext};
use core::cell::Cell;
use core::ffi::c_void;
use core::mem::{size_of, MaybeUninit};

pub(crate) const BACKEND: &str = "ucontext";

/// A new context's ucontext and start data, below the top of its stack.
#[repr(C, align(16))]
struct Start {
    uc: libc::ucontext_t,
    entry: EntryFn,
    arg: *mut c_void,
    link: *mut RawContext,
    live: *mut usize,
}

pub(crate) const INIT_RESERVE: usize = (size_of::<Start>() + 15) & !15;

thread_local! {
    /// The word passed by the latest swap on this thread.
    static TRANSFER: Cell<usize> = const { Cell::new(0) };
    /// The `live` word of a finished context, cleared by the context that
    /// its end resumed, once off the finished stack.
    static RELEASE: Cell<*mut usize> = const { Cell::new(core::ptr::null_mut()) };
}

/// # Safety
/// As for the assembly backend's `switch`.
pub(crate) unsafe fn switch(from: *mut RawContext, to: *mut RawContext, transfer: usize) -> usize {
    // SAFETY: checked like the assembly routine does.
    let target = unsafe {
        if from.is_null() || to.is_null() || (*to).sp.is_null() {
            crate::diag::ugreen_internal_swap_misuse(from.cast(), to.cast());
        }
        (*to).sp.cast::<libc::ucontext_t>()
    };
    let mut here = MaybeUninit::<libc::ucontext_t>::uninit();
    // SAFETY: `here` lives in this frame until something swaps back into
    // `from`, which resumes inside the swapcontext call below.
    unsafe {
        (*from).sp = here.as_mut_ptr().cast();
        (*to).sp = core::ptr::null_mut();
        TRANSFER.with(|t| t.set(transfer));
        if libc::swapcontext(here.as_mut_ptr(), target) != 0 {
            crate::diag::fatal(&[b"swapcontext failed"]);
        }
    }
    release_finished();
    TRANSFER.with(|t| t.get())
}

/// Marks free the stack of a finished context whose end resumed the code
/// running now, which runs on another stack: nothing touches that one any
/// more.
fn release_finished() {
    let live = RELEASE.with(|r| r.replace(core::ptr::null_mut()));
    if !live.is_null() {
        // SAFETY: `live` is the word of a stack's `AtomicUsize`, which
        // outlives every context made on the stack.
        unsafe { core::sync::atomic::AtomicUsize::from_ptr(live) }
            .store(0, core::sync::atomic::Ordering::Release);
    }
}

/// Resumes `to` without saving the current context.
unsafe fn jump(to: *mut RawContext) -> ! {
    // SAFETY: checked like the assembly routine does.
    unsafe {
        if to.is_null() || (*to).sp.is_null() {
            crate::diag::ugreen_internal_swap_misuse(core::ptr::null(), to.cast());
        }
        let target = (*to).sp.cast::<libc::ucontext_t>();
        (*to).sp = core::ptr::null_mut();
        TRANSFER.with(|t| t.set(0));
        libc::setcontext(target);
    }
    crate::diag::fatal(&[b"setcontext failed"])
}

extern "C" fn trampoline(lo: u32, hi: u32) {
    let start = ((hi as usize) << 32 | lo as usize) as *mut Start;
    // SAFETY: `start` was written by init_frame and is read before the entry
    // function can overwrite it (it lies above the entry's stack).
    let (entry, arg, link, live) =
        unsafe { ((*start).entry, (*start).arg, (*start).link, (*start).live) };
    // A finished context may have resumed this new one through its link.
    release_finished();
    let transfer = TRANSFER.with(|t| t.get());
    // SAFETY: the contract of RawContext::make.
    unsafe { entry(arg, transfer) };
    if link.is_null() {
        crate::diag::ugreen_internal_no_link();
    }
    // `live` is cleared by the resumed side, off this stack (in `switch`).
    RELEASE.with(|r| r.set(live));
    // SAFETY: the link is suspended per the contract of make.
    unsafe { jump(link) }
}

/// # Safety
/// As for the assembly backend's `init_frame`.
pub(crate) unsafe fn init_frame(
    ctx: *mut RawContext,
    bottom: *mut u8,
    top: *mut u8,
    entry: EntryFn,
    arg: *mut c_void,
    link: *mut RawContext,
    live: *mut usize,
) {
    // SAFETY: the caller guarantees [bottom, top) is this context's stack,
    // with room for the Start block below top.
    unsafe {
        let start = top.sub(INIT_RESERVE).cast::<Start>();
        let uc = core::ptr::addr_of_mut!((*start).uc);
        if libc::getcontext(uc) != 0 {
            crate::diag::fatal(&[b"getcontext failed"]);
        }
        (*uc).uc_stack.ss_sp = bottom.cast();
        (*uc).uc_stack.ss_size = start as usize - bottom as usize;
        (*uc).uc_link = core::ptr::null_mut();
        core::ptr::addr_of_mut!((*start).entry).write(entry);
        core::ptr::addr_of_mut!((*start).arg).write(arg);
        core::ptr::addr_of_mut!((*start).link).write(link);
        core::ptr::addr_of_mut!((*start).live).write(live);
        let addr = start as usize;
        let f: extern "C" fn() = core::mem::transmute(trampoline as extern "C" fn(u32, u32));
        libc::makecontext(uc, f, 2, addr as u32, (addr >> 32) as u32);
        (*ctx).sp = uc.cast();
    }
}

// ------------------------------------------------- the coroutine switch

/// The link of a coroutine: the raw contexts of both sides, and the word the
/// trampoline clears when the coroutine finishes (unused: the coroutine API
/// keeps its own state). The coroutine's "stack pointer" is 1 while it can
/// be resumed.
#[repr(C)]
pub(crate) struct CoContext {
    outer: RawContext,
    inner: RawContext,
    done: usize,
    started: bool,
    entry: Option<super::CoEntryFn>,
}

/// The raw entry of every coroutine: calls the coroutine's own entry.
unsafe extern "C" fn co_entry(link: *mut c_void, transfer: usize) {
    // SAFETY: `co_init` made the raw context with its link as the argument
    // and stored the entry in it.
    unsafe {
        let entry = (*link.cast::<CoContext>()).entry.unwrap_unchecked();
        entry(transfer, link)
    }
}

/// Bytes below its link that a new coroutine's first frame occupies.
pub(crate) const CO_RESERVE: usize = INIT_RESERVE;

/// # Safety
/// As for the assembly backend's `co_init`.
pub(crate) unsafe fn co_init(
    link: *mut CoContext,
    bottom: *mut u8,
    entry: super::CoEntryFn,
) -> usize {
    // SAFETY: the caller's contract; `link` starts with the resumer's raw
    // context, the trampoline's link; the frame goes below it. The whole
    // link is written (the coroutine takes a reference to it).
    unsafe {
        link.write(CoContext {
            outer: RawContext::new(),
            inner: RawContext::new(),
            done: 1,
            started: false,
            entry: Some(entry),
        });
        init_frame(
            core::ptr::addr_of_mut!((*link).inner),
            bottom,
            link.cast(),
            co_entry,
            link.cast(),
            link.cast(),
            core::ptr::addr_of_mut!((*link).done),
        );
    }
    1
}

/// # Safety
/// As for the assembly backend's `co_resume`.
pub(crate) unsafe fn co_resume(
    link: *mut CoContext,
    _sp: usize,
    transfer: usize,
) -> (usize, usize, *mut CoContext) {
    // SAFETY: the caller's contract.
    let word = unsafe {
        (*link).started = true;
        switch(
            core::ptr::addr_of_mut!((*link).outer),
            core::ptr::addr_of_mut!((*link).inner),
            transfer,
        )
    };
    (word, (word != 0) as usize, link)
}

/// # Safety
/// As for the assembly backend's `co_suspend`.
pub(crate) unsafe fn co_suspend(link: *mut CoContext, transfer: usize) -> usize {
    // SAFETY: the caller's contract.
    unsafe {
        switch(
            core::ptr::addr_of_mut!((*link).inner),
            core::ptr::addr_of_mut!((*link).outer),
            transfer,
        )
    }
}

/// # Safety
/// As for the assembly backend's `co_is_fresh`.
pub(crate) unsafe fn co_is_fresh(link: *const CoContext, _sp: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { !(*link).started }
}

/// Called first thing by a coroutine's entry function.
pub(crate) fn co_entered() {}
