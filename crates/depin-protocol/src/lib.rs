//! The signed, versioned wire format every device and operator message uses.
//!
//! A message is an [`Envelope`] (signer, sequence number, timestamp, payload kind
//! and payload bytes) encoded as protobuf in one canonical form and signed with
//! ed25519 over exactly those bytes. The signed bytes travel verbatim inside a
//! `SignedEnvelope`, so the receiver verifies what was signed rather than a
//! re-encoding of it, and the report log can store the raw bytes and re-verify
//! them years later (DESIGN invariant 1).
//!
//! Why canonical: the receiver re-encodes what it decoded and insists on the
//! same bytes. Unknown fields, duplicated fields, non-minimal varints or
//! explicitly encoded defaults are rejected as [`Reason::NonCanonical`]. That
//! way one message has exactly one encoding, two parties can never disagree on
//! what a signature covers, and a newer agent cannot smuggle fields past an
//! older coordinator that would silently drop them.
//!
//! Why two kinds of key: device keys only sign reports (heartbeats and the
//! sector reports built on this envelope). The operator key signs the
//! [`DeviceCertificate`] that binds a device to the operator who owns its
//! earnings, and the [`Revocation`] and [`KeyRotation`] messages that retire a
//! device key. A stolen device can therefore forge reports for itself until it
//! is revoked, but it can never move funds or re-point earnings.
//!
//! The crate is pure: no I/O, no clock (`now_ms` is an argument of [`admit`]),
//! and randomness only through an RNG the caller passes in.
//!
//! Layout of the hot path at ingest: [`decode_batch`] splits a `ReportBatch`
//! into raw signed envelopes, [`decode_signed`] checks each one's shape,
//! [`verify_batch`] checks the signatures together, and [`admit`] applies the
//! per-signer timestamp and replay rules.

mod admission;
mod envelope;
mod kinds;
mod payload;

/// The prost types generated from `proto/depin/v1/protocol.proto`. Kept private:
/// callers speak in the typed structs below, which carry validated values.
mod wire {
    #![allow(clippy::all, dead_code)]
    include!(concat!(env!("OUT_DIR"), "/depin.v1.rs"));
}

pub use admission::{AdmissionPolicy, admit};
pub use envelope::{
    ENVELOPE_VERSION, Envelope, PayloadKind, Signed, decode_batch, decode_signed, encode_batch,
    sign, verify_batch,
};
pub use kinds::{BACKBONE, Checked, KindSpec, KindTable, Route, SignedBy};
pub use payload::{
    CreditPurchase, DeviceCertificate, Heartbeat, KeyRotation, Location, OperatorSettings,
    OrderLock, Payload, Revocation, Withdrawal, WorkRequest, answered_work_id, limits,
    work_ref_bytes,
};

pub use depin_core::{PublicKey, Reason, Sector, UnixMillis};
pub use ed25519_dalek::SigningKey;

/// A device (or operator) signing key from a fixed 32-byte seed. Used by the
/// simulator and tests, where keys must be reproducible from the run's seed.
pub fn device_keypair_from_seed(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// A fresh signing key drawn from the caller's RNG.
pub fn generate_signing_key<R: rand_core::CryptoRngCore + ?Sized>(rng: &mut R) -> SigningKey {
    SigningKey::generate(rng)
}

/// The [`PublicKey`] of a signing key, in the core crate's type.
pub fn public_key_of(key: &SigningKey) -> PublicKey {
    PublicKey(key.verifying_key().to_bytes())
}
