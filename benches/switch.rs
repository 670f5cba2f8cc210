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
//! The pairs and creation cases are in examples/fixtures/mod.rs, shared
//! with the latency and switch_count examples.

#[path = "../examples/fixtures/mod.rs"]
mod fixtures;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fixtures::*;
use ugreen::ffi::ugreen_context_swap;
use ugreen::{Coroutine, CoroutineResult, RawContext, Stack};

// ---------------------------------------------------------------- raw API

fn raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw");
    // The green side switches back with `RawContext::swap`.
    let mut pair = RawPair::rust();
    let (main, green) = pair.ends();
    // SAFETY (both loops): the green side is suspended between iterations.
    g.bench_function("RawContext::swap/round_trip", |b| {
        b.iter(|| unsafe { RawContext::swap(main, green) })
    });
    g.bench_function("ugreen_context_swap/round_trip", |b| {
        b.iter(|| unsafe { ugreen_context_swap(main, green) })
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
fn swapcontext(c: &mut Criterion) {
    let mut g = c.benchmark_group("swapcontext");
    let mut pair = UcPair::new(0);
    let (main, green) = pair.ends();
    g.bench_function("swapcontext/round_trip", |b| {
        // SAFETY: the green side is suspended between iterations.
        b.iter(|| unsafe { libc::swapcontext(main, green) })
    });
    g.finish();
    drop(pair);
}

// --------------------------------------------------------------- creation

fn create(c: &mut Criterion) {
    let mut g = c.benchmark_group("create");

    let mut raw = MakeRaw::new();
    g.bench_function("RawContext::make+swap+finish", |b| {
        b.iter(|| raw.once_rust())
    });

    let mut co = MakeCo::new();
    g.bench_function("Coroutine::on_stack+resume", |b| b.iter(|| co.once()));

    #[cfg(target_env = "gnu")]
    {
        let mut uc = MakeUc::new();
        g.bench_function("getcontext+makecontext+swapcontext", |b| {
            b.iter(|| uc.once())
        });
    }
    g.finish();
}

// ------------------------------------------------------ against corosensei

fn rust_coroutines(c: &mut Criterion) {
    let mut g = c.benchmark_group("rust_coroutines");

    let (mut ug0, mut cs0) = (ugreen_ping(0), cs_ping(0));
    g.bench_function("depth0/ugreen", |b| b.iter(|| black_box(ug0.resume(()))));
    g.bench_function("depth0/corosensei", |b| {
        b.iter(|| black_box(cs0.resume(())))
    });

    let (mut ug1, mut cs1) = (ugreen_ping(1), cs_ping(1));
    g.bench_function("depth1/ugreen", |b| {
        b.iter(|| ugreen_resume_depth1(&mut ug1))
    });
    g.bench_function("depth1/corosensei", |b| {
        b.iter(|| cs_resume_depth1(&mut cs1))
    });

    let mut ug_make = MakeCo::new();
    g.bench_function("create/ugreen", |b| b.iter(|| ug_make.once()));
    let mut cs_make = MakeCs::new();
    g.bench_function("create/corosensei", |b| b.iter(|| cs_make.once()));
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
