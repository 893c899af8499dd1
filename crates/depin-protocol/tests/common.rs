// Shared fixtures; included with `mod common;` by the integration tests.
#![allow(dead_code)]

use depin_protocol::*;

pub const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

pub fn operator() -> SigningKey {
    device_keypair_from_seed([0x11; 32])
}
pub fn device() -> SigningKey {
    device_keypair_from_seed([0x22; 32])
}
pub fn new_device() -> SigningKey {
    device_keypair_from_seed([0x33; 32])
}

pub fn heartbeat(temperature_centi_c: i32) -> Heartbeat {
    Heartbeat {
        uptime_s: 86_400,
        temperature_centi_c,
        firmware_version: "1.4.2".into(),
        power_mw: 7_500,
    }
}

pub fn certificate() -> DeviceCertificate {
    DeviceCertificate {
        device_key: public_key_of(&device()),
        operator_key: public_key_of(&operator()),
        sector: Sector::Wireless,
        hardware_class: "hotspot-v2".into(),
        firmware_version: "1.4.2".into(),
        location: Some(Location {
            lat_microdeg: 52_520_008,
            lon_microdeg: -13_404_954,
            h3_cell: Some(0x8928308280fffff),
        }),
        issued_at_ms: T0,
        // Unsigned, so the first golden fixture keeps its original bytes;
        // `signed_certificate` is the one onboarding accepts.
        device_signature: None,
    }
}

/// [`certificate`] with the device key's possession signature.
pub fn signed_certificate() -> DeviceCertificate {
    certificate().signed_by_device(&device())
}

pub fn heartbeat_envelope(seq: u64, timestamp_ms: i64) -> Envelope {
    Envelope::new(
        public_key_of(&device()),
        seq,
        timestamp_ms,
        &heartbeat(4_250),
    )
}

pub fn signed_heartbeat(seq: u64) -> Signed {
    sign(&heartbeat_envelope(seq, T0 + seq as i64 * 1000), &device())
}

// A tiny protobuf writer, so tests can build bytes the typed API refuses to
// produce (unknown kinds, unknown fields, odd field orders).
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
pub fn field_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    varint(u64::from(field) << 3, out);
    varint(v, out);
}
pub fn field_bytes(field: u32, b: &[u8], out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// A SignedEnvelope around an arbitrary body, signed by `key`.
pub fn wrap(body: &[u8], key: &SigningKey) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let sig = key.sign(body).to_bytes();
    let mut out = Vec::new();
    field_bytes(1, body, &mut out);
    field_bytes(2, &sig, &mut out);
    out
}

/// An Envelope body with every field given explicitly.
pub fn raw_body(
    version: u64,
    signer: &[u8],
    seq: u64,
    ts: i64,
    kind: u64,
    payload: &[u8],
) -> Vec<u8> {
    let mut b = Vec::new();
    if version != 0 {
        field_varint(1, version, &mut b);
    }
    field_bytes(2, signer, &mut b);
    if seq != 0 {
        field_varint(3, seq, &mut b);
    }
    if ts != 0 {
        field_varint(4, ts as u64, &mut b);
    }
    if kind != 0 {
        field_varint(5, kind, &mut b);
    }
    if !payload.is_empty() {
        field_bytes(6, payload, &mut b);
    }
    b
}
