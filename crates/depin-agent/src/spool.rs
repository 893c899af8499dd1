//! The on-disk spool: every report is made durable here before it is sent,
//! and leaves only once the coordinator has answered for it.
//!
//! Two files in the node's data directory:
//! - `spool.log`: records in the [`crate::record`] format, appended and
//!   fsynced one at a time; a torn tail (a crash mid-append) is detected by
//!   length and checksum on open and cut off.
//! - `spool.state`: JSON `{next_seq, acked_through}`, replaced atomically
//!   (write a temporary file, fsync, rename, fsync the directory).
//!
//! Why acknowledgements are a sequence number rather than a file offset: the
//! log can then be compacted (rewritten without acknowledged records) at any
//! moment, and a crash between any two steps leaves a state that reads back
//! correctly: records at or below `acked_through` are simply skipped.
//!
//! Why `next_seq` is persisted before a number is used: the coordinator
//! accepts only strictly increasing sequence numbers per device, so a number
//! reused after a crash would be refused as a replay. A crash between
//! reserving and appending leaves a gap, which the coordinator accepts.

use crate::record::{self, Tail};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub const LOG_FILE: &str = "spool.log";
pub const STATE_FILE: &str = "spool.state";

/// Most reports held at once. At the default 5-minute cadence that is almost
/// a year of heartbeats, far beyond the coordinator's admission window, so the
/// bound only matters when something is badly wrong; then the oldest go first.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// Compact once acknowledged records take more than this many bytes and more
/// than half the log.
const COMPACT_MIN_BYTES: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the spool state file {} is damaged ({detail}); the reports in spool.log are intact. \
         Move spool.state away to rebuild it from the log and the coordinator's last sequence number",
        path.display()
    )]
    StateCorrupt { path: PathBuf, detail: String },
    #[error("sequence number {seq} is not above the last spooled one ({last})")]
    OutOfOrder { seq: u64, last: u64 },
    #[error("a report of {0} bytes is too large for the spool")]
    TooLarge(usize),
}

type Result<T> = std::result::Result<T, SpoolError>;

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpoolState {
    version: u32,
    /// The next sequence number to hand out; never handed out twice.
    next_seq: u64,
    /// Every record with `seq <= acked_through` is done with.
    acked_through: u64,
}

/// A spooled report: its sequence number and the signed envelope's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub bytes: Vec<u8>,
}

/// What [`Spool::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Reports still to send.
    pub pending: usize,
    /// Bytes cut off the end of the log (a torn or damaged tail).
    pub dropped_bytes: u64,
    /// Whether the cut was damage in the middle (not just a torn last record).
    pub corrupt: bool,
}

pub struct Spool {
    dir: PathBuf,
    log: File,
    log_len: u64,
    acked_bytes: u64,
    state: SpoolState,
    pending: VecDeque<Entry>,
    last_spooled: u64,
    max_pending: usize,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path) -> Result<(Spool, Recovery)> {
        Spool::open_with_limit(dir, DEFAULT_MAX_PENDING)
    }

    pub fn open_with_limit(dir: &Path, max_pending: usize) -> Result<(Spool, Recovery)> {
        fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
        for tmp in [
            tmp_path(&dir.join(LOG_FILE)),
            tmp_path(&dir.join(STATE_FILE)),
        ] {
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("cannot remove", &tmp)(e)),
            }
        }
        let state_path = dir.join(STATE_FILE);
        let state = match fs::read(&state_path) {
            Ok(bytes) => serde_json::from_slice::<SpoolState>(&bytes).map_err(|e| {
                SpoolError::StateCorrupt {
                    path: state_path.clone(),
                    detail: e.to_string(),
                }
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => SpoolState {
                version: 1,
                next_seq: 1,
                acked_through: 0,
            },
            Err(e) => return Err(io_err("cannot read", &state_path)(e)),
        };

        let log_path = dir.join(LOG_FILE);
        let buf = match fs::read(&log_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("cannot read", &log_path)(e)),
        };
        let scan = record::scan(&buf);
        let mut recovery = Recovery::default();
        if scan.tail != Tail::Clean {
            recovery.dropped_bytes = (buf.len() - scan.valid_len) as u64;
            recovery.corrupt = scan.tail == Tail::Corrupt;
            let f = OpenOptions::new()
                .write(true)
                .open(&log_path)
                .map_err(io_err("cannot open", &log_path))?;
            f.set_len(scan.valid_len as u64)
                .map_err(io_err("cannot truncate", &log_path))?;
            f.sync_all().map_err(io_err("cannot sync", &log_path))?;
        }
        let mut pending = VecDeque::new();
        let mut acked_bytes = 0u64;
        let mut last_spooled = 0u64;
        for f in &scan.records {
            last_spooled = f.seq;
            if f.seq <= state.acked_through {
                acked_bytes += (record::HEADER_LEN + f.payload.len()) as u64;
            } else {
                pending.push_back(Entry {
                    seq: f.seq,
                    bytes: buf[f.payload.clone()].to_vec(),
                });
            }
        }
        recovery.pending = pending.len();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("cannot open", &log_path))?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            log,
            log_len: scan.valid_len as u64,
            acked_bytes,
            state,
            pending,
            last_spooled,
            max_pending: max_pending.max(1),
        };
        // A state file older than the log (it is written first, so only after
        // damage) must never hand out a number the log already holds.
        let floor = spool.last_spooled.max(spool.state.acked_through) + 1;
        if spool.state.next_seq < floor {
            spool.state.next_seq = floor;
            spool.write_state()?;
        }
        if spool.pending.is_empty() && spool.log_len > 0 {
            spool.truncate_log()?;
        }
        Ok((spool, recovery))
    }

    /// Hands out the next sequence number, durably: the number after it is on
    /// disk before this returns, so no number is ever handed out twice.
    pub fn reserve_seq(&mut self) -> Result<u64> {
        let seq = self.state.next_seq;
        self.state.next_seq = seq.checked_add(1).expect("sequence numbers do not run out");
        if let Err(e) = self.write_state() {
            self.state.next_seq = seq;
            return Err(e);
        }
        Ok(seq)
    }

    /// Makes sure sequence numbers handed out from now on are at least `seq`
    /// (used when the coordinator knows a higher one than this spool, e.g.
    /// after the data directory was restored from an old backup).
    pub fn raise_next_seq(&mut self, seq: u64) -> Result<()> {
        if seq > self.state.next_seq {
            self.state.next_seq = seq;
            self.write_state()?;
        }
        Ok(())
    }

    pub fn next_seq(&self) -> u64 {
        self.state.next_seq
    }

    /// Appends a report and fsyncs it. Returns how many of the oldest pending
    /// reports were dropped to stay within the bound (normally 0).
    pub fn append(&mut self, seq: u64, bytes: Vec<u8>) -> Result<usize> {
        if bytes.len() > record::MAX_PAYLOAD_LEN {
            return Err(SpoolError::TooLarge(bytes.len()));
        }
        if seq <= self.last_spooled || seq <= self.state.acked_through {
            return Err(SpoolError::OutOfOrder {
                seq,
                last: self.last_spooled.max(self.state.acked_through),
            });
        }
        let mut dropped = 0;
        if self.pending.len() >= self.max_pending {
            let excess = self.pending.len() + 1 - self.max_pending;
            let through = self.pending[excess - 1].seq;
            self.ack_through(through)?;
            dropped = excess;
        }
        let rec = record::encode(seq, &bytes);
        let path = self.dir.join(LOG_FILE);
        let written = self.log.write_all(&rec).and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            // Do not leave a half record for the next append to land behind.
            let _ = self.log.set_len(self.log_len);
            return Err(io_err("cannot append to", &path)(e));
        }
        self.log_len += rec.len() as u64;
        self.last_spooled = seq;
        self.pending.push_back(Entry { seq, bytes });
        Ok(dropped)
    }

    /// The oldest `max` pending reports, in sequence order.
    pub fn peek(&self, max: usize) -> Vec<Entry> {
        self.pending.iter().take(max).cloned().collect()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn acked_through(&self) -> u64 {
        self.state.acked_through
    }

    /// Marks every report up to `seq` as done with, durably, and reclaims space.
    pub fn ack_through(&mut self, seq: u64) -> Result<()> {
        if seq <= self.state.acked_through {
            return Ok(());
        }
        let previous = self.state.acked_through;
        self.state.acked_through = seq;
        if let Err(e) = self.write_state() {
            self.state.acked_through = previous;
            return Err(e);
        }
        while self.pending.front().is_some_and(|e| e.seq <= seq) {
            let e = self.pending.pop_front().expect("front exists");
            self.acked_bytes += (record::HEADER_LEN + e.bytes.len()) as u64;
        }
        if self.pending.is_empty() {
            self.truncate_log()?;
        } else if self.acked_bytes > COMPACT_MIN_BYTES && self.acked_bytes * 2 > self.log_len {
            self.compact()?;
        }
        Ok(())
    }

    fn truncate_log(&mut self) -> Result<()> {
        let path = self.dir.join(LOG_FILE);
        self.log
            .set_len(0)
            .map_err(io_err("cannot truncate", &path))?;
        self.log.sync_all().map_err(io_err("cannot sync", &path))?;
        self.log_len = 0;
        self.acked_bytes = 0;
        Ok(())
    }

    /// Rewrites the log with only the pending records. Crash-safe because the
    /// rename is atomic and acknowledgements are sequence numbers.
    fn compact(&mut self) -> Result<()> {
        let path = self.dir.join(LOG_FILE);
        let tmp = tmp_path(&path);
        let mut buf = Vec::new();
        for e in &self.pending {
            buf.extend_from_slice(&record::encode(e.seq, &e.bytes));
        }
        write_durably(&tmp, &path, &buf)?;
        self.log = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err("cannot open", &path))?;
        self.log_len = buf.len() as u64;
        self.acked_bytes = 0;
        Ok(())
    }

    fn write_state(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let bytes = serde_json::to_vec(&self.state).expect("state serialises");
        write_durably(&tmp_path(&path), &path, &bytes)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes `bytes` to `tmp`, fsyncs it, renames it over `path` and fsyncs the
/// directory, so `path` holds either the old or the new contents after a crash.
fn write_durably(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(tmp).map_err(io_err("cannot create", tmp))?;
    f.write_all(bytes).map_err(io_err("cannot write", tmp))?;
    f.sync_all().map_err(io_err("cannot sync", tmp))?;
    drop(f);
    fs::rename(tmp, path).map_err(io_err("cannot rename onto", path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot sync directory", dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u64) -> Vec<u8> {
        format!("report number {seq}").into_bytes()
    }

    #[test]
    fn reserve_append_ack_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r) = Spool::open(dir.path()).unwrap();
        assert_eq!(r, Recovery::default());
        for _ in 0..5 {
            let seq = s.reserve_seq().unwrap();
            s.append(seq, payload(seq)).unwrap();
        }
        assert_eq!(
            s.peek(2).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2]
        );
        s.ack_through(2).unwrap();
        drop(s);
        let (mut s, r) = Spool::open(dir.path()).unwrap();
        assert_eq!(r.pending, 3);
        assert_eq!(
            s.peek(10).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(s.peek(1)[0].bytes, payload(3));
        assert_eq!(s.reserve_seq().unwrap(), 6);
        s.ack_through(5).unwrap();
        assert_eq!(
            fs::metadata(dir.path().join(LOG_FILE)).unwrap().len(),
            0,
            "drained log is truncated"
        );
        drop(s);
        let (s, _) = Spool::open(dir.path()).unwrap();
        assert_eq!(s.pending(), 0);
        assert_eq!(
            s.next_seq(),
            7,
            "a reserved number is never handed out again"
        );
    }

    #[test]
    fn out_of_order_appends_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        s.append(5, payload(5)).unwrap();
        assert!(matches!(
            s.append(5, payload(5)),
            Err(SpoolError::OutOfOrder { .. })
        ));
        assert!(matches!(
            s.append(3, payload(3)),
            Err(SpoolError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn bounded_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open_with_limit(dir.path(), 3).unwrap();
        let mut dropped = 0;
        for seq in 1..=5 {
            dropped += s.append(seq, payload(seq)).unwrap();
        }
        assert_eq!(dropped, 2);
        assert_eq!(
            s.peek(10).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
    }

    #[test]
    fn compaction_keeps_pending_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path()).unwrap();
        let big = vec![7u8; 8 * 1024];
        for seq in 1..=64 {
            s.append(seq, big.clone()).unwrap();
        }
        s.ack_through(60).unwrap();
        let len = fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        assert_eq!(
            len,
            4 * (record::HEADER_LEN + big.len()) as u64,
            "compacted to the 4 pending records"
        );
        s.append(65, payload(65)).unwrap();
        drop(s);
        let (s, r) = Spool::open(dir.path()).unwrap();
        assert_eq!(r.pending, 5);
        assert_eq!(
            s.peek(10).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![61, 62, 63, 64, 65]
        );
    }

    #[test]
    fn a_damaged_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        match Spool::open(dir.path()) {
            Err(e @ SpoolError::StateCorrupt { .. }) => {
                assert!(e.to_string().contains("spool.state"))
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a damaged spool"),
        }
    }
}
