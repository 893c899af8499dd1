//! Golden fixtures freeze the wire encoding (DESIGN invariant 1).
//!
//! Each fixture is a message built from fixed seeds, keys and timestamps,
//! encoded afresh and compared byte for byte with `tests/golden/<name>.hex`;
//! ed25519 signatures are deterministic, so the signatures are frozen too. The
//! committed bytes are then decoded and verified, so old messages keep reading.
//! A difference means the encoding changed: that is a new protocol version,
//! not a fix. When a change is intended, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p depin-protocol --test golden` and commit.

mod common;

use common::*;
use depin_protocol::*;
use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"))
}

/// Compares `fresh` with the fixture, or rewrites it under UPDATE_GOLDEN=1,
/// and returns the committed bytes.
fn golden(name: &str, fresh: &[u8]) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, format!("{}\n", hex::encode(fresh))).unwrap();
        eprintln!("rewrote golden fixture {}", path.display());
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("missing golden fixture {} ({e}); create it with UPDATE_GOLDEN=1 cargo test -p depin-protocol --test golden", path.display())
    });
    let committed = hex::decode(text.trim()).expect("golden fixtures are hex");
    assert!(
        committed == fresh,
        "the encoding of `{name}` no longer matches {}:\n  committed {}\n  fresh     {}\n\
         The wire format is frozen: this is a protocol change. If it is intended, bump the\n\
         version and rerun with UPDATE_GOLDEN=1 cargo test -p depin-protocol --test golden",
        path.display(),
        hex::encode(&committed),
        hex::encode(fresh),
    );
    committed
}

/// Freezes one signed envelope and checks the committed bytes still decode,
/// verify and carry `payload`.
fn check_envelope<P: Payload + PartialEq + std::fmt::Debug>(
    name: &str,
    key: &SigningKey,
    seq: u64,
    payload: &P,
) {
    let env = Envelope::new(public_key_of(key), seq, T0 + seq as i64, payload);
    let signed = sign(&env, key);
    let committed = golden(name, &signed.encode());
    let decoded = decode_signed(&committed).expect("golden bytes decode");
    assert_eq!(decoded.verify_signature(), Ok(()));
    assert_eq!(decoded.envelope, env);
    assert_eq!(&decoded.envelope.decode_payload::<P>().unwrap(), payload);
}

#[test]
fn golden_device_certificate() {
    check_envelope(
        "envelope_device_certificate",
        &operator(),
        1,
        &certificate(),
    );
}

#[test]
fn golden_heartbeat() {
    check_envelope("envelope_heartbeat", &device(), 42, &heartbeat(4_250));
}

#[test]
fn golden_revocation() {
    let rev = Revocation {
        device_key: public_key_of(&device()),
        reason: "device stolen".into(),
    };
    check_envelope("envelope_revocation", &operator(), 2, &rev);
}

#[test]
fn golden_key_rotation() {
    let rot = KeyRotation {
        old_device_key: public_key_of(&device()),
        new_device_key: public_key_of(&new_device()),
        new_key_signature: None,
    };
    check_envelope("envelope_key_rotation", &operator(), 3, &rot);
}

/// Possession signatures (added before the first release as new, optional
/// fields: the unsigned fixtures above keep their bytes).
#[test]
fn golden_possession_signed_messages() {
    check_envelope(
        "envelope_device_certificate_signed",
        &operator(),
        1,
        &signed_certificate(),
    );
    let rot = KeyRotation {
        old_device_key: public_key_of(&device()),
        new_device_key: public_key_of(&new_device()),
        new_key_signature: None,
    }
    .signed_by_new_key(&new_device());
    check_envelope("envelope_key_rotation_signed", &operator(), 3, &rot);
}

/// Consumer messages: a data-credit purchase (kind 8) and a withdrawal to an
/// EVM address (kind 9).
#[test]
fn golden_consumer_money() {
    let purchase = CreditPurchase {
        purchase: 7,
        credits: 300_000,
        max_burn: 1_500_000,
    };
    check_envelope("envelope_credit_purchase", &operator(), 11, &purchase);
    let withdrawal = Withdrawal {
        withdrawal: 3,
        amount: 2_500_000,
        destination: (1..=20).collect(),
    };
    check_envelope("envelope_withdrawal", &operator(), 12, &withdrawal);
}

#[test]
fn golden_operator_settings() {
    // A document in the byte form the coordinator accepts (serde_json of
    // `OperatorCostSettings`); the protocol itself only freezes the bytes.
    let settings = OperatorSettings {
        document: concat!(
            r#"{"kwh_price_usd":0.3,"internet_usd_per_month":40.0,"internet_share":0.2,"#,
            r#""maintenance_usd_per_month":null,"token_price_usd":0.8,"hardware":{}}"#
        )
        .into(),
    };
    check_envelope("envelope_operator_settings", &operator(), 4, &settings);
}

#[test]
fn golden_report_batch() {
    // A cold device too, so the sint32 zig-zag encoding is frozen.
    let items: Vec<Signed> = [(43, 4_250), (44, -1_275), (45, 0)]
        .into_iter()
        .map(|(seq, t)| {
            sign(
                &Envelope::new(
                    public_key_of(&device()),
                    seq,
                    T0 + seq as i64,
                    &heartbeat(t),
                ),
                &device(),
            )
        })
        .collect();
    let committed = golden("report_batch", &encode_batch(&items));
    let raw = decode_batch(&committed, 16).unwrap();
    let decoded: Vec<Signed> = raw.iter().map(|r| decode_signed(r).unwrap()).collect();
    assert_eq!(decoded, items);
    assert!(verify_batch(&decoded).iter().all(Result::is_ok));
}
