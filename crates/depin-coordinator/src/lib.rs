//! The coordinator: admits signed reports, registers devices, closes reward
//! epochs exactly once and audits them.
//!
//! Time is always an argument (`now_ms`): `depin serve` passes the wall clock,
//! the devnet its simulated clock, so both drive exactly this code.
//!
//! Ingest is deliberately cheap and stateless apart from the replay window:
//! decode, verify signatures in batches, check signer/timestamp/sequence, and
//! append the raw signed bytes to the report log through a group-committing
//! writer. Everything that decides money happens later, at epoch close, from
//! what the log holds (helium/oracles' shape).

pub mod audit;
pub mod compute;
mod escrow;
mod work;
mod writer;

use compute::ComputedEpoch;
pub use compute::{SectorPlugin, SectorSet};
use depin_core::{EpochIndex, PublicKey, Reason, Sector, UnixMillis};
use depin_protocol::{
    AdmissionPolicy, DeviceCertificate, Heartbeat, KeyRotation, PayloadKind, Revocation, Signed,
    admit, decode_batch, decode_signed, verify_batch,
};
use depin_rewards::RewardPolicy;
pub use depin_store::Recorded;
use depin_store::{
    AppendRules, DeviceAdmission, DeviceRow, EpochRow, EpochWrite, NewReport, NotStored,
    Registration, RejectionRow, ReportRow, Store, StoreError, TelemetryRow,
};
pub use escrow::{
    ConsumerView, LockedOrder, MAX_EXTERNAL_REF_LEN, OrderView, check_external_ref, record_deposit,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

pub use writer::WriterStats;

/// Largest number of reports in one batch.
pub const MAX_BATCH_REPORTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// The input is refused; `reason` is the machine-readable code.
    #[error("{message}")]
    Rejected { reason: Reason, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("epoch {epoch} can close at {closable_at_ms} (unix ms), not before")]
    NotDue {
        epoch: EpochIndex,
        closable_at_ms: i64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Compute(#[from] compute::ComputeError),
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// Storage failed (full disk, lost database) or the report writer is not
    /// running: nothing was stored; the same request may be sent again later.
    #[error("{0}")]
    Unavailable(String),
}

impl CoordError {
    pub fn rejected(reason: Reason) -> Self {
        CoordError::Rejected {
            reason,
            message: reason.explain().to_string(),
        }
    }
}

/// The per-device state ingest needs, cached in memory and backed by the store.
#[derive(Clone, Debug)]
struct DeviceState {
    revoked: bool,
    last_seq: Option<u64>,
    /// Reports accepted in `rate_epoch`, for the per-device rate limit.
    rate_epoch: EpochIndex,
    rate_count: u32,
}

impl DeviceState {
    fn from_row(d: &DeviceRow) -> Option<Self> {
        Sector::from_code(d.sector)?;
        Some(DeviceState {
            revoked: d.revoked_ms.is_some(),
            last_seq: d.last_seq,
            rate_epoch: 0,
            rate_count: 0,
        })
    }
}

/// What happened to each report of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    pub accepted: u32,
    pub rejected: Vec<RejectedReport>,
    /// How many reports proved nothing about their sender (undecodable, badly
    /// signed, or from an unregistered key): what a server charges to the
    /// client's address, since nobody else can be held to account for them.
    #[serde(skip)]
    pub unverified: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RejectedReport {
    /// Position in the batch.
    pub index: u32,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EpochSummary {
    pub epoch: EpochIndex,
    pub policy_id: String,
    pub emission: u64,
    pub minted: u64,
    pub fees: u64,
    pub burned: u64,
    pub devices: u64,
    pub rewarded: u64,
    pub sheet_hash: String,
    pub claim_root: String,
    pub per_sector: BTreeMap<Sector, depin_rewards::SectorTotals>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed(EpochSummary),
    /// Closed before, by this or another process: nothing changed.
    AlreadyClosed,
}

pub struct Coordinator {
    store: Store,
    policy: RewardPolicy,
    admission: AdmissionPolicy,
    registry: Mutex<HashMap<PublicKey, DeviceState>>,
    /// Highest closed epoch, or -1.
    last_closed: AtomicI64,
    writer: writer::Writer,
    sectors: std::sync::Arc<SectorSet>,
}

impl Coordinator {
    /// Opens the coordinator over `store` with `policy`, recording the policy
    /// so closed epochs can be audited under the policy they were closed with.
    pub async fn open(store: Store, policy: RewardPolicy) -> Result<Coordinator, CoordError> {
        Self::open_with(store, policy, SectorSet::backbone()).await
    }

    /// [`Coordinator::open`] serving the given sectors' kinds and closing
    /// epochs with their verifiers.
    pub async fn open_with(
        store: Store,
        policy: RewardPolicy,
        sectors: SectorSet,
    ) -> Result<Coordinator, CoordError> {
        policy
            .validate()
            .map_err(|e| CoordError::Invariant(format!("reward policy: {e}")))?;
        sectors
            .verifiers
            .check_policy(&policy)
            .map_err(|e| CoordError::Invariant(format!("reward policy: {}", e.0)))?;
        for schema in &sectors.schemas {
            store.apply_sector_schema(schema).await?;
        }
        store
            .put_policy(&policy.id(), &policy.canonical_bytes())
            .await?;
        let mut registry = HashMap::new();
        for d in store.devices(None).await? {
            if let Some(s) = DeviceState::from_row(&d) {
                registry.insert(d.device, s);
            }
        }
        let last_closed = store.last_closed_epoch().await?.map_or(-1, |e| e as i64);
        let admission = Self::admission_policy(&policy);
        let writer = writer::Writer::spawn(
            store.clone(),
            AppendRules {
                max_reports_per_device_per_epoch: policy.max_reports_per_device_per_epoch,
                kind_limits: policy
                    .max_reports_per_kind
                    .iter()
                    .map(|(k, n)| (*k, *n))
                    .collect(),
            },
        );
        Ok(Coordinator {
            store,
            policy,
            admission,
            registry: Mutex::new(registry),
            last_closed: AtomicI64::new(last_closed),
            writer,
            sectors: std::sync::Arc::new(sectors),
        })
    }

    /// A report may be older than "now" by as long as its epoch can still be
    /// open (so an agent's disk buffer can be resent after an outage), but
    /// never from the future by more than the clock-skew allowance.
    pub fn admission_policy(policy: &RewardPolicy) -> AdmissionPolicy {
        AdmissionPolicy {
            max_skew_past_ms: (policy.epoch_seconds + policy.close_grace_seconds) as i64 * 1000,
            max_skew_future_ms: policy.max_clock_skew_ms,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn sectors(&self) -> &SectorSet {
        &self.sectors
    }

    pub fn policy(&self) -> &RewardPolicy {
        &self.policy
    }

    pub fn last_closed_epoch(&self) -> Option<EpochIndex> {
        u64::try_from(self.last_closed.load(Ordering::SeqCst)).ok()
    }

    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Whether the report writer is running. When it is not, no report can
    /// be stored, and a server must say so in its health check and stop.
    pub fn writer_alive(&self) -> bool {
        self.writer.is_alive()
    }

    // ------------------------------------------------------------ onboarding

    /// Registers a device from its certificate: an envelope of kind
    /// `DeviceCertificate` signed by the operator key the certificate names.
    pub async fn onboard(&self, now_ms: UnixMillis, bytes: &[u8]) -> Result<DeviceRow, CoordError> {
        let signed = self.signed_message(now_ms, bytes, PayloadKind::DeviceCertificate)?;
        let cert =
            DeviceCertificate::from_envelope(&signed.envelope).map_err(CoordError::rejected)?;
        if signed.envelope.signer != cert.operator_key {
            return Err(CoordError::Rejected {
                reason: Reason::BadCertificate,
                message: "the certificate must be signed by the operator key it names".into(),
            });
        }
        // Whoever registers a device must hold its key: otherwise anyone could
        // register someone else's key (or an operator key) as their device.
        cert.verify_possession().map_err(|reason| CoordError::Rejected {
            reason,
            message: "the device key did not sign its certificate: registering a device needs the device key".into(),
        })?;
        let row = DeviceRow {
            device: cert.device_key,
            operator: cert.operator_key,
            sector: cert.sector.code(),
            hardware_class: cert.hardware_class.clone(),
            firmware_version: cert.firmware_version.clone(),
            lat_micro: cert.location.map(|l| i64::from(l.lat_microdeg)),
            lon_micro: cert.location.map(|l| i64::from(l.lon_microdeg)),
            h3_cell: cert.location.and_then(|l| l.h3_cell).map(|c| c as i64),
            certificate: bytes.to_vec(),
            registered_ms: now_ms,
            revoked_ms: None,
            replaced_by: None,
            last_seq: None,
        };
        registration_verdict(self.store.insert_device(&row).await?)?;
        if let Some(s) = DeviceState::from_row(&row) {
            self.registry
                .lock()
                .expect("registry lock")
                .insert(row.device, s);
        }
        metrics::counter!("depin_devices_registered_total").increment(1);
        Ok(row)
    }

    /// Revokes a device key; signed by the device's operator.
    pub async fn revoke(&self, now_ms: UnixMillis, bytes: &[u8]) -> Result<DeviceRow, CoordError> {
        let signed = self.signed_message(now_ms, bytes, PayloadKind::Revocation)?;
        let rev: Revocation = signed
            .envelope
            .decode_payload()
            .map_err(CoordError::rejected)?;
        let device = self
            .owned_device(&rev.device_key, &signed.envelope.signer)
            .await?;
        if !self
            .store
            .revoke_device(&device.device, now_ms, None)
            .await?
        {
            return Err(CoordError::Rejected {
                reason: Reason::RevokedDevice,
                message: "the device is already revoked".into(),
            });
        }
        self.mark_revoked(&device.device);
        self.store
            .device(&device.device)
            .await?
            .ok_or_else(|| CoordError::NotFound("device".into()))
    }

    /// Replaces a device key with a new one (same operator, sector, hardware);
    /// the old key is revoked. Signed by the device's operator.
    pub async fn rotate(&self, now_ms: UnixMillis, bytes: &[u8]) -> Result<DeviceRow, CoordError> {
        let signed = self.signed_message(now_ms, bytes, PayloadKind::KeyRotation)?;
        let rot: KeyRotation = signed
            .envelope
            .decode_payload()
            .map_err(CoordError::rejected)?;
        rot.verify_possession().map_err(|reason| CoordError::Rejected {
            reason,
            message: "the new key did not sign the rotation: the successor must prove it holds its key".into(),
        })?;
        let old = self
            .owned_device(&rot.old_device_key, &signed.envelope.signer)
            .await?;
        if old.revoked_ms.is_some() {
            return Err(CoordError::Rejected {
                reason: Reason::RevokedDevice,
                message: "the old key is already revoked".into(),
            });
        }
        let new = DeviceRow {
            device: rot.new_device_key,
            certificate: bytes.to_vec(),
            registered_ms: now_ms,
            revoked_ms: None,
            replaced_by: None,
            last_seq: None,
            ..old.clone()
        };
        // The new key may be taken (by a device or an operator), or the old
        // one revoked between our read and the transaction; then nothing changed.
        registration_verdict(self.store.rotate_device(&old.device, &new, now_ms).await?)?;
        self.mark_revoked(&old.device);
        if let Some(s) = DeviceState::from_row(&new) {
            self.registry
                .lock()
                .expect("registry lock")
                .insert(new.device, s);
        }
        Ok(new)
    }

    fn mark_revoked(&self, device: &PublicKey) {
        if let Some(s) = self.registry.lock().expect("registry lock").get_mut(device) {
            s.revoked = true;
        }
    }

    async fn owned_device(
        &self,
        device: &PublicKey,
        signer: &PublicKey,
    ) -> Result<DeviceRow, CoordError> {
        let d =
            self.store.device(device).await?.ok_or_else(|| {
                CoordError::NotFound(format!("device {device} is not registered"))
            })?;
        if d.operator != *signer {
            return Err(CoordError::Rejected {
                reason: Reason::BadSignature,
                message: "only the device's operator may revoke or rotate its key".into(),
            });
        }
        Ok(d)
    }

    /// Decodes and verifies a message of `kind` signed outside the report
    /// log (an operator's or a consumer's); the caller checks the signer's
    /// authority.
    pub(crate) fn signed_message(
        &self,
        now_ms: UnixMillis,
        bytes: &[u8],
        kind: PayloadKind,
    ) -> Result<Signed, CoordError> {
        let signed = decode_signed(bytes).map_err(CoordError::rejected)?;
        if signed.envelope.kind != kind {
            return Err(CoordError::Rejected {
                reason: Reason::WrongPayloadKind,
                message: format!(
                    "expected a {kind:?} envelope, got {:?}",
                    signed.envelope.kind
                ),
            });
        }
        signed.verify_signature().map_err(CoordError::rejected)?;
        // These messages are idempotent (a certificate or revocation applied
        // twice is refused by the registry, a lock is keyed by its order
        // number), so only the clock is checked.
        let clock = AdmissionPolicy {
            max_skew_past_ms: self.policy.max_clock_skew_ms,
            max_skew_future_ms: self.policy.max_clock_skew_ms,
        };
        admit(&clock, now_ms, &signed.envelope, None).map_err(CoordError::rejected)?;
        Ok(signed)
    }

    // ---------------------------------------------------------------- ingest

    /// Admits a `ReportBatch`. The batch as a whole is refused only when it
    /// cannot be split into reports; each report then gets its own verdict, and
    /// accepted ones are durable in the report log when this returns.
    pub async fn ingest(
        &self,
        now_ms: UnixMillis,
        batch: Vec<u8>,
    ) -> Result<IngestOutcome, CoordError> {
        // Decoding and signature checks are CPU work: keep them off the async
        // workers so the server stays responsive under load.
        let sectors = self.sectors.clone();
        let checked = tokio::task::spawn_blocking(move || check_signatures(&sectors.kinds, &batch))
            .await
            .map_err(|e| CoordError::Invariant(format!("verification task failed: {e}")))??;
        self.admit_checked(now_ms, checked).await
    }

    async fn admit_checked(
        &self,
        now_ms: UnixMillis,
        checked: Vec<Checked>,
    ) -> Result<IngestOutcome, CoordError> {
        let last_closed = self.last_closed.load(Ordering::SeqCst);
        let now_epoch = self.policy.epoch_of(now_ms).unwrap_or(0);
        let mut misses = Vec::new();
        {
            let reg = self.registry.lock().expect("registry lock");
            for c in &checked {
                if let Checked::Valid(s, ..) = c
                    && !reg.contains_key(&s.envelope.signer)
                {
                    misses.push(s.envelope.signer);
                }
            }
        }
        misses.sort();
        misses.dedup();
        // Another replica may have registered a device this one has not seen.
        for m in misses {
            if let Some(row) = self.store.device(&m).await?
                && let Some(s) = DeviceState::from_row(&row)
            {
                self.registry
                    .lock()
                    .expect("registry lock")
                    .entry(m)
                    .or_insert(s);
            }
        }
        let Admitted {
            mut outcome,
            mut rejections,
            reports,
            report_index,
        } = self.prefilter(now_ms, now_epoch, last_closed, checked);
        let sent: Vec<(PublicKey, EpochIndex)> = reports
            .iter()
            .map(|r| (r.row.device, r.row.epoch))
            .collect();
        let appended = self
            .writer
            .append(reports, std::mem::take(&mut rejections))
            .await
            .map_err(|f| {
                if f.unavailable {
                    CoordError::Unavailable(f.message)
                } else {
                    CoordError::Store(StoreError::Corrupt(f.message))
                }
            })?;
        for (k, verdict) in appended.verdicts.iter().enumerate() {
            let index = report_index[k];
            let Some(not) = verdict else {
                outcome.accepted += 1;
                continue;
            };
            // The store ruled from committed state that this cache could not
            // see (another replica, a concurrent request): its verdict counts.
            let reason = match not {
                NotStored::Duplicate => Reason::ReplayedSequence,
                NotStored::EpochClosed => Reason::LateReport,
                NotStored::UnknownDevice => Reason::UnknownSigner,
                NotStored::Revoked => Reason::RevokedDevice,
                NotStored::RateLimited => Reason::RateLimited,
                NotStored::UnknownWork => Reason::UnknownChallenge,
                NotStored::WorkExpired => Reason::ChallengeExpired,
            };
            outcome.rejected.push(RejectedReport { index, reason });
            if *not != NotStored::UnknownDevice {
                rejections.push(RejectionRow {
                    epoch: sent[k].1,
                    reason: reason.as_str().into(),
                    device: sent[k].0,
                });
            }
        }
        self.refresh_cache(&appended.devices, &sent);
        if !rejections.is_empty() {
            self.store.count_rejections(&rejections).await?;
        }
        outcome.rejected.sort_by_key(|r| r.index);
        metrics::counter!("depin_reports_accepted_total").increment(u64::from(outcome.accepted));
        for r in &outcome.rejected {
            metrics::counter!("depin_reports_rejected_total", "reason" => r.reason.as_str())
                .increment(1);
        }
        Ok(outcome)
    }

    /// Brings the cache up to the store's committed state. Values only move
    /// forward, so a cache is at worst behind the store, never ahead of it:
    /// whatever it refuses, the store would refuse too.
    /// `devices` is the whole group's committed state, sorted by key; only
    /// the devices this request `sent` are looked at.
    fn refresh_cache(&self, devices: &[DeviceAdmission], sent: &[(PublicKey, EpochIndex)]) {
        let mut mine: Vec<PublicKey> = sent.iter().map(|(d, _)| *d).collect();
        mine.sort();
        mine.dedup();
        let mut reg = self.registry.lock().expect("registry lock");
        for key in mine {
            let Ok(i) = devices.binary_search_by_key(&key, |d| d.device) else {
                continue;
            };
            let d = &devices[i];
            let Some(s) = reg.get_mut(&d.device) else {
                continue;
            };
            s.revoked |= d.revoked;
            s.last_seq = s.last_seq.max(d.last_seq);
            if let Some((&epoch, &count)) = d.counts.last_key_value() {
                if epoch > s.rate_epoch {
                    s.rate_epoch = epoch;
                    s.rate_count = count;
                } else if epoch == s.rate_epoch {
                    s.rate_count = s.rate_count.max(count);
                }
            }
        }
    }

    /// The cheap admission checks, from the cache and the batch itself (no
    /// await here). Nothing is reserved: the store decides again, from
    /// committed state, inside the append transaction. This only keeps work
    /// that is certainly refused away from the writer.
    ///
    /// Unverified input (undecodable, bad signature, unregistered signer) is
    /// counted in metrics only: a claimed signer proves nothing, so nothing is
    /// stored under it.
    fn prefilter(
        &self,
        now_ms: UnixMillis,
        now_epoch: EpochIndex,
        last_closed: i64,
        checked: Vec<Checked>,
    ) -> Admitted {
        let mut outcome = IngestOutcome::default();
        let mut rejections = Vec::new();
        let mut reports = Vec::new();
        let mut report_index = Vec::new();
        // What this batch itself has taken so far, per device: its last
        // sequence number, and reports per epoch.
        let mut taken: HashMap<PublicKey, (u64, BTreeMap<EpochIndex, u32>)> = HashMap::new();
        let reg = self.registry.lock().expect("registry lock");
        for (i, c) in checked.into_iter().enumerate() {
            let (signed, heartbeat, info) = match c {
                Checked::Invalid(reason) => {
                    outcome.rejected.push(RejectedReport {
                        index: i as u32,
                        reason,
                    });
                    outcome.unverified += 1;
                    continue;
                }
                Checked::Valid(s, hb, info) => (s, hb, info),
            };
            let env = &signed.envelope;
            let Some(state) = reg.get(&env.signer) else {
                outcome.rejected.push(RejectedReport {
                    index: i as u32,
                    reason: Reason::UnknownSigner,
                });
                outcome.unverified += 1;
                continue;
            };
            let mine = taken.get(&env.signer);
            let verdict = (|| {
                if state.revoked {
                    return Err(Reason::RevokedDevice);
                }
                let last_seq = state.last_seq.max(mine.map(|(seq, _)| *seq));
                admit(&self.admission, now_ms, env, last_seq)?;
                let epoch = self
                    .policy
                    .epoch_of(env.timestamp_ms)
                    .ok_or(Reason::StaleTimestamp)?;
                if epoch as i64 <= last_closed {
                    return Err(Reason::LateReport);
                }
                let cached = if state.rate_epoch == epoch {
                    state.rate_count
                } else {
                    0
                };
                let here = mine
                    .and_then(|(_, counts)| counts.get(&epoch))
                    .copied()
                    .unwrap_or(0);
                if cached.saturating_add(here) >= self.policy.max_reports_per_device_per_epoch {
                    return Err(Reason::RateLimited);
                }
                Ok(epoch)
            })();
            match verdict {
                Ok(epoch) => {
                    let t = taken.entry(env.signer).or_default();
                    t.0 = env.seq;
                    *t.1.entry(epoch).or_default() += 1;
                    report_index.push(i as u32);
                    reports.push(NewReport {
                        answers: info.answers,
                        telemetry: heartbeat.map(|heartbeat| TelemetryRow {
                            device: env.signer,
                            timestamp_ms: env.timestamp_ms,
                            uptime_s: heartbeat.uptime_s,
                            temperature_centi_c: i64::from(heartbeat.temperature_centi_c),
                            firmware_version: heartbeat.firmware_version,
                            power_mw: u64::from(heartbeat.power_mw),
                        }),
                        row: ReportRow {
                            device: env.signer,
                            seq: env.seq,
                            epoch,
                            kind: env.kind.as_u32(),
                            timestamp_ms: env.timestamp_ms,
                            received_ms: now_ms,
                            raw: signed.encode(),
                        },
                    });
                }
                Err(reason) => {
                    outcome.rejected.push(RejectedReport {
                        index: i as u32,
                        reason,
                    });
                    // The device really signed this: it may see the reason.
                    rejections.push(RejectionRow {
                        epoch: now_epoch,
                        reason: reason.as_str().into(),
                        device: env.signer,
                    });
                }
            }
        }
        Admitted {
            outcome,
            rejections,
            reports,
            report_index,
        }
    }

    // ----------------------------------------------------------------- epochs

    /// Closes every epoch that is due at `now_ms` and not closed yet, oldest
    /// first. Returns the ones this call closed.
    pub async fn close_due_epochs(
        &self,
        now_ms: UnixMillis,
    ) -> Result<Vec<EpochSummary>, CoordError> {
        let mut closed = Vec::new();
        let Some(current) = self.policy.epoch_of(now_ms) else {
            return Ok(closed);
        };
        let next = u64::try_from(self.last_closed.load(Ordering::SeqCst) + 1).unwrap_or(0);
        // Epochs before the first registration are empty; on a network whose
        // genesis lies far back, walking them one by one would take forever.
        let Some(first_ms) = self.store.first_registration_ms().await? else {
            return Ok(closed);
        };
        let first = next.max(self.policy.epoch_of(first_ms).unwrap_or(0));
        for epoch in first..current {
            if now_ms < self.policy.closable_at_ms(epoch) {
                break;
            }
            if let CloseOutcome::Closed(s) = self.close_epoch(epoch, now_ms).await? {
                closed.push(s);
            }
        }
        Ok(closed)
    }

    /// Closes `epoch` exactly once, in one transaction. Calling it again —
    /// after a crash, a retry, or from another coordinator process — changes
    /// nothing and returns `AlreadyClosed`.
    pub async fn close_epoch(
        &self,
        epoch: EpochIndex,
        now_ms: UnixMillis,
    ) -> Result<CloseOutcome, CoordError> {
        let closable_at_ms = self.policy.closable_at_ms(epoch);
        if now_ms < closable_at_ms {
            return Err(CoordError::NotDue {
                epoch,
                closable_at_ms,
            });
        }
        let policy_id = self.policy.id();
        let started = std::time::Instant::now();
        let Some(mut close) = self.store.begin_close(epoch, &policy_id, now_ms).await? else {
            self.last_closed.fetch_max(epoch as i64, Ordering::SeqCst);
            return Ok(CloseOutcome::AlreadyClosed);
        };
        let inputs = match close
            .inputs(&compute::input_query(&self.policy, epoch, &self.sectors))
            .await
        {
            Ok(x) => x,
            Err(e) => {
                close.abort().await?;
                return Err(e.into());
            }
        };
        tracing::debug!(
            epoch,
            ms = started.elapsed().as_millis() as u64,
            "close: inputs read"
        );
        let policy = self.policy.clone();
        let sectors = self.sectors.clone();
        let computed = tokio::task::spawn_blocking(move || {
            compute::compute_from_inputs(&policy, epoch, &inputs, &sectors)
        })
        .await
        .map_err(|e| CoordError::Invariant(format!("close task failed: {e}")));
        let computed = match computed {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                close.abort().await?;
                return Err(e.into());
            }
            Err(e) => {
                close.abort().await?;
                return Err(e);
            }
        };
        let summary = summarize(&computed);
        let row = EpochRow {
            epoch,
            policy_id,
            closed_ms: now_ms,
            emission: computed.sheet.emission,
            minted: computed.sheet.minted,
            fees: computed.sheet.fees,
            burned: computed.sheet.burned,
            devices: computed.sheet.lines.len() as u64,
            sheet_hash: computed.sheet.hash().to_vec(),
            claim_root: computed.claim_root.to_vec(),
        };
        let write = EpochWrite {
            sector_totals: computed.sector_rows(),
            lines: computed.line_rows(),
            entries: computed.entry_rows(),
            claims: computed.changed.clone(),
            sector_state: computed.sector_state.clone(),
            work: computed.work.clone(),
            charges: computed.charges.clone(),
        };
        tracing::debug!(
            epoch,
            ms = started.elapsed().as_millis() as u64,
            "close: computed"
        );
        close.commit(&row, &write).await?;
        tracing::debug!(
            epoch,
            ms = started.elapsed().as_millis() as u64,
            "close: committed"
        );
        self.last_closed.fetch_max(epoch as i64, Ordering::SeqCst);
        self.check_ledger().await?;
        metrics::counter!("depin_epochs_closed_total").increment(1);
        metrics::gauge!("depin_last_closed_epoch").set(epoch as f64);
        tracing::info!(
            epoch,
            minted = row.minted,
            devices = row.devices,
            "epoch closed"
        );
        Ok(CloseOutcome::Closed(summary))
    }

    /// Checks the ledger invariant over the stored balances: every balance sums
    /// to zero (double entry) and no holder account is negative. A violation
    /// means a bug; the coordinator refuses to continue from a suspect state.
    pub async fn check_ledger(&self) -> Result<(), CoordError> {
        check_ledger(&self.store).await
    }

    // ---------------------------------------------------------------- claims

    /// The claim tree of a closed epoch.
    pub async fn claim_tree(
        &self,
        epoch: EpochIndex,
    ) -> Result<depin_merkle::StandardMerkleTree, CoordError> {
        claim_tree(&self.store, epoch).await
    }
}

/// [`Coordinator::check_ledger`] on a store.
pub async fn check_ledger(store: &Store) -> Result<(), CoordError> {
    let mut total: i128 = 0;
    for (account, balance) in store.balances().await? {
        let parsed = depin_ledger::Account::parse_key(&account)
            .map_err(|e| CoordError::Invariant(format!("stored account {account:?}: {e}")))?;
        if parsed.is_holder() && balance < 0 {
            return Err(CoordError::Invariant(format!(
                "holder {account} has negative balance {balance}"
            )));
        }
        total += i128::from(balance);
    }
    if total != 0 {
        return Err(CoordError::Invariant(format!(
            "ledger balances sum to {total}, not 0"
        )));
    }
    Ok(())
}

pub async fn claim_tree(
    store: &Store,
    epoch: EpochIndex,
) -> Result<depin_merkle::StandardMerkleTree, CoordError> {
    if store.epoch(epoch).await?.is_none() {
        return Err(CoordError::NotFound(format!("epoch {epoch} is not closed")));
    }
    Ok(compute::claim_tree(&store.claims_as_of(epoch).await?))
}

/// What a registration outcome means to the caller.
fn registration_verdict(r: Registration) -> Result<(), CoordError> {
    let both = "a key cannot be both an operator key and a device key: \
                generate a separate device key";
    match r {
        Registration::Registered => Ok(()),
        Registration::DeviceKeyTaken => Err(CoordError::rejected(Reason::AlreadyRegistered)),
        Registration::DeviceKeyIsOperator => Err(CoordError::Rejected {
            reason: Reason::BadCertificate,
            message: format!("the device key is an operator key; {both}"),
        }),
        Registration::OperatorKeyIsDevice => Err(CoordError::Rejected {
            reason: Reason::BadCertificate,
            message: format!("the operator key is registered as a device key; {both}"),
        }),
        Registration::OldKeyInactive => Err(CoordError::Rejected {
            reason: Reason::RevokedDevice,
            message: "the old key is no longer active (revoked or rotated already)".into(),
        }),
    }
}

fn summarize(c: &ComputedEpoch) -> EpochSummary {
    EpochSummary {
        epoch: c.sheet.epoch,
        policy_id: c.sheet.policy_id.clone(),
        emission: c.sheet.emission,
        minted: c.sheet.minted,
        fees: c.sheet.fees,
        burned: c.sheet.burned,
        devices: c.sheet.lines.len() as u64,
        rewarded: c.sheet.lines.iter().filter(|l| l.reward > 0).count() as u64,
        sheet_hash: hex::encode(c.sheet.hash()),
        claim_root: depin_merkle::to_hex(&c.claim_root),
        per_sector: c.sheet.per_sector.clone(),
    }
}

struct Admitted {
    outcome: IngestOutcome,
    rejections: Vec<RejectionRow>,
    reports: Vec<NewReport>,
    report_index: Vec<u32>,
}

/// A report after the stateless checks. Most are `Valid`, so boxing the
/// large variant would only add an allocation per report on the hot path.
#[allow(clippy::large_enum_variant)]
enum Checked {
    /// Signature verified; the heartbeat when it is one (for telemetry) and
    /// what the kind's decoder found.
    Valid(Signed, Option<Heartbeat>, depin_protocol::Checked),
    /// Why it was refused. The signer it claims is deliberately not kept:
    /// nothing unverified is attributed to anyone.
    Invalid(Reason),
}

/// Splits a batch, decodes every report through the kind table and verifies
/// all signatures in one ed25519 batch verification.
fn check_signatures(
    kinds: &depin_protocol::KindTable,
    batch: &[u8],
) -> Result<Vec<Checked>, CoordError> {
    let raws = decode_batch(batch, MAX_BATCH_REPORTS).map_err(|reason| CoordError::Rejected {
        reason,
        message: format!("the body is not a report batch of at most {MAX_BATCH_REPORTS} reports"),
    })?;
    let mut out: Vec<Checked> = Vec::with_capacity(raws.len());
    let mut to_verify = Vec::with_capacity(raws.len());
    // (position in `out`, heartbeat, decoder findings) for each report to verify.
    let mut slots: Vec<(usize, Option<Heartbeat>, depin_protocol::Checked)> =
        Vec::with_capacity(raws.len());
    for raw in &raws {
        let s = match decode_signed(raw) {
            Ok(s) => s,
            Err(reason) => {
                out.push(Checked::Invalid(reason));
                continue;
            }
        };
        let found = kinds.check_report(s.envelope.kind, &s.envelope.payload);
        let heartbeat = match (&found, s.envelope.kind) {
            (Ok(_), PayloadKind::Heartbeat) => Heartbeat::decode(&s.envelope.payload).ok(),
            _ => None,
        };
        match found {
            Ok(info) => {
                slots.push((out.len(), heartbeat, info));
                out.push(Checked::Invalid(Reason::Malformed)); // replaced below
                to_verify.push(s);
            }
            Err(reason) => out.push(Checked::Invalid(reason)),
        }
    }
    let verdicts = verify_batch(&to_verify);
    for (((slot, hb, info), signed), verdict) in slots.into_iter().zip(to_verify).zip(verdicts) {
        out[slot] = match verdict {
            Ok(()) => Checked::Valid(signed, hb, info),
            Err(reason) => Checked::Invalid(reason),
        };
    }
    Ok(out)
}
