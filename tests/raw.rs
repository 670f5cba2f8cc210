//! The raw API: swapcontext semantics, link behaviour, misuse, and crashes
//! that must end the process cleanly (run in child processes).

mod common;

use common::{child_scenario, run_child, signal_of};
use core::ffi::c_void;
use core::ptr::addr_of_mut;
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

// ---------------------------------------------------------------- crashes

unsafe extern "C" fn overflow_entry(_: *mut c_void, _: usize) {
    #[allow(unconditional_recursion)] // runs into the guard page on purpose
    fn down(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 64]);
        down(n + 1) + pad[3]
    }
    std::hint::black_box(down(0));
}

unsafe extern "C" fn suspend_forever_entry(arg: *mut c_void, _: usize) {
    let pair = arg.cast::<[RawContext; 2]>();
    // SAFETY: the pair outlives the test process.
    unsafe { RawContext::swap(addr_of_mut!((*pair)[1]), addr_of_mut!((*pair)[0])) };
}

fn child_body(scenario: &str) {
    let mut stack = Stack::new(4).unwrap();
    stack.set_label("worker 7");
    let pair: &'static mut [RawContext; 2] =
        Box::leak(Box::new([RawContext::new(), RawContext::new()]));
    let p: *mut [RawContext; 2] = pair;
    // SAFETY: everything is leaked or lives until the process ends; each
    // scenario ends the process.
    unsafe {
        let main = addr_of_mut!((*p)[0]);
        let green = addr_of_mut!((*p)[1]);
        match scenario {
            "overflow" | "overflow-with-handler" | "overflow-many-stacks" => {
                if scenario != "overflow" {
                    ugreen::overflow::install().unwrap();
                }
                if scenario == "overflow-many-stacks" {
                    // Fill several registry chunks, free some, then map the
                    // faulting stack last: it is found wherever it lands.
                    let mut others: Vec<Stack> = (0..700).map(|_| Stack::new(1).unwrap()).collect();
                    others.drain(100..200);
                    std::mem::forget(others);
                    stack = Stack::new(4).unwrap();
                    stack.set_label("worker 7");
                }
                RawContext::make(green, &stack, overflow_entry, core::ptr::null_mut(), main)
                    .unwrap();
                RawContext::swap(main, green);
            }
            "no-syscalls" => {
                // Everything is allocated up front; then, under seccomp strict
                // mode (only read, write, exit and sigreturn allowed; anything
                // else is SIGKILL), make + swap on a reused stack, 1000 times,
                // and the safe API on a borrowed stack.
                let mut count = 0u64;
                let mut co_stack = Stack::new(8).unwrap();
                let rc = libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_STRICT as libc::c_ulong,
                );
                assert_eq!(rc, 0, "seccomp strict mode unavailable");
                for _ in 0..1000 {
                    RawContext::make(
                        green,
                        &stack,
                        counting_entry,
                        (&mut count as *mut u64).cast(),
                        main,
                    )
                    .unwrap();
                    RawContext::swap(main, green);
                }
                for i in 0..1000u64 {
                    let mut co = ugreen::Coroutine::on_stack(&mut co_stack, move |y, x: u64| {
                        y.suspend(x + i) + 1
                    });
                    let ugreen::CoroutineResult::Yield(v) = co.resume(1) else {
                        unreachable!()
                    };
                    let ugreen::CoroutineResult::Return(r) = co.resume(v) else {
                        unreachable!()
                    };
                    count += r - i - 2;
                }
                let msg: &[u8] = if count == 1000 {
                    b"no-syscalls: ok\n"
                } else {
                    b"no-syscalls: wrong count\n"
                };
                libc::write(1, msg.as_ptr().cast(), msg.len());
                // exit_group is not allowed either: the kernel kills us here.
                libc::syscall(libc::SYS_exit_group, 0);
            }
            "other-fault-with-handler" => {
                ugreen::overflow::install().unwrap();
                // A fault outside any ugreen stack: no report, same death.
                let bad = std::hint::black_box(16usize) as *mut u64;
                bad.write_volatile(1);
            }
            "swap-to-running" => {
                // The green thread is running when it tries to resume itself via `to`.
                RawContext::make(green, &stack, swap_self_entry, p.cast(), main).unwrap();
                RawContext::swap(main, green);
            }
            "swap-to-finished" => {
                RawContext::make(green, &stack, nothing, core::ptr::null_mut(), main).unwrap();
                RawContext::swap(main, green);
                RawContext::swap(main, green);
            }
            "swap-to-zeroed" => RawContext::swap(main, green),
            "swap-null" => RawContext::swap(core::ptr::null_mut(), green),
            "no-link" => {
                RawContext::make(
                    green,
                    &stack,
                    nothing,
                    core::ptr::null_mut(),
                    core::ptr::null_mut(),
                )
                .unwrap();
                RawContext::swap(main, green);
            }
            "suspended-twice" => {
                RawContext::make(green, &stack, suspend_forever_entry, p.cast(), main).unwrap();
                RawContext::swap(main, green);
                // green is suspended; resume it, it has no further swap, so it
                // returns to main through the link: fine. Then resume again.
                RawContext::swap(main, green);
                RawContext::swap(main, green);
            }
            other => panic!("unknown scenario {other}"),
        }
    }
    std::process::exit(0);
}

unsafe extern "C" fn swap_self_entry(arg: *mut c_void, _: usize) {
    let pair = arg.cast::<[RawContext; 2]>();
    let mut scratch = RawContext::new();
    // SAFETY: deliberately wrong: `(*pair)[1]` is this running context.
    unsafe { RawContext::swap(&mut scratch, addr_of_mut!((*pair)[1])) };
}

#[test]
fn crash_scenarios() {
    if let Some(s) = child_scenario() {
        child_body(&s);
        return;
    }
    let cases: &[(&str, i32, &str)] = &[
        ("overflow", libc::SIGSEGV, ""),
        (
            "overflow-with-handler",
            libc::SIGSEGV,
            "stack overflow in green thread \"worker 7\" (stack of 4 pages",
        ),
        (
            "swap-to-running",
            libc::SIGABRT,
            "the target context is not suspended",
        ),
        (
            "swap-to-finished",
            libc::SIGABRT,
            "the target context is not suspended",
        ),
        (
            "swap-to-zeroed",
            libc::SIGABRT,
            "the target context is not suspended",
        ),
        ("swap-null", libc::SIGABRT, "`from` is NULL"),
        ("no-link", libc::SIGABRT, "made without a link returned"),
        (
            "suspended-twice",
            libc::SIGABRT,
            "the target context is not suspended",
        ),
    ];
    for (scenario, signal, message) in cases {
        if *scenario == "no-syscalls" && cfg!(feature = "ucontext") {
            continue; // swapcontext makes a signal-mask system call per switch
        }
        let out = run_child("crash_scenarios", scenario);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            signal_of(&out),
            Some(*signal),
            "{scenario}: {:?}\nstderr: {stderr}",
            out.status
        );
        assert!(
            stderr.contains(message),
            "{scenario}: stderr lacks {message:?}:\n{stderr}"
        );
        if *scenario == "no-syscalls" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("no-syscalls: ok"),
                "a system call happened before the end:\n{stdout}\n{stderr}"
            );
        }
        if *scenario == "overflow" || *scenario == "other-fault-with-handler" {
            assert!(
                !stderr.contains("stack overflow in green thread"),
                "no report without the handler"
            );
        }
    }
}
