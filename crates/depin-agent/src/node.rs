//! A node's data directory: the device key, the node configuration and the
//! onboarding step (`depin node init`).
//!
//! Layout of `DIR`:
//! - `device.key`: the device's ed25519 seed, JSON, mode 0600. Unencrypted on
//!   purpose: the agent must sign unattended, and a device key can only sign
//!   reports (see `depin-keys` for the operator key, which is encrypted).
//! - `node.json`: what `depin node run` needs (coordinator, sector, hardware,
//!   declared power). Written last by `init`, so its presence means the device
//!   is registered.
//! - `policy.json`: the coordinator's policy as last fetched, so the agent can
//!   start heartbeating while the coordinator is down.
//! - `spool.log`, `spool.state`: see [`crate::spool`]; `status.json`: see
//!   [`crate::status`]; `agent.lock`: the running agent's pid.

use depin_client::{Client, ClientError, DeviceView, PolicyView};
use depin_core::{PublicKey, Sector};
use depin_protocol::{
    DeviceCertificate, Envelope, Location, SigningKey, limits, public_key_of, sign,
};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub const NODE_FILE: &str = "node.json";
pub const DEVICE_KEY_FILE: &str = "device.key";
pub const POLICY_FILE: &str = "policy.json";

/// `node.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub version: u32,
    pub device: PublicKey,
    pub operator: PublicKey,
    /// Relative to the data directory unless absolute.
    pub device_key_file: PathBuf,
    pub coordinator: String,
    pub sector: Sector,
    pub hardware_class: String,
    pub firmware_version: String,
    /// The operator's declared average draw, sent in every heartbeat.
    pub declared_watts: f64,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
    pub registered_ms: i64,
}

/// `device.key`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceKeyFile {
    version: u32,
    public_key: PublicKey,
    seed_hex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is already initialised (it has {NODE_FILE}); use another --data-dir, or run `depin node run --data-dir {}`", dir.display(), dir.display())]
    AlreadyInitialised { dir: PathBuf },
    #[error("{} is not initialised: run `depin node init … --data-dir {}` first", dir.display(), dir.display())]
    NotInitialised { dir: PathBuf },
    #[error("{} is damaged: {detail}", path.display())]
    Corrupt { path: PathBuf, detail: String },
    #[error("{0}")]
    Invalid(String),
    /// Registration failed; the device key stays in the data directory, so
    /// running the same `init` again reuses it.
    #[error("cannot register the device with {url}: {error}")]
    Register { url: String, error: ClientError },
    #[error("device {device} is already registered to another operator ({operator})")]
    OwnedByOther {
        device: PublicKey,
        operator: PublicKey,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NodeError + 'a {
    move |source| NodeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `path` with mode 0600 and writes `bytes`, refusing to replace an
/// existing file. fsyncs the file and its directory.
pub fn write_private_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    sync_parent(path)
}

/// Replaces `path` atomically with a 0600 file holding `bytes` (temporary
/// file, fsync, rename, fsync directory).
pub fn write_private_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    write_private_new(&tmp, bytes)?;
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Writes a non-secret file atomically (status, policy cache, node.json).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Loads the device key from `path`.
pub fn load_device_key(path: &Path) -> Result<SigningKey, NodeError> {
    let text = Zeroizing::new(
        fs::read_to_string(path).map_err(io_err("cannot read the device key", path))?,
    );
    let corrupt = |detail: String| NodeError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let file: DeviceKeyFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
    if file.version != 1 {
        return Err(corrupt(format!(
            "unsupported device key version {}",
            file.version
        )));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(&file.seed_hex, seed.as_mut())
        .map_err(|e| corrupt(format!("seed: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    if public_key_of(&key) != file.public_key {
        return Err(corrupt("the seed does not match the public key".into()));
    }
    Ok(key)
}

/// Stores `key` at `path` (mode 0600, never overwriting).
pub fn store_device_key(path: &Path, key: &SigningKey) -> Result<(), NodeError> {
    let file = DeviceKeyFile {
        version: 1,
        public_key: public_key_of(key),
        seed_hex: hex::encode(key.to_bytes()),
    };
    let text = Zeroizing::new(serde_json::to_string_pretty(&file).expect("serialises"));
    write_private_new(path, text.as_bytes()).map_err(io_err("cannot write the device key", path))
}

impl NodeConfig {
    pub fn load(dir: &Path) -> Result<NodeConfig, NodeError> {
        let path = dir.join(NODE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(NodeError::NotInitialised {
                    dir: dir.to_path_buf(),
                });
            }
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| NodeError::Corrupt {
            path,
            detail: e.to_string(),
        })
    }

    pub fn device_key_path(&self, dir: &Path) -> PathBuf {
        if self.device_key_file.is_absolute() {
            self.device_key_file.clone()
        } else {
            dir.join(&self.device_key_file)
        }
    }
}

/// Saves the policy cache (best effort is not enough for money, but this is
/// only a fallback for the heartbeat cadence, so errors are returned and the
/// caller logs them).
pub fn save_policy(dir: &Path, policy: &PolicyView) -> io::Result<()> {
    let raw = if policy.raw.is_null() {
        serde_json::to_value(policy).expect("serialises")
    } else {
        policy.raw.clone()
    };
    write_atomic(
        &dir.join(POLICY_FILE),
        serde_json::to_string_pretty(&raw)
            .expect("serialises")
            .as_bytes(),
    )
}

pub fn load_policy(dir: &Path) -> Option<PolicyView> {
    let text = fs::read_to_string(dir.join(POLICY_FILE)).ok()?;
    let raw: serde_json::Value = serde_json::from_str(&text).ok()?;
    let mut p: PolicyView = serde_json::from_value(raw.clone()).ok()?;
    p.raw = raw;
    Some(p)
}

/// What `depin node init` is asked to set up.
#[derive(Clone, Debug)]
pub struct InitParams {
    pub data_dir: PathBuf,
    pub coordinator: String,
    pub sector: Sector,
    pub hardware_class: String,
    pub firmware_version: String,
    pub declared_watts: f64,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

/// The certificate's location from degrees, checked against the protocol's
/// ranges. Both or neither must be given.
pub fn location(lat: Option<f64>, lon: Option<f64>) -> Result<Option<Location>, NodeError> {
    match (lat, lon) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => {
            let micro = |v: f64, max: i32, name: &str| {
                let m = (v * 1e6).round();
                if !v.is_finite() || m.abs() > f64::from(max) {
                    Err(NodeError::Invalid(format!(
                        "--{name} {v} is out of range (±{} degrees)",
                        max / 1_000_000
                    )))
                } else {
                    Ok(m as i32)
                }
            };
            Ok(Some(Location {
                lat_microdeg: micro(lat, limits::MAX_LAT_MICRODEG, "lat")?,
                lon_microdeg: micro(lon, limits::MAX_LON_MICRODEG, "lon")?,
                h3_cell: None,
            }))
        }
        _ => Err(NodeError::Invalid(
            "give both --lat and --lon, or neither".into(),
        )),
    }
}

fn check_label(value: &str, flag: &str) -> Result<(), NodeError> {
    if value.is_empty()
        || value.len() > limits::MAX_LABEL_LEN
        || value.chars().any(char::is_control)
    {
        return Err(NodeError::Invalid(format!(
            "--{flag} must be 1 to {} printable bytes, got {value:?}",
            limits::MAX_LABEL_LEN
        )));
    }
    Ok(())
}

/// The certificate for `device_key`, signed by the device key (it proves the
/// registrant holds it) and then by the operator. Pure apart from its inputs.
pub fn certificate(
    operator: &SigningKey,
    device_key: &SigningKey,
    p: &InitParams,
    now_ms: i64,
) -> Result<depin_protocol::Signed, NodeError> {
    let device = public_key_of(device_key);
    check_label(&p.hardware_class, "hardware-class")?;
    check_label(&p.firmware_version, "firmware-version")?;
    if !p.declared_watts.is_finite()
        || p.declared_watts < 0.0
        || p.declared_watts * 1000.0 > f64::from(limits::MAX_POWER_MW)
    {
        return Err(NodeError::Invalid(format!(
            "--watts must be between 0 and {} W, got {}",
            limits::MAX_POWER_MW / 1000,
            p.declared_watts
        )));
    }
    let operator_key = public_key_of(operator);
    if operator_key == device {
        return Err(NodeError::Invalid(
            "the device key must differ from the operator key".into(),
        ));
    }
    let cert = DeviceCertificate {
        device_key: device,
        operator_key,
        sector: p.sector,
        hardware_class: p.hardware_class.clone(),
        firmware_version: p.firmware_version.clone(),
        location: location(p.lat, p.lon)?,
        issued_at_ms: now_ms,
        device_signature: None,
    }
    .signed_by_device(device_key);
    // Operator messages are not sequenced by the coordinator (only their
    // clock is checked); the issue time keeps them distinct anyway.
    let seq = u64::try_from(now_ms).unwrap_or(0);
    Ok(sign(
        &Envelope::new(operator_key, seq, now_ms, &cert),
        operator,
    ))
}

/// What [`init`] did.
#[derive(Clone, Debug)]
pub struct Initialised {
    pub config: NodeConfig,
    pub device: DeviceView,
    /// The device key existed from an earlier, interrupted `init`.
    pub reused_key: bool,
}

/// `depin node init`: creates (or, after an interrupted init, reuses) the
/// device key, registers it with a certificate signed by `operator`, and
/// writes `node.json`. `new_key` is called only when a key must be created.
pub async fn init(
    p: &InitParams,
    operator: &SigningKey,
    new_key: impl FnOnce() -> SigningKey,
    now_ms: i64,
) -> Result<Initialised, NodeError> {
    let dir = &p.data_dir;
    if dir.join(NODE_FILE).exists() {
        return Err(NodeError::AlreadyInitialised { dir: dir.clone() });
    }
    let client = Client::new(&p.coordinator).map_err(|e| NodeError::Invalid(e.to_string()))?;
    // Validate everything that needs no key before touching the disk.
    location(p.lat, p.lon)?;
    fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot set permissions on", dir))?;
    }
    let key_path = dir.join(DEVICE_KEY_FILE);
    let (device_key, reused_key) = if key_path.exists() {
        (load_device_key(&key_path)?, true)
    } else {
        let k = new_key();
        store_device_key(&key_path, &k)?;
        (k, false)
    };
    let device = public_key_of(&device_key);
    let signed = certificate(operator, &device_key, p, now_ms)?;
    let register_err = |error| NodeError::Register {
        url: client.base_url().to_string(),
        error,
    };
    let view = match client.register_device(&signed).await {
        Ok(v) => v,
        Err(e) if e.code() == Some("already_registered") => {
            // An earlier init registered the key and stopped before writing
            // node.json: fine if it is ours.
            let v = client.device(&device).await.map_err(register_err)?;
            if v.operator != public_key_of(operator) {
                return Err(NodeError::OwnedByOther {
                    device,
                    operator: v.operator,
                });
            }
            v
        }
        Err(e) => return Err(register_err(e)),
    };
    if let Ok(policy) = client.policy().await
        && let Err(e) = save_policy(dir, &policy)
    {
        tracing::warn!("cannot cache the coordinator's policy: {e}");
    }
    let config = NodeConfig {
        version: 1,
        device,
        operator: public_key_of(operator),
        device_key_file: PathBuf::from(DEVICE_KEY_FILE),
        coordinator: client.base_url().to_string(),
        sector: p.sector,
        hardware_class: p.hardware_class.clone(),
        firmware_version: p.firmware_version.clone(),
        declared_watts: p.declared_watts,
        lat: p.lat,
        lon: p.lon,
        registered_ms: view.registered_ms,
    };
    let node_path = dir.join(NODE_FILE);
    write_atomic(
        &node_path,
        serde_json::to_string_pretty(&config)
            .expect("serialises")
            .as_bytes(),
    )
    .map_err(io_err("cannot write", &node_path))?;
    Ok(Initialised {
        config,
        device: view,
        reused_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use depin_protocol::{decode_signed, device_keypair_from_seed};

    fn params() -> InitParams {
        InitParams {
            data_dir: PathBuf::from("/nonexistent"),
            coordinator: "http://127.0.0.1:1".into(),
            sector: Sector::Storage,
            hardware_class: "raspberry-pi-5".into(),
            firmware_version: "0.1.0".into(),
            declared_watts: 6.5,
            lat: Some(52.52),
            lon: Some(13.405),
        }
    }

    #[test]
    fn certificate_is_signed_by_the_operator_and_validates() {
        let op = device_keypair_from_seed([1; 32]);
        let dev_key = device_keypair_from_seed([2; 32]);
        let dev = public_key_of(&dev_key);
        let signed = certificate(&op, &dev_key, &params(), 1_767_225_600_000).unwrap();
        let back = decode_signed(&signed.encode()).unwrap();
        back.verify_signature().unwrap();
        let cert = DeviceCertificate::from_envelope(&back.envelope).unwrap();
        assert_eq!(cert.device_key, dev);
        assert_eq!(cert.operator_key, public_key_of(&op));
        assert_eq!(cert.location.unwrap().lat_microdeg, 52_520_000);
    }

    #[test]
    fn bad_inputs_are_refused_with_the_flag_name() {
        let op = device_keypair_from_seed([1; 32]);
        let dev = device_keypair_from_seed([2; 32]);
        let cases: Vec<(InitParams, &str)> = vec![
            (
                InitParams {
                    hardware_class: String::new(),
                    ..params()
                },
                "--hardware-class",
            ),
            (
                InitParams {
                    firmware_version: "x".repeat(65),
                    ..params()
                },
                "--firmware-version",
            ),
            (
                InitParams {
                    declared_watts: -1.0,
                    ..params()
                },
                "--watts",
            ),
            (
                InitParams {
                    lat: Some(91.0),
                    ..params()
                },
                "--lat",
            ),
            (
                InitParams {
                    lon: None,
                    ..params()
                },
                "--lat and --lon",
            ),
        ];
        for (p, needle) in cases {
            let e = certificate(&op, &dev, &p, 0).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    #[test]
    fn device_key_round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DEVICE_KEY_FILE);
        let key = device_keypair_from_seed([3; 32]);
        store_device_key(&path, &key).unwrap();
        assert_eq!(load_device_key(&path).unwrap().to_bytes(), key.to_bytes());
        assert!(
            store_device_key(&path, &key).is_err(),
            "never overwrites a key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
