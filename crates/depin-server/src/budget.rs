//! A per-client-address budget for work nobody is accountable for.
//!
//! Reports that fail decoding or signature checks, or name an unregistered
//! key, prove nothing about who sent them, so nothing is stored for them; but
//! checking them still costs CPU. Registrations cost a device row each. Both
//! are charged to the sending address here, and an address that spent its
//! budget is refused (`429 rate_limited`) before any work is done, until its
//! bucket refills. Verified reports from registered devices are never charged:
//! a gateway forwarding thousands of honest devices is not slowed.
//!
//! The table of addresses is bounded: IPv6 clients are grouped by /64 (one
//! subscriber's network), and when the table is full, addresses whose bucket
//! has refilled completely are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most client addresses tracked at once.
const MAX_TRACKED: usize = 65_536;
/// Buckets refill over this window.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct UnverifiedBudget {
    per_window: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    /// Load balancers whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpAddr>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left, scaled by 1000 so refills in small steps stay exact
    /// enough. May go negative down to minus one window's worth: a request is
    /// charged in full even when it overdraws, so a big batch cannot slip
    /// through on the last token, and the debt is paid back in time.
    milli_tokens: i64,
    at: Instant,
}

impl UnverifiedBudget {
    pub fn new(per_window: u32, trusted_proxies: Vec<IpAddr>) -> Self {
        UnverifiedBudget {
            per_window,
            buckets: Mutex::new(HashMap::new()),
            trusted_proxies,
        }
    }

    /// The address to charge for a request from `peer`. Behind a trusted
    /// load balancer every client would otherwise share its address (and one
    /// abuser would throttle everyone), so there the client is the nearest
    /// hop in `X-Forwarded-For` that is not itself a trusted proxy. The
    /// header of an untrusted peer is ignored: anyone can write one.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        header
            .rsplit(',')
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .find(|ip| !self.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }

    fn capacity(&self) -> i64 {
        i64::from(self.per_window) * 1000
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        }
    }

    fn refill(&self, b: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(b.at);
        let add = (self.capacity() as u128 * elapsed.as_millis() / WINDOW.as_millis().max(1))
            .min(i64::MAX as u128) as i64;
        if add > 0 {
            b.milli_tokens = b.milli_tokens.saturating_add(add).min(self.capacity());
            b.at = now;
        }
    }

    /// Whether `ip` may still send unaccountable work. Checked before a
    /// request does anything.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(&Self::key(ip)) {
            None => true,
            Some(b) => {
                self.refill(b, now);
                b.milli_tokens > 0
            }
        }
    }

    /// Charges `n` units of unaccountable work to `ip`.
    pub fn charge(&self, ip: IpAddr, n: u32) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        let capacity = self.capacity();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(ip);
        if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
            // Forget addresses that have been quiet long enough to be full.
            let window = WINDOW;
            map.retain(|_, b| now.saturating_duration_since(b.at) < window);
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let b = map.entry(key).or_insert(Bucket {
            milli_tokens: capacity,
            at: now,
        });
        self.refill(b, now);
        b.milli_tokens = b
            .milli_tokens
            .saturating_sub(i64::from(n) * 1000)
            .max(-capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let lb: IpAddr = "127.0.0.2".parse().unwrap();
        let b = UnverifiedBudget::new(10, vec![lb]);
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let hdr = Some("192.0.2.7, 198.51.100.9");
        assert_eq!(
            b.client(other, hdr),
            other,
            "untrusted peers cannot name a client"
        );
        assert_eq!(b.client(lb, hdr), "198.51.100.9".parse::<IpAddr>().unwrap());
        assert_eq!(
            b.client(lb, Some("192.0.2.7, 127.0.0.2")),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(b.client(lb, Some("garbage")), lb);
        assert_eq!(b.client(lb, None), lb);
    }

    #[test]
    fn spends_and_groups_ipv6_by_64() {
        let b = UnverifiedBudget::new(10, vec![]);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_net: IpAddr = "2001:db8::ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(b.allows(a));
        b.charge(a, 9);
        assert!(b.allows(a), "one token left");
        b.charge(a, 5);
        assert!(!b.allows(a), "overdrawn: refused until repaid");
        assert!(!b.allows(same_net), "one /64 is one client");
        assert!(b.allows(other));
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        b.charge(v4, u32::MAX);
        assert!(!b.allows(v4), "an oversized charge empties, never wraps");
        b.charge(v4, 0);
    }
}
