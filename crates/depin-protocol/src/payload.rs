//! Typed payloads: plain Rust structs with validated values, encoded as the
//! protobuf messages of the same names.
//!
//! Decoders are as strict as the envelope's: unknown fields or a non-canonical
//! encoding are rejected, and so are out-of-range values, with
//! [`Reason::BadPayload`]. A payload that decodes is one the coordinator can
//! store and show to an operator without further checks.

use crate::envelope::{PayloadKind, is_canonical};
use crate::wire;
use depin_core::{PublicKey, Reason, Sector};
use ed25519_dalek::VerifyingKey;
use prost::Message;

/// The ranges payload validation enforces. Public so agents can clamp before
/// they sign instead of learning about a limit from a rejection.
pub mod limits {
    /// Longest hardware class, firmware version string, in bytes.
    pub const MAX_LABEL_LEN: usize = 64;
    /// Longest free-text revocation reason, in bytes.
    pub const MAX_REASON_LEN: usize = 256;
    /// Coldest plausible device temperature: −50.00 °C.
    pub const MIN_TEMPERATURE_CENTI_C: i32 = -5_000;
    /// Hottest plausible device temperature: +150.00 °C (silicon throttles well below).
    pub const MAX_TEMPERATURE_CENTI_C: i32 = 15_000;
    /// Highest plausible draw of one device: 100 kW, in milliwatts.
    pub const MAX_POWER_MW: u32 = 100_000_000;
    /// |latitude| in microdegrees.
    pub const MAX_LAT_MICRODEG: i32 = 90_000_000;
    /// |longitude| in microdegrees.
    pub const MAX_LON_MICRODEG: i32 = 180_000_000;
    /// Longest plausible uptime: 100 years, in seconds. Anything above is a
    /// broken or hostile agent, and every stored integer must fit in i64.
    pub const MAX_UPTIME_S: u64 = 100 * 366 * 24 * 3600;
    /// Highest sequence number an envelope may carry. The store keeps
    /// integers as signed 64-bit values, so the top half of u64 is refused at
    /// decoding ([`depin_core::Reason::OutOfRange`]) rather than wrapped or
    /// allowed to fail later, where it once stopped ingest for everyone.
    pub const MAX_SEQ: u64 = i64::MAX as u64;
    /// Largest amount, epoch or order number a message may carry: the store
    /// keeps them as signed 64-bit integers.
    pub const MAX_STORED: u64 = i64::MAX as u64;
    /// Longest sector terms of an order, in bytes.
    pub const MAX_TERMS_LEN: usize = 4096;
    /// The lengths a withdrawal's destination may have: an EVM address (20
    /// bytes) or a 32-byte account key (Solana and the like).
    pub const WITHDRAWAL_DESTINATION_LENS: [usize; 2] = [20, 32];
    /// Longest operator settings document, in bytes: room for the figures and
    /// well over a hundred per-device hardware entries, small enough that a
    /// settings row costs nothing to store or re-verify.
    pub const MAX_SETTINGS_DOCUMENT_LEN: usize = 16 * 1024;
}

/// A payload type carried in an [`crate::Envelope`] of kind [`Payload::KIND`].
pub trait Payload: Sized {
    const KIND: PayloadKind;
    fn encode(&self) -> Vec<u8>;
    fn decode(bytes: &[u8]) -> Result<Self, Reason>;
}

/// Decodes `M` and insists the bytes are its canonical encoding.
fn decode_strict<M: Message + Default>(bytes: &[u8]) -> Result<M, Reason> {
    let msg = M::decode(bytes).map_err(|_| Reason::BadPayload)?;
    if is_canonical(&msg, bytes) {
        Ok(msg)
    } else {
        Err(Reason::BadPayload)
    }
}

fn check(ok: bool) -> Result<(), Reason> {
    if ok { Ok(()) } else { Err(Reason::BadPayload) }
}

/// 32 bytes, nothing more: for keys that only name something already known.
fn key_bytes(bytes: &[u8]) -> Result<PublicKey, Reason> {
    PublicKey::from_slice(bytes).map_err(|_| Reason::BadPayload)
}

/// A key that is about to be trusted: 32 bytes that decode to a curve point of
/// prime order. Small-order or mixed-order keys would make signatures
/// malleable and let batch and single verification disagree, so they are
/// refused when a key enters the system rather than on every report.
fn new_key(bytes: &[u8]) -> Result<PublicKey, Reason> {
    let key = key_bytes(bytes)?;
    let point = VerifyingKey::from_bytes(&key.0).map_err(|_| Reason::BadPayload)?;
    check(!point.is_weak() && point.to_edwards().is_torsion_free())?;
    Ok(key)
}

/// Printable text: no control characters, at most `max` bytes.
fn text(s: &str, max: usize) -> Result<(), Reason> {
    check(s.len() <= max && !s.chars().any(char::is_control))
}

fn label(s: &str) -> Result<(), Reason> {
    check(!s.is_empty())?;
    text(s, limits::MAX_LABEL_LEN)
}

/// Whether `cell` is shaped like an H3 cell index: reserved bit clear, mode 1
/// (cell), a valid base cell, digits 0–6 up to the resolution and 7 beyond.
/// Pentagon-specific deleted digits are not checked.
fn is_h3_cell(cell: u64) -> bool {
    let mode = (cell >> 59) & 0xF;
    let reserved = (cell >> 56) & 0x7;
    let res = ((cell >> 52) & 0xF) as u32;
    let base = (cell >> 45) & 0x7F;
    if cell >> 63 != 0 || mode != 1 || reserved != 0 || base >= 122 {
        return false;
    }
    (1..=15).all(|r| {
        let digit = (cell >> ((15 - r) * 3)) & 0x7;
        if r <= res { digit <= 6 } else { digit == 7 }
    })
}

/// Where a device says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub lat_microdeg: i32,
    pub lon_microdeg: i32,
    pub h3_cell: Option<u64>,
}

impl Location {
    fn to_wire(self) -> wire::Location {
        wire::Location {
            lat_microdeg: self.lat_microdeg,
            lon_microdeg: self.lon_microdeg,
            h3_cell: self.h3_cell,
        }
    }

    fn from_wire(w: wire::Location) -> Result<Self, Reason> {
        check(w.lat_microdeg.unsigned_abs() <= limits::MAX_LAT_MICRODEG as u32)?;
        check(w.lon_microdeg.unsigned_abs() <= limits::MAX_LON_MICRODEG as u32)?;
        if let Some(cell) = w.h3_cell {
            check(is_h3_cell(cell))?;
        }
        Ok(Location {
            lat_microdeg: w.lat_microdeg,
            lon_microdeg: w.lon_microdeg,
            h3_cell: w.h3_cell,
        })
    }
}

/// Binds a device key to the operator that owns its earnings. Carried in an
/// envelope of kind [`PayloadKind::DeviceCertificate`] signed by the operator
/// key, so `envelope.signer == operator_key` (see [`DeviceCertificate::from_envelope`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCertificate {
    pub device_key: PublicKey,
    pub operator_key: PublicKey,
    pub sector: Sector,
    pub hardware_class: String,
    pub firmware_version: String,
    pub location: Option<Location>,
    pub issued_at_ms: i64,
    /// The device key's signature over [`DeviceCertificate::possession_message`]:
    /// without it anyone could register someone else's key as their device.
    /// `None` decodes (old messages keep reading) but is refused at onboarding.
    pub device_signature: Option<[u8; 64]>,
}

/// Domain tags keep a possession signature from being valid as anything else.
const CERTIFICATE_POSSESSION_TAG: &[u8] = b"depin/v1/device-certificate\0";
const ROTATION_POSSESSION_TAG: &[u8] = b"depin/v1/key-rotation\0";

/// Strict ed25519 verification of a possession signature by `key`.
fn verify_possession(
    key: &PublicKey,
    message: &[u8],
    signature: Option<[u8; 64]>,
) -> Result<(), Reason> {
    let signature = signature.ok_or(Reason::BadCertificate)?;
    let key = VerifyingKey::from_bytes(&key.0).map_err(|_| Reason::BadCertificate)?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| Reason::BadCertificate)
}

fn signature_field(bytes: &[u8]) -> Result<Option<[u8; 64]>, Reason> {
    match bytes.len() {
        0 => Ok(None),
        64 => Ok(Some(bytes.try_into().map_err(|_| Reason::BadPayload)?)),
        _ => Err(Reason::BadPayload),
    }
}

impl DeviceCertificate {
    pub fn encode(&self) -> Vec<u8> {
        wire::DeviceCertificate {
            device_key: self.device_key.0.to_vec(),
            operator_key: self.operator_key.0.to_vec(),
            sector: self.sector.code(),
            hardware_class: self.hardware_class.clone(),
            firmware_version: self.firmware_version.clone(),
            location: self.location.map(Location::to_wire),
            issued_at_ms: self.issued_at_ms,
            device_signature: self.device_signature.map_or(Vec::new(), |s| s.to_vec()),
        }
        .encode_to_vec()
    }

    /// What the device key signs: a domain tag and the certificate encoded
    /// without its device signature.
    pub fn possession_message(&self) -> Vec<u8> {
        let unsigned = DeviceCertificate {
            device_signature: None,
            ..self.clone()
        };
        [CERTIFICATE_POSSESSION_TAG, &unsigned.encode()].concat()
    }

    /// The certificate with the device key's possession signature; `device`
    /// must be the key the certificate names (else verification fails later).
    pub fn signed_by_device(mut self, device: &ed25519_dalek::SigningKey) -> Self {
        use ed25519_dalek::Signer;
        self.device_signature = Some(device.sign(&self.possession_message()).to_bytes());
        self
    }

    /// [`Reason::BadCertificate`] unless the device key signed this
    /// certificate: the registrant must hold the device key.
    pub fn verify_possession(&self) -> Result<(), Reason> {
        verify_possession(
            &self.device_key,
            &self.possession_message(),
            self.device_signature,
        )
    }

    /// Both keys must be prime-order curve points and differ: a device key
    /// that is also the operator key would let a stolen device move funds.
    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::DeviceCertificate = decode_strict(bytes)?;
        let device_key = new_key(&w.device_key)?;
        let operator_key = new_key(&w.operator_key)?;
        check(device_key != operator_key)?;
        let sector = Sector::from_code(w.sector).ok_or(Reason::BadPayload)?;
        label(&w.hardware_class)?;
        label(&w.firmware_version)?;
        let location = w.location.map(Location::from_wire).transpose()?;
        Ok(DeviceCertificate {
            device_key,
            operator_key,
            sector,
            hardware_class: w.hardware_class,
            firmware_version: w.firmware_version,
            location,
            issued_at_ms: w.issued_at_ms,
            device_signature: signature_field(&w.device_signature)?,
        })
    }

    /// The certificate inside `envelope`, checked to be signed by the operator
    /// it names: [`Reason::WrongPayloadKind`] for another kind,
    /// [`Reason::BadPayload`] when it does not validate, and
    /// [`Reason::BadCertificate`] when the signer is not `operator_key`. The
    /// signature itself is checked separately (batch verification).
    pub fn from_envelope(envelope: &crate::Envelope) -> Result<Self, Reason> {
        let cert: DeviceCertificate = envelope.decode_payload()?;
        if envelope.signer != cert.operator_key {
            return Err(Reason::BadCertificate);
        }
        Ok(cert)
    }
}

/// A device's periodic liveness report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub uptime_s: u64,
    pub temperature_centi_c: i32,
    pub firmware_version: String,
    pub power_mw: u32,
}

impl Heartbeat {
    pub fn encode(&self) -> Vec<u8> {
        wire::Heartbeat {
            uptime_s: self.uptime_s,
            temperature_centi_c: self.temperature_centi_c,
            firmware_version: self.firmware_version.clone(),
            power_mw: self.power_mw,
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::Heartbeat = decode_strict(bytes)?;
        check(
            (limits::MIN_TEMPERATURE_CENTI_C..=limits::MAX_TEMPERATURE_CENTI_C)
                .contains(&w.temperature_centi_c),
        )?;
        check(w.power_mw <= limits::MAX_POWER_MW)?;
        check(w.uptime_s <= limits::MAX_UPTIME_S)?;
        label(&w.firmware_version)?;
        Ok(Heartbeat {
            uptime_s: w.uptime_s,
            temperature_centi_c: w.temperature_centi_c,
            firmware_version: w.firmware_version,
            power_mw: w.power_mw,
        })
    }
}

/// The operator withdraws a device key: reports it signs from now on are
/// rejected. Signed by the operator key that certified the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub device_key: PublicKey,
    pub reason: String,
}

impl Revocation {
    pub fn encode(&self) -> Vec<u8> {
        wire::Revocation {
            device_key: self.device_key.0.to_vec(),
            reason: self.reason.clone(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::Revocation = decode_strict(bytes)?;
        let device_key = key_bytes(&w.device_key)?;
        text(&w.reason, limits::MAX_REASON_LEN)?;
        Ok(Revocation {
            device_key,
            reason: w.reason,
        })
    }
}

/// The operator moves a device to a new key (the old one is retired, the
/// device keeps its history and earnings). Signed by the operator key that
/// certified the old key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRotation {
    pub old_device_key: PublicKey,
    pub new_device_key: PublicKey,
    /// The new key's signature over [`KeyRotation::possession_message`].
    /// `None` decodes but is refused by the coordinator.
    pub new_key_signature: Option<[u8; 64]>,
}

impl KeyRotation {
    pub fn encode(&self) -> Vec<u8> {
        wire::KeyRotation {
            old_device_key: self.old_device_key.0.to_vec(),
            new_device_key: self.new_device_key.0.to_vec(),
            new_key_signature: self.new_key_signature.map_or(Vec::new(), |s| s.to_vec()),
        }
        .encode_to_vec()
    }

    /// What the new key signs: a domain tag, the old key and the new key.
    pub fn possession_message(&self) -> Vec<u8> {
        [
            ROTATION_POSSESSION_TAG,
            &self.old_device_key.0,
            &self.new_device_key.0,
        ]
        .concat()
    }

    /// The rotation with the new key's possession signature.
    pub fn signed_by_new_key(mut self, new: &ed25519_dalek::SigningKey) -> Self {
        use ed25519_dalek::Signer;
        self.new_key_signature = Some(new.sign(&self.possession_message()).to_bytes());
        self
    }

    /// [`Reason::BadCertificate`] unless the new key signed this rotation.
    pub fn verify_possession(&self) -> Result<(), Reason> {
        verify_possession(
            &self.new_device_key,
            &self.possession_message(),
            self.new_key_signature,
        )
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::KeyRotation = decode_strict(bytes)?;
        let old_device_key = key_bytes(&w.old_device_key)?;
        let new_device_key = new_key(&w.new_device_key)?;
        check(old_device_key != new_device_key)?;
        Ok(KeyRotation {
            old_device_key,
            new_device_key,
            new_key_signature: signature_field(&w.new_key_signature)?,
        })
    }
}

/// Kind 5: "which work is open for me?", signed by the device. No fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkRequest;

impl WorkRequest {
    pub fn encode(&self) -> Vec<u8> {
        Vec::new()
    }
    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        decode_strict::<wire::WorkRequest>(bytes)?;
        Ok(WorkRequest)
    }
}

/// Kind 6: a consumer locks escrow for an order (see `OrderLock` in the
/// proto file). Decoding checks the ranges: a positive amount, a known
/// sector, `first_epoch ≤ last_epoch`, every integer storable, terms at most
/// [`limits::MAX_TERMS_LEN`] bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderLock {
    pub order: u64,
    pub sector: depin_core::Sector,
    pub amount: u64,
    pub first_epoch: u64,
    pub last_epoch: u64,
    pub terms: Vec<u8>,
}

impl OrderLock {
    pub fn encode(&self) -> Vec<u8> {
        wire::OrderLock {
            order: self.order,
            sector: self.sector.code(),
            amount: self.amount,
            first_epoch: self.first_epoch,
            last_epoch: self.last_epoch,
            terms: self.terms.clone(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::OrderLock = decode_strict(bytes)?;
        for v in [w.order, w.amount, w.first_epoch, w.last_epoch] {
            if v > limits::MAX_STORED {
                return Err(Reason::OutOfRange);
            }
        }
        let sector = depin_core::Sector::from_code(w.sector).ok_or(Reason::BadPayload)?;
        check(w.amount > 0 && w.first_epoch <= w.last_epoch)?;
        check(w.terms.len() <= limits::MAX_TERMS_LEN)?;
        Ok(OrderLock {
            order: w.order,
            sector,
            amount: w.amount,
            first_epoch: w.first_epoch,
            last_epoch: w.last_epoch,
            terms: w.terms,
        })
    }
}

/// Kind 7: an operator's cost settings (see `OperatorSettings` in the proto
/// file). The protocol only knows the document as text: decoding checks it is
/// present, UTF-8 and at most [`limits::MAX_SETTINGS_DOCUMENT_LEN`] bytes.
/// What the JSON must say, and that it is in its one byte form, is the
/// coordinator's check (`depin_economics::operator`), since the protocol
/// crate does not know the settings' fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSettings {
    pub document: String,
}

impl OperatorSettings {
    pub fn encode(&self) -> Vec<u8> {
        wire::OperatorSettings {
            document: self.document.as_bytes().to_vec(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::OperatorSettings = decode_strict(bytes)?;
        check(!w.document.is_empty() && w.document.len() <= limits::MAX_SETTINGS_DOCUMENT_LEN)?;
        let document = String::from_utf8(w.document).map_err(|_| Reason::BadPayload)?;
        Ok(OperatorSettings { document })
    }
}

/// Kind 8: a consumer buys data credits by burning free escrow (see
/// `CreditPurchase` in the proto file). Decoding checks the ranges: every
/// integer storable, at least one credit, and a burn limit of at least one
/// base unit (any purchase burns something).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditPurchase {
    pub purchase: u64,
    pub credits: u64,
    pub max_burn: u64,
}

impl CreditPurchase {
    pub fn encode(&self) -> Vec<u8> {
        wire::CreditPurchase {
            purchase: self.purchase,
            credits: self.credits,
            max_burn: self.max_burn,
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::CreditPurchase = decode_strict(bytes)?;
        for v in [w.purchase, w.credits, w.max_burn] {
            if v > limits::MAX_STORED {
                return Err(Reason::OutOfRange);
            }
        }
        check(w.credits > 0 && w.max_burn > 0)?;
        Ok(CreditPurchase {
            purchase: w.purchase,
            credits: w.credits,
            max_burn: w.max_burn,
        })
    }
}

/// Kind 9: a consumer takes free escrow out to a chain address (see
/// `Withdrawal` in the proto file). Decoding checks the ranges: every integer
/// storable, a positive amount, a destination of one of
/// [`limits::WITHDRAWAL_DESTINATION_LENS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub withdrawal: u64,
    pub amount: u64,
    pub destination: Vec<u8>,
}

impl Withdrawal {
    pub fn encode(&self) -> Vec<u8> {
        wire::Withdrawal {
            withdrawal: self.withdrawal,
            amount: self.amount,
            destination: self.destination.clone(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::Withdrawal = decode_strict(bytes)?;
        for v in [w.withdrawal, w.amount] {
            if v > limits::MAX_STORED {
                return Err(Reason::OutOfRange);
            }
        }
        check(w.amount > 0)?;
        check(limits::WITHDRAWAL_DESTINATION_LENS.contains(&w.destination.len()))?;
        Ok(Withdrawal {
            withdrawal: w.withdrawal,
            amount: w.amount,
            destination: w.destination,
        })
    }
}

/// The work id an answer kind carries in its field 1 (see `WorkRef` in the
/// proto file); `None` when the field is absent or not 32 bytes. Lenient on
/// the other fields: the sector's own decoder is strict about those.
pub fn answered_work_id(payload: &[u8]) -> Option<[u8; 32]> {
    let r = wire::WorkRef::decode(payload).ok()?;
    r.work_id.as_slice().try_into().ok()
}

/// Encodes the `WorkRef` prefix of an answer: field 1 with the work id.
/// A sector's answer message has `bytes work_id = 1` and encodes it the same.
pub fn work_ref_bytes(work_id: &[u8; 32]) -> Vec<u8> {
    wire::WorkRef {
        work_id: work_id.to_vec(),
    }
    .encode_to_vec()
}

macro_rules! payload {
    ($ty:ident) => {
        impl Payload for $ty {
            const KIND: PayloadKind = PayloadKind::$ty;
            fn encode(&self) -> Vec<u8> {
                $ty::encode(self)
            }
            fn decode(bytes: &[u8]) -> Result<Self, Reason> {
                $ty::decode(bytes)
            }
        }
    };
}
payload!(DeviceCertificate);
payload!(Heartbeat);
payload!(Revocation);
payload!(KeyRotation);
payload!(WorkRequest);
payload!(OrderLock);
payload!(OperatorSettings);
payload!(CreditPurchase);
payload!(Withdrawal);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h3_shape_check_accepts_real_cells_and_rejects_others() {
        // Cells from the H3 documentation (res 9 and res 0).
        assert!(is_h3_cell(0x8928308280fffff));
        assert!(is_h3_cell(0x8001fffffffffff));
        // Edge (mode 2), digit beyond resolution not 7, base cell 122, zero.
        assert!(!is_h3_cell(0x1192_8308_280f_ffff));
        assert!(!is_h3_cell(0x8928308280ffffe));
        assert!(!is_h3_cell(0x80f5fffffffffff));
        assert!(!is_h3_cell(0));
    }
}
