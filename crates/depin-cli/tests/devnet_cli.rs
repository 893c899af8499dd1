//! `depin devnet` through the binary: flags, the table on stdout, the files,
//! and the errors a user sees.

use std::path::Path;
use std::process::{Command, Output};

fn depin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_depin"))
        .args(args)
        .output()
        .expect("run depin")
}

fn devnet(out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().unwrap();
    let mut args = vec!["devnet", "--nodes", "24", "--epochs", "3", "--out", out];
    args.extend_from_slice(extra);
    depin(&args)
}

#[test]
fn prints_a_deterministic_table_and_writes_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let first = devnet(&out, &["--seed", "5"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let table = String::from_utf8(first.stdout.clone()).unwrap();
    for needle in [
        "sector",
        "storage",
        "compute",
        "wireless",
        "sensor",
        "cheats caught",
        "pay back",
        "depin audit-epoch --database-url sqlite://",
        "--epoch 2",
        "depin claims",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }
    for f in [
        "summary.json",
        "devices.json",
        "depin.sqlite",
        "epochs/0/claims.json",
        "epochs/2/claims.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let summary = std::fs::read(out.join("summary.json")).unwrap();
    let db = std::fs::read(out.join("depin.sqlite")).unwrap();

    // Same flags into the same directory: same table, same bytes.
    let again = devnet(&out, &["--seed", "5"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(again.stdout, first.stdout);
    assert_eq!(std::fs::read(out.join("summary.json")).unwrap(), summary);
    assert_eq!(std::fs::read(out.join("depin.sqlite")).unwrap(), db);
}

#[test]
fn unknown_scenario_lists_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let o = devnet(&dir.path().join("x"), &["--scenario", "chaos"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown scenario \"chaos\"") && err.contains("mixed, honest, cheaters"),
        "{err}"
    );
    assert!(
        !dir.path().join("x").exists(),
        "nothing is written for bad flags"
    );
}

#[test]
fn refuses_a_foreign_non_empty_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "keep me").unwrap();
    let o = devnet(dir.path(), &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("refusing to write") && err.contains("notes.txt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "keep me"
    );
}
