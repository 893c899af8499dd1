//! Append-only double-entry ledger of the network's money (DESIGN invariants 2 and 3).
//!
//! # Model
//!
//! Every movement of value is an [`Entry`]: `amount` base units (an integer,
//! never a float) move from the `debit` account to the `credit` account, for a
//! reason given by its [`EntryKind`]. Balances are signed (`i128`) so the sum of
//! all balances is zero after every entry: that is what double-entry means here.
//!
//! Tokens enter and leave the ledger at three boundary accounts, and sit in
//! holder accounts in between (see [`Account`]):
//!
//! - **`Mint`** issues epoch emission to operators. Its balance is `−minted`.
//! - **`External`** is the chain. A consumer's deposit brings tokens that already
//!   exist on chain into their escrow (`External → Escrow`, kind `Deposit`), and a
//!   withdrawal or claim takes them out again (`… → External`, kind `Withdraw`).
//!   A deposit is *not* a mint: treating it as one would inflate `minted` and
//!   break the supply numbers the devnet summary reports. `imported` and
//!   `exported` count the two directions separately.
//! - **`Burn`** destroys tokens (the protocol's share of usage fees). Its
//!   balance is `+burned` and it can never be debited.
//!
//! The invariant [`Ledger::check_invariant`] verifies, which DESIGN invariant 3
//! states for a closed system, is therefore:
//!
//! ```text
//! Σ balances(all accounts)     == 0
//! Σ balances(holder accounts)  == minted − burned + imported − exported
//! balance(Mint) == −minted,  balance(Burn) == burned,  balance(External) == exported − imported
//! every holder balance         >= 0
//! ```
//!
//! # Consumer money flow (DESIGN "Money flows besides emission")
//!
//! ```text
//! External ─deposit─▶ Escrow(c) ─lock─▶ Locked{c, order} ─settle─▶ Operator(o)
//!                        ▲                 │   │
//!                        └─────refund──────┘   └─fee─▶ Protocol ─burn─▶ Burn
//!
//! Escrow(c) ─credit_burn─▶ Burn        (data credits bought, see below)
//! Escrow(c) ─withdraw─▶ External       (paid out on chain by the runner)
//! ```
//!
//! [`deposit`], [`lock`], [`settle`], [`refund`], [`credit_burn`] and
//! [`withdraw`] build these entries; they
//! are pure and do not check balances — [`Ledger::apply_batch`] does, all or
//! nothing.
//!
//! # Rejections
//!
//! [`Ledger::apply`] rejects, without changing any state: a zero amount (an
//! entry that moves nothing is always an upstream bug, and the helpers never
//! produce one), a transfer from an account to itself, a (debit, credit) pair the
//! kind does not admit ([`EntryKind::fits`]), an overdraft of any holder account,
//! and arithmetic overflow.

mod account;
mod entry;

pub use account::Account;
pub use entry::{Entry, EntryKind};

use depin_core::{Amount, PublicKey};
use std::collections::BTreeMap;

/// Basis points in one whole (100%).
pub const BPS_DENOMINATOR: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("an entry must move a positive amount")]
    ZeroAmount,
    #[error("an entry cannot move value from {0} to itself")]
    SelfTransfer(Account),
    #[error("a {kind} entry cannot move value from {debit} to {credit}")]
    KindMismatch {
        kind: EntryKind,
        debit: Account,
        credit: Account,
    },
    #[error("{account} holds {balance} base units, cannot pay {amount}")]
    Overdraft {
        account: Account,
        balance: i128,
        amount: Amount,
    },
    #[error("ledger arithmetic overflow")]
    Overflow,
    #[error(
        "not a ledger account key: {0:?} (expected mint, burn, external, protocol, operator:<hex>, escrow:<hex> or locked:<hex>:<order>)"
    )]
    BadAccountKey(String),
    #[error("not an entry kind: {0:?}")]
    BadKind(String),
    #[error("ledger invariant violated: {0}")]
    InvariantViolated(String),
}

/// The protocol's share of a usage fee: `floor(gross × bps / 10_000)`, with
/// `bps` capped at 10 000. Rounding favours the operator. `depin-rewards` uses
/// this same function for its reward sheet, so the sheet and the ledger agree
/// to the base unit.
pub fn protocol_fee(gross: Amount, bps: u32) -> Amount {
    let bps = u64::from(bps).min(BPS_DENOMINATOR);
    // gross × bps < 2^64 × 2^14 fits in u128; the quotient is ≤ gross.
    (u128::from(gross) * u128::from(bps) / u128::from(BPS_DENOMINATOR)) as Amount
}

/// Totals for reports such as the devnet summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub minted: u128,
    pub burned: u128,
    pub imported: u128,
    pub exported: u128,
    /// Sum of all holder balances.
    pub held: i128,
}

/// The balances produced by replaying entries in order. It keeps no entry
/// history itself: the store persists the entries (append-only), and
/// [`Ledger::from_entries`] rebuilds this value from them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    balances: BTreeMap<Account, i128>,
    minted: u128,
    burned: u128,
    imported: u128,
    exported: u128,
    entries: u64,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replays stored entries; fails on the first one that would be rejected.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Self, LedgerError> {
        let mut ledger = Ledger::new();
        for e in entries {
            ledger.apply(e)?;
        }
        Ok(ledger)
    }

    /// Applies one entry, or rejects it and changes nothing.
    pub fn apply(&mut self, e: &Entry) -> Result<(), LedgerError> {
        self.apply_batch(std::slice::from_ref(e))
    }

    /// Applies entries in order as one unit: if any is rejected (checked against
    /// the balances left by the ones before it), none is applied.
    pub fn apply_batch(&mut self, entries: &[Entry]) -> Result<(), LedgerError> {
        // Stage the touched balances in a small overlay so a rejection leaves the
        // ledger untouched without cloning it.
        let mut staged: BTreeMap<&Account, i128> = BTreeMap::new();
        let (mut minted, mut burned, mut imported, mut exported) =
            (self.minted, self.burned, self.imported, self.exported);
        for e in entries {
            e.check_shape()?;
            let amount = i128::from(e.amount);
            let debit_before = *staged
                .entry(&e.debit)
                .or_insert_with(|| self.balance(&e.debit));
            if e.debit.is_holder() && debit_before < amount {
                return Err(LedgerError::Overdraft {
                    account: e.debit.clone(),
                    balance: debit_before,
                    amount: e.amount,
                });
            }
            let debit_after = debit_before
                .checked_sub(amount)
                .ok_or(LedgerError::Overflow)?;
            staged.insert(&e.debit, debit_after);
            let credit_before = *staged
                .entry(&e.credit)
                .or_insert_with(|| self.balance(&e.credit));
            let credit_after = credit_before
                .checked_add(amount)
                .ok_or(LedgerError::Overflow)?;
            staged.insert(&e.credit, credit_after);
            let counter = match e.kind {
                EntryKind::Emission => &mut minted,
                EntryKind::Burn | EntryKind::CreditBurn => &mut burned,
                EntryKind::Deposit => &mut imported,
                EntryKind::Withdraw => &mut exported,
                _ => continue,
            };
            *counter = counter
                .checked_add(u128::from(e.amount))
                .ok_or(LedgerError::Overflow)?;
        }
        for (account, balance) in staged {
            if balance == 0 {
                // Keep the map to accounts that hold something: a settled order's
                // Locked account disappears instead of lingering at zero.
                self.balances.remove(account);
            } else if let Some(b) = self.balances.get_mut(account) {
                *b = balance;
            } else {
                self.balances.insert(account.clone(), balance);
            }
        }
        (self.minted, self.burned, self.imported, self.exported) =
            (minted, burned, imported, exported);
        self.entries += entries.len() as u64;
        Ok(())
    }

    pub fn balance(&self, a: &Account) -> i128 {
        self.balances.get(a).copied().unwrap_or(0)
    }

    /// Total emission ever issued by `Mint`.
    pub fn minted(&self) -> u128 {
        self.minted
    }

    /// Total ever destroyed into `Burn`.
    pub fn burned(&self) -> u128 {
        self.burned
    }

    /// Total ever brought in from the chain by deposits.
    pub fn imported(&self) -> u128 {
        self.imported
    }

    /// Total ever taken out to the chain by withdrawals.
    pub fn exported(&self) -> u128 {
        self.exported
    }

    /// Number of entries applied.
    pub fn entry_count(&self) -> u64 {
        self.entries
    }

    /// Non-zero balances in account order (see [`Account`]'s `Ord`).
    pub fn balances(&self) -> impl Iterator<Item = (&Account, i128)> {
        self.balances.iter().map(|(a, b)| (a, *b))
    }

    pub fn totals(&self) -> LedgerTotals {
        LedgerTotals {
            minted: self.minted,
            burned: self.burned,
            imported: self.imported,
            exported: self.exported,
            held: self
                .balances
                .iter()
                .filter(|(a, _)| a.is_holder())
                .map(|(_, b)| *b)
                .sum(),
        }
    }

    /// Checks the double-entry invariant described in the module docs.
    pub fn check_invariant(&self) -> Result<(), LedgerError> {
        let bad = |m: String| Err(LedgerError::InvariantViolated(m));
        let mut total: i128 = 0;
        let mut held: i128 = 0;
        for (account, balance) in &self.balances {
            if account.is_holder() {
                if *balance < 0 {
                    return bad(format!("holder {account} is negative: {balance}"));
                }
                held += balance;
            }
            total += balance;
        }
        // The counters are bounded by the i128 balances they mirror (apply
        // rejects overflow), so these conversions cannot fail in a valid ledger.
        let as_i128 = |x: u128| i128::try_from(x).map_err(|_| LedgerError::Overflow);
        let (minted, burned) = (as_i128(self.minted)?, as_i128(self.burned)?);
        let (imported, exported) = (as_i128(self.imported)?, as_i128(self.exported)?);
        if total != 0 {
            return bad(format!("balances sum to {total}, not 0"));
        }
        if self.balance(&Account::Mint) != -minted {
            return bad(format!(
                "mint balance {} but minted {minted}",
                self.balance(&Account::Mint)
            ));
        }
        if self.balance(&Account::Burn) != burned {
            return bad(format!(
                "burn balance {} but burned {burned}",
                self.balance(&Account::Burn)
            ));
        }
        if self.balance(&Account::External) != exported - imported {
            return bad(format!(
                "external balance {} but exported {exported} − imported {imported}",
                self.balance(&Account::External)
            ));
        }
        let expected = minted - burned + imported - exported;
        if held != expected {
            return bad(format!(
                "holders sum to {held}, expected minted − burned + imported − exported = {expected}"
            ));
        }
        Ok(())
    }
}

/// A consumer's deposit of on-chain tokens into their free escrow balance.
pub fn deposit(consumer: PublicKey, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::Deposit,
        Account::External,
        Account::Escrow(consumer),
        amount,
    )
}

/// Locks part of a consumer's escrow for one order or job.
pub fn lock(consumer: PublicKey, order: u64, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::Lock,
        Account::Escrow(consumer),
        Account::Locked { consumer, order },
        amount,
    )
}

/// Returns locked escrow of an order to the consumer's free balance (order
/// cancelled, or the unspent part after settlement).
pub fn refund(consumer: PublicKey, order: u64, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::Refund,
        Account::Locked { consumer, order },
        Account::Escrow(consumer),
        amount,
    )
}

/// Settles usage fees of one order at epoch close. Each `(operator, gross)`
/// share is paid `gross − protocol_fee(gross, bps)` from the order's locked
/// escrow; the protocol fees go to `Protocol` and are burned there. Fees are
/// computed per share, so to agree with the reward sheet to the base unit pass
/// one share per device (as `FeeSettlement` lists them).
///
/// Entries, in order: one `Settle` per share with a positive net amount, then
/// one `Fee` and one `Burn` for the summed protocol fee (split into several
/// pairs only if the sum would exceed `u64`). Zero amounts are left out. Apply
/// the result with [`Ledger::apply_batch`] so a short lock rejects it whole.
pub fn settle(
    consumer: PublicKey,
    order: u64,
    operator_shares: &[(PublicKey, Amount)],
    protocol_fee_bps: u32,
) -> Vec<Entry> {
    let locked = Account::Locked { consumer, order };
    let mut entries = Vec::with_capacity(operator_shares.len() + 2);
    let mut fees: Vec<Amount> = vec![0];
    for (operator, gross) in operator_shares {
        let fee = protocol_fee(*gross, protocol_fee_bps);
        let net = gross - fee;
        if net > 0 {
            entries.push(Entry::new(
                EntryKind::Settle,
                locked.clone(),
                Account::Operator(*operator),
                net,
            ));
        }
        let last = fees.last_mut().expect("fees starts non-empty");
        match last.checked_add(fee) {
            Some(sum) => *last = sum,
            None => fees.push(fee),
        }
    }
    for fee in fees.into_iter().filter(|f| *f > 0) {
        entries.push(Entry::new(
            EntryKind::Fee,
            locked.clone(),
            Account::Protocol,
            fee,
        ));
        entries.push(Entry::new(
            EntryKind::Burn,
            Account::Protocol,
            Account::Burn,
            fee,
        ));
    }
    entries
}

/// Free escrow burned for data credits (see [`burn_for_credits`]).
pub fn credit_burn(consumer: PublicKey, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::CreditBurn,
        Account::Escrow(consumer),
        Account::Burn,
        amount,
    )
}

/// Free escrow leaving for the chain: a consumer's withdrawal, recorded when
/// it is asked for (the runner then pays it out).
pub fn withdraw(consumer: PublicKey, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::Withdraw,
        Account::Escrow(consumer),
        Account::External,
        amount,
    )
}

/// Micro-USD (10^-6 USD) in one USD: the unit of token and credit prices.
pub const MICRO_USD_PER_USD: u64 = 1_000_000;

/// Base units to burn for `credits` data credits priced at
/// `credit_price_micro_usd` each, when one token costs
/// `token_price_micro_usd`:
///
/// ```text
/// ceil(credits × credit_price × 10^6 / token_price)
/// ```
///
/// (10^6 base units per token). Rounded up, so the consumer never gets a
/// credit for less than its USD price. Exact integers: the product is formed
/// in u128 (it is below 2^64 · 2^64), and a zero token price or a result
/// beyond what the store keeps (`max`, i64::MAX in practice) is refused as
/// [`LedgerError::Overflow`] rather than rounded.
pub fn burn_for_credits(
    credits: u64,
    credit_price_micro_usd: u64,
    token_price_micro_usd: u64,
    max: Amount,
) -> Result<Amount, LedgerError> {
    if token_price_micro_usd == 0 {
        return Err(LedgerError::Overflow);
    }
    let usd_micro = u128::from(credits) * u128::from(credit_price_micro_usd);
    let numerator = usd_micro
        .checked_mul(u128::from(depin_core::BASE_UNITS_PER_TOKEN))
        .ok_or(LedgerError::Overflow)?;
    let burn = numerator.div_ceil(u128::from(token_price_micro_usd));
    Amount::try_from(burn)
        .ok()
        .filter(|b| *b <= max)
        .ok_or(LedgerError::Overflow)
}

/// Emission paid to an operator at epoch close.
pub fn emission(operator: PublicKey, amount: Amount) -> Entry {
    Entry::new(
        EntryKind::Emission,
        Account::Mint,
        Account::Operator(operator),
        amount,
    )
}

#[cfg(test)]
mod tests;
