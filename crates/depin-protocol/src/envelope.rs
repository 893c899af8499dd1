//! The envelope, its canonical encoding, signing and signature verification.

use crate::wire;
use depin_core::{PublicKey, Reason};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;
use prost::encoding::{decode_key, decode_varint, encode_varint, encoded_len_varint};

/// The only envelope version this build speaks. A receiver rejects any other
/// value with [`Reason::UnsupportedVersion`] rather than guessing at its fields.
pub const ENVELOPE_VERSION: u32 = 1;

/// What the payload bytes of an envelope are. The numbers are wire values and
/// frozen; new kinds get new numbers. Backbone kinds are below 1000; each
/// sector owns `Sector::kind_range()` and its kinds travel as
/// [`PayloadKind::Sector`]. Whether a kind is *known* — who signs it, how it
/// decodes — is the [`crate::KindTable`]'s business, not this type's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayloadKind {
    /// 1. Signed by the operator key: binds a device key to its operator.
    DeviceCertificate,
    /// 2. Signed by a device key: liveness, temperature, firmware, power.
    Heartbeat,
    /// 3. Signed by the operator key: the device key may no longer sign.
    Revocation,
    /// 4. Signed by the operator key: a device moves to a new key.
    KeyRotation,
    /// 5. Signed by a device key: "which work is open for me?" (`GET /v1/work`).
    WorkRequest,
    /// 6. Signed by a consumer key: locks escrow for an order (`POST /v1/orders`).
    OrderLock,
    /// 7. Signed by an operator key: its cost settings
    /// (`PUT /v1/operators/{operator}/settings`).
    OperatorSettings,
    /// 8. Signed by a consumer key: burns free escrow for data credits
    /// (`POST /v1/credits`).
    CreditPurchase,
    /// 9. Signed by a consumer key: pays free escrow out to a chain address
    /// (`POST /v1/withdrawals`).
    Withdrawal,
    /// A kind in some sector's range (1000–4999).
    Sector(u32),
}

impl PayloadKind {
    /// The backbone's kinds.
    pub const ALL: [PayloadKind; 9] = [
        PayloadKind::DeviceCertificate,
        PayloadKind::Heartbeat,
        PayloadKind::Revocation,
        PayloadKind::KeyRotation,
        PayloadKind::WorkRequest,
        PayloadKind::OrderLock,
        PayloadKind::OperatorSettings,
        PayloadKind::CreditPurchase,
        PayloadKind::Withdrawal,
    ];

    /// `None` for a number that is neither a backbone kind nor in a sector's
    /// range.
    pub fn from_u32(value: u32) -> Option<PayloadKind> {
        match value {
            1 => Some(PayloadKind::DeviceCertificate),
            2 => Some(PayloadKind::Heartbeat),
            3 => Some(PayloadKind::Revocation),
            4 => Some(PayloadKind::KeyRotation),
            5 => Some(PayloadKind::WorkRequest),
            6 => Some(PayloadKind::OrderLock),
            7 => Some(PayloadKind::OperatorSettings),
            8 => Some(PayloadKind::CreditPurchase),
            9 => Some(PayloadKind::Withdrawal),
            k if depin_core::Sector::owning_kind(k).is_some() => Some(PayloadKind::Sector(k)),
            _ => None,
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            PayloadKind::DeviceCertificate => 1,
            PayloadKind::Heartbeat => 2,
            PayloadKind::Revocation => 3,
            PayloadKind::KeyRotation => 4,
            PayloadKind::WorkRequest => 5,
            PayloadKind::OrderLock => 6,
            PayloadKind::OperatorSettings => 7,
            PayloadKind::CreditPurchase => 8,
            PayloadKind::Withdrawal => 9,
            PayloadKind::Sector(k) => k,
        }
    }

    /// Whether this backbone kind must be signed by an operator key rather
    /// than a device key. Operator messages change who owns what; device
    /// messages only report. Sector kinds answer from their [`crate::KindSpec`].
    ///
    /// An explicit match on purpose: a new kind must say who signs it, or the
    /// build breaks, instead of silently falling into one side.
    pub fn is_operator_signed(self) -> bool {
        match self {
            PayloadKind::DeviceCertificate
            | PayloadKind::Revocation
            | PayloadKind::KeyRotation
            | PayloadKind::OperatorSettings => true,
            // A consumer's lock, purchase or withdrawal is not an operator
            // message either.
            PayloadKind::Heartbeat
            | PayloadKind::WorkRequest
            | PayloadKind::OrderLock
            | PayloadKind::CreditPurchase
            | PayloadKind::Withdrawal
            | PayloadKind::Sector(_) => false,
        }
    }
}

/// A message before signing: who signs it, its place in the signer's sequence,
/// when it was made, and the payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub version: u32,
    pub signer: PublicKey,
    pub seq: u64,
    pub timestamp_ms: i64,
    pub kind: PayloadKind,
    pub payload: Vec<u8>,
}

impl Envelope {
    /// An envelope of the current version carrying `payload`.
    pub fn new<P: crate::Payload>(
        signer: PublicKey,
        seq: u64,
        timestamp_ms: i64,
        payload: &P,
    ) -> Self {
        Envelope {
            version: ENVELOPE_VERSION,
            signer,
            seq,
            timestamp_ms,
            kind: P::KIND,
            payload: payload.encode(),
        }
    }

    /// The canonical encoding: the bytes a signature covers.
    pub fn encode(&self) -> Vec<u8> {
        wire::Envelope {
            version: self.version,
            signer: self.signer.0.to_vec(),
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind: self.kind.as_u32(),
            payload: self.payload.clone(),
        }
        .encode_to_vec()
    }

    /// Decodes the payload as `P`: [`Reason::WrongPayloadKind`] when the envelope
    /// carries another kind, [`Reason::BadPayload`] when it does not validate.
    pub fn decode_payload<P: crate::Payload>(&self) -> Result<P, Reason> {
        if self.kind != P::KIND {
            return Err(Reason::WrongPayloadKind);
        }
        P::decode(&self.payload)
    }
}

/// A signed envelope as received or about to be sent. `body` is the exact byte
/// string the signature covers; `envelope` is its decoded form. The two always
/// agree when produced by [`sign`] or [`decode_signed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    pub envelope: Envelope,
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

/// Signs the canonical encoding of `envelope` with `key`.
///
/// Nothing checks that `key` belongs to `envelope.signer`: a mismatch yields a
/// message that fails verification with [`Reason::BadSignature`], which is what
/// the simulator's forging devices want.
pub fn sign(envelope: &Envelope, key: &SigningKey) -> Signed {
    let body = envelope.encode();
    let signature = key.sign(&body).to_bytes();
    Signed {
        envelope: envelope.clone(),
        body,
        signature,
    }
}

// Field keys of SignedEnvelope and ReportBatch as canonical single bytes:
// (field_number << 3) | wire_type, wire type 2 = length-delimited.
const KEY_BODY: u8 = (1 << 3) | 2;
const KEY_SIGNATURE: u8 = (2 << 3) | 2;
const KEY_REPORTS: u8 = (1 << 3) | 2;

impl Signed {
    /// The `SignedEnvelope` bytes. Written by hand rather than through prost so
    /// the (possibly large) body is not copied twice; a test holds it equal to
    /// the prost encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    fn encoded_len(&self) -> usize {
        let body = if self.body.is_empty() {
            0
        } else {
            1 + encoded_len_varint(self.body.len() as u64) + self.body.len()
        };
        body + 2 + self.signature.len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        // proto3 omits empty bytes fields; a real body is never empty, but the
        // encoding must match prost's for every value.
        if !self.body.is_empty() {
            out.push(KEY_BODY);
            encode_varint(self.body.len() as u64, out);
            out.extend_from_slice(&self.body);
        }
        out.push(KEY_SIGNATURE);
        out.push(self.signature.len() as u8);
        out.extend_from_slice(&self.signature);
    }

    /// Checks the signature over `body` under `envelope.signer`, with the strict
    /// ed25519 rules (canonical `s`, no small-order key or `R`).
    pub fn verify_signature(&self) -> Result<(), Reason> {
        let key = verifying_key(&self.envelope.signer).ok_or(Reason::BadSignature)?;
        key.verify_strict(&self.body, &Signature::from_bytes(&self.signature))
            .map_err(|_| Reason::BadSignature)
    }
}

/// The signer's key as a curve point, or `None` when the bytes are not a point
/// or are a small-order point (which would let anyone sign for it).
fn verifying_key(key: &PublicKey) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&key.0)
        .ok()
        .filter(|k| !k.is_weak())
}

/// Whether `bytes` equal the canonical encoding of `msg`. The length check
/// first makes the common rejections free.
pub(crate) fn is_canonical<M: Message>(msg: &M, bytes: &[u8]) -> bool {
    msg.encoded_len() == bytes.len() && msg.encode_to_vec() == bytes
}

/// Decodes a `SignedEnvelope` and the `Envelope` inside it, checking shape
/// only; the signature is checked by [`Signed::verify_signature`] or
/// [`verify_batch`].
///
/// Rejections, in the order they are checked:
/// - [`Reason::Malformed`]: not protobuf, truncated, a signature that is not
///   64 bytes, or a signer that is not 32 bytes;
/// - [`Reason::NonCanonical`]: the outer message has unknown fields or is not
///   in canonical encoding;
/// - [`Reason::UnsupportedVersion`]: the envelope's version is not
///   [`ENVELOPE_VERSION`] (checked before the envelope's own canonical form,
///   so a future version with new fields is reported as what it is);
/// - [`Reason::NonCanonical`]: the envelope has unknown fields or is not in
///   canonical encoding;
/// - [`Reason::UnknownPayloadKind`]: the kind is neither a backbone kind nor
///   in a sector's range (the [`crate::KindTable`] decides whether a kind in
///   range is one this coordinator serves);
/// - [`Reason::OutOfRange`]: the sequence number is above
///   [`crate::limits::MAX_SEQ`].
pub fn decode_signed(bytes: &[u8]) -> Result<Signed, Reason> {
    let outer = wire::SignedEnvelope::decode(bytes).map_err(|_| Reason::Malformed)?;
    let signature: [u8; 64] = outer
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| Reason::Malformed)?;
    if !is_canonical(&outer, bytes) {
        return Err(Reason::NonCanonical);
    }
    let body = outer.body;
    let inner = wire::Envelope::decode(body.as_slice()).map_err(|_| Reason::Malformed)?;
    if inner.version != ENVELOPE_VERSION {
        return Err(Reason::UnsupportedVersion);
    }
    if !is_canonical(&inner, &body) {
        return Err(Reason::NonCanonical);
    }
    let signer = PublicKey::from_slice(&inner.signer).map_err(|_| Reason::Malformed)?;
    let kind = PayloadKind::from_u32(inner.kind).ok_or(Reason::UnknownPayloadKind)?;
    if inner.seq > crate::limits::MAX_SEQ {
        return Err(Reason::OutOfRange);
    }
    let envelope = Envelope {
        version: inner.version,
        signer,
        seq: inner.seq,
        timestamp_ms: inner.timestamp_ms,
        kind,
        payload: inner.payload,
    };
    Ok(Signed {
        envelope,
        body,
        signature,
    })
}

/// How many signatures are checked in one batch equation. A failed batch falls
/// back to checking its members one by one, so a bounded chunk caps what one
/// bad report costs its neighbours.
const VERIFY_CHUNK: usize = 64;

/// Verifies many signatures at once; `result[i]` is the verdict for `items[i]`.
///
/// Uses ed25519 batch verification (roughly twice the throughput of one-by-one)
/// in chunks of 64. When a chunk's batch equation fails, every member is
/// re-checked alone with [`Signed::verify_signature`], so one forged report
/// does not sink honest ones.
///
/// Keys that are not curve points or are of small order are rejected up front,
/// exactly as the single check does. One residual difference is inherent to
/// cofactorless batch equations: a signer who deliberately builds signatures
/// with a small-order component may see them accepted in a batch and rejected
/// alone. Only the key holder can build those, over messages they signed
/// anyway, so nothing can be forged with them; the verdict recorded at ingest
/// is the one that counts.
pub fn verify_batch(items: &[Signed]) -> Vec<Result<(), Reason>> {
    let mut verdicts: Vec<Result<(), Reason>> = Vec::with_capacity(items.len());
    let mut keys: Vec<Option<VerifyingKey>> = Vec::with_capacity(items.len());
    for item in items {
        let key = verifying_key(&item.envelope.signer);
        verdicts.push(if key.is_some() {
            Ok(())
        } else {
            Err(Reason::BadSignature)
        });
        keys.push(key);
    }

    let candidates: Vec<usize> = (0..items.len()).filter(|&i| keys[i].is_some()).collect();
    let mut messages: Vec<&[u8]> = Vec::with_capacity(VERIFY_CHUNK);
    let mut signatures: Vec<Signature> = Vec::with_capacity(VERIFY_CHUNK);
    let mut batch_keys: Vec<VerifyingKey> = Vec::with_capacity(VERIFY_CHUNK);
    for chunk in candidates.chunks(VERIFY_CHUNK) {
        if chunk.len() > 1 {
            messages.clear();
            signatures.clear();
            batch_keys.clear();
            for &i in chunk {
                messages.push(&items[i].body);
                signatures.push(Signature::from_bytes(&items[i].signature));
                batch_keys.push(keys[i].expect("candidates have keys"));
            }
            if ed25519_dalek::verify_batch(&messages, &signatures, &batch_keys).is_ok() {
                continue;
            }
        }
        for &i in chunk {
            verdicts[i] = items[i].verify_signature();
        }
    }
    verdicts
}

/// Encodes a `ReportBatch` of the given signed envelopes.
pub fn encode_batch(items: &[Signed]) -> Vec<u8> {
    let total: usize = items
        .iter()
        .map(|s| {
            let len = s.encoded_len();
            1 + encoded_len_varint(len as u64) + len
        })
        .sum();
    let mut out = Vec::with_capacity(total);
    for item in items {
        out.push(KEY_REPORTS);
        encode_varint(item.encoded_len() as u64, &mut out);
        item.encode_into(&mut out);
    }
    debug_assert_eq!(out.len(), total);
    out
}

/// Splits a `ReportBatch` into the raw bytes of its signed envelopes, without
/// decoding them: each is then decoded and verified on its own, so one bad
/// report does not sink the batch.
///
/// The batch itself must be canonical (only field 1, minimal length prefixes):
/// otherwise [`Reason::NonCanonical`] (or [`Reason::Malformed`] when it is not
/// protobuf at all). More than `max_items` reports is [`Reason::RateLimited`];
/// parsing stops there, so an oversized batch costs no more than the limit.
pub fn decode_batch(bytes: &[u8], max_items: usize) -> Result<Vec<Vec<u8>>, Reason> {
    let mut items = Vec::new();
    let mut rest = bytes;
    while let Some((&key, after_key)) = rest.split_first() {
        if key != KEY_REPORTS {
            // A well-formed key for another field (or a non-minimal key for
            // this one) is an unknown field; anything else is garbage.
            let mut probe = rest;
            return Err(match decode_key(&mut probe) {
                Ok(_) => Reason::NonCanonical,
                Err(_) => Reason::Malformed,
            });
        }
        let mut cursor = after_key;
        let len = decode_varint(&mut cursor).map_err(|_| Reason::Malformed)?;
        let prefix = after_key.len() - cursor.len();
        if prefix != encoded_len_varint(len) {
            return Err(Reason::NonCanonical);
        }
        let len = usize::try_from(len).map_err(|_| Reason::Malformed)?;
        if len > cursor.len() {
            return Err(Reason::Malformed);
        }
        if items.len() == max_items {
            return Err(Reason::RateLimited);
        }
        let (item, tail) = cursor.split_at(len);
        items.push(item.to_vec());
        rest = tail;
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signed(body: Vec<u8>, signature: [u8; 64]) -> Signed {
        let envelope = Envelope {
            version: ENVELOPE_VERSION,
            signer: PublicKey([0; 32]),
            seq: 0,
            timestamp_ms: 0,
            kind: PayloadKind::Heartbeat,
            payload: Vec::new(),
        };
        Signed {
            envelope,
            body,
            signature,
        }
    }

    proptest! {
        /// The hand-written encoders produce exactly prost's bytes.
        #[test]
        fn hand_encoding_matches_prost(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..5),
            sig_byte in any::<u8>(),
        ) {
            let items: Vec<Signed> = bodies.into_iter().map(|b| signed(b, [sig_byte; 64])).collect();
            let wire_items: Vec<wire::SignedEnvelope> = items
                .iter()
                .map(|s| wire::SignedEnvelope { body: s.body.clone(), signature: s.signature.to_vec() })
                .collect();
            for (item, w) in items.iter().zip(&wire_items) {
                prop_assert_eq!(item.encode(), w.encode_to_vec());
            }
            let batch = wire::ReportBatch { reports: wire_items }.encode_to_vec();
            prop_assert_eq!(encode_batch(&items), batch);
        }
    }

    #[test]
    fn payload_kind_numbers_are_frozen() {
        for kind in PayloadKind::ALL {
            assert_eq!(PayloadKind::from_u32(kind.as_u32()), Some(kind));
        }
        assert_eq!(PayloadKind::Heartbeat.as_u32(), 2);
        assert_eq!(PayloadKind::WorkRequest.as_u32(), 5);
        assert_eq!(PayloadKind::OrderLock.as_u32(), 6);
        assert_eq!(PayloadKind::OperatorSettings.as_u32(), 7);
        assert_eq!(PayloadKind::CreditPurchase.as_u32(), 8);
        assert_eq!(PayloadKind::Withdrawal.as_u32(), 9);
        assert_eq!(PayloadKind::from_u32(0), None);
        assert_eq!(PayloadKind::from_u32(10), None);
        assert_eq!(PayloadKind::from_u32(999), None);
        assert_eq!(PayloadKind::from_u32(1000), Some(PayloadKind::Sector(1000)));
        assert_eq!(PayloadKind::from_u32(4999), Some(PayloadKind::Sector(4999)));
        assert_eq!(PayloadKind::from_u32(5000), None);
        assert_eq!(PayloadKind::from_u32(u32::MAX), None);
    }
}
