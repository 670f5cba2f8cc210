//! The raw API: swapcontext semantics and link behaviour; and the
//! scenarios of the Rust API that need a process of their own (the C ABI's
//! crash scenarios are in tests/c/crash.c).

#![deny(dead_code)]

mod common;

use common::{child_scenario, run_child, signal_of};
use core::ffi::c_void;
use core::ptr::addr_of_mut;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use ugreen::{Error, RawContext, Stack};

struct Ring {
    main: RawContext,
    green: RawContext,
    log: Vec<u64>,
}

unsafe extern "C" fn echo_entry(arg: *mut c_void, first: usize) {
    let ring = arg.cast::<Ring>();
    // SAFETY: `ring` outlives the context and `main` is suspended whenever
    // this runs.
    unsafe {
        let mut v = first;
        while v != 0 {
            (*ring).log.push(v as u64);
            v = RawContext::swap_with(
                addr_of_mut!((*ring).green),
                addr_of_mut!((*ring).main),
                v * 3,
            );
        }
    }
}

#[test]
fn transfer_values_and_link() {
    let stack = Stack::new(8).unwrap();
    let mut ring = Box::new(Ring {
        main: RawContext::new(),
        green: RawContext::new(),
        log: vec![],
    });
    let r: *mut Ring = &mut *ring;
    // SAFETY: stack and ring outlive the context; main is the link.
    unsafe {
        RawContext::make(
            addr_of_mut!((*r).green),
            &stack,
            echo_entry,
            r.cast(),
            addr_of_mut!((*r).main),
        )
        .unwrap();
        assert!((*r).green.is_suspended());
        assert!(stack.is_in_use());
        for v in 1..=100usize {
            let back = RawContext::swap_with(addr_of_mut!((*r).main), addr_of_mut!((*r).green), v);
            assert_eq!(back, v * 3);
        }
        // 0 ends the loop: the entry returns and control comes back via the link.
        let back = RawContext::swap_with(addr_of_mut!((*r).main), addr_of_mut!((*r).green), 0);
        assert_eq!(back, 0, "a return through the link passes 0");
        assert!(
            !(*r).green.is_suspended(),
            "a finished context is not suspended"
        );
    }
    assert!(!stack.is_in_use(), "the finished context freed its stack");
    assert_eq!(ring.log, (1..=100).collect::<Vec<_>>());
}

unsafe extern "C" fn nothing(_: *mut c_void, _: usize) {}

#[test]
fn make_on_a_stack_in_use_is_refused_and_changes_nothing() {
    let stack = Stack::new(4).unwrap();
    let mut main = RawContext::new();
    let mut a = RawContext::new();
    let mut b = RawContext::new();
    // SAFETY: all contexts outlive their use here; entries return to main.
    unsafe {
        RawContext::make(&mut a, &stack, nothing, core::ptr::null_mut(), &mut main).unwrap();
        assert_eq!(
            RawContext::make(&mut b, &stack, nothing, core::ptr::null_mut(), &mut main),
            Err(Error::WrongState)
        );
        assert!(
            !b.is_suspended(),
            "a refused make leaves the context untouched"
        );
        RawContext::swap(&mut main, &mut a);
        // a finished: the stack is free for b.
        RawContext::make(&mut b, &stack, nothing, core::ptr::null_mut(), &mut main).unwrap();
        RawContext::swap(&mut main, &mut b);
    }
}

unsafe extern "C" fn counting_entry(arg: *mut c_void, _: usize) {
    // SAFETY: arg points to the test's counter.
    unsafe { *arg.cast::<u64>() += 1 };
}

#[test]
fn remake_on_a_reused_stack_100_000_times() {
    let stack = Stack::new(2).unwrap();
    let mut main = RawContext::new();
    let mut ctx = RawContext::new();
    let mut count = 0u64;
    for _ in 0..100_000 {
        // SAFETY: ctx, main and count outlive each context, which returns to main.
        unsafe {
            RawContext::make(
                &mut ctx,
                &stack,
                counting_entry,
                (&mut count as *mut u64).cast(),
                &mut main,
            )
            .unwrap();
            RawContext::swap(&mut main, &mut ctx);
        }
    }
    assert_eq!(count, 100_000);
}

// ------------------------------- the stack is free only once left

static WATCHED: AtomicPtr<Stack> = AtomicPtr::new(core::ptr::null_mut());
static SAMPLES_ON_STACK: AtomicU64 = AtomicU64::new(0);
static SAMPLES_ON_FREE_STACK: AtomicU64 = AtomicU64::new(0);

#[cfg(target_arch = "x86_64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as usize }
}

#[cfg(target_arch = "aarch64")]
fn interrupted_sp(uc: *const libc::ucontext_t) -> usize {
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler.
    unsafe { (*uc).uc_mcontext.sp as usize }
}

extern "C" fn sample(_: libc::c_int, _: *mut libc::siginfo_t, uc: *mut c_void) {
    let stack = WATCHED.load(Ordering::Acquire);
    if stack.is_null() {
        return;
    }
    // SAFETY: the test keeps the stack alive while it is watched.
    let stack = unsafe { &*stack };
    let (lo, hi) = stack.mapping();
    let sp = interrupted_sp(uc.cast());
    if (lo..hi).contains(&sp) {
        SAMPLES_ON_STACK.fetch_add(1, Ordering::Relaxed);
        if !stack.is_in_use() {
            SAMPLES_ON_FREE_STACK.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `Stack::is_in_use` turns false only once nothing runs on the stack: a
/// thread that waits for it and then frees the stack must never pull it from
/// under the finishing context. A second thread interrupts a loop of make +
/// swap + finish with signals; whenever the interrupted stack pointer lies
/// on the stack, the stack must be in use.
#[test]
fn stack_is_in_use_while_its_context_runs_on_it() {
    let stack = Stack::new(32).unwrap();
    let mut main = RawContext::new();
    let mut green = RawContext::new();
    // SAFETY: a valid handler for SIGURG (not used elsewhere in this test
    // binary), restartable so that the loop's code is unaffected.
    unsafe {
        let mut sa: libc::sigaction = core::mem::zeroed();
        sa.sa_sigaction = sample as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGURG, &sa, core::ptr::null_mut()), 0);
    }
    WATCHED.store(&stack as *const Stack as *mut Stack, Ordering::Release);
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::pid_t;
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let start = std::time::Instant::now();
            // Bounded in count and time.
            for _ in 0..200_000 {
                if start.elapsed() > std::time::Duration::from_secs(2) {
                    break;
                }
                // SAFETY: signals a thread of this process that handles SIGURG.
                unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGURG) };
                for _ in 0..50 {
                    std::hint::spin_loop();
                }
            }
            stop.store(true, Ordering::Release);
        });
        while !stop.load(Ordering::Acquire) {
            // SAFETY: the contexts outlive the context, which returns to main.
            unsafe {
                RawContext::make(
                    &mut green,
                    &stack,
                    nothing,
                    core::ptr::null_mut(),
                    &mut main,
                )
                .unwrap();
                RawContext::swap(&mut main, &mut green);
            }
        }
    });
    WATCHED.store(core::ptr::null_mut(), Ordering::Release);
    let on_stack = SAMPLES_ON_STACK.load(Ordering::Relaxed);
    let on_free = SAMPLES_ON_FREE_STACK.load(Ordering::Relaxed);
    eprintln!("{on_stack} samples on the green stack, {on_free} with the stack marked free");
    assert_eq!(
        on_free, 0,
        "code ran on a stack already marked free ({on_free} of {on_stack} samples on it)"
    );
}

// ------------------------------------------------ scenarios in a child

/// How a scenario's process must end.
#[derive(Clone, Copy, Debug)]
enum End {
    Exit(i32),
    Signal(i32),
}

/// A scenario run in a child process of its own. `SCENARIOS` is the only
/// definition: [`scenarios_in_child_processes`] runs every row, and a
/// scenario function outside the table is dead code (denied below).
struct Scenario {
    name: &'static str,
    run: fn(),
    end: End,
    /// What stdout must contain (in this build, on this host).
    stdout: fn() -> &'static str,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "no-syscalls",
        run: no_syscalls,
        end: if cfg!(feature = "ucontext") && !cfg!(feature = "asan") {
            // swapcontext makes a signal-mask system call per switch: the
            // filter must catch it.
            End::Signal(libc::SIGSYS)
        } else {
            End::Exit(0)
        },
        stdout: || {
            if cfg!(feature = "asan") || common::emulator().is_some() {
                "no-syscalls: skipped"
            } else if cfg!(feature = "ucontext") {
                "no-syscalls: filter on"
            } else {
                "no-syscalls: ok"
            }
        },
    },
    Scenario {
        name: "forget-suspended-coroutine-then-drop-stack",
        run: forget_suspended_coroutine_then_drop_stack,
        end: End::Exit(0),
        stdout: || "reads after the drop: 1000",
    },
];

/// Installs a seccomp filter on the calling thread that allows only
/// `write`, `exit`, `exit_group` and `rt_sigreturn`: any other system call
/// kills the process with SIGSYS. Returns false where seccomp filters are
/// unavailable (qemu-user refuses them).
fn allow_only_write_and_exit() -> bool {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xc000_003e;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xc000_00b7;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const KILL_PROCESS: u32 = 0x8000_0000;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: libc::c_long, jt| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf: 0,
        k: k as u32,
    };
    let filter = [
        stmt(LD_W_ABS, 4), // seccomp_data.arch
        libc::sock_filter {
            code: JEQ_K,
            jt: 1,
            jf: 0,
            k: AUDIT_ARCH,
        },
        stmt(RET_K, KILL_PROCESS),
        stmt(LD_W_ABS, 0), // seccomp_data.nr
        jeq(libc::SYS_write, 4),
        jeq(libc::SYS_exit, 3),
        jeq(libc::SYS_exit_group, 2),
        jeq(libc::SYS_rt_sigreturn, 1),
        stmt(RET_K, KILL_PROCESS),
        stmt(RET_K, ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `prog` points to a valid filter that the
    // kernel copies.
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            ) == 0
    }
}

fn write_stdout(msg: &[u8]) {
    // SAFETY: a valid buffer.
    unsafe { libc::write(1, msg.as_ptr().cast(), msg.len()) };
}

/// Make + swap on a reused stack, and the safe API on a borrowed one, make
/// no system call: everything is allocated first, then a seccomp filter
/// kills the process on any system call but write and exit.
fn no_syscalls() {
    let stack = Stack::new(4).unwrap();
    let mut co_stack = Stack::new(8).unwrap();
    let mut main = RawContext::new();
    let mut green = RawContext::new();
    let mut count = 0u64;
    if cfg!(feature = "asan") {
        // The sanitizer's runtime maps fake stacks and annotates switches.
        write_stdout(b"no-syscalls: skipped (AddressSanitizer's runtime makes system calls)\n");
        std::process::exit(0);
    }
    if !allow_only_write_and_exit() {
        assert!(
            common::emulator().is_some(),
            "seccomp filters are unavailable: {}",
            std::io::Error::last_os_error()
        );
        write_stdout(b"no-syscalls: skipped (qemu-user has no seccomp filters)\n");
        std::process::exit(0);
    }
    write_stdout(b"no-syscalls: filter on\n");
    for _ in 0..1000 {
        // SAFETY: the contexts and `count` outlive the context, which
        // returns to main.
        unsafe {
            RawContext::make(
                &mut green,
                &stack,
                counting_entry,
                (&mut count as *mut u64).cast(),
                &mut main,
            )
            .unwrap();
            RawContext::swap(&mut main, &mut green);
        }
    }
    for i in 0..1000u64 {
        let mut co =
            ugreen::Coroutine::on_stack(&mut co_stack, move |y, x: u64| y.suspend(x + i) + 1);
        let ugreen::CoroutineResult::Yield(v) = co.resume(1) else {
            unreachable!()
        };
        let ugreen::CoroutineResult::Return(r) = co.resume(v) else {
            unreachable!()
        };
        count += r - i - 1; // 1 per coroutine
    }
    write_stdout(if count == 2000 {
        b"no-syscalls: ok\n"
    } else {
        b"no-syscalls: wrong count\n"
    });
    // SAFETY: exit_group is allowed by the filter; nothing needs flushing.
    unsafe { libc::syscall(libc::SYS_exit_group, i32::from(count != 2000)) };
}

static STOP: AtomicBool = AtomicBool::new(false);
static READS: AtomicU64 = AtomicU64::new(0);

/// A `Coroutine` suspended inside `std::thread::scope`, with a scoped thread
/// reading one of its locals, is forgotten; then its stack is dropped. The
/// stack must stay mapped (leaked): the thread keeps reading.
fn forget_suspended_coroutine_then_drop_stack() {
    let mut stack = Stack::new(16).unwrap();
    let mut co = ugreen::Coroutine::on_stack(&mut stack, |y, ()| {
        let local = AtomicU64::new(7);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !STOP.load(Ordering::Relaxed) {
                    assert_eq!(local.load(Ordering::Relaxed), 7);
                    READS.fetch_add(1, Ordering::Relaxed);
                }
            });
            y.suspend(());
        });
    });
    assert!(matches!(co.resume(()), ugreen::CoroutineResult::Yield(())));
    std::mem::forget(co);
    drop(stack);
    let before = READS.load(Ordering::Relaxed);
    while READS.load(Ordering::Relaxed) < before + 1000 {
        std::thread::yield_now();
    }
    println!("reads after the drop: 1000");
    STOP.store(true, Ordering::Relaxed);
    // The forgotten coroutine's frames (and what they allocated) are leaked
    // on purpose: end without exit handlers, which include LeakSanitizer's.
    // SAFETY: _exit has no preconditions; stdout was flushed by its newline.
    unsafe { libc::_exit(0) };
}

#[test]
fn scenarios_in_child_processes() {
    if let Some(name) = child_scenario() {
        // SAFETY: alarm has no preconditions; it ends a scenario that hangs.
        unsafe { libc::alarm(60) };
        let scenario = SCENARIOS
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("unknown scenario {name}"));
        (scenario.run)();
        panic!("scenario {name} returned");
    }
    for s in SCENARIOS {
        let out = run_child("scenarios_in_child_processes", s.name);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = format!(
            "{}: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            s.name, out.status
        );
        match s.end {
            End::Exit(code) => assert_eq!(out.status.code(), Some(code), "{what}"),
            End::Signal(sig) => assert_eq!(signal_of(&out), Some(sig), "{what}"),
        }
        assert!(stdout.contains((s.stdout)()), "{what}");
    }
}
