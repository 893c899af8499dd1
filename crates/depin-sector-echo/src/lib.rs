//! A worked example sector, used only in tests: **echo**. It shows a sector
//! author every part of the seam in one small crate, and proves the seam
//! carries a challenge from the coordinator to a device and back.
//!
//! - its own proto file (`proto/depin/echo/v1/echo.proto`) and one payload
//!   kind, [`ECHO_ANSWER_KIND`] = 2900, in the compute sector's range, with a
//!   strict decoder ([`EchoAnswer::decode`]) and a row in the kind table
//!   ([`KINDS`]: device-signed report that answers work);
//! - a verifier ([`EchoVerifier`]): at every close it orders one challenge
//!   per compute device (a nonce derived from the epoch's entropy, due before
//!   the end of the next epoch) and scores the challenges that fell due:
//!   availability × answered / ordered, with the backbone's
//!   `challenge_missed` when one went unanswered and the compute block's
//!   own `compute_wrong_answer` when an answer came but did not verify (the
//!   sector's reason block); its state counts the answers it accepted
//!   (format version 1);
//! - a plugin ([`EchoPlugin`]) the coordinator and the server take as they
//!   are;
//! - the device side, a driver ([`EchoDriver`], built on [`answer`]): what
//!   the node agent does with a work order of this sector;
//! - a devnet actor ([`devnet::ACTORS`]) that answers its challenges in a
//!   whole simulated network (`depin_devnet::run_with`).
//!
//! It is scored as the compute sector (it has the compute sector's kind
//! range), so a coordinator cannot serve it beside a real compute plugin.

use depin_core::{PublicKey, Reason, Sector};
use depin_protocol::{Checked, KindSpec, Route, SignedBy};
use depin_rewards::{
    EpochInput, PPM, SectorOutcome, SectorVerifier, VerifierError, WorkOrder, availability_of,
};
use prost::Message as _;

pub mod devnet;

mod wire {
    include!(concat!(env!("OUT_DIR"), "/depin.echo.v1.rs"));
}

/// The answer kind: in the compute sector's range (`Sector::kind_range`).
pub const ECHO_ANSWER_KIND: u32 = 2900;

/// The sector's rows of the kind table.
pub const KINDS: &[KindSpec] = &[KindSpec {
    kind: ECHO_ANSWER_KIND,
    name: "echo_answer",
    signed_by: SignedBy::Device,
    route: Route::Reports,
    answers_work: true,
    check: |b| EchoAnswer::decode(b).map(|_| Checked::default()),
}];

/// The challenge a work order carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoChallenge {
    pub nonce: [u8; 32],
}

impl EchoChallenge {
    pub fn encode(&self) -> Vec<u8> {
        wire::EchoChallenge {
            nonce: self.nonce.to_vec(),
        }
        .encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::EchoChallenge = strict(bytes)?;
        Ok(EchoChallenge {
            nonce: w.nonce.try_into().map_err(|_| Reason::BadPayload)?,
        })
    }
}

/// A device's answer (kind 2900).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoAnswer {
    pub work_id: [u8; 32],
    pub digest: [u8; 32],
}

impl EchoAnswer {
    pub fn encode(&self) -> Vec<u8> {
        wire::EchoAnswer {
            work_id: self.work_id.to_vec(),
            digest: self.digest.to_vec(),
        }
        .encode_to_vec()
    }

    /// Strict: canonical encoding, both fields exactly 32 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let w: wire::EchoAnswer = strict(bytes)?;
        Ok(EchoAnswer {
            work_id: w.work_id.try_into().map_err(|_| Reason::BadPayload)?,
            digest: w.digest.try_into().map_err(|_| Reason::BadPayload)?,
        })
    }
}

/// Decodes and insists the bytes are the message's canonical encoding
/// (unknown fields, duplicates or reordering would let two byte strings mean
/// one answer).
fn strict<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, Reason> {
    let m = M::decode(bytes).map_err(|_| Reason::BadPayload)?;
    if m.encode_to_vec() == bytes {
        Ok(m)
    } else {
        Err(Reason::BadPayload)
    }
}

/// The nonce of `device`'s `index`-th challenge at the close of the epoch
/// with `entropy`: nobody knows it before that close.
pub fn nonce(entropy: &[u8; 32], device: &PublicKey, index: u32) -> [u8; 32] {
    let mut input = entropy.to_vec();
    input.extend_from_slice(&device.0);
    input.extend_from_slice(&index.to_le_bytes());
    blake3::derive_key("depin/example/echo-nonce", &input)
}

/// What the device must answer: `blake3("depin/example/echo" ‖ nonce ‖
/// device key)`. Trivial on purpose; a real sector proves work here
/// (a storage proof, a benchmark result).
pub fn digest(nonce: &[u8; 32], device: &PublicKey) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"depin/example/echo");
    h.update(nonce);
    h.update(&device.0);
    *h.finalize().as_bytes()
}

/// The driver: what a device's agent does with an echo work order. Returns
/// the answer's payload (kind [`ECHO_ANSWER_KIND`]), or `None` for a body
/// that is not an echo challenge.
pub fn answer(device: &PublicKey, work_id: &[u8; 32], body: &[u8]) -> Option<EchoAnswer> {
    let c = EchoChallenge::decode(body).ok()?;
    Some(EchoAnswer {
        work_id: *work_id,
        digest: digest(&c.nonce, device),
    })
}

/// The driver the node agent runs for compute devices when this sector is
/// in the build (`RunOptions::drivers`): it answers echo challenges with
/// [`answer`], and refuses anything else for good.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoDriver;

impl depin_agent::Driver for EchoDriver {
    fn sector(&self) -> Sector {
        Sector::Compute
    }
    fn name(&self) -> &'static str {
        "echo"
    }
    fn answer(
        &self,
        device: &PublicKey,
        order: &depin_client::WorkOrder,
    ) -> Result<Vec<u8>, depin_agent::DriverError> {
        if order.answer_kind != ECHO_ANSWER_KIND {
            return Err(depin_agent::DriverError::Refused(format!(
                "answer kind {} is not echo's ({ECHO_ANSWER_KIND})",
                order.answer_kind
            )));
        }
        answer(device, &order.id, &order.body)
            .map(|a| a.encode())
            .ok_or_else(|| {
                depin_agent::DriverError::Refused("the body is not an echo challenge".into())
            })
    }
}

/// The verifier (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoVerifier;

const STATE_VERSION: u32 = 1;

/// The sector's policy section, `"sectors": {"echo": {…}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EchoPolicy {
    /// Challenges ordered per device at each close, 1 to 16. Default 1.
    #[serde(default = "one")]
    pub challenges_per_epoch: u32,
}

fn one() -> u32 {
    1
}

impl EchoPolicy {
    /// The section, or the defaults when there is none.
    pub fn from_section(section: Option<&serde_json::Value>) -> Result<EchoPolicy, VerifierError> {
        let p = match section {
            None => EchoPolicy {
                challenges_per_epoch: 1,
            },
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| VerifierError(format!("not an echo section: {e}")))?,
        };
        if !(1..=16).contains(&p.challenges_per_epoch) {
            return Err(VerifierError(format!(
                "challenges_per_epoch must be 1 to 16, got {}",
                p.challenges_per_epoch
            )));
        }
        Ok(p)
    }
}

impl SectorVerifier for EchoVerifier {
    fn sector(&self) -> Sector {
        Sector::Compute
    }
    fn name(&self) -> &'static str {
        "echo"
    }
    fn kinds(&self) -> &[u32] {
        &[ECHO_ANSWER_KIND]
    }
    fn state_version(&self) -> u32 {
        STATE_VERSION
    }

    fn check_policy(&self, section: Option<&serde_json::Value>) -> Result<(), VerifierError> {
        EchoPolicy::from_section(section).map(|_| ())
    }

    fn verify_epoch(&self, input: &EpochInput) -> Result<SectorOutcome, VerifierError> {
        let settings = EchoPolicy::from_section(input.policy.sectors.get(self.name()))?;
        // State: answers accepted so far (u64 little-endian).
        let mut accepted: u64 = match input.prior_state {
            None => 0,
            Some(s) if s.version == STATE_VERSION => u64::from_le_bytes(
                s.bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| VerifierError("echo state is not 8 bytes".into()))?,
            ),
            Some(s) => {
                return Err(VerifierError(format!(
                    "echo state version {} is not one this build reads",
                    s.version
                )));
            }
        };
        // Per device: (ordered, answered correctly, answered wrongly), over
        // the work due now.
        let mut due: std::collections::BTreeMap<PublicKey, (u32, u32, u32)> = Default::default();
        for w in input.work {
            let d = due.entry(w.order.device).or_default();
            d.0 += 1;
            let good = w.answer.as_ref().is_some_and(|a| {
                let Ok(ans) = EchoAnswer::decode(&a.payload) else {
                    return false;
                };
                let Ok(ch) = EchoChallenge::decode(&w.order.body) else {
                    return false;
                };
                ans.work_id == w.id && ans.digest == digest(&ch.nonce, &w.order.device)
            });
            if good {
                d.1 += 1;
                accepted += 1;
            } else if w.answer.is_some() {
                d.2 += 1;
            }
        }
        let mut contributions = Vec::new();
        let mut work = Vec::new();
        let deadline_ms = input
            .policy
            .epoch_end_ms(input.epoch.saturating_add(1))
            .saturating_sub(1);
        for d in input.devices.iter().filter(|d| d.sector == Sector::Compute) {
            let Some(f) = availability_of(input.availability, &d.device) else {
                continue; // not active in this epoch
            };
            let (score, reasons) = match due.get(&d.device) {
                // No challenge fell due yet (first epoch): availability alone.
                None => (PPM, vec![]),
                Some((ordered, answered, wrong)) => {
                    let score = u64::from(PPM) * u64::from(*answered) / u64::from(*ordered);
                    // The sector's own code for an answer that proved
                    // nothing, apart from the backbone's for no answer.
                    let mut reasons = Vec::new();
                    if answered + wrong < *ordered {
                        reasons.push(Reason::ChallengeMissed);
                    }
                    if *wrong > 0 {
                        reasons.push(Reason::ComputeWrongAnswer);
                    }
                    (score as u32, reasons)
                }
            };
            contributions.push(f.times(score, &reasons, 1));
            if d.revoked_at_ms.is_none() {
                for i in 0..settings.challenges_per_epoch {
                    work.push(WorkOrder {
                        device: d.device,
                        answer_kind: ECHO_ANSWER_KIND,
                        body: EchoChallenge {
                            nonce: nonce(&input.entropy, &d.device, i),
                        }
                        .encode(),
                        deadline_ms,
                    });
                }
            }
        }
        Ok(SectorOutcome {
            contributions,
            next_state: accepted.to_le_bytes().to_vec(),
            work,
            charges: Vec::new(),
        })
    }
}

/// The sector's own tables, in its block of numbers (compute: 2000–2999):
/// a per-device tally of answers, kept by the sector's own code (not by the
/// close, whose results live in the backbone's tables). Two versions, to show
/// a schema growing.
pub const SCHEMA: depin_store::SectorSchema = depin_store::SectorSchema {
    sector: Sector::Compute,
    migrations: &[
        depin_store::SectorMigration {
            version: 2900,
            description: "echo_tally: answers per device",
            sqlite: "CREATE TABLE echo_tally (device BLOB PRIMARY KEY, answered INTEGER NOT NULL)",
            postgres: "CREATE TABLE echo_tally (device BYTEA PRIMARY KEY, answered BIGINT NOT NULL)",
        },
        depin_store::SectorMigration {
            version: 2901,
            description: "echo_tally: last answer time",
            sqlite: "ALTER TABLE echo_tally ADD COLUMN last_ms INTEGER",
            postgres: "ALTER TABLE echo_tally ADD COLUMN last_ms BIGINT",
        },
    ],
};

/// The sector's own HTTP endpoints, mounted by the server under
/// `/v1/compute/`: `GET /v1/compute/echo/nonces/{device}/{epoch}` tells
/// anyone the challenges the close of `epoch` orders from a device, once the
/// epoch before it has closed (so nobody, the device included, knows them
/// sooner), recomputed from the published claim root.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoRoutes;

impl depin_server::SectorRoutes for EchoRoutes {
    fn endpoints(&self) -> Vec<depin_server::Endpoint> {
        vec![depin_server::Endpoint::new(
            "get",
            "/v1/compute/echo/nonces/{device}/{epoch}",
            "The echo challenges the close of an epoch orders from a device (hex nonces), once the previous epoch is closed; 409 not_yet before.",
            axum::routing::get(nonces_route),
        )]
    }
}

async fn nonces_route(
    axum::extract::State(st): axum::extract::State<std::sync::Arc<depin_server::AppState>>,
    depin_server::ApiPath((device, epoch)): depin_server::ApiPath<(String, String)>,
) -> Result<axum::Json<serde_json::Value>, depin_server::ApiError> {
    use axum::http::StatusCode;
    use depin_server::ApiError;
    let key = depin_server::parse_key(&device, "device")?;
    // Epochs are stored as signed 64-bit integers: larger ones never close.
    let epoch: u64 = epoch
        .parse()
        .ok()
        .filter(|e| *e <= i64::MAX as u64)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("epoch: a number from 0 to {}", i64::MAX),
            )
        })?;
    let previous_root = match epoch.checked_sub(1) {
        None => None,
        Some(p) => {
            let row = st.coordinator.store().epoch(p).await?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "not_yet",
                    format!(
                        "epoch {p} is not closed: the challenges of epoch {epoch} are not known yet"
                    ),
                )
            })?;
            Some(row.claim_root.as_slice().try_into().map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "stored claim root is not 32 bytes",
                )
            })?)
        }
    };
    let policy = st.coordinator.policy();
    let settings = EchoPolicy::from_section(policy.sectors.get("echo"))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.0))?;
    let entropy = depin_rewards::epoch_entropy(epoch, previous_root);
    let nonces: Vec<String> = (0..settings.challenges_per_epoch)
        .map(|i| hex::encode(nonce(&entropy, &key, i)))
        .collect();
    Ok(axum::Json(serde_json::json!({
        "device": key.to_hex(),
        "epoch": epoch,
        "nonces": nonces,
    })))
}

/// The plugin a coordinator (`SectorSet::new`) or a server
/// (`ServerConfig::sectors`) takes.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoPlugin;

impl depin_coordinator::SectorPlugin for EchoPlugin {
    fn sector(&self) -> Sector {
        Sector::Compute
    }
    fn kinds(&self) -> &'static [KindSpec] {
        KINDS
    }
    fn verifier(&self) -> Box<dyn SectorVerifier> {
        Box::new(EchoVerifier)
    }
    fn schema(&self) -> Option<&'static depin_store::SectorSchema> {
        Some(&SCHEMA)
    }
}
