//! `depin keygen` and `depin node init|run` as a user runs them: the real
//! binary against a real `depin serve` over loopback.

mod common;

use common::{depin, stderr, stdout};
use std::process::Output;

#[test]
fn keygen_init_and_run_as_a_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    std::fs::write(dir.join("wrong.txt"), "wrong horse\n").unwrap();

    // keygen: no terminal and no passphrase source is a clear error.
    let o = depin(&["keygen", "--out", "op.key", "--insecure-fast-kdf"], dir);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--passphrase-file"), "{}", stderr(&o));
    assert!(!dir.join("op.key").exists());

    let o = depin(
        &[
            "keygen",
            "--out",
            "op.key",
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let operator = stdout(&o).trim().to_string();
    assert_eq!(operator.len(), 64, "prints the public key: {operator:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("op.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(dir.join("op.key")).unwrap();
    let o = depin(
        &[
            "keygen",
            "--out",
            "op.key",
            "--passphrase-file",
            "pass.txt",
            "--insecure-fast-kdf",
        ],
        dir,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(dir.join("op.key")).unwrap(),
        before,
        "an existing key is never overwritten"
    );

    let (_server, url) = common::serve(dir, "60", std::time::Duration::from_secs(20));
    let init = |extra: &[&str], data: &str, pass: &str| {
        let mut args = vec![
            "node",
            "init",
            "--operator-key",
            "op.key",
            "--data-dir",
            data,
            "--passphrase-file",
            pass,
        ];
        args.extend_from_slice(extra);
        depin(&args, dir)
    };

    let o = init(
        &["--sector", "hotspot", "--coordinator", &url],
        "n1",
        "pass.txt",
    );
    assert!(stderr(&o).contains("unknown sector"), "{}", stderr(&o));
    let o = init(
        &["--sector", "compute", "--coordinator", &url],
        "n1",
        "wrong.txt",
    );
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    let o = init(
        &["--sector", "compute", "--coordinator", "http://127.0.0.1:1"],
        "n1",
        "pass.txt",
    );
    assert!(
        stderr(&o).contains("cannot reach the coordinator"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("n1/node.json").exists());

    // Retrying after the failed attempt reuses its device key.
    let o = init(
        &[
            "--sector",
            "compute",
            "--coordinator",
            &url,
            "--watts",
            "120",
            "--hardware-class",
            "rtx-4090",
        ],
        "n1",
        "pass.txt",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&operator), "{}", stdout(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("n1/device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let o = init(
        &["--sector", "compute", "--coordinator", &url],
        "n1",
        "pass.txt",
    );
    assert!(stderr(&o).contains("already initialised"), "{}", stderr(&o));

    let o = depin(
        &[
            "node",
            "run",
            "--data-dir",
            "n1",
            "--max-heartbeats",
            "3",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("sent 1, pending 0"), "{}", stdout(&o));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n1/status.json")).unwrap())
            .unwrap();
    assert_eq!(status["heartbeats_created"], 3);
    assert_eq!(status["accepted_total"], 3);
    assert_eq!(status["pending"], 0);
    assert_eq!(status["state"], "stopped");

    let node: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("n1/node.json")).unwrap()).unwrap();
    let device: depin_core::PublicKey = node["device"].as_str().unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let view = rt
        .block_on(depin_client::Client::new(&url).unwrap().device(&device))
        .unwrap();
    assert_eq!(view.last_seq, Some(3));
    assert_eq!(view.hardware_class, "rtx-4090");
    assert_eq!(view.telemetry.unwrap().power_w, 120.0);
}

/// An operator rotates a node's key and revokes a stolen device: after the
/// rotation the node heartbeats under its new key; a revoked key is refused.
#[test]
fn rotate_and_revoke_as_an_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("pass.txt"), "correct horse\n").unwrap();
    let (_server, url) = common::serve(dir, "60", std::time::Duration::from_secs(20));
    let pass = ["--passphrase-file", "pass.txt"];
    let ok = |o: Output| {
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        stdout(&o)
    };
    let mut args = vec!["keygen", "--out", "op.key", "--insecure-fast-kdf"];
    args.extend(pass);
    ok(depin(&args, dir));
    for node in ["a", "b"] {
        let mut args = vec![
            "node",
            "init",
            "--sector",
            "wireless",
            "--operator-key",
            "op.key",
            "--coordinator",
            &url,
            "--data-dir",
            node,
        ];
        args.extend(pass);
        ok(depin(&args, dir));
    }
    let device_of = |node: &str| -> String {
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(node).join("node.json")).unwrap())
                .unwrap();
        cfg["device"].as_str().unwrap().to_string()
    };
    let old_a = device_of("a");

    // Rotate node a; its next run heartbeats under the new key.
    let mut args = vec![
        "node",
        "rotate",
        "--data-dir",
        "a",
        "--operator-key",
        "op.key",
    ];
    args.extend(pass);
    let out = ok(depin(&args, dir));
    let new_a = device_of("a");
    assert_ne!(old_a, new_a);
    assert!(out.contains(&new_a), "{out}");
    let run = ok(depin(
        &[
            "node",
            "run",
            "--data-dir",
            "a",
            "--max-heartbeats",
            "2",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    ));
    assert!(run.contains("2 accepted"), "{run}");

    // A rotation whose answer was lost after the coordinator committed it:
    // put the files back as they were before the swap and run it again. It
    // must finish the swap, not fail and not register another key.
    let a = dir.join("a");
    let revoked_copy = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("key.revoked-"))
        .expect("the old key is kept");
    std::fs::rename(a.join("device.key"), a.join("device.key.new")).unwrap();
    std::fs::rename(&revoked_copy, a.join("device.key")).unwrap();
    let cfg = std::fs::read_to_string(a.join("node.json"))
        .unwrap()
        .replace(&new_a, &old_a);
    std::fs::write(a.join("node.json"), cfg).unwrap();
    let mut args = vec![
        "node",
        "rotate",
        "--data-dir",
        "a",
        "--operator-key",
        "op.key",
    ];
    args.extend(pass);
    ok(depin(&args, dir));
    assert_eq!(
        device_of("a"),
        new_a,
        "the interrupted rotation completed to the same key"
    );

    // Revoke node b by its key alone (the device is gone); its agent is refused.
    let old_b = device_of("b");
    let mut args = vec![
        "node",
        "revoke",
        "--device",
        &old_b,
        "--operator-key",
        "op.key",
        "--coordinator",
        &url,
        "--reason",
        "stolen",
    ];
    args.extend(pass);
    ok(depin(&args, dir));
    let run = depin(
        &[
            "node",
            "run",
            "--data-dir",
            "b",
            "--max-heartbeats",
            "1",
            "--interval-seconds",
            "0.2",
        ],
        dir,
    );
    let text = format!("{}{}", stdout(&run), stderr(&run));
    assert!(text.contains("revoked"), "{text}");

    // Errors a user can act on.
    let mut args = vec![
        "node",
        "revoke",
        "--device",
        "xyz",
        "--operator-key",
        "op.key",
        "--coordinator",
        &url,
    ];
    args.extend(pass);
    let o = depin(&args, dir);
    assert!(
        !o.status.success() && stderr(&o).contains("--device"),
        "{}",
        stderr(&o)
    );
    let mut args = vec![
        "node",
        "rotate",
        "--data-dir",
        "nope",
        "--operator-key",
        "op.key",
    ];
    args.extend(pass);
    assert!(!depin(&args, dir).status.success());
}
