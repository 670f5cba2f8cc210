//! Stack::high_water and ugreen_stack_high_water: how deep a stack was ever
//! used, in whole pages, measured by page residency; Stack::release_pages
//! and ugreen_stack_release_pages, which give the pages below a kept top
//! back.

use core::ffi::c_void;
use core::ptr::addr_of_mut;
use std::hint::black_box;
use ugreen::ffi::{ugreen_result, ugreen_stack_high_water, ugreen_stack_release_pages};
use ugreen::Error;
use ugreen::{page_size, Coroutine, CoroutineResult, RawContext, Stack};

/// Uses about `bytes` of stack below the caller's frame, touching every
/// page of it.
#[inline(never)]
fn use_stack(bytes: usize) -> u64 {
    const FRAME: usize = 1024;
    let mut buf = [0u8; FRAME];
    for (i, b) in buf.iter_mut().enumerate().step_by(64) {
        *b = i as u8;
    }
    let buf = black_box(buf);
    let below = if bytes > FRAME {
        use_stack(bytes - FRAME)
    } else {
        0
    };
    below + buf[64] as u64
}

fn run_on(stack: &mut Stack, bytes: usize) {
    let mut co = Coroutine::on_stack(stack, move |_, ()| use_stack(bytes));
    match co.resume(()) {
        CoroutineResult::Return(_) => {}
        CoroutineResult::Yield(()) => unreachable!(),
    }
}

/// The most stack that `use_stack(bytes)` plus the frames of the context
/// around it may take: a small overhead per 1 KiB frame when optimized,
/// up to four times the buffers again in unoptimized code (copies for
/// black_box, iterator state).
fn at_most(bytes: usize) -> usize {
    let overhead = if cfg!(debug_assertions) {
        4 * bytes
    } else {
        bytes / 8
    };
    bytes + overhead + 4 * page_size()
}

#[test]
fn a_new_stack_was_never_used() {
    let stack = Stack::new(16).unwrap();
    assert_eq!(stack.high_water(), 0);
}

#[test]
fn grows_with_the_deepest_use_and_never_shrinks() {
    let page = page_size();
    let mut stack = Stack::new(256).unwrap();

    run_on(&mut stack, 8 * 1024);
    let shallow = stack.high_water();
    if cfg!(feature = "asan") {
        // ASan may keep the buffers on its own "fake stack" (the
        // use-after-return check): only the ordering can be checked.
        run_on(&mut stack, 100 * 1024);
        let deep = stack.high_water();
        assert!(shallow <= deep && deep <= stack.size(), "{shallow} {deep}");
        run_on(&mut stack, 4 * 1024);
        assert_eq!(stack.high_water(), deep);
        return;
    }
    assert_eq!(shallow % page, 0);
    assert!(shallow >= 8 * 1024, "{shallow}");
    assert!(shallow <= at_most(8 * 1024), "{shallow}");

    run_on(&mut stack, 100 * 1024);
    let deep = stack.high_water();
    assert!(deep >= 100 * 1024, "{deep}");
    assert!(deep <= at_most(100 * 1024), "{deep}");
    assert!(deep <= stack.size());

    // A shallower run later leaves the mark where it was.
    run_on(&mut stack, 4 * 1024);
    assert_eq!(stack.high_water(), deep);
}

#[test]
fn a_full_stack_reports_its_size() {
    let mut stack = Stack::new(8).unwrap();
    let size = stack.size();
    // Touch every page from inside a context, from the bottom up.
    let bottom = stack.bottom() as usize;
    let mut co: Coroutine<'_, (), (), ()> = Coroutine::on_stack(&mut stack, move |_, ()| {
        let page = page_size();
        // The bottom page lies far below this frame, unused by anything.
        for p in (0..size / page).take(2) {
            // SAFETY: the usable range of the stack is mapped read/write,
            // and these low pages are below every frame live on it.
            unsafe { ((bottom + p * page) as *mut u8).write_volatile(1) };
        }
    });
    assert_eq!(co.resume(()), CoroutineResult::Return(()));
    drop(co);
    assert_eq!(stack.high_water(), size);
}

unsafe extern "C" fn deep_entry(arg: *mut c_void, _: usize) {
    black_box(use_stack(arg as usize));
}

#[test]
fn raw_context_and_the_c_export() {
    let stack = Stack::new(128).unwrap();
    let mut main = RawContext::new();
    let mut green = RawContext::new();
    // SAFETY: both contexts and the stack outlive the context, which
    // returns to main through its link.
    unsafe {
        RawContext::make(
            &mut green,
            &stack,
            deep_entry,
            (40 * 1024) as *mut c_void,
            addr_of_mut!(main),
        )
        .unwrap();
        RawContext::swap(&mut main, &mut green);
    }
    let rust = stack.high_water();
    if !cfg!(feature = "asan") {
        assert!((40 * 1024..=at_most(40 * 1024)).contains(&rust), "{rust}");
    }

    let mut out = 0usize;
    // SAFETY: a live stack and a valid out-parameter.
    let r = unsafe { ugreen_stack_high_water(&stack, &mut out) };
    assert_eq!(r, ugreen_result::UGREEN_RESULT_OK);
    assert_eq!(out, rust);

    // NULL arguments: the documented code, and `out` untouched.
    let mut untouched = 12345usize;
    // SAFETY: NULL is allowed for both and answered with NULL_ARGUMENT.
    unsafe {
        assert_eq!(
            ugreen_stack_high_water(core::ptr::null(), &mut untouched),
            ugreen_result::UGREEN_RESULT_NULL_ARGUMENT
        );
        assert_eq!(
            ugreen_stack_high_water(&stack, core::ptr::null_mut()),
            ugreen_result::UGREEN_RESULT_NULL_ARGUMENT
        );
    }
    assert_eq!(untouched, 12345);
}

#[test]
fn release_pages_gives_back_what_lies_below_the_kept_top() {
    let page = page_size();
    let mut stack = Stack::new(256).unwrap();
    run_on(&mut stack, 100 * 1024);
    let deep = stack.high_water();
    assert!(deep > 16 * 1024, "{deep}");

    // The top 16 KiB stay resident, everything below goes.
    stack.release_pages(16 * 1024).unwrap();
    let kept = stack.high_water();
    if !cfg!(feature = "asan") {
        assert_eq!(kept, 16 * 1024);
    } else {
        assert!(kept <= 16 * 1024, "{kept}");
    }
    // A part of a page keeps the whole page.
    stack.release_pages(page + 1).unwrap();
    assert!(stack.high_water() <= 2 * page);
    // Keeping the whole stack (or more) releases nothing.
    let before = stack.high_water();
    stack.release_pages(usize::MAX).unwrap();
    assert_eq!(stack.high_water(), before);

    stack.release_pages(0).unwrap();
    assert_eq!(stack.high_water(), 0);

    // The stack is as good as new: it runs a deep context again.
    run_on(&mut stack, 100 * 1024);
    assert!(stack.high_water() >= 100 * 1024 || cfg!(feature = "asan"));
}

#[test]
fn released_pages_read_as_zero() {
    let mut stack = Stack::new(8).unwrap();
    let bottom = stack.bottom() as usize;
    let mut co: Coroutine<'_, (), (), ()> = Coroutine::on_stack(&mut stack, move |_, ()| {
        // SAFETY: the bottom page of the usable range is mapped read/write
        // and lies far below every frame live on the stack.
        unsafe { (bottom as *mut u64).write_volatile(0xdead_beef) };
    });
    assert_eq!(co.resume(()), CoroutineResult::Return(()));
    drop(co);
    // SAFETY: the usable range stays mapped for the stack's lifetime.
    assert_eq!(
        unsafe { (bottom as *const u64).read_volatile() },
        0xdead_beef
    );
    stack.release_pages(0).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { (bottom as *const u64).read_volatile() }, 0);
}

#[test]
fn release_pages_refuses_a_stack_with_a_live_context() {
    let mut stack = Stack::new(16).unwrap();
    run_on(&mut stack, 8 * 1024);
    let used = stack.high_water();
    {
        let mut co: Coroutine<'_, (), (), ()> = Coroutine::on_stack(&mut stack, |y, ()| {
            y.suspend(());
        });
        assert_eq!(co.resume(()), CoroutineResult::Yield(()));
        // A coroutine leaked while suspended leaves its stack in use: the
        // frames it would need are not given away.
        core::mem::forget(co);
    }
    assert_eq!(stack.release_pages(0), Err(Error::WrongState));
    assert!(stack.high_water() >= used.min(page_size()));
    // SAFETY: the leaked coroutine is never resumed.
    unsafe { stack.abandon() };
    stack.release_pages(0).unwrap();
    assert_eq!(stack.high_water(), 0);
}

#[test]
fn release_pages_c_export() {
    let mut stack = Stack::new(256).unwrap();
    run_on(&mut stack, 40 * 1024);
    // SAFETY: NULL is answered with NULL_ARGUMENT.
    let r = unsafe { ugreen_stack_release_pages(core::ptr::null_mut(), 0) };
    assert_eq!(r, ugreen_result::UGREEN_RESULT_NULL_ARGUMENT);
    // SAFETY: a live stack, not used elsewhere.
    let r = unsafe { ugreen_stack_release_pages(&mut stack, 0) };
    assert_eq!(r, ugreen_result::UGREEN_RESULT_OK);
    assert_eq!(stack.high_water(), 0);

    // In use: WRONG_STATE, nothing released.
    let mut main = RawContext::new();
    let mut green = RawContext::new();
    // SAFETY: the context is made and never run; abandoned below.
    unsafe {
        RawContext::make(
            &mut green,
            &stack,
            deep_entry,
            core::ptr::null_mut(),
            addr_of_mut!(main),
        )
        .unwrap();
    }
    // SAFETY: a live stack, not used concurrently.
    let r = unsafe { ugreen_stack_release_pages(&mut stack, 0) };
    assert_eq!(r, ugreen_result::UGREEN_RESULT_WRONG_STATE);
    // SAFETY: the made context is never run.
    unsafe { stack.abandon() };
}
