//! The schedule: the world turned into a time-ordered stream of events for the
//! coordinator. Pure (sans-IO): [`Simulation::next_event`] only computes; the
//! shell performs each event and asks for the next.
//!
//! Time: devices onboard at genesis. Heartbeats go out on a fixed cadence of
//! the policy's heartbeat interval, at the middle of each interval, so a
//! report's timestamp (the tick minus a seeded jitter of at most a quarter
//! interval) always falls in the epoch it belongs to. Each epoch is closed at
//! exactly its watermark, [`RewardPolicy::closable_at_ms`]; when a close and a
//! tick fall on the same millisecond the close goes first.
//!
//! Network: devices send every tick; a gateway forwards what it collected
//! every [`TICKS_PER_DELIVERY`] ticks (15 simulated minutes), never across an
//! epoch boundary, as one batch that arrives after a seeded latency of
//! 20–400 ms. Fewer, larger batches keep the run fast: the store pays a fixed
//! cost per append and per device in it. Every report is still well inside
//! the admission window, and each device's reports stay in sequence order.
//! Reports of devices with forged signatures travel at the end of the batch:
//! the coordinator checks signatures 64 at a time with one batch equation and
//! re-checks a failing chunk one by one, so grouping them keeps the run fast.
//! Order inside a batch changes no verdict.

use crate::world::{Behaviour, REPLAYER_GENUINE_HEARTBEATS, STREAM_NETWORK, World, rng};
use depin_core::{EpochIndex, UnixMillis};
use depin_protocol::{DeviceCertificate, Envelope, Heartbeat, Signed, sign};
use depin_rewards::RewardPolicy;
use rand::Rng;
use rand_chacha::ChaCha20Rng;

/// Heartbeat ticks whose reports travel in one delivery (one `ingest` call).
pub const TICKS_PER_DELIVERY: u64 = 3;

/// One thing that happens to the coordinator.
pub enum Event {
    /// Devices register: `(device index, signed certificate bytes)`.
    Onboard {
        at_ms: UnixMillis,
        certificates: Vec<(u32, Vec<u8>)>,
    },
    /// A batch of reports arrives. `senders[i]` is the world's index of the
    /// device that sent `reports[i]` (ground truth, for the run's own checks).
    Deliver {
        at_ms: UnixMillis,
        tick: u64,
        reports: Vec<Signed>,
        senders: Vec<u32>,
    },
    /// An epoch's watermark passed: close it.
    Close {
        at_ms: UnixMillis,
        epoch: EpochIndex,
    },
}

/// What a device remembers between ticks.
#[derive(Default)]
struct Agent {
    next_seq: u64,
    /// A replayer's genuine reports, which it re-sends.
    genuine: Vec<Signed>,
}

pub struct Simulation<'w> {
    world: &'w World,
    network: ChaCha20Rng,
    agents: Vec<Agent>,
    onboarded: bool,
    next_tick: u64,
    ticks: u64,
    next_close: EpochIndex,
    epochs: EpochIndex,
}

impl<'w> Simulation<'w> {
    pub fn new(world: &'w World) -> Self {
        let epochs = EpochIndex::from(world.config.epochs);
        Simulation {
            world,
            network: rng(world.config.seed, STREAM_NETWORK),
            agents: world
                .devices
                .iter()
                .map(|_| Agent {
                    next_seq: 1,
                    genuine: Vec::new(),
                })
                .collect(),
            onboarded: false,
            next_tick: 0,
            ticks: epochs * world.policy.expected_heartbeats(),
            next_close: 0,
            epochs,
        }
    }

    fn policy(&self) -> &RewardPolicy {
        &self.world.policy
    }

    fn interval_ms(&self) -> i64 {
        self.policy().heartbeat_interval_seconds as i64 * 1000
    }

    fn genesis(&self) -> UnixMillis {
        self.policy().epoch_start_ms(0)
    }

    /// When tick `k` goes out: the middle of the `k`-th heartbeat interval.
    pub fn tick_ms(&self, k: u64) -> UnixMillis {
        self.genesis() + k as i64 * self.interval_ms() + self.interval_ms() / 2
    }

    /// Events in total (for progress): one onboarding, the deliveries, the closes.
    pub fn total_events(&self) -> u64 {
        let per_epoch = self.policy().expected_heartbeats();
        1 + self.epochs * per_epoch.div_ceil(TICKS_PER_DELIVERY) + self.epochs
    }

    pub fn next_event(&mut self) -> Option<Event> {
        if !self.onboarded {
            self.onboarded = true;
            return Some(self.onboarding());
        }
        let group_end = self.group_end(self.next_tick);
        let tick_at = (self.next_tick < self.ticks).then(|| self.tick_ms(group_end - 1));
        let close_at =
            (self.next_close < self.epochs).then(|| self.policy().closable_at_ms(self.next_close));
        match (tick_at, close_at) {
            (None, None) => None,
            (Some(t), Some(c)) if c <= t => Some(self.close(c)),
            (None, Some(c)) => Some(self.close(c)),
            (Some(t), _) => {
                let first = self.next_tick;
                self.next_tick = group_end;
                Some(self.deliver(first, group_end, t))
            }
        }
    }

    /// End (exclusive) of the delivery that starts with tick `k`: at most
    /// [`TICKS_PER_DELIVERY`] ticks, never across an epoch boundary.
    fn group_end(&self, k: u64) -> u64 {
        let per_epoch = self.policy().expected_heartbeats().max(1);
        (k + TICKS_PER_DELIVERY)
            .min((k / per_epoch + 1) * per_epoch)
            .min(self.ticks)
    }

    fn close(&mut self, at_ms: UnixMillis) -> Event {
        let epoch = self.next_close;
        self.next_close += 1;
        Event::Close { at_ms, epoch }
    }

    fn onboarding(&self) -> Event {
        let at_ms = self.genesis();
        let mut per_operator = vec![0u64; self.world.operators.len()];
        let mut certificates = Vec::new();
        for d in &self.world.devices {
            if !d.behaviour.is_registered() {
                continue;
            }
            let op = &self.world.operators[d.operator as usize];
            let cert = DeviceCertificate {
                device_key: d.public,
                operator_key: op.public,
                sector: d.sector,
                hardware_class: d.profile.name.clone(),
                firmware_version: d.firmware_version.clone(),
                location: None,
                issued_at_ms: at_ms,
                device_signature: None,
            }
            .signed_by_device(&d.key);
            let seq = &mut per_operator[d.operator as usize];
            *seq += 1;
            certificates.push((
                d.index,
                sign(&Envelope::new(op.public, *seq, at_ms, &cert), &op.key).encode(),
            ));
        }
        Event::Onboard {
            at_ms,
            certificates,
        }
    }

    /// The reports of ticks `first..end`, delivered together at `last_tick_ms`
    /// plus a seeded latency.
    fn deliver(&mut self, first: u64, end: u64, last_tick_ms: UnixMillis) -> Event {
        let latency: i64 = self.network.gen_range(20..=400);
        let mut reports = Vec::with_capacity(self.agents.len() * (end - first) as usize);
        let mut senders = Vec::with_capacity(reports.capacity());
        let mut forged = Vec::new();
        for k in first..end {
            let t = self.tick_ms(k);
            self.tick(k, t, &mut reports, &mut senders, &mut forged);
        }
        for (i, s) in forged {
            reports.push(s);
            senders.push(i);
        }
        Event::Deliver {
            at_ms: last_tick_ms + latency,
            tick: end - 1,
            reports,
            senders,
        }
    }

    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    fn tick(
        &mut self,
        k: u64,
        tick_ms: UnixMillis,
        reports: &mut Vec<Signed>,
        senders: &mut Vec<u32>,
        forged: &mut Vec<(u32, Signed)>,
    ) {
        let interval = self.interval_ms();
        let genesis = self.genesis();
        for (d, agent) in self.world.devices.iter().zip(&mut self.agents) {
            // Draw the same numbers for every device on every tick, whatever it
            // does with them, so behaviours do not shift each other's draws.
            let jitter: i64 = self.network.gen_range(0..interval / 4);
            let roll: u32 = self.network.gen_range(0..1_000_000);
            let t = tick_ms - jitter;
            let heartbeat = Heartbeat {
                uptime_s: u64::try_from((t - genesis) / 1000).unwrap_or(0),
                temperature_centi_c: d.temperature_centi_c + (roll % 401) as i32 - 200,
                firmware_version: d.firmware_version.clone(),
                power_mw: (d.profile.watts * 1000.0).round() as u32,
            };
            let fresh = |agent: &mut Agent, t: UnixMillis| {
                let seq = agent.next_seq;
                agent.next_seq += 1;
                Envelope::new(d.public, seq, t, &heartbeat)
            };
            let report = match &d.behaviour {
                Behaviour::Honest | Behaviour::Unregistered => sign(&fresh(agent, t), &d.key),
                Behaviour::Flaky { miss_ppm } => {
                    if roll < *miss_ppm {
                        continue;
                    }
                    sign(&fresh(agent, t), &d.key)
                }
                Behaviour::SkewedClock { offset_ms } => sign(&fresh(agent, t + offset_ms), &d.key),
                Behaviour::ForgedSignature { forger } => {
                    let env = fresh(agent, t);
                    let s = if k % 2 == 0 {
                        sign(&env, forger)
                    } else {
                        let mut s = sign(&env, &d.key);
                        s.signature[(k / 2 % 64) as usize] ^= 1 << (k % 8);
                        s
                    };
                    forged.push((d.index, s));
                    continue;
                }
                Behaviour::Replayer => {
                    if (agent.genuine.len() as u64) < REPLAYER_GENUINE_HEARTBEATS {
                        let s = sign(&fresh(agent, t), &d.key);
                        agent.genuine.push(s.clone());
                        s
                    } else {
                        let old = &agent.genuine[(k % REPLAYER_GENUINE_HEARTBEATS) as usize];
                        if k % 3 == 0 {
                            old.clone()
                        } else {
                            let mut env = old.envelope.clone();
                            env.timestamp_ms = t;
                            env.payload = heartbeat.encode();
                            sign(&env, &d.key)
                        }
                    }
                }
            };
            reports.push(report);
            senders.push(d.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Scenario};

    #[test]
    fn events_are_time_ordered_and_complete() {
        let world = World::generate(&Config {
            seed: 2,
            nodes: 12,
            epochs: 3,
            scenario: Scenario::Mixed,
        })
        .unwrap();
        let mut sim = Simulation::new(&world);
        let total = sim.total_events();
        let mut last = i64::MIN;
        let (mut n, mut closes, mut ticks) = (0, Vec::new(), 0);
        while let Some(e) = sim.next_event() {
            n += 1;
            let at = match &e {
                Event::Onboard { at_ms, .. } => *at_ms,
                Event::Deliver {
                    at_ms,
                    reports,
                    senders,
                    ..
                } => {
                    ticks += 1;
                    assert_eq!(reports.len(), senders.len());
                    *at_ms
                }
                Event::Close { at_ms, epoch } => {
                    assert_eq!(*at_ms, world.policy.closable_at_ms(*epoch));
                    closes.push(*epoch);
                    *at_ms
                }
            };
            assert!(at >= last);
            last = at;
        }
        assert_eq!(n, total);
        assert_eq!(closes, vec![0, 1, 2]);
        assert_eq!(
            ticks,
            3 * world
                .policy
                .expected_heartbeats()
                .div_ceil(TICKS_PER_DELIVERY)
        );
    }

    #[test]
    fn timestamps_stay_in_their_epoch() {
        let world = World::generate(&Config {
            seed: 5,
            nodes: 8,
            epochs: 2,
            scenario: Scenario::Honest,
        })
        .unwrap();
        let mut sim = Simulation::new(&world);
        while let Some(e) = sim.next_event() {
            if let Event::Deliver { tick, reports, .. } = e {
                let epoch = tick / world.policy.expected_heartbeats();
                for r in reports {
                    assert_eq!(world.policy.epoch_of(r.envelope.timestamp_ms), Some(epoch));
                }
            }
        }
    }
}
