//! Crash recovery of the spool: a crash can cut the log anywhere inside the
//! record being appended. For every byte offset of the last record, the spool
//! must reopen with exactly the earlier records, never panic, hand out no
//! sequence number twice, and keep working (append, reopen) afterwards.

use depin_agent::spool::{LOG_FILE, STATE_FILE, Spool};
use std::fs;
use std::path::Path;

fn payload(seq: u64) -> Vec<u8> {
    format!("signed report bytes for sequence number {seq}").into_bytes()
}

fn pending_seqs(s: &Spool) -> Vec<u64> {
    s.peek(usize::MAX).iter().map(|e| e.seq).collect()
}

/// A spool with records 1..=5 where 1 and 2 are acknowledged.
fn build(dir: &Path) -> (Vec<u8>, Vec<u8>, usize) {
    let (mut s, _) = Spool::open(dir).unwrap();
    for _ in 0..4 {
        let seq = s.reserve_seq().unwrap();
        s.append(seq, payload(seq)).unwrap();
    }
    s.ack_through(2).unwrap();
    let before_last = fs::metadata(dir.join(LOG_FILE)).unwrap().len() as usize;
    let seq = s.reserve_seq().unwrap();
    s.append(seq, payload(seq)).unwrap();
    drop(s);
    (
        fs::read(dir.join(LOG_FILE)).unwrap(),
        fs::read(dir.join(STATE_FILE)).unwrap(),
        before_last,
    )
}

#[test]
fn every_cut_inside_the_last_record_recovers_the_earlier_ones() {
    let src = tempfile::tempdir().unwrap();
    let (log, state, before_last) = build(src.path());
    assert!(before_last < log.len());
    for cut in before_last..=log.len() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOG_FILE), &log[..cut]).unwrap();
        fs::write(dir.path().join(STATE_FILE), &state).unwrap();

        let (mut s, recovery) = Spool::open(dir.path()).unwrap();
        let whole = cut == log.len();
        let expect: Vec<u64> = if whole { vec![3, 4, 5] } else { vec![3, 4] };
        assert_eq!(pending_seqs(&s), expect, "cut at {cut}");
        assert_eq!(
            recovery.dropped_bytes as usize,
            if whole || cut == before_last {
                0
            } else {
                cut - before_last
            }
        );
        assert!(
            !recovery.corrupt,
            "a torn tail is not corruption (cut at {cut})"
        );
        for e in s.peek(usize::MAX) {
            assert_eq!(e.bytes, payload(e.seq));
        }
        // Seq 5 was reserved before the crash: it is never handed out again.
        let seq = s.reserve_seq().unwrap();
        assert_eq!(seq, 6, "cut at {cut}");
        s.append(seq, payload(seq)).unwrap();
        drop(s);

        let (s, recovery) = Spool::open(dir.path()).unwrap();
        let mut expect = expect;
        expect.push(6);
        assert_eq!(pending_seqs(&s), expect, "reopen after cut at {cut}");
        assert_eq!(recovery.dropped_bytes, 0);
    }
}

#[test]
fn a_lost_state_file_never_reuses_a_spooled_number() {
    let src = tempfile::tempdir().unwrap();
    let (log, _, _) = build(src.path());
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(LOG_FILE), &log).unwrap();
    let (mut s, _) = Spool::open(dir.path()).unwrap();
    // Without the state, acknowledged records come back (a harmless resend:
    // the coordinator answers `replayed_sequence`), and numbering continues
    // above the log.
    assert_eq!(pending_seqs(&s), vec![1, 2, 3, 4, 5]);
    assert_eq!(s.reserve_seq().unwrap(), 6);
}

#[test]
fn garbage_log_is_cut_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(LOG_FILE), vec![0xAB; 1000]).unwrap();
    let (mut s, recovery) = Spool::open(dir.path()).unwrap();
    assert_eq!(s.pending(), 0);
    assert_eq!(recovery.dropped_bytes, 1000);
    let seq = s.reserve_seq().unwrap();
    s.append(seq, payload(seq)).unwrap();
    drop(s);
    let (s, _) = Spool::open(dir.path()).unwrap();
    assert_eq!(pending_seqs(&s), vec![seq]);
}
