//! Globals of the crate: none is a `static mut` (a safe function reaching
//! one is a data race waiting for a second thread); the ones a safe API
//! writes are written from many threads at once here.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_static_mut_in_the_crate() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 5, "src/ not found: {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["static", "mut"])
            {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "`static mut` in the crate (use atomics, a lock, or a cell with a documented \
         invariant):\n{}",
        found.join("\n")
    );
}

#[test]
fn overflow_advice_set_from_many_threads() {
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for i in 0..2000 {
                    ugreen::overflow::set_advice(&format!(
                        "advice {t} {i} ({})",
                        "é".repeat(i % 200)
                    ));
                }
            });
        }
    });
    ugreen::overflow::set_advice("give it a larger stack");
}
