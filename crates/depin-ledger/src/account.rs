//! Ledger accounts and their stable string keys.

use crate::LedgerError;
use depin_core::PublicKey;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where value sits. Three accounts are *boundaries* of the system and the rest
/// are *holders*:
///
/// | account | role | balance |
/// |---|---|---|
/// | `Mint` | source of newly issued tokens (epoch emission) | `−minted`, never positive |
/// | `External` | the chain boundary: tokens brought in by deposits and taken out by withdrawals | `exported − imported`, any sign |
/// | `Burn` | sink of destroyed tokens (protocol fees) | `+burned`, never debited |
/// | `Protocol`, `Operator`, `Escrow`, `Locked` | holders | never negative |
///
/// The derived `Ord` (variant order, then fields) is the order of
/// [`crate::Ledger::balances`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Issues epoch emission. Goes negative by definition.
    Mint,
    /// Destroys tokens. Can only be credited.
    Burn,
    /// Tokens entering (deposits) or leaving (withdrawals, claims) the ledger
    /// through the chain. May go negative (net inflow) or positive (net outflow).
    External,
    /// The protocol's own account: fees pass through it on their way to `Burn`.
    Protocol,
    /// An operator's earnings (emission and settled usage fees).
    Operator(PublicKey),
    /// A consumer's free prepaid balance.
    Escrow(PublicKey),
    /// Part of a consumer's prepaid balance locked for one order or job.
    Locked { consumer: PublicKey, order: u64 },
}

impl Account {
    /// Whether the account holds value (and so must never go negative), as
    /// opposed to the `Mint`, `External` and `Burn` boundaries.
    pub fn is_holder(&self) -> bool {
        matches!(
            self,
            Account::Protocol | Account::Operator(_) | Account::Escrow(_) | Account::Locked { .. }
        )
    }

    /// The stable string form stored in SQL: `mint`, `burn`, `external`,
    /// `protocol`, `operator:<hex>`, `escrow:<hex>`, `locked:<hex>:<order>`.
    /// Never changed once released; [`Account::parse_key`] is its inverse.
    pub fn to_key(&self) -> String {
        match self {
            Account::Mint => "mint".to_string(),
            Account::Burn => "burn".to_string(),
            Account::External => "external".to_string(),
            Account::Protocol => "protocol".to_string(),
            Account::Operator(k) => format!("operator:{}", k.to_hex()),
            Account::Escrow(k) => format!("escrow:{}", k.to_hex()),
            Account::Locked { consumer, order } => format!("locked:{}:{order}", consumer.to_hex()),
        }
    }

    /// Parses [`Account::to_key`]'s output. Strict: lowercase hex of exactly 32
    /// bytes and a decimal order without sign or leading zeros, so every account
    /// has exactly one key.
    pub fn parse_key(s: &str) -> Result<Self, LedgerError> {
        let bad = || LedgerError::BadAccountKey(s.to_string());
        let key = |h: &str| -> Result<PublicKey, LedgerError> {
            if h.len() != 64 || h.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad());
            }
            h.parse::<PublicKey>().map_err(|_| bad())
        };
        let mut parts = s.split(':');
        let head = parts.next().unwrap_or_default();
        let rest: Vec<&str> = parts.collect();
        let account = match (head, rest.as_slice()) {
            ("mint", []) => Account::Mint,
            ("burn", []) => Account::Burn,
            ("external", []) => Account::External,
            ("protocol", []) => Account::Protocol,
            ("operator", [h]) => Account::Operator(key(h)?),
            ("escrow", [h]) => Account::Escrow(key(h)?),
            ("locked", [h, order]) => {
                let canonical = !order.is_empty()
                    && order.bytes().all(|b| b.is_ascii_digit())
                    && (*order == "0" || !order.starts_with('0'));
                if !canonical {
                    return Err(bad());
                }
                Account::Locked {
                    consumer: key(h)?,
                    order: order.parse().map_err(|_| bad())?,
                }
            }
            _ => return Err(bad()),
        };
        Ok(account)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_key())
    }
}

impl FromStr for Account {
    type Err = LedgerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Account::parse_key(s)
    }
}
