//! A fixed amount of switching work, for counting instructions with
//! callgrind (scripts/callgrind.sh runs it with N and 2N and divides the
//! difference by N, which cancels start-up and set-up costs).
//!
//! ```text
//! switch_count <case> <n>
//! ```
//!
//! Each case is a function of its own (never inlined), so every loop is
//! compiled alike, without registers reserved by the code around it. The
//! pairs and creation cases are in examples/fixtures/mod.rs, shared with
//! the latency example and the benches.
//!
//! Cases (`n` operations each):
//! * `asm`: `n` one-way switches with `ugreen_context_swap` (C symbol), depth 0;
//! * `coroutine`: `n` one-way switches with `Coroutine::resume`/`suspend`;
//! * `swapcontext`: `n` one-way switches with glibc `swapcontext`;
//! * `create-raw`: `n` times `RawContext::make` + swap in + return via link;
//! * `create-coroutine`: `n` times `Coroutine::on_stack` + `resume` to the end;
//! * `create-ucontext`: `n` times `getcontext` + `makecontext` + `swapcontext`;
//! * `corosensei`, `create-corosensei`: the `coroutine` and
//!   `create-coroutine` cases with corosensei 0.3 (`with_stack` on a reused
//!   stack, then `into_stack`);
//! * `coroutine1`, `corosensei1`: the `coroutine` and `corosensei` cases at
//!   depth 1 (each side calls one extra non-inlined function that switches).

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::*;

#[inline(never)]
fn asm(n: u64) {
    RawPair::new(0).switches(n);
}

#[inline(never)]
fn coroutine(n: u64) {
    ugreen_switches(&mut ugreen_ping(0), 0, n);
}

#[inline(never)]
fn coroutine1(n: u64) {
    ugreen_switches(&mut ugreen_ping(1), 1, n);
}

#[inline(never)]
fn corosensei(n: u64) {
    cs_switches(&mut cs_ping(0), 0, n);
}

#[inline(never)]
fn corosensei1(n: u64) {
    cs_switches(&mut cs_ping(1), 1, n);
}

#[cfg(target_env = "gnu")]
#[inline(never)]
fn swapcontext(n: u64) {
    UcPair::new(0).switches(n);
}

#[inline(never)]
fn create_raw(n: u64) {
    MakeRaw::new().run(n);
}

#[inline(never)]
fn create_coroutine(n: u64) {
    MakeCo::new().run(n);
}

#[inline(never)]
fn create_corosensei(n: u64) {
    MakeCs::new().run(n);
}

#[cfg(target_env = "gnu")]
#[inline(never)]
fn create_ucontext(n: u64) {
    MakeUc::new().run(n);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    match case.as_str() {
        "asm" => asm(n),
        "coroutine" => coroutine(n),
        #[cfg(target_env = "gnu")]
        "swapcontext" => swapcontext(n),
        "create-raw" => create_raw(n),
        "create-coroutine" => create_coroutine(n),
        #[cfg(target_env = "gnu")]
        "create-ucontext" => create_ucontext(n),
        "corosensei" => corosensei(n),
        "coroutine1" => coroutine1(n),
        "corosensei1" => corosensei1(n),
        "create-corosensei" => create_corosensei(n),
        #[cfg(not(target_env = "gnu"))]
        "swapcontext" | "create-ucontext" => {
            eprintln!("switch_count: {case} needs glibc (musl's libc has no swapcontext)");
            std::process::exit(2);
        }
        _ => {
            eprintln!(
                "usage: switch_count <asm|coroutine|swapcontext|create-raw|create-coroutine|create-ucontext|corosensei|create-corosensei|coroutine1|corosensei1> <n>"
            );
            std::process::exit(2);
        }
    }
}
