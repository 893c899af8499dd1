use super::*;

fn pk(b: u8) -> PublicKey {
    PublicKey([b; 32])
}

/// Applies `e` and expects `err`, and that nothing changed.
fn check_rejects(ledger: &mut Ledger, e: Entry, err: LedgerError) {
    let before = ledger.clone();
    assert_eq!(ledger.apply(&e), Err(err));
    assert_eq!(*ledger, before, "a rejected entry must not change state");
}

fn funded() -> Ledger {
    let mut l = Ledger::new();
    l.apply(&emission(pk(1), 1_000)).unwrap();
    l.apply(&deposit(pk(9), 500)).unwrap();
    l.apply(&lock(pk(9), 7, 300)).unwrap();
    l.check_invariant().unwrap();
    l
}

#[test]
fn account_keys_round_trip_and_are_strict() {
    let accounts = [
        Account::Mint,
        Account::Burn,
        Account::External,
        Account::Protocol,
        Account::Operator(pk(0xab)),
        Account::Escrow(pk(3)),
        Account::Locked {
            consumer: pk(4),
            order: 0,
        },
        Account::Locked {
            consumer: pk(4),
            order: u64::MAX,
        },
    ];
    for a in &accounts {
        assert_eq!(Account::parse_key(&a.to_key()).unwrap(), *a, "{a}");
        let json = serde_json::to_string(a).unwrap();
        assert_eq!(serde_json::from_str::<Account>(&json).unwrap(), *a);
    }
    assert_eq!(
        Account::Locked {
            consumer: pk(1),
            order: 42
        }
        .to_key(),
        format!("locked:{}:42", "01".repeat(32))
    );
    let h = "ab".repeat(32);
    for bad in [
        "".to_string(),
        "Mint".into(),
        "mint:".into(),
        "operator".into(),
        "operator:abcd".into(),
        format!("operator:{}", "AB".repeat(32)),
        format!("operator:{h}:1"),
        format!("locked:{h}"),
        format!("locked:{h}:"),
        format!("locked:{h}:01"),
        format!("locked:{h}:+1"),
        format!("locked:{h}:18446744073709551616"),
        format!("wallet:{h}"),
    ] {
        assert!(
            matches!(Account::parse_key(&bad), Err(LedgerError::BadAccountKey(_))),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn entry_kinds_round_trip() {
    for k in EntryKind::ALL {
        assert_eq!(EntryKind::parse(k.as_str()).unwrap(), k);
        assert_eq!(
            serde_json::to_string(&k).unwrap(),
            format!("\"{}\"", k.as_str())
        );
    }
    assert_eq!(
        EntryKind::parse("mint"),
        Err(LedgerError::BadKind("mint".into()))
    );
}

#[test]
fn rejects_zero_amount() {
    let mut l = funded();
    check_rejects(&mut l, emission(pk(1), 0), LedgerError::ZeroAmount);
}

#[test]
fn rejects_self_transfer() {
    let mut l = funded();
    let e = Entry::new(EntryKind::Withdraw, Account::External, Account::External, 1);
    check_rejects(&mut l, e, LedgerError::SelfTransfer(Account::External));
    let op = Account::Operator(pk(1));
    check_rejects(
        &mut l,
        Entry::new(EntryKind::Settle, op.clone(), op.clone(), 1),
        LedgerError::SelfTransfer(op),
    );
}

#[test]
fn rejects_kinds_that_do_not_fit_the_accounts() {
    let mut l = funded();
    let cases = [
        // Emission only from Mint to an operator.
        (EntryKind::Emission, Account::Mint, Account::Escrow(pk(9))),
        (
            EntryKind::Emission,
            Account::External,
            Account::Operator(pk(1)),
        ),
        // A deposit is not a mint.
        (EntryKind::Deposit, Account::Mint, Account::Escrow(pk(9))),
        // Locks and refunds stay within one consumer.
        (
            EntryKind::Lock,
            Account::Escrow(pk(9)),
            Account::Locked {
                consumer: pk(8),
                order: 1,
            },
        ),
        (
            EntryKind::Refund,
            Account::Locked {
                consumer: pk(9),
                order: 7,
            },
            Account::Escrow(pk(8)),
        ),
        // Settlement only from locked escrow.
        (
            EntryKind::Settle,
            Account::Escrow(pk(9)),
            Account::Operator(pk(1)),
        ),
        (EntryKind::Fee, Account::Operator(pk(1)), Account::Protocol),
        // Burn only into Burn, only from holders; Burn is never debited.
        (EntryKind::Burn, Account::Operator(pk(1)), Account::Protocol),
        (EntryKind::Burn, Account::Mint, Account::Burn),
        (EntryKind::Withdraw, Account::Burn, Account::External),
        (EntryKind::Emission, Account::Burn, Account::Operator(pk(1))),
    ];
    for (kind, debit, credit) in cases {
        let e = Entry::new(kind, debit.clone(), credit.clone(), 1);
        check_rejects(
            &mut l,
            e,
            LedgerError::KindMismatch {
                kind,
                debit,
                credit,
            },
        );
    }
}

#[test]
fn rejects_overdraft_of_every_holder_kind() {
    let mut l = funded();
    let cases = [
        (lock(pk(9), 8, 201), Account::Escrow(pk(9)), 200),
        (
            refund(pk(9), 7, 301),
            Account::Locked {
                consumer: pk(9),
                order: 7,
            },
            300,
        ),
        (
            refund(pk(9), 99, 1),
            Account::Locked {
                consumer: pk(9),
                order: 99,
            },
            0,
        ),
        (
            Entry::new(
                EntryKind::Withdraw,
                Account::Operator(pk(1)),
                Account::External,
                1_001,
            ),
            Account::Operator(pk(1)),
            1_000,
        ),
        (
            Entry::new(EntryKind::Burn, Account::Protocol, Account::Burn, 1),
            Account::Protocol,
            0,
        ),
    ];
    for (e, account, balance) in cases {
        let amount = e.amount;
        check_rejects(
            &mut l,
            e,
            LedgerError::Overdraft {
                account,
                balance,
                amount,
            },
        );
    }
}

#[test]
fn mint_and_external_may_go_negative_and_external_may_go_positive() {
    let mut l = funded();
    assert_eq!(l.balance(&Account::Mint), -1_000);
    assert_eq!(l.balance(&Account::External), -500);
    // The operator withdraws more than consumers ever deposited: External goes positive.
    l.apply(&Entry::new(
        EntryKind::Withdraw,
        Account::Operator(pk(1)),
        Account::External,
        900,
    ))
    .unwrap();
    assert_eq!(l.balance(&Account::External), 400);
    l.check_invariant().unwrap();
}

#[test]
fn batch_is_all_or_nothing() {
    let mut l = funded();
    let before = l.clone();
    // 300 locked; shares of 200 + 200 overdraw on the second settle.
    let entries = settle(pk(9), 7, &[(pk(1), 200), (pk(2), 200)], 0);
    assert!(matches!(
        l.apply_batch(&entries),
        Err(LedgerError::Overdraft { .. })
    ));
    assert_eq!(l, before);
    // A bad shape late in a batch also rejects the whole batch.
    let mixed = vec![emission(pk(1), 5), emission(pk(1), 0)];
    assert_eq!(l.apply_batch(&mixed), Err(LedgerError::ZeroAmount));
    assert_eq!(l, before);
}

#[test]
fn settle_pays_operators_and_burns_the_protocol_fee() {
    let mut l = funded();
    // 5% fee: 201 → fee 10 (floor 10.05), net 191; 99 → fee 4 (4.95), net 95.
    let entries = settle(pk(9), 7, &[(pk(1), 201), (pk(2), 99)], 500);
    assert_eq!(
        entries,
        vec![
            Entry::new(
                EntryKind::Settle,
                Account::Locked {
                    consumer: pk(9),
                    order: 7
                },
                Account::Operator(pk(1)),
                191
            ),
            Entry::new(
                EntryKind::Settle,
                Account::Locked {
                    consumer: pk(9),
                    order: 7
                },
                Account::Operator(pk(2)),
                95
            ),
            Entry::new(
                EntryKind::Fee,
                Account::Locked {
                    consumer: pk(9),
                    order: 7
                },
                Account::Protocol,
                14
            ),
            Entry::new(EntryKind::Burn, Account::Protocol, Account::Burn, 14),
        ]
    );
    l.apply_batch(&entries).unwrap();
    l.check_invariant().unwrap();
    assert_eq!(l.balance(&Account::Operator(pk(1))), 1_191);
    assert_eq!(l.balance(&Account::Operator(pk(2))), 95);
    assert_eq!(l.balance(&Account::Protocol), 0);
    assert_eq!(l.burned(), 14);
    assert_eq!(
        l.balance(&Account::Locked {
            consumer: pk(9),
            order: 7
        }),
        0
    );
    // Zeroed accounts are dropped from the listing.
    assert!(l.balances().all(|(a, _)| *a
        != Account::Locked {
            consumer: pk(9),
            order: 7
        }));
    let t = l.totals();
    assert_eq!(
        (t.minted, t.burned, t.imported, t.exported, t.held),
        (1_000, 14, 500, 0, 1_486)
    );
}

#[test]
fn settle_leaves_out_zero_amounts_and_handles_full_fees() {
    assert!(settle(pk(9), 1, &[], 500).is_empty());
    assert!(settle(pk(9), 1, &[(pk(1), 0)], 500).is_empty());
    // A fee of 100% (or a bps above 10 000, capped) pays the operator nothing.
    let all_fee = settle(pk(9), 1, &[(pk(1), 10)], 20_000);
    assert_eq!(
        all_fee.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EntryKind::Fee, EntryKind::Burn]
    );
    // Fee sums that would overflow u64 are split instead of wrapping.
    let huge = settle(pk(9), 1, &[(pk(1), u64::MAX), (pk(2), u64::MAX)], 10_000);
    assert_eq!(huge.len(), 4);
    assert!(huge.iter().all(|e| e.amount == u64::MAX));
}

#[test]
fn protocol_fee_is_floor_and_capped() {
    assert_eq!(protocol_fee(0, 500), 0);
    assert_eq!(protocol_fee(19, 500), 0);
    assert_eq!(protocol_fee(20, 500), 1);
    assert_eq!(protocol_fee(u64::MAX, 10_000), u64::MAX);
    assert_eq!(protocol_fee(u64::MAX, 65_535), u64::MAX);
    assert_eq!(protocol_fee(u64::MAX, 5_000), u64::MAX / 2);
}

#[test]
fn replay_rebuilds_the_same_ledger() {
    let entries = vec![
        emission(pk(1), 10),
        deposit(pk(9), 50),
        lock(pk(9), 1, 40),
        refund(pk(9), 1, 15),
    ];
    let mut direct = Ledger::new();
    direct.apply_batch(&entries).unwrap();
    assert_eq!(Ledger::from_entries(&entries).unwrap(), direct);
    assert_eq!(direct.entry_count(), 4);
    let json = serde_json::to_string(&entries).unwrap();
    assert_eq!(serde_json::from_str::<Vec<Entry>>(&json).unwrap(), entries);
}

#[test]
fn invariant_check_detects_tampering() {
    let mut l = funded();
    l.balances.insert(Account::Operator(pk(5)), 1);
    assert!(matches!(
        l.check_invariant(),
        Err(LedgerError::InvariantViolated(_))
    ));
    let mut l = funded();
    l.minted += 1;
    assert!(matches!(
        l.check_invariant(),
        Err(LedgerError::InvariantViolated(_))
    ));
    let mut l = funded();
    l.balances.insert(Account::Operator(pk(5)), -1);
    l.balances.insert(Account::Operator(pk(6)), 1);
    assert!(matches!(
        l.check_invariant(),
        Err(LedgerError::InvariantViolated(_))
    ));
}

#[test]
fn credit_burn_takes_free_escrow_only() {
    let mut l = funded();
    l.apply(&credit_burn(pk(9), 150)).unwrap();
    assert_eq!(l.balance(&Account::Escrow(pk(9))), 50);
    assert_eq!(l.burned(), 150);
    assert_eq!(l.balance(&Account::Burn), 150);
    l.check_invariant().unwrap();
    // Locked escrow is not free: the free part is 50 now.
    check_rejects(
        &mut l,
        credit_burn(pk(9), 51),
        LedgerError::Overdraft {
            account: Account::Escrow(pk(9)),
            balance: 50,
            amount: 51,
        },
    );
    // One shape only: an operator's or a lock's money cannot buy credits.
    for debit in [
        Account::Operator(pk(1)),
        Account::Locked {
            consumer: pk(9),
            order: 7,
        },
        Account::Protocol,
    ] {
        let e = Entry::new(EntryKind::CreditBurn, debit.clone(), Account::Burn, 1);
        check_rejects(
            &mut l,
            e,
            LedgerError::KindMismatch {
                kind: EntryKind::CreditBurn,
                debit,
                credit: Account::Burn,
            },
        );
    }
    l.apply(&withdraw(pk(9), 50)).unwrap();
    assert_eq!(l.exported(), 50);
    l.check_invariant().unwrap();
}

#[test]
fn burn_for_credits_rounds_up_in_exact_integers() {
    let max = i64::MAX as u64;
    // Helium's data credit: USD 0.00001 = 10 micro-USD. At USD 5 a token,
    // 100,000 credits (USD 1) burn 0.2 tokens.
    assert_eq!(burn_for_credits(100_000, 10, 5_000_000, max), Ok(200_000));
    // One credit at USD 3 a token: 10 × 10^6 / 3·10^6 = 3.33… → 4.
    assert_eq!(burn_for_credits(1, 10, 3_000_000, max), Ok(4));
    // Exact division is not rounded up.
    assert_eq!(burn_for_credits(3, 10, 30_000_000, max), Ok(1));
    // A token worth more than a whole purchase still burns one base unit.
    assert_eq!(burn_for_credits(1, 1, u64::MAX, max), Ok(1));
    // Extremes: refused, never wrapped.
    assert_eq!(burn_for_credits(1, 10, 0, max), Err(LedgerError::Overflow));
    assert_eq!(
        burn_for_credits(u64::MAX, u64::MAX, 1, u64::MAX),
        Err(LedgerError::Overflow)
    );
    assert_eq!(
        burn_for_credits(max, 10, 1, max),
        Err(LedgerError::Overflow)
    );
    // Just at and just above the cap.
    assert_eq!(burn_for_credits(max, 1, 1_000_000, max), Ok(max));
    assert_eq!(
        burn_for_credits(max, 1, 1_000_000, max - 1),
        Err(LedgerError::Overflow)
    );
}
