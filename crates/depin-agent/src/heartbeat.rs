//! Building a signed heartbeat from telemetry. Pure: the clock reading, the
//! sequence number and the readings are arguments.
//!
//! Telemetry conventions (what a dashboard reading these fields must know):
//! - `uptime_s`: the machine's uptime (Linux `/proc/uptime`), not the agent's;
//!   where the OS does not expose it, the agent's own running time.
//! - `temperature_centi_c`: the hottest thermal zone in hundredths of °C.
//!   **0 means "unknown"** (no thermal sensor readable): the wire format has no
//!   null, and exactly 0.00 °C is not a reading a running device reports.
//!   Readings outside the protocol's plausible range are clamped to it.
//! - `power_mw`: the operator's **declared** draw (`--watts` at `depin node
//!   init`), not a measurement; clamped to the protocol's maximum.
//! - `firmware_version`: the version declared in the device certificate.

use depin_core::PublicKey;
use depin_protocol::{Envelope, Heartbeat, Signed, SigningKey, limits, sign};

/// What the agent knows about the device when a heartbeat is due.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    pub uptime_s: u64,
    /// Hottest sensor in millidegrees Celsius, `None` when unknown.
    pub temperature_millideg_c: Option<i64>,
    /// Declared power draw in watts.
    pub declared_watts: f64,
    pub firmware_version: String,
}

/// Millidegrees to the wire's hundredths of a degree, clamped to the
/// protocol's range; unknown becomes 0 (see the module docs). A reading that
/// rounds to exactly 0 is nudged to 0.01 °C so it is not mistaken for unknown.
pub fn temperature_centi_c(millideg: Option<i64>) -> i32 {
    let Some(m) = millideg else { return 0 };
    let centi = (m / 10).clamp(
        i64::from(limits::MIN_TEMPERATURE_CENTI_C),
        i64::from(limits::MAX_TEMPERATURE_CENTI_C),
    ) as i32;
    if centi == 0 { 1 } else { centi }
}

/// Declared watts to milliwatts, clamped to `[0, MAX_POWER_MW]`; NaN is 0.
pub fn power_mw(watts: f64) -> u32 {
    if !watts.is_finite() || watts <= 0.0 {
        return if watts == f64::INFINITY {
            limits::MAX_POWER_MW
        } else {
            0
        };
    }
    (watts * 1000.0)
        .round()
        .min(f64::from(limits::MAX_POWER_MW)) as u32
}

/// The heartbeat payload for `t`.
pub fn heartbeat_payload(t: &Telemetry) -> Heartbeat {
    Heartbeat {
        uptime_s: t.uptime_s,
        temperature_centi_c: temperature_centi_c(t.temperature_millideg_c),
        firmware_version: t.firmware_version.clone(),
        power_mw: power_mw(t.declared_watts),
    }
}

/// A heartbeat signed by the device key, with sequence number `seq` and
/// timestamp `now_ms`.
pub fn build(key: &SigningKey, seq: u64, now_ms: i64, t: &Telemetry) -> Signed {
    let signer = PublicKey(key.verifying_key().to_bytes());
    sign(
        &Envelope::new(signer, seq, now_ms, &heartbeat_payload(t)),
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use depin_protocol::{Payload, decode_signed, device_keypair_from_seed};

    #[test]
    fn temperature_conversion_and_unknown() {
        assert_eq!(temperature_centi_c(None), 0);
        assert_eq!(temperature_centi_c(Some(45_123)), 4512);
        assert_eq!(
            temperature_centi_c(Some(3)),
            1,
            "a real reading of ~0 °C is not 'unknown'"
        );
        assert_eq!(temperature_centi_c(Some(-3)), 1);
        assert_eq!(
            temperature_centi_c(Some(1_000_000)),
            limits::MAX_TEMPERATURE_CENTI_C
        );
        assert_eq!(
            temperature_centi_c(Some(-1_000_000)),
            limits::MIN_TEMPERATURE_CENTI_C
        );
    }

    #[test]
    fn power_conversion_clamps() {
        assert_eq!(power_mw(12.5), 12_500);
        assert_eq!(power_mw(0.0), 0);
        assert_eq!(power_mw(-3.0), 0);
        assert_eq!(power_mw(f64::NAN), 0);
        assert_eq!(power_mw(1e12), limits::MAX_POWER_MW);
        assert_eq!(power_mw(f64::INFINITY), limits::MAX_POWER_MW);
    }

    #[test]
    fn builds_a_verifiable_heartbeat() {
        let key = device_keypair_from_seed([9; 32]);
        let t = Telemetry {
            uptime_s: 3600,
            temperature_millideg_c: Some(51_000),
            declared_watts: 7.5,
            firmware_version: "0.1.0".into(),
        };
        let signed = build(&key, 42, 1_767_225_600_123, &t);
        let back = decode_signed(&signed.encode()).unwrap();
        back.verify_signature().unwrap();
        assert_eq!(back.envelope.seq, 42);
        assert_eq!(back.envelope.timestamp_ms, 1_767_225_600_123);
        let hb = Heartbeat::decode(&back.envelope.payload).unwrap();
        assert_eq!(
            hb,
            Heartbeat {
                uptime_s: 3600,
                temperature_centi_c: 5100,
                firmware_version: "0.1.0".into(),
                power_mw: 7500
            }
        );
        assert_eq!(<Heartbeat as Payload>::KIND, back.envelope.kind);
    }
}
