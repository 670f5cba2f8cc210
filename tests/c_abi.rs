//! The C ABI tested from C: the programs in tests/c/ include only `ugreen.h`
//! (and standard headers), are compiled with
//! `-std=c11 -Wall -Wextra -Werror -pedantic` and once as C++17, linked
//! against the crate's `libugreen.a` with the native libraries it needs, and
//! run here; each test checks a program's exit status and output.
//!
//! The compiler and the way to run the programs follow the target this test
//! binary was built for (`cfg!(target_arch)`, which under `cargo test
//! --target` is the target, not the host): `<arch>-linux-<libc>-gcc` when it
//! exists (a cross compiler, or Debian's name for the native one; `<libc>`
//! is `gnu` or `musl`, the target's C library), else `cc`. A program the
//! kernel cannot execute (an aarch64 binary on an x86_64 host without
//! binfmt) runs under `qemu-<arch> -L /usr/<arch>-linux-gnu`.
//! `UGREEN_TEST_CC`, `UGREEN_TEST_CXX` and `UGREEN_TEST_RUNNER` override the
//! three choices.
#![cfg(target_os = "linux")]

mod common;

use common::{deps_dir, native_libs, staticlib};

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
const CXX_FLAGS: &[&str] = &["-x", "c++", "-std=c++17", "-Wall", "-Wextra", "-Werror"];
const OPT_FLAGS: &[&str] = &["-O2", "-g"];

const ARCH: &str = std::env::consts::ARCH;
/// The target's C library, as Debian's compiler names spell it.
const LIBC: &str = if cfg!(target_env = "musl") {
    "musl"
} else {
    "gnu"
};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Lang {
    C,
    Cxx,
}

const LANGS: [Lang; 2] = [Lang::C, Lang::Cxx];

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Full path of `program` as found on PATH.
fn which(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn on_path(program: &str) -> bool {
    which(program).is_some()
}

struct Toolchain {
    cc: String,
    /// `None`: no C++ compiler for the target; the C++ variant is then only
    /// checked for syntax with the host's `g++`.
    cxx: Option<String>,
}

fn toolchain() -> &'static Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN.get_or_init(|| {
        let prefixed = |tool: &str| format!("{ARCH}-linux-{LIBC}-{tool}");
        let (cc, cxx) = if on_path(&prefixed("gcc")) {
            let cxx = Some(prefixed("g++")).filter(|c| on_path(c));
            (prefixed("gcc"), cxx)
        } else {
            // No triplet-named compiler: the host's own compilers.
            let cxx = ["c++", "g++"]
                .into_iter()
                .find(|c| on_path(c))
                .map(str::to_owned);
            ("cc".to_owned(), cxx)
        };
        Toolchain {
            cc: std::env::var("UGREEN_TEST_CC").unwrap_or(cc),
            cxx: std::env::var("UGREEN_TEST_CXX").ok().or(cxx),
        }
    })
}

/// The directory the test binary lives in: `target[/<triple>]/<profile>/deps`.
/// Where the C programs are built: per target arch, profile and backend.
fn out_dir() -> PathBuf {
    let deps = deps_dir();
    let profile = deps
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("unknown");
    let backend = if cfg!(feature = "ucontext") {
        "ucontext"
    } else {
        "asm"
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("c-abi")
        .join(format!("{ARCH}-{profile}-{backend}"));
    std::fs::create_dir_all(&dir).expect("create the output dir");
    dir
}

/// Output of a command, for failure messages.
fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn compile(name: &str, lang: Lang) -> Option<PathBuf> {
    let tc = toolchain();
    let src = crate_dir()
        .join("tests")
        .join("c")
        .join(format!("{name}.c"));
    let include = crate_dir().join("include");
    let (compiler, flags, syntax_only) = match lang {
        Lang::C => (tc.cc.as_str(), C_FLAGS, false),
        Lang::Cxx => match tc.cxx.as_deref() {
            Some(cxx) => (cxx, CXX_FLAGS, false),
            None => ("g++", CXX_FLAGS, true),
        },
    };
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .args(OPT_FLAGS)
        .arg("-I")
        .arg(&include)
        .arg(&src);
    if syntax_only {
        eprintln!(
            "note: no {ARCH}-linux-{LIBC}-g++: {name}.c is only checked as C++ (-fsyntax-only)"
        );
        cmd.arg("-fsyntax-only");
        let out = cmd.output().unwrap_or_else(|e| panic!("running g++: {e}"));
        assert!(
            out.status.success(),
            "{}",
            describe(&format!("g++ -fsyntax-only {name}.c"), &out)
        );
        return None;
    }
    let suffix = if lang == Lang::Cxx { "-cxx" } else { "" };
    let exe = out_dir().join(format!("{name}{suffix}"));
    let tmp = exe.with_extension(format!("tmp{}", std::process::id()));
    // `-x none`: the archive after the source is not C++ source.
    cmd.args(["-x", "none"])
        .arg(staticlib())
        .args(native_libs())
        .arg("-o")
        .arg(&tmp);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        describe(&format!("{compiler} {name}.c"), &out)
    );
    std::fs::rename(&tmp, &exe).expect("rename the program into place");
    Some(exe)
}

/// Builds each program once per language, also when tests share it.
fn build(name: &str, lang: Lang) -> Option<PathBuf> {
    type Slot = Arc<OnceLock<Option<PathBuf>>>;
    static BUILT: OnceLock<Mutex<HashMap<(String, Lang), Slot>>> = OnceLock::new();
    let slot = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry((name.to_owned(), lang))
        .or_default()
        .clone();
    slot.get_or_init(|| compile(name, lang)).clone()
}

/// The command prefix that runs a program built for the target: none on a
/// native host, else `qemu-<arch> -L /usr/<arch>-linux-gnu` (the same
/// decision the other tests make, `common::emulator`);
/// `UGREEN_TEST_RUNNER` overrides it.
fn runner() -> &'static [String] {
    static RUNNER: OnceLock<Vec<String>> = OnceLock::new();
    RUNNER.get_or_init(|| match std::env::var("UGREEN_TEST_RUNNER") {
        Ok(r) => r.split_whitespace().map(str::to_owned).collect(),
        Err(_) => common::emulator().unwrap_or_default(),
    })
}

fn run(exe: &Path, args: &[&str]) -> Output {
    let runner = runner();
    let mut cmd = match runner.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(exe);
            cmd
        }
        None => Command::new(exe),
    };
    cmd.args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} {}: {e}", runner.join(" "), exe.display()))
}

/// Runs the program `name` in every language; it must exit 0 and print a
/// line that starts with `expect`.
fn run_ok(name: &str, expect: &str) {
    for lang in LANGS {
        let Some(exe) = build(name, lang) else {
            continue;
        };
        let out = run(&exe, &[]);
        let what = format!("{name} ({lang:?})");
        assert!(out.status.success(), "{}", describe(&what, &out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.lines().any(|l| l.starts_with(expect)),
            "{}",
            describe(&what, &out)
        );
    }
}

#[test]
fn c_pingpong() {
    let backend = if cfg!(feature = "ucontext") {
        "ucontext"
    } else {
        "asm"
    };
    run_ok(
        "pingpong",
        &format!("pingpong ok: 100000 round trips, backend {backend}"),
    );
}

#[test]
fn c_round_robin_through_main() {
    run_ok(
        "round_robin",
        "round_robin ok: 30 cores, 600 requests, 9000 switches",
    );
}

#[test]
fn c_remake_on_reused_stacks() {
    run_ok("remake", "remake ok: 100000 contexts on 4 stacks");
}

#[test]
fn c_overflow_thread_init_frees_at_thread_exit() {
    run_ok("threads", "threads ok: 400 threads");
}

#[test]
fn c_contract_bad_inputs() {
    run_ok("contract", "contract ok:");
}

/// One row of `crash --list`: a scenario and how its process must end.
#[derive(Debug, Default)]
struct Scenario {
    name: String,
    /// `Some(sig)`: killed by that signal; `None`: exits with `exit_code`.
    signal: Option<i32>,
    exit_code: i32,
    /// On stderr, in this order.
    messages: Vec<String>,
    /// Never on stderr.
    absent: Option<String>,
}

/// The scenarios `crash` defines (its table is their only definition).
fn crash_scenarios(exe: &Path) -> Vec<Scenario> {
    let out = run(exe, &["--list"]);
    assert!(out.status.success(), "{}", describe("crash --list", &out));
    let mut all: Vec<Scenario> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let text = rest.replace("\\n", "\n");
        match kind {
            "scenario" => {
                let f: Vec<&str> = rest.split(' ').collect();
                assert_eq!(f.len(), 3, "bad listing line {line:?}");
                let value: i32 = f[2].parse().expect("a number");
                all.push(Scenario {
                    name: f[0].to_owned(),
                    signal: (f[1] == "signal").then_some(value),
                    exit_code: value,
                    ..Default::default()
                });
            }
            "message" => all.last_mut().expect("a scenario").messages.push(text),
            "absent" => all.last_mut().expect("a scenario").absent = Some(text),
            _ => panic!("bad listing line {line:?}"),
        }
    }
    all
}

/// Checks one scenario's output against its row; the reason it fails.
fn check_scenario(s: &Scenario, out: &Output) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains(&format!("{}: armed", s.name)) {
        return Err("it did not print that it is armed".into());
    }
    match s.signal {
        Some(sig) if out.status.signal() != Some(sig) => {
            return Err(format!("expected death by signal {sig}"))
        }
        None if out.status.code() != Some(s.exit_code) => {
            return Err(format!("expected exit status {}", s.exit_code))
        }
        _ => {}
    }
    let mut rest: &str = &stderr;
    for msg in &s.messages {
        match rest.find(msg.as_str()) {
            Some(at) => rest = &rest[at + msg.len()..],
            None => return Err(format!("stderr lacks {msg:?} (in this order)")),
        }
    }
    match &s.absent {
        Some(absent) if stderr.contains(absent.as_str()) => Err(format!("stderr has {absent:?}")),
        _ => Ok(()),
    }
}

/// Every scenario of tests/c/crash.c, in every language, each in its own
/// process: it must print that it is armed, then end as its row says, with
/// its messages on stderr in order and without its absent text.
#[test]
fn c_crash_scenarios() {
    let mut ran = 0;
    let mut failures = Vec::new();
    for lang in LANGS {
        let Some(exe) = build("crash", lang) else {
            continue;
        };
        let scenarios = crash_scenarios(&exe);
        assert!(
            scenarios.len() >= 18,
            "too few scenarios listed: {scenarios:?}"
        );
        for s in &scenarios {
            let out = run(&exe, &[&s.name]);
            if let Err(why) = check_scenario(s, &out) {
                let what = format!("crash {} ({lang:?}): {why}", s.name);
                failures.push(describe(&what, &out));
            }
            ran += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran > 0, "no crash scenario ran");
}

/// `scripts/install.sh PREFIX` installs lib, header and `ugreen.pc`; a C
/// program then builds with `pkg-config --cflags --libs ugreen` alone.
#[test]
fn c_install_and_pkg_config() {
    assert!(
        on_path("pkg-config"),
        "pkg-config is needed for this test (Debian: apt-get install pkg-config)"
    );
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let mut install = Command::new("bash");
    install.arg(crate_dir().join("scripts").join("install.sh"));
    // The target this test was built for when cargo was given `--target`:
    // then the test binary lives in `<target-dir>/<triple>/<profile>/deps`.
    let deps = deps_dir();
    let profile_dir = deps.parent().expect("profile dir");
    let above = profile_dir.parent().expect("target dir or triple dir");
    let dir_name = above.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let triple = Some(dir_name.to_owned()).filter(|d| d.starts_with(&format!("{ARCH}-")));
    // The script's release build goes to a target dir of its own, so that
    // this test never replaces the `target/release/libugreen.a` of a build.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-build");
    if let Some(triple) = &triple {
        install.args(["--target", triple]);
    }
    if cfg!(feature = "ucontext") {
        install.args(["--features", "ucontext"]);
    }
    install.arg(&prefix).env("CARGO_TARGET_DIR", &target_dir);
    let out = install.output().expect("run scripts/install.sh");
    assert!(
        out.status.success(),
        "{}",
        describe("scripts/install.sh", &out)
    );
    for file in [
        "lib/libugreen.a",
        "include/ugreen.h",
        "lib/pkgconfig/ugreen.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} not installed");
    }

    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "ugreen"])
        .env("PKG_CONFIG_PATH", prefix.join("lib").join("pkgconfig"))
        .output()
        .expect("run pkg-config");
    assert!(pc.status.success(), "{}", describe("pkg-config", &pc));
    let flags = String::from_utf8(pc.stdout).expect("pkg-config output is UTF-8");

    let exe = out_dir().join("pingpong-pkg-config");
    let src = crate_dir().join("tests").join("c").join("pingpong.c");
    let out = Command::new(&toolchain().cc)
        .args(C_FLAGS)
        .arg(&src)
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{}",
        describe("cc $(pkg-config --cflags --libs ugreen)", &out)
    );
    let out = run(&exe, &[]);
    assert!(
        out.status.success(),
        "{}",
        describe("pingpong built with pkg-config", &out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pingpong ok: 100000 round trips"));
}
