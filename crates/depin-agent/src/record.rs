//! The spool's record format: pure encoding and scanning, no I/O.
//!
//! A spool file is a sequence of records, each
//!
//! ```text
//! len: u32 LE | seq: u64 LE | check: 8 bytes | payload: len bytes
//! ```
//!
//! where `check` is the first 8 bytes of BLAKE3 over `len ‖ seq ‖ payload`.
//! Records are appended and fsynced one at a time, so after a crash at most the
//! last record is incomplete ("torn"). [`scan`] reads records until the first
//! one that is incomplete or whose checksum fails and reports where the valid
//! prefix ends; the caller truncates the file there. The checksum covers the
//! length too, so a torn or garbled length cannot make the scanner skip or
//! misread the following bytes as records.

/// Bytes before the payload: length, sequence number, checksum.
pub const HEADER_LEN: usize = 4 + 8 + 8;

/// Largest payload a record may carry. A signed heartbeat is ~200 bytes; the
/// bound keeps a garbled length from asking for gigabytes.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024;

fn checksum(len: u32, seq: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(payload);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

/// The bytes of one record.
///
/// # Panics
/// When `payload` is longer than [`MAX_PAYLOAD_LEN`]: the caller builds the
/// payload (a signed report) and must never produce one that large.
pub fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= MAX_PAYLOAD_LEN,
        "spool record payload too large"
    );
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&checksum(len, seq, payload));
    out.extend_from_slice(payload);
    out
}

/// One record found by [`scan`]: its sequence number and where its payload lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub payload: std::ops::Range<usize>,
}

/// What follows the last valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// The buffer ends exactly after a record.
    Clean,
    /// The buffer ends inside a record: a crash during an append.
    Torn,
    /// A complete-looking record fails its checksum or bounds, or its sequence
    /// number does not increase: damage, not a crash.
    Corrupt,
}

/// The result of scanning a spool buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Length of the valid prefix: where the file should be truncated.
    pub valid_len: usize,
    pub tail: Tail,
}

/// Reads records from `buf` until the end or the first bad one. Never panics.
pub fn scan(buf: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut at = 0usize;
    let mut last_seq: Option<u64> = None;
    let tail = loop {
        let rest = &buf[at..];
        if rest.is_empty() {
            break Tail::Clean;
        }
        if rest.len() < HEADER_LEN {
            break Tail::Torn;
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let seq = u64::from_le_bytes(rest[4..12].try_into().expect("8 bytes"));
        let check: [u8; 8] = rest[12..20].try_into().expect("8 bytes");
        let n = len as usize;
        if n > MAX_PAYLOAD_LEN {
            // A length this large was never written: either garbage or a
            // partly written header. Both end the valid prefix here.
            break if rest.len() < HEADER_LEN + MAX_PAYLOAD_LEN {
                Tail::Torn
            } else {
                Tail::Corrupt
            };
        }
        if rest.len() < HEADER_LEN + n {
            break Tail::Torn;
        }
        let payload = &rest[HEADER_LEN..HEADER_LEN + n];
        if checksum(len, seq, payload) != check {
            // The last record in the buffer failing its checksum is what a
            // torn write looks like when the file system extended the file
            // before the data landed; anything earlier is damage.
            break if at + HEADER_LEN + n == buf.len() {
                Tail::Torn
            } else {
                Tail::Corrupt
            };
        }
        if last_seq.is_some_and(|l| seq <= l) {
            break Tail::Corrupt;
        }
        last_seq = Some(seq);
        records.push(Found {
            seq,
            payload: at + HEADER_LEN..at + HEADER_LEN + n,
        });
        at += HEADER_LEN + n;
    };
    Scan {
        records,
        valid_len: at,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(records: &[(u64, &[u8])]) -> Vec<u8> {
        records.iter().flat_map(|(s, p)| encode(*s, p)).collect()
    }

    #[test]
    fn round_trip() {
        let buf = file(&[(1, b"one"), (2, b""), (7, b"seven")]);
        let s = scan(&buf);
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(s.valid_len, buf.len());
        let got: Vec<(u64, &[u8])> = s
            .records
            .iter()
            .map(|f| (f.seq, &buf[f.payload.clone()]))
            .collect();
        assert_eq!(
            got,
            vec![(1, &b"one"[..]), (2, &b""[..]), (7, &b"seven"[..])]
        );
    }

    #[test]
    fn every_cut_of_the_last_record_is_a_torn_tail() {
        let buf = file(&[(1, b"first report"), (2, b"second report")]);
        let first_len = HEADER_LEN + 12;
        for cut in first_len..buf.len() {
            let s = scan(&buf[..cut]);
            assert_eq!(s.records.len(), 1, "cut at {cut}");
            assert_eq!(s.valid_len, first_len, "cut at {cut}");
            let expect = if cut == first_len {
                Tail::Clean
            } else {
                Tail::Torn
            };
            assert_eq!(s.tail, expect, "cut at {cut}");
        }
    }

    #[test]
    fn damage_in_the_middle_is_corruption() {
        let mut buf = file(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        buf[HEADER_LEN + 4 + HEADER_LEN] ^= 1; // first payload byte of record 2
        let s = scan(&buf);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.tail, Tail::Corrupt);
    }

    #[test]
    fn sequence_numbers_must_increase() {
        let buf = file(&[(5, b"a"), (5, b"b")]);
        let s = scan(&buf);
        assert_eq!(s.records.len(), 1);
        assert_eq!(s.tail, Tail::Corrupt);
    }

    proptest! {
        /// Arbitrary bytes never panic the scanner, and the valid prefix
        /// re-scans to the same records.
        #[test]
        fn scan_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = scan(&bytes);
            prop_assert!(s.valid_len <= bytes.len());
            let again = scan(&bytes[..s.valid_len]);
            prop_assert_eq!(again.records, s.records);
            prop_assert_eq!(again.tail, Tail::Clean);
        }

        /// Flipping any one bit of a record file loses at most the records
        /// from the damaged one on, never yields a wrong payload.
        #[test]
        fn bit_flips_are_detected(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5),
            flip in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let records: Vec<(u64, &[u8])> = payloads.iter().enumerate().map(|(i, p)| (i as u64 + 1, p.as_slice())).collect();
            let mut buf = file(&records);
            let at = flip.index(buf.len());
            buf[at] ^= 1 << bit;
            let s = scan(&buf);
            for f in &s.records {
                let idx = (f.seq - 1) as usize;
                prop_assert_eq!(&buf[f.payload.clone()], payloads[idx].as_slice());
            }
            prop_assert!(s.records.len() < payloads.len());
            prop_assert!(s.tail != Tail::Clean);
        }
    }
}
