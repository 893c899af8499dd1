//! Admission: the per-signer checks an ingest node makes before it appends a
//! report to the log, as a pure function of the clock reading and the
//! signer's last accepted sequence number, both passed in.

use crate::Envelope;
use depin_core::{Reason, UnixMillis};

/// How far a signer's clock may drift from the coordinator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionPolicy {
    /// Oldest acceptable timestamp, in milliseconds before now. Bounds how long
    /// a device may buffer reports while offline, and how long a captured
    /// message stays worth replaying to another coordinator replica.
    pub max_skew_past_ms: i64,
    /// Newest acceptable timestamp, in milliseconds after now.
    pub max_skew_future_ms: i64,
}

impl Default for AdmissionPolicy {
    /// 15 minutes behind, 2 minutes ahead: room for a device that lost its
    /// uplink for a few minutes, tight enough that a future-dated report cannot
    /// reserve sequence numbers for long.
    fn default() -> Self {
        AdmissionPolicy {
            max_skew_past_ms: 15 * 60 * 1000,
            max_skew_future_ms: 2 * 60 * 1000,
        }
    }
}

/// Admits `env` at coordinator time `now_ms` when its signer's last accepted
/// sequence number is `last_seq` (`None` for a signer never heard from).
///
/// Checks, in order: [`Reason::StaleTimestamp`] when the timestamp is more than
/// `max_skew_past_ms` old, [`Reason::FutureTimestamp`] when it is more than
/// `max_skew_future_ms` ahead (both bounds inclusive, arithmetic saturating so
/// extreme timestamps cannot overflow), then [`Reason::ReplayedSequence`]
/// unless `seq` is strictly greater than `last_seq`. The caller records
/// `env.seq` as the new `last_seq` only after the report is accepted.
pub fn admit(
    policy: &AdmissionPolicy,
    now_ms: UnixMillis,
    env: &Envelope,
    last_seq: Option<u64>,
) -> Result<(), Reason> {
    if env.timestamp_ms < now_ms.saturating_sub(policy.max_skew_past_ms) {
        return Err(Reason::StaleTimestamp);
    }
    if env.timestamp_ms > now_ms.saturating_add(policy.max_skew_future_ms) {
        return Err(Reason::FutureTimestamp);
    }
    match last_seq {
        Some(last) if env.seq <= last => Err(Reason::ReplayedSequence),
        _ => Ok(()),
    }
}
