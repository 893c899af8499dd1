//! `GET /v1/work` over real HTTP: a device sees its own open work orders and
//! nobody else's; an unsigned, forged, stale, foreign or revoked request is
//! refused with its reason code.

mod common;

use common::{cert, start};
use depin_client::{Client, ClientError, work_request};
use depin_protocol::{
    Envelope, Heartbeat, Revocation, SigningKey, device_keypair_from_seed, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use depin_store::{EpochRow, EpochWrite, Store, WorkRow};

fn order(id: u8, device: &SigningKey, deadline_ms: i64) -> WorkRow {
    WorkRow {
        id: [id; 32],
        issued_epoch: 9_999,
        sector: 2,
        device: public_key_of(device),
        answer_kind: 2001,
        body: vec![id, 0xff],
        deadline_ms,
        due_epoch: 10_000,
        answer_seq: None,
    }
}

fn code(e: &ClientError) -> (u16, String) {
    match e {
        ClientError::Rejected { status, code, .. } => (*status, code.clone()),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_pull_their_own_open_work() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = start(dir.path(), policy).await;
    let base = format!("http://{}", server.addr);
    let client = Client::new(&base).unwrap();
    let http = reqwest::Client::new();
    let op = device_keypair_from_seed([41; 32]);
    let (a, b) = (
        device_keypair_from_seed([42; 32]),
        device_keypair_from_seed([43; 32]),
    );
    for dev in [&a, &b] {
        let r = http
            .post(format!("{base}/v1/devices"))
            .body(cert(&op, dev, "rtx-3060", "1.0.0"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    // Orders as a close writes them (an epoch far ahead, so the server's own
    // closes never meet it).
    let now = now_ms();
    let store = Store::open(&depin_store::sqlite_url(&dir.path().join("depin.sqlite")))
        .await
        .unwrap();
    let orders = vec![
        order(1, &a, now + 600_000),
        order(2, &a, now + 60_000),
        order(3, &b, now + 60_000),
        order(4, &a, now - 1), // deadline passed
    ];
    let close = store
        .begin_close(9_999, "test", now)
        .await
        .unwrap()
        .unwrap();
    let row = EpochRow {
        epoch: 9_999,
        policy_id: "test".into(),
        closed_ms: now,
        emission: 0,
        minted: 0,
        fees: 0,
        burned: 0,
        devices: 0,
        sheet_hash: vec![0; 32],
        claim_root: vec![0; 32],
    };
    close
        .commit(
            &row,
            &EpochWrite {
                work: orders.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let mine = client.open_work(&work_request(&a, now_ms())).await.unwrap();
    let ids: Vec<u8> = mine.iter().map(|w| w.id[0]).collect();
    assert_eq!(
        ids,
        vec![2, 1],
        "soonest deadline first, the expired one left out"
    );
    assert_eq!(mine[0].body, vec![2, 0xff]);
    assert_eq!((mine[0].sector, mine[0].answer_kind), (2, 2001));
    let theirs = client.open_work(&work_request(&b, now_ms())).await.unwrap();
    assert_eq!(theirs.iter().map(|w| w.id[0]).collect::<Vec<_>>(), vec![3]);

    // Refusals.
    let get = |h: Option<String>| {
        let mut r = http.get(format!("{base}/v1/work"));
        if let Some(h) = h {
            r = r.header("x-depin-request", h);
        }
        r.send()
    };
    for (header, status, want) in [
        (None, 400, "bad_request"),
        (Some("zz".to_string()), 400, "bad_request"),
        (Some("ab".repeat(2_000)), 400, "bad_request"),
        (Some("00ff".to_string()), 400, "malformed"),
    ] {
        let r = get(header).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], want, "{v}");
    }
    let heartbeat = sign(
        &Envelope::new(
            public_key_of(&a),
            1,
            now_ms(),
            &Heartbeat {
                uptime_s: 1,
                temperature_centi_c: 0,
                firmware_version: "1".into(),
                power_mw: 0,
            },
        ),
        &a,
    );
    let mut forged = work_request(&a, now_ms());
    forged.signature[0] ^= 1;
    let cases: Vec<(depin_protocol::Signed, u16, &str)> = vec![
        (heartbeat, 400, "wrong_payload_kind"),
        (forged, 403, "bad_signature"),
        // The operator's key is not a device; a stranger's neither.
        (work_request(&op, now_ms()), 401, "unknown_signer"),
        (
            work_request(&device_keypair_from_seed([44; 32]), now_ms()),
            401,
            "unknown_signer",
        ),
        (
            work_request(&a, now_ms() - 3_600_000),
            400,
            "stale_timestamp",
        ),
        (
            work_request(&a, now_ms() + 3_600_000),
            400,
            "future_timestamp",
        ),
    ];
    for (req, status, want) in cases {
        let e = client.open_work(&req).await.unwrap_err();
        assert_eq!(code(&e), (status, want.to_string()), "{e}");
    }

    // A revoked device can no longer pull its work.
    let rev = sign(
        &Envelope::new(
            public_key_of(&op),
            1,
            now_ms(),
            &Revocation {
                device_key: public_key_of(&a),
                reason: "stolen".into(),
            },
        ),
        &op,
    );
    client.revoke_device(&rev).await.unwrap();
    let e = client
        .open_work(&work_request(&a, now_ms()))
        .await
        .unwrap_err();
    assert_eq!(code(&e), (403, "revoked_device".to_string()));
    server.stop().await.unwrap();
}
