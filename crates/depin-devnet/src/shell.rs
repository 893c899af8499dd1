//! The async shell: performs the schedule's events on the real coordinator
//! and store, one at a time, then reads the results back and writes the files.
//!
//! Everything is sequential on purpose: each call is awaited before the next
//! event is computed, so the store sees the same statements in the same order
//! on every run with the same flags.

use crate::actor::{Class, Expect};
use crate::output::{
    BehaviourLine, Checks, DeviceLine, DevnetOutcome, EpochLine, FaultTotals, Flags, GENERATOR,
    LedgerTotals, OperatorEconomics, ReportTotals, SectorLine, Spread, Summary, TokenPrice, cents,
    price, to_canonical_json,
};
use crate::schedule::{Event, ReportCopy, Simulation};
use crate::world::World;
use crate::{Config, DevnetError, Extensions};
use depin_coordinator::audit::audit_epoch_with;
use depin_coordinator::{
    CloseOutcome, CoordError, Coordinator, EpochSummary, IngestOutcome, MAX_BATCH_REPORTS,
    SectorSet,
};
use depin_core::{BASE_UNITS_PER_TOKEN, EpochIndex, PublicKey, Reason};
use depin_protocol::encode_batch;
use depin_rewards::RewardPolicy;
use depin_store::{Store, StoreError};
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
    run_with(config, out, progress, &Extensions::default()).await
}

/// [`run`] with sectors added to the backbone: their plugins in the
/// coordinator (at start and after every restart) and their actors among
/// the devices.
pub async fn run_with(
    config: &Config,
    out: &Path,
    progress: &mut dyn Progress,
    extensions: &Extensions,
) -> Result<DevnetOutcome, DevnetError> {
    config.validate()?;
    let sectors = extensions.sectors()?;
    let registry = extensions.registry()?;
    prepare_out_dir(out)?;
    let world = World::generate_with(config, registry)?;
    let policy = &world.policy;
    let mut node = Node::open(out, policy, extensions).await?;

    let mut sim = Simulation::new(&world);
    progress.start(sim.total_events());
    let mut done = 0u64;
    let mut closed: Vec<EpochSummary> = Vec::new();
    let mut reports = ReportTotals::default();
    // Rejections by the device that really sent them (the simulator knows):
    // the coordinator stores only rejections of verified reports, so forged
    // or unregistered senders are tallied here from the ingest outcomes.
    // Network duplicates are not the actors' doing and are tallied apart.
    let mut rejected = Rejected {
        by_device: vec![BTreeMap::new(); world.devices.len()],
        by_reason: BTreeMap::new(),
    };
    let mut book = FaultBook::default();
    book.totals.level = config.faults.as_str().to_string();
    book.totals.reordered_deliveries = sim.plan().reordered.len() as u64;
    // What became of every report an actor sent, by report id.
    let mut fates: Vec<Fate> = Vec::new();
    let mut violations: Vec<String> = Vec::new();
    let mut last_ms = policy.epoch_start_ms(0);
    while let Some(event) = sim.next_event() {
        match event {
            Event::Onboard {
                at_ms,
                certificates,
            } => {
                last_ms = at_ms;
                for (device, bytes) in certificates {
                    node.coordinator.onboard(at_ms, &bytes).await.map_err(|e| {
                        DevnetError::Invariant(format!(
                            "device {device}'s valid certificate was refused: {e}"
                        ))
                    })?;
                }
                progress.advance(done + 1, "onboarding");
            }
            Event::Restart { at_ms } => {
                last_ms = at_ms;
                node = node.restart(out, policy, extensions).await?;
                book.totals.restarts += 1;
                progress.advance(done + 1, "simulating");
            }
            Event::Deliver {
                at_ms,
                epoch,
                delivery,
                requests,
                store_fault,
                ..
            } => {
                last_ms = at_ms;
                let mut armed = store_fault.map(|f| {
                    let steps = book.append_steps.unwrap_or(1).max(1);
                    1 + u64::from(f.pick) % steps as u64
                });
                for request in requests {
                    for (chunk, copies) in request
                        .reports
                        .chunks(MAX_BATCH_REPORTS)
                        .zip(request.copies.chunks(MAX_BATCH_REPORTS))
                    {
                        let body = encode_batch(chunk);
                        node.steps();
                        let aimed = armed.take();
                        if let Some(n) = aimed {
                            node.store.faults().fail_at(n);
                        }
                        let outcome = match node.coordinator.ingest(at_ms, body.clone()).await {
                            Ok(o) => {
                                let passed = node.steps().len();
                                if passed > 0 {
                                    book.append_steps =
                                        Some(book.append_steps.map_or(passed, |s| s.min(passed)));
                                }
                                if aimed.is_some() {
                                    node.store.faults().disarm();
                                    if passed > 0 {
                                        return Err(DevnetError::Invariant(format!(
                                            "delivery {delivery}: an append passed {passed} write steps and the injected error did not fire"
                                        )));
                                    }
                                    // This request wrote nothing: aim at the next one.
                                    armed = aimed;
                                }
                                o
                            }
                            Err(CoordError::Unavailable(message)) if store_fault.is_some() => {
                                let step = node.steps().last().copied().unwrap_or("?");
                                if !message.contains("injected fault") {
                                    return Err(DevnetError::Invariant(format!(
                                        "delivery {delivery}: the store failed by itself: {message}"
                                    )));
                                }
                                *book
                                    .totals
                                    .store_errors
                                    .entry(step.to_string())
                                    .or_default() += 1;
                                book.totals.retried_deliveries += 1;
                                // The sender retries: nothing of the failed attempt was stored.
                                node.coordinator.ingest(at_ms, body).await?
                            }
                            Err(e) => return Err(e.into()),
                        };
                        account(
                            &world,
                            epoch,
                            copies,
                            &outcome,
                            &mut fates,
                            &mut reports,
                            &mut rejected,
                            &mut book,
                            &mut violations,
                        );
                    }
                }
                if armed.is_some() {
                    node.store.faults().disarm();
                    return Err(DevnetError::Invariant(format!(
                        "delivery {delivery}: the injected store error never fired"
                    )));
                }
                progress.advance(done + 1, "simulating");
            }
            Event::Close {
                at_ms,
                epoch,
                store_fault,
                restart_before_retry,
            } => {
                last_ms = at_ms;
                node.steps();
                if let Some(f) = store_fault {
                    let steps = book.close_steps.unwrap_or(1).max(1);
                    node.store
                        .faults()
                        .fail_at(1 + u64::from(f.pick) % steps as u64);
                }
                let outcome = match node.coordinator.close_epoch(epoch, at_ms).await {
                    Ok(o) => {
                        let passed = node.steps().len();
                        book.close_steps = Some(book.close_steps.map_or(passed, |s| s.min(passed)));
                        if store_fault.is_some() {
                            node.store.faults().disarm();
                            return Err(DevnetError::Invariant(format!(
                                "epoch {epoch}: the injected store error never fired"
                            )));
                        }
                        o
                    }
                    Err(CoordError::Store(StoreError::Injected(step))) if store_fault.is_some() => {
                        *book
                            .totals
                            .store_errors
                            .entry(step.to_string())
                            .or_default() += 1;
                        book.totals.retried_closes += 1;
                        if restart_before_retry {
                            node = node.restart(out, policy, extensions).await?;
                            book.totals.restarts += 1;
                        }
                        node.coordinator.close_epoch(epoch, at_ms).await?
                    }
                    Err(e) => return Err(e.into()),
                };
                match outcome {
                    CloseOutcome::Closed(s) => closed.push(s),
                    CloseOutcome::AlreadyClosed => {
                        return Err(DevnetError::Invariant(format!(
                            "epoch {epoch} was closed before its close event (or its failed close left it closed)"
                        )));
                    }
                }
                node.coordinator.check_ledger().await?;
                // Devices that answer work pull their orders now, as an
                // agent polling `GET /v1/work` would, signed by the device.
                for i in sim.work_wanted() {
                    let d = &world.devices[i as usize];
                    let request = depin_protocol::sign(
                        &depin_protocol::Envelope::new(
                            d.public,
                            0,
                            at_ms,
                            &depin_protocol::WorkRequest,
                        ),
                        &d.key,
                    );
                    let (_, orders) = node
                        .coordinator
                        .open_work(at_ms, &request.encode())
                        .await
                        .map_err(|e| {
                            DevnetError::Invariant(format!(
                                "device {i}'s signed work request was refused: {e}"
                            ))
                        })?;
                    sim.give_work(i, orders);
                }
                progress.advance(done + 1, "closing epochs");
            }
        }
        done += 1;
    }
    let Node { store, coordinator } = node;

    // Nothing lost, nothing twice: every report to be accepted was accepted
    // exactly once and is in the store; nothing else was accepted.
    let mut checks = Checks::default();
    let mut expected = vec![0u64; closed.len()];
    for (id, f) in fates.iter().enumerate() {
        match (f.expect, f.accepted) {
            (Expect::Accept, 1) => {
                checks.reports_to_accept += 1;
                checks.accepted_exactly_once += 1;
                if let Some(n) = expected.get_mut(f.epoch as usize) {
                    *n += 1;
                }
            }
            (Expect::Accept, n) => {
                checks.reports_to_accept += 1;
                violations.push(format!(
                    "report {id} of device {} was accepted {n} times, not once",
                    world.devices[f.sender as usize].public
                ));
            }
            (Expect::Refuse, 0) => {}
            (Expect::Refuse, n) => violations.push(format!(
                "report {id} of device {} ({}) should be refused but was accepted {n} times",
                world.devices[f.sender as usize].public,
                world.devices[f.sender as usize].kind().name
            )),
        }
    }
    for s in &closed {
        let stored = store.report_count(s.epoch).await?;
        checks.reports_stored += stored;
        if stored != expected[s.epoch as usize] {
            violations.push(format!(
                "epoch {}: the store holds {stored} reports, the actors sent {} to accept",
                s.epoch, expected[s.epoch as usize]
            ));
        }
    }
    // No epoch closes twice: another close of each is refused, and the
    // store holds one row per closed epoch.
    for s in &closed {
        match coordinator.close_epoch(s.epoch, last_ms).await? {
            CloseOutcome::AlreadyClosed => {}
            CloseOutcome::Closed(_) => {
                checks.closed_twice += 1;
                violations.push(format!("epoch {} closed a second time", s.epoch));
            }
        }
    }
    let rows: Vec<u64> = store.epochs().await?.iter().map(|e| e.epoch).collect();
    let want: Vec<u64> = closed.iter().map(|s| s.epoch).collect();
    if rows != want {
        violations.push(format!(
            "the store's closed epochs are {rows:?}, not {want:?}"
        ));
    }
    checks.epochs_closed = rows.len() as u64;

    // Every epoch recomputes byte for byte from the stored inputs.
    for s in &closed {
        let report = audit_epoch_with(&store, s.epoch, &sectors).await?;
        if !report.passed() {
            return Err(DevnetError::Invariant(format!(
                "epoch {} does not audit clean: {}",
                s.epoch,
                report.differences.join("; ")
            )));
        }
        checks.epochs_audited += 1;
        progress.advance(done, "auditing");
    }
    coordinator.check_ledger().await?;
    checks.ledger_balanced = true;

    let mut outcome = collect(&world, &coordinator, &store, &closed, reports, rejected).await?;
    outcome.summary.faults = book.totals;
    outcome.summary.checks = checks;
    write_files(&coordinator, &outcome, out, &closed).await?;
    drop(coordinator);
    store.seal().await?;
    progress.finish();

    violations.extend(ground_truth_violations(&world, &outcome));
    if !violations.is_empty() {
        return Err(DevnetError::Invariant(violations.join("\n")));
    }
    Ok(outcome)
}

/// The coordinator process under test: its store and the coordinator on it.
struct Node {
    store: Store,
    coordinator: Coordinator,
}

impl Node {
    async fn open(
        out: &Path,
        policy: &RewardPolicy,
        extensions: &Extensions,
    ) -> Result<Node, DevnetError> {
        let store = Store::open_in_dir(out).await?;
        let sectors: SectorSet = extensions.sectors()?;
        let coordinator = Coordinator::open_with(store.clone(), policy.clone(), sectors).await?;
        let node = Node { store, coordinator };
        node.steps();
        Ok(node)
    }

    /// A crash and a start: nothing is shut down (no checkpoint, open
    /// connections are just dropped), then the store and the coordinator are
    /// opened again on the same directory, from what was committed.
    async fn restart(
        self,
        out: &Path,
        policy: &RewardPolicy,
        extensions: &Extensions,
    ) -> Result<Node, DevnetError> {
        drop(self);
        Node::open(out, policy, extensions).await
    }

    /// The store's write steps passed since the last call (recording on).
    fn steps(&self) -> Vec<&'static str> {
        self.store.faults().record()
    }
}

/// Fault counts of a run, and what the shell learnt about write steps.
#[derive(Default)]
struct FaultBook {
    totals: FaultTotals,
    /// Fewest write steps a delivery's append passed (where to aim a fault).
    append_steps: Option<usize>,
    /// Fewest write steps an epoch close passed.
    close_steps: Option<usize>,
}

/// What became of one report an actor sent.
struct Fate {
    expect: Expect,
    epoch: EpochIndex,
    sender: u32,
    /// Copies of it the coordinator accepted.
    accepted: u32,
}

/// Books one request's verdicts: the actors' own reports into the report
/// totals and rejections, network duplicates into the fault totals.
#[allow(clippy::too_many_arguments)]
fn account(
    world: &World,
    epoch: EpochIndex,
    copies: &[ReportCopy],
    outcome: &IngestOutcome,
    fates: &mut Vec<Fate>,
    reports: &mut ReportTotals,
    rejected: &mut Rejected,
    book: &mut FaultBook,
    violations: &mut Vec<String>,
) {
    let mut refused = outcome.rejected.iter().peekable();
    for (i, c) in copies.iter().enumerate() {
        let reason = match refused.peek() {
            Some(r) if r.index as usize == i => refused.next().map(|r| r.reason),
            _ => None,
        };
        let id = c.id as usize;
        if fates.len() <= id {
            fates.resize_with(id + 1, || Fate {
                expect: Expect::Refuse,
                epoch: 0,
                sender: 0,
                accepted: 0,
            });
        }
        let fate = &mut fates[id];
        if !c.duplicate {
            *fate = Fate {
                expect: c.expect,
                epoch,
                sender: c.sender,
                accepted: 0,
            };
        }
        fate.accepted += u32::from(reason.is_none());
        let d = &world.devices[c.sender as usize];
        if c.duplicate {
            book.totals.duplicates_delivered += 1;
            if let Some(r) = reason {
                *book
                    .totals
                    .duplicates_refused
                    .entry(r.as_str().to_string())
                    .or_default() += 1;
                if c.expect == Expect::Accept
                    && r != Reason::ReplayedSequence
                    && violations.len() < 20
                {
                    violations.push(format!(
                        "a duplicate of device {}'s report was refused as {r}, not replayed_sequence",
                        d.public
                    ));
                }
            }
            continue;
        }
        reports.sent += 1;
        let Some(r) = reason else {
            reports.accepted += 1;
            continue;
        };
        reports.rejected += 1;
        let code = r.as_str().to_string();
        *rejected.by_device[d.index as usize]
            .entry(code.clone())
            .or_default() += 1;
        *rejected.by_reason.entry(code).or_default() += 1;
        if d.kind().class != Class::Cheat && violations.len() < 20 {
            violations.push(format!(
                "{} device {} had a report refused: {r}",
                d.kind().name,
                d.public
            ));
        }
    }
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
    let mut behaviours: BTreeMap<String, BehaviourLine> = world
        .registry
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
        let b = behaviours.entry(d.kind().name.to_string()).or_default();
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
            faults: config.faults.as_str().to_string(),
        },
        faults: FaultTotals::default(),
        checks: Checks::default(),
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
    write(
        &out.join("report.html"),
        &crate::report::render(&o.summary, &o.devices),
    )?;
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

/// Files a devnet run writes into its directory.
const OUTPUT_NAMES: [&str; 9] = [
    "summary.json",
    "devices.json",
    "report.html",
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
