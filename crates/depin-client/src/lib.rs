//! A typed async client for the coordinator's HTTP API (`depin serve`).
//!
//! Every call has a time-out, and every failure is a [`ClientError`] that says
//! whether trying again later can help ([`ClientError::is_retryable`]). That one
//! bit is what the node agent's sender branches on: a retryable failure keeps
//! reports in the on-disk spool for a later attempt, a refusal (4xx) never
//! succeeds by repetition. The server's machine-readable `error` code and its
//! `message` are kept verbatim so callers can show them or match on them.
//!
//! Bodies of signed messages are the protocol's canonical bytes
//! (`application/octet-stream`); everything the server returns is JSON.

use depin_core::{PublicKey, Reason, Sector};
use depin_protocol::{Signed, encode_batch};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default time-out of one request, connection set-up included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL given to [`Client::new`] is not an http(s) URL.
    #[error("{0:?} is not a coordinator URL: expected http://host:port or https://host:port")]
    InvalidUrl(String),
    /// No connection could be made (refused, DNS, reset before a response).
    #[error("cannot reach the coordinator at {url} ({detail}); is `depin serve` running there?")]
    Unreachable { url: String, detail: String },
    /// No complete response within the time-out.
    #[error("the coordinator at {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    /// The coordinator answered with a 5xx status (or 408/429, see
    /// [`ClientError::is_retryable`]): try again later.
    #[error("the coordinator failed ({status} {code}): {message}")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    /// The coordinator refused the request (4xx): repeating it cannot help.
    #[error("the coordinator refused the request ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// A 2xx response whose body is not what the API documents (a proxy's
    /// page, a version mismatch).
    #[error("unexpected response from {url}: {detail}")]
    Decode { url: String, detail: String },
}

impl ClientError {
    /// Whether the same request may succeed later: unreachable, time-outs,
    /// 5xx, 408 (request time-out), 429 (rate limited) and undecodable 2xx
    /// bodies. Plain 4xx refusals are not.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ClientError::InvalidUrl(_) | ClientError::Rejected { .. }
        )
    }

    /// The server's error code (`bad_signature`, `not_found`, …), if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } | ClientError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error code as a protocol [`Reason`], when it is one.
    pub fn reason(&self) -> Option<Reason> {
        self.code().and_then(Reason::parse)
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Server { status, .. } | ClientError::Rejected { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    #[serde(default)]
    message: String,
}

/// `GET /v1/policy`: the reward policy the coordinator runs under. The fields
/// an agent needs are typed; the whole document is kept in `raw` (so a newer
/// server with more fields does not break an older agent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    pub policy_id: String,
    pub epoch_seconds: u64,
    pub heartbeat_interval_seconds: u64,
    pub genesis_unix_ms: i64,
    #[serde(default)]
    pub close_grace_seconds: u64,
    #[serde(default)]
    pub max_clock_skew_ms: i64,
    #[serde(default)]
    pub max_reports_per_device_per_epoch: u32,
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// The latest telemetry a device reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TelemetryView {
    pub timestamp_ms: i64,
    pub uptime_s: u64,
    /// `None` when the device has no readable temperature sensor.
    #[serde(default)]
    pub temperature_c: Option<f64>,
    pub firmware_version: String,
    pub power_w: f64,
}

/// `GET /v1/devices/{hex}`: a device as the coordinator sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: Sector,
    pub hardware_class: String,
    pub firmware_version: String,
    pub registered_ms: i64,
    #[serde(default)]
    pub revoked_ms: Option<i64>,
    #[serde(default)]
    pub replaced_by: Option<PublicKey>,
    /// Highest sequence number the coordinator accepted from this device.
    #[serde(default)]
    pub last_seq: Option<u64>,
    #[serde(default)]
    pub telemetry: Option<TelemetryView>,
    #[serde(default)]
    pub rewards_total: u64,
    /// Count of each reason code the device received (rejections, reductions).
    #[serde(default)]
    pub reasons: BTreeMap<String, u64>,
}

/// One refused report of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedReport {
    /// Position in the submitted batch.
    pub index: u32,
    /// Reason code, e.g. `replayed_sequence`.
    pub reason: String,
}

/// `POST /v1/reports`: the verdict on each report of a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    pub accepted: u32,
    #[serde(default)]
    pub rejected: Vec<RejectedReport>,
}

/// `GET /v1/balances/{account}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Ledger key, e.g. `operator:<hex>`.
    pub account: String,
    /// Base units (10^6 per token).
    pub balance: i64,
}

/// `GET /v1/claims/{epoch}/{account}`: a cumulative claim and its Merkle proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimView {
    pub epoch: u64,
    pub account: String,
    /// Cumulative amount in base units, as the server writes it (number or
    /// decimal string).
    pub amount: serde_json::Value,
    pub proof: Vec<String>,
    pub root: String,
}

/// `POST /v1/orders`: the lock the coordinator holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedOrderView {
    pub consumer: String,
    pub order: u64,
    pub sector: String,
    pub amount: u64,
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// `false` when this same lock was recorded before.
    pub new: bool,
}

/// One order in [`ConsumerView`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order: u64,
    pub sector: String,
    pub amount: u64,
    pub charged: u64,
    pub first_epoch: u64,
    pub last_epoch: u64,
    /// `open` or `settled`.
    pub state: String,
}

/// `GET /v1/consumers/{hex}`: free escrow and orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerView {
    pub consumer: String,
    pub escrow: u64,
    pub orders: Vec<OrderView>,
}

/// One work order open for a device (`GET /v1/work`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkOrder {
    /// What the answer names in its field 1 (`WorkRef`).
    pub id: [u8; 32],
    pub sector: u32,
    /// The payload kind the answer must have.
    pub answer_kind: u32,
    /// The sector's challenge bytes.
    pub body: Vec<u8>,
    /// The answer must reach the coordinator by then (unix ms).
    pub deadline_ms: i64,
    pub issued_epoch: u64,
}

#[derive(Deserialize)]
struct WorkWire {
    work: Vec<WorkItemWire>,
}

#[derive(Deserialize)]
struct WorkItemWire {
    id: String,
    sector: u32,
    answer_kind: u32,
    body: String,
    deadline_ms: i64,
    issued_epoch: u64,
}

/// A `WorkRequest` signed by the device key at `now_ms`, for
/// [`Client::open_work`].
pub fn work_request(device: &depin_protocol::SigningKey, now_ms: i64) -> Signed {
    depin_protocol::sign(
        &depin_protocol::Envelope::new(
            depin_protocol::public_key_of(device),
            0,
            now_ms,
            &depin_protocol::WorkRequest,
        ),
        device,
    )
}

/// An `OperatorSettings` envelope (kind 7) carrying the settings `document`
/// (the canonical settings JSON, `OperatorCostSettings::canonical_json` in
/// `depin-economics`), signed by the operator key at `now_ms`. The sequence
/// number is 0: settings are ordered by their timestamp, which must be newer
/// than the stored settings'.
pub fn operator_settings(
    operator: &depin_protocol::SigningKey,
    now_ms: i64,
    document: String,
) -> Signed {
    depin_protocol::sign(
        &depin_protocol::Envelope::new(
            depin_protocol::public_key_of(operator),
            0,
            now_ms,
            &depin_protocol::OperatorSettings { document },
        ),
        operator,
    )
}

/// A handle on one coordinator. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl Client {
    /// A client for the coordinator at `base_url` (e.g. `http://127.0.0.1:8080`)
    /// with the [`DEFAULT_TIMEOUT`].
    pub fn new(base_url: &str) -> Result<Client, ClientError> {
        Client::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<Client, ClientError> {
        let base = normalize_base(base_url)?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            // The coordinator closes idle keep-alive connections after its
            // header-read timeout (10 s by default); letting go of them sooner
            // avoids sending a request on a connection being closed.
            .pool_idle_timeout(Duration::from_secs(5))
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("depin-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::InvalidUrl(format!("{base_url}: {e}")))?;
        Ok(Client {
            base,
            http,
            timeout,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<(), ClientError> {
        let url = self.url("/healthz");
        let resp = self.send(self.http.get(&url), &url).await?;
        check_status(resp, &url).await.map(|_| ())
    }

    /// `GET /v1/policy`.
    pub async fn policy(&self) -> Result<PolicyView, ClientError> {
        let raw: serde_json::Value = self.get_json("/v1/policy").await?;
        let mut view: PolicyView =
            serde_json::from_value(raw.clone()).map_err(|e| ClientError::Decode {
                url: self.url("/v1/policy"),
                detail: e.to_string(),
            })?;
        view.raw = raw;
        Ok(view)
    }

    /// `POST /v1/devices`: registers a device from its operator-signed certificate.
    pub async fn register_device(&self, certificate: &Signed) -> Result<DeviceView, ClientError> {
        self.post_bytes("/v1/devices", certificate.encode()).await
    }

    /// `POST /v1/devices/revoke`: an operator-signed revocation.
    pub async fn revoke_device(&self, revocation: &Signed) -> Result<DeviceView, ClientError> {
        self.post_bytes("/v1/devices/revoke", revocation.encode())
            .await
    }

    /// `POST /v1/devices/rotate`: an operator-signed key rotation.
    pub async fn rotate_device(&self, rotation: &Signed) -> Result<DeviceView, ClientError> {
        self.post_bytes("/v1/devices/rotate", rotation.encode())
            .await
    }

    /// `GET /v1/devices/{hex}`.
    pub async fn device(&self, device: &PublicKey) -> Result<DeviceView, ClientError> {
        self.get_json(&format!("/v1/devices/{}", device.to_hex()))
            .await
    }

    /// `GET /v1/operators/{hex}/devices`.
    pub async fn operator_devices(
        &self,
        operator: &PublicKey,
    ) -> Result<Vec<DeviceView>, ClientError> {
        self.get_json(&format!("/v1/operators/{}/devices", operator.to_hex()))
            .await
    }

    /// `GET /v1/operators/{hex}/devices` as the server's JSON, every field
    /// kept (location, `epochs_rewarded`, …) for callers that pass it on.
    pub async fn operator_devices_json(
        &self,
        operator: &PublicKey,
    ) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/operators/{}/devices", operator.to_hex()))
            .await
    }

    /// `POST /v1/orders`: a consumer-signed `OrderLock`.
    pub async fn lock_order(&self, lock: &Signed) -> Result<LockedOrderView, ClientError> {
        self.post_bytes("/v1/orders", lock.encode()).await
    }

    /// `GET /v1/consumers/{hex}`.
    pub async fn consumer(&self, consumer: &PublicKey) -> Result<ConsumerView, ClientError> {
        self.get_json(&format!("/v1/consumers/{}", consumer.to_hex()))
            .await
    }

    /// `GET /v1/work`: the work orders open for the device that signed
    /// `request` (see [`work_request`]), soonest deadline first. The pull
    /// channel of the node agent: poll it, answer each order with a signed
    /// report of its `answer_kind` before its deadline.
    pub async fn open_work(&self, request: &Signed) -> Result<Vec<WorkOrder>, ClientError> {
        let url = self.url("/v1/work");
        let req = self
            .http
            .get(&url)
            .header("x-depin-request", hex::encode(request.encode()));
        let resp = self.send(req, &url).await?;
        let wire: WorkWire = decode_json(check_status(resp, &url).await?, &url).await?;
        wire.work
            .into_iter()
            .map(|w| {
                let bad = |what: &str| ClientError::Decode {
                    url: url.clone(),
                    detail: format!("work order {what} is not hex"),
                };
                Ok(WorkOrder {
                    id: hex::decode(&w.id)
                        .ok()
                        .and_then(|v| v.try_into().ok())
                        .ok_or_else(|| bad("id"))?,
                    sector: w.sector,
                    answer_kind: w.answer_kind,
                    body: hex::decode(&w.body).map_err(|_| bad("body"))?,
                    deadline_ms: w.deadline_ms,
                    issued_epoch: w.issued_epoch,
                })
            })
            .collect()
    }

    /// `POST /v1/reports` with a `ReportBatch` of device-signed reports.
    pub async fn submit_reports(&self, reports: &[Signed]) -> Result<BatchOutcome, ClientError> {
        self.post_bytes("/v1/reports", encode_batch(reports)).await
    }

    /// `GET /v1/balances/{account}`: `account` is an operator's hex key or a
    /// ledger key such as `operator:<hex>`.
    pub async fn balance(&self, account: &str) -> Result<Balance, ClientError> {
        self.get_json(&format!("/v1/balances/{account}")).await
    }

    /// `GET /v1/epochs`, as the server's JSON.
    pub async fn epochs(&self) -> Result<serde_json::Value, ClientError> {
        self.get_json("/v1/epochs").await
    }

    /// `GET /v1/epochs/{n}`, as the server's JSON.
    pub async fn epoch(&self, epoch: u64) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/epochs/{epoch}")).await
    }

    /// `GET /v1/claims/{epoch}/{account_hex}`.
    pub async fn claim(&self, epoch: u64, account: &PublicKey) -> Result<ClaimView, ClientError> {
        self.get_json(&format!("/v1/claims/{epoch}/{}", account.to_hex()))
            .await
    }

    /// `GET /v1/operators/{hex}/economics`, as the server's JSON (its shape is
    /// documented in `depin-server/src/operator.rs`; kept untyped so a newer
    /// server's extra figures reach the caller unchanged).
    /// `GET /v1/operators/{hex}/earnings`: the reward line of every device and
    /// closed epoch, with the epoch's end time.
    pub async fn operator_rewards(
        &self,
        operator: &PublicKey,
    ) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/operators/{}/earnings", operator.to_hex()))
            .await
    }

    pub async fn operator_economics(
        &self,
        operator: &PublicKey,
    ) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/operators/{}/economics", operator.to_hex()))
            .await
    }

    /// `GET /v1/operators/{hex}/alerts`: a JSON array of alerts.
    pub async fn operator_alerts(
        &self,
        operator: &PublicKey,
    ) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/operators/{}/alerts", operator.to_hex()))
            .await
    }

    /// `GET /v1/operators/{hex}/settings`: the stored cost settings with the
    /// signed envelope they came in, in hex (404 `not_found` when none are).
    pub async fn operator_settings(
        &self,
        operator: &PublicKey,
    ) -> Result<serde_json::Value, ClientError> {
        self.get_json(&format!("/v1/operators/{}/settings", operator.to_hex()))
            .await
    }

    /// `PUT /v1/operators/{hex}/settings`: signs `document` (the canonical
    /// settings JSON; the client has no economics dependency, so the caller
    /// serializes) into an [`operator_settings`] envelope with the operator key
    /// at `timestamp_ms` and sends it. Answers the stored settings view.
    pub async fn put_operator_settings(
        &self,
        operator: &depin_protocol::SigningKey,
        timestamp_ms: i64,
        document: String,
    ) -> Result<serde_json::Value, ClientError> {
        let envelope = operator_settings(operator, timestamp_ms, document);
        let url = self.url(&format!(
            "/v1/operators/{}/settings",
            envelope.envelope.signer.to_hex()
        ));
        let req = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(envelope.encode());
        let resp = self.send(req, &url).await?;
        decode_json(check_status(resp, &url).await?, &url).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let resp = self.send(self.http.get(&url), &url).await?;
        decode_json(check_status(resp, &url).await?, &url).await
    }

    async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = self.send(req, &url).await?;
        decode_json(check_status(resp, &url).await?, &url).await
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, ClientError> {
        req.send().await.map_err(|e| self.transport_error(e, url))
    }

    fn transport_error(&self, e: reqwest::Error, url: &str) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.to_string(),
                timeout: self.timeout,
            }
        } else {
            // reqwest's own message repeats the URL; its sources say what happened.
            let detail = match std::error::Error::source(&e) {
                Some(inner) => error_chain(inner),
                None => e.to_string(),
            };
            ClientError::Unreachable {
                url: url.to_string(),
                detail,
            }
        }
    }
}

/// The error and its sources on one line ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn normalize_base(base_url: &str) -> Result<String, ClientError> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .or_else(|| trimmed.strip_prefix("https://"))
        .ok_or_else(|| ClientError::InvalidUrl(base_url.to_string()))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(ClientError::InvalidUrl(base_url.to_string()));
    }
    Ok(trimmed.to_string())
}

/// Turns a non-2xx response into the matching error, keeping the server's
/// `error` code and `message` (or the status text when the body is not JSON).
async fn check_status(
    resp: reqwest::Response,
    url: &str,
) -> Result<reqwest::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let code_num = status.as_u16();
    let text = resp.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(b) => (b.error, b.message),
        Err(_) => {
            let fallback = status
                .canonical_reason()
                .unwrap_or("error")
                .to_lowercase()
                .replace(' ', "_");
            let snippet: String = text.chars().take(200).collect();
            (
                fallback,
                if snippet.is_empty() {
                    format!("HTTP {code_num} from {url}")
                } else {
                    snippet
                },
            )
        }
    };
    if status.is_server_error() || code_num == 408 || code_num == 429 {
        Err(ClientError::Server {
            status: code_num,
            code,
            message,
        })
    } else {
        Err(ClientError::Rejected {
            status: code_num,
            code,
            message,
        })
    }
}

async fn decode_json<T: DeserializeOwned>(
    resp: reqwest::Response,
    url: &str,
) -> Result<T, ClientError> {
    let bytes = resp.bytes().await.map_err(|e| ClientError::Unreachable {
        url: url.to_string(),
        detail: error_chain(&e),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
        url: url.to_string(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn telemetry_without_a_sensor_reads_as_none() {
        let t: TelemetryView = serde_json::from_str(
            r#"{"timestamp_ms":1,"uptime_s":2,"temperature_c":null,"firmware_version":"1","power_w":3.0}"#,
        )
        .unwrap();
        assert_eq!(t.temperature_c, None);
        let t: TelemetryView = serde_json::from_str(
            r#"{"timestamp_ms":1,"uptime_s":2,"temperature_c":41.5,"firmware_version":"1","power_w":3.0}"#,
        )
        .unwrap();
        assert_eq!(t.temperature_c, Some(41.5));
    }

    use super::*;

    #[test]
    fn base_urls_are_normalized_and_checked() {
        assert_eq!(
            normalize_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base(" https://x.example ").unwrap(),
            "https://x.example"
        );
        for bad in ["127.0.0.1:8080", "ftp://x", "http://", "http://a b"] {
            assert!(
                matches!(normalize_base(bad), Err(ClientError::InvalidUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn retryability_follows_the_status() {
        let server = ClientError::Server {
            status: 503,
            code: "internal".into(),
            message: String::new(),
        };
        let refused = ClientError::Rejected {
            status: 400,
            code: "bad_signature".into(),
            message: String::new(),
        };
        assert!(server.is_retryable());
        assert!(!refused.is_retryable());
        assert_eq!(refused.reason(), Some(Reason::BadSignature));
        assert!(
            ClientError::Unreachable {
                url: "u".into(),
                detail: "d".into()
            }
            .is_retryable()
        );
        assert!(
            ClientError::Timeout {
                url: "u".into(),
                timeout: DEFAULT_TIMEOUT
            }
            .is_retryable()
        );
    }
}
