//! The safe API: values both ways, many live coroutines, deep recursion,
//! stack reuse, panics, and dropping suspended coroutines.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use ugreen::{Coroutine, CoroutineResult, Stack};

#[test]
fn values_pass_both_ways() {
    let mut co = Coroutine::new(Stack::new(16).unwrap(), |y, mut x: u64| {
        let mut sum = 0;
        while x != 0 {
            sum += x;
            x = y.suspend(sum * 2);
        }
        format!("sum {sum}")
    });
    assert_eq!(co.resume(1), CoroutineResult::Yield(2));
    assert_eq!(co.resume(2), CoroutineResult::Yield(6));
    assert_eq!(co.resume(3), CoroutineResult::Yield(12));
    assert_eq!(co.resume(0), CoroutineResult::Return("sum 6".to_string()));
    assert!(co.is_finished());
}

#[test]
fn non_copy_values_are_moved_not_copied() {
    let counter = Rc::new(());
    let c2 = counter.clone();
    let mut co = Coroutine::new(Stack::new(16).unwrap(), move |y, v: Vec<Rc<()>>| {
        let back = y.suspend(v);
        drop(c2);
        back.len()
    });
    let v = vec![counter.clone(), counter.clone()];
    assert_eq!(Rc::strong_count(&counter), 4);
    let CoroutineResult::Yield(v) = co.resume(v) else {
        panic!()
    };
    assert_eq!(Rc::strong_count(&counter), 4);
    assert_eq!(co.resume(v), CoroutineResult::Return(2));
    assert_eq!(
        Rc::strong_count(&counter),
        1,
        "every value dropped exactly once"
    );
}

#[test]
fn ten_thousand_live_coroutines() {
    const N: usize = 10_000;
    let mut cos: Vec<Coroutine<'_, usize, usize, usize>> = (0..N)
        .map(|i| {
            Coroutine::new(Stack::new(4).unwrap(), move |y, first: usize| {
                let mut acc = first + i;
                for _ in 0..3 {
                    acc += y.suspend(acc);
                }
                acc
            })
        })
        .collect();
    // Round-robin: every coroutine stays suspended while the others run.
    // Inputs 1, 2, 2, 5 give yields 1+i, 3+i, 5+i and the result 10+i.
    for (round, input) in [(0, 1), (1, 2), (2, 2)] {
        for (i, co) in cos.iter_mut().enumerate() {
            assert_eq!(co.resume(input), CoroutineResult::Yield(1 + 2 * round + i));
        }
    }
    for (i, co) in cos.iter_mut().enumerate() {
        assert_eq!(co.resume(5), CoroutineResult::Return(10 + i));
    }
}

fn recurse(depth: usize, y: &ugreen::Yielder<usize, usize>) -> usize {
    // ~256 bytes of frame per level that the optimiser cannot drop.
    let pad = std::hint::black_box([depth as u8; 256]);
    if depth == 0 {
        y.suspend(0);
        return 0;
    }
    let below = recurse(depth - 1, y);
    // The frame's array is still alive after the call returns.
    std::hint::black_box(&pad);
    below + 1
}

#[test]
fn deep_recursion_within_the_stack() {
    // 8 MiB stack, 5000 levels of 256+ bytes (under 1 KiB each even in a
    // debug build), suspended at the deepest point.
    let mut co = Coroutine::new(Stack::with_bytes(8 << 20).unwrap(), |y, depth: usize| {
        recurse(depth, y)
    });
    assert_eq!(co.resume(5000), CoroutineResult::Yield(0));
    assert_eq!(co.resume(0), CoroutineResult::Return(5000));
}

#[test]
fn one_stack_reused_for_100_000_coroutines() {
    let mut stack = Stack::new(4).unwrap();
    let mut total = 0u64;
    for i in 0..100_000u64 {
        let mut co = Coroutine::on_stack(&mut stack, move |y, x: u64| y.suspend(x + i) + 1);
        let CoroutineResult::Yield(v) = co.resume(1) else {
            panic!("expected a yield")
        };
        let CoroutineResult::Return(r) = co.resume(v) else {
            panic!("expected a return")
        };
        total += r;
    }
    assert_eq!(total, (0..100_000u64).map(|i| i + 2).sum::<u64>());
    assert!(!stack.is_in_use());
}

#[test]
fn owned_stack_comes_back() {
    let co = Coroutine::<(), (), ()>::new(Stack::new(8).unwrap(), |_, _| {});
    let stack = co.into_stack().expect("owned stack");
    assert_eq!(stack.pages(), 8);
    assert!(!stack.is_in_use());
    let mut co = Coroutine::<u8, (), u8>::new(stack, |_, x| x * 2);
    assert_eq!(co.resume(21), CoroutineResult::Return(42));
}

#[test]
fn panic_propagates_to_the_resumer() {
    let mut co = Coroutine::<(), (), ()>::new(Stack::new(16).unwrap(), |y, _| {
        y.suspend(());
        panic!("boom inside");
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"boom inside"));
    assert!(co.is_finished());
    // The coroutine is finished: resuming again is a clear panic, not UB.
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("finished"), "{msg}");
}

struct Noisy(Rc<RefCell<Vec<&'static str>>>, &'static str);
impl Drop for Noisy {
    fn drop(&mut self) {
        self.0.borrow_mut().push(self.1);
    }
}

#[test]
fn dropping_a_suspended_coroutine_unwinds_its_stack() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let mut co = Coroutine::<(), (), ()>::new(Stack::new(16).unwrap(), move |y, _| {
        let _outer = Noisy(l.clone(), "outer");
        let _inner = Noisy(l.clone(), "inner");
        y.suspend(());
        l.borrow_mut().push("after suspend: must not run");
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    assert!(log.borrow().is_empty());
    drop(co);
    assert_eq!(*log.borrow(), vec!["inner", "outer"]);
}

#[test]
fn dropping_a_fresh_coroutine_drops_its_closure() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let captured = Noisy(log.clone(), "captured");
    let co = Coroutine::<(), (), ()>::new(Stack::new(16).unwrap(), move |_, _| {
        let _keep = &captured;
    });
    assert!(!co.is_started());
    drop(co);
    assert_eq!(*log.borrow(), vec!["captured"]);
}

#[test]
fn dropped_coroutine_frees_its_borrowed_stack_for_the_next() {
    let mut stack = Stack::new(16).unwrap();
    {
        let mut co = Coroutine::<(), (), ()>::on_stack(&mut stack, |y, _| loop {
            y.suspend(());
        });
        co.resume(());
    }
    assert!(!stack.is_in_use());
    let mut co = Coroutine::<u32, (), u32>::on_stack(&mut stack, |_, x| x + 1);
    assert_eq!(co.resume(1), CoroutineResult::Return(2));
}

#[test]
fn nested_coroutines() {
    let mut outer = Coroutine::<(), u32, u32>::new(Stack::new(32).unwrap(), |y, _| {
        let mut inner = Coroutine::<(), u32, u32>::new(Stack::new(16).unwrap(), |y2, _| {
            y2.suspend(1);
            y2.suspend(2);
            3
        });
        let mut sum = 0;
        loop {
            match inner.resume(()) {
                CoroutineResult::Yield(v) => {
                    sum += v;
                    y.suspend(v * 10);
                }
                CoroutineResult::Return(v) => return sum + v,
            }
        }
    });
    assert_eq!(outer.resume(()), CoroutineResult::Yield(10));
    assert_eq!(outer.resume(()), CoroutineResult::Yield(20));
    assert_eq!(outer.resume(()), CoroutineResult::Return(6));
}

#[test]
fn stack_errors() {
    assert_eq!(Stack::new(0).unwrap_err(), ugreen::Error::InvalidSize);
    assert_eq!(
        Stack::new(usize::MAX).unwrap_err(),
        ugreen::Error::InvalidSize
    );
    assert_eq!(
        Stack::new(usize::MAX / ugreen::page_size() + 1).unwrap_err(),
        ugreen::Error::InvalidSize
    );
    assert_eq!(
        Stack::new(Stack::MAX_BYTES / ugreen::page_size() + 1).unwrap_err(),
        ugreen::Error::InvalidSize
    );
    assert_eq!(
        Stack::with_bytes(usize::MAX).unwrap_err(),
        ugreen::Error::InvalidSize
    );
    let s = Stack::new(3).unwrap();
    assert_eq!(s.size(), 3 * ugreen::page_size());
    assert_eq!(s.top() as usize - s.bottom() as usize, s.size());
    assert_eq!(s.guard().1, s.bottom() as usize);
}

/// The permissions of the mapping that holds `addr` (adjacent mappings with
/// equal permissions may be merged by the kernel, so look up by address).
fn perms_at(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let (a, b) = it.next().unwrap().split_once('-').unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        if (a..b).contains(&addr) {
            return it.next().unwrap().to_string();
        }
    }
    panic!("{addr:#x} is not mapped");
}

#[test]
fn stack_is_never_executable_and_guarded() {
    let s = Stack::new(4).unwrap();
    let page = ugreen::page_size();
    let (lo, hi) = s.mapping();
    assert_eq!(hi - lo, 6 * page);
    assert_eq!(perms_at(lo), "---p", "lower guard page");
    assert_eq!(perms_at(hi - 1), "---p", "upper guard page");
    for p in (lo + page..hi - page).step_by(page) {
        assert_eq!(perms_at(p), "rw-p", "usable page {p:#x}");
    }
}

#[test]
fn labels() {
    let mut s = Stack::new(1).unwrap();
    assert_eq!(s.label(), "");
    s.set_label("core 17");
    assert_eq!(s.label(), "core 17");
    s.set_label(&"é".repeat(40)); // 80 bytes, truncated at a character boundary
    assert_eq!(s.label(), "é".repeat(31));
}

/// A capture whose destructor panics: the closure of a never-resumed
/// coroutine is dropped exactly once, even though its drop unwinds out of
/// `into_stack` and then runs the coroutine's `Drop`.
#[test]
fn panicking_capture_of_a_fresh_coroutine_is_dropped_once() {
    struct PanicsOnFirstDrop(Rc<RefCell<u32>>);
    impl Drop for PanicsOnFirstDrop {
        fn drop(&mut self) {
            *self.0.borrow_mut() += 1;
            if *self.0.borrow() == 1 {
                panic!("capture drop");
            }
        }
    }
    let drops = Rc::new(RefCell::new(0));
    let p = PanicsOnFirstDrop(drops.clone());
    let co = Coroutine::<(), (), ()>::new(Stack::new(16).unwrap(), move |_, ()| drop(p));
    let err = panic::catch_unwind(AssertUnwindSafe(|| co.into_stack())).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"capture drop"));
    assert_eq!(*drops.borrow(), 1, "the closure was dropped more than once");
    assert_eq!(Rc::strong_count(&drops), 1);
}

/// A coroutine nested in another one suspends the outer one through the
/// outer one's `Yielder`, and the outer one is then dropped: both stacks
/// unwind, and no panic other than the forced unwind runs on the way.
#[test]
fn inner_coroutine_suspends_the_outer_then_the_outer_is_dropped() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let panics: Rc<RefCell<Vec<String>>> = Rc::default();
    let (l, p) = (log.clone(), panics.clone());
    let mut outer = Coroutine::<(), (), ()>::new(Stack::new(32).unwrap(), move |y_outer, ()| {
        let _o = Noisy(l.clone(), "outer frame");
        let mut inner = Coroutine::<(), (), ()>::new(Stack::new(16).unwrap(), |_, ()| {
            let _i = Noisy(l.clone(), "inner frame");
            y_outer.suspend(());
            l.borrow_mut().push("after suspend: must not run");
        });
        // Records any panic with a message on the way out.
        if let Err(e) = panic::catch_unwind(AssertUnwindSafe(|| inner.resume(()))) {
            if let Some(m) = e.downcast_ref::<String>() {
                p.borrow_mut().push(m.clone());
            }
            if let Some(m) = e.downcast_ref::<&str>() {
                p.borrow_mut().push(m.to_string());
            }
            panic::resume_unwind(e);
        }
    });
    assert_eq!(outer.resume(()), CoroutineResult::Yield(()));
    assert!(log.borrow().is_empty());
    drop(outer);
    assert!(panics.borrow().is_empty(), "{:?}", panics.borrow());
    assert_eq!(*log.borrow(), vec!["inner frame", "outer frame"]);
}

/// The same nest resumed instead of dropped: the inner coroutine continues
/// where it suspended the outer one, and both finish.
#[test]
fn inner_coroutine_suspends_the_outer_then_both_finish() {
    let mut outer = Coroutine::<(), u32, u32>::new(Stack::new(32).unwrap(), |y_outer, ()| {
        let mut inner = Coroutine::<(), (), u32>::new(Stack::new(16).unwrap(), |_, ()| {
            y_outer.suspend(1);
            2
        });
        match inner.resume(()) {
            CoroutineResult::Return(v) => v + 10,
            CoroutineResult::Yield(()) => unreachable!(),
        }
    });
    assert_eq!(outer.resume(()), CoroutineResult::Yield(1));
    assert_eq!(outer.resume(()), CoroutineResult::Return(12));
}

#[test]
fn fallible_constructors_report_what_the_panicking_ones_panic_with() {
    let big = [7u8; 64 * 1024];
    let too_small = Coroutine::<(), (), u8>::try_new(Stack::new(1).unwrap(), move |_, ()| big[0]);
    assert_eq!(too_small.err(), Some(ugreen::Error::InvalidSize));
    let mut one_page = Stack::new(1).unwrap();
    let too_small = Coroutine::<(), (), u8>::try_on_stack(&mut one_page, move |_, ()| big[1]);
    assert_eq!(too_small.err(), Some(ugreen::Error::InvalidSize));
    let err = panic::catch_unwind(|| {
        Coroutine::<(), (), u8>::new(Stack::new(1).unwrap(), move |_, ()| big[2])
    })
    .err()
    .unwrap();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("too small"), "{msg}");

    // A stack that a raw context is made on is in use.
    let stack = Stack::new(16).unwrap();
    let mut ctx = ugreen::RawContext::new();
    unsafe extern "C" fn never_runs(_: *mut core::ffi::c_void, _: usize) {}
    // SAFETY: the context is never swapped into.
    unsafe {
        ugreen::RawContext::make(
            &mut ctx,
            &stack,
            never_runs,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
        .unwrap()
    };
    let mut stack = stack;
    let in_use = Coroutine::<(), (), ()>::try_on_stack(&mut stack, |_, ()| ());
    assert_eq!(in_use.err(), Some(ugreen::Error::WrongState));
    let err = panic::catch_unwind(AssertUnwindSafe(|| {
        drop(Coroutine::<(), (), ()>::on_stack(&mut stack, |_, ()| ()));
    }))
    .err()
    .unwrap();
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("in use"), "{msg}");
    // SAFETY: the raw context is never resumed.
    unsafe { stack.abandon() };
    let mut co = Coroutine::<(), (), u32>::try_on_stack(&mut stack, |_, ()| 5).unwrap();
    assert_eq!(co.resume(()), CoroutineResult::Return(5));
}

/// The fit rule at its boundary, on a 2-page stack (4 KiB pages): the
/// closure's captures, the link and the first frame must leave 4 KiB to run
/// in. A closure that just fits is written to the stack intact (and dropped
/// once, fresh); one that leaves less than 4 KiB is refused; the stack stays
/// usable. (Running a closure copies its captures onto the coroutine's own
/// frames, so one this large needs a larger stack to run.)
#[test]
fn a_closure_that_just_fits_is_accepted_and_one_byte_less_room_is_refused() {
    if ugreen::page_size() != 4096 {
        eprintln!("skipped: the sizes below assume 4 KiB pages");
        return;
    }
    // Link and first frame: at most 64 bytes with the assembly switch; the
    // ucontext backend keeps two contexts in the link and a ucontext_t in
    // the first frame.
    const OVERHEAD: usize = if cfg!(feature = "ucontext") { 2048 } else { 64 };
    // What is left for the captures, less the `Rc` beside the bytes.
    const BYTES: usize = 8192 - 4096 - OVERHEAD - 8;
    struct Big {
        bytes: [u8; BYTES],
        dropped: Rc<RefCell<Vec<u64>>>,
    }
    impl Drop for Big {
        fn drop(&mut self) {
            let sum = self.bytes.iter().map(|&b| u64::from(b)).sum();
            self.dropped.borrow_mut().push(sum);
        }
    }
    assert_eq!(std::mem::size_of::<Big>(), 8192 - 4096 - OVERHEAD);
    let dropped = Rc::new(RefCell::new(Vec::new()));
    let mut stack = Stack::new(2).unwrap();
    let big = Big {
        bytes: [0x5a; BYTES],
        dropped: dropped.clone(),
    };
    let co = Coroutine::<(), (), u8>::try_on_stack(&mut stack, move |_, ()| {
        let whole = &big; // captures all of `big`, not just its bytes
        whole.bytes[0]
    })
    .expect("fits");
    drop(co);
    assert_eq!(*dropped.borrow(), [0x5a * BYTES as u64]);
    let too_big = [0u8; 8192 - 4096 + 1];
    let refused = Coroutine::<(), (), u8>::try_on_stack(&mut stack, move |_, ()| too_big[0]);
    assert_eq!(refused.err(), Some(ugreen::Error::InvalidSize));
    let mut co = Coroutine::<(), (), u8>::on_stack(&mut stack, |_, ()| 9);
    assert_eq!(co.resume(()), CoroutineResult::Return(9));
}

#[derive(Clone, Copy)]
#[repr(align(4096))]
struct PageAligned([u64; 4]);

#[derive(Clone, Copy)]
#[repr(align(64))]
struct LineAligned(u64);

/// Captures, inputs, yields and results with large alignments: the slot at
/// the top of the stack is aligned for the closure and for the outcome
/// (debug builds check every `ptr::read` for alignment).
#[test]
fn over_aligned_captures_and_results() {
    let page = PageAligned([1, 2, 3, 4]);
    let mut co = Coroutine::new(Stack::new(64).unwrap(), move |y, x: LineAligned| {
        assert_eq!(&page as *const PageAligned as usize % 4096, 0);
        let next = y.suspend(LineAligned(x.0 + page.0.iter().sum::<u64>()));
        PageAligned([next.0; 4])
    });
    match co.resume(LineAligned(5)) {
        CoroutineResult::Yield(v) => assert_eq!(v.0, 15),
        CoroutineResult::Return(_) => panic!("returned early"),
    }
    match co.resume(LineAligned(7)) {
        CoroutineResult::Return(v) => {
            assert_eq!(&v as *const PageAligned as usize % 4096, 0);
            assert_eq!(v.0, [7; 4]);
        }
        CoroutineResult::Yield(_) => panic!("yielded again"),
    }
}

/// Zero-sized inputs, yields and results travel without a value behind them.
#[test]
fn zero_sized_values_both_ways() {
    struct Token;
    let mut co = Coroutine::new(Stack::new(4).unwrap(), |y, Token| {
        for _ in 0..3 {
            let Token = y.suspend(Token);
        }
        Token
    });
    for _ in 0..3 {
        assert!(matches!(co.resume(Token), CoroutineResult::Yield(Token)));
    }
    assert!(matches!(co.resume(Token), CoroutineResult::Return(Token)));
    assert!(co.is_finished());
}
