//! Domain types every depin crate speaks in.
//!
//! This crate is pure: no I/O, no clock, no randomness. Time is passed in as
//! [`UnixMillis`]; money is always an integer count of base units ([`Amount`]).

mod reason;

pub use reason::Reason;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Base units per whole token. Every amount in the system is an integer count of
/// base units; floats never touch the ledger (DESIGN invariant 2).
pub const BASE_UNITS_PER_TOKEN: u64 = 1_000_000;

/// An amount of tokens in base units.
pub type Amount = u64;

/// Milliseconds since the Unix epoch. Always passed in, never read from a clock
/// inside a pure crate.
pub type UnixMillis = i64;

/// Index of a reward epoch, counted from the network's genesis time.
pub type EpochIndex = u64;

/// An ed25519 public key as raw bytes. Used as the identity of devices and
/// operators. Displays and (de)serialises as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ParseError::KeyLength(bytes.len()))?;
        Ok(Self(arr))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for PublicKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim()).map_err(|_| ParseError::KeyHex)?;
        Self::from_slice(&bytes)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The four kinds of physical infrastructure the network pays for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sector {
    Storage,
    Compute,
    Wireless,
    Sensor,
}

impl Sector {
    pub const ALL: [Sector; 4] = [
        Sector::Storage,
        Sector::Compute,
        Sector::Wireless,
        Sector::Sensor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Storage => "storage",
            Sector::Compute => "compute",
            Sector::Wireless => "wireless",
            Sector::Sensor => "sensor",
        }
    }

    /// Stable small integer used in the wire encoding and the store.
    pub fn code(self) -> u32 {
        match self {
            Sector::Storage => 1,
            Sector::Compute => 2,
            Sector::Wireless => 3,
            Sector::Sensor => 4,
        }
    }

    pub fn from_code(code: u32) -> Option<Sector> {
        Sector::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The payload kind numbers this sector owns, `code × 1000` to
    /// `code × 1000 + 999` (storage 1000–1999, compute 2000–2999, wireless
    /// 3000–3999, sensor 4000–4999). Kinds below 1000 are the backbone's
    /// ([`BACKBONE_KINDS`]). A sector adds kinds only inside its own range, so
    /// two sectors never collide on a number.
    pub fn kind_range(self) -> std::ops::RangeInclusive<u32> {
        let base = self.code() * 1000;
        base..=base + 999
    }

    /// The sector that owns payload kind `kind`, or `None` for a backbone
    /// kind or a number outside every range.
    pub fn owning_kind(kind: u32) -> Option<Sector> {
        Sector::ALL
            .into_iter()
            .find(|s| s.kind_range().contains(&kind))
    }
}

/// Payload kinds of the backbone (certificates, heartbeats, revocations,
/// rotations, work requests, …).
pub const BACKBONE_KINDS: std::ops::RangeInclusive<u32> = 1..=999;

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sector {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sector::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| ParseError::Sector(s.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a public key is 32 bytes, got {0}")]
    KeyLength(usize),
    #[error("a public key must be 64 hex characters")]
    KeyHex,
    #[error("unknown sector {0:?}: expected one of storage, compute, wireless, sensor")]
    Sector(String),
}

/// Formats base units as a decimal token amount, e.g. `1_500_000` → `"1.500000"`.
pub fn format_tokens(amount: Amount) -> String {
    format!(
        "{}.{:06}",
        amount / BASE_UNITS_PER_TOKEN,
        amount % BASE_UNITS_PER_TOKEN
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sector_round_trips_through_str_and_code() {
        for s in Sector::ALL {
            assert_eq!(s.as_str().parse::<Sector>().unwrap(), s);
            assert_eq!(Sector::from_code(s.code()), Some(s));
        }
        assert!("hotspot".parse::<Sector>().is_err());
        // Kind ranges: disjoint, after the backbone's, each owned by its sector.
        for s in Sector::ALL {
            let r = s.kind_range();
            assert!(*r.start() > *BACKBONE_KINDS.end());
            assert_eq!(Sector::owning_kind(*r.start()), Some(s));
            assert_eq!(Sector::owning_kind(*r.end()), Some(s));
        }
        assert_eq!(Sector::owning_kind(999), None);
        assert_eq!(Sector::owning_kind(5000), None);
        assert_eq!(Sector::owning_kind(u32::MAX), None);
        assert_eq!(Sector::from_code(0), None);
    }

    #[test]
    fn public_key_hex_round_trip_and_errors() {
        let k = PublicKey([7u8; 32]);
        assert_eq!(k.to_hex().parse::<PublicKey>().unwrap(), k);
        assert_eq!("zz".parse::<PublicKey>(), Err(ParseError::KeyHex));
        assert_eq!("abcd".parse::<PublicKey>(), Err(ParseError::KeyLength(2)));
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), k);
    }

    #[test]
    fn token_formatting_is_exact() {
        assert_eq!(format_tokens(0), "0.000000");
        assert_eq!(format_tokens(1_500_001), "1.500001");
        assert_eq!(format_tokens(u64::MAX), "18446744073709.551615");
    }
}
