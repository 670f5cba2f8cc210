//! Randomized stress test: thousands of green threads driven through random
//! switch orders, random call depths on both sides of every switch and
//! random values, every result checked against a model computed in plain
//! code on the main stack.
//!
//! Seeded and reproducible: the seed is printed; `UGREEN_STRESS_SEED=<n>`
//! replays one, `UGREEN_STRESS_SCALE=<f>` multiplies the amount of work. A
//! release build makes more than 10^7 switches in total (asserted); a debug
//! build does (and asserts) a twentieth of that, and a run under qemu-user
//! a quarter.

mod common;

use core::ffi::c_void;
use core::ptr::addr_of_mut;
use std::cell::Cell;
use std::hint::black_box;
use ugreen::{Coroutine, CoroutineResult, RawContext, Stack};

/// Total one-way switches the two tests together must reach in release.
const RELEASE_SWITCHES: u64 = 10_000_000;
const DEFAULT_SEED: u64 = 0x5eed_0f9e_3779;

/// SplitMix64: small, fast, and good enough to drive a schedule.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("UGREEN_STRESS_SEED") {
        Ok(s) => s.parse().expect("UGREEN_STRESS_SEED is a decimal u64"),
        Err(_) => DEFAULT_SEED,
    }
}

/// Scales an amount of work: full in release, 1/20 in debug builds, 1/4
/// under qemu-user, times `UGREEN_STRESS_SCALE`.
fn scaled(release_amount: u64) -> u64 {
    let mut divisor = if cfg!(debug_assertions) { 20.0 } else { 1.0 };
    if common::emulator().is_some() {
        divisor *= 4.0;
    }
    let factor: f64 = std::env::var("UGREEN_STRESS_SCALE")
        .ok()
        .map(|s| s.parse().expect("UGREEN_STRESS_SCALE is a number"))
        .unwrap_or(1.0);
    ((release_amount as f64 * factor / divisor) as u64).max(1)
}

/// The switches each test must make: its share of [`RELEASE_SWITCHES`],
/// scaled like the work.
fn required_switches(share: u64) -> u64 {
    scaled(share)
}

/// Stack sizes: as given for optimized code; debug builds (and ASan's
/// redzones) make frames several times larger. musl targets unwind with
/// rustc's LLVM libunwind, whose frames are larger than libgcc's: on aarch64
/// the unwind of a dropped coroutine overflows the release sizes (in
/// `CFI_Parser::parseFDEInstructions`); twice them suffice.
fn pages(release: usize) -> usize {
    if cfg!(debug_assertions) {
        release * 4
    } else if cfg!(target_env = "musl") {
        release * 2
    } else {
        release
    }
}

// The functions both a green thread and the model apply to its state.

fn mix(acc: u64, v: u64) -> u64 {
    (acc ^ v)
        .wrapping_mul(0x2545_f491_4f6c_dd1d)
        .rotate_left(17)
        ^ (v >> 7)
}

fn reply(acc: u64, id: usize) -> u64 {
    (acc.rotate_left(23) ^ (id as u64).wrapping_mul(0x9e37_79b9)) | 1
}

/// Call depth at which a green thread switches for input `v`.
fn depth_of(v: u64) -> u32 {
    ((v >> 40) % 24) as u32
}

/// Recurses `depth` frames, each holding values derived from `salt`, calls
/// `at_bottom` in the deepest one, and checks on the way back up that every
/// frame's values survived whatever ran on other stacks meanwhile.
#[inline(never)]
fn descend(depth: u32, salt: u64, at_bottom: &mut dyn FnMut() -> u64) -> u64 {
    let local = black_box([
        salt,
        salt.rotate_left(depth),
        !salt,
        salt.wrapping_add(depth as u64),
    ]);
    let got = if depth == 0 {
        at_bottom()
    } else {
        descend(depth - 1, salt.wrapping_mul(3).wrapping_add(1), at_bottom)
    };
    let local = black_box(local);
    assert_eq!(
        local,
        [
            salt,
            salt.rotate_left(depth),
            !salt,
            salt.wrapping_add(depth as u64)
        ],
        "a frame at depth {depth} was corrupted across a switch"
    );
    got
}

// ------------------------------------------------------------------ raw API

const MAX_ROUTE: usize = 4;

/// Shared by main and every green thread of the raw test.
struct World {
    main: RawContext,
    /// `len` threads, owned by `run_raw`, never moved while it runs.
    threads: *mut Green,
    /// The threads visited in the current round, in order; after the last
    /// one, control goes back to main.
    route: [usize; MAX_ROUTE],
    route_len: usize,
    /// Index in `route` of the thread running now.
    pos: usize,
    switches: u64,
}

struct Green {
    ctx: RawContext,
    stack: Stack,
    world: *mut World,
    id: usize,
    /// Incremented on every remake; part of the thread's initial state.
    generation: u64,
}

/// Thread `i` of the world.
///
/// # Safety
/// `w` is the live world and `i` below its thread count.
unsafe fn thread(w: *mut World, i: usize) -> *mut Green {
    // SAFETY: the caller's contract.
    unsafe { (*w).threads.add(i) }
}

fn initial_acc(id: usize, generation: u64) -> u64 {
    (id as u64) << 32 ^ generation ^ 0xdead_beef
}

/// A green thread of the raw test. For each input `v` (0 ends it): mixes
/// `v` into its state, descends to a depth chosen by `v`, and there switches
/// to the next thread of the route (or to main) passing its reply.
unsafe extern "C" fn green_entry(arg: *mut c_void, first: usize) {
    let me = arg.cast::<Green>();
    // SAFETY: `me` and its world outlive the context (the test joins every
    // thread before dropping them); only the running thread touches the
    // world, and every other context is suspended while it runs.
    unsafe {
        let world = (*me).world;
        let id = (*me).id;
        let mut acc = initial_acc(id, (*me).generation);
        let mut v = first as u64;
        while v != 0 {
            acc = mix(acc, v);
            let out = reply(acc, id);
            v = descend(depth_of(v), acc, &mut || {
                let w = world;
                (*w).pos += 1;
                let to = if (*w).pos < (*w).route_len {
                    addr_of_mut!((*thread(w, (*w).route[(*w).pos])).ctx)
                } else {
                    addr_of_mut!((*w).main)
                };
                (*w).switches += 1;
                RawContext::swap_with(addr_of_mut!((*me).ctx), to, out as usize) as u64
            });
        }
    }
}

fn make_green(world: *mut World, i: usize) {
    // SAFETY: the thread's slot in `threads` never moves (the vector is not
    // resized), its stack is free, and main is the link.
    unsafe {
        let g = thread(world, i);
        RawContext::make(
            addr_of_mut!((*g).ctx),
            &(*g).stack,
            green_entry,
            g.cast(),
            addr_of_mut!((*world).main),
        )
        .expect("make on a free stack");
    }
}

/// Runs `threads` green threads for `rounds` rounds of the raw API and
/// returns the number of switches made. Each round main picks 1 to
/// [`MAX_ROUTE`] distinct threads; the value travels through them green
/// thread to green thread and the last one switches back to main. Now and
/// then a thread is told to finish; it returns to main through its link and
/// is made again on the same stack.
fn run_raw(seed: u64, threads: usize, rounds: u64) -> u64 {
    let mut rng = Rng(seed);
    let mut world = Box::new(World {
        main: RawContext::new(),
        threads: core::ptr::null_mut(),
        route: [0; MAX_ROUTE],
        route_len: 0,
        pos: 0,
        switches: 0,
    });
    let w: *mut World = &mut *world;
    let mut greens: Vec<Green> = Vec::with_capacity(threads);
    for id in 0..threads {
        // 2 to 5 pages: deep enough for 24 frames of `descend`.
        let stack = Stack::new(pages(2 + rng.below(4) as usize)).unwrap();
        greens.push(Green {
            ctx: RawContext::new(),
            stack,
            world: w,
            id,
            generation: 0,
        });
    }
    // SAFETY: `w` is live; main is the only user of the world now.
    unsafe { (*w).threads = greens.as_mut_ptr() };
    for i in 0..threads {
        make_green(w, i);
    }
    // The model: each thread's state, None until its first input.
    let mut model: Vec<Option<u64>> = vec![None; threads];
    let mut finished = 0u64;

    for round in 0..rounds {
        // SAFETY: between switches main has the world to itself; every
        // green thread is suspended (made or switched away).
        unsafe {
            if rng.below(64) == 0 {
                // Finish one thread and make it again on its stack.
                let t = rng.below(threads as u64) as usize;
                (*w).route[0] = t;
                (*w).route_len = 1;
                (*w).pos = 0;
                (*w).switches += 2;
                let depth = rng.below(8) as u32;
                let got = descend(depth, round, &mut || {
                    RawContext::swap_with(
                        addr_of_mut!((*w).main),
                        addr_of_mut!((*thread(w, t)).ctx),
                        0,
                    ) as u64
                });
                assert_eq!(got, 0, "a finished thread returns 0 through its link");
                assert!(!(*thread(w, t)).ctx.is_suspended());
                assert!(!(*thread(w, t)).stack.is_in_use());
                (*thread(w, t)).generation += 1;
                model[t] = None;
                make_green(w, t);
                finished += 1;
                continue;
            }
            let len = 1 + rng.below(MAX_ROUTE as u64) as usize;
            let len = len.min(threads);
            let mut n = 0;
            while n < len {
                let t = rng.below(threads as u64) as usize;
                if !(&(*w).route)[..n].contains(&t) {
                    (*w).route[n] = t;
                    n += 1;
                }
            }
            (*w).route_len = len;
            (*w).pos = 0;
            let v = rng.next() | 1;
            // The model's view of the round.
            let mut expect = v;
            for &t in &(&(*w).route)[..len] {
                let g = &*thread(w, t);
                let acc = model[t].unwrap_or_else(|| initial_acc(t, g.generation));
                let acc = mix(acc, expect);
                model[t] = Some(acc);
                expect = reply(acc, t);
            }
            let first = addr_of_mut!((*thread(w, (*w).route[0])).ctx);
            let depth = rng.below(8) as u32;
            let got = descend(depth, v, &mut || {
                (*w).switches += 1;
                RawContext::swap_with(addr_of_mut!((*w).main), first, v as usize) as u64
            });
            assert_eq!(
                got,
                expect,
                "round {round} (seed {seed}): route {:?}",
                &(&(*w).route)[..len]
            );
            assert_eq!((*w).pos, len, "every thread of the route ran once");
        }
    }
    // Finish every thread: each returns through its link.
    for t in 0..threads {
        // SAFETY: as above; each thread is suspended.
        unsafe {
            (*w).route[0] = t;
            (*w).route_len = 1;
            (*w).pos = 0;
            (*w).switches += 2;
            let got = RawContext::swap_with(
                addr_of_mut!((*w).main),
                addr_of_mut!((*thread(w, t)).ctx),
                0,
            );
            assert_eq!(got, 0);
            assert!(!(*thread(w, t)).stack.is_in_use(), "thread {t} finished");
        }
    }
    assert!(
        finished > 0 || rounds < 1000,
        "the schedule finished threads"
    );
    drop(greens);
    // SAFETY: no context runs any more.
    unsafe { (*w).switches }
}

#[test]
fn raw_contexts_random_routes() {
    let seed = seed();
    let threads = 2000;
    let rounds = scaled(1_700_000);
    let start = std::time::Instant::now();
    let switches = run_raw(seed, threads, rounds);
    eprintln!(
        "raw: seed {seed}, {threads} threads, {rounds} rounds, {switches} switches in {:?}",
        start.elapsed()
    );
    assert!(switches >= required_switches(RELEASE_SWITCHES / 2));
}

// ---------------------------------------------------------------- Coroutine

/// Counts drops of the values it guards.
struct DropCount<'a>(&'a Cell<u64>);

impl Drop for DropCount<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// What one coroutine of the test is told to do.
#[derive(Clone, Copy)]
struct Plan {
    id: usize,
    /// Steps (suspensions) before it returns.
    steps: u32,
}

/// The value a nested coroutine yields for input `x`.
fn inner_step(x: u64, id: usize) -> u64 {
    x.rotate_left(7) ^ id as u64
}

/// Whether input `v` makes a coroutine resume its nested coroutine.
fn uses_inner(v: u64) -> bool {
    v & 0x30 == 0x30
}

fn result_of(acc: u64) -> u64 {
    !acc
}

/// The model of one coroutine.
struct CoModel {
    plan: Plan,
    acc: u64,
    done: u32,
    /// Whether the nested coroutine was ever resumed (only then does its
    /// guard exist, and only then does dropping it switch).
    inner_started: bool,
}

impl CoModel {
    fn new(plan: Plan) -> Self {
        CoModel {
            plan,
            acc: plan.id as u64 ^ 0x1234_5678,
            done: 0,
            inner_started: false,
        }
    }

    /// The expected answer to input `v`.
    fn step(&mut self, v: u64) -> CoroutineResult<u64, u64> {
        if self.done == self.plan.steps {
            return CoroutineResult::Return(result_of(self.acc));
        }
        let mut acc = mix(self.acc, v);
        if uses_inner(v) {
            acc ^= inner_step(acc, self.plan.id);
            self.inner_started = true;
        }
        self.acc = acc;
        self.done += 1;
        CoroutineResult::Yield(reply(acc, self.plan.id))
    }

    /// (guards dropped, switches made) when the outer coroutine ends after
    /// having started: its own guard, plus the nested one's unwind if it
    /// had started.
    fn ending(&self) -> (u64, u64) {
        if self.inner_started {
            (2, 2)
        } else {
            (1, 0)
        }
    }
}

type Co<'a> = Coroutine<'a, u64, u64, u64>;

/// A coroutine following `plan`, with a nested coroutine on `inner_stack`
/// (owned by the closure, so a forced unwind of the outer one unwinds the
/// nested one too).
fn spawn<'a>(stack: Stack, inner_stack: Stack, plan: Plan, drops: &'a Cell<u64>) -> Co<'a> {
    Coroutine::new(stack, move |y, first: u64| {
        let _outer = DropCount(drops);
        let id = plan.id;
        let mut inner: Coroutine<'_, u64, u64, ()> = Coroutine::new(inner_stack, move |iy, x| {
            let _guard = DropCount(drops);
            let mut x = x;
            loop {
                x = iy.suspend(inner_step(x, id));
            }
        });
        let mut acc = id as u64 ^ 0x1234_5678;
        let mut v = first;
        for _ in 0..plan.steps {
            acc = mix(acc, v);
            if uses_inner(v) {
                match inner.resume(acc) {
                    CoroutineResult::Yield(x) => acc ^= x,
                    CoroutineResult::Return(()) => unreachable!(),
                }
            }
            let out = reply(acc, id);
            v = descend(depth_of(v), acc, &mut || y.suspend(out));
        }
        result_of(acc)
    })
}

/// Runs `count` coroutine slots through `resumes` random resumes and
/// returns the number of switches made. Finished coroutines are replaced by
/// new ones on the same stacks; now and then a suspended one is dropped,
/// which unwinds it (and its nested coroutine); drops are counted against
/// the model.
fn run_coroutines(seed: u64, count: usize, resumes: u64) -> u64 {
    let mut rng = Rng(seed ^ 0xc0);
    let drops = Cell::new(0u64);
    let mut expected_drops = 0u64;
    let mut next_id = 0usize;
    let mut switches = 0u64;
    let mut plan = |rng: &mut Rng| {
        next_id += 1;
        Plan {
            id: next_id,
            steps: rng.below(200) as u32,
        }
    };
    let new_stack = |rng: &mut Rng| Stack::new(pages(3 + rng.below(3) as usize)).unwrap();
    let mut slots: Vec<(Option<Co<'_>>, CoModel, bool)> = Vec::with_capacity(count);
    for _ in 0..count {
        let p = plan(&mut rng);
        let co = spawn(
            new_stack(&mut rng),
            Stack::new(pages(2)).unwrap(),
            p,
            &drops,
        );
        slots.push((Some(co), CoModel::new(p), false));
    }
    for n in 0..resumes {
        let i = rng.below(count as u64) as usize;
        let (slot, model, started) = &mut slots[i];
        if *started && rng.below(100) == 0 {
            // Drop it while suspended: unwinding it is one switch each way,
            // and it drops its guard and its nested coroutine.
            let (d, s) = model.ending();
            expected_drops += d;
            switches += 2 + s;
            drop(slot.take());
            assert_eq!(drops.get(), expected_drops, "resume {n}: drops");
            let p = plan(&mut rng);
            *slot = Some(spawn(
                new_stack(&mut rng),
                Stack::new(pages(2)).unwrap(),
                p,
                &drops,
            ));
            *model = CoModel::new(p);
            *started = false;
            continue;
        }
        let co = slot.as_mut().unwrap();
        let v = rng.next();
        let want = model.step(v);
        let depth = rng.below(8) as u32;
        let got = descend(depth, v, &mut || match co.resume(v) {
            CoroutineResult::Yield(y) => y,
            CoroutineResult::Return(r) => !r,
        });
        switches += 2;
        *started = true;
        match want {
            CoroutineResult::Yield(y) => {
                assert_eq!(got, y, "resume {n} (seed {seed})");
                if uses_inner(v) {
                    switches += 2;
                }
            }
            CoroutineResult::Return(r) => {
                assert_eq!(!got, r, "resume {n} (seed {seed}): return value");
                assert!(co.is_finished());
                let (d, s) = model.ending();
                expected_drops += d;
                switches += s;
                assert_eq!(drops.get(), expected_drops, "resume {n}: drops at return");
                // The next coroutine of the slot reuses the stack.
                let stack = slot.take().unwrap().into_stack().expect("an owned stack");
                let p = plan(&mut rng);
                *slot = Some(spawn(stack, Stack::new(pages(2)).unwrap(), p, &drops));
                *model = CoModel::new(p);
                *started = false;
            }
        }
    }
    // Dropping the rest unwinds the started ones.
    for (slot, model, started) in &mut slots {
        if *started {
            let (d, s) = model.ending();
            expected_drops += d;
            switches += 2 + s;
        }
        drop(slot.take());
    }
    assert_eq!(drops.get(), expected_drops, "drops at the end");
    switches
}

#[test]
fn coroutines_random_resumes() {
    let seed = seed();
    let count = 1000;
    let resumes = scaled(2_400_000);
    let start = std::time::Instant::now();
    let switches = run_coroutines(seed, count, resumes);
    eprintln!(
        "coroutine: seed {seed}, {count} coroutines, {resumes} resumes, {switches} switches in {:?}",
        start.elapsed()
    );
    assert!(switches >= required_switches(RELEASE_SWITCHES / 2));
}
