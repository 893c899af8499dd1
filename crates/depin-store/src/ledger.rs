//! Reads of the double-entry ledger: entries, balances and the cumulative
//! claims (the writes are in the close and in `escrow`).

use crate::{Result, Store, key_and_u64_from_row, to_i64, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntryRow {
    pub debit: String,
    pub credit: String,
    pub amount: u64,
    pub kind: String,
}

impl Store {
    /// Every account's cumulative claimable amount as of `epoch`: the leaves of
    /// that epoch's claim tree, ordered by account.
    pub async fn claims_as_of(&self, epoch: EpochIndex) -> Result<Vec<(PublicKey, u64)>> {
        claims_as_of(&mut *self.pool.acquire().await?, epoch).await
    }

    pub async fn ledger_entries(&self, epoch: EpochIndex) -> Result<Vec<LedgerEntryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE epoch = $1 ORDER BY id"
        ))
        .bind(to_i64(epoch)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// All ledger entries in order, for replaying the ledger from scratch.
    pub async fn all_ledger_entries(&self) -> Result<Vec<LedgerEntryRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from_row).collect()
    }

    pub async fn balance(&self, account: &str) -> Result<i64> {
        balance(&mut *self.pool.acquire().await?, account).await
    }

    pub async fn balances(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT account, balance FROM balances ORDER BY account")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

const ENTRY_COLUMNS: &str = "debit, credit, amount, kind";

fn entry_from_row(r: &AnyRow) -> Result<LedgerEntryRow> {
    Ok(LedgerEntryRow {
        debit: r.try_get(0)?,
        credit: r.try_get(1)?,
        amount: u64_from_row(r.try_get(2)?, "amount")?,
        kind: r.try_get(3)?,
    })
}

pub(crate) async fn claims_as_of(
    conn: &mut AnyConnection,
    epoch: EpochIndex,
) -> Result<Vec<(PublicKey, u64)>> {
    // Only accounts that changed are written each epoch; the leaves as of an
    // epoch are each account's latest row at or before it.
    let rows = sqlx::query(
        "SELECT c.account, c.cumulative FROM claims c \
         JOIN (SELECT account, MAX(epoch) AS e FROM claims WHERE epoch <= $1 GROUP BY account) m \
         ON c.account = m.account AND c.epoch = m.e ORDER BY c.account",
    )
    .bind(to_i64(epoch)?)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| key_and_u64_from_row(r, "cumulative"))
        .collect()
}

/// An account's running balance; 0 for an account no entry has touched.
pub(crate) async fn balance(conn: &mut AnyConnection, account: &str) -> Result<i64> {
    let r: Option<i64> = sqlx::query_scalar("SELECT balance FROM balances WHERE account = $1")
        .bind(account)
        .fetch_optional(conn)
        .await?;
    Ok(r.unwrap_or(0))
}
