//! Random operation sequences against a reference model written in plain
//! per-account arithmetic (no entries, no accounts), checked after every step.

use depin_core::PublicKey;
use depin_ledger::{
    Account, Entry, EntryKind, Ledger, credit_burn, deposit, emission, lock, refund, settle,
    withdraw,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Emit {
        operator: u8,
        amount: u64,
    },
    Deposit {
        consumer: u8,
        amount: u64,
    },
    Lock {
        consumer: u8,
        order: u64,
        amount: u64,
    },
    Settle {
        consumer: u8,
        order: u64,
        shares: Vec<(u8, u64)>,
        bps: u32,
    },
    Refund {
        consumer: u8,
        order: u64,
        amount: u64,
    },
    Burn {
        operator: u8,
        amount: u64,
    },
    Withdraw {
        operator: u8,
        amount: u64,
    },
    /// Free escrow burned for data credits.
    BuyCredits {
        consumer: u8,
        amount: u64,
    },
    /// Free escrow withdrawn to the chain.
    WithdrawEscrow {
        consumer: u8,
        amount: u64,
    },
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![1 => Just(0u64), 8 => 1..1_000u64, 1 => 1_000..100_000u64]
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..4u8;
    let order = 0..3u64;
    prop_oneof![
        (who.clone(), amount()).prop_map(|(operator, amount)| Op::Emit { operator, amount }),
        (who.clone(), amount()).prop_map(|(consumer, amount)| Op::Deposit { consumer, amount }),
        (who.clone(), order.clone(), amount()).prop_map(|(consumer, order, amount)| Op::Lock {
            consumer,
            order,
            amount
        }),
        (
            who.clone(),
            order.clone(),
            prop::collection::vec((0..4u8, amount()), 0..4),
            0..12_000u32
        )
            .prop_map(|(consumer, order, shares, bps)| Op::Settle {
                consumer,
                order,
                shares,
                bps
            }),
        (who.clone(), order, amount()).prop_map(|(consumer, order, amount)| Op::Refund {
            consumer,
            order,
            amount
        }),
        (who.clone(), amount()).prop_map(|(operator, amount)| Op::Burn { operator, amount }),
        (who.clone(), amount()).prop_map(|(operator, amount)| Op::Withdraw { operator, amount }),
        (who.clone(), amount()).prop_map(|(consumer, amount)| Op::BuyCredits { consumer, amount }),
        (who, amount()).prop_map(|(consumer, amount)| Op::WithdrawEscrow { consumer, amount }),
    ]
}

fn operator_key(i: u8) -> PublicKey {
    PublicKey([i + 1; 32])
}
fn consumer_key(i: u8) -> PublicKey {
    PublicKey([i + 101; 32])
}

/// The reference: balances of holders by role, and the four counters.
#[derive(Default, Debug)]
struct Model {
    operators: BTreeMap<u8, u128>,
    escrow: BTreeMap<u8, u128>,
    locked: BTreeMap<(u8, u64), u128>,
    minted: u128,
    burned: u128,
    imported: u128,
    exported: u128,
}

impl Model {
    /// Applies `op` if it is valid and says whether it was.
    fn step(&mut self, op: &Op) -> bool {
        fn take(bal: &mut u128, amount: u64) -> bool {
            if amount == 0 || *bal < amount as u128 {
                return false;
            }
            *bal -= amount as u128;
            true
        }
        match *op {
            Op::Emit { operator, amount } => {
                if amount == 0 {
                    return false;
                }
                *self.operators.entry(operator).or_default() += amount as u128;
                self.minted += amount as u128;
            }
            Op::Deposit { consumer, amount } => {
                if amount == 0 {
                    return false;
                }
                *self.escrow.entry(consumer).or_default() += amount as u128;
                self.imported += amount as u128;
            }
            Op::Lock {
                consumer,
                order,
                amount,
            } => {
                if !take(self.escrow.entry(consumer).or_default(), amount) {
                    return false;
                }
                *self.locked.entry((consumer, order)).or_default() += amount as u128;
            }
            Op::Refund {
                consumer,
                order,
                amount,
            } => {
                if !take(self.locked.entry((consumer, order)).or_default(), amount) {
                    return false;
                }
                *self.escrow.entry(consumer).or_default() += amount as u128;
            }
            Op::Settle {
                consumer,
                order,
                ref shares,
                bps,
            } => {
                let gross: u128 = shares.iter().map(|(_, g)| *g as u128).sum();
                let locked = self.locked.entry((consumer, order)).or_default();
                if *locked < gross {
                    return false;
                }
                *locked -= gross;
                for (operator, g) in shares {
                    let fee = *g as u128 * bps.min(10_000) as u128 / 10_000;
                    *self.operators.entry(*operator).or_default() += *g as u128 - fee;
                    self.burned += fee;
                }
            }
            Op::Burn { operator, amount } => {
                if !take(self.operators.entry(operator).or_default(), amount) {
                    return false;
                }
                self.burned += amount as u128;
            }
            Op::Withdraw { operator, amount } => {
                if !take(self.operators.entry(operator).or_default(), amount) {
                    return false;
                }
                self.exported += amount as u128;
            }
            Op::BuyCredits { consumer, amount } => {
                if !take(self.escrow.entry(consumer).or_default(), amount) {
                    return false;
                }
                self.burned += amount as u128;
            }
            Op::WithdrawEscrow { consumer, amount } => {
                if !take(self.escrow.entry(consumer).or_default(), amount) {
                    return false;
                }
                self.exported += amount as u128;
            }
        }
        true
    }
}

fn entries(op: &Op) -> Vec<Entry> {
    match *op {
        Op::Emit { operator, amount } => vec![emission(operator_key(operator), amount)],
        Op::Deposit { consumer, amount } => vec![deposit(consumer_key(consumer), amount)],
        Op::Lock {
            consumer,
            order,
            amount,
        } => vec![lock(consumer_key(consumer), order, amount)],
        Op::Refund {
            consumer,
            order,
            amount,
        } => vec![refund(consumer_key(consumer), order, amount)],
        Op::Settle {
            consumer,
            order,
            ref shares,
            bps,
        } => {
            let shares: Vec<_> = shares.iter().map(|(o, g)| (operator_key(*o), *g)).collect();
            settle(consumer_key(consumer), order, &shares, bps)
        }
        Op::Burn { operator, amount } => {
            vec![Entry::new(
                EntryKind::Burn,
                Account::Operator(operator_key(operator)),
                Account::Burn,
                amount,
            )]
        }
        Op::Withdraw { operator, amount } => {
            vec![Entry::new(
                EntryKind::Withdraw,
                Account::Operator(operator_key(operator)),
                Account::External,
                amount,
            )]
        }
        Op::BuyCredits { consumer, amount } => vec![credit_burn(consumer_key(consumer), amount)],
        Op::WithdrawEscrow { consumer, amount } => vec![withdraw(consumer_key(consumer), amount)],
    }
}

fn assert_matches_model(ledger: &Ledger, model: &Model) {
    let mut expected: BTreeMap<Account, i128> = BTreeMap::new();
    for (o, b) in &model.operators {
        expected.insert(Account::Operator(operator_key(*o)), *b as i128);
    }
    for (c, b) in &model.escrow {
        expected.insert(Account::Escrow(consumer_key(*c)), *b as i128);
    }
    for ((c, order), b) in &model.locked {
        expected.insert(
            Account::Locked {
                consumer: consumer_key(*c),
                order: *order,
            },
            *b as i128,
        );
    }
    expected.insert(Account::Mint, -(model.minted as i128));
    expected.insert(Account::Burn, model.burned as i128);
    expected.insert(
        Account::External,
        model.exported as i128 - model.imported as i128,
    );
    expected.retain(|_, b| *b != 0);
    let actual: BTreeMap<Account, i128> = ledger.balances().map(|(a, b)| (a.clone(), b)).collect();
    assert_eq!(actual, expected);
    assert_eq!(
        (
            ledger.minted(),
            ledger.burned(),
            ledger.imported(),
            ledger.exported()
        ),
        (model.minted, model.burned, model.imported, model.exported)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ledger_agrees_with_the_reference_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut ledger = Ledger::new();
        let mut model = Model::default();
        for op in &ops {
            let before = ledger.clone();
            let accepted = model.step(op);
            let result = ledger.apply_batch(&entries(op));
            // A settle of nothing is an empty batch: accepted by both.
            prop_assert_eq!(result.is_ok(), accepted, "op {:?}: ledger {:?}", op, result);
            if result.is_err() {
                prop_assert_eq!(&ledger, &before, "a rejected op changed state");
            }
            ledger.check_invariant().unwrap();
            for (account, balance) in ledger.balances() {
                if !matches!(account, Account::Mint | Account::External) {
                    prop_assert!(balance >= 0, "{} negative", account);
                }
            }
            assert_matches_model(&ledger, &model);
        }
        prop_assert_eq!(Ledger::from_entries(&[]).unwrap(), Ledger::new());
    }
}
