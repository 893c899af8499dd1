//! `depin consumer lock|show` (a consumer with a key from `depin keygen`) and
//! `depin escrow deposit` (whoever runs the coordinator credits a payment).

use crate::keygen::{PassphraseArgs, open_operator_key};
use anyhow::{Context as _, anyhow, bail};
use depin_core::{PublicKey, Sector, format_tokens as tokens};
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum ConsumerCommand {
    /// Lock part of your escrow for an order served by one sector.
    Lock(LockArgs),
    /// Your free escrow and your orders, with what each was charged.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct LockArgs {
    /// The consumer key file from `depin keygen` (its passphrase is asked for).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The coordinator's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// Your order number: unique among your orders; the same lock sent again
    /// changes nothing.
    #[arg(long)]
    pub order: u64,
    /// storage, compute, wireless or sensor.
    #[arg(long)]
    pub sector: String,
    /// Base units to lock (10^6 per token).
    #[arg(long)]
    pub amount: u64,
    /// The first epoch to be served in [default: the current epoch].
    #[arg(long)]
    pub first_epoch: Option<u64>,
    /// How many epochs, from the first, the order may be charged; what is
    /// left after the last is refunded.
    #[arg(long, default_value_t = 1)]
    pub epochs: u64,
    /// The sector's terms of the order, as hex bytes (what is bought).
    #[arg(long, default_value = "")]
    pub terms_hex: String,
    /// Print the lock as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The coordinator's URL.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// The consumer's public key (hex).
    #[arg(long)]
    pub consumer: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct DepositArgs {
    /// The coordinator's database: sqlite://FILE or postgres://…
    #[arg(long, env = "DEPIN_DATABASE_URL")]
    pub database_url: String,
    /// The consumer's public key (hex).
    #[arg(long)]
    pub consumer: String,
    /// Base units received (10^6 per token).
    #[arg(long)]
    pub amount: u64,
    /// The payment's reference (payment id, chain transaction): credited at
    /// most once; the same reference with another consumer or amount is
    /// refused.
    #[arg(long)]
    pub external_ref: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum EscrowCommand {
    /// Credit a consumer's escrow from an external payment (run by whoever
    /// operates the coordinator; on a devnet, a faucet).
    Deposit(DepositArgs),
}

pub async fn run_consumer(c: ConsumerCommand) -> anyhow::Result<()> {
    match c {
        ConsumerCommand::Lock(a) => lock(a).await,
        ConsumerCommand::Show(a) => show(a).await,
    }
}

pub async fn run_escrow(c: EscrowCommand) -> anyhow::Result<()> {
    match c {
        EscrowCommand::Deposit(a) => deposit(a).await,
    }
}

async fn lock(a: LockArgs) -> anyhow::Result<()> {
    let sector: Sector = a.sector.parse().map_err(|e| anyhow!("--sector: {e}"))?;
    let terms = hex::decode(&a.terms_hex).map_err(|e| anyhow!("--terms-hex: {e}"))?;
    if a.epochs == 0 {
        bail!("--epochs: at least 1");
    }
    let client =
        depin_client::Client::new(&a.coordinator).map_err(|e| anyhow!("--coordinator: {e}"))?;
    let first_epoch = match a.first_epoch {
        Some(e) => e,
        None => {
            let p = client
                .policy()
                .await
                .context("reading the coordinator's policy for the current epoch")?;
            let since = depin_agent::now_ms() - p.genesis_unix_ms;
            u64::try_from(since).unwrap_or(0) / 1000 / p.epoch_seconds.max(1)
        }
    };
    let last_epoch = first_epoch
        .checked_add(a.epochs - 1)
        .ok_or_else(|| anyhow!("--epochs: too many"))?;
    let key = open_operator_key(&a.key, &a.passphrase).await?;
    let now = depin_agent::now_ms();
    let lock = depin_protocol::OrderLock {
        order: a.order,
        sector,
        amount: a.amount,
        first_epoch,
        last_epoch,
        terms,
    };
    let env =
        depin_protocol::Envelope::new(depin_protocol::public_key_of(&key), now as u64, now, &lock);
    let signed = depin_protocol::sign(&env, &key);
    let view = client
        .lock_order(&signed)
        .await
        .with_context(|| format!("locking order {}", a.order))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!(
            "order {} {}: {} tokens locked for {} in epochs {}..={} (what is not charged by the end is refunded)",
            view.order,
            if view.new {
                "locked"
            } else {
                "was already locked"
            },
            tokens(view.amount),
            view.sector,
            view.first_epoch,
            view.last_epoch
        );
    }
    Ok(())
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let consumer: PublicKey = a.consumer.parse().map_err(|e| anyhow!("--consumer: {e}"))?;
    let client =
        depin_client::Client::new(&a.coordinator).map_err(|e| anyhow!("--coordinator: {e}"))?;
    let view = client.consumer(&consumer).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!("consumer {}", view.consumer);
    println!("free escrow: {} tokens", tokens(view.escrow));
    if view.orders.is_empty() {
        println!("no orders");
        return Ok(());
    }
    println!(
        "{:>8}  {:<9} {:>16} {:>16}  {:<17} {}",
        "order", "sector", "locked", "charged", "epochs", "state"
    );
    for o in &view.orders {
        println!(
            "{:>8}  {:<9} {:>16} {:>16}  {:<17} {}",
            o.order,
            o.sector,
            tokens(o.amount),
            tokens(o.charged),
            format!("{}..={}", o.first_epoch, o.last_epoch),
            o.state
        );
    }
    Ok(())
}

async fn deposit(a: DepositArgs) -> anyhow::Result<()> {
    let consumer: PublicKey = a.consumer.parse().map_err(|e| anyhow!("--consumer: {e}"))?;
    let store = depin_store::Store::open(&a.database_url)
        .await
        .with_context(|| {
            format!(
                "--database-url: cannot open {}",
                depin_store::redact_url(&a.database_url)
            )
        })?;
    let recorded = depin_coordinator::record_deposit(
        &store,
        depin_agent::now_ms(),
        consumer,
        a.amount,
        &a.external_ref,
    )
    .await?;
    let escrow = store
        .balance(&format!("escrow:{}", consumer.to_hex()))
        .await?;
    store.close().await;
    let new = recorded == depin_coordinator::Recorded::New;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "consumer": consumer.to_hex(),
                "amount": a.amount,
                "external_ref": a.external_ref,
                "new": new,
                "escrow": escrow,
            })
        );
    } else if new {
        println!(
            "credited {} tokens to {consumer} (reference {}); free escrow now {} tokens",
            tokens(a.amount),
            a.external_ref,
            tokens(u64::try_from(escrow).unwrap_or(0))
        );
    } else {
        println!(
            "reference {} was already credited; nothing changed (free escrow {} tokens)",
            a.external_ref,
            tokens(u64::try_from(escrow).unwrap_or(0))
        );
    }
    Ok(())
}
