//! Consumers' escrow (migration 0005): deposits credited from an external
//! payment reference, orders that lock part of the escrow for one sector, and
//! the charges the close settles against them. Every movement is also a
//! ledger entry, written with the running balances in the same transaction
//! by [`write_entries`], which refuses any holder balance going negative.

use crate::LedgerEntryRow;
use crate::{
    Backend, Result, Store, StoreError, Val, insert_many, key_from_row, to_i64, u64_from_row,
};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;
use std::collections::BTreeMap;

/// A deposit to credit: `amount` base units from an external payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeposit {
    /// The payment's reference (a payment id, a chain transaction hash):
    /// the same reference is credited at most once.
    pub external_ref: String,
    pub consumer: PublicKey,
    pub amount: u64,
    pub recorded_ms: i64,
}

/// A consumer's signed lock of escrow for one order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub consumer: PublicKey,
    pub order_id: u64,
    /// The sector code whose verifier may charge it.
    pub sector: u32,
    pub amount: u64,
    /// The first epoch the consumer asks to be served in; the store moves it
    /// past any epoch already closed or closing, since those closes cannot
    /// see the order any more.
    pub first_epoch: EpochIndex,
    pub last_epoch: EpochIndex,
    pub terms: Vec<u8>,
    /// The signed lock as received.
    pub envelope: Vec<u8>,
    pub recorded_ms: i64,
}

/// An order as stored, with what earlier closes charged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRow {
    pub consumer: PublicKey,
    pub order_id: u64,
    pub sector: u32,
    pub amount: u64,
    pub first_epoch: EpochIndex,
    pub last_epoch: EpochIndex,
    pub terms: Vec<u8>,
    /// Charged by closes before the epoch the row was read for (all closes,
    /// for [`Store::orders_of`]).
    pub charged: u64,
}

/// One usage share the close settles (see migration 0005).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChargeRow {
    pub consumer: PublicKey,
    pub order_id: u64,
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: u32,
    pub gross: u64,
}

/// What became of a deposit or a lock that the store did not refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Written now.
    New,
    /// Already written, identically: a retry, nothing changed.
    Again,
}

/// Why the store refused a deposit or a lock; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscrowRefusal {
    /// The external reference was credited before with another consumer or
    /// amount.
    DepositConflict,
    /// The consumer's free escrow is smaller than the lock.
    InsufficientEscrow,
    /// The consumer already has this order number with other terms.
    OrderConflict,
    /// Every epoch the order names is closed or closing.
    OrderTooLate,
}

const ORDER_COLUMNS: &str =
    "o.consumer, o.order_id, o.sector, o.amount, o.first_epoch, o.last_epoch, o.terms";

fn order_from_row(r: &sqlx::any::AnyRow) -> Result<OrderRow> {
    Ok(OrderRow {
        consumer: key_from_row(r.try_get(0)?)?,
        order_id: u64_from_row(r.try_get(1)?, "order id")?,
        sector: u32::try_from(r.try_get::<i64, _>(2)?)
            .map_err(|_| StoreError::Corrupt("order sector".into()))?,
        amount: u64_from_row(r.try_get(3)?, "order amount")?,
        first_epoch: u64_from_row(r.try_get(4)?, "order first epoch")?,
        last_epoch: u64_from_row(r.try_get(5)?, "order last epoch")?,
        terms: r.try_get(6)?,
        charged: u64_from_row(r.try_get::<Option<i64>, _>(7)?.unwrap_or(0), "charged")?,
    })
}

/// Whether a ledger account key names a holder (which may never go
/// negative), as opposed to the `mint`, `burn` and `external` boundaries.
fn is_holder(account: &str) -> bool {
    !matches!(account, "mint" | "burn" | "external")
}

/// Appends ledger entries filed under `epoch` and moves the running balances
/// by their deltas, in account order (so two transactions touching the same
/// accounts lock them in the same order and cannot deadlock). A holder
/// account left negative is refused as [`StoreError::Overdraft`]; the caller
/// rolls back, so nothing is written.
pub(crate) async fn write_entries(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
    entries: &[LedgerEntryRow],
) -> Result<()> {
    let e = to_i64(epoch)?;
    let rows: Vec<Vec<Val>> = entries
        .iter()
        .map(|x| {
            vec![
                e.into(),
                x.debit.as_str().into(),
                x.credit.as_str().into(),
                x.amount.into(),
                x.kind.as_str().into(),
            ]
        })
        .collect();
    insert_many(
        &mut *conn,
        "INSERT INTO ledger_entries (epoch, debit, credit, amount, kind)",
        "",
        5,
        &rows,
    )
    .await?;
    let mut deltas: BTreeMap<&str, i128> = BTreeMap::new();
    for x in entries {
        *deltas.entry(x.debit.as_str()).or_default() -= i128::from(x.amount);
        *deltas.entry(x.credit.as_str()).or_default() += i128::from(x.amount);
    }
    let balance_rows: Vec<Vec<Val>> = deltas
        .iter()
        .map(|(a, d)| {
            Ok(vec![
                (*a).into(),
                Val::Int(
                    i64::try_from(*d)
                        .map_err(|_| StoreError::Corrupt("balance delta overflow".into()))?,
                ),
            ])
        })
        .collect::<Result<_>>()?;
    insert_many(
        &mut *conn,
        "INSERT INTO balances (account, balance)",
        "ON CONFLICT (account) DO UPDATE SET balance = balances.balance + excluded.balance",
        2,
        &balance_rows,
    )
    .await?;
    for (account, delta) in &deltas {
        if *delta >= 0 || !is_holder(account) {
            continue;
        }
        let balance: i64 = sqlx::query_scalar("SELECT balance FROM balances WHERE account = $1")
            .bind(*account)
            .fetch_one(&mut *conn)
            .await?;
        if balance < 0 {
            return Err(StoreError::Overdraft {
                account: account.to_string(),
                balance,
            });
        }
    }
    Ok(())
}

pub(crate) fn entry(kind: &str, debit: String, credit: String, amount: u64) -> LedgerEntryRow {
    LedgerEntryRow {
        debit,
        credit,
        amount,
        kind: kind.into(),
    }
}

/// The first epoch not closed yet, whatever the clock: where a movement
/// outside any close (a deposit, a credit burn, a withdrawal) is filed.
pub(crate) async fn first_open_epoch(conn: &mut sqlx::AnyConnection) -> Result<EpochIndex> {
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(epoch) FROM epochs")
        .fetch_one(conn)
        .await?;
    Ok(match newest {
        Some(n) => u64_from_row(n, "epoch")? + 1,
        None => 0,
    })
}

impl Store {
    /// Credits a deposit to the consumer's free escrow (`External → Escrow`,
    /// kind `deposit`), once per external reference. Amount 0 is refused by
    /// the caller; out-of-range amounts here.
    pub async fn record_deposit(
        &self,
        d: &NewDeposit,
    ) -> Result<std::result::Result<Recorded, EscrowRefusal>> {
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO deposits (external_ref, consumer, amount, recorded_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (external_ref) DO NOTHING",
        )
        .bind(d.external_ref.as_str())
        .bind(d.consumer.0.to_vec())
        .bind(to_i64(d.amount)?)
        .bind(d.recorded_ms)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            let r = sqlx::query("SELECT consumer, amount FROM deposits WHERE external_ref = $1")
                .bind(d.external_ref.as_str())
                .fetch_one(tx.conn())
                .await?;
            let same = key_from_row(r.try_get(0)?)? == d.consumer
                && u64_from_row(r.try_get(1)?, "deposit amount")? == d.amount;
            tx.rollback().await?;
            return Ok(if same {
                Ok(Recorded::Again)
            } else {
                Err(EscrowRefusal::DepositConflict)
            });
        }
        tx.step("deposit:row")?;
        let escrow = format!("escrow:{}", d.consumer.to_hex());
        let epoch = first_open_epoch(tx.conn()).await?;
        write_entries(
            tx.conn(),
            epoch,
            &[entry("deposit", "external".into(), escrow, d.amount)],
        )
        .await?;
        tx.step("deposit:ledger")?;
        tx.commit().await?;
        Ok(Ok(Recorded::New))
    }

    /// Locks `amount` of the consumer's free escrow for an order (`Escrow →
    /// Locked`, kind `lock`). The same signed lock again is `Again`; another
    /// lock under the same order number is refused.
    pub async fn lock_order(
        &self,
        o: &NewOrder,
    ) -> Result<std::result::Result<(Recorded, EpochIndex), EscrowRefusal>> {
        let mut tx = self.write_tx().await?;
        if let Some(r) = sqlx::query(
            "SELECT envelope, first_epoch FROM orders WHERE consumer = $1 AND order_id = $2",
        )
        .bind(o.consumer.0.to_vec())
        .bind(to_i64(o.order_id)?)
        .fetch_optional(tx.conn())
        .await?
        {
            let same = r.try_get::<Vec<u8>, _>(0)? == o.envelope;
            let first = u64_from_row(r.try_get(1)?, "order first epoch")?;
            tx.rollback().await?;
            return Ok(if same {
                Ok((Recorded::Again, first))
            } else {
                Err(EscrowRefusal::OrderConflict)
            });
        }
        // An epoch whose close has begun can no longer see the order: start
        // after the newest one. On PostgreSQL a close in progress is not
        // visible yet, so take its epoch's lock (as the close does) before
        // looking, and look again after any close that held it.
        let mut first = o.first_epoch;
        loop {
            if self.backend == Backend::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(crate::epochs::epoch_lock_key(first))
                    .execute(tx.conn())
                    .await?;
            }
            let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(epoch) FROM epochs")
                .fetch_one(tx.conn())
                .await?;
            match newest.map(|n| u64_from_row(n, "epoch")).transpose()? {
                Some(n) if n >= first => first = n + 1,
                _ => break,
            }
            if first > o.last_epoch {
                break;
            }
        }
        if first > o.last_epoch {
            tx.rollback().await?;
            return Ok(Err(EscrowRefusal::OrderTooLate));
        }
        let lock_sql = match self.backend {
            Backend::Sqlite => "SELECT balance FROM balances WHERE account = $1",
            // Two locks on one escrow wait for each other instead of both
            // reading the same balance.
            Backend::Postgres => "SELECT balance FROM balances WHERE account = $1 FOR UPDATE",
        };
        let escrow = format!("escrow:{}", o.consumer.to_hex());
        let free: Option<i64> = sqlx::query_scalar(lock_sql)
            .bind(escrow.as_str())
            .fetch_optional(tx.conn())
            .await?;
        if u64::try_from(free.unwrap_or(0)).unwrap_or(0) < o.amount {
            tx.rollback().await?;
            return Ok(Err(EscrowRefusal::InsufficientEscrow));
        }
        sqlx::query(
            "INSERT INTO orders (consumer, order_id, sector, amount, first_epoch, last_epoch, terms, envelope, recorded_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(o.consumer.0.to_vec())
        .bind(to_i64(o.order_id)?)
        .bind(i64::from(o.sector))
        .bind(to_i64(o.amount)?)
        .bind(to_i64(first)?)
        .bind(to_i64(o.last_epoch)?)
        .bind(o.terms.clone())
        .bind(o.envelope.clone())
        .bind(o.recorded_ms)
        .execute(tx.conn())
        .await?;
        tx.step("lock:order")?;
        let locked = format!("locked:{}:{}", o.consumer.to_hex(), o.order_id);
        // Filed under the order's first epoch: the lock exists before any
        // close that may charge it.
        write_entries(tx.conn(), first, &[entry("lock", escrow, locked, o.amount)]).await?;
        tx.step("lock:ledger")?;
        tx.commit().await?;
        Ok(Ok((Recorded::New, first)))
    }

    /// The consumer's orders, newest number first, with everything charged
    /// so far.
    pub async fn orders_of(&self, consumer: &PublicKey) -> Result<Vec<OrderRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS}, (SELECT CAST(SUM(c.gross) AS BIGINT) FROM charges c \
             WHERE c.consumer = o.consumer AND c.order_id = o.order_id) \
             FROM orders o WHERE o.consumer = $1 ORDER BY o.order_id DESC LIMIT 1000"
        ))
        .bind(consumer.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_from_row).collect()
    }

    /// The charges settled at the close of `epoch`, in key order.
    pub async fn charges(&self, epoch: EpochIndex) -> Result<Vec<ChargeRow>> {
        let rows = sqlx::query(
            "SELECT consumer, order_id, device, operator, sector, gross FROM charges \
             WHERE epoch = $1 ORDER BY consumer, order_id, device",
        )
        .bind(to_i64(epoch)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ChargeRow {
                    consumer: key_from_row(r.try_get(0)?)?,
                    order_id: u64_from_row(r.try_get(1)?, "order id")?,
                    device: key_from_row(r.try_get(2)?)?,
                    operator: key_from_row(r.try_get(3)?)?,
                    sector: u32::try_from(r.try_get::<i64, _>(4)?)
                        .map_err(|_| StoreError::Corrupt("charge sector".into()))?,
                    gross: u64_from_row(r.try_get(5)?, "charge")?,
                })
            })
            .collect()
    }
}

/// The orders the close of `epoch` may charge (`first_epoch ≤ epoch ≤
/// last_epoch`), in (consumer, order) order, each with what closes before
/// `epoch` charged, so the close and a later audit read the same remainder.
pub(crate) async fn open_orders(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
) -> Result<Vec<OrderRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS}, (SELECT CAST(SUM(c.gross) AS BIGINT) FROM charges c \
         WHERE c.consumer = o.consumer AND c.order_id = o.order_id AND c.epoch < $1) \
         FROM orders o WHERE o.first_epoch <= $1 AND o.last_epoch >= $1 \
         ORDER BY o.consumer, o.order_id"
    ))
    .bind(to_i64(epoch)?)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(order_from_row).collect()
}

/// Writes the close's charges.
pub(crate) async fn write_charges(
    conn: &mut sqlx::AnyConnection,
    epoch: EpochIndex,
    charges: &[ChargeRow],
) -> Result<()> {
    let e = to_i64(epoch)?;
    let rows: Vec<Vec<Val>> = charges
        .iter()
        .map(|c| {
            vec![
                e.into(),
                (&c.consumer).into(),
                c.order_id.into(),
                (&c.device).into(),
                (&c.operator).into(),
                c.sector.into(),
                c.gross.into(),
            ]
        })
        .collect();
    insert_many(
        conn,
        "INSERT INTO charges (epoch, consumer, order_id, device, operator, sector, gross)",
        "",
        7,
        &rows,
    )
    .await?;
    Ok(())
}

/// The kinds of ledger entry an epoch close writes (the others — deposits,
/// locks, credit burns and withdrawals — are filed under an epoch but written
/// outside its close).
pub const CLOSE_ENTRY_KINDS: [&str; 5] = ["emission", "settle", "fee", "burn", "refund"];
