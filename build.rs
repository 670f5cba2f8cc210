//! Assembles the context-switch routine for the target (not the host), and
//! asks rustc which native libraries a C program linking `libugreen.a` needs
//! (`OUT_DIR/native-static-libs`, see `native_static_libs`).

use std::env;
use std::path::Path;
use std::process::Command;

/// (arch, os, env) -> assembly source. One file per operation, architecture,
/// ABI and object format.
const SOURCES: &[(&str, &str, &str, &str)] = &[
    ("x86_64", "linux", "gnu", "asm/switch_x86_64_sysv_elf.S"),
    ("x86_64", "linux", "musl", "asm/switch_x86_64_sysv_elf.S"),
    ("aarch64", "linux", "gnu", "asm/switch_aarch64_aapcs_elf.S"),
    ("aarch64", "linux", "musl", "asm/switch_aarch64_aapcs_elf.S"),
];

/// The native libraries of the staticlib, one line, as
/// `rustc --print native-static-libs` reports them for this target, written
/// to `OUT_DIR/native-static-libs`: the only place the link line of
/// `libugreen.a` is written down. The Rust tests and examples read it with
/// `include_str!(concat!(env!("OUT_DIR"), "/native-static-libs"))`, scripts
/// through `scripts/staticlib` (which names the build's `OUT_DIR` from
/// cargo's JSON messages), `scripts/install.sh` puts it into `ugreen.pc`.
///
/// rustc answers for a staticlib it links; this crate adds no native library
/// of its own (the assembly is bundled into the archive, and the `libc`
/// crate's are those of std), so rustc is asked about an empty staticlib for
/// the same target with the same `-C target-feature` flags (`crt-static`
/// changes the answer). The answer is kept as rustc gives it, except that
/// `-lunwind` on musl, which rustc takes from its own self-contained
/// directory, becomes that file's path: a C linker does not look there.
fn native_static_libs(out_dir: &Path) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = env::var("TARGET").expect("TARGET");
    let probe = out_dir.join("native-libs-probe.rs");
    let archive = out_dir.join("libnative_libs_probe.a");
    let answer = out_dir.join("native-libs-probe.txt");
    std::fs::write(&probe, "").expect("write the probe crate");
    let _ = std::fs::remove_file(&answer);
    let mut cmd = Command::new(&rustc);
    cmd.args([
        "--crate-type",
        "staticlib",
        "--crate-name",
        "native_libs_probe",
    ])
    .args(["--target", &target])
    .arg(format!("--print=native-static-libs={}", answer.display()))
    .arg("-o")
    .arg(&archive)
    .arg(&probe);
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let mut flags = flags.split('\x1f').filter(|f| !f.is_empty()).peekable();
    while let Some(flag) = flags.next() {
        if flag.starts_with("-Ctarget-feature=") {
            cmd.arg(flag);
        } else if flag == "-C"
            && flags
                .peek()
                .is_some_and(|f| f.starts_with("target-feature="))
        {
            cmd.arg(flag).arg(flags.next().unwrap());
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {rustc} to ask for the native libraries: {e}"));
    let _ = std::fs::remove_file(&archive);
    let libs = std::fs::read_to_string(&answer).unwrap_or_default();
    assert!(
        out.status.success() && !libs.trim().is_empty(),
        "`{rustc} --print native-static-libs --target {target}` on an empty staticlib failed \
         ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let self_contained = if env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("musl") {
        Command::new(&rustc)
            .args(["--print", "target-libdir", "--target", &target])
            .output()
            .ok()
            .map(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("self-contained"))
    } else {
        None
    };
    let libs: Vec<String> = libs
        .split_whitespace()
        .map(|lib| match &self_contained {
            Some(dir) if lib == "-lunwind" && dir.join("libunwind.a").is_file() => {
                dir.join("libunwind.a").display().to_string()
            }
            _ => lib.to_owned(),
        })
        .collect();
    std::fs::write(out_dir.join("native-static-libs"), libs.join(" ") + "\n")
        .expect("write OUT_DIR/native-static-libs");
}

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
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    native_static_libs(Path::new(&env::var("OUT_DIR").expect("OUT_DIR")));
    // The target and the features of this build, for the tests that ask
    // cargo to name the `libugreen.a` they link (tests/common).
    let mut features: Vec<String> = env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_").map(str::to_lowercase))
        .collect();
    features.sort();
    println!(
        "cargo:rustc-env=UGREEN_BUILD_TARGET={}",
        env::var("TARGET").expect("TARGET")
    );
    println!(
        "cargo:rustc-env=UGREEN_BUILD_FEATURES={}",
        features.join(",")
    );

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
