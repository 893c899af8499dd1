//! Drivers: what a device of one sector does with the work its coordinator
//! orders (a storage audit, a benchmark job, a coverage beacon, a sensor
//! sample). The agent itself knows nothing of sectors: it pulls the device's
//! open work orders (`GET /v1/work`, signed by the device key), hands each to
//! the driver chosen by the device's sector (`node.json`'s `sector`), and
//! signs, spools and sends the answer like any report, so an answer is as
//! crash-safe as a heartbeat.
//!
//! A sector ships its driver beside its verifier: the sector's crate
//! implements [`Driver`], and whoever builds the agent (the `depin` binary,
//! a test) passes it in [`crate::RunOptions::drivers`]. A device whose
//! sector has no driver in the build only sends heartbeats; the verifier
//! then sees its work missed, with its reason, as it should.
//!
//! Pure parts here: which orders to answer ([`to_answer`]) and the answer's
//! envelope ([`answer_envelope`], which insists the driver answered the order
//! it was given). The loop that polls and runs drivers is in [`crate::run`].

use depin_client::WorkOrder;
use depin_core::{PublicKey, Sector};
use depin_protocol::{Envelope, PayloadKind, Signed, SigningKey, answered_work_id, sign};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The device side of a sector.
///
/// `answer` runs on a blocking thread (`tokio::task::spawn_blocking`), so a
/// driver may read a disk or run a job for a while without delaying
/// heartbeats; the agent runs one answer at a time per order and never two
/// for the same order.
pub trait Driver: Send + Sync {
    /// The sector whose devices this driver serves.
    fn sector(&self) -> Sector;

    /// A short name for logs and `status.json`.
    fn name(&self) -> &'static str;

    /// The payload of the answer to `order` (a report of kind
    /// `order.answer_kind`, whose field 1 is the order's id), for the device
    /// with key `device`.
    fn answer(&self, device: &PublicKey, order: &WorkOrder) -> Result<Vec<u8>, DriverError>;
}

/// Why a driver gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// The order is not one this driver can ever answer (an unknown answer
    /// kind, a challenge body it cannot decode). Not retried: the verifier
    /// will see the order missed.
    #[error("cannot answer this order: {0}")]
    Refused(String),
    /// Not now (a disk busy, a job that failed): retried at the next poll
    /// while the deadline allows.
    #[error("{0}")]
    Failed(String),
}

/// The drivers an agent build carries, at most one per sector.
#[derive(Clone, Default)]
pub struct Drivers {
    list: Vec<Arc<dyn Driver>>,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|d| (d.sector(), d.name())))
            .finish()
    }
}

impl Drivers {
    /// Refuses two drivers for one sector: which one answers must not depend
    /// on listing order.
    pub fn new(list: Vec<Arc<dyn Driver>>) -> Result<Drivers, String> {
        for (i, d) in list.iter().enumerate() {
            if let Some(other) = list[..i].iter().find(|o| o.sector() == d.sector()) {
                return Err(format!(
                    "two drivers for the {} sector: {} and {}",
                    d.sector(),
                    other.name(),
                    d.name()
                ));
            }
        }
        Ok(Drivers { list })
    }

    /// The driver for devices of `sector`.
    pub fn for_sector(&self, sector: Sector) -> Option<Arc<dyn Driver>> {
        self.list.iter().find(|d| d.sector() == sector).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// What the agent remembers about orders between polls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Orders answered (the answer is in the spool or already sent), with
    /// their deadlines: a poll that raced the answer's send still lists
    /// them, and they must not be answered twice (the coordinator refuses
    /// a second answer).
    pub answered: BTreeMap<[u8; 32], i64>,
    /// Orders the driver refused for good, with their deadlines.
    pub refused: BTreeMap<[u8; 32], i64>,
    /// Orders whose answer is being computed now.
    pub running: BTreeSet<[u8; 32]>,
}

impl Ledger {
    /// Forgets orders whose deadline has passed (the coordinator no longer
    /// lists them), so the ledger stays as small as the open work.
    pub fn prune(&mut self, now_ms: i64) {
        self.answered.retain(|_, d| *d >= now_ms);
        self.refused.retain(|_, d| *d >= now_ms);
    }
}

/// The orders of a poll to start answering now, soonest deadline first (the
/// coordinator's order): not answered, refused or running already, not past
/// their deadline, and of the device's own sector's answer kinds.
pub fn to_answer<'a>(
    orders: &'a [WorkOrder],
    ledger: &Ledger,
    sector: Sector,
    now_ms: i64,
) -> Vec<&'a WorkOrder> {
    orders
        .iter()
        .filter(|o| o.deadline_ms >= now_ms)
        .filter(|o| Sector::owning_kind(o.answer_kind) == Some(sector))
        .filter(|o| {
            !ledger.answered.contains_key(&o.id)
                && !ledger.refused.contains_key(&o.id)
                && !ledger.running.contains(&o.id)
        })
        .collect()
}

/// Why an answer was not signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("the answer names work {named} but answers {order}: a driver bug")]
    WrongOrder { order: String, named: String },
    #[error("the answer does not carry the order's id in field 1: a driver bug")]
    NoWorkRef,
    #[error("answer kind {0} is not a sector's kind")]
    NotASectorKind(u32),
    #[error("the answer is {0} bytes, more than a report may carry")]
    TooLarge(usize),
}

/// The signed report answering `order` with `payload`, at `seq` and `now_ms`.
/// Refuses a payload that does not name the order (the coordinator would
/// refuse it too, and a wrong answer would cost the device its reward).
pub fn answer_envelope(
    key: &SigningKey,
    seq: u64,
    now_ms: i64,
    order: &WorkOrder,
    payload: Vec<u8>,
) -> Result<Signed, AnswerError> {
    if payload.len() > crate::record::MAX_PAYLOAD_LEN / 2 {
        return Err(AnswerError::TooLarge(payload.len()));
    }
    match answered_work_id(&payload) {
        None => return Err(AnswerError::NoWorkRef),
        Some(id) if id != order.id => {
            return Err(AnswerError::WrongOrder {
                order: hex::encode(order.id),
                named: hex::encode(id),
            });
        }
        Some(_) => {}
    }
    let kind = match PayloadKind::from_u32(order.answer_kind) {
        Some(k @ PayloadKind::Sector(_)) => k,
        _ => return Err(AnswerError::NotASectorKind(order.answer_kind)),
    };
    let envelope = Envelope {
        version: depin_protocol::ENVELOPE_VERSION,
        signer: depin_protocol::public_key_of(key),
        seq,
        timestamp_ms: now_ms,
        kind,
        payload,
    };
    Ok(sign(&envelope, key))
}

/// The work id a spooled report answers, if it is an answer: used at start
/// to rebuild [`Ledger::answered`] from the spool, so an answer written
/// before a crash is not computed and sent a second time.
pub fn spooled_answer(bytes: &[u8]) -> Option<[u8; 32]> {
    let s = depin_protocol::decode_signed(bytes).ok()?;
    match s.envelope.kind {
        PayloadKind::Sector(_) => answered_work_id(&s.envelope.payload),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use depin_protocol::{device_keypair_from_seed, public_key_of, work_ref_bytes};

    fn order(id: u8, kind: u32, deadline_ms: i64) -> WorkOrder {
        WorkOrder {
            id: [id; 32],
            sector: 2,
            answer_kind: kind,
            body: vec![],
            deadline_ms,
            issued_epoch: 0,
        }
    }

    struct Fixed(Sector, &'static str);
    impl Driver for Fixed {
        fn sector(&self) -> Sector {
            self.0
        }
        fn name(&self) -> &'static str {
            self.1
        }
        fn answer(&self, _: &PublicKey, o: &WorkOrder) -> Result<Vec<u8>, DriverError> {
            Ok(work_ref_bytes(&o.id))
        }
    }

    #[test]
    fn one_driver_per_sector() {
        let a: Arc<dyn Driver> = Arc::new(Fixed(Sector::Compute, "a"));
        let b: Arc<dyn Driver> = Arc::new(Fixed(Sector::Compute, "b"));
        let s: Arc<dyn Driver> = Arc::new(Fixed(Sector::Storage, "s"));
        let err = Drivers::new(vec![a.clone(), s.clone(), b]).unwrap_err();
        assert!(err.contains("two drivers for the compute sector"), "{err}");
        let d = Drivers::new(vec![a, s]).unwrap();
        assert_eq!(d.for_sector(Sector::Storage).unwrap().name(), "s");
        assert!(d.for_sector(Sector::Wireless).is_none());
    }

    #[test]
    fn picks_open_unanswered_orders_of_the_own_sector() {
        let compute = *Sector::Compute.kind_range().start();
        let storage = *Sector::Storage.kind_range().start();
        let orders = vec![
            order(1, compute, 100),
            order(2, compute, 99),  // past its deadline at 100
            order(3, storage, 200), // another sector's kind
            order(4, compute, 300),
            order(5, compute, 300),
            order(6, compute, 300),
            order(7, 2, 300), // a backbone kind
        ];
        let mut l = Ledger::default();
        l.answered.insert([4; 32], 300);
        l.refused.insert([5; 32], 300);
        l.running.insert([6; 32]);
        let ids: Vec<u8> = to_answer(&orders, &l, Sector::Compute, 100)
            .iter()
            .map(|o| o.id[0])
            .collect();
        assert_eq!(ids, vec![1]);
        // Extremes: deadlines at the ends of the range.
        let edge = vec![order(8, compute, i64::MIN), order(9, compute, i64::MAX)];
        let ids: Vec<u8> = to_answer(&edge, &Ledger::default(), Sector::Compute, i64::MAX)
            .iter()
            .map(|o| o.id[0])
            .collect();
        assert_eq!(ids, vec![9]);
        l.prune(301);
        assert!(l.answered.is_empty() && l.refused.is_empty());
    }

    #[test]
    fn an_answer_must_name_its_order() {
        let key = device_keypair_from_seed([3; 32]);
        let kind = *Sector::Compute.kind_range().start() + 900;
        let o = order(1, kind, 10);
        let good = answer_envelope(&key, 7, 5, &o, work_ref_bytes(&[1; 32])).unwrap();
        assert_eq!(good.envelope.kind, PayloadKind::Sector(kind));
        assert_eq!(good.envelope.signer, public_key_of(&key));
        assert_eq!(good.envelope.seq, 7);
        good.verify_signature().unwrap();
        assert_eq!(spooled_answer(&good.encode()), Some([1; 32]));

        let wrong = answer_envelope(&key, 7, 5, &o, work_ref_bytes(&[2; 32])).unwrap_err();
        assert!(matches!(wrong, AnswerError::WrongOrder { .. }), "{wrong}");
        assert_eq!(
            answer_envelope(&key, 7, 5, &o, vec![]).unwrap_err(),
            AnswerError::NoWorkRef
        );
        assert_eq!(
            answer_envelope(&key, 7, 5, &o, vec![0xff; 3]).unwrap_err(),
            AnswerError::NoWorkRef
        );
        let backbone = order(1, 2, 10);
        assert_eq!(
            answer_envelope(&key, 7, 5, &backbone, work_ref_bytes(&[1; 32])).unwrap_err(),
            AnswerError::NotASectorKind(2)
        );
        let mut big = work_ref_bytes(&[1; 32]);
        big.resize(crate::record::MAX_PAYLOAD_LEN, 0);
        assert!(matches!(
            answer_envelope(&key, 7, 5, &o, big).unwrap_err(),
            AnswerError::TooLarge(_)
        ));
        // A heartbeat in the spool is not an answer.
        let hb = crate::heartbeat::build(
            &key,
            1,
            5,
            &crate::heartbeat::Telemetry {
                uptime_s: 1,
                temperature_millideg_c: None,
                declared_watts: 1.0,
                firmware_version: "1".into(),
            },
        );
        assert_eq!(spooled_answer(&hb.encode()), None);
        assert_eq!(spooled_answer(b"garbage"), None);
    }
}
