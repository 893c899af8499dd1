//! What an epoch's reward computation reads, through one loader shared by
//! the close (inside its transaction) and `audit-epoch` (on the pool).

use crate::devices::{DEVICE_COLUMNS, device_from_row};
use crate::epochs::epoch_row;
use crate::ledger::claims_as_of;
use crate::reports::report_counts;
use crate::sector_state::sector_state_at;
use crate::{DeviceRow, Result, Store, StoreError, StoredReport, WorkRow};
use depin_core::{EpochIndex, PublicKey};
use std::collections::BTreeMap;

/// What to read for an epoch's reward computation.
#[derive(Clone, Debug)]
pub struct EpochInputQuery {
    pub epoch: EpochIndex,
    /// Devices registered before this instant (the epoch's end) take part.
    pub registered_before_ms: i64,
    /// The report kind counted per device (heartbeats), and the most a
    /// report may have arrived after its own timestamp to count.
    pub report_kind: u32,
    pub max_delay_ms: i64,
    /// The kinds whose reports are read raw, for the sector verifiers.
    pub kinds: Vec<u32>,
    /// Whose carried-over state to read from the previous epoch.
    pub states: Vec<String>,
}

/// Everything an epoch's reward computation reads from the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochInputRows {
    /// Ordered by key.
    pub devices: Vec<DeviceRow>,
    /// Qualifying reports per device, ordered by key.
    pub report_counts: Vec<(PublicKey, u64)>,
    /// The epoch's reports of the query's `kinds`, in (device, seq) order.
    pub reports: Vec<StoredReport>,
    /// Each named verifier's (state version, state) after the previous
    /// epoch; absent at epoch 0 or when it stored none.
    pub prior_states: BTreeMap<String, (u32, Vec<u8>)>,
    /// The claim leaves as of the previous epoch.
    pub previous_claims: Vec<(PublicKey, u64)>,
    /// The previous epoch's claim root, if it was closed: the entropy's seed.
    pub previous_root: Option<[u8; 32]>,
    /// Work orders whose deadline falls in the epoch, with their answers.
    pub due_work: Vec<DueWork>,
    /// Consumers' orders the close may charge, in (consumer, order) order,
    /// each with what earlier closes charged.
    pub orders: Vec<crate::OrderRow>,
}

/// The one loader of an epoch's inputs: the close calls it inside its
/// transaction, `audit-epoch` on a read-only store, so the two can never
/// read different things (they used to be written twice, in lockstep).
pub(crate) async fn load_epoch_inputs(
    conn: &mut sqlx::AnyConnection,
    q: &EpochInputQuery,
) -> Result<EpochInputRows> {
    let rows = sqlx::query(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE registered_ms < $1 ORDER BY device"
    ))
    .bind(q.registered_before_ms)
    .fetch_all(&mut *conn)
    .await?;
    let devices = rows.iter().map(device_from_row).collect::<Result<_>>()?;
    let report_counts = report_counts(&mut *conn, q.epoch, q.report_kind, q.max_delay_ms).await?;
    let reports = crate::work::reports_of_kinds(&mut *conn, q.epoch, &q.kinds).await?;
    let mut prior_states = BTreeMap::new();
    let mut previous_claims = Vec::new();
    let mut previous_root = None;
    if let Some(prev) = q.epoch.checked_sub(1) {
        for name in &q.states {
            if let Some(state) = sector_state_at(&mut *conn, name, prev).await? {
                prior_states.insert(name.clone(), state);
            }
        }
        previous_claims = claims_as_of(&mut *conn, prev).await?;
        if let Some(row) = epoch_row(&mut *conn, prev).await? {
            // A close in progress has an empty root until it commits; the
            // loader only runs for the next epoch once that one is closed.
            previous_root = Some(
                row.claim_root
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("claim root is not 32 bytes".into()))?,
            );
        }
    }
    let due_work = crate::work::due_work(&mut *conn, q.epoch).await?;
    let orders = crate::escrow::open_orders(&mut *conn, q.epoch).await?;
    Ok(EpochInputRows {
        orders,
        devices,
        report_counts,
        reports,
        prior_states,
        previous_claims,
        previous_root,
        due_work,
    })
}

/// A work order that fell due in an epoch, with its answering report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueWork {
    pub work: WorkRow,
    pub answer: Option<StoredReport>,
}

impl Store {
    /// An epoch's inputs outside a close (for `audit-epoch`), through the
    /// same loader as the close.
    pub async fn epoch_inputs(&self, q: &EpochInputQuery) -> Result<EpochInputRows> {
        load_epoch_inputs(&mut *self.pool.acquire().await?, q).await
    }
}
