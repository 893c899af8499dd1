//! The example sector end to end, on SQLite and PostgreSQL, and over HTTP:
//! the close orders a challenge per device, the device pulls it with a
//! signed request and answers with a signed report before the deadline, the
//! next close scores it, `challenge_missed` for the device that did not
//! answer, and `audit-epoch` reproduces every epoch. An attacker's answers —
//! to another device's order, to an order never issued, twice, late, or
//! malformed — are refused with their reason codes.

use depin_coordinator::audit::audit_epoch_with;
use depin_coordinator::{Coordinator, IngestOutcome, SectorSet};
use depin_core::{Reason, Sector};
use depin_protocol::{
    DeviceCertificate, Envelope, Heartbeat, PayloadKind, Signed, SigningKey,
    device_keypair_from_seed, encode_batch, public_key_of, sign, work_ref_bytes,
};
use depin_rewards::RewardPolicy;
use depin_sector_echo::{ECHO_ANSWER_KIND, EchoAnswer, EchoPlugin, answer};
use depin_store::Store;
use depin_store::testing::TestPostgres;

fn sectors() -> SectorSet {
    SectorSet::new(&[&EchoPlugin]).unwrap()
}

fn policy(genesis_unix_ms: i64) -> RewardPolicy {
    RewardPolicy {
        genesis_unix_ms,
        ..RewardPolicy::devnet(60)
    }
}

fn cert(op: &SigningKey, dev: &SigningKey, now: i64) -> Vec<u8> {
    let c = DeviceCertificate {
        device_key: public_key_of(dev),
        operator_key: public_key_of(op),
        sector: Sector::Compute,
        hardware_class: "rtx-3060".into(),
        firmware_version: "1.0.0".into(),
        location: None,
        issued_at_ms: now,
        device_signature: None,
    }
    .signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now, &c), op).encode()
}

fn heartbeat(dev: &SigningKey, seq: u64, t: i64) -> Signed {
    let hb = Heartbeat {
        uptime_s: seq,
        temperature_centi_c: 4_000,
        firmware_version: "1.0.0".into(),
        power_mw: 90_000,
    };
    sign(&Envelope::new(public_key_of(dev), seq, t, &hb), dev)
}

/// A report of the echo answer kind carrying `payload`.
fn answer_report(dev: &SigningKey, seq: u64, t: i64, payload: Vec<u8>) -> Signed {
    let env = Envelope {
        version: depin_protocol::ENVELOPE_VERSION,
        signer: public_key_of(dev),
        seq,
        timestamp_ms: t,
        kind: PayloadKind::Sector(ECHO_ANSWER_KIND),
        payload,
    };
    sign(&env, dev)
}

fn reasons(o: &IngestOutcome) -> Vec<Reason> {
    o.rejected.iter().map(|r| r.reason).collect()
}

async fn heartbeats(c: &Coordinator, p: &RewardPolicy, dev: &SigningKey, epoch: u64, seq0: u64) {
    for i in 0..p.expected_heartbeats() {
        let t = p.epoch_start_ms(epoch) + (i * p.heartbeat_interval_seconds * 1000) as i64 + 100;
        let out = c
            .ingest(t, encode_batch(&[heartbeat(dev, seq0 + i, t)]))
            .await
            .unwrap();
        assert_eq!(out.accepted, 1, "{out:?}");
    }
}

async fn challenge_and_answer(store: Store) {
    let p = policy(1_000_000);
    let c = Coordinator::open_with(store.clone(), p.clone(), sectors())
        .await
        .unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let (a, b) = (
        device_keypair_from_seed([2; 32]),
        device_keypair_from_seed([3; 32]),
    );
    let (ka, kb) = (public_key_of(&a), public_key_of(&b));
    // C answers its own challenge in time, but wrongly.
    let cdev = device_keypair_from_seed([4; 32]);
    let kc = public_key_of(&cdev);
    let t0 = p.epoch_start_ms(0);
    c.onboard(t0, &cert(&op, &a, t0)).await.unwrap();
    c.onboard(t0, &cert(&op, &b, t0)).await.unwrap();
    c.onboard(t0, &cert(&op, &cdev, t0)).await.unwrap();
    heartbeats(&c, &p, &a, 0, 1).await;
    heartbeats(&c, &p, &b, 0, 1).await;
    heartbeats(&c, &p, &cdev, 0, 1).await;
    c.close_epoch(0, p.closable_at_ms(0)).await.unwrap();
    // No challenge had fallen due yet: availability alone.
    for l in store.reward_lines(0).await.unwrap() {
        assert_eq!((l.score_ppm, l.reasons.as_str()), (1_000_000, ""));
    }

    // Epoch 1: each device pulls its one order with a signed request.
    let t1 = p.epoch_start_ms(1) + 50;
    let pull = |dev: &SigningKey, t: i64| {
        sign(
            &Envelope::new(public_key_of(dev), 0, t, &depin_protocol::WorkRequest),
            dev,
        )
        .encode()
    };
    let mine = c.open_work(t1, &pull(&a, t1)).await.unwrap().1;
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (mine[0].device, mine[0].answer_kind),
        (ka, ECHO_ANSWER_KIND)
    );
    assert_eq!(mine[0].deadline_ms, p.epoch_end_ms(1) - 1);
    let theirs = c.open_work(t1, &pull(&b, t1)).await.unwrap().1;
    assert_eq!(theirs.len(), 1);
    let (wa, wb) = (&mine[0], &theirs[0]);

    // Attacks first; each leaves A's order open.
    let good = answer(&ka, &wa.id, &wa.body).unwrap();
    let steal = EchoAnswer {
        digest: depin_sector_echo::digest(&[0; 32], &kb),
        ..good.clone()
    };
    let out = c
        .ingest(
            t1,
            encode_batch(&[answer_report(&b, 100, t1, steal.encode())]),
        )
        .await
        .unwrap();
    assert_eq!(
        reasons(&out),
        vec![Reason::UnknownChallenge],
        "B answers A's order"
    );
    let invented = EchoAnswer {
        work_id: [7; 32],
        ..good.clone()
    };
    let out = c
        .ingest(
            t1,
            encode_batch(&[answer_report(&a, 100, t1, invented.encode())]),
        )
        .await
        .unwrap();
    assert_eq!(
        reasons(&out),
        vec![Reason::UnknownChallenge],
        "never issued"
    );
    let mut short = work_ref_bytes(&wa.id);
    short.truncate(short.len() - 1);
    let out = c
        .ingest(t1, encode_batch(&[answer_report(&a, 101, t1, short)]))
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::BadPayload], "malformed");

    // A answers right; a second answer to the same order is refused.
    heartbeats(&c, &p, &a, 1, 200).await;
    heartbeats(&c, &p, &b, 1, 200).await;
    heartbeats(&c, &p, &cdev, 1, 200).await;
    let wc = c.open_work(t1, &pull(&cdev, t1)).await.unwrap().1.remove(0);
    let wrong = EchoAnswer {
        work_id: wc.id,
        digest: [0; 32],
    };
    let tc = t1 + 1_000;
    let out = c
        .ingest(
            tc,
            encode_batch(&[answer_report(&cdev, 300, tc, wrong.encode())]),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.accepted, reasons(&out)),
        (1, vec![]),
        "ingest cannot tell a wrong digest: the verifier does"
    );
    let t = t1 + 1_000;
    let out = c
        .ingest(t, encode_batch(&[answer_report(&a, 300, t, good.encode())]))
        .await
        .unwrap();
    assert_eq!((out.accepted, reasons(&out)), (1, vec![]));
    assert!(c.open_work(t, &pull(&a, t)).await.unwrap().1.is_empty());
    let out = c
        .ingest(t, encode_batch(&[answer_report(&a, 301, t, good.encode())]))
        .await
        .unwrap();
    assert_eq!(
        reasons(&out),
        vec![Reason::UnknownChallenge],
        "answered already"
    );

    // B's answer arrives after its deadline.
    let late = wb.deadline_ms + 1;
    let b_answer = answer(&kb, &wb.id, &wb.body).unwrap();
    let out = c
        .ingest(
            late,
            encode_batch(&[answer_report(&b, 300, late, b_answer.encode())]),
        )
        .await
        .unwrap();
    assert_eq!(reasons(&out), vec![Reason::ChallengeExpired]);

    // The close of epoch 1 scores the due challenges.
    c.close_epoch(1, p.closable_at_ms(1)).await.unwrap();
    let lines = store.reward_lines(1).await.unwrap();
    let line = |k| lines.iter().find(|l| l.device == k).unwrap();
    assert_eq!(
        (line(ka).score_ppm, line(ka).reasons.as_str()),
        (1_000_000, "")
    );
    assert_eq!(
        (
            line(kb).score_ppm,
            line(kb).reasons.as_str(),
            line(kb).reward
        ),
        (0, "challenge_missed", 0)
    );
    assert_eq!(
        (
            line(kc).score_ppm,
            line(kc).reasons.as_str(),
            line(kc).reward
        ),
        (0, "compute_wrong_answer", 0),
        "an answer that proves nothing is told apart from no answer"
    );
    assert!(line(ka).reward > 0);
    assert_eq!(
        store.sector_state("echo", 1).await.unwrap(),
        Some(1u64.to_le_bytes().to_vec()),
        "one answer accepted so far"
    );
    // Each close ordered the next challenges.
    assert_eq!(store.work_issued(1).await.unwrap().len(), 3);
    for epoch in [0, 1] {
        let r = audit_epoch_with(&store, epoch, &sectors()).await.unwrap();
        assert!(r.passed(), "epoch {epoch}: {:?}", r.differences);
    }
    // Auditing without the sector's verifier cannot reproduce the close.
    let r = depin_coordinator::audit::audit_epoch(&store, 1)
        .await
        .unwrap();
    assert!(!r.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_challenge_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    challenge_and_answer(Store::open_in_dir(dir.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_challenge_and_answer() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    challenge_and_answer(Store::open(&pg.url("echo")).await.unwrap()).await;
}

/// Over HTTP: a server with the plugin, a device pulling with the client's
/// pull channel and answering through `POST /v1/reports`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_pulls_and_answers_over_http() {
    let dir = tempfile::tempdir().unwrap();
    // Epoch 0 began a moment ago and lasts an hour: the test closes it by
    // hand through a second coordinator on the same store.
    let now = depin_server::now_ms();
    let p = policy(now - 1_000);
    let p = RewardPolicy {
        epoch_seconds: 3_600,
        heartbeat_interval_seconds: 300,
        ..p
    };
    let url = depin_store::sqlite_url(&dir.path().join("depin.sqlite"));
    let mut cfg =
        depin_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), url.clone(), p.clone());
    cfg.sectors = vec![
        depin_server::SectorHandle::new(std::sync::Arc::new(EchoPlugin))
            .with_routes(std::sync::Arc::new(depin_sector_echo::EchoRoutes)),
    ];
    let server = depin_server::start(cfg).await.unwrap();
    let client = depin_client::Client::new(&format!("http://{}", server.addr)).unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    let cert = depin_protocol::decode_signed(&cert(&op, &dev, depin_server::now_ms())).unwrap();
    client.register_device(&cert).await.unwrap();
    // No work before the first close.
    let req = depin_client::work_request(&dev, depin_server::now_ms());
    assert!(client.open_work(&req).await.unwrap().is_empty());

    // The sector's own endpoint, mounted under /v1/compute/ and documented.
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let hex = public_key_of(&dev).to_hex();
    let v: serde_json::Value = http
        .get(format!("{base}/v1/compute/echo/nonces/{hex}/0"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = depin_sector_echo::nonce(
        &depin_rewards::epoch_entropy(0, None),
        &public_key_of(&dev),
        0,
    );
    assert_eq!(v["nonces"][0].as_str().unwrap(), hex::encode(want));
    let r = http
        .get(format!("{base}/v1/compute/echo/nonces/{hex}/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409, "epoch 4 is not closed");
    let r = http
        .get(format!("{base}/v1/compute/echo/nonces/nothex/0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Garbage, max and max + 1 of a stored epoch, and beyond.
    for (epoch, status) in [
        ("x", 400),
        ("-1", 400),
        ("9223372036854775807", 409),
        ("9223372036854775808", 400),
        ("18446744073709551616", 400),
    ] {
        let r = http
            .get(format!("{base}/v1/compute/echo/nonces/{hex}/{epoch}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "epoch {epoch}");
    }
    let doc: serde_json::Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/compute/echo/nonces/{device}/{epoch}"]["get"].is_object());

    // Write one order for the device as a close would (a far epoch, so the
    // server's own closes never meet it).
    let store = Store::open(&url).await.unwrap();
    let order = depin_store::WorkRow {
        id: [5; 32],
        issued_epoch: 9_000,
        sector: Sector::Compute.code(),
        device: public_key_of(&dev),
        answer_kind: ECHO_ANSWER_KIND,
        body: depin_sector_echo::EchoChallenge { nonce: [9; 32] }.encode(),
        deadline_ms: depin_server::now_ms() + 600_000,
        due_epoch: 9_001,
        answer_seq: None,
    };
    let close = store.begin_close(9_000, "test", 0).await.unwrap().unwrap();
    close
        .commit(
            &depin_store::EpochRow {
                epoch: 9_000,
                policy_id: "test".into(),
                closed_ms: 0,
                emission: 0,
                minted: 0,
                fees: 0,
                burned: 0,
                devices: 0,
                sheet_hash: vec![0; 32],
                claim_root: vec![0; 32],
            },
            &depin_store::EpochWrite {
                work: vec![order.clone()],
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // The driver's loop: pull, answer each order, pull again.
    let req = depin_client::work_request(&dev, depin_server::now_ms());
    let work = client.open_work(&req).await.unwrap();
    assert_eq!(work.len(), 1);
    let w = &work[0];
    let ans = answer(&public_key_of(&dev), &w.id, &w.body).unwrap();
    let t = depin_server::now_ms();
    let out = client
        .submit_reports(&[answer_report(&dev, 1, t, ans.encode())])
        .await
        .unwrap();
    assert_eq!(out.accepted, 1, "{out:?}");
    let req = depin_client::work_request(&dev, depin_server::now_ms());
    assert!(client.open_work(&req).await.unwrap().is_empty());
    assert_eq!(
        store.work(&order.id).await.unwrap().unwrap().answer_seq,
        Some(1)
    );
    server.stop().await.unwrap();
}

/// A sector's endpoints must stay under its own prefix and not repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sector_routes_stay_under_their_prefix() {
    struct Wrong;
    impl depin_server::SectorRoutes for Wrong {
        fn endpoints(&self) -> Vec<depin_server::Endpoint> {
            vec![depin_server::Endpoint::new(
                "get",
                "/v1/storage/echo",
                "in another sector's space",
                axum::routing::get(|| async { "no" }),
            )]
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let url = depin_store::sqlite_url(&dir.path().join("depin.sqlite"));
    let mut cfg = depin_server::ServerConfig::new("127.0.0.1:0".parse().unwrap(), url, policy(0));
    cfg.sectors = vec![
        depin_server::SectorHandle::new(std::sync::Arc::new(EchoPlugin))
            .with_routes(std::sync::Arc::new(Wrong)),
    ];
    let err = depin_server::start(cfg).await.err().expect("refused");
    assert!(
        err.to_string().contains("is not under /v1/compute/"),
        "{err}"
    );
    assert!(
        !dir.path().join("depin.sqlite").exists(),
        "refused before anything was created"
    );
}

/// The sector's policy section: read by its verifier, checked when the
/// coordinator starts, part of the policy id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_section_is_the_sectors_own() {
    let base = policy(1_000_000);
    let with = |section: serde_json::Value| RewardPolicy {
        sectors: [("echo".to_string(), section)].into_iter().collect(),
        ..base.clone()
    };
    let two = with(serde_json::json!({ "challenges_per_epoch": 2 }));
    assert_ne!(two.id(), base.id());
    assert_eq!(
        policy(1_000_000).id(),
        base.id(),
        "no section, same id as before sections existed"
    );

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    let c = Coordinator::open_with(store.clone(), two.clone(), sectors())
        .await
        .unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    let t0 = two.epoch_start_ms(0);
    c.onboard(t0, &cert(&op, &dev, t0)).await.unwrap();
    heartbeats(&c, &two, &dev, 0, 1).await;
    c.close_epoch(0, two.closable_at_ms(0)).await.unwrap();
    let issued = store.work_issued(0).await.unwrap();
    assert_eq!(issued.len(), 2, "two challenges per device");
    assert_ne!(issued[0].body, issued[1].body);

    for (bad, want) in [
        (
            with(serde_json::json!({ "challenges_per_epoch": 0 })),
            "1 to 16",
        ),
        (
            with(serde_json::json!({ "challenges_per_epoch": 17 })),
            "1 to 16",
        ),
        (
            with(serde_json::json!({ "challenge_per_epoch": 2 })),
            "unknown field",
        ),
        (with(serde_json::json!("two")), "not an echo section"),
        (
            RewardPolicy {
                sectors: [("nope".to_string(), serde_json::json!({}))]
                    .into_iter()
                    .collect(),
                ..base.clone()
            },
            "no verifier here",
        ),
        // Storage is scored by availability alone here, which takes none.
        (
            RewardPolicy {
                sectors: [("storage".to_string(), serde_json::json!({}))]
                    .into_iter()
                    .collect(),
                ..base.clone()
            },
            "takes no policy section",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in_dir(dir.path()).await.unwrap();
        let err = Coordinator::open_with(store, bad, sectors())
            .await
            .err()
            .expect("a bad section is refused at start");
        assert!(err.to_string().contains(want), "{err} should say {want:?}");
    }
    // Without the plugin, the echo section names nobody.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_dir(dir.path()).await.unwrap();
    assert!(
        Coordinator::open_with(store, two, SectorSet::backbone())
            .await
            .is_err()
    );
}

/// The sector's tables come from its own migrations, the same on both
/// backends; applying them again changes nothing, a changed released
/// migration or one outside the sector's block is refused, and a store
/// opened without the plugin still opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sector_owns_its_tables() {
    use depin_store::testing::{assert_same_schema, schema};
    use depin_store::{SectorMigration, SectorSchema};
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lite = Store::open_in_dir(dir.path()).await.unwrap();
    let post = Store::open(&pg.url("echo_schema")).await.unwrap();
    for store in [&lite, &post] {
        let before = schema(store).await;
        Coordinator::open_with(store.clone(), policy(1_000_000), sectors())
            .await
            .unwrap();
        let after = schema(store).await;
        let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert_eq!(added.len(), 3, "{added:?}");
        assert!(added.iter().all(|(t, _)| t == "echo_tally"));
        // Opening again applies nothing.
        assert_eq!(
            store
                .apply_sector_schema(&depin_sector_echo::SCHEMA)
                .await
                .unwrap(),
            0
        );
    }
    assert_same_schema(&schema(&lite).await, &schema(&post).await);

    // A released migration edited afterwards.
    const CHANGED: SectorSchema = SectorSchema {
        sector: Sector::Compute,
        migrations: &[SectorMigration {
            version: 2900,
            description: "echo_tally: answers per device",
            sqlite: "CREATE TABLE echo_tally (device BLOB PRIMARY KEY)",
            postgres: "CREATE TABLE echo_tally (device BYTEA PRIMARY KEY)",
        }],
    };
    let err = lite.apply_sector_schema(&CHANGED).await.unwrap_err();
    assert!(err.to_string().contains("must never change"), "{err}");
    // Outside the block, and out of order.
    const OUTSIDE: SectorSchema = SectorSchema {
        sector: Sector::Compute,
        migrations: &[SectorMigration {
            version: 1999,
            description: "storage's number",
            sqlite: "SELECT 1",
            postgres: "SELECT 1",
        }],
    };
    let err = lite.apply_sector_schema(&OUTSIDE).await.unwrap_err();
    assert!(
        err.to_string().contains("outside the sector's block"),
        "{err}"
    );
    const BACKWARDS: SectorSchema = SectorSchema {
        sector: Sector::Compute,
        migrations: &[
            SectorMigration {
                version: 2902,
                description: "b",
                sqlite: "SELECT 1",
                postgres: "SELECT 1",
            },
            SectorMigration {
                version: 2901,
                description: "a",
                sqlite: "SELECT 1",
                postgres: "SELECT 1",
            },
        ],
    };
    assert!(lite.apply_sector_schema(&BACKWARDS).await.is_err());
    // A broken migration leaves nothing behind.
    const BROKEN: SectorSchema = SectorSchema {
        sector: Sector::Compute,
        migrations: &[SectorMigration {
            version: 2950,
            description: "broken",
            sqlite: "CREATE TABLE echo_broken (a INTEGER); CREATE TABLE nonsense (",
            postgres: "CREATE TABLE echo_broken (a BIGINT); CREATE TABLE nonsense (",
        }],
    };
    for store in [&lite, &post] {
        assert!(store.apply_sector_schema(&BROKEN).await.is_err());
        assert!(!schema(store).await.keys().any(|(t, _)| t == "echo_broken"));
    }
    // Tools that do not know the sector open the store as before.
    lite.clone().close().await;
    let url = depin_store::sqlite_url(&dir.path().join("depin.sqlite"));
    let ro = Store::open_read_only(&url).await.unwrap();
    assert!(ro.epochs().await.unwrap().is_empty());
    Coordinator::open(Store::open(&url).await.unwrap(), policy(1_000_000))
        .await
        .unwrap();
}

/// A per-kind limit from the policy bounds the answers one device can make
/// the sector verify in an epoch, in the store's append, on both backends;
/// heartbeats are not affected; a limit the policy cannot keep is refused.
async fn per_kind_limit(store: Store) {
    let p = RewardPolicy {
        sectors: [(
            "echo".to_string(),
            serde_json::json!({ "challenges_per_epoch": 3 }),
        )]
        .into_iter()
        .collect(),
        max_reports_per_kind: [(ECHO_ANSWER_KIND, 2)].into_iter().collect(),
        ..policy(1_000_000)
    };
    let c = Coordinator::open_with(store.clone(), p.clone(), sectors())
        .await
        .unwrap();
    let op = device_keypair_from_seed([1; 32]);
    let dev = device_keypair_from_seed([2; 32]);
    let k = public_key_of(&dev);
    let t0 = p.epoch_start_ms(0);
    c.onboard(t0, &cert(&op, &dev, t0)).await.unwrap();
    heartbeats(&c, &p, &dev, 0, 1).await;
    c.close_epoch(0, p.closable_at_ms(0)).await.unwrap();
    let t1 = p.epoch_start_ms(1) + 50;
    let req = sign(&Envelope::new(k, 0, t1, &depin_protocol::WorkRequest), &dev).encode();
    let (signer, work) = c.open_work(t1, &req).await.unwrap();
    assert_eq!(signer, k);
    assert_eq!(work.len(), 3);
    let answers: Vec<Signed> = work
        .iter()
        .enumerate()
        .map(|(i, w)| {
            answer_report(
                &dev,
                100 + i as u64,
                t1,
                answer(&k, &w.id, &w.body).unwrap().encode(),
            )
        })
        .collect();
    let out = c.ingest(t1, encode_batch(&answers)).await.unwrap();
    assert_eq!(out.accepted, 2);
    assert_eq!(reasons(&out), vec![Reason::RateLimited]);
    // Heartbeats of the same device and epoch still count.
    heartbeats(&c, &p, &dev, 1, 200).await;
    // A restarted coordinator keeps the count (it lives in the store).
    drop(c);
    let c = Coordinator::open_with(store.clone(), p.clone(), sectors())
        .await
        .unwrap();
    let late = answer_report(
        &dev,
        500,
        t1 + 10,
        answer(&k, &work[2].id, &work[2].body).unwrap().encode(),
    );
    let out = c.ingest(t1 + 10, encode_batch(&[late])).await.unwrap();
    assert_eq!(reasons(&out), vec![Reason::RateLimited]);
    // The close of epoch 1 sees two answers of three: 2/3 of availability.
    c.close_epoch(1, p.closable_at_ms(1)).await.unwrap();
    let line = store.reward_lines(1).await.unwrap().remove(0);
    assert_eq!(
        (line.score_ppm, line.reasons.as_str()),
        (666_666, "challenge_missed")
    );
    let r = audit_epoch_with(&store, 1, &sectors()).await.unwrap();
    assert!(r.passed(), "{:?}", r.differences);

    let bad = RewardPolicy {
        max_reports_per_kind: [(2, 1)].into_iter().collect(),
        ..policy(1_000_000)
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("max_reports_per_kind[2]")
    );
    let bad = RewardPolicy {
        max_reports_per_kind: [(ECHO_ANSWER_KIND, 0)].into_iter().collect(),
        ..policy(1_000_000)
    };
    assert!(bad.validate().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_per_kind_limit() {
    let dir = tempfile::tempdir().unwrap();
    per_kind_limit(Store::open_in_dir(dir.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_per_kind_limit() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    per_kind_limit(Store::open(&pg.url("kinds")).await.unwrap()).await;
}
