//! Whether this program runs under user-mode emulation (qemu-user): the one
//! home of that check, shared by the integration tests (tests/common) and the
//! latency example (`#[path]`-included). qemu emulates `uname`, but
//! /proc/sys/kernel/arch shows the real host.

/// True when the machine's architecture differs from the one this program
/// was built for, i.e. the program runs under qemu-user.
pub fn emulated() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/arch")
        .is_ok_and(|host| host.trim() != std::env::consts::ARCH)
}
