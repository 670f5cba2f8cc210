//! gdb walks out of a green thread: a backtrace taken at a breakpoint on a
//! green stack lists the green thread's frames, then
//! `ugreen_internal_trampoline` (`ugreen_internal_coroutine_trampoline` for
//! the `Coroutine` API), then the frames of the code that resumed
//! the green thread, down to `main`.
//!
//! Two programs: tests/gdb/green_backtrace.c (the C ABI, linked against this
//! build's `libugreen.a`, with a real `main`), and this test binary itself
//! re-executed for a scenario with a `Coroutine` (the safe API; its frames
//! end in the test harness's thread, not in `main`).
//!
//! Natively the tests run the program under `gdb` (Debian package `gdb`).
//! Under qemu-user (the aarch64 cross setup of .cargo/config.toml) they run
//! it under `qemu-<arch> -g PORT` and attach `gdb-multiarch` (Debian package
//! `gdb-multiarch`) to qemu's gdb stub. Without the debugger they print why
//! and pass.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

const ARCH: &str = std::env::consts::ARCH;

/// How the program is debugged.
enum Debugger {
    /// `gdb` starts the program itself.
    Native,
    /// The program runs under this qemu-user command with `-g PORT`;
    /// `gdb-multiarch` attaches to it.
    Qemu(Vec<String>),
}

fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The debugger setup for this build, or why the gdb checks cannot run.
fn debugger() -> Result<Debugger, String> {
    if cfg!(feature = "ucontext") {
        return Err("the ucontext backend has no ugreen trampoline".into());
    }
    if cfg!(feature = "asan") {
        return Err("the C program would need the ASan runtime".into());
    }
    match common::emulator() {
        Some(qemu) if runs("gdb-multiarch") => Ok(Debugger::Qemu(qemu)),
        Some(_) => Err(
            "under qemu-user the test needs gdb-multiarch (Debian package `gdb-multiarch`)".into(),
        ),
        None if runs("gdb") => Ok(Debugger::Native),
        None => Err("gdb is not installed (Debian package `gdb`)".into()),
    }
}

/// The debugger setup, or `None` after printing why the test is skipped.
fn debugger_or_skip() -> Option<Debugger> {
    debugger().map_err(|why| eprintln!("skipped: {why}")).ok()
}

/// A TCP port that was free a moment ago, for qemu's gdb stub.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.local_addr().unwrap().port()
}

/// Runs `program args...` under the debugger with a breakpoint on
/// `function`, prints the backtrace there and returns gdb's output.
fn backtrace_at(
    debugger: &Debugger,
    function: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> String {
    gdb_at(debugger, function, program, args, env, &["bt"])
}

/// Runs `program args...` under the debugger until a breakpoint on
/// `function`, then runs `commands`; returns gdb's output.
fn gdb_at(
    debugger: &Debugger,
    function: &str,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    commands: &[&str],
) -> String {
    // An address expression (`*symbol`) names an assembly symbol, which
    // gdb's Rust expression parser does not look up.
    let language = if function.starts_with('*') {
        "set language c"
    } else {
        "set language auto"
    };
    let common_setup = [
        "set debuginfod enabled off",
        "set pagination off",
        "set confirm off",
        language,
    ];
    let mut gdb;
    let mut target = None;
    match debugger {
        Debugger::Native => {
            gdb = Command::new("gdb");
            gdb.args(["-batch", "-nx"]);
            for c in common_setup {
                gdb.args(["-ex", c]);
            }
            gdb.args(["-ex", "set startup-with-shell off"])
                .args(["-ex", &format!("break {function}")])
                .args(["-ex", "run"]);
            for (k, v) in env {
                gdb.env(k, v);
            }
        }
        Debugger::Qemu(qemu) => {
            let port = free_port();
            let mut q = Command::new(&qemu[0]);
            // qemu's gdb stub does not describe pointer authentication, so
            // gdb could not strip signed return addresses: run with PAC off
            // (its instructions are then NOPs, as on cores without it).
            q.args(["-cpu", "max,pauth=off"])
                .args(&qemu[1..])
                .arg("-g")
                .arg(port.to_string())
                .arg(program)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            for (k, v) in env {
                q.env(k, v);
            }
            target = Some(q.spawn().expect("start qemu with a gdb stub"));
            gdb = Command::new("gdb-multiarch");
            gdb.args(["-batch", "-nx"]);
            for c in common_setup {
                gdb.args(["-ex", c]);
            }
            // qemu listens before it runs any guest code; gdb retries a
            // refused connection until then (tcp auto-retry is on).
            gdb.args(["-ex", "set tcp connect-timeout 60"])
                .args(["-ex", &format!("set sysroot /usr/{ARCH}-linux-gnu")])
                .args(["-ex", &format!("file {}", program.display())])
                .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
                .args(["-ex", &format!("break {function}")])
                .args(["-ex", "continue"]);
        }
    }
    for c in commands {
        gdb.args(["-ex", c]);
    }
    gdb.args(["-ex", "kill"]);
    if let Debugger::Native = debugger {
        gdb.arg("--args").arg(program).args(args);
    }
    let out = gdb.output().expect("run gdb");
    if let Some(mut child) = target {
        let _ = child.kill();
        let _ = child.wait();
    }
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The function of each frame line (`#N  [0x... in ]name (args) at ...`).
fn frames(gdb_output: &str) -> Vec<String> {
    gdb_output
        .lines()
        .filter(|l| l.starts_with('#') && l[1..].chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| {
            let rest = l[1..]
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim();
            let rest = match rest.find(" in ") {
                Some(i) if rest.starts_with("0x") => &rest[i + 4..],
                _ => rest,
            };
            rest.split(" (").next().unwrap_or("").to_owned()
        })
        .collect()
}

/// The trampoline's frame. On aarch64 its unwind information marks it as a
/// signal frame (which the walk needs under qemu), and gdb shows such a
/// frame as `<signal handler called>` instead of its name.
const TRAMPOLINE: &str = "ugreen_internal_trampoline|<signal handler called>";
/// The same for the trampoline of the `Coroutine` API (its own switch).
const COROUTINE_TRAMPOLINE: &str = "ugreen_internal_coroutine_trampoline|<signal handler called>";

/// Asserts that the frames contain `names` in this order (each matched by
/// substring; `a|b` matches either), and that gdb did not stop the walk
/// early.
fn assert_frames_in_order(output: &str, names: &[&str]) -> Vec<String> {
    let frames = frames(output);
    let mut from = 0;
    for name in names {
        let found = frames[from..]
            .iter()
            .position(|f| name.split('|').any(|alt| f.contains(alt)));
        match found {
            Some(i) => from += i + 1,
            None => panic!("frame `{name}` missing or out of order in:\n{output}"),
        }
    }
    assert!(
        !stopped_early(output, &frames),
        "gdb stopped the backtrace early:\n{output}"
    );
    frames
}

/// Whether gdb stopped the walk of `frames` (from `output`) before its end.
/// musl's thread entry (`__clone`, written in assembly without CFI) does
/// not mark itself as the outermost frame, so gdb reports a stop there,
/// past every frame of the program: that one is not early.
fn stopped_early(output: &str, frames: &[String]) -> bool {
    let stopped_in_musl_clone =
        cfg!(target_env = "musl") && frames.last().is_some_and(|f| f == "__clone");
    output.contains("Backtrace stopped") && !stopped_in_musl_clone
}

/// Builds a C program of tests/gdb/ against this build's `libugreen.a`.
fn build_c_program(name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("gdb_{name}-{ARCH}"));
    // Debian's name for the target's compiler (native or cross), else cc.
    let libc = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    let cc = format!("{ARCH}-linux-{libc}-gcc");
    let cc = if runs(&cc) { cc } else { "cc".to_owned() };
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O0", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join(format!("tests/gdb/{name}.c")))
        .arg(common::staticlib())
        .args(common::native_libs())
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Unwinding from every instruction of the switch routines gives a full
/// backtrace (profilers and debuggers interrupt code anywhere): gdb
/// single-steps through a swap into a new context, its trampoline and entry
/// function, a swap back, a second swap in and the context's end through the
/// trampoline and `ugreen_internal_jump`, and at every instruction the
/// backtrace reaches `main` without an unwinding error.
#[test]
fn gdb_backtrace_at_every_instruction_of_switch_and_trampoline() {
    let Some(debugger) = debugger_or_skip() else {
        return;
    };
    let exe = build_c_program("stepi");
    // One stepi and one bt per instruction until gdb_step_end (bounded).
    let script = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stepi-{ARCH}.gdb"));
    std::fs::write(
        &script,
        "set $end = (long) &gdb_step_end\n\
         set $n = 0\n\
         while (long) $pc != $end && $n < 3000\n\
         echo STEP\\n\n\
         x/i $pc\n\
         bt\n\
         stepi\n\
         set $n = $n + 1\n\
         end\n\
         echo END\\n\n",
    )
    .expect("write the gdb script");
    let source = format!("source {}", script.display());
    let output = gdb_at(&debugger, "gdb_step_start", &exe, &[], &[], &[&source]);
    let steps = assert_every_step_unwinds(&output, "main", |names| {
        names.last().map(String::as_str) == Some("main")
    });
    let mut seen = std::collections::BTreeSet::new();
    for at in &steps {
        // The swap's two names share its address.
        for (f, names) in [
            (
                "swap",
                &["ugreen_context_swap", "ugreen_internal_switch"][..],
            ),
            ("trampoline", &["ugreen_internal_trampoline"]),
            ("jump", &["ugreen_internal_jump"]),
            ("entry", &["green_entry"]),
        ] {
            if names.iter().any(|n| at.contains(&format!("<{n}"))) {
                seen.insert(f);
            }
        }
    }
    assert!(
        steps.len() > 60,
        "too few steps ({}):\n{output}",
        steps.len()
    );
    assert_eq!(
        seen.len(),
        4,
        "the steps did not cover the swap, the trampoline, the entry and the jump: {seen:?}"
    );
    eprintln!(
        "{} instructions stepped, every backtrace reaches main",
        steps.len()
    );
}

/// Checks the output of a stepping script (per instruction: a `STEP` line,
/// `x/i $pc` and `bt`; `END` after the last): every backtrace is whole (no
/// unwinding error) and its frames pass `reaches`, which checks that the walk
/// gets to `target`. Returns the instruction of each step.
fn assert_every_step_unwinds(
    output: &str,
    target: &str,
    reaches: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    assert!(
        output.contains("END"),
        "gdb did not finish the loop:\n{output}"
    );
    let mut at_each = Vec::new();
    let mut bad = Vec::new();
    for step in output.split("STEP\n").skip(1) {
        let step = step.split("END\n").next().unwrap_or(step);
        let at = step.lines().next().unwrap_or("").trim().to_owned();
        let names = frames(step);
        let broken = stopped_early(step, &names) || step.contains("Cannot access memory");
        if broken || !reaches(&names) {
            bad.push(format!("at {at}:\n{step}"));
        }
        at_each.push(at);
    }
    assert!(
        bad.is_empty(),
        "{} of {} instructions without a backtrace to {target}; the first:\n{}",
        bad.len(),
        at_each.len(),
        bad.iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    at_each
}

#[test]
fn gdb_backtrace_from_c_green_thread_reaches_main() {
    let Some(debugger) = debugger_or_skip() else {
        return;
    };
    let exe = build_c_program("green_backtrace");
    // Sanity: the program works outside gdb.
    let run = match &debugger {
        Debugger::Native => Command::new(&exe).output().unwrap(),
        Debugger::Qemu(qemu) => Command::new(&qemu[0])
            .args(&qemu[1..])
            .arg(&exe)
            .output()
            .unwrap(),
    };
    assert!(run.status.success(), "{run:?}");

    let output = backtrace_at(&debugger, "gdb_breakpoint_in_green_thread", &exe, &[], &[]);
    let frames = assert_frames_in_order(
        &output,
        &[
            "gdb_breakpoint_in_green_thread",
            "gdb_green_work",
            "gdb_green_work",
            "gdb_green_work",
            "gdb_green_entry",
            TRAMPOLINE,
            "gdb_resumer_of_green_thread",
            "main",
        ],
    );
    assert_eq!(
        frames.last().map(String::as_str),
        Some("main"),
        "the walk ends in main:\n{output}"
    );
    eprintln!("{}", frames.join(" <- "));
}

/// The breakpoint of the Rust scenario.
#[no_mangle]
#[inline(never)]
pub extern "C" fn gdb_rust_breakpoint_in_green_thread(x: u64) -> u64 {
    std::hint::black_box(x + 1)
}

#[inline(never)]
fn gdb_rust_green_work(depth: u32) -> u64 {
    if depth == 0 {
        gdb_rust_breakpoint_in_green_thread(7)
    } else {
        std::hint::black_box(gdb_rust_green_work(depth - 1)) + 1
    }
}

#[inline(never)]
fn gdb_rust_resumer_of_green_thread(co: &mut ugreen::Coroutine<'_, (), (), u64>) -> u64 {
    match co.resume(()) {
        ugreen::CoroutineResult::Return(v) => v,
        ugreen::CoroutineResult::Yield(()) => unreachable!(),
    }
}

#[test]
fn gdb_backtrace_from_coroutine_reaches_resumer() {
    if common::child_scenario().as_deref() == Some("gdb-coroutine") {
        let mut co = ugreen::Coroutine::new(ugreen::Stack::new(64).unwrap(), |_, ()| {
            gdb_rust_green_work(3)
        });
        let v = gdb_rust_resumer_of_green_thread(&mut co);
        assert_eq!(v, 11);
        return;
    }
    let Some(debugger) = debugger_or_skip() else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let output = backtrace_at(
        &debugger,
        "gdb_rust_breakpoint_in_green_thread",
        &exe,
        &common::child_args("gdb_backtrace_from_coroutine_reaches_resumer"),
        &[(common::CHILD_ENV, "gdb-coroutine")],
    );
    let frames = assert_frames_in_order(
        &output,
        &[
            "gdb_rust_breakpoint_in_green_thread",
            // Four calls deep; the optimizer may merge one level.
            "gdb_rust_green_work",
            "gdb_rust_green_work",
            "gdb_rust_green_work",
            "coroutine_main",
            COROUTINE_TRAMPOLINE,
            "gdb_rust_resumer_of_green_thread",
            "gdb_backtrace_from_coroutine_reaches_resumer",
        ],
    );
    let shown: Vec<&str> = frames
        .iter()
        .map(String::as_str)
        .take_while(|f| !f.ends_with("gdb_backtrace_from_coroutine_reaches_resumer"))
        .collect();
    eprintln!("{} <- ...", shown.join(" <- "));
}

#[inline(never)]
fn gdb_rust_resumer_of_stepped_coroutine(co: &mut ugreen::Coroutine<'_, u64, (), u64>) -> u64 {
    match co.resume(std::hint::black_box(4)) {
        ugreen::CoroutineResult::Return(v) => v,
        ugreen::CoroutineResult::Yield(()) => unreachable!(),
    }
}

/// Unwinding from every instruction of the `Coroutine` trampoline gives a
/// backtrace into the resumer: gdb stops at the trampoline's first
/// instruction (a new coroutine's first resume), then steps over each of
/// its instructions (over the call of the entry function) until its final
/// return, taking a backtrace at each.
#[test]
fn gdb_backtrace_at_every_instruction_of_coroutine_trampoline() {
    if common::child_scenario().as_deref() == Some("gdb-coroutine-step") {
        let mut co = ugreen::Coroutine::new(ugreen::Stack::new(16).unwrap(), |_, x: u64| x * 3);
        assert_eq!(gdb_rust_resumer_of_stepped_coroutine(&mut co), 12);
        return;
    }
    let Some(debugger) = debugger_or_skip() else {
        return;
    };
    let script = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("co-stepi-{ARCH}.py"));
    std::fs::write(
        &script,
        r#"import gdb
lines = gdb.execute("disassemble ugreen_internal_coroutine_trampoline", to_string=True).splitlines()
addrs = [int(l.split()[0 if not l.startswith("=>") else 1], 16) for l in lines if "0x" in l and "<+" in l]
start, end = min(addrs), max(addrs) + 1
arch = gdb.selected_frame().architecture()
for _ in range(100):
    pc = int(gdb.parse_and_eval("(long) $pc"))
    if not start <= pc < end:
        break
    print("STEP")
    gdb.execute("x/i $pc")
    gdb.execute("bt")
    op = arch.disassemble(pc)[0]["asm"].split()[0]
    gdb.execute("nexti" if op in ("call", "callq", "blr", "bl") else "stepi")
print("END")
"#,
    )
    .expect("write the gdb script");
    let exe = std::env::current_exe().unwrap();
    let output = gdb_at(
        &debugger,
        "*ugreen_internal_coroutine_trampoline",
        &exe,
        &common::child_args("gdb_backtrace_at_every_instruction_of_coroutine_trampoline"),
        &[(common::CHILD_ENV, "gdb-coroutine-step")],
        &[&format!("source {}", script.display())],
    );
    let resumer = "gdb_rust_resumer_of_stepped_coroutine";
    let steps = assert_every_step_unwinds(&output, resumer, |names| {
        names.iter().any(|f| f.contains(resumer))
    });
    // Every instruction of the trampoline but the asan exit path.
    assert!(
        steps.len() >= 8,
        "too few steps ({}):\n{output}",
        steps.len()
    );
    eprintln!(
        "{} instructions of the coroutine trampoline stepped, every backtrace reaches the resumer",
        steps.len()
    );
}
