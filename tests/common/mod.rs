//! Running a test's crashing part in a child process.

use std::process::{Command, Output};

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
