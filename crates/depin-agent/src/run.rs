//! `depin node run`: the agent's event loop, a thin async shell over the pure
//! parts (heartbeat building, settling answers, backoff) and the spool.
//!
//! One task owns the spool. It wakes for three things: a heartbeat is due
//! (build, sign, spool durably), a send is due (take the oldest batch from the
//! spool and start a request), or a request finished (settle it against the
//! spool). Requests run concurrently with the heartbeat timer, so a slow or
//! hanging coordinator never delays a heartbeat; at most one request is in
//! flight, so reports always reach the coordinator in sequence order, which
//! its replay rule (strictly increasing sequence numbers) requires.
//!
//! With a [`Driver`] for the device's sector it also wakes for work: a poll
//! is due (`GET /v1/work`, at most one in flight), a poll answered (start the
//! driver on each new order, on a blocking thread), or a driver finished
//! (sign the answer with the next sequence number and spool it like a
//! heartbeat). Answers therefore share the heartbeats' guarantees: durable
//! before sending, sent in sequence order, kept across a crash.

use crate::backoff::Backoff;
use crate::driver::{self, Driver, DriverError, Drivers, Ledger};
use crate::fmt::{count, group};
use crate::node::{self, NodeConfig, NodeError};
use crate::sender::{self, OnFailure};
use crate::spool::{Spool, SpoolError};
use crate::status::Status;
use crate::telemetry::TelemetrySource;
use crate::{heartbeat, now_ms};
use depin_client::{BatchOutcome, Client, ClientError, PolicyView, WorkOrder};
use depin_core::PublicKey;
use depin_protocol::{Signed, SigningKey, decode_signed};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Reports per request. Far below the coordinator's 10,000 and its body limit.
pub const DEFAULT_BATCH_SIZE: usize = 256;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub data_dir: PathBuf,
    /// Stop after creating this many heartbeats (then try to drain the spool).
    pub max_heartbeats: Option<u64>,
    /// Stop after this long (then try to drain the spool).
    pub for_duration: Option<Duration>,
    /// Heartbeat interval instead of the policy's `heartbeat_interval_seconds`.
    pub interval: Option<Duration>,
    /// Coordinator URL instead of the one in `node.json`.
    pub coordinator: Option<String>,
    pub batch_size: usize,
    pub backoff: Backoff,
    pub request_timeout: Duration,
    /// How long to keep sending after a stop before leaving the rest in the
    /// spool for the next run.
    pub drain_timeout: Duration,
    /// Print one status line per send on stdout.
    pub print_status: bool,
    /// The sector drivers of this build; the one for the device's sector
    /// answers its work orders. None for the sector: heartbeats only.
    pub drivers: Drivers,
    /// How often to ask for work orders (with a driver), instead of the
    /// heartbeat interval.
    pub work_poll: Option<Duration>,
}

impl RunOptions {
    pub fn new(data_dir: PathBuf) -> Self {
        RunOptions {
            data_dir,
            max_heartbeats: None,
            for_duration: None,
            interval: None,
            coordinator: None,
            batch_size: DEFAULT_BATCH_SIZE,
            backoff: Backoff::default(),
            request_timeout: depin_client::DEFAULT_TIMEOUT,
            drain_timeout: Duration::from_secs(5),
            print_status: false,
            drivers: Drivers::default(),
            work_poll: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error(
        "cannot learn the heartbeat interval: the coordinator is unreachable ({0}) and no policy is cached; \
         start the coordinator or pass --interval-seconds"
    )]
    NoPolicy(ClientError),
    #[error("another agent (pid {pid}) is running on {}; stop it first", dir.display())]
    Locked { pid: u32, dir: PathBuf },
    #[error(
        "device key {device} is REVOKED: the coordinator refuses every report it signs, so the agent stopped. {}",
        revoked_advice(dir, replaced_by.as_ref())
    )]
    Revoked {
        device: PublicKey,
        dir: PathBuf,
        /// The key that replaced it, when the coordinator names one.
        replaced_by: Option<PublicKey>,
    },
    #[error("cannot take the agent lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What to do about a revoked key. A revoked key cannot be rotated or
/// restored; a rotation that the coordinator committed but this data
/// directory did not finish is completed by `depin node rotate`.
fn revoked_advice(dir: &Path, replaced_by: Option<&PublicKey>) -> String {
    let dir = dir.display();
    match replaced_by {
        Some(new) => format!(
            "The coordinator says it was replaced by {new}: finish that rotation here with \
             `depin node rotate --data-dir {dir} --operator-key FILE`, then start the agent again."
        ),
        None => format!(
            "A revoked key cannot come back or be rotated: if the device is still yours, set it up \
             again with a fresh `depin node init --data-dir NEW_DIR ...` (this directory keeps the \
             revoked key). Next time, replace a key before it is revoked with \
             `depin node rotate --data-dir {dir} --operator-key FILE`."
        ),
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub heartbeats_created: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub accepted: u64,
    pub already_had: u64,
    pub dropped: u64,
    /// Reports left in the spool for the next run.
    pub pending: usize,
    /// Work orders answered (answers signed and spooled).
    pub answers_created: u64,
}

/// A pid file that keeps two agents off one data directory. A file left by a
/// crashed agent (its pid no longer running) is taken over.
struct PidLock {
    path: PathBuf,
}

impl PidLock {
    fn take(dir: &Path) -> Result<PidLock, AgentError> {
        let path = dir.join("agent.lock");
        let me = std::process::id();
        for _ in 0..2 {
            match node::write_private_new(&path, me.to_string().as_bytes()) {
                Ok(()) => return Ok(PidLock { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match pid {
                        Some(pid) if pid != me && Path::new(&format!("/proc/{pid}")).exists() => {
                            return Err(AgentError::Locked {
                                pid,
                                dir: dir.to_path_buf(),
                            });
                        }
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(source) => return Err(AgentError::Lock { path, source }),
            }
        }
        Err(AgentError::Lock {
            path,
            source: std::io::Error::other("lock file keeps reappearing"),
        })
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A batch on its way: its sequence numbers, those of them signed by the
/// current device key, and the answer.
struct Sent {
    seqs: Vec<u64>,
    own_seqs: Vec<u64>,
}

type InFlight = Pin<Box<dyn Future<Output = (Sent, Result<BatchOutcome, ClientError>)> + Send>>;

type Poll = Pin<Box<dyn Future<Output = Result<Vec<WorkOrder>, ClientError>> + Send>>;

/// A driver's result for one order.
type Answered = (WorkOrder, Result<Vec<u8>, DriverError>);

struct Agent {
    dir: PathBuf,
    key: SigningKey,
    device: PublicKey,
    client: Client,
    spool: Spool,
    status: Status,
    summary: RunSummary,
    telemetry: TelemetrySource,
    opts: RunOptions,
    batch_size: usize,
    failures: u32,
    sector: depin_core::Sector,
    driver: Option<Arc<dyn Driver>>,
    work: Ledger,
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the agent until `shutdown` resolves or a bound in `opts` is reached,
/// then tries to send what is left for up to `drain_timeout`.
pub async fn run(
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, AgentError> {
    let dir = opts.data_dir.clone();
    let config = NodeConfig::load(&dir)?;
    let key = node::load_device_key(&config.device_key_path(&dir))?;
    let _lock = PidLock::take(&dir)?;
    let coordinator = opts
        .coordinator
        .clone()
        .unwrap_or_else(|| config.coordinator.clone());
    let client = Client::with_timeout(&coordinator, opts.request_timeout)?;
    let (mut spool, recovery) = Spool::open(&dir)?;
    if recovery.dropped_bytes > 0 {
        let what = if recovery.corrupt {
            "DAMAGED spool records"
        } else {
            "a torn last record (crash during a write)"
        };
        tracing::error!(bytes = recovery.dropped_bytes, "spool: cut off {what}");
        eprintln!(
            "warning: spool: cut off {}: {what}",
            count(recovery.dropped_bytes, "byte")
        );
    }

    let interval = match opts.interval {
        Some(i) => i,
        None => Duration::from_secs(
            policy(&client, &dir)
                .await?
                .heartbeat_interval_seconds
                .max(1),
        ),
    };
    // The coordinator may know a higher sequence number than this spool (a
    // data directory restored from backup): never reuse one below it.
    match client.device(&config.device).await {
        Ok(view) => {
            if let Some(last) = view.last_seq {
                spool.raise_next_seq(last.saturating_add(1))?;
            }
            if view.revoked_ms.is_some() {
                return Err(AgentError::Revoked {
                    device: config.device,
                    dir,
                    replaced_by: view.replaced_by,
                });
            }
        }
        Err(e) if e.code() == Some("not_found") => {
            eprintln!(
                "warning: the coordinator does not know device {}; its reports will be refused",
                config.device
            );
        }
        Err(e) => tracing::info!("device lookup skipped: {e}"),
    }

    let mut status = Status::load(&dir);
    status.device = config.device.to_hex();
    status.coordinator = coordinator.clone();
    status.started_ms = now_ms();
    status.state = "running".into();
    status.declared_watts = config.declared_watts;
    status.pending = spool.pending() as u64;
    let batch_size = opts.batch_size.max(1);
    let driver = opts.drivers.for_sector(config.sector);
    status.driver = driver.as_ref().map(|d| d.name().to_string());
    // Answers still in the spool were computed before a restart: never
    // compute and send them again. Their deadline is unknown here; they are
    // forgotten when the spool has sent them (the coordinator then no longer
    // lists the order).
    let mut work = Ledger::default();
    for e in spool.peek(usize::MAX) {
        if let Some(id) = driver::spooled_answer(&e.bytes) {
            work.answered.insert(id, i64::MAX);
        }
    }
    let mut agent = Agent {
        dir,
        key,
        device: config.device,
        client,
        spool,
        status,
        summary: RunSummary::default(),
        telemetry: TelemetrySource::system(config.declared_watts, config.firmware_version.clone()),
        batch_size,
        opts,
        failures: 0,
        sector: config.sector,
        driver,
        work,
    };
    if agent.opts.print_status {
        let work = match &agent.driver {
            Some(d) => format!(", answers {} work with {}", config.sector, d.name()),
            None => String::new(),
        };
        println!(
            "node {} → {}: heartbeat every {:.1}s{work}, {} pending",
            config.device,
            coordinator,
            interval.as_secs_f64(),
            group(agent.spool.pending() as u64)
        );
    }
    if agent.driver.is_none() {
        tracing::info!(
            sector = %config.sector,
            "no driver for this sector in this build: heartbeats only, work orders are not answered"
        );
    }
    agent.save_status();
    if let Err(e) = agent.event_loop(interval, shutdown).await {
        if let AgentError::Revoked {
            device,
            replaced_by,
            ..
        } = &e
        {
            agent.status.state = "revoked".into();
            agent.status.pending = agent.spool.pending() as u64;
            agent.save_status();
            // Name the successor key when there is one, so the advice is right.
            if replaced_by.is_none()
                && let Ok(view) = agent.client.device(device).await
                && view.replaced_by.is_some()
            {
                return Err(AgentError::Revoked {
                    device: *device,
                    dir: agent.dir.clone(),
                    replaced_by: view.replaced_by,
                });
            }
        }
        return Err(e);
    }
    agent.status.state = "stopped".into();
    agent.summary.pending = agent.spool.pending();
    agent.save_status();
    Ok(agent.summary)
}

/// The policy from the coordinator (cached on success), else the cached one.
async fn policy(client: &Client, dir: &Path) -> Result<PolicyView, AgentError> {
    match client.policy().await {
        Ok(p) => {
            if let Err(e) = node::save_policy(dir, &p) {
                tracing::warn!("cannot cache the policy: {e}");
            }
            Ok(p)
        }
        Err(e) => match node::load_policy(dir) {
            Some(p) => {
                eprintln!(
                    "warning: coordinator unreachable ({e}); using the cached policy {}",
                    p.policy_id
                );
                Ok(p)
            }
            None => Err(AgentError::NoPolicy(e)),
        },
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn poll_opt(f: &mut Option<InFlight>) -> (Sent, Result<BatchOutcome, ClientError>) {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn poll_work_opt(f: &mut Option<Poll>) -> Result<Vec<WorkOrder>, ClientError> {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// The next driver result; pending while none runs.
async fn next_answer(set: &mut JoinSet<Answered>) -> Option<Answered> {
    if set.is_empty() {
        return std::future::pending().await;
    }
    match set.join_next().await {
        Some(Ok(a)) => Some(a),
        // Driver panics are caught inside the task; only a cancelled task
        // gets here, and there is nothing to do for it.
        Some(Err(_)) | None => None,
    }
}

impl Agent {
    async fn event_loop(
        &mut self,
        interval: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), AgentError> {
        tokio::pin!(shutdown);
        let start = Instant::now();
        let deadline = self.opts.for_duration.map(|d| start + d);
        let mut next_heartbeat = start;
        let mut send_at: Option<Instant> = (self.spool.pending() > 0).then_some(start);
        let mut inflight: Option<InFlight> = None;
        let poll_every = self.opts.work_poll.unwrap_or(interval);
        let mut next_poll: Option<Instant> = self.driver.as_ref().map(|_| start);
        let mut polling: Option<Poll> = None;
        let mut answering: JoinSet<Answered> = JoinSet::new();

        loop {
            if self
                .opts
                .max_heartbeats
                .is_some_and(|m| self.summary.heartbeats_created >= m)
            {
                break;
            }
            let send_due = if inflight.is_none() && self.spool.pending() > 0 {
                send_at
            } else {
                None
            };
            let poll_due = if polling.is_none() { next_poll } else { None };
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    if self.opts.print_status {
                        println!("stopping: {} pending", group(self.spool.pending() as u64));
                    }
                    break;
                }
                () = sleep_until_opt(deadline) => break,
                (sent, result) = poll_opt(&mut inflight) => {
                    inflight = None;
                    send_at = self.settle(sent, result)?;
                }
                () = tokio::time::sleep_until(next_heartbeat) => {
                    self.heartbeat();
                    next_heartbeat += interval;
                    let now = Instant::now();
                    if next_heartbeat < now {
                        // Fell behind (machine suspended, clock jump): skip the
                        // missed beats rather than send a burst.
                        next_heartbeat = now + interval;
                    }
                    if send_at.is_none() {
                        send_at = Some(now);
                    }
                }
                () = sleep_until_opt(send_due) => {
                    inflight = self.start_send();
                    if inflight.is_none() {
                        send_at = None;
                    }
                }
                Some((order, result)) = next_answer(&mut answering) => {
                    if self.answered(order, result) && send_at.is_none() {
                        send_at = Some(Instant::now());
                    }
                }
                result = poll_work_opt(&mut polling) => {
                    polling = None;
                    self.start_answers(result, &mut answering);
                }
                () = sleep_until_opt(poll_due) => {
                    polling = Some(self.start_poll());
                    next_poll = Some(Instant::now() + poll_every);
                }
            }
        }
        // Drivers still running are left to finish on their threads; their
        // orders are asked for again at the next start.
        answering.detach_all();

        // Drain: finish the request in flight, then keep sending until the
        // spool is empty, a send fails, or the drain time is up.
        let drain_deadline = Instant::now() + self.opts.drain_timeout;
        loop {
            if inflight.is_none() {
                if self.spool.pending() == 0
                    || self.failures > 0 && send_at.is_none_or(|t| t > drain_deadline)
                {
                    break;
                }
                if let Some(t) = send_at
                    && t > Instant::now()
                {
                    if t > drain_deadline {
                        break;
                    }
                    tokio::time::sleep_until(t).await;
                }
                inflight = self.start_send();
                if inflight.is_none() {
                    break;
                }
            }
            let fut = inflight.take().expect("in flight");
            match tokio::time::timeout_at(drain_deadline, fut).await {
                Ok((sent, result)) => send_at = self.settle(sent, result)?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Builds, signs and spools one heartbeat. A disk error is loud but not
    /// fatal: the next heartbeat tries again.
    fn heartbeat(&mut self) {
        let seq = match self.spool.reserve_seq() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot reserve a sequence number: {e}");
                eprintln!("error: heartbeat skipped: {e}");
                return;
            }
        };
        let t = self.telemetry.read();
        let signed = heartbeat::build(&self.key, seq, now_ms(), &t);
        match self.spool.append(seq, signed.encode()) {
            Ok(dropped) => {
                if dropped > 0 {
                    eprintln!(
                        "warning: spool full: dropped the oldest {}",
                        count(dropped as u64, "report")
                    );
                    self.status.count_drop("spool_full", dropped as u64);
                    self.summary.dropped += dropped as u64;
                }
                self.summary.heartbeats_created += 1;
                self.summary.first_seq.get_or_insert(seq);
                self.summary.last_seq = Some(seq);
                self.status.heartbeats_created += 1;
                self.status.last_seq_created = Some(seq);
                self.status.uptime_s = t.uptime_s;
                self.status.temperature_c = t.temperature_millideg_c.map(|m| m as f64 / 1000.0);
                self.status.pending = self.spool.pending() as u64;
                tracing::debug!(seq, "heartbeat spooled");
            }
            Err(e) => {
                tracing::error!("cannot spool heartbeat {seq}: {e}");
                eprintln!("error: heartbeat {seq} not spooled: {e}");
            }
        }
        self.save_status();
    }

    /// Starts a request for the oldest batch in the spool, or `None` when the
    /// spool is empty.
    fn start_send(&mut self) -> Option<InFlight> {
        let batch = self.spool.peek(self.batch_size);
        if batch.is_empty() {
            return None;
        }
        let mut seqs = Vec::with_capacity(batch.len());
        let mut own_seqs = Vec::with_capacity(batch.len());
        let mut signed: Vec<Signed> = Vec::with_capacity(batch.len());
        for e in batch {
            match decode_signed(&e.bytes) {
                Ok(s) => {
                    seqs.push(e.seq);
                    if s.envelope.signer == self.device {
                        own_seqs.push(e.seq);
                    }
                    signed.push(s);
                }
                Err(reason) => {
                    // Checksummed bytes this agent wrote itself: only a bug or
                    // a foreign file gets here. Keep order: send what came
                    // before, the bad record is dropped when it reaches the head.
                    if seqs.is_empty() {
                        eprintln!(
                            "error: spooled report {} does not decode ({reason}); dropping it",
                            e.seq
                        );
                        self.status.count_drop(reason.as_str(), 1);
                        self.summary.dropped += 1;
                        if let Err(err) = self.spool.ack_through(e.seq) {
                            eprintln!("error: {err}");
                            return None;
                        }
                        return self.start_send();
                    }
                    break;
                }
            }
        }
        let client = self.client.clone();
        Some(Box::pin(async move {
            let r = client.submit_reports(&signed).await;
            (Sent { seqs, own_seqs }, r)
        }))
    }

    /// Applies a request's outcome to the spool; returns when to send next.
    fn settle(
        &mut self,
        sent: Sent,
        result: Result<BatchOutcome, ClientError>,
    ) -> Result<Option<Instant>, AgentError> {
        let Sent { seqs, own_seqs } = sent;
        let now = Instant::now();
        match result {
            Ok(outcome) => {
                let s = sender::settle(&seqs, &outcome);
                for (seq, reason) in &s.dropped {
                    tracing::error!(seq, reason, "report refused by the coordinator; dropped");
                    eprintln!(
                        "error: report {seq} refused by the coordinator: {reason} — dropped (it can never be accepted)"
                    );
                    self.status.count_drop(reason, 1);
                }
                if !s.ignored_indices.is_empty() {
                    tracing::warn!(?s.ignored_indices, "coordinator sent verdicts for reports not in the batch");
                }
                self.spool.ack_through(s.acked_through)?;
                self.failures = 0;
                self.batch_size = (self.batch_size * 2).min(self.opts.batch_size.max(1));
                self.summary.accepted += u64::from(s.accepted);
                self.summary.already_had += u64::from(s.already_had);
                self.summary.dropped += s.dropped.len() as u64;
                self.status.accepted_total += u64::from(s.accepted);
                self.status.already_had_total += u64::from(s.already_had);
                self.status.last_success_ms = Some(now_ms());
                self.status.last_error = None;
                self.status.consecutive_failures = 0;
                self.status.next_retry_ms = None;
                self.status.pending = self.spool.pending() as u64;
                if self.opts.print_status {
                    let mut line = format!(
                        "sent {}, pending {}",
                        group(u64::from(s.accepted)),
                        group(self.spool.pending() as u64)
                    );
                    if s.already_had > 0 {
                        line.push_str(&format!(
                            ", already had {}",
                            group(u64::from(s.already_had))
                        ));
                    }
                    if !s.dropped.is_empty() {
                        line.push_str(&format!(", refused {}", group(s.dropped.len() as u64)));
                    }
                    println!("{line}");
                }
                self.save_status();
                if sender::own_key_revoked(&s.dropped, &own_seqs) {
                    return Err(self.revoked());
                }
                Ok((self.spool.pending() > 0).then_some(now))
            }
            Err(e) => {
                let next = match sender::on_failure(e.is_retryable(), e.code(), seqs.len()) {
                    OnFailure::Retry => {
                        self.failures = self.failures.saturating_add(1);
                        let delay = self
                            .opts
                            .backoff
                            .delay(self.failures, rand::random::<f64>());
                        self.status.consecutive_failures = self.failures;
                        self.status.next_retry_ms = Some(now_ms() + delay.as_millis() as i64);
                        if self.opts.print_status {
                            println!(
                                "send failed ({e}); pending {}, retrying in {:.1}s",
                                group(self.spool.pending() as u64),
                                delay.as_secs_f64()
                            );
                        }
                        tracing::warn!(failures = self.failures, "send failed: {e}");
                        now + delay
                    }
                    OnFailure::Shrink { batch_size } => {
                        tracing::warn!(
                            batch_size,
                            "batch refused as a whole ({e}); sending smaller batches"
                        );
                        self.batch_size = batch_size;
                        now
                    }
                    OnFailure::DropFirst { reason } => {
                        let seq = seqs[0];
                        eprintln!("error: report {seq} refused by the coordinator: {e} — dropped");
                        self.status.count_drop(&reason, 1);
                        self.summary.dropped += 1;
                        self.spool.ack_through(seq)?;
                        if reason == sender::REVOKED && own_seqs.contains(&seq) {
                            self.status.last_error = Some(e.to_string());
                            return Err(self.revoked());
                        }
                        now
                    }
                };
                self.status.last_error = Some(e.to_string());
                self.status.pending = self.spool.pending() as u64;
                self.save_status();
                Ok((self.spool.pending() > 0).then_some(next))
            }
        }
    }

    /// Starts `GET /v1/work` with a request signed now.
    fn start_poll(&mut self) -> Poll {
        let request = depin_client::work_request(&self.key, now_ms());
        let client = self.client.clone();
        Box::pin(async move { client.open_work(&request).await })
    }

    /// Starts the driver on each order of a poll not answered yet.
    fn start_answers(
        &mut self,
        result: Result<Vec<WorkOrder>, ClientError>,
        answering: &mut JoinSet<Answered>,
    ) {
        let Some(driver) = self.driver.clone() else {
            return;
        };
        let now = now_ms();
        self.status.last_work_poll_ms = Some(now);
        let orders = match result {
            Ok(orders) => orders,
            Err(e) => {
                tracing::warn!("cannot fetch work orders: {e}");
                self.status.last_work_error = Some(e.to_string());
                self.save_status();
                return;
            }
        };
        self.work.prune(now);
        self.status.work_open = orders.len() as u64;
        self.status.last_work_error = None;
        for order in driver::to_answer(&orders, &self.work, self.sector, now) {
            self.work.running.insert(order.id);
            let (driver, device, order) = (driver.clone(), self.device, order.clone());
            answering.spawn_blocking(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    driver.answer(&device, &order)
                }))
                .unwrap_or_else(|_| Err(DriverError::Failed("the driver panicked".into())));
                (order, r)
            });
        }
        self.save_status();
    }

    /// Signs and spools a driver's answer; true when one was spooled.
    fn answered(&mut self, order: WorkOrder, result: Result<Vec<u8>, DriverError>) -> bool {
        self.work.running.remove(&order.id);
        let id = hex::encode(order.id);
        let payload = match result {
            Ok(p) => p,
            Err(e @ DriverError::Refused(_)) => {
                tracing::warn!(work = %id, "work order refused by the driver: {e}");
                self.status.last_work_error = Some(format!("work {id}: {e}"));
                self.work.refused.insert(order.id, order.deadline_ms);
                self.save_status();
                return false;
            }
            Err(e @ DriverError::Failed(_)) => {
                tracing::warn!(work = %id, "work order not answered, trying again at the next poll: {e}");
                self.status.last_work_error = Some(format!("work {id}: {e}"));
                self.save_status();
                return false;
            }
        };
        let now = now_ms();
        if order.deadline_ms < now {
            tracing::warn!(work = %id, "answer ready after the order's deadline; not sent");
            self.status.last_work_error = Some(format!("work {id}: answered after its deadline"));
            self.work.refused.insert(order.id, order.deadline_ms);
            self.save_status();
            return false;
        }
        let seq = match self.spool.reserve_seq() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot reserve a sequence number for an answer: {e}");
                eprintln!("error: answer to work {id} not spooled: {e}");
                return false;
            }
        };
        let signed = match driver::answer_envelope(&self.key, seq, now, &order, payload) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(work = %id, "{e}");
                eprintln!("error: answer to work {id} not sent: {e}");
                self.status.last_work_error = Some(format!("work {id}: {e}"));
                self.work.refused.insert(order.id, order.deadline_ms);
                self.save_status();
                return false;
            }
        };
        match self.spool.append(seq, signed.encode()) {
            Ok(dropped) => {
                if dropped > 0 {
                    self.status.count_drop("spool_full", dropped as u64);
                    self.summary.dropped += dropped as u64;
                }
                self.work.answered.insert(order.id, order.deadline_ms);
                self.summary.answers_created += 1;
                self.summary.last_seq = Some(seq);
                self.status.answers_created += 1;
                self.status.last_seq_created = Some(seq);
                self.status.pending = self.spool.pending() as u64;
                tracing::debug!(work = %id, seq, "answer spooled");
                self.save_status();
                true
            }
            Err(e) => {
                tracing::error!(work = %id, "cannot spool answer {seq}: {e}");
                eprintln!("error: answer {seq} to work {id} not spooled: {e}");
                false
            }
        }
    }

    fn revoked(&self) -> AgentError {
        AgentError::Revoked {
            device: self.device,
            dir: self.dir.clone(),
            replaced_by: None,
        }
    }

    fn save_status(&mut self) {
        self.status.updated_ms = now_ms();
        if let Err(e) = self.status.save(&self.dir) {
            tracing::warn!("cannot write status.json: {e}");
        }
    }
}
