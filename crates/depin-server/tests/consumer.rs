//! Consumers over real HTTP: a lock signed by the consumer key spends only
//! the signer's escrow; garbage, a wrong kind, a lock beyond the escrow and a
//! second lock under the same number each get their status and reason code.

mod common;

use common::start;
use depin_core::Sector;
use depin_protocol::{
    Envelope, Heartbeat, OrderLock, SigningKey, device_keypair_from_seed, public_key_of, sign,
};
use depin_rewards::RewardPolicy;
use depin_server::now_ms;
use serde_json::Value;

fn lock(consumer: &SigningKey, seq: u64, order: u64, amount: u64) -> Vec<u8> {
    let l = OrderLock {
        order,
        sector: Sector::Storage,
        amount,
        first_epoch: 0,
        last_epoch: 1_000_000,
        terms: vec![1, 2, 3],
    };
    sign(
        &Envelope::new(public_key_of(consumer), seq, now_ms(), &l),
        consumer,
    )
    .encode()
}

async fn post(http: &reqwest::Client, base: &str, body: Vec<u8>) -> (u16, Value) {
    let r = http
        .post(format!("{base}/v1/orders"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_spend_only_the_signers_escrow() {
    let dir = tempfile::tempdir().unwrap();
    let policy = RewardPolicy {
        genesis_unix_ms: now_ms() - 1_000,
        ..RewardPolicy::devnet(3_600)
    };
    let server = start(dir.path(), policy).await;
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let consumer = device_keypair_from_seed([31; 32]);
    let ck = public_key_of(&consumer);

    // Whoever runs the coordinator credits a payment, on the same store.
    let store =
        depin_store::Store::open(&depin_store::sqlite_url(&dir.path().join("depin.sqlite")))
            .await
            .unwrap();
    depin_coordinator::record_deposit(&store, now_ms(), ck, 1_000, "invoice-17")
        .await
        .unwrap();

    let first = lock(&consumer, 1, 7, 600);
    let (status, v) = post(&http, &base, first.clone()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["order"].as_u64(), v["amount"].as_u64()),
        (Some(7), Some(600))
    );
    assert_eq!(v["new"], true);
    // The same signed lock again: recorded before, nothing changes.
    let (status, v) = post(&http, &base, first).await;
    assert_eq!((status, &v["new"]), (200, &Value::Bool(false)));

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"garbage".to_vec(), 400, "malformed"),
        (Vec::new(), 400, "bad_request"),
        (lock(&consumer, 2, 8, 401), 402, "insufficient_escrow"),
        (lock(&consumer, 3, 7, 500), 409, "order_conflict"),
        // Someone else's key signs: their own escrow is empty.
        (
            lock(&device_keypair_from_seed([32; 32]), 1, 7, 1),
            402,
            "insufficient_escrow",
        ),
        (
            sign(
                &Envelope::new(
                    ck,
                    4,
                    now_ms(),
                    &Heartbeat {
                        uptime_s: 1,
                        temperature_centi_c: 0,
                        firmware_version: "1".into(),
                        power_mw: 0,
                    },
                ),
                &consumer,
            )
            .encode(),
            400,
            "wrong_payload_kind",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let (status, v) = post(&http, &base, body).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (want_status, Some(want_code)),
            "{v}"
        );
    }

    let client = depin_client::Client::new(&base).unwrap();
    let view = client.consumer(&ck).await.unwrap();
    assert_eq!(view.escrow, 400);
    assert_eq!(view.orders.len(), 1);
    assert_eq!((view.orders[0].amount, view.orders[0].charged), (600, 0));
    assert_eq!(view.orders[0].state, "open");
    // A lock through the client library, and a key that is not hex.
    let signed = depin_protocol::decode_signed(&lock(&consumer, 5, 9, 400)).unwrap();
    assert!(client.lock_order(&signed).await.unwrap().new);
    assert_eq!(client.consumer(&ck).await.unwrap().escrow, 0);
    let r = http
        .get(format!("{base}/v1/consumers/not-a-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let doc: Value = http
        .get(format!("{base}/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/v1/orders"]["post"].is_object());
    assert!(doc["paths"]["/v1/consumers/{consumer}"]["get"].is_object());
    server.stop().await.unwrap();
}
