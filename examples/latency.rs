//! Switch latency of ugreen against glibc's `swapcontext`, measured in one
//! process so the ratios compare like with like.
//!
//! ```text
//! cargo run --release --example latency [-- [--batches N] [--no-c]]
//! ```
//!
//! Every case runs in short batches (~1 ms), and the batches of all cases
//! are interleaved round by round, so every case sees the same machine.
//! Printed per case: the median of the batches and their fastest decile
//! (p10, the speed when nothing competes for the core); per ratio: the
//! ratio of the medians, of the p10s, and the median of per-round ratios.
//!
//! Measured:
//!
//! * one-way switch, ping-pong between two contexts, at call depth 0 (the
//!   loops call the switch directly) and depth 1 (each side calls one extra
//!   non-inlined function that calls the switch):
//!   - `ugreen_context_swap`, the assembly routine, called through its C symbol;
//!   - the safe API: `Coroutine::resume` / `Yielder::suspend`;
//!   - glibc `swapcontext` on a preallocated stack.
//! * creation: make a context on a reused stack, enter it, and let its entry
//!   function return to the maker (`RawContext::make` + swap, and
//!   `Coroutine::on_stack` + `resume`) against `getcontext` + `makecontext` +
//!   `swapcontext` (returning through `uc_link`).
//!
//! Then, when the program runs natively, it runs scripts/c-latency.sh, which
//! builds and runs `examples/c/latency.c`:
//! the same ping-pong with `ugreen_context_swap` called from C through the
//! header, against `swapcontext` in that process.
//!
//! The pairs and creation cases are in examples/fixtures/mod.rs, shared with
//! the switch_count example and the benches.

// The baseline, glibc's swapcontext, does not exist in musl's libc: on
// other targets the program says so and stops.
#![cfg_attr(not(target_env = "gnu"), allow(dead_code, unused_imports))]

#[path = "../tests/common/emulation.rs"]
mod emulation;
#[path = "fixtures/mod.rs"]
mod fixtures;

use std::mem::MaybeUninit;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use fixtures::*;

// ------------------------------------------------------------- statistics

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One measured case: its batches' ns per operation.
struct Case {
    name: &'static str,
    /// Operations per batch.
    ops: u64,
    /// Runs one batch of `ops` operations, returns elapsed ns.
    run: Box<dyn FnMut(u64) -> f64>,
    samples: Vec<f64>,
}

impl Case {
    fn new(name: &'static str, ops: u64, run: Box<dyn FnMut(u64) -> f64>) -> Case {
        Case {
            name,
            ops,
            run,
            samples: Vec::new(),
        }
    }

    fn batch(&mut self) {
        let ns = (self.run)(self.ops);
        self.samples.push(ns / self.ops as f64);
    }

    fn median(&self) -> f64 {
        median(&mut self.samples.clone())
    }

    /// The fastest decile's boundary: the speed when nothing else
    /// competes for the core (robust against preempted or slowed batches).
    fn p10(&self) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        s[s.len() / 10]
    }
}

fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64
}

/// A ping-pong coroutine of ugreen's (see `fixtures`); `run(n)` does `n`
/// one-way switches.
fn coroutine_case(depth: u32) -> Box<dyn FnMut(u64) -> f64> {
    let mut co = ugreen_ping(depth);
    Box::new(move |n| time(|| ugreen_switches(&mut co, depth, n)))
}

/// The same ping-pong with corosensei 0.3, on a stack of the same size.
fn corosensei_case(depth: u32) -> Box<dyn FnMut(u64) -> f64> {
    let mut co = cs_ping(depth);
    Box::new(move |n| time(|| cs_switches(&mut co, depth, n)))
}

/// `RawContext::make` + `ugreen_context_swap` into it + return through the
/// link, on one reused stack.
fn create_raw_case() -> Box<dyn FnMut(u64) -> f64> {
    let mut f = MakeRaw::new();
    Box::new(move |n| time(|| f.run(n)))
}

/// `Coroutine::on_stack` + `resume` to completion, on one reused stack.
fn create_coroutine_case() -> Box<dyn FnMut(u64) -> f64> {
    let mut f = MakeCo::new();
    Box::new(move |n| time(|| f.run(n)))
}

/// corosensei's `Coroutine::with_stack` + `resume` to completion +
/// `into_stack`, on one reused stack.
fn create_corosensei_case() -> Box<dyn FnMut(u64) -> f64> {
    let mut f = MakeCs::new();
    Box::new(move |n| time(|| f.run(n)))
}

/// `getcontext` + `makecontext` + `swapcontext`, returning through `uc_link`,
/// on one preallocated stack.
#[cfg(target_env = "gnu")]
fn create_uc_case() -> Box<dyn FnMut(u64) -> f64> {
    let mut f = MakeUc::new();
    Box::new(move |n| time(|| f.run(n)))
}

// ---------------------------------------------------------------- machine

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    for key in ["model name", "Model Name", "Hardware", "CPU part"] {
        for line in info.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim() == key && !v.trim().is_empty() {
                    return v.trim().to_string();
                }
            }
        }
    }
    "unknown".to_string()
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: `u` is valid for writes.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("?".into(), "?".into());
    }
    // c_char is i8 on x86_64 and u8 on aarch64.
    #[allow(clippy::unnecessary_cast)]
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (
        format!("{} {}", field(&u.sysname), field(&u.release)),
        field(&u.machine),
    )
}

fn glibc_version() -> String {
    extern "C" {
        fn gnu_get_libc_version() -> *const libc::c_char;
    }
    // SAFETY: returns a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Whether the program runs under user-mode emulation (qemu-user), checked
/// as the tests check it; `UGREEN_EMULATED=0/1` overrides it.
fn emulated() -> bool {
    if let Ok(v) = std::env::var("UGREEN_EMULATED") {
        return v == "1";
    }
    emulation::emulated()
}

// --------------------------------------------------------------------- C

/// Runs scripts/c-latency.sh, the one place that builds and runs
/// examples/c/latency.c (the same ping-pong called from C through
/// `ugreen.h`), into this program's target directory.
fn run_c_program(batches: usize) {
    println!();
    if emulated() || !cfg!(target_os = "linux") {
        println!("C caller: skipped under emulation; run scripts/c-latency.sh --target <triple>");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // target/<profile>/examples/latency -> target
    let exe = std::env::current_exe().unwrap_or_default();
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/c-latency.sh"))
        .arg(batches.to_string());
    if let Some(target_dir) = exe.ancestors().nth(3) {
        cmd.env("CARGO_TARGET_DIR", target_dir);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => println!("C caller: scripts/c-latency.sh exited with {s}"),
        Err(e) => println!("C caller: cannot run scripts/c-latency.sh ({e})"),
    }
}

// -------------------------------------------------------------------- main

#[cfg(not(target_env = "gnu"))]
fn main() {
    println!(
        "latency: the baseline, glibc's swapcontext, does not exist on this target \
         (no getcontext/makecontext/swapcontext in its libc): nothing to compare; \
         `cargo bench` and the tests measure and check ugreen itself"
    );
}

#[cfg(target_env = "gnu")]
fn main() {
    let mut batches = 101usize;
    let mut with_c = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batches" => {
                batches = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--batches N")
            }
            "--no-c" => with_c = false,
            "-h" | "--help" => {
                println!("usage: latency [--batches N] [--no-c]");
                return;
            }
            other => panic!("unknown argument {other:?}"),
        }
    }
    let batches = batches.max(3);

    let (kernel, machine) = uname();
    println!(
        "ugreen {} latency: one process, median and fastest decile (p10) of {batches} interleaved batches",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "machine: {}{} | {} (uname: {machine}) | {kernel} | glibc {} | backend {}{}",
        cpu_model(),
        if emulated() { " (host CPU)" } else { "" },
        std::env::consts::ARCH,
        glibc_version(),
        ugreen::BACKEND,
        if emulated() {
            " | EMULATED (qemu-user): only ratios mean anything"
        } else {
            ""
        },
    );
    println!(
        "load average: {} | cpus online: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // Operations per batch: a batch takes roughly 0.5-2 ms natively, short
    // enough that most batches run without being preempted on a busy
    // machine, so the median is the uninterrupted speed.
    let fast = 200_000u64; // one-way switches of the fast routines
    let slow = 8_000u64; // one-way switches of swapcontext
    let emul = emulated();
    let scale = |n: u64| if emul { n / 5 } else { n };

    let mut asm0 = RawPair::new(0);
    let mut asm1 = RawPair::new(1);
    let mut uc0 = UcPair::new(0);
    let mut uc1 = UcPair::new(1);

    // SAFETY (all closures below): the pairs outlive the cases (dropped at the
    // end of main, after the cases).
    let (a0, a1): (*mut RawPair, *mut RawPair) = (&mut asm0, &mut asm1);
    let (u0, u1): (*mut UcPair, *mut UcPair) = (&mut uc0, &mut uc1);
    let mut cases = vec![
        Case::new(
            "asm0",
            scale(fast),
            Box::new(move |n| time(|| unsafe { (*a0).switches(n) })),
        ),
        Case::new(
            "asm1",
            scale(fast),
            Box::new(move |n| time(|| unsafe { (*a1).switches(n) })),
        ),
        Case::new("co0", scale(fast), coroutine_case(0)),
        Case::new("co1", scale(fast), coroutine_case(1)),
        Case::new(
            "uc0",
            scale(slow),
            Box::new(move |n| time(|| unsafe { (*u0).switches(n) })),
        ),
        Case::new(
            "uc1",
            scale(slow),
            Box::new(move |n| time(|| unsafe { (*u1).switches(n) })),
        ),
        Case::new("mk_raw", scale(fast / 4), create_raw_case()),
        Case::new("mk_co", scale(fast / 4), create_coroutine_case()),
        Case::new("mk_uc", scale(slow / 4), create_uc_case()),
        Case::new("cs0", scale(fast), corosensei_case(0)),
        Case::new("cs1", scale(fast), corosensei_case(1)),
        Case::new("mk_cs", scale(fast / 4), create_corosensei_case()),
    ];

    // Warm-up batch (discarded), then the measured ones, interleaved.
    for c in cases.iter_mut() {
        c.batch();
        c.samples.clear();
    }
    let started = Instant::now();
    for _ in 0..batches {
        for c in cases.iter_mut() {
            c.batch();
        }
    }
    let elapsed = started.elapsed();

    let get = |name: &str| cases.iter().find(|c| c.name == name).expect("case");
    let m = |name: &str| get(name).median();
    let p10 = |name: &str| get(name).p10();

    println!();
    println!("one-way switch, ns                                  depth 0: median    p10   depth 1: median    p10");
    let row = |label: &str, n0: &str, n1: &str| {
        println!(
            "  {label:<44} {:>14.2} {:>7.2} {:>15.2} {:>7.2}",
            m(n0),
            p10(n0),
            m(n1),
            p10(n1)
        );
    };
    // Three views of a ratio: of the medians, of the fastest deciles, and
    // the median of per-round ratios (the two batches of one round ran
    // milliseconds apart, so they saw the same load on a shared machine).
    let paired = |base: &str, n: &str| {
        let (b, c) = (&get(base).samples, &get(n).samples);
        let mut r: Vec<f64> = b.iter().zip(c).map(|(x, y)| x / y).collect();
        median(&mut r)
    };
    let ratio = |label: &str, base0: &str, n0: &str, base1: &str, n1: &str| {
        println!(
            "  {label:<44} {:>13.1}x {:>6.1}x {:>14.1}x {:>6.1}x",
            m(base0) / m(n0),
            p10(base0) / p10(n0),
            m(base1) / m(n1),
            p10(base1) / p10(n1)
        );
        println!(
            "  {:<44} {:>13.1}x {:>7} {:>14.1}x",
            "  paired (median of per-round ratios)",
            paired(base0, n0),
            "",
            paired(base1, n1)
        );
    };
    row("ugreen_context_swap (C symbol)", "asm0", "asm1");
    row("ugreen Coroutine resume/suspend", "co0", "co1");
    row("glibc swapcontext", "uc0", "uc1");
    ratio(
        "ratio swapcontext / ugreen_context_swap",
        "uc0",
        "asm0",
        "uc1",
        "asm1",
    );
    ratio("ratio swapcontext / Coroutine", "uc0", "co0", "uc1", "co1");

    println!();
    println!("creation on a reused stack (make + first enter + finish), ns      median    p10");
    let row1 = |label: &str, n: &str| println!("  {label:<60} {:>10.2} {:>7.2}", m(n), p10(n));
    let ratio1 = |label: &str, base: &str, n: &str| {
        println!(
            "  {label:<60} {:>9.1}x {:>6.1}x",
            m(base) / m(n),
            p10(base) / p10(n)
        );
        println!(
            "  {:<60} {:>9.1}x",
            "  paired (median of per-round ratios)",
            paired(base, n)
        );
    };
    row1("ugreen RawContext::make + ugreen_context_swap", "mk_raw");
    row1("ugreen Coroutine::on_stack + resume", "mk_co");
    row1("getcontext + makecontext + swapcontext", "mk_uc");
    ratio1("ratio glibc / ugreen raw", "mk_uc", "mk_raw");
    ratio1("ratio glibc / ugreen Coroutine", "mk_uc", "mk_co");

    println!();
    println!("Rust coroutines (same batches), ns     ugreen median   p10  corosensei median   p10  ugreen/corosensei: medians   p10  paired");
    let vs = |label: &str, ours: &str, theirs: &str| {
        println!(
            "  {label:<38} {:>12.2} {:>6.2} {:>17.2} {:>6.2} {:>25.2}x {:>5.2}x {:>6.2}x",
            m(ours),
            p10(ours),
            m(theirs),
            p10(theirs),
            m(ours) / m(theirs),
            p10(ours) / p10(theirs),
            paired(ours, theirs)
        );
    };
    vs("resume + suspend, one-way, depth 0", "co0", "cs0");
    vs("resume + suspend, one-way, depth 1", "co1", "cs1");
    vs("create (reused stack) + resume + return", "mk_co", "mk_cs");

    println!();
    println!("measured in {:.1} s", elapsed.as_secs_f64());

    drop(cases);
    drop((asm0, asm1, uc0, uc1));

    if with_c {
        run_c_program(batches);
    }
}
