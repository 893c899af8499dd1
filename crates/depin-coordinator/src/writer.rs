//! Group commit for the report log. Concurrent ingest requests hand their
//! reports to one writer task, which appends everything waiting in a single
//! transaction: SQLite allows one writer at a time, and one fsync for many
//! requests is what makes durable ingest affordable.
//!
//! The writer must outlive any input. Each append runs in a task of its own,
//! so even a panic deep in a driver becomes an error for the requests of that
//! group, not the end of ingest for everyone; and if the writer loop itself
//! ever ends, [`Writer::is_alive`] says so and `/healthz` fails.

use depin_store::{AppendRules, DeviceAdmission, NewReport, NotStored, RejectionRow, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Upper bound of reports in one transaction; bounds memory and latency.
const MAX_GROUP_REPORTS: usize = 50_000;
/// Queue depth in requests; further senders wait (backpressure).
const QUEUE_DEPTH: usize = 256;

/// Why a group was not stored.
#[derive(Clone, Debug)]
pub(crate) struct WriteFailure {
    pub message: String,
    /// The storage failed (the request may be retried), rather than the data.
    pub unavailable: bool,
}

/// One request's share of a group's append.
pub(crate) struct JobResult {
    /// Index for index with the request's reports.
    pub verdicts: Vec<Option<NotStored>>,
    /// The committed state of every device of the whole group, sorted by key;
    /// shared, not copied, between the group's requests.
    pub devices: Arc<Vec<DeviceAdmission>>,
}

struct Job {
    reports: Vec<NewReport>,
    rejections: Vec<RejectionRow>,
    done: oneshot::Sender<Result<JobResult, WriteFailure>>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WriterStats {
    pub commits: u64,
    pub reports: u64,
    pub failures: u64,
}

pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    alive: Arc<AtomicBool>,
}

/// Marks the writer dead when its loop ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn spawn(store: Store, rules: AppendRules) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        let reports = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (c, r, f) = (commits.clone(), reports.clone(), failures.clone());
        let guard = AliveGuard(alive.clone());
        tokio::spawn(async move {
            let _guard = guard;
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                let mut n = jobs[0].reports.len();
                while n < MAX_GROUP_REPORTS {
                    match rx.try_recv() {
                        Ok(j) => {
                            n += j.reports.len();
                            jobs.push(j);
                        }
                        Err(_) => break,
                    }
                }
                let mut all_reports = Vec::with_capacity(n);
                let mut all_rej = Vec::new();
                let mut lens = Vec::with_capacity(jobs.len());
                for j in &mut jobs {
                    lens.push(j.reports.len());
                    all_reports.append(&mut j.reports);
                    all_rej.append(&mut j.rejections);
                }
                let count = all_reports.len() as u64;
                let store = store.clone();
                let rules = rules.clone();
                let result = tokio::spawn(async move {
                    store.append_reports(&all_reports, &all_rej, rules).await
                })
                .await;
                let result = match result {
                    Ok(Ok(appended)) => Ok(appended),
                    Ok(Err(e)) => Err(WriteFailure {
                        message: e.to_string(),
                        unavailable: e.is_unavailable(),
                    }),
                    Err(join) => Err(WriteFailure {
                        message: format!("the report append failed unexpectedly: {join}"),
                        unavailable: true,
                    }),
                };
                match result {
                    Ok(appended) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        r.fetch_add(count, Ordering::Relaxed);
                        let devices = Arc::new(appended.devices);
                        let mut verdicts = appended.verdicts.into_iter();
                        for (j, len) in jobs.into_iter().zip(lens) {
                            let _ = j.done.send(Ok(JobResult {
                                verdicts: verdicts.by_ref().take(len).collect(),
                                devices: devices.clone(),
                            }));
                        }
                    }
                    Err(e) => {
                        f.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("depin_report_log_append_failures_total").increment(1);
                        tracing::error!(error = %e.message, "report log append failed; nothing of this group was stored");
                        for j in jobs {
                            let _ = j.done.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Writer {
            tx,
            commits,
            reports,
            failures,
            alive,
        }
    }

    pub(crate) async fn append(
        &self,
        reports: Vec<NewReport>,
        rejections: Vec<RejectionRow>,
    ) -> Result<JobResult, WriteFailure> {
        if reports.is_empty() && rejections.is_empty() {
            return Ok(JobResult {
                verdicts: Vec::new(),
                devices: Arc::default(),
            });
        }
        let (done, rx) = oneshot::channel();
        let gone = || WriteFailure {
            message: "the report writer is not running; the coordinator must be restarted".into(),
            unavailable: true,
        };
        self.tx
            .send(Job {
                reports,
                rejections,
                done,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            reports: self.reports.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }
}
