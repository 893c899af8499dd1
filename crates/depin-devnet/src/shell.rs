//! The async shell: performs the schedule's events on the real coordinator
//! and store, one at a time, then reads the results back and writes the files.
//!
//! Everything is sequential on purpose: each call is awaited before the next
//! event is computed, so the store sees the same statements in the same order
//! on every run with the same flags.

use crate::output::{
    BehaviourLine, DeviceLine, DevnetOutcome, EpochLine, Flags, GENERATOR, LedgerTotals,
    OperatorEconomics, ReportTotals, SectorLine, Spread, Summary, TokenPrice, cents, price,
    to_canonical_json,
};
use crate::actor::{ActorRegistry, Class};
use crate::schedule::{Event, Simulation};
use crate::world::World;
use crate::{Config, DevnetError};
use depin_coordinator::audit::audit_epoch;
use depin_coordinator::{CloseOutcome, Coordinator, EpochSummary, MAX_BATCH_REPORTS};
use depin_core::{BASE_UNITS_PER_TOKEN, PublicKey};
use depin_protocol::encode_batch;
use depin_store::Store;
use std::collections::BTreeMap;
use std::path::Path;

/// Progress of a run, for a progress bar on stderr. Never affects outputs.
pub trait Progress {
    fn start(&mut self, _total: u64) {}
    fn advance(&mut self, _done: u64, _phase: &str) {}
    fn finish(&mut self) {}
}

/// No progress display.
impl Progress for () {}

/// Runs the devnet described by `config`, writing into `out`.
///
/// Fails with [`DevnetError::Usage`] when `out` is a non-empty directory that
/// does not look like earlier devnet output, and with
/// [`DevnetError::Invariant`] when the system under test misbehaves: an audit
/// differs, the ledger does not balance, a cheat earned or an honest device
/// was refused or unpaid. In the last case the files are still written, so
/// the run can be inspected.
pub async fn run(
    config: &Config,
    out: &Path,
    progress: &mut dyn Progress,
) -> Result<DevnetOutcome, DevnetError> {
    config.validate()?;
    prepare_out_dir(out)?;
    let world = World::generate(config)?;
    let store = Store::open_in_dir(out).await?;
    let coordinator = Coordinator::open(store.clone(), world.policy.clone()).await?;

    let mut sim = Simulation::new(&world);
    progress.start(sim.total_events());
    let mut done = 0u64;
    let mut closed: Vec<EpochSummary> = Vec::new();
    let mut reports = ReportTotals::default();
    // Rejections by the device that really sent them (the simulator knows):
    // the coordinator stores only rejections of verified reports, so forged
    // or unregistered senders are tallied here from the ingest outcomes.
    let mut rejected = Rejected {
        by_device: vec![BTreeMap::new(); world.devices.len()],
        by_reason: BTreeMap::new(),
    };
    let mut violations: Vec<String> = Vec::new();
    while let Some(event) = sim.next_event() {
        match event {
            Event::Onboard {
                at_ms,
                certificates,
            } => {
                for (device, bytes) in certificates {
                    coordinator.onboard(at_ms, &bytes).await.map_err(|e| {
                        DevnetError::Invariant(format!(
                            "device {device}'s valid certificate was refused: {e}"
                        ))
                    })?;
                }
                progress.advance(done + 1, "onboarding");
            }
            Event::Restart { .. } => {}
            Event::Deliver {
                at_ms, requests, ..
            } => {
                for request in requests {
                    for (chunk, who) in request
                        .reports
                        .chunks(MAX_BATCH_REPORTS)
                        .zip(request.copies.chunks(MAX_BATCH_REPORTS))
                    {
                        let outcome = coordinator.ingest(at_ms, encode_batch(chunk)).await?;
                        reports.sent += chunk.len() as u64;
                        reports.accepted += u64::from(outcome.accepted);
                        reports.rejected += outcome.rejected.len() as u64;
                        for r in &outcome.rejected {
                            let d = &world.devices[who[r.index as usize].sender as usize];
                            let code = r.reason.as_str().to_string();
                            *rejected.by_device[d.index as usize]
                                .entry(code.clone())
                                .or_default() += 1;
                            *rejected.by_reason.entry(code).or_default() += 1;
                            if d.kind().class != Class::Cheat && violations.len() < 20 {
                                violations.push(format!(
                                    "{} device {} had a report refused: {}",
                                    d.kind().name,
                                    d.public,
                                    r.reason
                                ));
                            }
                        }
                    }
                }
                progress.advance(done + 1, "simulating");
            }
            Event::Close { at_ms, epoch, .. } => {
                match coordinator.close_epoch(epoch, at_ms).await? {
                    CloseOutcome::Closed(s) => closed.push(s),
                    CloseOutcome::AlreadyClosed => {
                        return Err(DevnetError::Invariant(format!(
                            "epoch {epoch} was already closed in a fresh store"
                        )));
                    }
                }
                coordinator.check_ledger().await?;
                progress.advance(done + 1, "closing epochs");
            }
        }
        done += 1;
    }

    // Every epoch recomputes byte for byte from the stored inputs.
    for s in &closed {
        let report = audit_epoch(&store, s.epoch).await?;
        if !report.passed() {
            return Err(DevnetError::Invariant(format!(
                "epoch {} does not audit clean: {}",
                s.epoch,
                report.differences.join("; ")
            )));
        }
        progress.advance(done, "auditing");
    }

    let outcome = collect(&world, &coordinator, &store, &closed, reports, rejected).await?;
    write_files(&coordinator, &outcome, out, &closed).await?;
    drop(coordinator);
    seal_store(store, out).await?;
    progress.finish();

    violations.extend(ground_truth_violations(&world, &outcome));
    if !violations.is_empty() {
        return Err(DevnetError::Invariant(violations.join("\n")));
    }
    Ok(outcome)
}

/// Rejection counts of a run, by sending device and by reason.
struct Rejected {
    by_device: Vec<BTreeMap<String, u64>>,
    by_reason: BTreeMap<String, u64>,
}

/// Reads the run's results back from the store and joins them with the world.
async fn collect(
    world: &World,
    coordinator: &Coordinator,
    store: &Store,
    closed: &[EpochSummary],
    reports: ReportTotals,
    mut rejected: Rejected,
) -> Result<DevnetOutcome, DevnetError> {
    let config = &world.config;
    let index: BTreeMap<PublicKey, usize> = world
        .devices
        .iter()
        .map(|d| (d.public, d.index as usize))
        .collect();
    let n = world.devices.len();
    let mut rewards = vec![0u64; n];
    let mut revenue = vec![0f64; n];
    let mut reasons: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); n];

    let mut epochs = Vec::with_capacity(closed.len());
    for s in closed {
        let token_price = world.token_price_usd[s.epoch as usize];
        for line in store.reward_lines(s.epoch).await? {
            let i = *index.get(&line.device).ok_or_else(|| {
                DevnetError::Invariant(format!(
                    "reward line for a device not in the world: {}",
                    line.device
                ))
            })?;
            rewards[i] += line.reward;
            revenue[i] += line.reward as f64 / BASE_UNITS_PER_TOKEN as f64 * token_price;
            for r in line.reasons.split(',').filter(|r| !r.is_empty()) {
                *reasons[i].entry(r.to_string()).or_default() += 1;
            }
        }
        epochs.push(EpochLine {
            epoch: s.epoch,
            merkle_root: s.claim_root.clone(),
            sheet_hash: s.sheet_hash.clone(),
            emission: s.emission,
            minted: s.minted,
            fees: s.fees,
            burned: s.burned,
            devices: s.devices,
            rewarded: s.rewarded,
            token_price_usd: price(token_price),
            per_sector: s
                .per_sector
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                .collect(),
        });
    }
    for d in &world.devices {
        let i = d.index as usize;
        for (reason, count) in std::mem::take(&mut rejected.by_device[i]) {
            *reasons[i].entry(reason).or_default() += count;
        }
    }

    // Ledger totals: the store's balances must add up to minted − burned.
    let minted: u64 = closed.iter().map(|s| s.minted).sum();
    let burned: u64 = closed.iter().map(|s| s.burned).sum();
    coordinator.check_ledger().await?;
    let mut holders: i128 = 0;
    for (account, balance) in store.balances().await? {
        let parsed = depin_ledger_account_is_holder(&account)?;
        if parsed {
            holders += i128::from(balance);
        }
    }
    if holders != i128::from(minted) - i128::from(burned) {
        return Err(DevnetError::Invariant(format!(
            "balances total {holders} != minted {minted} - burned {burned}"
        )));
    }
    let balances_total = u64::try_from(holders)
        .map_err(|_| DevnetError::Invariant(format!("negative balances total {holders}")))?;

    // Economics per device and per operator.
    let months = world.months();
    let mut devices = Vec::with_capacity(n);
    let mut op_net = vec![0f64; world.operators.len()];
    let mut op_revenue = 0f64;
    let mut op_costs = 0f64;
    // Every sector and behaviour appears, with zeros when nobody has it, so
    // the summary's shape does not depend on the seed.
    let mut sectors: BTreeMap<String, SectorLine> = depin_core::Sector::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), SectorLine::default()))
        .collect();
    let mut behaviours: BTreeMap<String, BehaviourLine> = ActorRegistry::devnet()
        .kinds()
        .iter()
        .map(|k| (k.name.to_string(), BehaviourLine::default()))
        .collect();
    for d in &world.devices {
        let i = d.index as usize;
        let costs = d.costs_usd_per_month() * months;
        op_net[d.operator as usize] += revenue[i] - costs;
        op_revenue += revenue[i];
        op_costs += costs;
        let s = sectors.entry(d.sector.as_str().to_string()).or_default();
        s.devices += 1;
        s.rewarded += u64::from(rewards[i] > 0);
        s.minted += rewards[i];
        let b = behaviours
            .entry(d.kind().name.to_string())
            .or_default();
        b.devices += 1;
        b.rewarded += u64::from(rewards[i] > 0);
        b.rewards += rewards[i];
        devices.push(DeviceLine {
            device: d.public.to_hex(),
            operator: world.operators[d.operator as usize].public.to_hex(),
            sector: d.sector.as_str().to_string(),
            behaviour: d.kind().name.to_string(),
            profile: d.profile.name.clone(),
            rewards: rewards[i],
            reasons: std::mem::take(&mut reasons[i]),
            costs_usd: cents(costs),
            revenue_usd: cents(revenue[i]),
            net_usd: cents(revenue[i] - costs),
        });
    }
    let prices = &world.token_price_usd;
    let summary = Summary {
        generator: GENERATOR,
        seed: config.seed,
        flags: Flags {
            seed: config.seed,
            nodes: config.nodes,
            epochs: config.epochs,
            scenario: config.scenario.as_str().to_string(),
        },
        policy_id: world.policy.id(),
        epoch_seconds: world.policy.epoch_seconds,
        epochs,
        ledger: LedgerTotals {
            minted,
            burned,
            balances_total,
        },
        rejections: rejected.by_reason,
        reports,
        sectors,
        behaviours,
        operators: OperatorEconomics {
            operators: world.operators.len() as u64,
            months: crate::world::round_to(months, 4),
            net_profit_usd: Spread::of(&op_net),
            paying_back: op_net.iter().filter(|v| **v >= 0.0).count() as u64,
            revenue_usd: cents(op_revenue),
            costs_usd: cents(op_costs),
        },
        token_price: TokenPrice {
            start_usd: price(prices.first().copied().unwrap_or(0.0)),
            end_usd: price(prices.last().copied().unwrap_or(0.0)),
            min_usd: price(prices.iter().copied().fold(f64::INFINITY, f64::min)),
            max_usd: price(prices.iter().copied().fold(0.0, f64::max)),
            volatility_per_year: world.market.token_volatility_per_year,
            drift_per_year: world.market.token_drift_per_year,
            per_epoch_usd: prices.iter().map(|p| price(*p)).collect(),
        },
    };
    Ok(DevnetOutcome { summary, devices })
}

/// Whether a stored ledger account key names a holder (operator, protocol,
/// escrow …) rather than a boundary (mint, burn, external).
fn depin_ledger_account_is_holder(key: &str) -> Result<bool, DevnetError> {
    match key {
        "mint" | "burn" | "external" => Ok(false),
        k if k == "protocol"
            || k.starts_with("operator:")
            || k.starts_with("escrow:")
            || k.starts_with("locked:") =>
        {
            Ok(true)
        }
        other => Err(DevnetError::Invariant(format!(
            "unknown ledger account {other:?}"
        ))),
    }
}

/// Cheats earn nothing and show why; honest devices earn; every device that
/// earned nothing has a reason code.
pub fn ground_truth_violations(world: &World, o: &DevnetOutcome) -> Vec<String> {
    let mut v = Vec::new();
    for (d, line) in world.devices.iter().zip(&o.devices) {
        if d.kind().class == Class::Cheat && line.rewards > 0 {
            v.push(format!(
                "cheat {} ({}) earned {}",
                line.device, line.behaviour, line.rewards
            ));
        }
        if d.kind().class == Class::Honest && line.rewards == 0 {
            v.push(format!(
                "honest device {} earned nothing: {:?}",
                line.device, line.reasons
            ));
        }
        if line.rewards == 0 && line.reasons.is_empty() {
            v.push(format!(
                "device {} ({}) earned nothing without a reason code",
                line.device, line.behaviour
            ));
        }
    }
    v
}

async fn write_files(
    coordinator: &Coordinator,
    o: &DevnetOutcome,
    out: &Path,
    closed: &[EpochSummary],
) -> Result<(), DevnetError> {
    write(&out.join("summary.json"), &to_canonical_json(&o.summary))?;
    write(&out.join("devices.json"), &to_canonical_json(&o.devices))?;
    for s in closed {
        let tree = coordinator.claim_tree(s.epoch).await?;
        if depin_merkle::to_hex(&tree.root()) != s.claim_root {
            return Err(DevnetError::Invariant(format!(
                "epoch {}: claim tree root differs from the closed root",
                s.epoch
            )));
        }
        let dir = out.join("epochs").join(s.epoch.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        // Exactly what `depin claims` writes (the JS library's `dump()`).
        write(&dir.join("claims.json"), &tree.to_json())?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), DevnetError> {
    std::fs::write(path, text).map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> DevnetError {
    DevnetError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    }
}

/// Makes the SQLite file independent of the wall clock and self-contained
/// (see the crate docs for why each step is needed): closes the coordinator's
/// pool, then on one fresh connection leaves WAL mode (so no `-wal`/`-shm`
/// files stay beside it), fixes sqlx's migration timestamps and vacuums.
async fn seal_store(store: Store, out: &Path) -> Result<(), DevnetError> {
    use sqlx::Connection as _;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
    let db = |e: sqlx::Error| DevnetError::Store(depin_store::StoreError::from(e));
    store.close().await;
    let options = SqliteConnectOptions::new()
        .filename(out.join("depin.sqlite"))
        .create_if_missing(false)
        .busy_timeout(std::time::Duration::from_secs(30))
        .journal_mode(SqliteJournalMode::Delete);
    // sqlx finishes closing a pooled connection on a background task, so one
    // may still hold the file for a moment after `close` returns; leaving WAL
    // mode needs it gone. Wait for that (bounded), never longer.
    let mut attempts = 0;
    let mut conn = loop {
        attempts += 1;
        let last = match SqliteConnection::connect_with(&options).await {
            Ok(mut conn) => match sqlx::query_scalar::<_, String>("PRAGMA journal_mode")
                .fetch_one(&mut conn)
                .await
            {
                Ok(mode) if mode.eq_ignore_ascii_case("delete") => break conn,
                Ok(mode) => {
                    let _ = conn.close().await;
                    format!("journal mode stays {mode:?}")
                }
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if attempts >= 500 {
            return Err(DevnetError::Invariant(format!(
                "cannot take the store over from the coordinator's pool: {last}"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    sqlx::query(
        "UPDATE _sqlx_migrations SET installed_on = '2026-01-01 00:00:00', execution_time = 0",
    )
    .execute(&mut conn)
    .await
    .map_err(db)?;
    // VACUUM INTO writes a fresh file, so even the header's change counter
    // (which counts transactions in a way WAL mode leaves to chance) is the
    // same on every run.
    let sealed = out.join("depin.sqlite.sealed");
    let _ = std::fs::remove_file(&sealed);
    sqlx::query("VACUUM INTO $1")
        .bind(sealed.display().to_string())
        .execute(&mut conn)
        .await
        .map_err(db)?;
    conn.close().await.map_err(db)?;
    let target = out.join("depin.sqlite");
    std::fs::rename(&sealed, &target).map_err(|e| DevnetError::Io {
        context: format!("cannot replace {} with the sealed store", target.display()),
        source: e,
    })?;
    for leftover in [
        "depin.sqlite-wal",
        "depin.sqlite-shm",
        "depin.sqlite-journal",
    ] {
        if out.join(leftover).exists() {
            return Err(DevnetError::Invariant(format!(
                "{leftover} is left beside the sealed store"
            )));
        }
    }
    Ok(())
}

/// Files a devnet run writes into its directory.
const OUTPUT_NAMES: [&str; 8] = [
    "summary.json",
    "devices.json",
    "epochs",
    "depin.sqlite",
    "depin.sqlite-wal",
    "depin.sqlite-shm",
    "depin.sqlite-journal",
    "depin.sqlite.sealed",
];

/// Creates `out`, or clears a previous devnet run from it. Refuses a
/// non-empty directory holding anything a devnet run does not write, so a
/// mistyped `--out` never deletes someone's files.
pub fn prepare_out_dir(out: &Path) -> Result<(), DevnetError> {
    let refuse = |what: String| {
        DevnetError::Usage(format!(
            "refusing to write into {}: {what}; it does not look like earlier `depin devnet` output. Choose an empty or new --out directory",
            out.display()
        ))
    };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::create_dir_all(out).map_err(|e| io(out, e));
        }
        Err(e) => return Err(io(out, e)),
        Ok(m) if !m.is_dir() => return Err(refuse("it is not a directory".into())),
        Ok(_) => {}
    }
    let read = |dir: &Path| -> Result<Vec<(String, std::fs::FileType)>, DevnetError> {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let entry = entry.map_err(|e| io(dir, e))?;
            let ty = entry.file_type().map_err(|e| io(dir, e))?;
            v.push((entry.file_name().to_string_lossy().into_owned(), ty));
        }
        Ok(v)
    };
    let entries = read(out)?;
    if entries.is_empty() {
        return Ok(());
    }
    for (name, ty) in &entries {
        if !OUTPUT_NAMES.contains(&name.as_str()) {
            return Err(refuse(format!("it contains {name:?}")));
        }
        if name == "epochs" {
            if !ty.is_dir() {
                return Err(refuse("epochs is not a directory".into()));
            }
            for (epoch, ety) in read(&out.join("epochs"))? {
                let files = if ety.is_dir() {
                    read(&out.join("epochs").join(&epoch))?
                } else {
                    Vec::new()
                };
                let looks_right = ety.is_dir()
                    && !epoch.is_empty()
                    && epoch.bytes().all(|b| b.is_ascii_digit())
                    && files.iter().all(|(f, t)| f == "claims.json" && t.is_file());
                if !looks_right {
                    return Err(refuse(format!(
                        "epochs/{epoch} is not an epoch's claims directory"
                    )));
                }
            }
        } else if !ty.is_file() {
            return Err(refuse(format!("{name} is not a file")));
        }
    }
    if let Some((name, _)) = entries.iter().find(|(n, _)| n == "summary.json") {
        let text = std::fs::read_to_string(out.join(name)).map_err(|e| io(out, e))?;
        if !text.contains(GENERATOR) {
            return Err(refuse(
                "its summary.json was not written by `depin devnet`".into(),
            ));
        }
    }
    for (name, _) in entries {
        let path = out.join(&name);
        let r = if name == "epochs" {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        r.map_err(|e| DevnetError::Io {
            context: format!("cannot remove {}", path.display()),
            source: e,
        })?;
    }
    Ok(())
}
