//! Data credits and withdrawals (migration 0009): the token price whoever
//! runs the coordinator records, consumers' purchases of data credits (free
//! escrow burned), the credits they hold and spend, and withdrawals of free
//! escrow to a chain address until the runner has paid them out.
//!
//! Like deposits and locks, every movement of tokens is a ledger entry
//! written in the same transaction by [`write_entries`]. Credits are not
//! tokens: they live in `credit_balances` only, can never be moved to another
//! consumer, and can never go negative.
//!
//! What decides a price or a limit is the caller's; this module only keeps
//! the facts and refuses what would break them (a second purchase under the
//! same id with other terms, a spend beyond the balance, an overdraft).

use crate::escrow::{entry, first_open_epoch, write_entries};
use crate::{Backend, Recorded, Result, Store, StoreError, key_from_row, to_i64, u64_from_row};
use depin_core::PublicKey;
use sqlx::Row;

/// Longest purpose of a credit spend and longest chain reference of a
/// payout, in bytes.
pub const MAX_CREDIT_TEXT_LEN: usize = 256;

/// A token price to record: `usd_micro` micro-USD per whole token, in force
/// from `effective_ms` until a later one takes over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTokenPrice {
    pub effective_ms: i64,
    pub usd_micro: u64,
    /// Where the figure comes from (an exchange, an oracle, "manual").
    pub source: String,
    pub recorded_ms: i64,
}

/// A recorded token price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPriceRow {
    /// Rises with every record: among prices with the same effective time,
    /// the highest id is in force.
    pub id: u64,
    pub effective_ms: i64,
    pub usd_micro: u64,
    pub source: String,
    pub recorded_ms: i64,
}

/// A consumer's signed purchase of data credits, with the credit price in
/// force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPurchase {
    pub consumer: PublicKey,
    pub purchase_id: u64,
    pub credits: u64,
    /// The most base units the consumer accepts to burn.
    pub max_burn: u64,
    pub credit_price_micro_usd: u64,
    /// The signed purchase as received.
    pub envelope: Vec<u8>,
    /// The purchase is priced at the token price in force at this time.
    pub recorded_ms: i64,
}

/// A purchase as stored: what was bought, what was burned, at which prices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurchaseRow {
    pub consumer: PublicKey,
    pub purchase_id: u64,
    pub credits: u64,
    pub max_burn: u64,
    pub burned: u64,
    pub token_price_micro_usd: u64,
    pub credit_price_micro_usd: u64,
    pub recorded_ms: i64,
}

/// Why the store refused a purchase; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurchaseRefusal {
    /// The consumer bought under this id before, with other credits or limit.
    Conflict,
    /// No token price is in force at the purchase's time.
    NoTokenPrice,
    /// The burn (or the credits balance after it) does not fit the store's
    /// integers.
    Overflow,
    /// The burn would exceed the consumer's limit.
    BurnAboveLimit {
        burn: u64,
        token_price_micro_usd: u64,
    },
    /// The consumer's free escrow is smaller than the burn.
    InsufficientEscrow { burn: u64, free: u64 },
}

/// Why the store refused a spend of credits; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendRefusal {
    /// The consumer holds fewer credits than the spend.
    InsufficientCredits { held: u64 },
    /// This (consumer, purpose) was spent before with another amount.
    Conflict,
    /// Zero credits, more than the store keeps, or a purpose that is empty,
    /// longer than [`MAX_CREDIT_TEXT_LEN`] or not printable.
    Invalid,
}

/// What a spend left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spent {
    /// `Again` when this (consumer, purpose) was spent before, identically:
    /// nothing was charged now.
    pub recorded: Recorded,
    /// Credits the consumer holds afterwards.
    pub left: u64,
}

/// A consumer's signed withdrawal of free escrow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWithdrawal {
    pub consumer: PublicKey,
    pub withdrawal_id: u64,
    pub amount: u64,
    pub destination: Vec<u8>,
    /// The signed withdrawal as received.
    pub envelope: Vec<u8>,
    pub requested_ms: i64,
}

/// A withdrawal as stored; `paid` once the runner recorded its payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawalRow {
    pub consumer: PublicKey,
    pub withdrawal_id: u64,
    pub amount: u64,
    pub destination: Vec<u8>,
    pub requested_ms: i64,
    /// The chain reference and the time it was recorded.
    pub paid: Option<(String, i64)>,
}

/// Why the store refused a withdrawal; nothing was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithdrawalRefusal {
    /// The consumer asked under this id before, with another amount or
    /// destination.
    Conflict,
    /// The consumer's free escrow is smaller than the amount.
    InsufficientEscrow { free: u64 },
}

/// Why the store refused to mark a withdrawal paid; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutRefusal {
    /// No such withdrawal.
    Unknown,
    /// Already marked paid with this other chain reference.
    PaidElsewhere(String),
    /// An empty, overlong or unprintable chain reference.
    Invalid,
}

/// Printable text of 1 to [`MAX_CREDIT_TEXT_LEN`] bytes: the same string in
/// every log, table and shell.
fn is_label(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_CREDIT_TEXT_LEN && !s.chars().any(char::is_control)
}

const PRICE_COLUMNS: &str = "id, effective_ms, usd_micro, source, recorded_ms";

fn price_from_row(r: &sqlx::any::AnyRow) -> Result<TokenPriceRow> {
    Ok(TokenPriceRow {
        id: u64_from_row(r.try_get(0)?, "price id")?,
        effective_ms: r.try_get(1)?,
        usd_micro: u64_from_row(r.try_get(2)?, "token price")?,
        source: r.try_get(3)?,
        recorded_ms: r.try_get(4)?,
    })
}

const PURCHASE_COLUMNS: &str = "consumer, purchase_id, credits, max_burn, burned, \
     token_price_micro_usd, credit_price_micro_usd, recorded_ms";

fn purchase_from_row(r: &sqlx::any::AnyRow) -> Result<PurchaseRow> {
    Ok(PurchaseRow {
        consumer: key_from_row(r.try_get(0)?)?,
        purchase_id: u64_from_row(r.try_get(1)?, "purchase id")?,
        credits: u64_from_row(r.try_get(2)?, "credits")?,
        max_burn: u64_from_row(r.try_get(3)?, "max burn")?,
        burned: u64_from_row(r.try_get(4)?, "burned")?,
        token_price_micro_usd: u64_from_row(r.try_get(5)?, "token price")?,
        credit_price_micro_usd: u64_from_row(r.try_get(6)?, "credit price")?,
        recorded_ms: r.try_get(7)?,
    })
}

const WITHDRAWAL_COLUMNS: &str =
    "consumer, withdrawal_id, amount, destination, requested_ms, paid_ref, paid_ms";

fn withdrawal_from_row(r: &sqlx::any::AnyRow) -> Result<WithdrawalRow> {
    let paid_ref: Option<String> = r.try_get(5)?;
    let paid_ms: Option<i64> = r.try_get(6)?;
    Ok(WithdrawalRow {
        consumer: key_from_row(r.try_get(0)?)?,
        withdrawal_id: u64_from_row(r.try_get(1)?, "withdrawal id")?,
        amount: u64_from_row(r.try_get(2)?, "withdrawal amount")?,
        destination: r.try_get(3)?,
        requested_ms: r.try_get(4)?,
        paid: match (paid_ref, paid_ms) {
            (Some(r), Some(t)) => Some((r, t)),
            (None, None) => None,
            _ => return Err(StoreError::Corrupt("withdrawal paid half-way".into())),
        },
    })
}

/// The consumer's free escrow, locked for the rest of the transaction on
/// PostgreSQL so two purchases or withdrawals of one consumer wait for each
/// other instead of both reading the same balance (SQLite's `BEGIN
/// IMMEDIATE` already serialises writers).
async fn lock_free_escrow(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    escrow: &str,
) -> Result<u64> {
    let sql = match backend {
        Backend::Sqlite => "SELECT balance FROM balances WHERE account = $1",
        Backend::Postgres => "SELECT balance FROM balances WHERE account = $1 FOR UPDATE",
    };
    let free: Option<i64> = sqlx::query_scalar(sql)
        .bind(escrow)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(u64::try_from(free.unwrap_or(0)).unwrap_or(0))
}

impl Store {
    /// Appends a token price. Prices are never edited: a correction is a new
    /// row with the same effective time (the newest row wins).
    pub async fn record_token_price(&self, p: &NewTokenPrice) -> Result<TokenPriceRow> {
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO token_prices (effective_ms, usd_micro, source, recorded_ms) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(p.effective_ms)
        .bind(to_i64(p.usd_micro)?)
        .bind(p.source.as_str())
        .bind(p.recorded_ms)
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(TokenPriceRow {
            id: u64_from_row(id, "price id")?,
            effective_ms: p.effective_ms,
            usd_micro: p.usd_micro,
            source: p.source.clone(),
            recorded_ms: p.recorded_ms,
        })
    }

    /// Recorded token prices, newest effective time first (at most `limit`).
    pub async fn token_prices(&self, limit: u32) -> Result<Vec<TokenPriceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PRICE_COLUMNS} FROM token_prices ORDER BY effective_ms DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(price_from_row).collect()
    }

    /// The token price in force at `t_ms`, if any was recorded by then.
    pub async fn token_price_at(&self, t_ms: i64) -> Result<Option<TokenPriceRow>> {
        let mut conn = self.pool.acquire().await?;
        price_at(&mut *conn, t_ms).await
    }

    /// Buys data credits: burns `burn_for(token price)` base units of the
    /// consumer's free escrow (`Escrow → Burn`, kind `credit_burn`) and adds
    /// the credits to the consumer's balance, priced at the token price in
    /// force at `recorded_ms`. `burn_for` is the pricing rule (the caller's:
    /// `depin_ledger::burn_for_credits`); `None` from it means the burn does
    /// not fit, refused as [`PurchaseRefusal::Overflow`].
    ///
    /// Idempotent per (consumer, purchase id): the same credits and limit
    /// again answer with the stored purchase (`Again`), whatever the price
    /// is now; other terms are [`PurchaseRefusal::Conflict`].
    pub async fn buy_credits(
        &self,
        p: &NewPurchase,
        burn_for: impl Fn(u64) -> Option<u64>,
    ) -> Result<std::result::Result<(Recorded, PurchaseRow), PurchaseRefusal>> {
        let mut tx = self.write_tx().await?;
        let escrow = format!("escrow:{}", p.consumer.to_hex());
        let free = lock_free_escrow(tx.conn(), self.backend, &escrow).await?;
        if let Some(r) = sqlx::query(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM credit_purchases WHERE consumer = $1 AND purchase_id = $2"
        ))
        .bind(p.consumer.0.to_vec())
        .bind(to_i64(p.purchase_id)?)
        .fetch_optional(tx.conn())
        .await?
        {
            let stored = purchase_from_row(&r)?;
            tx.rollback().await?;
            return Ok(
                if (stored.credits, stored.max_burn) == (p.credits, p.max_burn) {
                    Ok((Recorded::Again, stored))
                } else {
                    Err(PurchaseRefusal::Conflict)
                },
            );
        }
        let Some(price) = price_at(tx.conn(), p.recorded_ms).await? else {
            tx.rollback().await?;
            return Ok(Err(PurchaseRefusal::NoTokenPrice));
        };
        let burn = match burn_for(price.usd_micro) {
            Some(b) if i64::try_from(b).is_ok() => b,
            _ => {
                tx.rollback().await?;
                return Ok(Err(PurchaseRefusal::Overflow));
            }
        };
        if burn > p.max_burn {
            tx.rollback().await?;
            return Ok(Err(PurchaseRefusal::BurnAboveLimit {
                burn,
                token_price_micro_usd: price.usd_micro,
            }));
        }
        if free < burn {
            tx.rollback().await?;
            return Ok(Err(PurchaseRefusal::InsufficientEscrow { burn, free }));
        }
        let held = credits_held(tx.conn(), &p.consumer).await?;
        if held
            .checked_add(p.credits)
            .is_none_or(|t| i64::try_from(t).is_err())
        {
            tx.rollback().await?;
            return Ok(Err(PurchaseRefusal::Overflow));
        }
        let row = PurchaseRow {
            consumer: p.consumer,
            purchase_id: p.purchase_id,
            credits: p.credits,
            max_burn: p.max_burn,
            burned: burn,
            token_price_micro_usd: price.usd_micro,
            credit_price_micro_usd: p.credit_price_micro_usd,
            recorded_ms: p.recorded_ms,
        };
        sqlx::query(&format!(
            "INSERT INTO credit_purchases ({PURCHASE_COLUMNS}, envelope) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(p.consumer.0.to_vec())
        .bind(to_i64(p.purchase_id)?)
        .bind(to_i64(p.credits)?)
        .bind(to_i64(p.max_burn)?)
        .bind(to_i64(burn)?)
        .bind(to_i64(price.usd_micro)?)
        .bind(to_i64(p.credit_price_micro_usd)?)
        .bind(p.recorded_ms)
        .bind(p.envelope.clone())
        .execute(tx.conn())
        .await?;
        tx.step("credits:purchase")?;
        sqlx::query(
            "INSERT INTO credit_balances (consumer, credits) VALUES ($1, $2) \
             ON CONFLICT (consumer) DO UPDATE SET credits = credit_balances.credits + excluded.credits",
        )
        .bind(p.consumer.0.to_vec())
        .bind(to_i64(p.credits)?)
        .execute(tx.conn())
        .await?;
        tx.step("credits:balance")?;
        let epoch = first_open_epoch(tx.conn()).await?;
        write_entries(
            tx.conn(),
            epoch,
            &[entry("credit_burn", escrow, "burn".into(), burn)],
        )
        .await?;
        tx.step("credits:ledger")?;
        tx.commit().await?;
        Ok(Ok((Recorded::New, row)))
    }

    /// Spends `credits` of a consumer's data credits on `purpose` (what the
    /// service was: `wireless:session:…`, `sensor:query:…`). This is the
    /// primitive the wireless and sensor sectors call when they meter
    /// service; nothing calls it over HTTP yet.
    ///
    /// The balance can never go negative: the decrement is one conditional
    /// `UPDATE` (`credits >= amount`), which PostgreSQL re-checks after any
    /// concurrent spend it waited for, and the column has a `CHECK`. A spend
    /// is recorded once per (consumer, purpose), so a retried spend charges
    /// nothing (`Again`); the same purpose with another amount is a
    /// [`SpendRefusal::Conflict`].
    pub async fn spend_credits(
        &self,
        consumer: &PublicKey,
        credits: u64,
        purpose: &str,
        spent_ms: i64,
    ) -> Result<std::result::Result<Spent, SpendRefusal>> {
        if credits == 0 || i64::try_from(credits).is_err() || !is_label(purpose) {
            return Ok(Err(SpendRefusal::Invalid));
        }
        let amount = to_i64(credits)?;
        let key = consumer.0.to_vec();
        let mut tx = self.write_tx().await?;
        let inserted = sqlx::query(
            "INSERT INTO credit_spends (consumer, purpose, credits, spent_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, purpose) DO NOTHING",
        )
        .bind(key.clone())
        .bind(purpose)
        .bind(amount)
        .bind(spent_ms)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if inserted == 0 {
            let before: i64 = sqlx::query_scalar(
                "SELECT credits FROM credit_spends WHERE consumer = $1 AND purpose = $2",
            )
            .bind(key.clone())
            .bind(purpose)
            .fetch_one(tx.conn())
            .await?;
            let left = credits_held(tx.conn(), consumer).await?;
            tx.rollback().await?;
            return Ok(if before == amount {
                Ok(Spent {
                    recorded: Recorded::Again,
                    left,
                })
            } else {
                Err(SpendRefusal::Conflict)
            });
        }
        tx.step("credits:spend")?;
        let taken = sqlx::query(
            "UPDATE credit_balances SET credits = credits - $2 WHERE consumer = $1 AND credits >= $2",
        )
        .bind(key.clone())
        .bind(amount)
        .execute(tx.conn())
        .await?
        .rows_affected();
        let left = credits_held(tx.conn(), consumer).await?;
        if taken == 0 {
            tx.rollback().await?;
            return Ok(Err(SpendRefusal::InsufficientCredits { held: left }));
        }
        tx.commit().await?;
        Ok(Ok(Spent {
            recorded: Recorded::New,
            left,
        }))
    }

    /// Data credits the consumer holds.
    pub async fn credits_of(&self, consumer: &PublicKey) -> Result<u64> {
        let mut conn = self.pool.acquire().await?;
        credits_held(&mut *conn, consumer).await
    }

    /// The consumer's purchases, newest id first (at most 1000).
    pub async fn purchases_of(&self, consumer: &PublicKey) -> Result<Vec<PurchaseRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {PURCHASE_COLUMNS} FROM credit_purchases WHERE consumer = $1 \
             ORDER BY purchase_id DESC LIMIT 1000"
        ))
        .bind(consumer.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(purchase_from_row).collect()
    }

    /// Records a withdrawal of free escrow to a chain address (`Escrow →
    /// External`, kind `withdraw`) as pending payout. Idempotent per
    /// (consumer, withdrawal id): the same amount and destination again
    /// answer with the stored withdrawal (`Again`); other terms are
    /// [`WithdrawalRefusal::Conflict`].
    pub async fn request_withdrawal(
        &self,
        w: &NewWithdrawal,
    ) -> Result<std::result::Result<(Recorded, WithdrawalRow), WithdrawalRefusal>> {
        let mut tx = self.write_tx().await?;
        let escrow = format!("escrow:{}", w.consumer.to_hex());
        let free = lock_free_escrow(tx.conn(), self.backend, &escrow).await?;
        if let Some(r) = sqlx::query(&format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE consumer = $1 AND withdrawal_id = $2"
        ))
        .bind(w.consumer.0.to_vec())
        .bind(to_i64(w.withdrawal_id)?)
        .fetch_optional(tx.conn())
        .await?
        {
            let stored = withdrawal_from_row(&r)?;
            tx.rollback().await?;
            return Ok(
                if (stored.amount, &stored.destination) == (w.amount, &w.destination) {
                    Ok((Recorded::Again, stored))
                } else {
                    Err(WithdrawalRefusal::Conflict)
                },
            );
        }
        if free < w.amount {
            tx.rollback().await?;
            return Ok(Err(WithdrawalRefusal::InsufficientEscrow { free }));
        }
        sqlx::query(
            "INSERT INTO withdrawals (consumer, withdrawal_id, amount, destination, envelope, requested_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(w.consumer.0.to_vec())
        .bind(to_i64(w.withdrawal_id)?)
        .bind(to_i64(w.amount)?)
        .bind(w.destination.clone())
        .bind(w.envelope.clone())
        .bind(w.requested_ms)
        .execute(tx.conn())
        .await?;
        tx.step("withdrawal:row")?;
        let epoch = first_open_epoch(tx.conn()).await?;
        write_entries(
            tx.conn(),
            epoch,
            &[entry("withdraw", escrow, "external".into(), w.amount)],
        )
        .await?;
        tx.step("withdrawal:ledger")?;
        tx.commit().await?;
        Ok(Ok((
            Recorded::New,
            WithdrawalRow {
                consumer: w.consumer,
                withdrawal_id: w.withdrawal_id,
                amount: w.amount,
                destination: w.destination.clone(),
                requested_ms: w.requested_ms,
                paid: None,
            },
        )))
    }

    /// Withdrawals not paid out yet, oldest first (at most `limit`): the
    /// runner's work list.
    pub async fn pending_withdrawals(&self, limit: u32) -> Result<Vec<WithdrawalRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE paid_ms IS NULL \
             ORDER BY requested_ms, consumer, withdrawal_id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(withdrawal_from_row).collect()
    }

    /// The consumer's withdrawals, newest id first (at most 1000).
    pub async fn withdrawals_of(&self, consumer: &PublicKey) -> Result<Vec<WithdrawalRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE consumer = $1 \
             ORDER BY withdrawal_id DESC LIMIT 1000"
        ))
        .bind(consumer.0.to_vec())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(withdrawal_from_row).collect()
    }

    /// Records that a withdrawal was paid out on chain under `chain_ref`.
    /// The same reference again is `Again`; another one is refused, so a
    /// payout is recorded once and never silently replaced.
    pub async fn mark_withdrawal_paid(
        &self,
        consumer: &PublicKey,
        withdrawal_id: u64,
        chain_ref: &str,
        paid_ms: i64,
    ) -> Result<std::result::Result<Recorded, PayoutRefusal>> {
        if !is_label(chain_ref) || chain_ref.contains(' ') {
            return Ok(Err(PayoutRefusal::Invalid));
        }
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE withdrawals SET paid_ref = $3, paid_ms = $4 \
             WHERE consumer = $1 AND withdrawal_id = $2 AND paid_ref IS NULL",
        )
        .bind(consumer.0.to_vec())
        .bind(to_i64(withdrawal_id)?)
        .bind(chain_ref)
        .bind(paid_ms)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if updated == 1 {
            tx.commit().await?;
            return Ok(Ok(Recorded::New));
        }
        let stored: Option<Option<String>> = sqlx::query_scalar(
            "SELECT paid_ref FROM withdrawals WHERE consumer = $1 AND withdrawal_id = $2",
        )
        .bind(consumer.0.to_vec())
        .bind(to_i64(withdrawal_id)?)
        .fetch_optional(tx.conn())
        .await?;
        tx.rollback().await?;
        Ok(match stored {
            None => Err(PayoutRefusal::Unknown),
            Some(Some(r)) if r == chain_ref => Ok(Recorded::Again),
            Some(Some(r)) => Err(PayoutRefusal::PaidElsewhere(r)),
            Some(None) => {
                return Err(StoreError::Corrupt(
                    "withdrawal unpaid after a paid update found none".into(),
                ));
            }
        })
    }
}

/// The token price in force at `t_ms`: the latest effective time at or
/// before it, the newest record among equals.
async fn price_at(conn: &mut sqlx::AnyConnection, t_ms: i64) -> Result<Option<TokenPriceRow>> {
    sqlx::query(&format!(
        "SELECT {PRICE_COLUMNS} FROM token_prices WHERE effective_ms <= $1 \
         ORDER BY effective_ms DESC, id DESC LIMIT 1"
    ))
    .bind(t_ms)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(price_from_row)
    .transpose()
}

async fn credits_held(conn: &mut sqlx::AnyConnection, consumer: &PublicKey) -> Result<u64> {
    let v: Option<i64> =
        sqlx::query_scalar("SELECT credits FROM credit_balances WHERE consumer = $1")
            .bind(consumer.0.to_vec())
            .fetch_optional(conn)
            .await?;
    u64_from_row(v.unwrap_or(0), "credits")
}
