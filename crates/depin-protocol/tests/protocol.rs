//! Every rejection path of the wire format, and the properties that make it
//! safe to expose to the internet.

mod common;

use common::*;
use depin_protocol::*;
use proptest::prelude::*;

fn check_decode(bytes: &[u8], expect: Result<(), Reason>) {
    assert_eq!(
        decode_signed(bytes).map(|_| ()),
        expect,
        "bytes {}",
        hex::encode(bytes)
    );
}

#[test]
fn sign_encode_decode_verify_round_trip() {
    let signed = signed_heartbeat(7);
    let decoded = decode_signed(&signed.encode()).unwrap();
    assert_eq!(decoded, signed);
    assert_eq!(decoded.verify_signature(), Ok(()));
    assert_eq!(
        decoded.envelope.decode_payload::<Heartbeat>(),
        Ok(heartbeat(4_250))
    );
}

#[test]
fn bad_signature_is_rejected() {
    let mut signed = signed_heartbeat(1);
    signed.signature[0] ^= 1;
    let decoded = decode_signed(&signed.encode()).expect("shape is fine");
    assert_eq!(decoded.verify_signature(), Err(Reason::BadSignature));

    // Signed by a key other than the one the envelope names.
    let forged = sign(&heartbeat_envelope(1, T0), &new_device());
    assert_eq!(forged.verify_signature(), Err(Reason::BadSignature));

    // A signer that is not a curve point, and one of small order (the identity).
    for signer in [[0xff; 32], {
        let mut id = [0; 32];
        id[0] = 1;
        id
    }] {
        let mut env = heartbeat_envelope(1, T0);
        env.signer = PublicKey(signer);
        let s = sign(&env, &device());
        assert_eq!(s.verify_signature(), Err(Reason::BadSignature));
        assert_eq!(
            verify_batch(&[s.clone(), s]),
            vec![Err(Reason::BadSignature); 2]
        );
    }
}

#[test]
fn unknown_fields_are_non_canonical() {
    let good = signed_heartbeat(1);
    // Unknown field 15 (varint) appended to the outer SignedEnvelope.
    let mut outer = good.encode();
    outer.extend_from_slice(&[15 << 3, 1]);
    check_decode(&outer, Err(Reason::NonCanonical));

    // Unknown field inside the signed body, properly signed.
    let mut body = good.body.clone();
    field_varint(9, 1, &mut body);
    check_decode(&wrap(&body, &device()), Err(Reason::NonCanonical));
}

#[test]
fn non_canonical_encodings_are_rejected() {
    let signer = public_key_of(&device()).0;
    let payload = heartbeat(4_250).encode();
    let canonical = raw_body(1, &signer, 5, T0, 2, &payload);
    check_decode(&wrap(&canonical, &device()), Ok(()));

    // Fields out of order: seq after payload.
    let mut reordered = raw_body(1, &signer, 0, T0, 2, &payload);
    field_varint(3, 5, &mut reordered);
    check_decode(&wrap(&reordered, &device()), Err(Reason::NonCanonical));

    // A default value written explicitly (seq = 0).
    let mut explicit_default = Vec::new();
    field_varint(1, 1, &mut explicit_default);
    field_bytes(2, &signer, &mut explicit_default);
    field_varint(3, 0, &mut explicit_default);
    explicit_default.extend_from_slice(&raw_body(0, &signer, 0, T0, 2, &payload)[34..]);
    check_decode(
        &wrap(&explicit_default, &device()),
        Err(Reason::NonCanonical),
    );

    // A non-minimal varint: version 1 written as two bytes.
    let mut long_varint = vec![1 << 3, 0x81, 0x00];
    long_varint.extend_from_slice(&canonical[2..]);
    check_decode(&wrap(&long_varint, &device()), Err(Reason::NonCanonical));

    // The same field twice (last one wins in protobuf; not here).
    let mut duplicate = canonical.clone();
    field_varint(5, 2, &mut duplicate);
    check_decode(&wrap(&duplicate, &device()), Err(Reason::NonCanonical));

    // Outer message with signature before body.
    let good = signed_heartbeat(1);
    let mut swapped = Vec::new();
    field_bytes(2, &good.signature, &mut swapped);
    field_bytes(1, &good.body, &mut swapped);
    check_decode(&swapped, Err(Reason::NonCanonical));
}

#[test]
fn every_truncation_is_malformed() {
    let bytes = signed_heartbeat(3).encode();
    for cut in 0..bytes.len() {
        check_decode(&bytes[..cut], Err(Reason::Malformed));
    }
}

#[test]
fn shape_errors_are_malformed() {
    let good = signed_heartbeat(1);
    // Signature of 63 bytes.
    let mut short_sig = Vec::new();
    field_bytes(1, &good.body, &mut short_sig);
    field_bytes(2, &good.signature[..63], &mut short_sig);
    check_decode(&short_sig, Err(Reason::Malformed));
    // Signer of 31 bytes.
    let body = raw_body(1, &[7; 31], 1, T0, 2, &heartbeat(0).encode());
    check_decode(&wrap(&body, &device()), Err(Reason::Malformed));
    // Body that is not protobuf (field 0 is invalid).
    check_decode(&wrap(&[0, 0, 0], &device()), Err(Reason::Malformed));
    // Not protobuf at all.
    check_decode(&[0xff; 10], Err(Reason::Malformed));
}

#[test]
fn other_versions_are_unsupported() {
    let signer = public_key_of(&device()).0;
    for version in [0, 2, u64::from(u32::MAX)] {
        let body = raw_body(version, &signer, 1, T0, 2, &heartbeat(0).encode());
        check_decode(&wrap(&body, &device()), Err(Reason::UnsupportedVersion));
    }
    // Through the typed API as well.
    let mut env = heartbeat_envelope(1, T0);
    env.version = 2;
    check_decode(
        &sign(&env, &device()).encode(),
        Err(Reason::UnsupportedVersion),
    );
    // A future version with new fields is reported as a version problem.
    let mut body = raw_body(2, &signer, 1, T0, 2, &[]);
    field_varint(20, 1, &mut body);
    check_decode(&wrap(&body, &device()), Err(Reason::UnsupportedVersion));
}

#[test]
fn unknown_kinds_are_unknown_payload_kind() {
    let signer = public_key_of(&device()).0;
    for kind in [0, 10, 99, 999, 5000, u64::from(u32::MAX)] {
        let body = raw_body(1, &signer, 1, T0, kind, &[1, 2, 3]);
        check_decode(&wrap(&body, &device()), Err(Reason::UnknownPayloadKind));
    }
    // A kind in a sector's range decodes as an envelope; whether this
    // coordinator serves it is the kind table's call.
    let body = raw_body(1, &signer, 1, T0, 1500, &[1, 2, 3]);
    let s = decode_signed(&wrap(&body, &device())).unwrap();
    assert_eq!(s.envelope.kind, PayloadKind::Sector(1500));
    let table = KindTable::backbone();
    assert_eq!(
        table.check_report(s.envelope.kind, &s.envelope.payload),
        Err(Reason::UnknownPayloadKind)
    );
    // Operator kinds and the work request are not reports.
    for kind in [
        PayloadKind::DeviceCertificate,
        PayloadKind::Revocation,
        PayloadKind::KeyRotation,
        PayloadKind::WorkRequest,
        PayloadKind::OrderLock,
        PayloadKind::OperatorSettings,
        PayloadKind::CreditPurchase,
        PayloadKind::Withdrawal,
    ] {
        assert_eq!(
            table.check_report(kind, &[]),
            Err(Reason::WrongPayloadKind),
            "{kind:?}"
        );
    }
    let hb = heartbeat_envelope(1, T0);
    assert_eq!(
        table.check_report(hb.kind, &hb.payload),
        Ok(Checked::default())
    );
    assert_eq!(
        table.check_report(hb.kind, &[0xff]),
        Err(Reason::BadPayload)
    );
    // A known kind that is not the one asked for.
    let env = heartbeat_envelope(1, T0);
    assert_eq!(
        env.decode_payload::<Revocation>(),
        Err(Reason::WrongPayloadKind)
    );
}

#[test]
fn admission_checks_clock_skew_and_replay() {
    let policy = AdmissionPolicy {
        max_skew_past_ms: 60_000,
        max_skew_future_ms: 5_000,
    };
    let now = T0;
    let check = |ts: i64, seq: u64, last: Option<u64>, expect: Result<(), Reason>| {
        assert_eq!(
            admit(&policy, now, &heartbeat_envelope(seq, ts), last),
            expect,
            "ts {ts} seq {seq} last {last:?}"
        );
    };
    check(now, 0, None, Ok(()));
    check(now - 60_000, 1, None, Ok(()));
    check(now - 60_001, 1, None, Err(Reason::StaleTimestamp));
    check(now + 5_000, 1, None, Ok(()));
    check(now + 5_001, 1, None, Err(Reason::FutureTimestamp));
    check(now, 10, Some(9), Ok(()));
    check(now, 9, Some(9), Err(Reason::ReplayedSequence));
    check(now, 3, Some(9), Err(Reason::ReplayedSequence));
    check(now, u64::MAX, Some(u64::MAX - 1), Ok(()));
    check(now, u64::MAX, Some(u64::MAX), Err(Reason::ReplayedSequence));
    check(i64::MIN, 1, None, Err(Reason::StaleTimestamp));
    check(i64::MAX, 1, None, Err(Reason::FutureTimestamp));
    // Extreme clocks and policies do not overflow.
    let wide = AdmissionPolicy {
        max_skew_past_ms: i64::MAX,
        max_skew_future_ms: i64::MAX,
    };
    assert_eq!(
        admit(&wide, 0, &heartbeat_envelope(1, i64::MAX), None),
        Ok(())
    );
    assert_eq!(
        admit(&wide, i64::MIN, &heartbeat_envelope(1, i64::MIN), None),
        Ok(())
    );
    assert_eq!(
        admit(&wide, i64::MAX, &heartbeat_envelope(1, i64::MAX), None),
        Ok(())
    );
    assert_eq!(
        admit(&wide, i64::MAX, &heartbeat_envelope(1, i64::MIN), None),
        Err(Reason::StaleTimestamp)
    );
    assert_eq!(AdmissionPolicy::default().max_skew_past_ms, 900_000);
}

#[test]
fn batch_verification_gives_each_item_its_own_verdict() {
    assert!(verify_batch(&[]).is_empty());
    let mut items: Vec<Signed> = (1..=150).map(signed_heartbeat).collect();
    assert!(verify_batch(&items).iter().all(Result::is_ok));
    let bad = [0, 3, 70, 149];
    for &i in &bad {
        items[i].signature[10] ^= 0x40;
    }
    let verdicts = verify_batch(&items);
    for (i, v) in verdicts.iter().enumerate() {
        let expect = if bad.contains(&i) {
            Err(Reason::BadSignature)
        } else {
            Ok(())
        };
        assert_eq!(*v, expect, "item {i}");
        assert_eq!(
            items[i].verify_signature(),
            expect,
            "single check agrees for {i}"
        );
    }
    // A single bad item on its own.
    assert_eq!(verify_batch(&items[3..4]), vec![Err(Reason::BadSignature)]);
}

#[test]
fn batches_split_into_raw_reports() {
    let items: Vec<Signed> = (1..=5).map(signed_heartbeat).collect();
    let bytes = encode_batch(&items);
    let raw = decode_batch(&bytes, 5).unwrap();
    assert_eq!(raw, items.iter().map(Signed::encode).collect::<Vec<_>>());
    assert_eq!(decode_batch(&[], 5), Ok(vec![]));
    assert_eq!(decode_batch(&bytes, 4), Err(Reason::RateLimited));
    assert_eq!(decode_batch(&bytes, 0), Err(Reason::RateLimited));

    // One broken report does not sink the batch: it fails on its own.
    let mut mixed = raw.clone();
    mixed[2] = vec![0xff, 0xff];
    let batch = {
        let mut b = Vec::new();
        for r in &mixed {
            field_bytes(1, r, &mut b);
        }
        b
    };
    let split = decode_batch(&batch, 10).unwrap();
    let verdicts: Vec<_> = split.iter().map(|r| decode_signed(r).map(|_| ())).collect();
    assert_eq!(
        verdicts,
        vec![Ok(()), Ok(()), Err(Reason::Malformed), Ok(()), Ok(())]
    );
}

#[test]
fn batch_shape_errors() {
    let one = signed_heartbeat(1).encode();
    let mut good = Vec::new();
    field_bytes(1, &one, &mut good);
    // Unknown field after a report.
    let mut unknown = good.clone();
    field_varint(2, 1, &mut unknown);
    assert_eq!(decode_batch(&unknown, 10), Err(Reason::NonCanonical));
    // Non-minimal length prefix.
    let mut long_len = vec![0x0a];
    varint(one.len() as u64, &mut long_len);
    *long_len.last_mut().unwrap() |= 0x80;
    long_len.push(0x00);
    long_len.extend_from_slice(&one);
    assert_eq!(decode_batch(&long_len, 10), Err(Reason::NonCanonical));
    // Truncated anywhere.
    for cut in 1..good.len() {
        assert_eq!(
            decode_batch(&good[..cut], 10),
            Err(Reason::Malformed),
            "cut {cut}"
        );
    }
    // Not protobuf.
    assert_eq!(decode_batch(&[0x07], 10), Err(Reason::Malformed));
}

#[test]
fn payloads_round_trip() {
    let cert = certificate();
    assert_eq!(DeviceCertificate::decode(&cert.encode()), Ok(cert.clone()));
    let no_location = DeviceCertificate {
        location: None,
        ..cert.clone()
    };
    assert_eq!(
        DeviceCertificate::decode(&no_location.encode()),
        Ok(no_location)
    );
    let origin = DeviceCertificate {
        location: Some(Location {
            lat_microdeg: 0,
            lon_microdeg: 0,
            h3_cell: None,
        }),
        ..cert
    };
    assert_eq!(DeviceCertificate::decode(&origin.encode()), Ok(origin));
    for t in [-5_000, -1, 0, 15_000] {
        assert_eq!(Heartbeat::decode(&heartbeat(t).encode()), Ok(heartbeat(t)));
    }
    let rev = Revocation {
        device_key: public_key_of(&device()),
        reason: "stolen".into(),
    };
    assert_eq!(Revocation::decode(&rev.encode()), Ok(rev));
    let rot = KeyRotation {
        old_device_key: public_key_of(&device()),
        new_device_key: public_key_of(&new_device()),
        new_key_signature: None,
    };
    assert_eq!(KeyRotation::decode(&rot.encode()), Ok(rot.clone()));
    let signed = rot.signed_by_new_key(&new_device());
    assert_eq!(KeyRotation::decode(&signed.encode()), Ok(signed));
    let cert = signed_certificate();
    assert_eq!(DeviceCertificate::decode(&cert.encode()), Ok(cert));
    let lock = OrderLock {
        order: 7,
        sector: Sector::Storage,
        amount: 1_000,
        first_epoch: 3,
        last_epoch: 3,
        terms: b"bucket=photos".to_vec(),
    };
    assert_eq!(OrderLock::decode(&lock.encode()), Ok(lock.clone()));
    let env = sign(
        &Envelope::new(public_key_of(&operator()), 1, T0, &lock),
        &operator(),
    );
    assert_eq!(env.envelope.kind, PayloadKind::OrderLock);
    assert_eq!(env.envelope.decode_payload::<OrderLock>(), Ok(lock));
    let settings = OperatorSettings {
        document: r#"{"kwh_price_usd":0.25,"hardware":{}}"#.into(),
    };
    assert_eq!(
        OperatorSettings::decode(&settings.encode()),
        Ok(settings.clone())
    );
    let env = sign(
        &Envelope::new(public_key_of(&operator()), 0, T0, &settings),
        &operator(),
    );
    assert_eq!(env.envelope.kind, PayloadKind::OperatorSettings);
    assert_eq!(env.envelope.kind.as_u32(), 7);
    assert_eq!(
        env.envelope.decode_payload::<OperatorSettings>(),
        Ok(settings)
    );
    let spec = KindTable::backbone().get(7).copied().unwrap();
    assert_eq!(
        (spec.name, spec.signed_by, spec.route),
        ("operator_settings", SignedBy::Operator, Route::Own)
    );
    let purchase = CreditPurchase {
        purchase: 0,
        credits: 1,
        max_burn: 1,
    };
    assert_eq!(CreditPurchase::decode(&purchase.encode()), Ok(purchase));
    let env = sign(
        &Envelope::new(public_key_of(&operator()), 2, T0, &purchase),
        &operator(),
    );
    assert_eq!(env.envelope.kind, PayloadKind::CreditPurchase);
    assert_eq!(
        env.envelope.decode_payload::<CreditPurchase>(),
        Ok(purchase)
    );
    // A purchase is not a withdrawal, however its bytes happen to decode.
    assert_eq!(
        env.envelope.decode_payload::<Withdrawal>(),
        Err(Reason::WrongPayloadKind)
    );
    for len in [20, 32] {
        let w = Withdrawal {
            withdrawal: 9,
            amount: 5,
            destination: vec![0xab; len],
        };
        assert_eq!(Withdrawal::decode(&w.encode()), Ok(w));
    }
}

/// An `OperatorSettings` payload written by hand (field 1, bytes), so the
/// test can encode documents the typed struct cannot hold (non-UTF-8).
fn settings_wire(document: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if !document.is_empty() {
        field_bytes(1, document, &mut b);
    }
    b
}

/// Documents at the edges: empty, one byte, exactly the limit, one over,
/// far over, and bytes that are not UTF-8 (a lone continuation byte, an
/// overlong encoding, a surrogate), each accepted exactly when valid.
#[test]
fn operator_settings_documents_at_the_limits() {
    let max = limits::MAX_SETTINGS_DOCUMENT_LEN;
    assert_eq!(max, 16 * 1024);
    let check = |doc: &[u8], ok: bool| {
        let got = OperatorSettings::decode(&settings_wire(doc));
        if ok {
            assert_eq!(got.map(|s| s.document.into_bytes()), Ok(doc.to_vec()));
        } else {
            assert_eq!(got, Err(Reason::BadPayload), "{} bytes", doc.len());
        }
    };
    check(b"", false);
    check(b"{", true);
    check(&vec![b'x'; max], true);
    check(&vec![b'x'; max + 1], false);
    check(&vec![b'x'; 4 * max], false);
    // Multi-byte characters count in bytes, not characters.
    let mut near = vec![b'x'; max - 2];
    near.extend_from_slice("é".as_bytes());
    check(&near, true);
    near.push(b'x');
    check(&near, false);
    for bad in [
        &[0x80u8][..],
        &[0xc0, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[b'{', 0xff, b'}'],
    ] {
        check(bad, false);
    }
    // Unknown fields and non-canonical encodings, like every payload.
    let mut unknown = settings_wire(b"{}");
    field_varint(2, 1, &mut unknown);
    assert_eq!(OperatorSettings::decode(&unknown), Err(Reason::BadPayload));
    let mut twice = settings_wire(b"{}");
    twice.extend(settings_wire(b"{}"));
    assert_eq!(OperatorSettings::decode(&twice), Err(Reason::BadPayload));
    assert_eq!(OperatorSettings::decode(&[0x0a]), Err(Reason::BadPayload));
}

/// A credit purchase's and a withdrawal's fields as raw values, to encode
/// out-of-range values the typed structs cannot hold; written by hand with
/// prost's encoders (field numbers as in protocol.proto) so the test does not
/// lean on the code under test.
#[derive(Debug, Clone)]
struct ConsumerMoneyWire {
    id: u64,
    amount: u64,
    third: u64,
    destination: usize,
}

fn put_u64(b: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        prost::encoding::uint64::encode(tag, &v, b);
    }
}

impl ConsumerMoneyWire {
    /// `CreditPurchase { purchase = id, credits = amount, max_burn = third }`.
    fn purchase(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_u64(&mut b, 1, self.id);
        put_u64(&mut b, 2, self.amount);
        put_u64(&mut b, 3, self.third);
        b
    }

    /// `Withdrawal { withdrawal = id, amount, destination }`.
    fn withdrawal(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_u64(&mut b, 1, self.id);
        put_u64(&mut b, 2, self.amount);
        if self.destination > 0 {
            prost::encoding::bytes::encode(3, &vec![0x5au8; self.destination], &mut b);
        }
        b
    }
}

/// An order lock's fields as raw numbers, to encode out-of-range values the
/// typed struct cannot hold.
#[derive(Debug, Clone)]
struct OrderLockWire {
    order: u64,
    sector: u32,
    amount: u64,
    first: u64,
    last: u64,
    terms: usize,
}

impl OrderLockWire {
    fn encode(&self) -> Vec<u8> {
        // The same field numbers as `OrderLock` in protocol.proto, written by
        // hand with prost's encoders so the test does not lean on the code
        // under test.
        let mut b = Vec::new();
        let u = |b: &mut Vec<u8>, tag: u32, v: u64| {
            if v != 0 {
                prost::encoding::uint64::encode(tag, &v, b);
            }
        };
        u(&mut b, 1, self.order);
        if self.sector != 0 {
            prost::encoding::uint32::encode(2, &self.sector, &mut b);
        }
        u(&mut b, 3, self.amount);
        u(&mut b, 4, self.first);
        u(&mut b, 5, self.last);
        if self.terms > 0 {
            prost::encoding::bytes::encode(6, &vec![7u8; self.terms], &mut b);
        }
        b
    }
}

fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

/// The device key proves possession: only its own signature over exactly
/// this certificate (or rotation) verifies; a missing, foreign or stale one
/// is `bad_certificate`, a malformed one `bad_payload`.
#[test]
fn possession_signatures_bind_the_key_to_the_message() {
    let cert = signed_certificate();
    assert_eq!(cert.verify_possession(), Ok(()));
    assert_eq!(
        certificate().verify_possession(),
        Err(Reason::BadCertificate)
    );
    let by_other = certificate().signed_by_device(&new_device());
    assert_eq!(by_other.verify_possession(), Err(Reason::BadCertificate));
    let moved = DeviceCertificate {
        hardware_class: "other".into(),
        ..cert.clone()
    };
    assert_eq!(
        moved.verify_possession(),
        Err(Reason::BadCertificate),
        "signature covers every field"
    );
    let rot = KeyRotation {
        old_device_key: public_key_of(&device()),
        new_device_key: public_key_of(&new_device()),
        new_key_signature: None,
    };
    assert_eq!(rot.verify_possession(), Err(Reason::BadCertificate));
    assert_eq!(
        rot.clone()
            .signed_by_new_key(&new_device())
            .verify_possession(),
        Ok(())
    );
    assert_eq!(
        rot.clone().signed_by_new_key(&device()).verify_possession(),
        Err(Reason::BadCertificate)
    );
    // A certificate signature does not verify as a rotation signature (domain tags).
    let mut cross = rot.clone();
    cross.new_key_signature = cert.device_signature;
    assert_eq!(cross.verify_possession(), Err(Reason::BadCertificate));
    // Wrong lengths do not decode: 0 < len < 64, 65.
    for len in [1usize, 63, 65] {
        let mut bytes = certificate().encode();
        field_bytes(8, &vec![7u8; len], &mut bytes);
        assert_eq!(
            DeviceCertificate::decode(&bytes).err(),
            Some(Reason::BadPayload),
            "len {len}"
        );
        let mut bytes = rot.encode();
        field_bytes(3, &vec![7u8; len], &mut bytes);
        assert_eq!(
            KeyRotation::decode(&bytes).err(),
            Some(Reason::BadPayload),
            "len {len}"
        );
    }
}

#[test]
fn payload_validation_rejects_out_of_range_values() {
    let hb = |f: &dyn Fn(&mut Heartbeat)| {
        let mut h = heartbeat(2_000);
        f(&mut h);
        Heartbeat::decode(&h.encode())
    };
    assert_eq!(
        hb(&|h| h.temperature_centi_c = 15_001).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        hb(&|h| h.temperature_centi_c = -5_001).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        hb(&|h| h.power_mw = limits::MAX_POWER_MW + 1).err(),
        Some(Reason::BadPayload)
    );
    // Every integer field at 0, at its limit, one past it and at the type's
    // maximum: the limit passes, anything beyond is refused.
    for (uptime, ok) in [
        (0, true),
        (limits::MAX_UPTIME_S, true),
        (limits::MAX_UPTIME_S + 1, false),
        (i64::MAX as u64 + 1, false),
        (u64::MAX, false),
    ] {
        assert_eq!(hb(&|h| h.uptime_s = uptime).is_ok(), ok, "uptime {uptime}");
    }
    for (power, ok) in [
        (0, true),
        (limits::MAX_POWER_MW, true),
        (limits::MAX_POWER_MW + 1, false),
        (u32::MAX, false),
    ] {
        assert_eq!(hb(&|h| h.power_mw = power).is_ok(), ok, "power {power}");
    }
    for (t, ok) in [
        (0, true),
        (limits::MAX_TEMPERATURE_CENTI_C, true),
        (limits::MIN_TEMPERATURE_CENTI_C, true),
        (i32::MAX, false),
        (i32::MIN, false),
    ] {
        assert_eq!(
            hb(&|h| h.temperature_centi_c = t).is_ok(),
            ok,
            "temperature {t}"
        );
    }
    assert_eq!(
        hb(&|h| h.firmware_version = String::new()).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        hb(&|h| h.firmware_version = "1.0\n".into()).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        hb(&|h| h.firmware_version = "x".repeat(65)).err(),
        Some(Reason::BadPayload)
    );

    let cert = |f: &dyn Fn(&mut DeviceCertificate)| {
        let mut c = certificate();
        f(&mut c);
        DeviceCertificate::decode(&c.encode())
    };
    assert_eq!(
        cert(&|c| c.device_key = c.operator_key).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.hardware_class = String::new()).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.location.as_mut().unwrap().lat_microdeg = 90_000_001).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.location.as_mut().unwrap().lon_microdeg = -180_000_001).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.location.as_mut().unwrap().h3_cell = Some(12345)).err(),
        Some(Reason::BadPayload)
    );
    // Keys that are not prime-order points: the identity, a non-point, a
    // prime-order key plus a torsion point.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        cert(&|c| c.device_key = PublicKey(identity)).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.operator_key = PublicKey([0xff; 32])).err(),
        Some(Reason::BadPayload)
    );
    assert_eq!(
        cert(&|c| c.device_key = PublicKey(mixed_order_key())).err(),
        Some(Reason::BadPayload)
    );

    // Wire-level problems: wrong key length, unknown sector, unknown field.
    let mut raw = Vec::new();
    field_bytes(1, &[1; 31], &mut raw);
    assert_eq!(
        DeviceCertificate::decode(&raw).err(),
        Some(Reason::BadPayload)
    );
    for sector in [0u64, 5] {
        let mut raw = Vec::new();
        field_bytes(1, &public_key_of(&device()).0, &mut raw);
        field_bytes(2, &public_key_of(&operator()).0, &mut raw);
        if sector != 0 {
            field_varint(3, sector, &mut raw);
        }
        field_bytes(4, b"hw", &mut raw);
        field_bytes(5, b"fw", &mut raw);
        assert_eq!(
            DeviceCertificate::decode(&raw).err(),
            Some(Reason::BadPayload),
            "sector {sector}"
        );
    }
    let mut unknown = heartbeat(0).encode();
    field_varint(9, 1, &mut unknown);
    assert_eq!(Heartbeat::decode(&unknown).err(), Some(Reason::BadPayload));

    let rot = KeyRotation {
        old_device_key: public_key_of(&device()),
        new_device_key: public_key_of(&device()),
        new_key_signature: None,
    };
    assert_eq!(
        KeyRotation::decode(&rot.encode()).err(),
        Some(Reason::BadPayload)
    );
    let rev = Revocation {
        device_key: public_key_of(&device()),
        reason: "x".repeat(257),
    };
    assert_eq!(
        Revocation::decode(&rev.encode()).err(),
        Some(Reason::BadPayload)
    );
}

/// The device key plus a point of order 2, (0, -1): a valid encoding of a
/// point outside the prime-order subgroup.
fn mixed_order_key() -> [u8; 32] {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    let a = CompressedEdwardsY(public_key_of(&device()).0)
        .decompress()
        .unwrap();
    let mut minus_one = [0xff_u8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    let t = CompressedEdwardsY(minus_one).decompress().unwrap();
    assert!(!t.is_torsion_free() && t.is_small_order());
    (a + t).compress().0
}

#[test]
fn certificates_must_be_signed_by_their_operator() {
    let cert = certificate();
    let by_operator = Envelope::new(public_key_of(&operator()), 1, T0, &cert);
    assert_eq!(
        DeviceCertificate::from_envelope(&by_operator),
        Ok(cert.clone())
    );
    let by_device = Envelope::new(public_key_of(&device()), 1, T0, &cert);
    assert_eq!(
        DeviceCertificate::from_envelope(&by_device),
        Err(Reason::BadCertificate)
    );
    assert_eq!(
        DeviceCertificate::from_envelope(&heartbeat_envelope(1, T0)),
        Err(Reason::WrongPayloadKind)
    );
    assert!(PayloadKind::DeviceCertificate.is_operator_signed());
    assert!(PayloadKind::Revocation.is_operator_signed());
    assert!(PayloadKind::KeyRotation.is_operator_signed());
    assert!(PayloadKind::OperatorSettings.is_operator_signed());
    assert!(!PayloadKind::Heartbeat.is_operator_signed());
}

fn arb_envelope() -> impl Strategy<Value = (Envelope, u8)> {
    (
        prop_oneof![
            Just(0u64),
            Just(1u64),
            Just(depin_protocol::limits::MAX_SEQ),
            0..=depin_protocol::limits::MAX_SEQ,
        ],
        any::<i64>(),
        prop::sample::select(PayloadKind::ALL.to_vec()),
        prop::collection::vec(any::<u8>(), 0..200),
        any::<u8>(),
    )
        .prop_map(|(seq, timestamp_ms, kind, payload, key_seed)| {
            let key = device_keypair_from_seed([key_seed; 32]);
            let env = Envelope {
                version: ENVELOPE_VERSION,
                signer: public_key_of(&key),
                seq,
                timestamp_ms,
                kind,
                payload,
            };
            (env, key_seed)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), max in 0usize..8) {
        let _ = decode_signed(&bytes);
        let _ = decode_batch(&bytes, max);
        let _ = DeviceCertificate::decode(&bytes);
        let _ = Heartbeat::decode(&bytes);
        let _ = Revocation::decode(&bytes);
        let _ = KeyRotation::decode(&bytes);
        let _ = OrderLock::decode(&bytes);
        let _ = OperatorSettings::decode(&bytes);
        let _ = CreditPurchase::decode(&bytes);
        let _ = Withdrawal::decode(&bytes);
    }

    /// Settings documents of any length around the limit and any bytes:
    /// accepted exactly when non-empty, UTF-8 and at most 16 KiB, and then
    /// re-encoded to the same bytes.
    #[test]
    fn operator_settings_extremes(
        len in prop_oneof![
            Just(0usize),
            Just(1),
            Just(limits::MAX_SETTINGS_DOCUMENT_LEN - 1),
            Just(limits::MAX_SETTINGS_DOCUMENT_LEN),
            Just(limits::MAX_SETTINGS_DOCUMENT_LEN + 1),
            0usize..=limits::MAX_SETTINGS_DOCUMENT_LEN + 64,
        ],
        fill in prop_oneof![Just(b'a'), Just(0xffu8), Just(0x80u8), any::<u8>()],
        garbage in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut doc = vec![fill; len];
        // Sprinkle arbitrary bytes at the end (often invalid UTF-8).
        let keep = len.saturating_sub(garbage.len());
        doc.truncate(keep);
        doc.extend_from_slice(&garbage[..len - keep]);
        let bytes = settings_wire(&doc);
        let valid = !doc.is_empty()
            && doc.len() <= limits::MAX_SETTINGS_DOCUMENT_LEN
            && std::str::from_utf8(&doc).is_ok();
        let got = OperatorSettings::decode(&bytes);
        prop_assert_eq!(got.is_ok(), valid, "{} bytes", doc.len());
        match got {
            Ok(s) => prop_assert_eq!(s.encode(), bytes),
            Err(r) => prop_assert_eq!(r, Reason::BadPayload),
        }
    }

    /// Every field of a credit purchase at 0, max and max + 1 of what the
    /// store keeps: accepted exactly when in range, never a panic.
    #[test]
    fn credit_purchase_extremes(id in extreme(), credits in extreme(), max_burn in extreme()) {
        let w = ConsumerMoneyWire { id, amount: credits, third: max_burn, destination: 0 };
        let got = CreditPurchase::decode(&w.purchase());
        let max = i64::MAX as u64;
        let in_range = [id, credits, max_burn].iter().all(|v| *v <= max);
        let valid = in_range && credits > 0 && max_burn > 0;
        prop_assert_eq!(got.is_ok(), valid, "{:?} -> {:?}", w, got);
        match got {
            Ok(p) => prop_assert_eq!(p.encode(), w.purchase()),
            Err(r) if !in_range => prop_assert_eq!(r, Reason::OutOfRange),
            Err(r) => prop_assert_eq!(r, Reason::BadPayload),
        }
    }

    /// Every field of a withdrawal at 0, max and max + 1, and destinations of
    /// every length around the two accepted ones.
    #[test]
    fn withdrawal_extremes(id in extreme(), amount in extreme(), destination in prop_oneof![Just(0usize), Just(19), Just(20), Just(21), Just(31), Just(32), Just(33), 0usize..100]) {
        let w = ConsumerMoneyWire { id, amount, third: 0, destination };
        let got = Withdrawal::decode(&w.withdrawal());
        let max = i64::MAX as u64;
        let in_range = id <= max && amount <= max;
        let valid = in_range && amount > 0 && (destination == 20 || destination == 32);
        prop_assert_eq!(got.is_ok(), valid, "{:?} -> {:?}", w, got);
        match got {
            Ok(x) => prop_assert_eq!(x.encode(), w.withdrawal()),
            Err(r) if !in_range => prop_assert_eq!(r, Reason::OutOfRange),
            Err(r) => prop_assert_eq!(r, Reason::BadPayload),
        }
    }

    /// Every field of an order lock at 0, max and max + 1 of what the store
    /// keeps: accepted exactly when in range, never a panic.
    #[test]
    fn order_lock_extremes(order in extreme(), amount in extreme(), first in extreme(), last in extreme(), sector in prop::sample::select(vec![0u32, 1, 4, 5, u32::MAX]), terms in 0usize..4100) {
        let w = OrderLockWire { order, sector, amount, first, last, terms };
        let got = OrderLock::decode(&w.encode());
        let max = i64::MAX as u64;
        let in_range = [order, amount, first, last].iter().all(|v| *v <= max);
        let valid = in_range && amount > 0 && first <= last && (1..=4).contains(&sector) && terms <= 4096;
        prop_assert_eq!(got.is_ok(), valid, "{:?} -> {:?}", w, got);
        if let Ok(o) = got {
            prop_assert_eq!(o.encode(), w.encode());
        } else if !in_range {
            prop_assert_eq!(got, Err(Reason::OutOfRange));
        }
    }

    #[test]
    fn decoders_never_panic_near_valid_bytes(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        // Random bytes rarely get past the first tag; mutate valid ones instead.
        let mut bytes = encode_batch(&[signed_heartbeat(1), sign(&Envelope::new(public_key_of(&operator()), 1, T0, &certificate()), &operator())]);
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(items) = decode_batch(&bytes, 8) {
            for item in items {
                if let Ok(s) = decode_signed(&item) {
                    let _ = s.verify_signature();
                    let _ = DeviceCertificate::from_envelope(&s.envelope);
                    let _ = s.envelope.decode_payload::<Heartbeat>();
                }
            }
        }
    }

    #[test]
    fn round_trip_any_envelope((env, key_seed) in arb_envelope()) {
        let signed = sign(&env, &device_keypair_from_seed([key_seed; 32]));
        let decoded = decode_signed(&signed.encode()).unwrap();
        prop_assert_eq!(&decoded.envelope, &env);
        prop_assert_eq!(decoded.verify_signature(), Ok(()));
        prop_assert_eq!(verify_batch(&[decoded.clone(), decoded]), vec![Ok(()), Ok(())]);
    }

    /// Sequence numbers above 2^63 - 1 cannot be stored (the store's integers
    /// are signed 64-bit), so decoding refuses them with their own reason,
    /// however well-signed, before anything else sees them.
    #[test]
    fn sequence_numbers_beyond_i64_are_out_of_range(
        seq in prop_oneof![
            Just(depin_protocol::limits::MAX_SEQ + 1),
            Just(u64::MAX),
            (depin_protocol::limits::MAX_SEQ + 1)..=u64::MAX,
        ],
        key_seed in any::<u8>(),
    ) {
        let key = device_keypair_from_seed([key_seed; 32]);
        let env = Envelope::new(public_key_of(&key), seq, T0, &heartbeat(2_000));
        let bytes = sign(&env, &key).encode();
        prop_assert_eq!(decode_signed(&bytes).map(|_| ()), Err(Reason::OutOfRange));
    }

    #[test]
    fn flipping_any_byte_fails_decode_or_verify((env, key_seed) in arb_envelope(), at in any::<prop::sample::Index>(), mask in 1u8..) {
        let mut bytes = sign(&env, &device_keypair_from_seed([key_seed; 32])).encode();
        let i = at.index(bytes.len());
        bytes[i] ^= mask;
        let outcome = decode_signed(&bytes).and_then(|s| s.verify_signature());
        prop_assert!(outcome.is_err(), "flip at {} of {} accepted", i, bytes.len());
    }
}
