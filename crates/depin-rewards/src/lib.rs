//! Reward policy, emission schedule, sector verification and the reward sheet.
//!
//! An epoch close runs, in order:
//!
//! 1. every [`SectorVerifier`] over the epoch's reports, as a batch with its
//!    own state from the previous epoch, each device's [`availability`]
//!    factor and the epoch's entropy → per-device [`Contribution`]s, checked
//!    against the contract ([`check_outcome`]); [`Sectors`] holds one verifier
//!    per sector ([`UptimeOnly`] where a sector brings none);
//! 2. [`compute_sheet`] over all contributions and the epoch's usage fees →
//!    a [`RewardSheet`] whose [`RewardSheet::hash`] is what `depin audit-epoch`
//!    compares;
//! 3. the coordinator turns the sheet into ledger entries
//!    ([`RewardSheet::emission_entries`], `depin_ledger::settle`).
//!
//! Every constant lives in one versioned [`RewardPolicy`]. The crate is pure: no
//! I/O, no clock, no randomness, no hash-map iteration; money is `u64` base
//! units with integer arithmetic only (DESIGN invariant 2).

mod policy;
mod sector;
mod sheet;

pub use policy::{
    BPS, PPM, PolicyError, RewardPolicy, SECONDS_PER_YEAR, emission_for_epoch, emission_for_year,
};
pub use sector::{
    AvailabilityFactor, Charge, Contribution, DeviceInfo, EpochInput, IssuedWork, OpenOrder,
    PriorState, ReportSummary, SectorOutcome, SectorReport, SectorVerifier, Sectors, UptimeOnly,
    VerifierError, WorkOrder, availability, availability_of, check_outcome, epoch_entropy, work_id,
};
pub use sheet::{
    FeeSettlement, RewardLine, RewardSheet, SectorTotals, SheetError, compute_sheet,
    try_compute_sheet,
};
