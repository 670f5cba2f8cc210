//! Valgrind client requests: every stack is registered with
//! `VALGRIND_STACK_REGISTER` when it is mapped and deregistered when it is
//! unmapped (src/stack.rs calls these two), so memcheck knows a switch to it
//! is a stack switch. Outside valgrind a client request is a handful of
//! register rotations that change nothing and return the default value.
//!
//! A leaf module: it knows address ranges, not stacks.

const VG_USERREQ_STACK_REGISTER: usize = 0x1501;
const VG_USERREQ_STACK_DEREGISTER: usize = 0x1502;

/// Issues a valgrind client request; returns `default` outside valgrind.
#[inline(never)]
fn client_request(default: usize, request: usize, a1: usize, a2: usize) -> usize {
    let args: [usize; 6] = [request, a1, a2, 0, 0, 0];
    let result: usize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the magic preamble rotates rdi by 128 bits in all (no change);
    // `xchg rbx, rbx` is a no-op on hardware. Under valgrind the sequence
    // reads `args` and writes the result to rdx.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            out("rdi") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the rotations of x12 add up to 128 bits (no change) and
    // `orr x10, x10, x10` is a no-op on hardware; under valgrind the sequence
    // reads `args` (x4) and writes the result to x3.
    unsafe {
        core::arch::asm!(
            "ror x12, x12, #3", "ror x12, x12, #13", "ror x12, x12, #51", "ror x12, x12, #61",
            "orr x10, x10, x10",
            inout("x3") default => result,
            in("x4") args.as_ptr(),
            out("x12") _,
            options(nostack),
        );
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (request, a1, a2, args);
        result = default;
    }
    result
}

/// Tells valgrind that `[bottom, top)` is a stack; returns its id (0
/// outside valgrind).
pub(crate) fn stack_register(bottom: usize, top: usize) -> usize {
    client_request(0, VG_USERREQ_STACK_REGISTER, bottom, top)
}

/// Forgets the stack `stack_register` returned `id` for.
pub(crate) fn stack_deregister(id: usize) {
    client_request(0, VG_USERREQ_STACK_DEREGISTER, id, 0);
}
