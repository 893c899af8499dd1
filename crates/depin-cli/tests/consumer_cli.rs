//! `depin keygen`, `depin escrow deposit` and `depin consumer lock|show` as
//! a consumer and a coordinator operator run them: the real binary against a
//! real `depin serve` over loopback.

mod common;

use common::{depin, stderr, stdout};

#[test]
fn a_consumer_deposits_locks_and_looks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_server, url) = common::serve(d, "60", std::time::Duration::from_secs(20));
    std::fs::write(d.join("pass"), "correct horse\n").unwrap();
    let k = depin(
        &[
            "keygen",
            "--out",
            "consumer.key",
            "--passphrase-file",
            "pass",
            "--insecure-fast-kdf",
        ],
        d,
    );
    assert!(k.status.success(), "{}", stderr(&k));
    let key = stdout(&k).trim().to_string();
    assert_eq!(key.len(), 64);
    let db = "sqlite://coord/depin.sqlite";
    let deposit = |amount: &str| {
        depin(
            &[
                "escrow",
                "deposit",
                "--database-url",
                db,
                "--consumer",
                &key,
                "--amount",
                amount,
                "--external-ref",
                "invoice-17",
            ],
            d,
        )
    };
    let o = deposit("5000000");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("credited 5.000000 tokens"),
        "{}",
        stdout(&o)
    );
    let o = deposit("5000000");
    assert!(o.status.success());
    assert!(
        stdout(&o).contains("already credited; nothing changed"),
        "{}",
        stdout(&o)
    );
    let o = deposit("4000000");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already credited to another consumer or with another amount"),
        "{}",
        stderr(&o)
    );

    let lock = |order: &str, amount: &str| {
        depin(
            &[
                "consumer",
                "lock",
                "--key",
                "consumer.key",
                "--passphrase-file",
                "pass",
                "--coordinator",
                &url,
                "--order",
                order,
                "--sector",
                "storage",
                "--amount",
                amount,
                "--epochs",
                "24",
                "--json",
            ],
            d,
        )
    };
    let o = lock("1", "2000000");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["order"].as_u64(), v["new"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(
        v["last_epoch"].as_u64().unwrap() - v["first_epoch"].as_u64().unwrap(),
        23
    );
    let o = lock("2", "3000001");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("402 insufficient_escrow"),
        "{}",
        stderr(&o)
    );
    let o = lock("1", "1");
    assert!(stderr(&o).contains("409 order_conflict"), "{}", stderr(&o));

    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            &key,
            "--coordinator",
            &url,
        ],
        d,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("free escrow: 3.000000 tokens"), "{out}");
    assert!(
        out.contains("storage") && out.contains("2.000000") && out.contains("open"),
        "{out}"
    );
    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            &key,
            "--coordinator",
            &url,
            "--json",
        ],
        d,
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["escrow"], 3_000_000);
    let o = depin(
        &[
            "consumer",
            "show",
            "--consumer",
            "zz",
            "--coordinator",
            &url,
        ],
        d,
    );
    assert!(stderr(&o).contains("--consumer"), "{}", stderr(&o));
}
