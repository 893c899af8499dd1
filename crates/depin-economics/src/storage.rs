//! Storage paid in USD on what is stored, Storj-style.
//!
//! A new node offers `capacity_units` TB but stores nothing yet. It is vetted first (a few
//! months in which it receives only a small share of uploads), then fills at a rate of
//! TB per month that depends on the network's demand, not on the disk's size, until the
//! disk is full. It is paid per TB-month on the data it actually holds plus per TB of
//! egress, and in its first months the network holds back a share of the pay (Storj: 75%
//! in months 1–3, 50% in 4–6, 25% in 7–9), returning half of the held amount in a later
//! month and the rest on a graceful exit at the end of the node's life.
//!
//! Each simulated path draws one fill rate from the catalogue's p10/p50/p90 range (the
//! same per-path level a rented GPU uses for its utilisation); the token price does not
//! move this income, it is priced in USD.

use crate::{EconomicsError, invalid};
use serde::{Deserialize, Serialize};

/// Above this fill rate (TB a month) an input is refused as a typo: a consumer line
/// cannot take in much more than 10 TB a month.
pub const MAX_INGRESS_TB_PER_MONTH: f64 = 50.0;

/// How a storage node is paid and fills. Catalogue `[device.storage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageMarket {
    /// Pay per TB-month of data held, USD.
    pub usd_per_tb_month: f64,
    /// Pay per TB of egress (data downloaded from the node), USD.
    pub egress_usd_per_tb: f64,
    /// Egress in a month as a share of the data held (0.015 = 15 GB per TB held).
    pub egress_share_per_month: f64,
    /// Data the node takes in per month once vetted, TB: bad, median and good case.
    pub ingress_tb_per_month_p10: f64,
    pub ingress_tb_per_month_p50: f64,
    pub ingress_tb_per_month_p90: f64,
    /// Months of vetting at the start, with only `vetting_ingress_fraction` of the ingress.
    pub vetting_months: u32,
    pub vetting_ingress_fraction: f64,
    /// Share of each month's pay held back, for months 1, 2, …; later months hold none.
    #[serde(default)]
    pub held_back_by_month: Vec<f64>,
    /// In this month (1-based) `held_back_returned_share` of the held amount is paid out.
    #[serde(default)]
    pub held_back_returned_month: u32,
    #[serde(default)]
    pub held_back_returned_share: f64,
    /// At the end of its life a node at least this old exits gracefully and gets the rest
    /// of the held amount back; a younger one forfeits it.
    #[serde(default)]
    pub graceful_exit_min_months: u32,
    /// Share of the revenue the platform keeps (0.10 = 10%).
    #[serde(default)]
    pub platform_fee: f64,
    /// USD income is paid out only once the balance reaches this; a balance below it when
    /// the device stops is never paid.
    #[serde(default)]
    pub payout_threshold_usd: f64,
    /// Charged on each payout, USD (a transaction fee).
    #[serde(default)]
    pub payout_fee_usd: f64,
}

/// One month of a storage node on one path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StorageMonth {
    /// 1-based month.
    pub month: u32,
    /// Data held at the end of the month, TB.
    pub stored_tb: f64,
    /// What the month's storage and egress earned, USD (average data held over the month).
    pub earned_usd: f64,
    /// The part of `earned_usd` held back.
    pub held_usd: f64,
    /// Paid out this month: earned minus held, plus any held amount returned.
    pub paid_usd: f64,
    /// Held amount not yet returned at the end of the month.
    pub held_balance_usd: f64,
}

impl StorageMarket {
    pub fn payout(&self) -> crate::model::PayoutTerms {
        crate::model::PayoutTerms {
            platform_fee: self.platform_fee,
            payout_threshold_usd: self.payout_threshold_usd,
            payout_fee_usd: self.payout_fee_usd,
        }
    }

    pub fn validate(&self) -> Result<(), EconomicsError> {
        self.payout().validate()?;
        let nn = crate::model::non_negative;
        nn("storage_usd_per_tb_month", self.usd_per_tb_month)?;
        nn("storage_egress_usd_per_tb", self.egress_usd_per_tb)?;
        if self.usd_per_tb_month > 100.0 {
            return Err(invalid(
                "storage_usd_per_tb_month",
                format!(
                    "USD {}/TB-month is above USD 100; Storj pays 1.50",
                    self.usd_per_tb_month
                ),
            ));
        }
        if self.egress_usd_per_tb > 200.0 {
            return Err(invalid(
                "storage_egress_usd_per_tb",
                format!(
                    "USD {}/TB is above USD 200; Storj pays 2",
                    self.egress_usd_per_tb
                ),
            ));
        }
        crate::model::fraction(
            "storage_egress_share_per_month",
            self.egress_share_per_month,
        )?;
        for v in [
            self.ingress_tb_per_month_p10,
            self.ingress_tb_per_month_p50,
            self.ingress_tb_per_month_p90,
        ] {
            nn("ingress_tb_per_month", v)?;
            if v > MAX_INGRESS_TB_PER_MONTH {
                return Err(invalid(
                    "ingress_tb_per_month",
                    format!("{v} TB a month is above {MAX_INGRESS_TB_PER_MONTH}"),
                ));
            }
        }
        if !(self.ingress_tb_per_month_p10 <= self.ingress_tb_per_month_p50
            && self.ingress_tb_per_month_p50 <= self.ingress_tb_per_month_p90)
        {
            return Err(invalid(
                "ingress_tb_per_month",
                "the range must have p10 ≤ p50 ≤ p90",
            ));
        }
        if self.vetting_months > crate::MAX_MONTHS {
            return Err(invalid(
                "vetting_months",
                format!("must be 0..={}", crate::MAX_MONTHS),
            ));
        }
        crate::model::fraction("vetting_ingress_fraction", self.vetting_ingress_fraction)?;
        if self.held_back_by_month.len() > crate::MAX_MONTHS as usize {
            return Err(invalid("held_back_by_month", "too many months"));
        }
        for v in &self.held_back_by_month {
            crate::model::fraction("held_back_by_month", *v)?;
        }
        crate::model::fraction("held_back_returned_share", self.held_back_returned_share)?;
        Ok(())
    }

    /// The fill rate of a path whose level is `u` ∈ [0, 1).
    pub fn ingress_at(&self, u: f64) -> f64 {
        crate::model::through_quantiles(
            u,
            self.ingress_tb_per_month_p10,
            self.ingress_tb_per_month_p50,
            self.ingress_tb_per_month_p90,
        )
        .max(0.0)
    }

    /// Months until a node of `capacity_tb` is full at `ingress` TB a month after vetting
    /// (`None`: it never fills).
    pub fn months_to_fill(&self, capacity_tb: f64, ingress: f64) -> Option<u32> {
        let mut stored = 0.0;
        for t in 0..crate::MAX_MONTHS {
            if stored >= capacity_tb {
                return Some(t);
            }
            stored += self.ingress_in_month(t, ingress);
        }
        None
    }

    fn ingress_in_month(&self, t: u32, ingress: f64) -> f64 {
        if t < self.vetting_months {
            ingress * self.vetting_ingress_fraction
        } else {
            ingress
        }
    }

    /// The node's months over a `lifetime` (months 1..=lifetime) at `ingress` TB a month.
    ///
    /// Month `m` (1-based): data held rises by that month's ingress up to `capacity_tb`;
    /// it earns `(avg × usd_per_tb_month + avg × egress_share × egress_usd_per_tb) ×
    /// (1 − platform_fee)` where
    /// `avg` is the mean of the data held at the month's start and end; `held_back[m]` of
    /// that is held; in `held_back_returned_month` the given share of the balance is paid;
    /// in the last month the balance is paid if the node is at least
    /// `graceful_exit_min_months` old, else forfeited.
    pub fn schedule(&self, capacity_tb: f64, ingress: f64, lifetime: u32) -> Vec<StorageMonth> {
        let mut out = Vec::with_capacity(lifetime as usize);
        let (mut stored, mut balance) = (0.0f64, 0.0f64);
        let per_tb = (self.usd_per_tb_month + self.egress_share_per_month * self.egress_usd_per_tb)
            * (1.0 - self.platform_fee);
        for t in 0..lifetime {
            let month = t + 1;
            let start = stored;
            stored = (stored + self.ingress_in_month(t, ingress)).min(capacity_tb);
            let earned = (start + stored) / 2.0 * per_tb;
            let share = self
                .held_back_by_month
                .get(t as usize)
                .copied()
                .unwrap_or(0.0);
            let held = earned * share;
            balance += held;
            let mut paid = earned - held;
            if month == self.held_back_returned_month {
                let back = balance * self.held_back_returned_share;
                paid += back;
                balance -= back;
            }
            if month == lifetime {
                if month >= self.graceful_exit_min_months {
                    paid += balance;
                }
                balance = 0.0;
            }
            out.push(StorageMonth {
                month,
                stored_tb: stored,
                earned_usd: earned,
                held_usd: held,
                paid_usd: paid,
                held_balance_usd: balance,
            });
        }
        out
    }

    /// One line for the estimate's "rate:" header.
    pub fn describe(&self) -> String {
        let held = if self.held_back_by_month.is_empty() {
            "nothing held back".to_string()
        } else {
            format!(
                "{} held back in months 1–{}, {:.0}% of it returned in month {}, the rest on a graceful exit",
                self.held_back_by_month
                    .iter()
                    .map(|s| format!("{:.0}", s * 100.0))
                    .collect::<Vec<_>>()
                    .join("/")
                    + "%",
                self.held_back_by_month.len(),
                self.held_back_returned_share * 100.0,
                self.held_back_returned_month
            )
        };
        format!(
            "stores data at USD {}/TB-month plus USD {}/TB egress ({:.1}% of the data a month); fills at {}–{} TB/month (p10–p90, p50 {}) after {} vetting months at {:.0}% of that; {held}",
            self.usd_per_tb_month,
            self.egress_usd_per_tb,
            self.egress_share_per_month * 100.0,
            self.ingress_tb_per_month_p10,
            self.ingress_tb_per_month_p90,
            self.ingress_tb_per_month_p50,
            self.vetting_months,
            self.vetting_ingress_fraction * 100.0
        )
    }
}
