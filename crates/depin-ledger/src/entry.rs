//! Ledger entries: one movement of value between two accounts.

use crate::{Account, LedgerError};
use depin_core::Amount;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why value moved. Each kind admits exactly one shape of (debit, credit)
/// accounts, checked by [`EntryKind::fits`]:
///
/// | kind | debit → credit |
/// |---|---|
/// | `Emission` | `Mint` → `Operator` |
/// | `Deposit` | `External` → `Escrow(c)` |
/// | `Withdraw` | `Escrow` / `Operator` / `Protocol` → `External` |
/// | `Lock` | `Escrow(c)` → `Locked{c, order}` |
/// | `Refund` | `Locked{c, order}` → `Escrow(c)` |
/// | `Settle` | `Locked` → `Operator` |
/// | `Fee` | `Locked` → `Protocol` |
/// | `Burn` | any holder → `Burn` |
/// | `CreditBurn` | `Escrow(c)` → `Burn` (a data-credit purchase) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Emission,
    Deposit,
    Withdraw,
    Lock,
    Refund,
    Settle,
    Fee,
    Burn,
    /// Free escrow burned for data credits. Its own kind, apart from the
    /// protocol's fee burns, so supply reports can tell what consumers
    /// destroyed for service from what fees destroyed.
    CreditBurn,
}

impl EntryKind {
    pub const ALL: [EntryKind; 9] = [
        EntryKind::Emission,
        EntryKind::Deposit,
        EntryKind::Withdraw,
        EntryKind::Lock,
        EntryKind::Refund,
        EntryKind::Settle,
        EntryKind::Fee,
        EntryKind::Burn,
        EntryKind::CreditBurn,
    ];

    /// Stable string form stored in SQL; never renamed once released.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Emission => "emission",
            EntryKind::Deposit => "deposit",
            EntryKind::Withdraw => "withdraw",
            EntryKind::Lock => "lock",
            EntryKind::Refund => "refund",
            EntryKind::Settle => "settle",
            EntryKind::Fee => "fee",
            EntryKind::Burn => "burn",
            EntryKind::CreditBurn => "credit_burn",
        }
    }

    pub fn parse(s: &str) -> Result<EntryKind, LedgerError> {
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| LedgerError::BadKind(s.to_string()))
    }

    /// Whether an entry of this kind may move value from `debit` to `credit`.
    pub fn fits(self, debit: &Account, credit: &Account) -> bool {
        use Account as A;
        match self {
            EntryKind::Emission => matches!((debit, credit), (A::Mint, A::Operator(_))),
            EntryKind::Deposit => matches!((debit, credit), (A::External, A::Escrow(_))),
            EntryKind::Withdraw => {
                matches!(
                    (debit, credit),
                    (A::Escrow(_) | A::Operator(_) | A::Protocol, A::External)
                )
            }
            EntryKind::Lock => {
                matches!((debit, credit), (A::Escrow(c), A::Locked { consumer, .. }) if c == consumer)
            }
            EntryKind::Refund => {
                matches!((debit, credit), (A::Locked { consumer, .. }, A::Escrow(c)) if c == consumer)
            }
            EntryKind::Settle => matches!((debit, credit), (A::Locked { .. }, A::Operator(_))),
            EntryKind::Fee => matches!((debit, credit), (A::Locked { .. }, A::Protocol)),
            EntryKind::Burn => debit.is_holder() && *credit == A::Burn,
            EntryKind::CreditBurn => matches!((debit, credit), (A::Escrow(_), A::Burn)),
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EntryKind {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::parse(s)
    }
}

/// One movement of `amount` base units from `debit` to `credit`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub debit: Account,
    pub credit: Account,
    pub amount: Amount,
    pub kind: EntryKind,
}

impl Entry {
    pub fn new(kind: EntryKind, debit: Account, credit: Account, amount: Amount) -> Self {
        Entry {
            debit,
            credit,
            amount,
            kind,
        }
    }

    /// The checks that need no balances: non-zero amount, two distinct
    /// accounts, and a (debit, credit) shape the kind admits.
    pub fn check_shape(&self) -> Result<(), LedgerError> {
        if self.amount == 0 {
            return Err(LedgerError::ZeroAmount);
        }
        if self.debit == self.credit {
            return Err(LedgerError::SelfTransfer(self.debit.clone()));
        }
        if !self.kind.fits(&self.debit, &self.credit) {
            return Err(LedgerError::KindMismatch {
                kind: self.kind,
                debit: self.debit.clone(),
                credit: self.credit.clone(),
            });
        }
        Ok(())
    }
}
