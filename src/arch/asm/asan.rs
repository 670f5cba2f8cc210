//! AddressSanitizer fiber annotations (the `asan` feature).
//!
//! ASan keeps the bounds of the stack each thread runs on, to tell stack
//! addresses from others and to unpoison the right range when a frame is
//! left without returning (a panic unwinding, `longjmp`). A switch to
//! another stack must tell it: `__sanitizer_start_switch_fiber` with the
//! target stack's bounds just before the switch, and
//! `__sanitizer_finish_switch_fiber` on the target side just after it.
//! Without them ASan warns that "false positive error reports may follow".
//!
//! Where the bounds come from:
//! * a context made on a ugreen stack: the stack's usable range, recorded by
//!   `init_frame` in the context's `asan_stack` words;
//! * a context saved by a switch: the bounds of the stack it was running on
//!   (the thread-local `CURRENT`), recorded in its `asan_stack` words by the
//!   switch that saves it;
//! * a thread's own stack (bounds (0, 0) above): the range ASan reported to
//!   the first `finish_switch_fiber` after the thread first left its own
//!   stack (the thread-local `THREAD_STACK`).
//!
//! The first entry into a new context runs through [`entry_shim`], which
//! finishes the switch before the real entry function runs. When the entry
//! function returns, the trampoline (asm, built with `UGREEN_ASAN`)
//! starts the final switch to the link with a NULL `fake_stack_save`, which
//! releases the ending fiber's fake stack.
//!
//! Only meaningful in a build with `-Zsanitizer=address` (the annotations are
//! symbols of the ASan runtime).

use super::CoContext;
use crate::arch::{EntryFn, RawContext};
use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;

// The ASan runtime's fiber interface (<sanitizer/common_interface_defs.h>).
// Declared inside these wrappers so that cbindgen, which lists the crate's
// `extern "C"` blocks in include/ugreen.h, does not see them.

/// # Safety
/// `fake_stack_save` is NULL or writable; `[bottom, bottom + size)` is the
/// stack the next switch goes to.
unsafe fn start_switch_fiber(fake_stack_save: *mut *mut c_void, bottom: usize, size: usize) {
    extern "C" {
        fn __sanitizer_start_switch_fiber(
            fake_stack_save: *mut *mut c_void,
            bottom: *const c_void,
            size: usize,
        );
    }
    // SAFETY: the caller's contract.
    unsafe { __sanitizer_start_switch_fiber(fake_stack_save, bottom as *const c_void, size) }
}

/// Returns the bounds of the stack the completed switch left.
///
/// # Safety
/// `fake_stack` is what this fiber's last `start_switch_fiber` saved, or
/// NULL on a fiber's first entry.
unsafe fn finish_switch_fiber(fake_stack: *mut c_void) -> Bounds {
    extern "C" {
        fn __sanitizer_finish_switch_fiber(
            fake_stack_save: *mut c_void,
            bottom_old: *mut *const c_void,
            size_old: *mut usize,
        );
    }
    let mut bottom: *const c_void = ptr::null();
    let mut size = 0usize;
    // SAFETY: the caller's contract; the out-parameters are locals.
    unsafe { __sanitizer_finish_switch_fiber(fake_stack, &mut bottom, &mut size) };
    (bottom as usize, size)
}

/// # Safety
/// `[addr, addr + size)` is memory this crate owns.
unsafe fn unpoison(addr: *const c_void, size: usize) {
    extern "C" {
        fn __asan_unpoison_memory_region(addr: *const c_void, size: usize);
    }
    // SAFETY: the caller's contract.
    unsafe { __asan_unpoison_memory_region(addr, size) }
}

/// A stack's bounds: (lowest address, size). (0, 0) is the thread's own
/// stack.
type Bounds = (usize, usize);

thread_local! {
    /// The stack running now.
    static CURRENT: Cell<Bounds> = const { Cell::new((0, 0)) };
    /// The stack the latest switch on this thread left.
    static LEFT: Cell<Bounds> = const { Cell::new((0, 0)) };
    /// The thread's own stack, once known.
    static THREAD_STACK: Cell<Bounds> = const { Cell::new((0, 0)) };
}

/// Bytes `init_frame` reserves above the switch frame for [`Start`].
pub(super) const START_RESERVE: usize = 16;

/// The real entry of a new context, kept just below the top of its stack.
#[repr(C, align(16))]
pub(super) struct Start {
    entry: EntryFn,
    arg: *mut c_void,
}

const _: () = assert!(core::mem::size_of::<Start>() <= START_RESERVE);

fn bounds_of(ctx: *const RawContext) -> Bounds {
    // SAFETY: the callers pass a valid context.
    let (bottom, size) = unsafe { ((*ctx).asan_stack[0] as usize, (*ctx).asan_stack[1] as usize) };
    if bottom == 0 {
        THREAD_STACK.with(Cell::get)
    } else {
        (bottom, size)
    }
}

fn record(ctx: *mut RawContext, (bottom, size): Bounds) {
    // SAFETY: the callers pass a valid context.
    unsafe {
        (*ctx).asan_stack[0] = bottom as *mut c_void;
        (*ctx).asan_stack[1] = size as *mut c_void;
    }
}

/// Records that the stack of `to` runs next; returns its bounds.
fn enter(to: *const RawContext) -> Bounds {
    let target = bounds_of(to);
    LEFT.with(|l| l.set(CURRENT.with(Cell::get)));
    CURRENT.with(|c| c.set(target));
    target
}

/// The bounds of a finished context's link, for the trampoline, which then
/// calls `__sanitizer_start_switch_fiber(NULL, bottom, size)` itself: the
/// NULL releases the ending fiber's fake stack, after which no instrumented
/// frame of that fiber may run (not even this function's epilogue).
///
/// cbindgen:ignore
#[export_name = "ugreen_internal_asan_exit"]
extern "C" fn asan_exit(link: *const RawContext) -> ExitBounds {
    let (bottom, size) = enter(link);
    ExitBounds { bottom, size }
}

/// Returned in two registers (rax:rdx, x0:x1).
#[repr(C)]
struct ExitBounds {
    bottom: usize,
    size: usize,
}

/// Tells ASan the switch into the current fiber has completed; learns the
/// thread's own stack bounds when the switch left it.
fn finish(fake_stack: *mut c_void) {
    // SAFETY: the callers pass what this fiber's start saved (or NULL on
    // first entry).
    let left = unsafe { finish_switch_fiber(fake_stack) };
    if LEFT.with(Cell::get) == (0, 0) && THREAD_STACK.with(Cell::get) == (0, 0) {
        THREAD_STACK.with(|t| t.set(left));
    }
}

/// The annotated switch.
///
/// # Safety
/// As for `arch::switch`.
#[inline(never)]
pub(super) unsafe fn switch(
    from: *mut RawContext,
    to: *mut RawContext,
    transfer: usize,
    raw: unsafe extern "C" fn(*mut RawContext, *mut RawContext, usize) -> usize,
) -> usize {
    // SAFETY: reads of contexts the caller guarantees valid when non-NULL.
    if from.is_null() || to.is_null() || unsafe { (*to).sp.is_null() } {
        crate::diag::ugreen_internal_swap_misuse(from.cast(), to.cast());
    }
    record(from, CURRENT.with(Cell::get));
    let mut fake_stack: *mut c_void = ptr::null_mut();
    let (bottom, size) = enter(to);
    // SAFETY: the bounds are those of the stack `to` runs on; `fake_stack`
    // lives in this frame until the switch back.
    unsafe { start_switch_fiber(&mut fake_stack, bottom, size) };
    // SAFETY: the caller's contract.
    let word = unsafe { raw(from, to, transfer) };
    finish(fake_stack);
    word
}

/// Prepares a new context's bounds and makes its first entry run through
/// [`entry_shim`]: returns the (entry, arg) to put in its frame.
///
/// # Safety
/// `[bottom, top)` is the new context's stack, owned by it, with
/// [`START_RESERVE`] bytes below `top` free for the [`Start`] block.
pub(super) unsafe fn prepare(
    ctx: *mut RawContext,
    bottom: *mut u8,
    top: *mut u8,
    entry: EntryFn,
    arg: *mut c_void,
) -> (EntryFn, *mut c_void) {
    let size = top as usize - bottom as usize;
    // SAFETY: per the contract; a previous context on this stack may have
    // left poisoned frames behind.
    unsafe {
        unpoison(bottom.cast(), size);
        let start = top.sub(START_RESERVE).cast::<Start>();
        start.write(Start { entry, arg });
        record(ctx, (bottom as usize, size));
        (entry_shim, start.cast())
    }
}

/// The first function of every new context under ASan.
unsafe extern "C" fn entry_shim(arg: *mut c_void, transfer: usize) {
    finish(ptr::null_mut());
    // SAFETY: `arg` is the Start block `prepare` wrote above this frame.
    let Start { entry, arg } = unsafe { arg.cast::<Start>().read() };
    // SAFETY: the contract of RawContext::make.
    unsafe { entry(arg, transfer) };
}

// ------------------------------------------------- the coroutine switch
//
// The same annotations for the coroutine switch, whose bounds live in the
// coroutine's link (`CoContext`): those of its own stack, and those of the
// stack its resumer was running on when it resumed the coroutine.

/// The annotated coroutine switch: `switch` performs the switch itself.
///
/// # Safety
/// `switch` switches from the side `save` describes to the one `load`
/// describes, and returns when something switches back.
#[inline(always)]
pub(super) unsafe fn around_switch<R>(
    save: &Cell<Bounds>,
    load: &Cell<Bounds>,
    switch: impl FnOnce() -> R,
) -> R {
    save.set(CURRENT.with(Cell::get));
    let (bottom, size) = enter_bounds(load.get());
    let mut fake_stack: *mut c_void = ptr::null_mut();
    // SAFETY: the bounds are those of the stack `load` runs on;
    // `fake_stack` lives in this frame until the switch back.
    unsafe { start_switch_fiber(&mut fake_stack, bottom, size) };
    let r = switch();
    finish(fake_stack);
    r
}

/// Records the bounds of a new coroutine's stack in its context and
/// unpoisons what a previous context on it may have left poisoned.
///
/// # Safety
/// `[bottom, top)` is the new context's stack, owned by it.
pub(super) unsafe fn co_prepare(link: *mut CoContext, bottom: *mut u8, top: *mut u8) {
    let size = top as usize - bottom as usize;
    // SAFETY: the caller's contract.
    unsafe {
        unpoison(bottom.cast(), size);
        (*link).co_bounds.set((bottom as usize, size));
    }
}

/// The first thing a new coroutine runs.
pub(super) fn first_entry() {
    finish(ptr::null_mut());
}

/// As `asan_exit`, for a coroutine whose entry function returned.
///
/// cbindgen:ignore
#[export_name = "ugreen_internal_coroutine_asan_exit"]
extern "C" fn coroutine_asan_exit(link: *const CoContext) -> ExitBounds {
    // SAFETY: the trampoline passes the coroutine's live link.
    let (bottom, size) = enter_bounds(unsafe { (*link).bounds.get() });
    ExitBounds { bottom, size }
}

/// Records that the stack with `bounds` ((0, 0): the thread's own) runs
/// next; returns its bounds.
fn enter_bounds(bounds: Bounds) -> Bounds {
    let target = if bounds.0 == 0 {
        THREAD_STACK.with(Cell::get)
    } else {
        bounds
    };
    LEFT.with(|l| l.set(CURRENT.with(Cell::get)));
    CURRENT.with(|c| c.set(target));
    target
}
