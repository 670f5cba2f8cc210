//! The assembly claims exactly the control-flow protections it implements,
//! and its unwind information follows them:
//!
//! * x86_64: assembled with `-fcf-protection`, every routine starts with
//!   `endbr64` and the property note says IBT, never SHSTK; without it, no
//!   property note. Always an executable-stack-free object.
//! * aarch64 (with the cross assembler on other hosts): assembled with
//!   `-mbranch-protection=pac-ret`, the unwind information marks the return
//!   address signed from the instruction after each `paciasp` and plain
//!   again after each `autiasp`, so unwinders authenticate it exactly where
//!   it is signed.

use std::path::Path;
use std::process::Command;

#[cfg(target_arch = "x86_64")]
const X86_64_SOURCE: &str = "switch_x86_64_sysv_elf.S";

/// Assembles `asm/<source>` with the compiler `cc` and `flags` into `out`.
fn assemble(cc: &str, source: &str, flags: &[&str], out: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let status = Command::new(cc)
        .args(flags)
        .args([
            "-c",
            "-I",
            &format!("{root}/asm"),
            &format!("{root}/asm/{source}"),
            "-o",
        ])
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(status.success(), "{cc} failed on {source}");
}

/// The standard output of `cmd args obj`, which must succeed.
fn tool(cmd: &str, args: &[&str], obj: &Path) -> String {
    let out = Command::new(cmd).args(args).arg(obj).output().expect(cmd);
    assert!(out.status.success(), "{cmd} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(target_arch = "x86_64")]
#[test]
fn cet_build_has_landing_pads_and_claims_ibt_only() {
    let dir = std::env::temp_dir().join(format!("ugreen-asm-notes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("cet.o");
    assemble("cc", X86_64_SOURCE, &["-fcf-protection=full"], &obj);

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

#[cfg(target_arch = "x86_64")]
#[test]
fn plain_build_claims_nothing() {
    let dir = std::env::temp_dir().join(format!("ugreen-asm-plain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("plain.o");
    assemble("cc", X86_64_SOURCE, &["-fcf-protection=none"], &obj);
    let notes = tool("readelf", &["-n"], &obj);
    assert!(!notes.contains("x86 feature"), "{notes}");
    let dis = tool("objdump", &["-d"], &obj);
    assert!(!dis.contains("endbr64"), "{dis}");
    std::fs::remove_dir_all(&dir).ok();
}

/// The aarch64 assembler and objdump: Debian's names for them (the cross
/// tools elsewhere, and under qemu-user, whose host tools are not aarch64's),
/// else the native ones on aarch64.
fn aarch64_tools() -> Option<(&'static str, &'static str)> {
    let runs = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs("aarch64-linux-gnu-gcc") && runs("aarch64-linux-gnu-objdump") {
        Some(("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-objdump"))
    } else if cfg!(target_arch = "aarch64") {
        Some(("cc", "objdump"))
    } else {
        None
    }
}

/// Whether the return address is marked signed at `pc`, by the CFA
/// instructions of `readelf --debug-dump=frames` (the FDE covering `pc`:
/// `DW_CFA_AARCH64_negate_ra_state` toggles the state from its location on,
/// remember/restore_state save and restore it with the rest of the row).
fn ra_signed_at(frames: &str, pc: u64) -> bool {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let mut in_fde = false;
    let (mut signed, mut saved) = (false, Vec::new());
    for line in frames.lines() {
        if let Some(range) = line.split(" pc=").nth(1) {
            if in_fde {
                break;
            }
            let (start, end) = range.split_once("..").unwrap();
            in_fde = (hex(start)..hex(end)).contains(&pc);
            (signed, saved) = (false, Vec::new());
            continue;
        }
        if !in_fde {
            continue;
        }
        let line = line.trim();
        if let Some(to) = line
            .strip_prefix("DW_CFA_advance_loc")
            .and_then(|l| l.split(" to ").nth(1))
        {
            if hex(to) > pc {
                break;
            }
        } else if line == "DW_CFA_AARCH64_negate_ra_state" {
            signed = !signed;
        } else if line == "DW_CFA_remember_state" {
            saved.push(signed);
        } else if line == "DW_CFA_restore_state" {
            signed = saved.pop().expect("restore_state without remember_state");
        }
    }
    assert!(in_fde, "no FDE covers {pc:#x}:\n{frames}");
    signed
}

#[test]
fn aarch64_pac_build_marks_the_return_address_signed_exactly_where_it_is() {
    let Some((cc, objdump)) = aarch64_tools() else {
        eprintln!("skipped: no aarch64 assembler (Debian package gcc-aarch64-linux-gnu)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ugreen-asm-pac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("pac.o");
    assemble(
        cc,
        "switch_aarch64_aapcs_elf.S",
        &["-mbranch-protection=pac-ret+bti"],
        &obj,
    );
    let frames = tool("readelf", &["--debug-dump=frames"], &obj);
    let dis = tool(objdump, &["-d", "--no-show-raw-insn"], &obj);
    let at = |mnemonic: &str| -> Vec<u64> {
        dis.lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(mnemonic))
            .map(|l| u64::from_str_radix(l.trim().split(':').next().unwrap(), 16).unwrap())
            .collect()
    };
    let (signs, auths, rets) = (at("paciasp"), at("autiasp"), at("ret"));
    assert!(!signs.is_empty() && !auths.is_empty(), "{dis}");
    for &pc in &signs {
        assert!(
            !ra_signed_at(&frames, pc),
            "signed before paciasp at {pc:#x}"
        );
        assert!(
            ra_signed_at(&frames, pc + 4),
            "not marked signed after paciasp at {pc:#x}"
        );
    }
    for &pc in &auths {
        assert!(
            ra_signed_at(&frames, pc),
            "not marked signed at autiasp {pc:#x}"
        );
        assert!(
            !ra_signed_at(&frames, pc + 4),
            "still marked signed after autiasp at {pc:#x}"
        );
    }
    for &pc in &rets {
        assert!(!ra_signed_at(&frames, pc), "marked signed at ret {pc:#x}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
