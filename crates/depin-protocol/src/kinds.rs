//! The table of payload kinds a coordinator serves: for each kind, who signs
//! it, where it is sent and how its payload is checked. The backbone's kinds
//! are [`BACKBONE`]; each sector adds a `&'static [KindSpec]` of kinds in its
//! own range (`Sector::kind_range`), so a new kind is one table row in the
//! sector's crate, never an edit to shared code. Ingest refuses a kind that is
//! not in the table as `unknown_payload_kind`, one signed by the wrong party
//! as `wrong_payload_kind`, and one whose payload fails its decoder with the
//! decoder's reason.

use crate::envelope::PayloadKind;
use crate::payload::{
    CreditPurchase, DeviceCertificate, Heartbeat, KeyRotation, OperatorSettings, OrderLock,
    Revocation, Withdrawal, WorkRequest,
};
use depin_core::{BACKBONE_KINDS, Reason, Sector};

/// Who must sign a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedBy {
    /// A registered device key.
    Device,
    /// The operator key that owns the device(s) the message names.
    Operator,
    /// A consumer key: whoever holds the escrow the message spends.
    Consumer,
}

/// Where a kind is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/reports`: stored in the report log, read at epoch close.
    Reports,
    /// Its own endpoint (onboarding, revocation, rotation, work pull, orders,
    /// operator settings); never a report.
    Own,
}

/// What a kind's decoder learned that ingest needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The work order this report answers (answer kinds only).
    pub answers: Option<[u8; 32]>,
}

/// One row of the kind table.
#[derive(Clone, Copy, Debug)]
pub struct KindSpec {
    pub kind: u32,
    /// Stable snake_case name, for logs, metrics and docs.
    pub name: &'static str,
    pub signed_by: SignedBy,
    pub route: Route,
    /// Whether reports of this kind answer a work order; their payload then
    /// carries the work id in field 1 (`WorkRef`) and the append checks it.
    pub answers_work: bool,
    /// Strict decoding and range checks of the payload.
    pub check: fn(&[u8]) -> Result<Checked, Reason>,
}

fn check_with<T>(
    decode: fn(&[u8]) -> Result<T, Reason>,
) -> impl Fn(&[u8]) -> Result<Checked, Reason> {
    move |b| decode(b).map(|_| Checked::default())
}

/// The backbone's kinds.
pub const BACKBONE: &[KindSpec] = &[
    KindSpec {
        kind: 1,
        name: "device_certificate",
        signed_by: SignedBy::Operator,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(DeviceCertificate::decode)(b),
    },
    KindSpec {
        kind: 2,
        name: "heartbeat",
        signed_by: SignedBy::Device,
        route: Route::Reports,
        answers_work: false,
        check: |b| check_with(Heartbeat::decode)(b),
    },
    KindSpec {
        kind: 3,
        name: "revocation",
        signed_by: SignedBy::Operator,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(Revocation::decode)(b),
    },
    KindSpec {
        kind: 4,
        name: "key_rotation",
        signed_by: SignedBy::Operator,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(KeyRotation::decode)(b),
    },
    KindSpec {
        kind: 5,
        name: "work_request",
        signed_by: SignedBy::Device,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(WorkRequest::decode)(b),
    },
    KindSpec {
        kind: 6,
        name: "order_lock",
        signed_by: SignedBy::Consumer,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(OrderLock::decode)(b),
    },
    KindSpec {
        kind: 7,
        name: "operator_settings",
        signed_by: SignedBy::Operator,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(OperatorSettings::decode)(b),
    },
    KindSpec {
        kind: 8,
        name: "credit_purchase",
        signed_by: SignedBy::Consumer,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(CreditPurchase::decode)(b),
    },
    KindSpec {
        kind: 9,
        name: "withdrawal",
        signed_by: SignedBy::Consumer,
        route: Route::Own,
        answers_work: false,
        check: |b| check_with(Withdrawal::decode)(b),
    },
];

/// The kinds a coordinator serves: the backbone's and its sectors'.
#[derive(Clone, Debug)]
pub struct KindTable {
    /// Sorted by kind.
    specs: Vec<KindSpec>,
}

impl Default for KindTable {
    fn default() -> Self {
        KindTable::backbone()
    }
}

impl KindTable {
    pub fn backbone() -> KindTable {
        KindTable {
            specs: BACKBONE.to_vec(),
        }
    }

    /// The backbone plus each sector's kinds. Refused: a sector kind outside
    /// its sector's range, a kind listed twice, a sector answer kind that is
    /// not a device report (only devices answer work).
    pub fn new(sectors: &[(Sector, &'static [KindSpec])]) -> Result<KindTable, String> {
        let mut specs = BACKBONE.to_vec();
        for (sector, kinds) in sectors {
            for k in *kinds {
                if !sector.kind_range().contains(&k.kind) {
                    return Err(format!(
                        "sector {sector} declares kind {} ({}), outside its range {}..={}",
                        k.kind,
                        k.name,
                        sector.kind_range().start(),
                        sector.kind_range().end()
                    ));
                }
                if k.answers_work && (k.signed_by != SignedBy::Device || k.route != Route::Reports)
                {
                    return Err(format!(
                        "kind {} ({}) answers work, so it must be a device-signed report",
                        k.kind, k.name
                    ));
                }
                specs.push(*k);
            }
        }
        specs.sort_by_key(|s| s.kind);
        if let Some(w) = specs.windows(2).find(|w| w[0].kind == w[1].kind) {
            return Err(format!(
                "kind {} is declared twice ({} and {})",
                w[0].kind, w[0].name, w[1].name
            ));
        }
        debug_assert!(
            specs
                .iter()
                .all(|s| BACKBONE_KINDS.contains(&s.kind) || Sector::owning_kind(s.kind).is_some())
        );
        Ok(KindTable { specs })
    }

    pub fn get(&self, kind: u32) -> Option<&KindSpec> {
        self.specs
            .binary_search_by_key(&kind, |s| s.kind)
            .ok()
            .map(|i| &self.specs[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &KindSpec> {
        self.specs.iter()
    }

    /// The verdict for a device report of `kind` with `payload` at
    /// `POST /v1/reports`: what its decoder found, or why it is refused.
    pub fn check_report(&self, kind: PayloadKind, payload: &[u8]) -> Result<Checked, Reason> {
        let spec = self.get(kind.as_u32()).ok_or(Reason::UnknownPayloadKind)?;
        if spec.route != Route::Reports || spec.signed_by != SignedBy::Device {
            return Err(Reason::WrongPayloadKind);
        }
        let mut checked = (spec.check)(payload)?;
        if spec.answers_work {
            checked.answers =
                Some(crate::payload::answered_work_id(payload).ok_or(Reason::BadPayload)?);
        }
        Ok(checked)
    }
}
