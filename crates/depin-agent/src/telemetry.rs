//! Reading the machine's telemetry (Linux `/proc` and `/sys`), with the
//! parsing kept in pure functions. Conventions for unknown values are in
//! [`crate::heartbeat`].

use crate::heartbeat::Telemetry;
use depin_protocol::limits;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Whole seconds of uptime from the text of `/proc/uptime` ("12345.67 54321.00").
pub fn parse_uptime(text: &str) -> Option<u64> {
    let first = text.split_whitespace().next()?;
    let secs: f64 = first.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// Millidegrees Celsius from the text of a thermal zone's `temp` file. Readings
/// outside what the protocol considers plausible (sensors that report −273 °C
/// or garbage when absent) are treated as no reading.
pub fn parse_millideg(text: &str) -> Option<i64> {
    let v: i64 = text.trim().parse().ok()?;
    let lo = i64::from(limits::MIN_TEMPERATURE_CENTI_C) * 10;
    let hi = i64::from(limits::MAX_TEMPERATURE_CENTI_C) * 10;
    (lo..=hi).contains(&v).then_some(v)
}

/// The hottest plausible reading of `root/thermal_zone*/temp`, or `None`.
pub fn max_thermal_millideg(root: &Path) -> Option<i64> {
    let entries = fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
        .filter_map(|e| fs::read_to_string(e.path().join("temp")).ok())
        .filter_map(|t| parse_millideg(&t))
        .max()
}

/// Where telemetry comes from. Paths are fields so tests can point them at
/// fixtures.
#[derive(Clone, Debug)]
pub struct TelemetrySource {
    pub proc_uptime: PathBuf,
    pub thermal_root: PathBuf,
    pub declared_watts: f64,
    pub firmware_version: String,
    started: Instant,
}

impl TelemetrySource {
    pub fn system(declared_watts: f64, firmware_version: String) -> Self {
        TelemetrySource {
            proc_uptime: PathBuf::from("/proc/uptime"),
            thermal_root: PathBuf::from("/sys/class/thermal"),
            declared_watts,
            firmware_version,
            started: Instant::now(),
        }
    }

    /// Reads the current telemetry. System uptime when the OS exposes it, else
    /// the agent's own running time.
    pub fn read(&self) -> Telemetry {
        let uptime_s = fs::read_to_string(&self.proc_uptime)
            .ok()
            .and_then(|t| parse_uptime(&t))
            .unwrap_or_else(|| self.started.elapsed().as_secs());
        Telemetry {
            uptime_s,
            temperature_millideg_c: max_thermal_millideg(&self.thermal_root),
            declared_watts: self.declared_watts,
            firmware_version: self.firmware_version.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_uptime() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("-1 2"), None);
        assert_eq!(parse_uptime("nan 2"), None);
    }

    #[test]
    fn parses_thermal_readings_and_ignores_absurd_ones() {
        assert_eq!(parse_millideg("45000\n"), Some(45_000));
        assert_eq!(parse_millideg("-273000"), None);
        assert_eq!(parse_millideg("garbage"), None);
    }

    #[test]
    fn reads_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (zone, temp) in [
            ("thermal_zone0", "41000"),
            ("thermal_zone1", "67500"),
            ("thermal_zone2", "-273000"),
            ("cooling_device0", "99000"),
        ] {
            fs::create_dir(dir.path().join(zone)).unwrap();
            fs::write(dir.path().join(zone).join("temp"), temp).unwrap();
        }
        fs::write(dir.path().join("uptime"), "100.5 1.0").unwrap();
        let mut src = TelemetrySource::system(5.0, "1.2.3".into());
        src.thermal_root = dir.path().to_path_buf();
        src.proc_uptime = dir.path().join("uptime");
        let t = src.read();
        assert_eq!(t.temperature_millideg_c, Some(67_500));
        assert_eq!(t.uptime_s, 100);

        src.thermal_root = dir.path().join("missing");
        src.proc_uptime = dir.path().join("missing");
        let t = src.read();
        assert_eq!(t.temperature_millideg_c, None, "no sensor: unknown");
        assert!(t.uptime_s < 5, "falls back to the agent's running time");
    }
}
