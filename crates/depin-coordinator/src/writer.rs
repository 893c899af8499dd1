//! Group commit for the report log. Concurrent ingest requests hand their
//! accepted reports to one writer task, which appends everything waiting in a
//! single transaction: SQLite allows one writer at a time, and one fsync for
//! many requests is what makes ingest throughput scale.

use depin_store::{NotStored, RejectionRow, ReportRow, Store, StoreError, TelemetryRow};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Upper bound of reports in one transaction; bounds memory and latency.
const MAX_GROUP_REPORTS: usize = 50_000;
/// Queue depth in requests; further senders wait (backpressure).
const QUEUE_DEPTH: usize = 256;

struct Job {
    reports: Vec<ReportRow>,
    telemetry: Vec<TelemetryRow>,
    rejections: Vec<RejectionRow>,
    done: oneshot::Sender<Result<Vec<Option<NotStored>>, String>>,
}

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WriterStats {
    pub commits: u64,
    pub reports: u64,
}

pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
    commits: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
}

impl Writer {
    pub(crate) fn spawn(store: Store) -> Writer {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE_DEPTH);
        let commits = Arc::new(AtomicU64::new(0));
        let reports = Arc::new(AtomicU64::new(0));
        let (c, r) = (commits.clone(), reports.clone());
        tokio::spawn(async move {
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
                let mut all_tele = Vec::new();
                let mut all_rej = Vec::new();
                let mut lens = Vec::with_capacity(jobs.len());
                for j in &mut jobs {
                    lens.push(j.reports.len());
                    all_reports.append(&mut j.reports);
                    all_tele.append(&mut j.telemetry);
                    all_rej.append(&mut j.rejections);
                }
                let result = store
                    .append_reports(&all_reports, &all_tele, &all_rej)
                    .await;
                c.fetch_add(1, Ordering::Relaxed);
                r.fetch_add(all_reports.len() as u64, Ordering::Relaxed);
                match result {
                    Ok(verdicts) => {
                        let mut it = verdicts.into_iter();
                        for (j, len) in jobs.into_iter().zip(lens) {
                            let _ = j.done.send(Ok(it.by_ref().take(len).collect()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "report log append failed");
                        for j in jobs {
                            let _ = j.done.send(Err(e.to_string()));
                        }
                    }
                }
            }
        });
        Writer {
            tx,
            commits,
            reports,
        }
    }

    pub(crate) async fn append(
        &self,
        reports: Vec<ReportRow>,
        telemetry: Vec<TelemetryRow>,
        rejections: Vec<RejectionRow>,
    ) -> Result<Vec<Option<NotStored>>, StoreError> {
        if reports.is_empty() && rejections.is_empty() {
            return Ok(Vec::new());
        }
        let (done, rx) = oneshot::channel();
        let gone = || StoreError::Corrupt("report writer stopped".into());
        self.tx
            .send(Job {
                reports,
                telemetry,
                rejections,
                done,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?.map_err(StoreError::Corrupt)
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            reports: self.reports.load(Ordering::Relaxed),
        }
    }
}
