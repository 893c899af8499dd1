//! Uptime actors: devices of any sector that send heartbeats, honestly or
//! not. One actor type, [`Heartbeats`], whose behaviour is data
//! ([`Conduct`]); the kinds below differ only in the conduct they draw.

use crate::actor::{ActorKind, Class, Expect, Outbox, SectorActor, Tick};
use crate::world::Device;
use depin_protocol::{Envelope, Heartbeat, Signed, SigningKey, device_keypair_from_seed, sign};
use rand::Rng;

/// Genuine heartbeats a replayer sends before it only replays: fewer than the
/// policy's minimum uptime needs (checked in [`crate::world::World::generate`]),
/// so even its first epoch earns nothing.
pub const REPLAYER_GENUINE_HEARTBEATS: u64 = 2;

/// The uptime kinds. Cheats are assigned round-robin in this order, so every
/// kind appears as soon as there are four cheats.
pub static KINDS: [ActorKind; 6] = [
    ActorKind {
        name: "honest",
        class: Class::Honest,
        sectors: &[],
        registered: true,
        build: |kind, _| Heartbeats::boxed(kind, Conduct::default()),
    },
    ActorKind {
        name: "flaky",
        class: Class::Flaky,
        sectors: &[],
        registered: true,
        build: |kind, d| {
            let miss_ppm = d.world.gen_range(50_000..600_000);
            Heartbeats::boxed(
                kind,
                Conduct {
                    miss_ppm,
                    ..Conduct::default()
                },
            )
        },
    },
    ActorKind {
        name: "forged_signature",
        class: Class::Cheat,
        sectors: &[],
        registered: true,
        build: |kind, d| {
            let forger = device_keypair_from_seed(d.keys.r#gen::<[u8; 32]>());
            Heartbeats::boxed(
                kind,
                Conduct {
                    forger: Some(Box::new(forger)),
                    ..Conduct::default()
                },
            )
        },
    },
    ActorKind {
        name: "replayer",
        class: Class::Cheat,
        sectors: &[],
        registered: true,
        build: |kind, _| {
            Heartbeats::boxed(
                kind,
                Conduct {
                    replay_after: Some(REPLAYER_GENUINE_HEARTBEATS),
                    ..Conduct::default()
                },
            )
        },
    },
    ActorKind {
        name: "skewed_clock",
        class: Class::Cheat,
        sectors: &[],
        registered: true,
        build: |kind, d| {
            // Hours off: outside any admission window, so always refused.
            let hours: i64 = d.world.gen_range(2..=12);
            let sign = if d.world.r#gen::<bool>() { 1 } else { -1 };
            let clock_offset_ms = sign * hours * 3_600_000 + d.world.gen_range(0..60_000);
            Heartbeats::boxed(
                kind,
                Conduct {
                    clock_offset_ms,
                    ..Conduct::default()
                },
            )
        },
    },
    ActorKind {
        name: "unregistered",
        class: Class::Cheat,
        sectors: &[],
        registered: false,
        build: |kind, _| Heartbeats::boxed(kind, Conduct::default()),
    },
];

/// How a heartbeat device behaves. The default is honest.
#[derive(Clone, Default)]
pub struct Conduct {
    /// Misses each heartbeat with probability `miss_ppm` / 10^6.
    pub miss_ppm: u32,
    /// Its timestamps are this far off (hours, when not zero).
    pub clock_offset_ms: i64,
    /// Claims its registered key as signer but signs with this key (even
    /// ticks) or flips a bit of a correct signature (odd ticks).
    pub forger: Option<Box<SigningKey>>,
    /// Sends this many genuine heartbeats, then only re-sends those:
    /// verbatim, or re-signed with a fresh timestamp but the old sequence
    /// number.
    pub replay_after: Option<u64>,
}

/// A heartbeat device and what it remembers between ticks.
#[derive(Clone)]
pub struct Heartbeats {
    kind: &'static ActorKind,
    conduct: Conduct,
    next_seq: u64,
    /// A replayer's genuine reports, which it re-sends.
    genuine: Vec<Signed>,
}

impl Heartbeats {
    pub fn new(kind: &'static ActorKind, conduct: Conduct) -> Heartbeats {
        Heartbeats {
            kind,
            conduct,
            next_seq: 1,
            genuine: Vec::new(),
        }
    }

    pub fn boxed(kind: &'static ActorKind, conduct: Conduct) -> Box<dyn SectorActor> {
        Box::new(Heartbeats::new(kind, conduct))
    }

    /// The next sequence number, for another report of the device (a
    /// sector actor built on heartbeats sends its answers in the same
    /// sequence, as a real agent does).
    pub fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub fn conduct(&self) -> &Conduct {
        &self.conduct
    }
}

impl SectorActor for Heartbeats {
    fn kind(&self) -> &'static ActorKind {
        self.kind
    }

    fn fresh(&self) -> Box<dyn SectorActor> {
        Heartbeats::boxed(self.kind, self.conduct.clone())
    }

    // `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
    #[allow(clippy::manual_is_multiple_of)]
    fn tick(&mut self, d: &Device, tick: &Tick<'_>, out: &mut Outbox) {
        let k = tick.index;
        let t = tick.at_ms - tick.jitter_ms;
        let c = &self.conduct;
        if tick.roll < c.miss_ppm {
            return;
        }
        let heartbeat = Heartbeat {
            uptime_s: u64::try_from((t - tick.genesis_ms) / 1000).unwrap_or(0),
            temperature_centi_c: d.temperature_centi_c + (tick.roll % 401) as i32 - 200,
            firmware_version: d.firmware_version.clone(),
            power_mw: (d.profile.watts * 1000.0).round() as u32,
        };
        if let Some(n) = c.replay_after
            && self.genuine.len() as u64 >= n
        {
            let old = &self.genuine[(k % n) as usize];
            let replay = if k % 3 == 0 {
                old.clone()
            } else {
                let mut env = old.envelope.clone();
                env.timestamp_ms = t;
                env.payload = heartbeat.encode();
                sign(&env, &d.key)
            };
            out.send(replay, Expect::Refuse);
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let env = Envelope::new(d.public, seq, t + c.clock_offset_ms, &heartbeat);
        if let Some(forger) = &c.forger {
            let s = if k % 2 == 0 {
                sign(&env, forger)
            } else {
                let mut s = sign(&env, &d.key);
                s.signature[(k / 2 % 64) as usize] ^= 1 << (k % 8);
                s
            };
            out.send_unverifiable(s);
            return;
        }
        let s = sign(&env, &d.key);
        if c.replay_after.is_some() {
            self.genuine.push(s.clone());
        }
        let expect = if self.kind.registered && c.clock_offset_ms == 0 {
            Expect::Accept
        } else {
            Expect::Refuse
        };
        out.send(s, expect);
    }
}
