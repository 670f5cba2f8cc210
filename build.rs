//! Assembles the context-switch routine for the target (not the host).

use std::env;

/// (arch, os, env) -> assembly source. One file per operation, architecture,
/// ABI and object format.
const SOURCES: &[(&str, &str, &str, &str)] = &[
    ("x86_64", "linux", "gnu", "asm/switch_x86_64_sysv_elf.S"),
    ("x86_64", "linux", "musl", "asm/switch_x86_64_sysv_elf.S"),
    ("aarch64", "linux", "gnu", "asm/switch_aarch64_aapcs_elf.S"),
    ("aarch64", "linux", "musl", "asm/switch_aarch64_aapcs_elf.S"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `ugreen_bti`: the Rust code is built with BTI landing pads
    // (`-Zbranch-protection=bti`), so the coroutine switch's indirect-call
    // targets need one too (src/arch/asm/aarch64.rs); without BTI the pad would
    // be one more instruction per switch for nothing.
    println!("cargo:rustc-check-cfg=cfg(ugreen_bti)");
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if rustflags
        .split('\x1f')
        .any(|f| f.contains("branch-protection") && f.contains("bti"))
    {
        println!("cargo:rustc-cfg=ugreen_bti");
    }
    println!("cargo:rerun-if-changed=asm/common.h");
    for (_, _, _, src) in SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }

    if env::var_os("CARGO_FEATURE_UCONTEXT").is_some() {
        // The ucontext backend needs no assembly.
        return;
    }

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let Some(&(_, _, _, src)) = SOURCES
        .iter()
        .find(|(a, o, e, _)| *a == arch && *o == os && *e == target_env)
    else {
        let target = env::var("TARGET").unwrap_or_default();
        panic!(
            "ugreen has no context-switch assembly for target `{target}` \
             (arch {arch}, os {os}, env {target_env}); build with `--features ucontext` \
             to use getcontext/makecontext/swapcontext instead"
        );
    };

    let mut build = cc::Build::new();
    build.file(src).include("asm");
    if env::var_os("CARGO_FEATURE_ASAN").is_some() {
        // Built for AddressSanitizer: the C export `ugreen_context_swap` is
        // then a Rust wrapper that annotates the switch (src/ffi/mod.rs), and
        // the trampoline announces a finished context's last switch.
        build.define("UGREEN_ASAN", None);
    }
    build.compile("ugreen_asm");
}
