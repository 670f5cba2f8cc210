//! Unwind information: a backtrace taken inside a green thread shows the
//! green thread's frames and then those of the code that resumed it.

use std::backtrace::Backtrace;
use ugreen::{Coroutine, CoroutineResult, Stack};

#[inline(never)]
fn frame_inside_green_thread() -> String {
    Backtrace::force_capture().to_string()
}

#[inline(never)]
fn resumer_of_the_green_thread(co: &mut Coroutine<'_, (), (), String>) -> String {
    match co.resume(()) {
        CoroutineResult::Return(s) => s,
        CoroutineResult::Yield(()) => unreachable!(),
    }
}

#[test]
// glibc's makecontext ends the unwind at its own start routine.
#[cfg_attr(
    feature = "ucontext",
    ignore = "the ucontext backend's frames end at __start_context"
)]
fn backtrace_walks_from_green_thread_into_resumer() {
    let mut co = Coroutine::new(Stack::new(64).unwrap(), |_, ()| frame_inside_green_thread());
    let trace = resumer_of_the_green_thread(&mut co);
    let at = |name: &str| {
        trace
            .find(name)
            .unwrap_or_else(|| panic!("{name} missing:\n{trace}"))
    };
    let inside = at("frame_inside_green_thread");
    let trampoline = at("ugreen_internal_coroutine_trampoline");
    let resumer = at("resumer_of_the_green_thread");
    // The test function's own frame, below the resumer (its closure, which
    // runs on the green stack, carries the same name and appears first).
    let test_fn = trace
        .rfind("backtrace_walks_from_green_thread_into_resumer")
        .unwrap();
    assert!(
        inside < trampoline && trampoline < resumer && resumer < test_fn,
        "frames out of order:\n{trace}"
    );
}
