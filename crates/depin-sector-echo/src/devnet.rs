//! The sector's devnet actor: a compute device that heartbeats like the
//! devnet's honest device and answers every echo challenge it pulls, in its
//! next tick, in the same sequence as its heartbeats. Listed as the compute
//! sector's own honest kind, so with this sector in a run
//! (`depin_devnet::run_with`) every honest compute device answers; flaky
//! and cheating compute devices stay the devnet's heartbeat-only kinds, and
//! miss their challenges.

use crate::{ECHO_ANSWER_KIND, answer};
use depin_core::Sector;
use depin_devnet::actor::{Expect, Outbox, Tick, WorkRow};
use depin_devnet::uptime::{Conduct, Heartbeats};
use depin_devnet::world::Device;
use depin_devnet::{ActorKind, Class, SectorActor};
use depin_protocol::{Envelope, PayloadKind, sign};

/// The actor kinds this sector adds to a devnet.
pub static ACTORS: [ActorKind; 1] = [ActorKind {
    name: "echo_honest",
    class: Class::Honest,
    sectors: &[Sector::Compute],
    registered: true,
    // Draws nothing, like the devnet's own honest kind.
    build: |kind, _| Box::new(EchoActor::new(kind)),
}];

/// A compute device that answers its echo challenges.
pub struct EchoActor {
    kind: &'static ActorKind,
    heartbeats: Heartbeats,
    /// Orders pulled and not answered yet.
    open: Vec<WorkRow>,
    /// Orders answered, with their deadlines: a later pull that still lists
    /// one (its answer was sent but the pull came first) is not answered
    /// twice. Forgotten after the deadline.
    answered: std::collections::BTreeMap<[u8; 32], i64>,
}

impl EchoActor {
    pub fn new(kind: &'static ActorKind) -> EchoActor {
        EchoActor {
            kind,
            heartbeats: Heartbeats::new(kind, Conduct::default()),
            open: Vec::new(),
            answered: Default::default(),
        }
    }
}

impl SectorActor for EchoActor {
    fn kind(&self) -> &'static ActorKind {
        self.kind
    }

    fn fresh(&self) -> Box<dyn SectorActor> {
        Box::new(EchoActor::new(self.kind))
    }

    fn wants_work(&self) -> bool {
        true
    }

    fn work(&mut self, orders: Vec<WorkRow>) {
        for o in orders {
            if o.answer_kind == ECHO_ANSWER_KIND
                && !self.answered.contains_key(&o.id)
                && !self.open.iter().any(|x| x.id == o.id)
            {
                self.open.push(o);
            }
        }
    }

    fn tick(&mut self, d: &Device, tick: &Tick<'_>, out: &mut Outbox) {
        self.heartbeats.tick(d, tick, out);
        let t = tick.at_ms - tick.jitter_ms;
        self.answered.retain(|_, deadline| *deadline >= t);
        for o in std::mem::take(&mut self.open) {
            if o.deadline_ms < t {
                continue;
            }
            let Some(a) = answer(&d.public, &o.id, &o.body) else {
                continue;
            };
            let env = Envelope {
                version: depin_protocol::ENVELOPE_VERSION,
                signer: d.public,
                seq: self.heartbeats.take_seq(),
                timestamp_ms: t,
                kind: PayloadKind::Sector(ECHO_ANSWER_KIND),
                payload: a.encode(),
            };
            out.send(sign(&env, &d.key), Expect::Accept);
            self.answered.insert(o.id, o.deadline_ms);
        }
    }
}
