//! Register preservation across switches: every callee-saved register of the
//! ABI, including the FP control state, holds distinct values on both sides
//! of thousands of switches and must come back intact.
//!
//! What is kept on each path:
//! * raw API and C ABI (`ugreen_context_swap`, asm/switch_*.S): the callee-
//!   saved registers (x86_64: rbx, rbp, r12-r15, rsp; aarch64: x19-x29, sp,
//!   d8-d15) and the FP control state per context (MXCSR control bits and
//!   the x87 control word; FPCR);
//! * `Coroutine`: the same callee-saved registers (the inline switch saves
//!   rbx/rbp or x19/x29, the compiler the live rest), but no FP control
//!   state: a coroutine shares MXCSR/x87 CW/FPCR with its resumer.
//!
//! Shared by every context of a thread on both paths: the x87 status word
//! and aarch64 FPSR (flags), and the signal mask.

use core::ffi::c_void;
use ugreen::{RawContext, Stack};

#[cfg(target_arch = "x86_64")]
macro_rules! regcheck_fn {
    ($name:literal, $callee:literal) => {
        core::arch::global_asm!(
            // u64 regcheck_swap(RawContext *from: rdi, RawContext *to: rsi, u64 seed: rdx)
            // Loads rbx, rbp, r12-r15 with seed+1..seed+6, MXCSR with a rounding
            // mode and x87 CW with a precision/rounding pattern chosen by the seed,
            // swaps, then counts the registers that no longer hold their pattern.
            concat!(".globl ", $name),
            ".p2align 4",
            concat!($name, ":"),
            "push rbp",
            "push rbx",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "sub rsp, 40",
            "stmxcsr [rsp]",
            "fnstcw [rsp + 4]",   // originals
            "mov [rsp + 8], rdx", // seed
            // MXCSR: default masks | RC from seed bits 0-1; x87 CW: 0x037F | RC (bits 10-11) from seed bits 2-3
            "mov eax, edx",
            "and eax, 3",
            "shl eax, 13",
            "or eax, 0x1F80",
            "mov [rsp + 16], eax",
            "mov eax, edx",
            "shr eax, 2",
            "and eax, 3",
            "shl eax, 10",
            "or eax, 0x037F",
            "mov [rsp + 20], ax",
            "ldmxcsr [rsp + 16]",
            "fldcw [rsp + 20]",
            "lea rbx, [rdx + 1]",
            "lea rbp, [rdx + 2]",
            "lea r12, [rdx + 3]",
            "lea r13, [rdx + 4]",
            "lea r14, [rdx + 5]",
            "lea r15, [rdx + 6]",
            concat!("call ", $callee),
            "mov rdx, [rsp + 8]",
            "xor eax, eax",
            "lea rcx, [rdx + 1]",
            "cmp rbx, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "lea rcx, [rdx + 2]",
            "cmp rbp, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "lea rcx, [rdx + 3]",
            "cmp r12, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "lea rcx, [rdx + 4]",
            "cmp r13, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "lea rcx, [rdx + 5]",
            "cmp r14, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "lea rcx, [rdx + 6]",
            "cmp r15, rcx",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "stmxcsr [rsp + 24]",
            "mov ecx, [rsp + 24]",
            "and ecx, 0xFFC0",
            "cmp ecx, [rsp + 16]",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "fnstcw [rsp + 28]",
            "movzx ecx, word ptr [rsp + 28]",
            "cmp cx, [rsp + 20]",
            "setne cl",
            "movzx ecx, cl",
            "add eax, ecx",
            "ldmxcsr [rsp]",
            "fldcw [rsp + 4]",
            "add rsp, 40",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbx",
            "pop rbp",
            "ret",
        );
    };
}

#[cfg(target_arch = "aarch64")]
macro_rules! regcheck_fn {
    ($name:literal, $callee:literal) => {
        core::arch::global_asm!(
            // u64 regcheck_swap(RawContext *from: x0, RawContext *to: x1, u64 seed: x2)
            // Loads x19-x29 with seed+1..seed+11, d8-d15 with seed+12..seed+19 and
            // FPCR.RMode with seed bits 0-1, swaps, then counts the mismatches.
            concat!(".globl ", $name),
            ".p2align 4",
            concat!($name, ":"),
            "stp x29, x30, [sp, #-192]!",
            "stp x19, x20, [sp, #16]",
            "stp x21, x22, [sp, #32]",
            "stp x23, x24, [sp, #48]",
            "stp x25, x26, [sp, #64]",
            "stp x27, x28, [sp, #80]",
            "stp d8, d9, [sp, #96]",
            "stp d10, d11, [sp, #112]",
            "stp d12, d13, [sp, #128]",
            "stp d14, d15, [sp, #144]",
            "mrs x9, fpcr",
            "str x9, [sp, #160]",
            "str x2, [sp, #168]",
            "and x9, x2, #3",
            "lsl x9, x9, #22",
            "str x9, [sp, #176]",
            "msr fpcr, x9",
            "add x19, x2, #1",
            "add x20, x2, #2",
            "add x21, x2, #3",
            "add x22, x2, #4",
            "add x23, x2, #5",
            "add x24, x2, #6",
            "add x25, x2, #7",
            "add x26, x2, #8",
            "add x27, x2, #9",
            "add x28, x2, #10",
            "add x29, x2, #11",
            "add x9, x2, #12",
            "fmov d8, x9",
            "add x9, x2, #13",
            "fmov d9, x9",
            "add x9, x2, #14",
            "fmov d10, x9",
            "add x9, x2, #15",
            "fmov d11, x9",
            "add x9, x2, #16",
            "fmov d12, x9",
            "add x9, x2, #17",
            "fmov d13, x9",
            "add x9, x2, #18",
            "fmov d14, x9",
            "add x9, x2, #19",
            "fmov d15, x9",
            concat!("bl ", $callee),
            "ldr x2, [sp, #168]",
            "mov x0, #0",
            "add x9, x2, #1",
            "cmp x19, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #2",
            "cmp x20, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #3",
            "cmp x21, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #4",
            "cmp x22, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #5",
            "cmp x23, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #6",
            "cmp x24, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #7",
            "cmp x25, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #8",
            "cmp x26, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #9",
            "cmp x27, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #10",
            "cmp x28, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #11",
            "cmp x29, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #12",
            "fmov x10, d8",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #13",
            "fmov x10, d9",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #14",
            "fmov x10, d10",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #15",
            "fmov x10, d11",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #16",
            "fmov x10, d12",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #17",
            "fmov x10, d13",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #18",
            "fmov x10, d14",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "add x9, x2, #19",
            "fmov x10, d15",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "mrs x10, fpcr",
            "ldr x9, [sp, #176]",
            "cmp x10, x9",
            "cinc x0, x0, ne",
            "ldr x9, [sp, #160]",
            "msr fpcr, x9",
            "ldp d8, d9, [sp, #96]",
            "ldp d10, d11, [sp, #112]",
            "ldp d12, d13, [sp, #128]",
            "ldp d14, d15, [sp, #144]",
            "ldp x19, x20, [sp, #16]",
            "ldp x21, x22, [sp, #32]",
            "ldp x23, x24, [sp, #48]",
            "ldp x25, x26, [sp, #64]",
            "ldp x27, x28, [sp, #80]",
            "ldp x29, x30, [sp], #192",
            "ret",
        );
    };
}

#[cfg(target_arch = "x86_64")]
regcheck_fn!("regcheck_swap", "ugreen_context_swap@PLT");
#[cfg(target_arch = "aarch64")]
regcheck_fn!("regcheck_swap", "ugreen_context_swap");
// The same around a call of `coroutine_hop`, which switches with the
// `Coroutine` API.
regcheck_fn!("regcheck_hop", "coroutine_hop");

extern "C" {
    fn regcheck_hop(side: *mut c_void, unused: *mut c_void, seed: u64) -> u64;
    fn regcheck_swap(from: *mut RawContext, to: *mut RawContext, seed: u64) -> u64;
}

const ROUNDS: u64 = 20_000;

struct Pair {
    main: RawContext,
    green: RawContext,
    green_mismatches: u64,
}

unsafe extern "C" fn green_side(arg: *mut c_void, _transfer: usize) {
    let pair = arg.cast::<Pair>();
    for i in 0..ROUNDS {
        // Seeds differ from the main side's in every register and in the FP
        // control patterns (bit 0-3 of the seed).
        let seed = 0x5000_0000_0000_0000 + i * 64 + ((i + 1) % 4) + 4 * ((i + 2) % 4);
        // SAFETY: both contexts live in `pair`, which outlives the test.
        unsafe {
            (*pair).green_mismatches += regcheck_swap(
                core::ptr::addr_of_mut!((*pair).green),
                core::ptr::addr_of_mut!((*pair).main),
                seed,
            );
        }
    }
}

#[test]
fn callee_saved_registers_and_fp_control_survive_switches() {
    let stack = Stack::new(16).unwrap();
    let mut pair = Box::new(Pair {
        main: RawContext::new(),
        green: RawContext::new(),
        green_mismatches: 0,
    });
    let p: *mut Pair = &mut *pair;
    // SAFETY: the stack and the pair outlive the context; the entry returns
    // to `main`, which is suspended then.
    unsafe {
        RawContext::make(
            core::ptr::addr_of_mut!((*p).green),
            &stack,
            green_side,
            p.cast(),
            core::ptr::addr_of_mut!((*p).main),
        )
        .unwrap();
    }
    let mut main_mismatches = 0;
    for i in 0..=ROUNDS {
        let seed = 0x1000_0000_0000_0000 + i * 64 + (i % 4) + 4 * ((i + 3) % 4);
        // SAFETY: as above; the last round resumes the green side, whose entry
        // returns and switches back through the link.
        main_mismatches += unsafe {
            regcheck_swap(
                core::ptr::addr_of_mut!((*p).main),
                core::ptr::addr_of_mut!((*p).green),
                seed,
            )
        };
    }
    assert_eq!(
        main_mismatches, 0,
        "registers of the resumer changed across a switch"
    );
    assert_eq!(
        pair.green_mismatches, 0,
        "registers of the green thread changed across a switch"
    );
    assert!(
        !stack.is_in_use(),
        "the entry returned, so the stack is free"
    );
}

// ------------------------------------------------------- Coroutine path
//
// `Coroutine` switches with inline assembly that saves what the compiler
// cannot be told about and declares every other register clobbered, so the
// compiler saves the live ones around each switch. The same register check,
// with both sides calling `coroutine_hop` (a plain function call, so the
// ABI's callee-saved registers must survive it), checks that together they
// keep every callee-saved register. Both sides use the same FP control
// patterns: this path does not switch FP control state (see below).

/// One side of the coroutine ping-pong.
enum Side<'a> {
    Resumer(&'a mut ugreen::Coroutine<'static, (), (), ()>),
    Green(&'a ugreen::Yielder<(), ()>),
}

#[no_mangle]
extern "C" fn coroutine_hop(side: *mut c_void, _unused: *mut c_void) {
    // SAFETY: `regcheck_hop` passes the `Side` its caller gave it.
    match unsafe { &mut *side.cast::<Side>() } {
        Side::Resumer(co) => {
            co.resume(());
        }
        Side::Green(y) => y.suspend(()),
    }
}

#[test]
fn callee_saved_registers_survive_coroutine_switches() {
    use std::cell::Cell;
    use std::rc::Rc;
    let green_mismatches = Rc::new(Cell::new(u64::MAX));
    let seen = green_mismatches.clone();
    let mut co = ugreen::Coroutine::new(Stack::new(16).unwrap(), move |y, ()| {
        let mut sum = 0;
        for i in 0..ROUNDS {
            let mut side = Side::Green(y);
            let seed = 0x5000_0000_0000_0000 + i * 64;
            // SAFETY: `side` outlives the call.
            sum += unsafe {
                regcheck_hop(
                    std::ptr::addr_of_mut!(side).cast(),
                    std::ptr::null_mut(),
                    seed,
                )
            };
        }
        seen.set(sum);
    });
    let mut main_mismatches = 0;
    for i in 0..=ROUNDS {
        let mut side = Side::Resumer(&mut co);
        let seed = 0x1000_0000_0000_0000 + i * 64;
        // SAFETY: `side` outlives the call.
        main_mismatches += unsafe {
            regcheck_hop(
                std::ptr::addr_of_mut!(side).cast(),
                std::ptr::null_mut(),
                seed,
            )
        };
    }
    assert!(co.is_finished());
    assert_eq!(
        main_mismatches, 0,
        "registers of the resumer changed across a switch"
    );
    assert_eq!(
        green_mismatches.get(),
        0,
        "registers of the coroutine changed across a switch"
    );
}

#[cfg(target_arch = "x86_64")]
fn rounding_mode() -> u32 {
    let mut csr = 0u32;
    // SAFETY: stmxcsr writes 4 bytes to a valid location.
    unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack)) };
    (csr >> 13) & 3
}

#[cfg(target_arch = "x86_64")]
fn set_rounding_mode(mode: u32) {
    let mut csr = 0u32;
    // SAFETY: read-modify-write of MXCSR's rounding bits only.
    unsafe {
        core::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack));
        csr = (csr & !(3 << 13)) | (mode << 13);
        core::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
    }
}

#[cfg(target_arch = "aarch64")]
fn rounding_mode() -> u32 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nostack, nomem)) };
    ((fpcr >> 22) & 3) as u32
}

#[cfg(target_arch = "aarch64")]
fn set_rounding_mode(mode: u32) {
    // SAFETY: read-modify-write of FPCR.RMode only.
    unsafe {
        let mut fpcr: u64;
        core::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nostack, nomem));
        fpcr = (fpcr & !(3 << 22)) | ((mode as u64) << 22);
        core::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nostack, nomem));
    }
}

/// 1/10 in the current rounding mode, computed at run time (nearest rounds
/// it up, toward-zero down).
fn tenth(x: f64) -> f64 {
    std::hint::black_box(1.0) / std::hint::black_box(x)
}

unsafe extern "C" fn rounding_green(arg: *mut c_void, _transfer: usize) {
    let pair = arg.cast::<FpPair>();
    set_rounding_mode(3); // toward zero
                          // SAFETY: both contexts live in `pair`, which outlives the context.
    unsafe {
        (*pair).inside = (rounding_mode(), tenth(10.0));
        RawContext::swap(
            core::ptr::addr_of_mut!((*pair).green),
            core::ptr::addr_of_mut!((*pair).main),
        );
        // The resumer ran in round-to-nearest meanwhile; ours is intact.
        (*pair).after = (rounding_mode(), tenth(10.0));
    }
}

struct FpPair {
    main: RawContext,
    green: RawContext,
    inside: (u32, f64),
    after: (u32, f64),
}

/// The raw API and the C ABI keep the FP control state (MXCSR and the x87
/// control word; FPCR) per context, as `swapcontext` does.
#[test]
fn rounding_mode_is_per_context() {
    let before = rounding_mode();
    let nearest = tenth(10.0);
    let stack = Stack::new(16).unwrap();
    let mut pair = Box::new(FpPair {
        main: RawContext::new(),
        green: RawContext::new(),
        inside: (0, 0.0),
        after: (0, 0.0),
    });
    let p: *mut FpPair = &mut *pair;
    // SAFETY: the stack and the pair outlive the context, whose entry
    // returns to `main`, suspended then.
    unsafe {
        RawContext::make(
            core::ptr::addr_of_mut!((*p).green),
            &stack,
            rounding_green,
            p.cast(),
            core::ptr::addr_of_mut!((*p).main),
        )
        .unwrap();
        RawContext::swap(
            core::ptr::addr_of_mut!((*p).main),
            core::ptr::addr_of_mut!((*p).green),
        );
    }
    let (inside, down) = pair.inside;
    assert_eq!(inside, 3);
    assert_eq!(
        rounding_mode(),
        before,
        "the green thread's rounding mode leaked into its resumer"
    );
    assert_eq!(tenth(10.0), nearest);
    assert_ne!(
        down, nearest,
        "toward-zero rounding must differ from nearest for 1/10"
    );
    // SAFETY: as above; the entry returns and its link resumes us.
    unsafe {
        RawContext::swap(
            core::ptr::addr_of_mut!((*p).main),
            core::ptr::addr_of_mut!((*p).green),
        )
    };
    assert_eq!(
        pair.after,
        (3, down),
        "the green thread lost its rounding mode across a switch"
    );
    assert_eq!(rounding_mode(), before);
}

/// The `Coroutine` API does not switch FP control state: a coroutine and
/// its resumer share the thread's (as with corosensei). Rust code cannot
/// change it soundly; code that does (through assembly or C) must restore
/// it before suspending.
#[test]
#[cfg_attr(
    feature = "ucontext",
    ignore = "glibc's swapcontext switches the FP environment"
)]
fn coroutine_shares_fp_control_with_its_resumer() {
    use ugreen::{Coroutine, CoroutineResult};
    let before = rounding_mode();
    let mut co = Coroutine::new(Stack::new(16).unwrap(), |y, _: ()| {
        set_rounding_mode(3); // toward zero
        y.suspend(());
        let seen = rounding_mode();
        set_rounding_mode(0);
        seen
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    assert_eq!(
        rounding_mode(),
        3,
        "the coroutine's rounding mode is the thread's"
    );
    set_rounding_mode(2);
    assert_eq!(
        co.resume(()),
        CoroutineResult::Return(2),
        "the resumer's is the coroutine's"
    );
    set_rounding_mode(before);
}
