//! Helpers shared by the integration tests: running a test's crashing part
//! in a child process, and finding this build's `libugreen.a` for C programs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The environment variable that tells a re-executed test binary which
/// scenario to run.
pub const CHILD_ENV: &str = "UGREEN_TEST_CHILD";

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
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
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
/// of this architecture; None on a native host. qemu emulates `uname`, but
/// /proc/sys/kernel/arch shows the real host.
pub fn emulator() -> Option<Vec<String>> {
    let host = std::fs::read_to_string("/proc/sys/kernel/arch").ok()?;
    let target = std::env::consts::ARCH;
    if host.trim() == target {
        return None;
    }
    Some(vec![
        format!("qemu-{target}"),
        "-L".into(),
        format!("/usr/{target}-linux-gnu"),
    ])
}

/// What `rustc --print native-static-libs` reports for the glibc targets.
pub const NATIVE_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The directory of this test binary (`target/<profile>/deps`).
pub fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .expect("the test binary has a directory")
        .to_path_buf()
}

/// Names in the symbol table of an ar archive (GNU format, first member "/").
fn archive_symbols(path: &Path) -> Vec<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut head = [0u8; 8 + 60];
    if file.read_exact(&mut head).is_err() || &head[..8] != b"!<arch>\n" || &head[8..10] != b"/ " {
        return Vec::new();
    }
    let size: usize = std::str::from_utf8(&head[8 + 48..8 + 58])
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or(0);
    let mut table = vec![0u8; size];
    if file.read_exact(&mut table).is_err() || size < 4 {
        return Vec::new();
    }
    let count = u32::from_be_bytes(table[..4].try_into().unwrap()) as usize;
    let names = table.get(4 + 4 * count..).unwrap_or(&[]);
    names
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// The `libugreen.a` built with this test binary: the newest staticlib of
/// the crate next to it (`cargo test` builds it in `deps/`, `cargo build`
/// copies it one level up) whose backend matches this build's features.
pub fn staticlib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let deps = deps_dir();
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(&deps)
            .expect("read deps dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with("libugreen-") && name.ends_with(".a")
            })
            .collect();
        if let Some(profile_dir) = deps.parent() {
            let uplifted = profile_dir.join("libugreen.a");
            if uplifted.is_file() {
                candidates.push(uplifted);
            }
        }
        let want_asm = !cfg!(feature = "ucontext");
        let mut matching: Vec<(SystemTime, PathBuf)> = candidates
            .iter()
            .filter(|p| {
                let symbols = archive_symbols(p);
                symbols.iter().any(|s| s == "ugreen_context_swap")
                    && symbols.iter().any(|s| s == "ugreen_internal_switch") == want_asm
            })
            .cloned()
            .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH), p))
            .collect();
        matching.sort();
        match matching.pop() {
            Some((_, path)) => path,
            // No readable symbol table: the newest staticlib (c_pingpong
            // still checks the backend it was built with).
            None if !candidates.is_empty() => candidates
                .into_iter()
                .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .unwrap(),
            None => panic!(
                "no libugreen.a for this build next to {} (Cargo.toml's crate-type must include \"staticlib\")",
                deps.display()
            ),
        }
    })
}
