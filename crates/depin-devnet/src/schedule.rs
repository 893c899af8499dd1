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
//! Reports whose signatures cannot verify travel at the end of the batch (see
//! [`Outbox`]).
//!
//! Actors: every device is a [`SectorActor`]; on each tick the schedule draws
//! the same two numbers per device (clock jitter and a roll), whatever the
//! actor does with them, so behaviours never shift each other's draws.
//!
//! Faults: the [`FaultPlan`] of the run adds restart events, marks deliveries
//! and closes whose write must fail, reorders deliveries and duplicates
//! reports (see [`crate::faults`]). It draws from its own stream, so the
//! reports themselves are those of the same seed without faults.

use crate::actor::{Expect, Outbox, SectorActor, Sent, Tick};
use crate::faults::{FaultPlan, StoreFault};
use crate::world::{STREAM_FAULTS, STREAM_NETWORK, World, rng};
use depin_core::{EpochIndex, UnixMillis};
use depin_protocol::{DeviceCertificate, Envelope, Signed, sign};
use depin_rewards::RewardPolicy;
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, VecDeque};

/// Heartbeat ticks whose reports travel in one delivery.
pub const TICKS_PER_DELIVERY: u64 = 3;

/// One thing that happens to the coordinator.
pub enum Event {
    /// Devices register: `(device index, signed certificate bytes)`.
    Onboard {
        at_ms: UnixMillis,
        certificates: Vec<(u32, Vec<u8>)>,
    },
    /// The coordinator process ends without a shutdown and starts again on
    /// the same data directory.
    Restart { at_ms: UnixMillis },
    /// Reports arrive, in one or more requests (`ingest` calls) in this
    /// order. All of them belong to `epoch`.
    Deliver {
        at_ms: UnixMillis,
        tick: u64,
        epoch: EpochIndex,
        /// The delivery's index in the run, from 0.
        delivery: u64,
        requests: Vec<Request>,
        /// The first write of the delivery fails at this step.
        store_fault: Option<StoreFault>,
        reordered: bool,
    },
    /// An epoch's watermark passed: close it.
    Close {
        at_ms: UnixMillis,
        epoch: EpochIndex,
        /// The first close attempt fails at this step.
        store_fault: Option<StoreFault>,
        /// After that failure the coordinator restarts before it retries.
        restart_before_retry: bool,
    },
}

/// A report in flight with its ground truth.
type Item = (Signed, ReportCopy);

/// One `ingest` call: the reports and, index for index, the ground truth.
pub struct Request {
    pub reports: Vec<Signed>,
    pub copies: Vec<ReportCopy>,
}

/// Ground truth about one report in a request.
#[derive(Clone, Copy, Debug)]
pub struct ReportCopy {
    /// The report's id in the run: every report an actor sent has its own,
    /// and a network duplicate carries the id of the report it copies.
    pub id: u64,
    /// The world's index of the device that sent it.
    pub sender: u32,
    pub expect: Expect,
    /// This copy is the network delivering the report a second time.
    pub duplicate: bool,
}

pub struct Simulation<'w> {
    world: &'w World,
    network: ChaCha20Rng,
    faults: ChaCha20Rng,
    plan: FaultPlan,
    actors: Vec<Box<dyn SectorActor>>,
    onboarded: bool,
    next_tick: u64,
    ticks: u64,
    next_close: EpochIndex,
    epochs: EpochIndex,
    next_delivery: u64,
    /// The delivery whose restart already happened (+1), so it happens once.
    restarted_before: u64,
    next_report: u64,
}

impl<'w> Simulation<'w> {
    pub fn new(world: &'w World) -> Self {
        let epochs = EpochIndex::from(world.config.epochs);
        let per_epoch = world.policy.expected_heartbeats();
        let deliveries = epochs * per_epoch.div_ceil(TICKS_PER_DELIVERY);
        Simulation {
            world,
            network: rng(world.config.seed, STREAM_NETWORK),
            faults: rng(world.config.seed, STREAM_FAULTS),
            plan: FaultPlan::draw(world.config.seed, world.config.faults, deliveries, epochs),
            actors: world.devices.iter().map(|d| d.actor.fresh()).collect(),
            onboarded: false,
            next_tick: 0,
            ticks: epochs * per_epoch,
            next_close: 0,
            epochs,
            next_delivery: 0,
            restarted_before: 0,
            next_report: 0,
        }
    }

    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The devices whose actors pull work orders, in device order.
    pub fn work_wanted(&self) -> Vec<u32> {
        self.world
            .devices
            .iter()
            .zip(&self.actors)
            .filter(|(_, a)| a.wants_work())
            .map(|(d, _)| d.index)
            .collect()
    }

    /// Hands a device's actor its open work orders (see
    /// [`SectorActor::work`]); they shape the reports of later deliveries.
    pub fn give_work(&mut self, device: u32, orders: Vec<crate::actor::WorkRow>) {
        if let Some(a) = self.actors.get_mut(device as usize) {
            a.work(orders);
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

    /// Events in total (for progress): one onboarding, the deliveries, the
    /// restarts, the closes.
    pub fn total_events(&self) -> u64 {
        let per_epoch = self.policy().expected_heartbeats();
        1 + self.epochs * per_epoch.div_ceil(TICKS_PER_DELIVERY)
            + self.plan.restarts.len() as u64
            + self.epochs
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
                let d = self.next_delivery;
                if self.plan.restarts.contains(&d) && self.restarted_before <= d {
                    self.restarted_before = d + 1;
                    // Just before the delivery arrives.
                    return Some(Event::Restart { at_ms: t });
                }
                let first = self.next_tick;
                self.next_tick = group_end;
                self.next_delivery += 1;
                Some(self.deliver(d, first, group_end, t))
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
        let store_fault = self
            .plan
            .close_errors
            .get(&epoch)
            .map(|&pick| StoreFault { pick });
        Event::Close {
            at_ms,
            epoch,
            store_fault,
            restart_before_retry: store_fault.is_some() && self.plan.restart_after_failed_close,
        }
    }

    fn onboarding(&self) -> Event {
        let at_ms = self.genesis();
        let mut per_operator = vec![0u64; self.world.operators.len()];
        let mut certificates = Vec::new();
        for d in &self.world.devices {
            if !d.kind().registered {
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
    fn deliver(&mut self, delivery: u64, first: u64, end: u64, last_tick_ms: UnixMillis) -> Event {
        let latency: i64 = self.network.gen_range(20..=400);
        let mut out = Outbox::default();
        for k in first..end {
            self.tick(k, &mut out);
        }
        let lane = |list: Vec<Sent>, next: &mut u64| {
            list.into_iter()
                .map(|s| {
                    let id = *next;
                    *next += 1;
                    (
                        s.report,
                        ReportCopy {
                            id,
                            sender: s.sender,
                            expect: s.expect,
                            duplicate: false,
                        },
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut front = lane(std::mem::take(&mut out.front), &mut self.next_report);
        let back = lane(std::mem::take(&mut out.back), &mut self.next_report);
        let reordered = self.plan.reordered.contains(&delivery);
        let mut requests = if reordered {
            self.reorder(front, back)
        } else {
            front.extend(back);
            vec![front]
        };
        if self.plan.duplicate_ppm > 0 {
            let mut again = Vec::new();
            for (s, c) in requests.iter().flatten() {
                if self.faults.gen_range(0..1_000_000) < self.plan.duplicate_ppm {
                    again.push((
                        s.clone(),
                        ReportCopy {
                            duplicate: true,
                            ..*c
                        },
                    ));
                }
            }
            if !again.is_empty() {
                requests.push(again);
            }
        }
        let per_epoch = self.policy().expected_heartbeats().max(1);
        Event::Deliver {
            at_ms: last_tick_ms + latency,
            tick: end - 1,
            epoch: (end - 1) / per_epoch,
            delivery,
            requests: requests
                .into_iter()
                .map(|r| {
                    let (reports, copies) = r.into_iter().unzip();
                    Request { reports, copies }
                })
                .collect(),
            store_fault: self
                .plan
                .delivery_errors
                .get(&delivery)
                .map(|&pick| StoreFault { pick }),
            reordered,
        }
    }

    /// Two requests, sent in this order: the devices are split into two
    /// seeded groups, and inside each request the devices' reports are
    /// interleaved at random, each device's in its own order. Unverifiable
    /// reports stay at the back of their request.
    fn reorder(&mut self, front: Vec<Item>, back: Vec<Item>) -> Vec<Vec<Item>> {
        let mut group: BTreeMap<u32, usize> = BTreeMap::new();
        // Per group: the verifiable reports, then the unverifiable ones.
        let mut lanes: [(Vec<Item>, Vec<Item>); 2] = Default::default();
        for (is_back, list) in [(false, front), (true, back)] {
            for item in list {
                let g = *group
                    .entry(item.1.sender)
                    .or_insert_with(|| usize::from(self.faults.r#gen::<bool>()));
                if is_back {
                    lanes[g].1.push(item);
                } else {
                    lanes[g].0.push(item);
                }
            }
        }
        let mut requests = Vec::with_capacity(2);
        for (front, back) in lanes {
            let mut labels: Vec<u32> = front.iter().map(|(_, c)| c.sender).collect();
            labels.shuffle(&mut self.faults);
            let mut queues: BTreeMap<u32, VecDeque<Item>> = BTreeMap::new();
            for item in front {
                queues.entry(item.1.sender).or_default().push_back(item);
            }
            let mut request: Vec<Item> = labels
                .iter()
                .filter_map(|l| queues.get_mut(l).and_then(|q| q.pop_front()))
                .collect();
            request.extend(back);
            if !request.is_empty() {
                requests.push(request);
            }
        }
        requests
    }

    fn tick(&mut self, k: u64, out: &mut Outbox) {
        let interval = self.interval_ms();
        let at_ms = self.tick_ms(k);
        let genesis_ms = self.genesis();
        for (d, actor) in self.world.devices.iter().zip(&mut self.actors) {
            // The same draws for every device on every tick, whatever its
            // actor does with them, so actors do not shift each other's draws.
            let jitter_ms: i64 = self.network.gen_range(0..interval / 4);
            let roll: u32 = self.network.gen_range(0..1_000_000);
            out.sender = d.index;
            actor.tick(
                d,
                &Tick {
                    index: k,
                    at_ms,
                    jitter_ms,
                    roll,
                    genesis_ms,
                    policy: &self.world.policy,
                },
                out,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, FaultLevel, Scenario};

    #[test]
    fn events_are_time_ordered_and_complete() {
        let world = World::generate(&Config {
            seed: 2,
            nodes: 12,
            epochs: 3,
            scenario: Scenario::Mixed,
            faults: FaultLevel::Heavy,
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
                    at_ms, requests, ..
                } => {
                    ticks += 1;
                    for r in requests {
                        assert_eq!(r.reports.len(), r.copies.len());
                    }
                    *at_ms
                }
                Event::Restart { at_ms } => *at_ms,
                Event::Close { at_ms, epoch, .. } => {
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
            faults: FaultLevel::Default,
        })
        .unwrap();
        let mut sim = Simulation::new(&world);
        while let Some(e) = sim.next_event() {
            if let Event::Deliver {
                tick,
                epoch: e,
                requests,
                ..
            } = e
            {
                let epoch = tick / world.policy.expected_heartbeats();
                assert_eq!(e, epoch);
                for r in requests.into_iter().flat_map(|r| r.reports) {
                    assert_eq!(world.policy.epoch_of(r.envelope.timestamp_ms), Some(epoch));
                }
            }
        }
    }
}
