//! Machine-readable reason codes. Every rejected message and every zeroed or
//! reduced reward carries one (DESIGN invariants 1 and 5). The string form is the
//! public contract: it appears in API errors, `devices.json` and the store, so a
//! code is never renamed once released; new codes are only added.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    // --- admission of a signed envelope (ingest) ---
    /// The bytes are not a well-formed envelope.
    Malformed,
    /// The envelope decodes but carries fields this version does not know, or
    /// is not in canonical encoding.
    NonCanonical,
    /// Envelope version not supported.
    UnsupportedVersion,
    /// The signature does not verify under the signer's key.
    BadSignature,
    /// The signer is not a registered device or operator.
    UnknownSigner,
    /// The device key was revoked by its operator.
    RevokedDevice,
    /// Timestamp further in the past than the skew window allows.
    StaleTimestamp,
    /// Timestamp further in the future than the skew window allows.
    FutureTimestamp,
    /// Sequence number already seen, or lower than the last accepted one.
    ReplayedSequence,
    /// Payload kind not valid for this endpoint or signer.
    WrongPayloadKind,
    /// The payload inside the envelope does not decode or fails validation.
    BadPayload,
    /// The device sent more than the rate limit allows.
    RateLimited,
    /// A device certificate not signed by the operator it names, or a
    /// certificate or rotation whose device key did not sign it.
    BadCertificate,
    /// The device key is already registered.
    AlreadyRegistered,
    /// The report belongs to an epoch that is already closed.
    LateReport,
    /// The envelope's payload kind is not one this build knows.
    UnknownPayloadKind,
    /// A number in the envelope lies outside the range the network stores
    /// (for example a sequence number above 2^63 − 1).
    OutOfRange,

    // --- reward reasons (reductions and hard gates at epoch close) ---
    /// No accepted report from the device in the epoch.
    NoReports,
    /// Availability below the policy's minimum: reward gated to zero.
    LowUptime,
    /// Availability below full: reward reduced pro rata.
    PartialUptime,
    /// The device was registered or revoked during the epoch, so it could serve
    /// only part of it: reward reduced in proportion to the time it was active.
    PartialEpoch,
    /// The device's share of its sector's emission was below one base unit (or
    /// the sector received no emission this epoch), so it rounded down to zero.
    RoundedToZero,

    // --- work the coordinator starts (challenges, jobs) ---
    /// Reward: a work order fell due without an answer.
    ChallengeMissed,
    /// Ingest: an answer names no open work order of this device and kind.
    UnknownChallenge,
    /// Ingest: an answer arrived after its work order's deadline.
    ChallengeExpired,

    // --- consumers and escrow ---
    /// A lock, burn or order asks for more than the account holds.
    InsufficientEscrow,
    /// The external reference of a deposit was recorded before with a
    /// different account or amount.
    DepositConflict,
    /// The consumer already locked escrow under this order number, with
    /// other terms.
    OrderConflict,
    /// Every epoch an order names is closed or closing: no close could
    /// charge it.
    OrderTooLate,
    /// No token price is recorded, so credits cannot be priced.
    NoTokenPrice,
    /// Buying the credits would burn more base units than the consumer's
    /// limit (the price moved): nothing was burned.
    BurnAboveLimit,
    /// The consumer already bought credits under this purchase id, with
    /// other terms.
    PurchaseConflict,
    /// The consumer already asked for a withdrawal under this id, with other
    /// terms.
    WithdrawalConflict,
    /// A spend asks for more data credits than the consumer holds.
    InsufficientCredits,
    /// A withdrawal was already marked paid with another chain reference.
    PayoutConflict,
    // --- reserved block: storage (codes start with `storage_`) ---
    // --- reserved block: compute (codes start with `compute_`) ---
    /// Reward: an answer to a challenge or job came in time but did not
    /// verify (a wrong digest or result).
    ComputeWrongAnswer,
    // --- reserved block: wireless (codes start with `wireless_`) ---
    // --- reserved block: sensor (codes start with `sensor_`) ---
}

impl Reason {
    pub const ALL: [Reason; 36] = [
        Reason::Malformed,
        Reason::NonCanonical,
        Reason::UnsupportedVersion,
        Reason::BadSignature,
        Reason::UnknownSigner,
        Reason::RevokedDevice,
        Reason::StaleTimestamp,
        Reason::FutureTimestamp,
        Reason::ReplayedSequence,
        Reason::WrongPayloadKind,
        Reason::BadPayload,
        Reason::RateLimited,
        Reason::BadCertificate,
        Reason::AlreadyRegistered,
        Reason::LateReport,
        Reason::OutOfRange,
        Reason::UnknownPayloadKind,
        Reason::NoReports,
        Reason::LowUptime,
        Reason::PartialUptime,
        Reason::PartialEpoch,
        Reason::RoundedToZero,
        Reason::ChallengeMissed,
        Reason::UnknownChallenge,
        Reason::ChallengeExpired,
        Reason::InsufficientEscrow,
        Reason::DepositConflict,
        Reason::OrderConflict,
        Reason::OrderTooLate,
        Reason::NoTokenPrice,
        Reason::BurnAboveLimit,
        Reason::PurchaseConflict,
        Reason::WithdrawalConflict,
        Reason::InsufficientCredits,
        Reason::PayoutConflict,
        Reason::ComputeWrongAnswer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::NonCanonical => "non_canonical",
            Reason::UnsupportedVersion => "unsupported_version",
            Reason::BadSignature => "bad_signature",
            Reason::UnknownSigner => "unknown_signer",
            Reason::RevokedDevice => "revoked_device",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::ReplayedSequence => "replayed_sequence",
            Reason::WrongPayloadKind => "wrong_payload_kind",
            Reason::BadPayload => "bad_payload",
            Reason::RateLimited => "rate_limited",
            Reason::BadCertificate => "bad_certificate",
            Reason::AlreadyRegistered => "already_registered",
            Reason::LateReport => "late_report",
            Reason::OutOfRange => "out_of_range",
            Reason::UnknownPayloadKind => "unknown_payload_kind",
            Reason::NoReports => "no_reports",
            Reason::LowUptime => "low_uptime",
            Reason::PartialUptime => "partial_uptime",
            Reason::PartialEpoch => "partial_epoch",
            Reason::RoundedToZero => "rounded_to_zero",
            Reason::ChallengeMissed => "challenge_missed",
            Reason::UnknownChallenge => "unknown_challenge",
            Reason::ChallengeExpired => "challenge_expired",
            Reason::InsufficientEscrow => "insufficient_escrow",
            Reason::DepositConflict => "deposit_conflict",
            Reason::OrderConflict => "order_conflict",
            Reason::OrderTooLate => "order_too_late",
            Reason::NoTokenPrice => "no_token_price",
            Reason::BurnAboveLimit => "burn_above_limit",
            Reason::PurchaseConflict => "purchase_conflict",
            Reason::WithdrawalConflict => "withdrawal_conflict",
            Reason::InsufficientCredits => "insufficient_credits",
            Reason::PayoutConflict => "payout_conflict",
            Reason::ComputeWrongAnswer => "compute_wrong_answer",
        }
    }

    /// The sector whose reserved block holds this code (its code starts with
    /// the sector's name), or `None` for the backbone's codes.
    pub fn sector(self) -> Option<crate::Sector> {
        crate::Sector::ALL.into_iter().find(|s| {
            self.as_str()
                .strip_prefix(s.as_str())
                .is_some_and(|rest| rest.starts_with('_'))
        })
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A sentence an operator can act on.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::Malformed => "the message bytes are not a valid envelope",
            Reason::NonCanonical => {
                "the envelope is not in canonical encoding or has unknown fields"
            }
            Reason::UnsupportedVersion => "the envelope version is not supported; update the agent",
            Reason::BadSignature => "the signature does not match the signer's key",
            Reason::UnknownSigner => "the signing key is not registered; run `depin node init`",
            Reason::RevokedDevice => "the device key was revoked by its operator",
            Reason::StaleTimestamp => "the timestamp is too old; check the device clock (NTP)",
            Reason::FutureTimestamp => {
                "the timestamp is in the future; check the device clock (NTP)"
            }
            Reason::ReplayedSequence => "the sequence number was already used",
            Reason::WrongPayloadKind => "this payload kind is not accepted here",
            Reason::BadPayload => "the payload does not decode or is out of range",
            Reason::RateLimited => "too many reports; slow down",
            Reason::BadCertificate => {
                "the device certificate or key rotation is not signed by both keys it names (the operator, and the device key it registers)"
            }
            Reason::AlreadyRegistered => "the device key is already registered",
            Reason::LateReport => "the report's epoch is already closed; send reports sooner",
            Reason::UnknownPayloadKind => {
                "the payload kind is not one this coordinator knows; update the coordinator or the agent"
            }
            Reason::OutOfRange => {
                "a number in the message is outside the range the network accepts (sequence numbers stop at 2^63 - 1)"
            }
            Reason::NoReports => "no accepted report in the epoch",
            Reason::LowUptime => "availability below the minimum; reward is zero",
            Reason::PartialUptime => "availability below 100%; reward reduced in proportion",
            Reason::PartialEpoch => {
                "the device was active for only part of the epoch (registered or revoked during it); reward reduced in proportion"
            }
            Reason::RoundedToZero => {
                "the device's share of the sector's emission was below one base unit and rounded down to zero"
            }
            Reason::ChallengeMissed => {
                "work the coordinator ordered from the device (a challenge, a job) got no answer before its deadline"
            }
            Reason::UnknownChallenge => {
                "the answer names no open work order of this device and kind (never issued, or answered already)"
            }
            Reason::ChallengeExpired => "the answer arrived after its work order's deadline",
            Reason::InsufficientEscrow => "the account does not hold enough for this",
            Reason::DepositConflict => {
                "this external payment reference was already recorded for another account or amount"
            }
            Reason::OrderConflict => {
                "the consumer already has an order with this number and other terms"
            }
            Reason::OrderTooLate => {
                "every epoch the order names is already closed or closing, so nothing could serve it"
            }
            Reason::NoTokenPrice => {
                "the coordinator has no token price recorded, so data credits cannot be priced yet; its operator runs `depin price set`"
            }
            Reason::BurnAboveLimit => {
                "buying these credits would burn more tokens than the limit you signed (the token price fell); nothing was burned, sign again with a higher limit"
            }
            Reason::PurchaseConflict => {
                "the consumer already bought credits under this purchase id with other terms; use a new purchase id"
            }
            Reason::WithdrawalConflict => {
                "the consumer already asked for a withdrawal under this id with other terms; use a new withdrawal id"
            }
            Reason::InsufficientCredits => "the consumer holds fewer data credits than this spends",
            Reason::PayoutConflict => {
                "the withdrawal was already marked paid with another chain reference"
            }
            Reason::ComputeWrongAnswer => {
                "the device answered its challenge or job in time, but the answer did not verify; check the device's software"
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "duplicate code {r}");
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
        }
        assert_eq!(Reason::parse("nope"), None);
    }

    #[test]
    fn sector_codes_live_in_their_block() {
        // The enum lists backbone codes first, then one block per sector in
        // sector order: a code's block is given by its prefix.
        let blocks: Vec<Option<crate::Sector>> = Reason::ALL.iter().map(|r| r.sector()).collect();
        let mut sorted = blocks.clone();
        sorted.sort();
        assert_eq!(
            blocks, sorted,
            "a sector's codes sit in its own block, in order"
        );
    }
}
