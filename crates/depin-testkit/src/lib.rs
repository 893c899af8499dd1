//! Tests that cannot run here because a tool is missing (PostgreSQL server
//! binaries, Node, a tmpfs mount, promtool, Chromium) skip through
//! [`skip`], and nowhere else, so that a skip is never silent:
//!
//! - the test prints `skipped: <reason>` (visible with `--nocapture`, and in
//!   the output of a failing run);
//! - it appends one line, `<test>\t<reason>`, to `skipped-tests.txt` in the
//!   profile's target directory (`target/debug/`), which `tools/test` (the
//!   README's test command, and `.ci/run`) empties before `cargo test
//!   --workspace` and prints after it as "N tests skipped". libtest's own
//!   "N passed" counts a skipped test as passed, and offers no hook to say
//!   otherwise; the summary line after it is the honest count;
//! - where the tool is required (`DEPIN_REQUIRE_<TOOL>=1`, set by `.ci/run`),
//!   the skip is a failure instead, so CI can never pass by skipping.

use std::io::Write;
use std::path::PathBuf;

/// The file skips are recorded in: beside the test binaries' `deps/`
/// directory, i.e. `target/<profile>/skipped-tests.txt`.
pub fn record_file() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test binary>
    Some(exe.parent()?.parent()?.join("skipped-tests.txt"))
}

/// Skips the calling test because `reason` (a sentence saying what is
/// missing and how to install it), unless the environment variable
/// `require_var` is `1`, in which case it panics with the reason. The caller
/// returns right after, having checked nothing.
#[track_caller]
pub fn skip(require_var: &str, reason: &str) {
    let required = std::env::var(require_var).is_ok_and(|v| v == "1");
    skip_into(record_file(), required.then_some(require_var), reason);
}

#[track_caller]
fn skip_into(record: Option<PathBuf>, required_by: Option<&str>, reason: &str) {
    if let Some(var) = required_by {
        panic!("{var}=1 but {reason}");
    }
    eprintln!("skipped: {reason}");
    // libtest names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| match n.rsplit_once('-') {
            // drop cargo's hash suffix: `js_compat-0123abcd` → `js_compat`
            Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
            _ => n,
        })
        .unwrap_or_default();
    let line = format!("{binary}::{test}\t{}\n", reason.replace(['\n', '\t'], " "));
    // Appends of one short line from concurrent tests do not interleave
    // (O_APPEND); failing to record is reported, not fatal to the test.
    let written = record.and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .ok()
    });
    if written.is_none() {
        eprintln!("(could not record this skip in skipped-tests.txt)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_recorded_with_the_test_and_reason() {
        // Its own file: the run's summary must not list this self-test.
        let dir = std::env::temp_dir().join(format!("depin-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("skipped-tests.txt");
        let _ = std::fs::remove_file(&path);
        skip_into(Some(path.clone()), None, "promtool is missing");
        skip_into(Some(path.clone()), None, "node is\nmissing");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let name = "tests::a_skip_is_recorded_with_the_test_and_reason";
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(
            lines[0].starts_with("depin_testkit::")
                && lines[0].ends_with(&format!("{name}\tpromtool is missing")),
            "{text:?}"
        );
        assert!(
            lines[1].ends_with("\tnode is missing"),
            "one line per skip: {text:?}"
        );
    }

    #[test]
    #[should_panic(expected = "DEPIN_REQUIRE_PROMTOOL=1 but promtool is missing")]
    fn a_required_tool_fails_instead() {
        skip_into(None, Some("DEPIN_REQUIRE_PROMTOOL"), "promtool is missing");
    }
}
