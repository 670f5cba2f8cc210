//! Helpers shared by the integration tests: running a test's crashing part
//! in a child process, and finding this build's `libugreen.a` and its native
//! libraries for C programs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod emulation;

/// The environment variable that tells a re-executed test binary which
/// scenario to run.
pub const CHILD_ENV: &str = "UGREEN_TEST_CHILD";

/// The arguments that make this test binary run only `test_name`, alone
/// and with its output shown (a child scenario; set [`CHILD_ENV`] too).
pub fn child_args(test_name: &str) -> [&str; 4] {
    [test_name, "--exact", "--nocapture", "--test-threads=1"]
}

/// Re-executes this test binary running only `test_name`, with the
/// scenario `scenario` selected, and returns its output.
pub fn run_child(test_name: &str, scenario: &str) -> Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match emulator() {
        Some(qemu) => {
            let mut c = Command::new(qemu[0].clone());
            c.args(&qemu[1..]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(child_args(test_name))
        .env(CHILD_ENV, scenario)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("spawn the test binary")
}

/// The scenario this process was started for, if it is a child.
pub fn child_scenario() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// The signal that ended the child, if any.
pub fn signal_of(out: &Output) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal()
}

/// When this test binary runs under qemu-user on another architecture (the
/// cross test setup of .cargo/config.toml), the command that runs a binary
/// of this architecture; None on a native host.
pub fn emulator() -> Option<Vec<String>> {
    if !emulation::emulated() {
        return None;
    }
    let target = std::env::consts::ARCH;
    Some(vec![
        format!("qemu-{target}"),
        "-L".into(),
        format!("/usr/{target}-linux-gnu"),
    ])
}

/// The native libraries `libugreen.a` needs on this target, as build.rs
/// asked rustc (`OUT_DIR/native-static-libs`; see build.rs).
pub fn native_libs() -> Vec<&'static str> {
    include_str!(concat!(env!("OUT_DIR"), "/native-static-libs"))
        .split_whitespace()
        .collect()
}

/// The directory of this test binary (`target/<profile>/deps`).
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .expect("the test binary has a directory")
        .to_path_buf()
}

/// The `libugreen.a` this test binary was built with, named by cargo: runs
/// `cargo test --no-run --message-format=json` for this test target with
/// the profile, target, features and `-Zbuild-std` this binary was built
/// with (all fresh, so nothing is rebuilt), checks that cargo names this very
/// executable, and returns the `.a` of the same build's ugreen artifact.
pub fn staticlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let exe = exe.canonicalize().unwrap_or(exe);
        let deps = deps_dir();
        let profile_dir = deps.parent().expect("the deps dir has a profile dir");
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile dir name");
        let above = profile_dir.parent().expect("target dir or triple dir");
        let triple = env!("UGREEN_BUILD_TARGET");
        let (target_dir, cross) = if above.file_name().and_then(|n| n.to_str()) == Some(triple) {
            (above.parent().expect("target dir"), true)
        } else {
            (above, false)
        };
        let test_name = exe
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('-'))
            .map(|(name, _hash)| name.to_owned())
            .expect("test binary named NAME-HASH");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["test", "--no-run", "--message-format=json", "--manifest-path"])
            .arg(&manifest)
            .args(["--test", &test_name, "--no-default-features"])
            .env("CARGO_TARGET_DIR", target_dir);
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        if cross {
            cmd.args(["--target", triple]);
        }
        let features = env!("UGREEN_BUILD_FEATURES");
        if !features.is_empty() {
            cmd.args(["--features", features]);
        }
        // -Zbuild-std leaves std's rlibs next to the test binary.
        let build_std = std::fs::read_dir(&deps)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with("libstd-") && name.ends_with(".rlib")
                })
            })
            .unwrap_or(false);
        if build_std {
            cmd.arg("-Zbuild-std");
        }
        let out = cmd.output().expect("run cargo");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let described = || {
            format!(
                "{cmd:?}: {}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        };
        assert!(out.status.success(), "{}", described());
        let messages: Vec<serde_json::Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|m: &serde_json::Value| m["reason"] == "compiler-artifact")
            .collect();
        let same_exe = |m: &serde_json::Value| {
            m["executable"]
                .as_str()
                .map(|e| Path::new(e).canonicalize().ok().as_deref() == Some(exe.as_path()))
                .unwrap_or(false)
        };
        assert!(
            messages.iter().any(same_exe),
            "cargo does not name this test binary ({}): it would build it differently\n{}",
            exe.display(),
            described()
        );
        let manifest = manifest.to_string_lossy();
        messages
            .iter()
            .filter(|m| m["manifest_path"].as_str() == Some(&*manifest))
            .filter(|m| {
                m["target"]["crate_types"]
                    .as_array()
                    .is_some_and(|t| t.iter().any(|t| t == "staticlib"))
            })
            .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f.as_str().map(PathBuf::from))
            .find(|f| f.extension().is_some_and(|e| e == "a"))
            .unwrap_or_else(|| {
                panic!(
                    "cargo names no libugreen.a (Cargo.toml's crate-type must include \"staticlib\")\n{}",
                    described()
                )
            })
    })
}
