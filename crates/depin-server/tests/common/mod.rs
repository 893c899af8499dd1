//! Set-up shared by the server's HTTP tests.

#![allow(dead_code)] // each test file uses a part

use depin_core::Sector;
use depin_protocol::{DeviceCertificate, Envelope, SigningKey, public_key_of, sign};
use depin_rewards::RewardPolicy;
use depin_server::{DEFAULT_MAX_BODY_BYTES, RunningServer, ServerConfig, now_ms};
use std::time::Duration;

/// A server on a free loopback port over SQLite in `dir`, closing due epochs
/// every 100 ms.
pub async fn start(dir: &std::path::Path, policy: RewardPolicy) -> RunningServer {
    start_with_body_limit(dir, policy, DEFAULT_MAX_BODY_BYTES).await
}

pub async fn start_with_body_limit(
    dir: &std::path::Path,
    policy: RewardPolicy,
    max_body_bytes: usize,
) -> RunningServer {
    start_with(dir, policy, |cfg| cfg.max_body_bytes = max_body_bytes).await
}

/// Like [`start`], with the configuration adjusted by `adjust` first.
pub async fn start_with(
    dir: &std::path::Path,
    policy: RewardPolicy,
    adjust: impl FnOnce(&mut ServerConfig),
) -> RunningServer {
    let url = depin_store::sqlite_url(&dir.join("depin.sqlite"));
    let mut cfg = ServerConfig::new("127.0.0.1:0".parse().unwrap(), url, policy);
    cfg.close_tick = Duration::from_millis(100);
    adjust(&mut cfg);
    depin_server::start(cfg).await.unwrap()
}

/// A compute device certificate signed by the operator, as the agent builds it.
pub fn cert(op: &SigningKey, dev: &SigningKey, class: &str, firmware: &str) -> Vec<u8> {
    let c = DeviceCertificate {
        device_key: public_key_of(dev),
        operator_key: public_key_of(op),
        sector: Sector::Compute,
        hardware_class: class.into(),
        firmware_version: firmware.into(),
        location: None,
        issued_at_ms: now_ms(),
        device_signature: None,
    }
    .signed_by_device(dev);
    sign(&Envelope::new(public_key_of(op), 0, now_ms(), &c), op).encode()
}
