//! The retry schedule: capped exponential backoff with jitter. Pure: the random
//! draw is an argument, so the schedule is tested exactly.

use std::time::Duration;

/// Capped exponential backoff with "equal jitter": the `n`-th consecutive
/// failure waits between half and all of `min(cap, base · 2ⁿ)`.
///
/// Why jitter: after a coordinator restart every agent that buffered reports
/// retries; without jitter they would all come back in the same second. Why
/// keep half the delay fixed: so a single agent still backs off predictably
/// and its status file can say roughly when the next attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s doubling up to 60 s.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retrying after `failures` consecutive failures
    /// (`failures ≥ 1`; 0 is treated as 1). `jitter` is a uniform draw in
    /// `[0, 1]`, clamped.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(31);
        let full = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let half = full / 2;
        half + (full - half).mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff::default();
        let full: Vec<u64> = (1..=9)
            .map(|n| b.delay(n, 1.0).as_millis() as u64)
            .collect();
        assert_eq!(
            full,
            vec![1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
        );
        let low: Vec<u64> = (1..=3)
            .map(|n| b.delay(n, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(low, vec![500, 1000, 2000]);
    }

    #[test]
    fn jitter_stays_in_bounds_and_never_overflows() {
        let b = Backoff::default();
        for n in [0, 1, 5, 31, 32, 1000, u32::MAX] {
            for j in [-1.0, 0.0, 0.3, 1.0, 7.0, f64::NAN, f64::INFINITY] {
                let d = b.delay(n, j);
                assert!(d <= b.cap, "{n} {j}");
                assert!(d >= b.base / 2, "{n} {j}");
            }
        }
    }
}
