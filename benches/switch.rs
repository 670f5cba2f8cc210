//! Criterion benches of the switch and of context creation, ugreen against
//! glibc swapcontext, and ugreen's `Coroutine` against corosensei 0.3 (group
//! `rust_coroutines`: the two libraries' benches of each operation run one
//! after the other in this process; the latency example interleaves them
//! batch by batch and prints paired ratios). Every stack is allocated
//! before the timed loop.
//!
//! ```text
//! cargo bench --bench switch [-- FILTER]
//! ```
//!
//! Times are per iteration: `*/round_trip` is two one-way switches (there
//! and back), `create/*` is make + first enter + finish on a reused stack.

use std::ffi::c_void;
use std::hint::black_box;
#[cfg(target_env = "gnu")]
use std::mem::MaybeUninit;
use std::ptr::{self, addr_of_mut};
#[cfg(target_env = "gnu")]
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ugreen::ffi::ugreen_context_swap;
use ugreen::{Coroutine, CoroutineResult, RawContext, Stack};

const STACK_PAGES: usize = 16;

// ---------------------------------------------------------------- raw API

/// A green context that switches straight back every time it is resumed.
struct Pair {
    main: RawContext,
    green: RawContext,
    stop: bool,
    stack: Stack,
}

unsafe extern "C" fn bounce(arg: *mut c_void, _transfer: usize) {
    let p = arg.cast::<Pair>();
    // SAFETY: the pair outlives the context; `main` is suspended whenever
    // this side runs.
    unsafe {
        loop {
            RawContext::swap(addr_of_mut!((*p).green), addr_of_mut!((*p).main));
            if ptr::read_volatile(addr_of_mut!((*p).stop)) {
                return;
            }
        }
    }
}

impl Pair {
    fn new() -> Box<Pair> {
        let mut p = Box::new(Pair {
            main: RawContext::new(),
            green: RawContext::new(),
            stop: false,
            stack: Stack::new(STACK_PAGES).expect("stack"),
        });
        let pp: *mut Pair = &mut *p;
        // SAFETY: the Box keeps the pair at one address; the link `main` is
        // suspended whenever the green side runs or returns.
        unsafe {
            RawContext::make(
                addr_of_mut!((*pp).green),
                &(*pp).stack,
                bounce,
                pp.cast(),
                addr_of_mut!((*pp).main),
            )
            .expect("make");
        }
        p
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop = true;
        // SAFETY: the green side sees `stop` and returns to `main`.
        unsafe { RawContext::swap(&mut self.main, &mut self.green) };
    }
}

fn raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw");
    let mut pair = Pair::new();
    let p: *mut Pair = &mut *pair;
    // SAFETY (both loops): the green side is suspended between iterations.
    g.bench_function("RawContext::swap/round_trip", |b| {
        b.iter(|| unsafe { RawContext::swap(addr_of_mut!((*p).main), addr_of_mut!((*p).green)) })
    });
    g.bench_function("ugreen_context_swap/round_trip", |b| {
        b.iter(|| unsafe { ugreen_context_swap(addr_of_mut!((*p).main), addr_of_mut!((*p).green)) })
    });
    g.finish();
    drop(pair);
}

// --------------------------------------------------------------- safe API

fn coroutine(c: &mut Criterion) {
    let mut g = c.benchmark_group("coroutine");
    let mut co: Coroutine<u64, u64, ()> =
        Coroutine::new(Stack::new(STACK_PAGES).expect("stack"), |y, mut x| loop {
            x = y.suspend(x + 1);
        });
    g.bench_function("resume_suspend/round_trip", |b| {
        b.iter(|| match co.resume(black_box(1)) {
            CoroutineResult::Yield(v) => v,
            CoroutineResult::Return(()) => unreachable!(),
        })
    });
    g.finish();
}

// ------------------------------------------------------------ swapcontext
// glibc only: musl's libc has no getcontext/makecontext/swapcontext, so on
// musl targets the benches run without this baseline.

#[cfg(not(target_env = "gnu"))]
fn swapcontext(_: &mut Criterion) {}

#[cfg(target_env = "gnu")]
struct UcPair {
    main: libc::ucontext_t,
    green: libc::ucontext_t,
    _stack: Stack,
}

#[cfg(target_env = "gnu")]
static UC: AtomicPtr<UcPair> = AtomicPtr::new(ptr::null_mut());

#[cfg(target_env = "gnu")]
extern "C" fn uc_bounce() {
    let p = UC.load(Ordering::Relaxed);
    // SAFETY: `p` is the live pair; `main` holds the suspended main side.
    unsafe {
        loop {
            libc::swapcontext(addr_of_mut!((*p).green), addr_of_mut!((*p).main));
        }
    }
}

#[cfg(target_env = "gnu")]
fn zeroed_uc() -> libc::ucontext_t {
    // SAFETY: ucontext_t is plain data; all-zero is a valid bit pattern.
    unsafe { MaybeUninit::zeroed().assume_init() }
}

#[cfg(target_env = "gnu")]
fn swapcontext(c: &mut Criterion) {
    let mut g = c.benchmark_group("swapcontext");
    let stack = Stack::new(STACK_PAGES).expect("stack");
    let (bottom, size) = (stack.bottom(), stack.size());
    let mut pair = Box::new(UcPair {
        main: zeroed_uc(),
        green: zeroed_uc(),
        _stack: stack,
    });
    let p: *mut UcPair = &mut *pair;
    UC.store(p, Ordering::Relaxed);
    // SAFETY: the pair (and the stack in it) outlives every switch below;
    // the green side never returns (it is left suspended on its stack).
    unsafe {
        let green = addr_of_mut!((*p).green);
        assert_eq!(libc::getcontext(green), 0);
        (*green).uc_stack.ss_sp = bottom.cast();
        (*green).uc_stack.ss_size = size;
        (*green).uc_link = ptr::null_mut();
        libc::makecontext(green, uc_bounce, 0);
    }
    g.bench_function("swapcontext/round_trip", |b| {
        // SAFETY: the green side is suspended between iterations.
        b.iter(|| unsafe { libc::swapcontext(addr_of_mut!((*p).main), addr_of_mut!((*p).green)) })
    });
    g.finish();
    drop(pair);
}

// --------------------------------------------------------------- creation

unsafe extern "C" fn return_at_once(_arg: *mut c_void, _transfer: usize) {}

#[cfg(target_env = "gnu")]
extern "C" fn uc_return_at_once() {}

fn create(c: &mut Criterion) {
    let mut g = c.benchmark_group("create");

    let stack = Stack::new(STACK_PAGES).expect("stack");
    let (mut main, mut green) = (Box::new(RawContext::new()), Box::new(RawContext::new()));
    let (m, gr): (*mut RawContext, *mut RawContext) = (&mut *main, &mut *green);
    g.bench_function("RawContext::make+swap+finish", |b| {
        b.iter(|| {
            // SAFETY: the previous context on `stack` has finished; its link
            // `m` is suspended by the swap.
            unsafe {
                RawContext::make(gr, &stack, return_at_once, ptr::null_mut(), m).expect("make");
                RawContext::swap(m, gr);
            }
        })
    });

    let mut co_stack = Stack::new(STACK_PAGES).expect("stack");
    g.bench_function("Coroutine::on_stack+resume", |b| {
        b.iter(|| {
            let mut co: Coroutine<u32, (), u32> =
                Coroutine::on_stack(&mut co_stack, |_, x: u32| x + 1);
            co.resume(black_box(1))
        })
    });

    #[cfg(target_env = "gnu")]
    {
        let uc_stack = Stack::new(STACK_PAGES).expect("stack");
        let (mut um, mut ug) = (Box::new(zeroed_uc()), Box::new(zeroed_uc()));
        let (um, ug): (*mut libc::ucontext_t, *mut libc::ucontext_t) = (&mut *um, &mut *ug);
        let (bottom, size) = (uc_stack.bottom(), uc_stack.size());
        g.bench_function("getcontext+makecontext+swapcontext", |b| {
            b.iter(|| {
                // SAFETY: the stack is free again (the previous context
                // returned); uc_link `um` is saved by the swapcontext.
                unsafe {
                    libc::getcontext(ug);
                    (*ug).uc_stack.ss_sp = bottom.cast();
                    (*ug).uc_stack.ss_size = size;
                    (*ug).uc_link = um;
                    libc::makecontext(ug, uc_return_at_once, 0);
                    libc::swapcontext(um, ug);
                }
            })
        });
    }
    g.finish();
}

// ------------------------------------------------------ against corosensei

#[inline(never)]
fn ugreen_resume_depth1(co: &mut Coroutine<'static, (), (), ()>) -> CoroutineResult<(), ()> {
    let r = co.resume(());
    no_tail_call();
    r
}

#[inline(never)]
fn ugreen_suspend_depth1(y: &ugreen::Yielder<(), ()>) {
    y.suspend(());
    no_tail_call();
}

#[inline(never)]
fn cs_resume_depth1(
    co: &mut corosensei::Coroutine<(), (), ()>,
) -> corosensei::CoroutineResult<(), ()> {
    let r = co.resume(());
    no_tail_call();
    r
}

#[inline(never)]
fn cs_suspend_depth1(y: &corosensei::Yielder<(), ()>) {
    y.suspend(());
    no_tail_call();
}

/// Keeps the preceding call from becoming a tail call.
#[inline(always)]
fn no_tail_call() {
    // SAFETY: an empty assembly statement.
    unsafe { core::arch::asm!("", options(nomem, nostack, preserves_flags)) };
}

fn rust_coroutines(c: &mut Criterion) {
    let mut g = c.benchmark_group("rust_coroutines");
    let cs_stack =
        || corosensei::stack::DefaultStack::new(STACK_PAGES * ugreen::page_size()).expect("stack");

    let mut ug0: Coroutine<(), (), ()> =
        Coroutine::new(Stack::new(STACK_PAGES).expect("stack"), |y, ()| loop {
            y.suspend(());
        });
    let mut cs0: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::with_stack(cs_stack(), |y, ()| loop {
            y.suspend(());
        });
    g.bench_function("depth0/ugreen", |b| b.iter(|| black_box(ug0.resume(()))));
    g.bench_function("depth0/corosensei", |b| {
        b.iter(|| black_box(cs0.resume(())))
    });

    let mut ug1: Coroutine<(), (), ()> =
        Coroutine::new(Stack::new(STACK_PAGES).expect("stack"), |y, ()| loop {
            ugreen_suspend_depth1(y);
        });
    let mut cs1: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::with_stack(cs_stack(), |y, ()| loop {
            cs_suspend_depth1(y);
        });
    g.bench_function("depth1/ugreen", |b| {
        b.iter(|| black_box(ugreen_resume_depth1(&mut ug1)))
    });
    g.bench_function("depth1/corosensei", |b| {
        b.iter(|| black_box(cs_resume_depth1(&mut cs1)))
    });

    let mut ug_stack = Stack::new(STACK_PAGES).expect("stack");
    g.bench_function("create/ugreen", |b| {
        b.iter(|| {
            let mut co: Coroutine<u32, (), u32> =
                Coroutine::on_stack(&mut ug_stack, |_, x: u32| x + 1);
            co.resume(black_box(1))
        })
    });
    let mut cs_reused = Some(cs_stack());
    g.bench_function("create/corosensei", |b| {
        b.iter(|| {
            let mut co: corosensei::Coroutine<u32, (), u32> =
                corosensei::Coroutine::with_stack(cs_reused.take().expect("stack"), |_, x: u32| {
                    x + 1
                });
            let r = co.resume(black_box(1));
            cs_reused = Some(co.into_stack());
            r
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = raw, coroutine, swapcontext, create, rust_coroutines
}
criterion_main!(benches);
