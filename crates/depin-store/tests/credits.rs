//! Data credits and withdrawals in the store, on SQLite and a real
//! PostgreSQL server: token prices in force by time, purchases priced and
//! burned once per id, credits that can never go negative (also under
//! concurrent spends), withdrawals pending until marked paid once.

use depin_core::PublicKey;
use depin_store::testing::TestPostgres;
use depin_store::*;

fn key(n: u8) -> PublicKey {
    PublicKey([n; 32])
}

/// The pricing rule the coordinator passes (10 micro-USD a credit, rounded
/// up); written out here so the store test does not need the ledger crate.
fn burn_for(credits: u64) -> impl Fn(u64) -> Option<u64> {
    move |token_price| {
        let n = u128::from(credits) * 10 * 1_000_000;
        u64::try_from(n.div_ceil(u128::from(token_price))).ok()
    }
}

fn purchase(consumer: PublicKey, id: u64, credits: u64, max_burn: u64, t: i64) -> NewPurchase {
    NewPurchase {
        consumer,
        purchase_id: id,
        credits,
        max_burn,
        credit_price_micro_usd: 10,
        envelope: vec![id as u8, 1],
        recorded_ms: t,
    }
}

fn price(effective_ms: i64, usd_micro: u64) -> NewTokenPrice {
    NewTokenPrice {
        effective_ms,
        usd_micro,
        source: "test".into(),
        recorded_ms: effective_ms,
    }
}

/// Balances sum to zero and no holder is negative.
async fn balanced(store: &Store) {
    let b = store.balances().await.unwrap();
    assert_eq!(b.iter().map(|(_, v)| i128::from(*v)).sum::<i128>(), 0);
    for (a, v) in b {
        if !matches!(a.as_str(), "mint" | "burn" | "external") {
            assert!(v >= 0, "{a} = {v}");
        }
    }
}

async fn credits_and_withdrawals(store: Store) {
    let c = key(7);
    let escrow = format!("escrow:{}", c.to_hex());
    store
        .record_deposit(&NewDeposit {
            external_ref: "pay-1".into(),
            consumer: c,
            amount: 1_000,
            recorded_ms: 1,
        })
        .await
        .unwrap()
        .unwrap();

    // No price at all, then one not yet in force.
    assert_eq!(
        store
            .buy_credits(&purchase(c, 1, 100, 1_000, 6_000), burn_for(100))
            .await
            .unwrap(),
        Err(PurchaseRefusal::NoTokenPrice)
    );
    store
        .record_token_price(&price(5_000, 2_000_000))
        .await
        .unwrap();
    assert_eq!(
        store
            .buy_credits(&purchase(c, 1, 100, 1_000, 4_999), burn_for(100))
            .await
            .unwrap(),
        Err(PurchaseRefusal::NoTokenPrice)
    );
    assert_eq!(store.token_price_at(4_999).await.unwrap(), None);
    assert_eq!(
        store
            .token_price_at(5_000)
            .await
            .unwrap()
            .unwrap()
            .usd_micro,
        2_000_000
    );

    // 100 credits × 10 micro-USD at USD 2 a token: 500 base units.
    assert_eq!(
        store
            .buy_credits(&purchase(c, 1, 100, 499, 6_000), burn_for(100))
            .await
            .unwrap(),
        Err(PurchaseRefusal::BurnAboveLimit {
            burn: 500,
            token_price_micro_usd: 2_000_000
        })
    );
    let (r, row) = store
        .buy_credits(&purchase(c, 1, 100, 500, 6_000), burn_for(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r, row.burned, row.token_price_micro_usd),
        (Recorded::New, 500, 2_000_000)
    );
    assert_eq!(store.balance(&escrow).await.unwrap(), 500);
    assert_eq!(store.balance("burn").await.unwrap(), 500);
    assert_eq!(store.credits_of(&c).await.unwrap(), 100);

    // The price halves; a retry of purchase 1 still answers as it was.
    store
        .record_token_price(&price(7_000, 1_000_000))
        .await
        .unwrap();
    let (r, again) = store
        .buy_credits(&purchase(c, 1, 100, 500, 8_000), burn_for(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r, again), (Recorded::Again, row.clone()));
    assert_eq!(store.credits_of(&c).await.unwrap(), 100);
    assert_eq!(
        store
            .buy_credits(&purchase(c, 1, 101, 500, 8_000), burn_for(101))
            .await
            .unwrap(),
        Err(PurchaseRefusal::Conflict)
    );
    assert_eq!(
        store
            .buy_credits(&purchase(c, 1, 100, 501, 8_000), burn_for(100))
            .await
            .unwrap(),
        Err(PurchaseRefusal::Conflict)
    );
    // Now 1,000 base units a token: 60 credits burn 600 > 500 free.
    assert_eq!(
        store
            .buy_credits(&purchase(c, 2, 60, 10_000, 8_000), burn_for(60))
            .await
            .unwrap(),
        Err(PurchaseRefusal::InsufficientEscrow {
            burn: 600,
            free: 500
        })
    );
    assert_eq!(
        store
            .buy_credits(&purchase(c, 2, 60, 10_000, 8_000), |_| None)
            .await
            .unwrap(),
        Err(PurchaseRefusal::Overflow)
    );
    assert_eq!(
        store
            .buy_credits(&purchase(c, 2, 60, u64::MAX, 8_000), |_| Some(u64::MAX))
            .await
            .unwrap(),
        Err(PurchaseRefusal::Overflow)
    );
    // A credit balance past i64::MAX is refused, not wrapped.
    assert_eq!(
        store
            .buy_credits(&purchase(c, 2, i64::MAX as u64, 10_000, 8_000), |_| Some(1))
            .await
            .unwrap(),
        Err(PurchaseRefusal::Overflow)
    );
    let (_, second) = store
        .buy_credits(&purchase(c, 2, 40, 400, 8_000), burn_for(40))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.burned, 400);
    assert_eq!(store.credits_of(&c).await.unwrap(), 140);
    assert_eq!(
        store
            .purchases_of(&c)
            .await
            .unwrap()
            .iter()
            .map(|p| p.purchase_id)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
    let prices = store.token_prices(10).await.unwrap();
    assert_eq!(
        prices.iter().map(|p| p.usd_micro).collect::<Vec<_>>(),
        vec![1_000_000, 2_000_000]
    );

    // Spending: never below zero, once per purpose.
    let spent = store
        .spend_credits(&c, 30, "wireless:s1", 9_000)
        .await
        .unwrap();
    assert_eq!(
        spent,
        Ok(Spent {
            recorded: Recorded::New,
            left: 110
        })
    );
    assert_eq!(
        store
            .spend_credits(&c, 30, "wireless:s1", 9_001)
            .await
            .unwrap(),
        Ok(Spent {
            recorded: Recorded::Again,
            left: 110
        })
    );
    assert_eq!(
        store
            .spend_credits(&c, 31, "wireless:s1", 9_001)
            .await
            .unwrap(),
        Err(SpendRefusal::Conflict)
    );
    assert_eq!(
        store
            .spend_credits(&c, 111, "sensor:q1", 9_001)
            .await
            .unwrap(),
        Err(SpendRefusal::InsufficientCredits { held: 110 })
    );
    // The refused spend left no record: the same purpose can be spent now.
    assert!(
        store
            .spend_credits(&c, 10, "sensor:q1", 9_002)
            .await
            .unwrap()
            .is_ok()
    );
    let long = "x".repeat(MAX_CREDIT_TEXT_LEN + 1);
    for (n, purpose) in [
        (0, "zero"),
        (i64::MAX as u64 + 1, "huge"),
        (u64::MAX, "max"),
        (1, ""),
        (1, "line\nbreak"),
        (1, long.as_str()),
    ] {
        assert_eq!(
            store.spend_credits(&c, n, purpose, 9_003).await.unwrap(),
            Err(SpendRefusal::Invalid),
            "{n} {purpose:?}"
        );
    }
    assert!(
        store
            .spend_credits(&c, 1, &"x".repeat(MAX_CREDIT_TEXT_LEN), 9_003)
            .await
            .unwrap()
            .is_ok()
    );
    // A consumer who never bought holds nothing to spend.
    assert_eq!(
        store
            .spend_credits(&key(8), 1, "wireless:s1", 9_003)
            .await
            .unwrap(),
        Err(SpendRefusal::InsufficientCredits { held: 0 })
    );
    assert_eq!(store.credits_of(&c).await.unwrap(), 99);

    // Many spends at once, more than the balance holds: exactly the ones
    // that fit succeed, and the balance ends at zero, never below.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .spend_credits(&key(7), 9, &format!("race:{i}"), 10_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(SpendRefusal::InsufficientCredits { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 11, "99 credits hold eleven spends of 9");
    assert_eq!(store.credits_of(&c).await.unwrap(), 0);

    // Withdrawals: escrow is 100 now (1000 − 500 − 400).
    assert_eq!(store.balance(&escrow).await.unwrap(), 100);
    let w = |id: u64, amount: u64, dest: u8| NewWithdrawal {
        consumer: c,
        withdrawal_id: id,
        amount,
        destination: vec![dest; 20],
        envelope: vec![id as u8],
        requested_ms: 11_000,
    };
    let (r, row) = store
        .request_withdrawal(&w(1, 60, 0xee))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r, row.paid.clone()), (Recorded::New, None));
    assert_eq!(
        store.request_withdrawal(&w(1, 60, 0xee)).await.unwrap(),
        Ok((Recorded::Again, row.clone()))
    );
    assert_eq!(
        store.request_withdrawal(&w(1, 61, 0xee)).await.unwrap(),
        Err(WithdrawalRefusal::Conflict)
    );
    assert_eq!(
        store.request_withdrawal(&w(1, 60, 0xef)).await.unwrap(),
        Err(WithdrawalRefusal::Conflict)
    );
    assert_eq!(
        store.request_withdrawal(&w(2, 41, 0xee)).await.unwrap(),
        Err(WithdrawalRefusal::InsufficientEscrow { free: 40 })
    );
    assert_eq!(store.balance(&escrow).await.unwrap(), 40);
    assert_eq!(store.balance("external").await.unwrap(), -1_000 + 60);
    assert_eq!(
        store.pending_withdrawals(10).await.unwrap(),
        vec![row.clone()]
    );

    // Paying out: recorded once, never replaced.
    assert_eq!(
        store
            .mark_withdrawal_paid(&c, 1, "0xabc", 12_000)
            .await
            .unwrap(),
        Ok(Recorded::New)
    );
    assert_eq!(
        store
            .mark_withdrawal_paid(&c, 1, "0xabc", 12_001)
            .await
            .unwrap(),
        Ok(Recorded::Again)
    );
    assert_eq!(
        store
            .mark_withdrawal_paid(&c, 1, "0xdef", 12_001)
            .await
            .unwrap(),
        Err(PayoutRefusal::PaidElsewhere("0xabc".into()))
    );
    assert_eq!(
        store
            .mark_withdrawal_paid(&c, 2, "0xabc", 12_001)
            .await
            .unwrap(),
        Err(PayoutRefusal::Unknown)
    );
    for bad in ["", "with space", "tab\t"] {
        assert_eq!(
            store
                .mark_withdrawal_paid(&c, 1, bad, 12_001)
                .await
                .unwrap(),
            Err(PayoutRefusal::Invalid)
        );
    }
    assert!(store.pending_withdrawals(10).await.unwrap().is_empty());
    let mine = store.withdrawals_of(&c).await.unwrap();
    assert_eq!(mine[0].paid, Some(("0xabc".into(), 12_000)));

    // Every movement is a ledger entry of its kind, filed under epoch 0.
    let kinds: Vec<String> = store
        .all_ledger_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["deposit", "credit_burn", "credit_burn", "withdraw"]);
    balanced(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_credits_and_withdrawals() {
    let dir = tempfile::tempdir().unwrap();
    credits_and_withdrawals(Store::open_in_dir(dir.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_credits_and_withdrawals() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    credits_and_withdrawals(Store::open(&pg.url("credits")).await.unwrap()).await;
}
