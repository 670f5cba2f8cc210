//! A fixed amount of switching work, for counting instructions with
//! callgrind (scripts/callgrind.sh runs it with N and 2N and divides the
//! difference by N, which cancels start-up and set-up costs).
//!
//! ```text
//! switch_count <case> <n>
//! ```
//!
//! Each case is a function of its own (never inlined), so every loop is
//! compiled alike, without registers reserved by the code around it.
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

use std::ffi::c_void;
use std::hint::black_box;
#[cfg(target_env = "gnu")]
use std::mem::MaybeUninit;
use std::ptr::{self, addr_of_mut};
#[cfg(target_env = "gnu")]
use std::sync::atomic::{AtomicPtr, Ordering};

use ugreen::ffi::ugreen_context_swap;
use ugreen::{Coroutine, RawContext, Stack};

const STACK_PAGES: usize = 16;

struct Pair {
    main: RawContext,
    green: RawContext,
    stop: bool,
}

unsafe extern "C" fn asm_green(arg: *mut c_void, _transfer: usize) {
    let p = arg.cast::<Pair>();
    // SAFETY: `p` outlives the context; `main` is suspended whenever this runs.
    unsafe {
        loop {
            ugreen_context_swap(addr_of_mut!((*p).green), addr_of_mut!((*p).main));
            if ptr::read_volatile(addr_of_mut!((*p).stop)) {
                return;
            }
        }
    }
}

#[inline(never)]
fn asm(n: u64) {
    let stack = Stack::new(STACK_PAGES).expect("stack");
    let mut pair = Box::new(Pair {
        main: RawContext::new(),
        green: RawContext::new(),
        stop: false,
    });
    let p: *mut Pair = &mut *pair;
    // SAFETY: the pair and the stack outlive the context, which finishes
    // (returns through its link) before they are dropped.
    unsafe {
        let (main, green) = (addr_of_mut!((*p).main), addr_of_mut!((*p).green));
        RawContext::make(green, &stack, asm_green, p.cast(), main).expect("make");
        for _ in 0..n / 2 {
            ugreen_context_swap(main, green);
        }
        (*p).stop = true;
        ugreen_context_swap(main, green);
    }
}

#[inline(never)]
fn coroutine(n: u64) {
    let mut co: Coroutine<(), (), ()> =
        Coroutine::new(Stack::new(STACK_PAGES).expect("stack"), |y, ()| loop {
            y.suspend(());
        });
    for _ in 0..n / 2 {
        black_box(co.resume(()));
    }
}

/// Keeps the preceding call from becoming a tail call.
#[inline(always)]
fn no_tail_call() {
    // SAFETY: an empty assembly statement.
    unsafe { core::arch::asm!("", options(nomem, nostack, preserves_flags)) };
}

#[inline(never)]
fn ugreen_suspend_depth1(y: &ugreen::Yielder<(), ()>) {
    y.suspend(());
    no_tail_call();
}

#[inline(never)]
fn ugreen_resume_depth1(co: &mut Coroutine<'static, (), (), ()>) {
    black_box(co.resume(()));
    no_tail_call();
}

#[inline(never)]
fn coroutine1(n: u64) {
    let mut co: Coroutine<(), (), ()> =
        Coroutine::new(Stack::new(STACK_PAGES).expect("stack"), |y, ()| loop {
            ugreen_suspend_depth1(y);
        });
    for _ in 0..n / 2 {
        ugreen_resume_depth1(&mut co);
    }
}

#[inline(never)]
fn cs_suspend_depth1(y: &corosensei::Yielder<(), ()>) {
    y.suspend(());
    no_tail_call();
}

#[inline(never)]
fn cs_resume_depth1(co: &mut corosensei::Coroutine<(), (), ()>) {
    black_box(co.resume(()));
    no_tail_call();
}

#[inline(never)]
fn corosensei1(n: u64) {
    let stack =
        corosensei::stack::DefaultStack::new(STACK_PAGES * ugreen::page_size()).expect("stack");
    let mut co: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::with_stack(stack, |y, ()| loop {
            cs_suspend_depth1(y);
        });
    for _ in 0..n / 2 {
        cs_resume_depth1(&mut co);
    }
}

#[inline(never)]
fn corosensei(n: u64) {
    let stack =
        corosensei::stack::DefaultStack::new(STACK_PAGES * ugreen::page_size()).expect("stack");
    let mut co: corosensei::Coroutine<(), (), ()> =
        corosensei::Coroutine::with_stack(stack, |y, ()| loop {
            y.suspend(());
        });
    for _ in 0..n / 2 {
        black_box(co.resume(()));
    }
}

#[inline(never)]
fn create_corosensei(n: u64) {
    let mut stack = Some(
        corosensei::stack::DefaultStack::new(STACK_PAGES * ugreen::page_size()).expect("stack"),
    );
    for _ in 0..n {
        let mut co: corosensei::Coroutine<u32, (), u32> =
            corosensei::Coroutine::with_stack(stack.take().unwrap(), |_, x: u32| x + 1);
        black_box(co.resume(black_box(1)));
        stack = Some(co.into_stack());
    }
}

#[cfg(target_env = "gnu")]
struct UcPair {
    main: libc::ucontext_t,
    green: libc::ucontext_t,
    stop: bool,
}

#[cfg(target_env = "gnu")]
static UC: AtomicPtr<UcPair> = AtomicPtr::new(ptr::null_mut());

#[cfg(target_env = "gnu")]
extern "C" fn uc_green() {
    let p = UC.load(Ordering::Relaxed);
    // SAFETY: `p` is the live pair; `main` holds the suspended main side.
    unsafe {
        loop {
            libc::swapcontext(addr_of_mut!((*p).green), addr_of_mut!((*p).main));
            if ptr::read_volatile(addr_of_mut!((*p).stop)) {
                return;
            }
        }
    }
}

#[cfg(target_env = "gnu")]
#[inline(never)]
fn swapcontext(n: u64) {
    let stack = Stack::new(STACK_PAGES).expect("stack");
    // SAFETY: ucontext_t is plain data; all-zero is a valid bit pattern.
    let mut pair = Box::new(UcPair {
        main: unsafe { MaybeUninit::zeroed().assume_init() },
        green: unsafe { MaybeUninit::zeroed().assume_init() },
        stop: false,
    });
    let p: *mut UcPair = &mut *pair;
    UC.store(p, Ordering::Relaxed);
    // SAFETY: the stack and the pair outlive the context; uc_link = main.
    unsafe {
        let (main, green) = (addr_of_mut!((*p).main), addr_of_mut!((*p).green));
        libc::getcontext(green);
        (*green).uc_stack.ss_sp = stack.bottom().cast();
        (*green).uc_stack.ss_size = stack.size();
        (*green).uc_link = main;
        libc::makecontext(green, uc_green, 0);
        for _ in 0..n / 2 {
            libc::swapcontext(main, green);
        }
        (*p).stop = true;
        libc::swapcontext(main, green);
    }
}

unsafe extern "C" fn return_at_once(_arg: *mut c_void, _transfer: usize) {}

#[inline(never)]
fn create_raw(n: u64) {
    let stack = Stack::new(STACK_PAGES).expect("stack");
    let (mut main, mut green) = (Box::new(RawContext::new()), Box::new(RawContext::new()));
    let (m, g): (*mut RawContext, *mut RawContext) = (&mut *main, &mut *green);
    for _ in 0..n {
        // SAFETY: the previous context on the stack has finished; the link
        // `m` is suspended by the swap.
        unsafe {
            RawContext::make(g, &stack, return_at_once, ptr::null_mut(), m).expect("make");
            ugreen_context_swap(m, g);
        }
    }
}

#[inline(never)]
fn create_coroutine(n: u64) {
    let mut stack = Stack::new(STACK_PAGES).expect("stack");
    for _ in 0..n {
        let mut co: Coroutine<u32, (), u32> = Coroutine::on_stack(&mut stack, |_, x: u32| x + 1);
        black_box(co.resume(black_box(1)));
    }
}

#[cfg(target_env = "gnu")]
extern "C" fn uc_return_at_once() {}

#[cfg(target_env = "gnu")]
#[inline(never)]
fn create_ucontext(n: u64) {
    let stack = Stack::new(STACK_PAGES).expect("stack");
    // SAFETY: ucontext_t is plain data; all-zero is a valid bit pattern.
    let mut main: Box<libc::ucontext_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
    let mut green: Box<libc::ucontext_t> = Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
    let (m, g): (*mut libc::ucontext_t, *mut libc::ucontext_t) = (&mut *main, &mut *green);
    for _ in 0..n {
        // SAFETY: the stack is free again (the previous context returned);
        // uc_link `m` is saved by the swapcontext.
        unsafe {
            libc::getcontext(g);
            (*g).uc_stack.ss_sp = stack.bottom().cast();
            (*g).uc_stack.ss_size = stack.size();
            (*g).uc_link = m;
            libc::makecontext(g, uc_return_at_once, 0);
            libc::swapcontext(m, g);
        }
    }
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
