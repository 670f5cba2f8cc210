//! The assembly claims exactly the control-flow protections it implements:
//! assembled with `-fcf-protection`, every routine starts with `endbr64` and
//! the property note says IBT, never SHSTK; without it, no property note.
//! Always an executable-stack-free object.

#![cfg(target_arch = "x86_64")]

use std::path::Path;
use std::process::Command;

fn assemble(flags: &[&str], out: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new("cc")
        .args(flags)
        .args([
            "-c",
            "-I",
            &format!("{root}/asm"),
            &format!("{root}/asm/switch_x86_64_sysv_elf.S"),
            "-o",
        ])
        .arg(out)
        .status()
        .expect("run cc");
    assert!(status.success());
}

fn tool(cmd: &str, args: &[&str], obj: &Path) -> String {
    let out = Command::new(cmd).args(args).arg(obj).output().expect(cmd);
    assert!(out.status.success(), "{cmd} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn cet_build_has_landing_pads_and_claims_ibt_only() {
    let dir = std::env::temp_dir().join(format!("ugreen-asm-notes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("cet.o");
    assemble(&["-fcf-protection=full"], &obj);

    let notes = tool("readelf", &["-n"], &obj);
    assert!(notes.contains("x86 feature: IBT"), "{notes}");
    assert!(
        !notes.contains("SHSTK"),
        "shadow stacks are not implemented: {notes}"
    );

    // Every function symbol's first instruction is endbr64.
    let dis = tool("objdump", &["-d", "--no-show-raw-insn"], &obj);
    let mut functions = 0;
    let mut lines = dis.lines();
    while let Some(line) = lines.next() {
        if line.ends_with(">:") {
            functions += 1;
            let first = lines.next().unwrap_or_default();
            assert!(first.contains("endbr64"), "{line} starts with {first}");
        }
    }
    assert!(functions >= 4, "{dis}");
    // The resuming jump goes to a return site without endbr64: notrack.
    assert!(dis.contains("notrack jmp"), "{dis}");

    let sections = tool("readelf", &["-S", "-W"], &obj);
    assert!(sections.contains(".note.GNU-stack"), "{sections}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plain_build_claims_nothing() {
    let dir = std::env::temp_dir().join(format!("ugreen-asm-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("plain.o");
    assemble(&["-fcf-protection=none"], &obj);
    let notes = tool("readelf", &["-n"], &obj);
    assert!(!notes.contains("x86 feature"), "{notes}");
    let dis = tool("objdump", &["-d"], &obj);
    assert!(!dis.contains("endbr64"), "{dis}");
    std::fs::remove_dir_all(&dir).ok();
}
