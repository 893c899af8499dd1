//! What the sender does with the coordinator's answer. Pure decisions, so the
//! rules that decide whether a report may leave the spool are tested without a
//! network.
//!
//! The rule: a report leaves the spool once the coordinator has it (accepted,
//! or rejected as `replayed_sequence`, which means an earlier attempt whose
//! answer was lost already got it in) or once it can never succeed (any other
//! per-report rejection: it is logged and counted). A batch that failed as a
//! whole for a retryable reason stays, and is retried after a backoff.

use depin_client::BatchOutcome;

/// The reason code that means "the coordinator already has this report".
pub const ALREADY_HAVE: &str = "replayed_sequence";

/// The reason code that means "the key that signed this report is revoked".
pub const REVOKED: &str = "revoked_device";

/// Whether a settled batch shows that the agent's *own* key is revoked: a
/// report among `own_seqs` (those signed by the current device key) refused
/// as [`REVOKED`]. Reports signed by an earlier key (buffered before a
/// rotation) are refused the same way and say nothing about the current key.
pub fn own_key_revoked(dropped: &[(u64, String)], own_seqs: &[u64]) -> bool {
    dropped
        .iter()
        .any(|(seq, reason)| reason == REVOKED && own_seqs.contains(seq))
}

/// How one answered batch settles the spool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Every report up to and including this sequence number may leave the spool.
    pub acked_through: u64,
    pub accepted: u32,
    /// Rejected as `replayed_sequence`: already stored by the coordinator.
    pub already_had: u32,
    /// Refused for good: `(seq, reason)`.
    pub dropped: Vec<(u64, String)>,
    /// Verdict indices outside the batch: the server misbehaved; ignored.
    pub ignored_indices: Vec<u32>,
}

/// Settles a batch whose reports had sequence numbers `seqs` (ascending, as
/// they are in the spool) against the server's per-report verdicts. A report
/// without a rejection counts as accepted.
///
/// # Panics
/// When `seqs` is empty: an empty batch is never sent.
pub fn settle(seqs: &[u64], outcome: &BatchOutcome) -> Settled {
    let last = *seqs.last().expect("a sent batch is never empty");
    let mut verdict: Vec<Option<&str>> = vec![None; seqs.len()];
    let mut s = Settled {
        acked_through: last,
        ..Settled::default()
    };
    for r in &outcome.rejected {
        match verdict.get_mut(r.index as usize) {
            Some(v) => *v = Some(r.reason.as_str()),
            None => s.ignored_indices.push(r.index),
        }
    }
    for (seq, v) in seqs.iter().zip(verdict) {
        match v {
            None => s.accepted += 1,
            Some(ALREADY_HAVE) => s.already_had += 1,
            Some(reason) => s.dropped.push((*seq, reason.to_string())),
        }
    }
    s
}

/// What to do after a batch failed as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// Keep the batch; try again after the backoff delay.
    Retry,
    /// The coordinator refused the batch as a whole: send smaller batches to
    /// isolate the report it objects to.
    Shrink { batch_size: usize },
    /// A batch of one was refused: the report can never succeed. Drop it with
    /// this reason.
    DropFirst { reason: String },
}

/// Decides what a failed batch of `batch_len` reports becomes. `retryable`
/// and `code` come from the client error.
pub fn on_failure(retryable: bool, code: Option<&str>, batch_len: usize) -> OnFailure {
    if retryable {
        OnFailure::Retry
    } else if batch_len > 1 {
        OnFailure::Shrink {
            batch_size: (batch_len / 2).max(1),
        }
    } else {
        OnFailure::DropFirst {
            reason: code.unwrap_or("refused").to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use depin_client::RejectedReport;

    fn outcome(accepted: u32, rejected: &[(u32, &str)]) -> BatchOutcome {
        BatchOutcome {
            accepted,
            rejected: rejected
                .iter()
                .map(|(i, r)| RejectedReport {
                    index: *i,
                    reason: r.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn accepted_replayed_and_refused_all_leave_the_spool() {
        let s = settle(
            &[10, 11, 12, 13],
            &outcome(2, &[(1, "replayed_sequence"), (3, "stale_timestamp")]),
        );
        assert_eq!(s.acked_through, 13);
        assert_eq!(s.accepted, 2);
        assert_eq!(s.already_had, 1);
        assert_eq!(s.dropped, vec![(13, "stale_timestamp".to_string())]);
        assert!(s.ignored_indices.is_empty());
    }

    #[test]
    fn only_a_revoked_verdict_on_the_own_key_counts() {
        let s = settle(
            &[1, 2, 3],
            &outcome(1, &[(0, "revoked_device"), (1, "stale_timestamp")]),
        );
        // Report 1 was signed by the key rotated away, 2 and 3 by ours.
        assert!(!own_key_revoked(&s.dropped, &[2, 3]));
        assert!(own_key_revoked(&s.dropped, &[1, 2, 3]));
        let s = settle(&[4], &outcome(0, &[(0, "revoked_device")]));
        assert!(own_key_revoked(&s.dropped, &[4]));
    }

    #[test]
    fn out_of_range_verdicts_are_ignored() {
        let s = settle(&[5], &outcome(1, &[(9, "bad_signature")]));
        assert_eq!((s.accepted, s.ignored_indices), (1, vec![9]));
    }

    #[test]
    fn failures_retry_shrink_then_drop() {
        assert_eq!(on_failure(true, Some("internal"), 100), OnFailure::Retry);
        assert_eq!(
            on_failure(false, Some("malformed"), 100),
            OnFailure::Shrink { batch_size: 50 }
        );
        assert_eq!(
            on_failure(false, Some("payload_too_large"), 3),
            OnFailure::Shrink { batch_size: 1 }
        );
        assert_eq!(
            on_failure(false, Some("malformed"), 1),
            OnFailure::DropFirst {
                reason: "malformed".into()
            }
        );
        assert_eq!(
            on_failure(false, None, 1),
            OnFailure::DropFirst {
                reason: "refused".into()
            }
        );
    }
}
