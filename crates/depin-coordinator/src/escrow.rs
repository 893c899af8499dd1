//! Consumers' money besides emission: deposits into escrow from an external
//! payment reference, and signed locks of escrow per order. Settlement
//! happens at epoch close (see `compute::finish`), never here.

use crate::{CoordError, Coordinator};
use depin_core::{EpochIndex, PublicKey, Reason, UnixMillis};
use depin_protocol::{OrderLock, PayloadKind};
use depin_store::{EscrowRefusal, NewDeposit, NewOrder, OrderRow, Recorded};
use serde::Serialize;

/// Longest external payment reference, in bytes.
pub const MAX_EXTERNAL_REF_LEN: usize = 128;

/// A lock the store holds, as its signer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockedOrder {
    pub consumer: PublicKey,
    pub order: u64,
    pub sector: depin_core::Sector,
    pub amount: u64,
    /// The first epoch whose close may charge it (later than asked when the
    /// asked one was already closed or closing).
    pub first_epoch: EpochIndex,
    pub last_epoch: EpochIndex,
    /// `false` when the same signed lock was recorded before: nothing changed.
    pub new: bool,
}

/// A consumer's escrow: free balance and orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerView {
    pub consumer: PublicKey,
    /// Free escrow: deposited, not locked.
    pub escrow: u64,
    pub orders: Vec<OrderView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub order: u64,
    pub sector: String,
    pub amount: u64,
    pub charged: u64,
    pub first_epoch: EpochIndex,
    pub last_epoch: EpochIndex,
    /// `open` while a close may still charge it, `settled` after the close of
    /// its last epoch (which refunded what was left).
    pub state: &'static str,
}

fn refused(reason: Reason, message: impl Into<String>) -> CoordError {
    CoordError::Rejected {
        reason,
        message: message.into(),
    }
}

/// A payment reference is 1–128 bytes of printable ASCII without spaces, so
/// it is the same string in every log, table and shell.
pub fn check_external_ref(r: &str) -> Result<(), CoordError> {
    if r.is_empty() || r.len() > MAX_EXTERNAL_REF_LEN || !r.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refused(
            Reason::BadPayload,
            format!(
                "an external reference is 1 to {MAX_EXTERNAL_REF_LEN} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

/// Credits a consumer's deposit from an external payment (a devnet faucet,
/// or whoever operates the coordinator after a payment arrived; `depin escrow
/// deposit` calls this on the store directly). The same reference again is a
/// no-op (`Recorded::Again`); with another consumer or amount it is refused as
/// `deposit_conflict`. The ledger invariant is checked afterwards.
pub async fn record_deposit(
    store: &depin_store::Store,
    now_ms: UnixMillis,
    consumer: PublicKey,
    amount: u64,
    external_ref: &str,
) -> Result<Recorded, CoordError> {
    check_external_ref(external_ref)?;
    if amount == 0 || amount > depin_protocol::limits::MAX_STORED {
        return Err(refused(
            Reason::OutOfRange,
            format!(
                "a deposit is 1 to {} base units",
                depin_protocol::limits::MAX_STORED
            ),
        ));
    }
    let outcome = store
        .record_deposit(&NewDeposit {
            external_ref: external_ref.to_string(),
            consumer,
            amount,
            recorded_ms: now_ms,
        })
        .await?;
    match outcome {
        Ok(r) => {
            if r == Recorded::New {
                metrics::counter!("depin_deposits_total").increment(1);
            }
            crate::check_ledger(store).await?;
            Ok(r)
        }
        Err(_) => Err(refused(
            Reason::DepositConflict,
            format!(
                "external reference {external_ref:?} was already credited to another consumer or with another amount; nothing changed"
            ),
        )),
    }
}

impl Coordinator {
    /// Credits a consumer's deposit: [`record_deposit`] on this coordinator's
    /// store.
    pub async fn record_deposit(
        &self,
        now_ms: UnixMillis,
        consumer: PublicKey,
        amount: u64,
        external_ref: &str,
    ) -> Result<Recorded, CoordError> {
        record_deposit(&self.store, now_ms, consumer, amount, external_ref).await
    }

    /// Locks escrow for an order, from the consumer's signed `OrderLock`.
    pub async fn lock_order(
        &self,
        now_ms: UnixMillis,
        bytes: &[u8],
    ) -> Result<LockedOrder, CoordError> {
        let signed = self.signed_message(now_ms, bytes, PayloadKind::OrderLock)?;
        let lock: OrderLock = signed
            .envelope
            .decode_payload()
            .map_err(CoordError::rejected)?;
        let consumer = signed.envelope.signer;
        if !self
            .sectors
            .verifiers
            .iter()
            .any(|v| v.sector() == lock.sector)
        {
            return Err(refused(
                Reason::BadPayload,
                format!("sector {} is not served here", lock.sector),
            ));
        }
        let outcome = self
            .store
            .lock_order(&NewOrder {
                consumer,
                order_id: lock.order,
                sector: lock.sector.code(),
                amount: lock.amount,
                first_epoch: lock.first_epoch,
                last_epoch: lock.last_epoch,
                terms: lock.terms.clone(),
                envelope: bytes.to_vec(),
                recorded_ms: now_ms,
            })
            .await?;
        let (recorded, first_epoch) = outcome.map_err(|r| match r {
            EscrowRefusal::InsufficientEscrow => refused(
                Reason::InsufficientEscrow,
                format!(
                    "the escrow of {consumer} holds less than {} base units free; deposit first",
                    lock.amount
                ),
            ),
            EscrowRefusal::OrderConflict => refused(
                Reason::OrderConflict,
                format!(
                    "order {} of {consumer} exists with other terms; use a new order number",
                    lock.order
                ),
            ),
            EscrowRefusal::OrderTooLate => refused(
                Reason::OrderTooLate,
                format!(
                    "epochs {}..={} are closed or closing; ask for later epochs",
                    lock.first_epoch, lock.last_epoch
                ),
            ),
            EscrowRefusal::DepositConflict => {
                refused(Reason::DepositConflict, "not a deposit".to_string())
            }
        })?;
        if recorded == Recorded::New {
            metrics::counter!("depin_orders_locked_total").increment(1);
        }
        Ok(LockedOrder {
            consumer,
            order: lock.order,
            sector: lock.sector,
            amount: lock.amount,
            first_epoch,
            last_epoch: lock.last_epoch,
            new: recorded == Recorded::New,
        })
    }

    /// A consumer's free escrow and orders.
    pub async fn consumer(&self, consumer: &PublicKey) -> Result<ConsumerView, CoordError> {
        let escrow = self
            .store
            .balance(&depin_ledger::Account::Escrow(*consumer).to_key())
            .await?;
        let last_closed = self.last_closed_epoch();
        let orders = self
            .store
            .orders_of(consumer)
            .await?
            .iter()
            .map(|o: &OrderRow| OrderView {
                order: o.order_id,
                sector: depin_core::Sector::from_code(o.sector)
                    .map_or_else(|| o.sector.to_string(), |s| s.to_string()),
                amount: o.amount,
                charged: o.charged,
                first_epoch: o.first_epoch,
                last_epoch: o.last_epoch,
                state: if last_closed.is_some_and(|c| c >= o.last_epoch) {
                    "settled"
                } else {
                    "open"
                },
            })
            .collect();
        Ok(ConsumerView {
            consumer: *consumer,
            escrow: u64::try_from(escrow).unwrap_or(0),
            orders,
        })
    }
}
