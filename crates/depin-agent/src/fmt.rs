//! Text for people: counts with their noun in the right number and digit
//! groups, and unix-millisecond times as readable UTC. Pure, so the CLI and
//! the agent print the same way and it is tested here.

/// `1234567` → `"1,234,567"`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `count(1, "heartbeat")` → `"1 heartbeat"`, `count(2500, "report")` →
/// `"2,500 reports"`. The plural is the noun with an `s` (every noun the
/// agent counts takes one).
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{} {noun}s", group(n))
    }
}

/// Year, month (1–12) and day (1–31) of the proleptic Gregorian calendar for
/// `days` since 1970-01-01 (negative before). Howard Hinnant's
/// `civil_from_days`, exact over the whole `i64` day range we can reach.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Unix milliseconds as `2026-12-02 06:50:12 UTC` (milliseconds dropped).
pub fn utc(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn counts_take_the_right_number() {
        assert_eq!(count(0, "heartbeat"), "0 heartbeats");
        assert_eq!(count(1, "heartbeat"), "1 heartbeat");
        assert_eq!(count(2, "report"), "2 reports");
        assert_eq!(count(12_345, "report"), "12,345 reports");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(
            civil_from_days(11_016),
            (2000, 2, 29),
            "a leap day of a /400 year"
        );
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(
            civil_from_days(-25_508),
            (1900, 3, 1),
            "1900 is no leap year"
        );
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    #[test]
    fn civil_dates_agree_with_counting_days() {
        // Walk day by day from 1600 to 2400 and compare with a calendar
        // built from the leap-year rule alone.
        let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
        let mut days = civil_days_of_1600_01_01();
        for y in 1600..2400 {
            for m in 1..=12u32 {
                let len = match m {
                    2 if leap(y) => 29,
                    2 => 28,
                    4 | 6 | 9 | 11 => 30,
                    _ => 31,
                };
                for d in 1..=len {
                    assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
                    days += 1;
                }
            }
        }
    }

    fn civil_days_of_1600_01_01() -> i64 {
        // 370 years before 1970, 90 of them leap (1600..1970: 93 multiples of
        // 4, minus 1700, 1800, 1900).
        -(370 * 365 + 90)
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_796_194_212_345), "2026-12-02 06:50:12 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
