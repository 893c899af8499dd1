//! A live operator's earnings per month (or per day), device and sector, as CSV a tax
//! tool can read: RFC 4180, a header row, ISO 8601 dates, dot decimals, no thousands
//! separators.
//!
//! Design decision: the rows are built from the coordinator's reward lines (one per
//! device and closed epoch) and the running costs it has accounted per device since
//! registration. An epoch's tokens belong to the UTC day its epoch ends, when they are
//! credited. Costs are known per device only as a total so far, so each period gets the
//! share of that total its overlap with the device's active time carries (even spreading:
//! the electricity of a device that drew more in one month is not moved into it). Tokens
//! are valued at one price, the operator's stored token price, and every row says which.

use crate::YearMonth;
use depin_core::BASE_UNITS_PER_TOKEN;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const MS_PER_DAY: i64 = 86_400_000;

/// One device's reward for one closed epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReward {
    pub device: String,
    pub sector: String,
    /// When the epoch ended (unix ms): the day the tokens count for.
    pub epoch_end_ms: i64,
    /// Emission plus usage income, base units.
    pub base_units: u64,
}

/// A device's running costs so far and the time they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCosts {
    pub device: String,
    pub sector: String,
    pub registered_ms: i64,
    /// Revocation or "now", whichever is first.
    pub until_ms: i64,
    /// Electricity, internet share and maintenance over `registered_ms..until_ms`;
    /// `None` when the coordinator cannot cost the device (unknown hardware).
    pub running_costs_usd: Option<f64>,
}

/// How long one row's period is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month,
    Day,
}

/// One CSV row: a period, a device and what it earned and cost then.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsRow {
    /// First day of the period (UTC).
    pub date: (i32, u32, u32),
    pub device: String,
    pub sector: String,
    pub epochs: u64,
    pub base_units: u128,
    pub running_costs_usd: Option<f64>,
}

/// The civil date of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as i32;
    (y, m, d)
}

/// Days from 1970-01-01 to a civil date (the inverse of [`civil_from_days`]).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The period containing `ms`, as [first day, first day of the next period).
fn period_of(ms: i64, period: Period) -> (i64, i64) {
    let day = ms.div_euclid(MS_PER_DAY);
    match period {
        Period::Day => (day, day + 1),
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
        }
    }
}

/// Upper bound on the periods one device spans (about 100 years of days), so a
/// corrupt registration time cannot make the loop run away.
const MAX_PERIODS_PER_DEVICE: usize = 36_600;

/// The rows for `rewards` and `costs`, one per (period, device) in which the device was
/// active or earned, sorted by date then device; with `only` just that month's.
pub fn earnings_rows(
    rewards: &[EpochReward],
    costs: &[DeviceCosts],
    period: Period,
    only: Option<YearMonth>,
) -> Vec<EarningsRow> {
    // (first day of the period, device) → (sector, epochs, base units, costs)
    type Acc = (String, u64, u128, Option<f64>);
    let mut rows: BTreeMap<(i64, String), Acc> = BTreeMap::new();
    for c in costs {
        let active = c.until_ms - c.registered_ms;
        let mut t = c.registered_ms;
        for _ in 0..MAX_PERIODS_PER_DEVICE {
            if t >= c.until_ms {
                break;
            }
            let (start, next) = period_of(t, period);
            let end = (next * MS_PER_DAY).min(c.until_ms);
            let share = c
                .running_costs_usd
                .map(|r| r * (end - t) as f64 / active as f64);
            let e = rows
                .entry((start, c.device.clone()))
                .or_insert_with(|| (c.sector.clone(), 0, 0, Some(0.0)));
            e.3 = e.3.zip(share).map(|(a, b)| a + b);
            t = end;
        }
    }
    let known_cost = |device: &str| {
        costs
            .iter()
            .find(|c| c.device == device)
            .map(|c| c.running_costs_usd.map(|_| 0.0))
    };
    for r in rewards {
        let (start, _) = period_of(r.epoch_end_ms, period);
        let e = rows.entry((start, r.device.clone())).or_insert_with(|| {
            // Earned in a period outside the device's accounted time: no cost there,
            // unless the device's costs are unknown altogether.
            (
                r.sector.clone(),
                0,
                0,
                known_cost(&r.device).unwrap_or(None),
            )
        });
        e.1 += 1;
        e.2 += u128::from(r.base_units);
    }
    rows.into_iter()
        .map(
            |((day, device), (sector, epochs, base_units, costs))| EarningsRow {
                date: civil_from_days(day),
                device,
                sector,
                epochs,
                base_units,
                running_costs_usd: costs,
            },
        )
        .filter(|r| only.is_none_or(|m| r.date.0 == m.year && r.date.1 == m.month))
        .collect()
}

/// The CSV header.
pub const EARNINGS_CSV_HEADER: &str = "date,period,device,sector,epochs,tokens,token_price_usd,token_price_source,earned_usd,running_costs_usd,net_usd";

/// The rows as CSV (CRLF line ends, as RFC 4180 says). Tokens are exact (six decimals
/// from base units); USD has six decimals; an unknown cost is an empty field, and so
/// is the net that depends on it.
pub fn earnings_csv(
    rows: &[EarningsRow],
    period: Period,
    token_price_usd: f64,
    token_price_source: &str,
) -> String {
    let mut out = String::new();
    out.push_str(EARNINGS_CSV_HEADER);
    out.push_str("\r\n");
    let unit = u128::from(BASE_UNITS_PER_TOKEN);
    for r in rows {
        let (y, m, d) = r.date;
        let earned = r.base_units as f64 / unit as f64 * token_price_usd;
        let usd = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let _ = write!(
            out,
            "{y:04}-{m:02}-{d:02},{},{},{},{},{}.{:06},{},{},{:.6},{},{}\r\n",
            match period {
                Period::Month => "month",
                Period::Day => "day",
            },
            csv_field(&r.device),
            csv_field(&r.sector),
            r.epochs,
            r.base_units / unit,
            r.base_units % unit,
            token_price_usd,
            csv_field(token_price_source),
            earned,
            usd(r.running_costs_usd),
            usd(r.running_costs_usd.map(|c| earned - c)),
        );
    }
    out
}

/// A field quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = MS_PER_DAY;

    fn ms(y: i32, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) * DAY
    }

    #[test]
    fn civil_dates_round_trip() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (20_788, (2026, 12, 1)),
            (20_818, (2026, 12, 31)),
            (19_782, (2024, 2, 29)),
            (11_017, (2000, 3, 1)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date);
            assert_eq!(days_from_civil(date.0, date.1, date.2), days);
        }
        for d in (-800_000..800_000).step_by(997) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn months_split_tokens_by_epoch_end_and_costs_by_active_time() {
        // Registered 2026-11-16 00:00, accounted until 2026-12-16 00:00: 30 days, USD 30
        // of running costs, so 15 days (USD 15) in each month.
        let costs = [DeviceCosts {
            device: "aa".into(),
            sector: "storage".into(),
            registered_ms: ms(2026, 11, 16),
            until_ms: ms(2026, 12, 16),
            running_costs_usd: Some(30.0),
        }];
        let reward = |end: i64, base: u64| EpochReward {
            device: "aa".into(),
            sector: "storage".into(),
            epoch_end_ms: end,
            base_units: base,
        };
        let rewards = [
            reward(ms(2026, 11, 20), 1_500_000),
            // Ends on the last millisecond of November: November's.
            reward(ms(2026, 12, 1) - 1, 500_000),
            // Ends at midnight, 1 December: December's.
            reward(ms(2026, 12, 1), 2_000_001),
        ];
        let rows = earnings_rows(&rewards, &costs, Period::Month, None);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].date, (2026, 11, 1));
        assert_eq!((rows[0].epochs, rows[0].base_units), (2, 2_000_000));
        assert!((rows[0].running_costs_usd.unwrap() - 15.0).abs() < 1e-9);
        assert_eq!((rows[1].epochs, rows[1].base_units), (1, 2_000_001));
        assert!((rows[1].running_costs_usd.unwrap() - 15.0).abs() < 1e-9);
        let csv = earnings_csv(&rows, Period::Month, 0.5, "operator");
        assert_eq!(
            csv,
            format!(
                "{EARNINGS_CSV_HEADER}\r\n\
                 2026-11-01,month,aa,storage,2,2.000000,0.5,operator,1.000000,15.000000,-14.000000\r\n\
                 2026-12-01,month,aa,storage,1,2.000001,0.5,operator,1.000001,15.000000,-13.999999\r\n"
            )
        );
        // One month, by day: 15 rows of USD 1 each, the reward on 1 December.
        let dec = earnings_rows(
            &rewards,
            &costs,
            Period::Day,
            Some(YearMonth {
                year: 2026,
                month: 12,
            }),
        );
        assert_eq!(dec.len(), 15);
        assert_eq!(dec[0].date, (2026, 12, 1));
        assert_eq!(dec[0].base_units, 2_000_001);
        assert!(
            dec.iter()
                .all(|r| (r.running_costs_usd.unwrap() - 1.0).abs() < 1e-9)
        );
        assert_eq!(dec[14].date, (2026, 12, 15));
    }

    #[test]
    fn unknown_costs_and_odd_inputs_stay_honest() {
        let costs = [DeviceCosts {
            device: "b,\"x\"".into(),
            sector: "sensor".into(),
            registered_ms: 0,
            until_ms: 0,
            running_costs_usd: None,
        }];
        let rewards = [EpochReward {
            device: "b,\"x\"".into(),
            sector: "sensor".into(),
            epoch_end_ms: i64::MAX,
            base_units: u64::MAX,
        }];
        let rows = earnings_rows(&rewards, &costs, Period::Month, None);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].running_costs_usd, None);
        let csv = earnings_csv(&rows, Period::Month, 0.0, "defaults");
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.ends_with(",\"b,\"\"x\"\"\",sensor,1,18446744073709.551615,0,defaults,0.000000,,"),
            "{line}"
        );
        // A registration time of i64::MIN cannot make the loop run away.
        let costs = [DeviceCosts {
            device: "c".into(),
            sector: "storage".into(),
            registered_ms: i64::MIN / 2,
            until_ms: 0,
            running_costs_usd: Some(1.0),
        }];
        let rows = earnings_rows(&[], &costs, Period::Day, None);
        assert_eq!(rows.len(), MAX_PERIODS_PER_DEVICE);
    }
}
