//! `depin operator status|settings|claim`: what an operator has earned, what
//! its devices are doing, its cost settings and its claims, read from a
//! coordinator's HTTP API. A thin shell: every figure comes from the server
//! (`depin-server/src/operator.rs`, `routes.rs`); this module only combines
//! and prints them.

use crate::keygen::{PassphraseArgs, open_operator_key};
use anyhow::{Context as _, anyhow, bail};
use depin_client::{Client, ClientError};
use depin_core::PublicKey;
use depin_economics::operator::OperatorCostSettings;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Balance, earnings (last closed epoch, last 30 days, all time), devices and alerts.
    Status(StatusArgs),
    /// Read or store your cost settings (electricity, internet, maintenance, token price).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Your cumulative claim as of an epoch, with its Merkle proof, for a distributor contract.
    Claim(ClaimArgs),
    /// Earnings per month (or per day of one month), device and sector: tokens, their USD
    /// value at your token price, running costs and net; `--csv` for a tax tool.
    Earnings(EarningsArgs),
}

#[derive(clap::Subcommand, Debug)]
pub enum SettingsCommand {
    /// Print the stored cost settings (or say that the defaults are used).
    Get(GetArgs),
    /// Store cost settings, signed by the operator key.
    Set(SetArgs),
}

/// Who the operator is: a public key, or the key file (only its public half
/// is read, so no passphrase is needed to look).
#[derive(clap::Args, Debug)]
pub struct Who {
    /// The operator's public key (hex).
    #[arg(
        long,
        value_name = "HEX",
        conflicts_with = "operator_key",
        required_unless_present = "operator_key"
    )]
    pub operator: Option<String>,
    /// The operator key file from `depin keygen` (only its public key is read).
    #[arg(long, value_name = "FILE")]
    pub operator_key: Option<PathBuf>,
    /// The coordinator's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub who: Who,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub who: Who,
    /// Print the coordinator's settings view as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The operator key file that signs the settings.
    #[arg(long, value_name = "FILE")]
    pub operator_key: PathBuf,
    /// The coordinator's URL.
    #[arg(long, value_name = "URL")]
    pub coordinator: String,
    /// A whole settings document, JSON or (for a name ending in .toml) TOML:
    /// kwh_price_usd, internet_usd_per_month, internet_share,
    /// maintenance_usd_per_month, token_price_usd, hardware.<device hex>.{profile,price_usd}.
    /// Flags override its fields; without it the flags change the stored
    /// settings (or the defaults).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Electricity price, USD per kWh.
    #[arg(long, value_name = "USD")]
    pub kwh_price: Option<f64>,
    /// Internet bill, USD per month.
    #[arg(long, value_name = "USD")]
    pub internet: Option<f64>,
    /// Share of the internet bill charged to the devices (0 to 1).
    #[arg(long, value_name = "FRACTION")]
    pub internet_share: Option<f64>,
    /// Maintenance, USD per month per device.
    #[arg(long, value_name = "USD")]
    pub maintenance: Option<f64>,
    /// What one token is worth to you, USD.
    #[arg(long, value_name = "USD")]
    pub token_price: Option<f64>,
    /// Print the stored settings view the coordinator answers, as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub passphrase: PassphraseArgs,
}

#[derive(clap::Args, Debug)]
pub struct ClaimArgs {
    /// A closed epoch: the claim is cumulative up to and including it.
    #[arg(long)]
    pub epoch: u64,
    #[command(flatten)]
    pub who: Who,
    /// Print the claim as JSON for a distributor contract.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct EarningsArgs {
    #[command(flatten)]
    pub who: Who,
    /// One month (YYYY-MM), one row per day and device; without it one row per month
    /// and device.
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    /// Print CSV (RFC 4180, ISO dates, dot decimals) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

pub async fn run(c: OperatorCommand) -> anyhow::Result<()> {
    match c {
        OperatorCommand::Status(a) => status(a).await,
        OperatorCommand::Settings(SettingsCommand::Get(a)) => settings_get(a).await,
        OperatorCommand::Settings(SettingsCommand::Set(a)) => settings_set(a).await,
        OperatorCommand::Claim(a) => claim(a).await,
        OperatorCommand::Earnings(a) => earnings(a).await,
    }
}

// ------------------------------------------------------------------ helpers

/// The public key in an operator key file, without its passphrase.
fn public_key_of_file(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--operator-key: cannot read {} (create one with `depin keygen --out FILE`)",
            path.display()
        )
    })?;
    let file = depin_keys::KeyFile::from_json(&text).with_context(|| {
        format!(
            "--operator-key: {} is not an operator key file",
            path.display()
        )
    })?;
    Ok(file.public_key)
}

impl Who {
    fn resolve(&self) -> anyhow::Result<(PublicKey, Client)> {
        let key = match (&self.operator, &self.operator_key) {
            (Some(hex), _) => hex.parse().map_err(|e| anyhow!("--operator: {e}"))?,
            (None, Some(path)) => public_key_of_file(path)?,
            (None, None) => bail!("give --operator HEX or --operator-key FILE"),
        };
        Ok((key, client(&self.coordinator)?))
    }
}

fn client(url: &str) -> anyhow::Result<Client> {
    Client::new(url).map_err(|e| anyhow!("--coordinator: {e}"))
}

/// Base units as tokens with six decimals (`-1234567` → `-1.234567`):
/// `depin_core::format_tokens` with a sign (balances and net figures can be
/// negative).
fn tokens(base: i128) -> String {
    let sign = if base < 0 { "-" } else { "" };
    match u64::try_from(base.unsigned_abs()) {
        Ok(a) => format!("{sign}{}", depin_core::format_tokens(a)),
        // Beyond any real supply; printed the same way.
        Err(_) => {
            let a = base.unsigned_abs();
            format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
        }
    }
}

fn usd(v: f64) -> String {
    format!("USD {v:.2}")
}

/// Base units with their USD value at `price` when there is one.
fn money(base: i128, price: Option<f64>) -> String {
    match price {
        Some(p) => format!("{} tokens ({})", tokens(base), usd(base as f64 / 1e6 * p)),
        None => format!("{} tokens", tokens(base)),
    }
}

/// An amount as JSON: exact base units, the token string and USD if priced.
fn amount_json(base: i128, price: Option<f64>) -> Value {
    json!({
        "base_units": base.to_string(),
        "tokens": tokens(base),
        "usd": price.map(|p| base as f64 / 1e6 * p),
    })
}

fn utc(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never".to_string(), depin_agent::fmt::utc)
}

/// `3d 04:05:06`.
fn duration_s(s: u64) -> String {
    let d = s / 86_400;
    format!("{d}d {:02}:{:02}:{:02}", s / 3600 % 24, s / 60 % 60, s % 60)
}

/// Cumulative claim amount of `op` as of `epoch`; an account with no claim
/// yet (404 from the server) has earned nothing so far.
async fn cumulative(c: &Client, epoch: u64, op: &PublicKey) -> anyhow::Result<i128> {
    match c.claim(epoch, op).await {
        Ok(v) => amount_of(&v.amount),
        Err(e) if e.status() == Some(404) => Ok(0),
        Err(e) => Err(anyhow!(e).context(format!("reading the claim as of epoch {epoch}"))),
    }
}

/// The server writes claim amounts as decimal strings (u64 exceeds what JSON
/// numbers carry exactly); a number is accepted too.
fn amount_of(v: &Value) -> anyhow::Result<i128> {
    match v {
        Value::String(s) => s.parse().map_err(|e| anyhow!("claim amount {s:?}: {e}")),
        Value::Number(n) => n
            .as_u64()
            .map(i128::from)
            .ok_or_else(|| anyhow!("claim amount {n} is not a whole number")),
        other => bail!("claim amount {other} is not a number"),
    }
}

const THIRTY_DAYS_MS: i64 = 30 * 24 * 3600 * 1000;

// ------------------------------------------------------------------ status

async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let (op, c) = a.who.resolve()?;
    let url = c.base_url().to_string();
    // One request first, so an unreachable coordinator is one clear error.
    let devices_raw = c
        .operator_devices_json(&op)
        .await
        .map_err(|e| describe(e, &op))?;
    let devices: Vec<depin_client::DeviceView> = serde_json::from_value(devices_raw.clone())
        .with_context(|| format!("unexpected device list from {url}"))?;
    let op_hex = op.to_hex();
    let (balance, economics, alerts, epochs) = tokio::try_join!(
        c.balance(&op_hex),
        c.operator_economics(&op),
        c.operator_alerts(&op),
        c.epochs(),
    )
    .map_err(|e| describe(e, &op))?;
    // The server answers an empty list for a key it never saw (not 404):
    // an operator with no device rows, revoked ones included, is unknown to it.
    if devices.is_empty() && balance.balance == 0 {
        bail!(
            "operator {op} is unknown to the coordinator at {url}: no device was ever registered under this key \
             (register one with `depin node init --operator-key FILE --coordinator {url}`)"
        );
    }
    let price = economics["token_price_usd"].as_f64();
    let price_source = economics["settings_source"]
        .as_str()
        .unwrap_or("defaults")
        .to_string();
    let now = depin_agent::now_ms();
    let epochs = epochs.as_array().cloned().unwrap_or_default();
    let last = epochs.last().and_then(|e| e["epoch"].as_u64());

    // Earnings from the cumulative claims: the difference between two
    // epochs' claims is exactly what the ledger credited in between.
    let (last_epoch, window) = match last {
        None => (None, None),
        Some(l) => {
            let now_cum = cumulative(&c, l, &op).await?;
            let before = match l.checked_sub(1) {
                Some(p) => cumulative(&c, p, &op).await?,
                None => 0,
            };
            // The newest epoch closed before the 30-day window began: what
            // was earned by then is subtracted.
            let cutoff = now - THIRTY_DAYS_MS;
            let start = epochs
                .iter()
                .rev()
                .find(|e| e["closed_ms"].as_i64().is_some_and(|t| t < cutoff))
                .and_then(|e| e["epoch"].as_u64());
            let base = match start {
                Some(s) => cumulative(&c, s, &op).await?,
                None => 0,
            };
            let first = start.map_or_else(
                || {
                    epochs
                        .first()
                        .and_then(|e| e["epoch"].as_u64())
                        .unwrap_or(0)
                },
                |s| s + 1,
            );
            (
                Some((l, now_cum - before, now_cum)),
                Some((first, l, now_cum - base)),
            )
        }
    };

    if a.json {
        let earnings = json!({
            "last_closed_epoch": last_epoch.map(|(l, e, _)| json!({"epoch": l, "earned": amount_json(e, price)})),
            "last_30_days": window.map(|(f, l, e)| json!({"from_epoch": f, "to_epoch": l, "earned": amount_json(e, price)})),
            "cumulative": last_epoch.map(|(_, _, cum)| amount_json(cum, price)),
        });
        let out = json!({
            "operator": op,
            "coordinator": url,
            "as_of_ms": now,
            "token_price_usd": price,
            "token_price_source": price_source,
            "balance": {
                "account": balance.account,
                "amount": amount_json(i128::from(balance.balance), price),
            },
            "earnings": earnings,
            "economics": economics["total"],
            "devices": devices_raw,
            "alerts": alerts,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }

    println!("operator     {op}");
    println!("coordinator  {url}");
    match (price, price_source.as_str()) {
        (Some(p), "operator") => println!("token price  USD {p} (your settings)"),
        (Some(p), _) => println!(
            "token price  USD {p} (the default; store yours with `depin operator settings set --token-price USD`)"
        ),
        (None, _) => println!("token price  unknown"),
    }
    println!("balance      {}", money(i128::from(balance.balance), price));
    match (last_epoch, window) {
        (Some((l, e, cum)), Some((f, to, w))) => {
            println!(
                "earned       {} in epoch {l}, the last closed one",
                money(e, price)
            );
            println!(
                "             {} in the last 30 days (epochs {f}..={to})",
                money(w, price)
            );
            println!(
                "             {} in all (cumulative claim)",
                money(cum, price)
            );
        }
        _ => println!("earned       nothing yet: no epoch has closed on this coordinator"),
    }
    let t = &economics["total"];
    if let (Some(running), Some(net)) = (t["costs_usd"]["running"].as_f64(), t["net_usd"].as_f64())
    {
        println!(
            "costs so far {} running, {} depreciation; net {}{}",
            usd(running),
            usd(t["costs_usd"]["hardware_depreciation"]
                .as_f64()
                .unwrap_or(0.0)),
            usd(net),
            match t["devices_with_unknown_costs"].as_u64() {
                Some(n) if n > 0 => format!(" ({n} device(s) with unknown costs left out)"),
                _ => String::new(),
            }
        );
    }
    println!();
    println!("devices ({})", devices.len());
    println!(
        "{:<64}  {:<8}  {:>12}  {:<23}  {:<8}  {:>16}  reasons",
        "device", "sector", "uptime", "last seen", "state", "earned"
    );
    for d in &devices {
        let state = if d.replaced_by.is_some() {
            "replaced"
        } else if d.revoked_ms.is_some() {
            "revoked"
        } else {
            "active"
        };
        let reasons = if d.reasons.is_empty() {
            "-".to_string()
        } else {
            d.reasons
                .iter()
                .map(|(r, n)| format!("{r}×{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<64}  {:<8}  {:>12}  {:<23}  {:<8}  {:>16}  {reasons}",
            d.device.to_hex(),
            d.sector.as_str(),
            d.telemetry
                .as_ref()
                .map_or("-".to_string(), |t| duration_s(t.uptime_s)),
            utc(d.telemetry.as_ref().map(|t| t.timestamp_ms)),
            state,
            tokens(i128::from(d.rewards_total)),
        );
    }
    let alerts = alerts.as_array().cloned().unwrap_or_default();
    println!();
    if alerts.is_empty() {
        println!("alerts: none");
    } else {
        println!("alerts ({})", alerts.len());
        for al in &alerts {
            let s = |k: &str| al[k].as_str().unwrap_or("").to_string();
            println!(
                "  [{}] {} {}: {}",
                s("severity"),
                s("code"),
                s("device"),
                s("message")
            );
            if !s("action").is_empty() {
                println!("      → {}", s("action"));
            }
        }
    }
    Ok(())
}

/// A client error with what the operator can do about it.
fn describe(e: ClientError, op: &PublicKey) -> anyhow::Error {
    match &e {
        ClientError::Unreachable { .. } | ClientError::Timeout { .. } => {
            anyhow!(e).context("--coordinator")
        }
        _ if e.status() == Some(404) => {
            anyhow!(e).context(format!("operator {op} is unknown to this coordinator"))
        }
        _ => anyhow!(e),
    }
}

// ---------------------------------------------------------------- earnings

async fn earnings(a: EarningsArgs) -> anyhow::Result<()> {
    use depin_economics::earnings::{Period, earnings_csv, earnings_rows};
    let only: Option<depin_economics::YearMonth> = a
        .month
        .as_deref()
        .map(|m| m.parse().map_err(|e| anyhow!("--month: {e}")))
        .transpose()?;
    let (op, c) = a.who.resolve()?;
    let (rewards, economics) = tokio::try_join!(c.operator_rewards(&op), c.operator_economics(&op))
        .map_err(|e| describe(e, &op))?;
    let (rewards, costs, price, source) = earnings_inputs(&rewards, &economics)
        .with_context(|| format!("unexpected earnings data from {}", c.base_url()))?;
    if costs.is_empty() {
        bail!(
            "operator {op} has no devices at the coordinator at {}: nothing earned yet",
            c.base_url()
        );
    }
    let period = if only.is_some() {
        Period::Day
    } else {
        Period::Month
    };
    let rows = earnings_rows(&rewards, &costs, period, only);
    let csv = earnings_csv(&rows, period, price, &source);
    if a.csv {
        print!("{csv}");
    } else {
        // The same figures, aligned for a terminal.
        let cells: Vec<Vec<&str>> = csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .collect();
        for r in &cells {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .filter(|(i, _)| ![1, 6, 7].contains(i))
                .map(|(i, c)| {
                    let c = if i == 2 && c.len() > 12 { &c[..12] } else { c };
                    format!("{c:>12}")
                })
                .collect();
            println!("{}", line.join(" "));
        }
        println!(
            "\ntokens valued at USD {price} each ({source} token price: `depin operator settings set --token-price` changes it); running costs are spread evenly over each device's active time"
        );
    }
    Ok(())
}

/// The reward lines, per-device costs, token price and its source from the
/// `rewards` and `economics` documents.
fn earnings_inputs(
    rewards: &Value,
    economics: &Value,
) -> anyhow::Result<(
    Vec<depin_economics::earnings::EpochReward>,
    Vec<depin_economics::earnings::DeviceCosts>,
    f64,
    String,
)> {
    use depin_economics::earnings::{DeviceCosts, EpochReward};
    let text = |v: &Value, k: &str| -> anyhow::Result<String> {
        v[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{k} is missing"))
    };
    let int = |v: &Value, k: &str| v[k].as_i64().ok_or_else(|| anyhow!("{k} is missing"));
    let mut lines = Vec::new();
    for l in rewards["lines"]
        .as_array()
        .ok_or_else(|| anyhow!("lines is missing"))?
    {
        let amount = |k: &str| l[k].as_u64().ok_or_else(|| anyhow!("{k} is missing"));
        lines.push(EpochReward {
            device: text(l, "device")?,
            sector: l["sector"].as_str().unwrap_or("unknown").to_string(),
            epoch_end_ms: int(l, "epoch_end_ms")?,
            base_units: amount("reward")?
                .checked_add(amount("fees")?)
                .ok_or_else(|| anyhow!("reward + fees overflow"))?,
        });
    }
    let as_of = int(economics, "as_of_ms")?;
    let mut costs = Vec::new();
    for d in economics["devices"]
        .as_array()
        .ok_or_else(|| anyhow!("devices is missing"))?
    {
        costs.push(DeviceCosts {
            device: text(d, "device")?,
            sector: d["sector"].as_str().unwrap_or("unknown").to_string(),
            registered_ms: int(d, "registered_ms")?,
            until_ms: d["revoked_ms"].as_i64().map_or(as_of, |r| r.min(as_of)),
            running_costs_usd: d["costs_usd"]["running"].as_f64(),
        });
    }
    let price = economics["token_price_usd"]
        .as_f64()
        .ok_or_else(|| anyhow!("token_price_usd is missing"))?;
    let source = match economics["settings_source"].as_str() {
        Some("operator") => "operator".to_string(),
        Some(other) => other.to_string(),
        None => "unknown".to_string(),
    };
    Ok((lines, costs, price, source))
}

// ---------------------------------------------------------------- settings

async fn settings_get(a: GetArgs) -> anyhow::Result<()> {
    let (op, c) = a.who.resolve()?;
    match c.operator_settings(&op).await {
        Ok(view) => {
            if a.json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                let s: OperatorCostSettings = serde_json::from_value(view["settings"].clone())
                    .context("the coordinator's stored settings")?;
                println!("operator     {op}");
                print_settings(&s);
                println!("signed       {}", utc(view["signed_ms"].as_i64()));
            }
            Ok(())
        }
        Err(e) if e.status() == Some(404) => {
            let d = OperatorCostSettings::defaults();
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "operator": op, "settings": null, "defaults": d })
                    )?
                );
            } else {
                println!(
                    "operator {op} has stored no settings; the coordinator uses the defaults:"
                );
                print_settings(&d);
                println!("store yours with `depin operator settings set`");
            }
            Ok(())
        }
        Err(e) => Err(describe(e, &op)),
    }
}

fn print_settings(s: &OperatorCostSettings) {
    println!("kWh price    USD {}/kWh", s.kwh_price_usd);
    println!(
        "internet     USD {}/month, {}",
        s.internet_usd_per_month,
        s.internet_share
            .map_or("each device's profile share".to_string(), |x| format!(
                "share {x}"
            ))
    );
    println!(
        "maintenance  {}",
        s.maintenance_usd_per_month
            .map_or("each device's profile figure".to_string(), |m| format!(
                "USD {m}/month per device"
            ))
    );
    println!("token price  USD {}", s.token_price_usd);
    if s.hardware.is_empty() {
        println!("hardware     from each device's hardware class");
    } else {
        println!("hardware     {} device(s)", s.hardware.len());
        for (d, h) in &s.hardware {
            println!(
                "  {d}  profile {}  price {}",
                h.profile.as_deref().unwrap_or("(hardware class)"),
                h.price_usd.map_or("(profile's)".to_string(), usd)
            );
        }
    }
}

/// The fields a settings document may carry, and whether each is required.
const FIELDS: &[(&str, bool)] = &[
    ("kwh_price_usd", true),
    ("internet_usd_per_month", true),
    ("internet_share", false),
    ("maintenance_usd_per_month", false),
    ("token_price_usd", true),
    ("hardware", false),
];

/// Reads a settings file (JSON, or TOML for `.toml`) into JSON, checking
/// each field's name and type so that the error names the field (serde's own
/// type errors give only a line and column).
fn read_settings_file(path: &Path) -> anyhow::Result<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--file: cannot read {}", path.display()))?;
    let is_toml = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
    let value: Value = if is_toml {
        let t: toml::Value = toml::from_str(&text)
            .with_context(|| format!("--file {}: not valid TOML", path.display()))?;
        serde_json::to_value(t)?
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("--file {}: not valid JSON", path.display()))?
    };
    let Value::Object(map) = value else {
        bail!(
            "--file {}: the settings must be an object of fields",
            path.display()
        );
    };
    let known = FIELDS
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(", ");
    for (k, v) in &map {
        let bad = |what: &str| anyhow!("--file {}: field `{k}` {what}, got {v}", path.display());
        match k.as_str() {
            "hardware" => {
                let Value::Object(devices) = v else {
                    return Err(bad("must be a table of device hex keys"));
                };
                for (dev, h) in devices {
                    let Value::Object(h) = h else {
                        bail!(
                            "--file {}: field `hardware.{dev}` must be a table with profile and price_usd, got {h}",
                            path.display()
                        );
                    };
                    for (hk, hv) in h {
                        let ok = match hk.as_str() {
                            "profile" => hv.is_string() || hv.is_null(),
                            "price_usd" => hv.is_number() || hv.is_null(),
                            _ => bail!(
                                "--file {}: unknown field `hardware.{dev}.{hk}` (known: profile, price_usd)",
                                path.display()
                            ),
                        };
                        if !ok {
                            bail!(
                                "--file {}: field `hardware.{dev}.{hk}` must be a {}, got {hv}",
                                path.display(),
                                if hk == "profile" {
                                    "catalogue profile name"
                                } else {
                                    "number"
                                }
                            );
                        }
                    }
                }
            }
            f if FIELDS.iter().any(|(n, _)| *n == f) => {
                if !(v.is_number() || (v.is_null() && !FIELDS.iter().any(|(n, r)| *n == f && *r))) {
                    return Err(bad("must be a number"));
                }
            }
            _ => bail!(
                "--file {}: unknown field `{k}` (known: {known})",
                path.display()
            ),
        }
    }
    Ok(map)
}

async fn settings_set(a: SetArgs) -> anyhow::Result<()> {
    let c = client(&a.coordinator)?;
    // Check everything that needs no key or network first.
    let from_file = a.file.as_deref().map(read_settings_file).transpose()?;
    let key = open_operator_key(&a.operator_key, &a.passphrase).await?;
    let op = depin_protocol::public_key_of(&key);
    let mut doc = match from_file {
        Some(m) => m,
        // Flags alone change the stored settings (or the defaults), so
        // setting one figure keeps the others.
        None => {
            let base = match c.operator_settings(&op).await {
                Ok(view) => view["settings"].clone(),
                Err(e) if e.status() == Some(404) => {
                    serde_json::to_value(OperatorCostSettings::defaults())?
                }
                Err(e) => return Err(describe(e, &op).context("reading the stored settings")),
            };
            match base {
                Value::Object(m) => m,
                other => bail!("the coordinator's stored settings are not an object: {other}"),
            }
        }
    };
    for (field, flag, v) in [
        ("kwh_price_usd", "kwh-price", a.kwh_price),
        ("internet_usd_per_month", "internet", a.internet),
        ("internet_share", "internet-share", a.internet_share),
        ("maintenance_usd_per_month", "maintenance", a.maintenance),
        ("token_price_usd", "token-price", a.token_price),
    ] {
        if let Some(v) = v {
            let n = serde_json::Number::from_f64(v)
                .ok_or_else(|| anyhow!("--{flag}: must be a finite number, got {v}"))?;
            doc.insert(field.to_string(), Value::Number(n));
        }
    }
    for (field, required) in FIELDS {
        if *required && !doc.contains_key(*field) {
            let flag = match *field {
                "kwh_price_usd" => "--kwh-price",
                "internet_usd_per_month" => "--internet",
                _ => "--token-price",
            };
            bail!("field `{field}` is missing: give it in --file or with {flag}");
        }
    }
    let settings: OperatorCostSettings =
        serde_json::from_value(Value::Object(doc)).context("the settings")?;
    // The server validates too; checking here names the field before signing.
    settings
        .validate(&depin_economics::Catalogue::builtin())
        .map_err(|e| anyhow!("settings field {e}"))?;
    // The one byte form the coordinator accepts, signed into an envelope.
    let document = String::from_utf8(settings.canonical_json())
        .context("the settings serialize as UTF-8 JSON")?;
    let max = depin_protocol::limits::MAX_SETTINGS_DOCUMENT_LEN;
    if document.len() > max {
        bail!(
            "the settings are {} bytes as JSON, more than the {max} a coordinator accepts: describe fewer devices under hardware",
            document.len()
        );
    }
    let view = c
        .put_operator_settings(&key, depin_agent::now_ms(), document)
        .await
        .map_err(|e| describe(e, &op))
        .context("storing the settings")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        println!(
            "settings stored for operator {op}, signed {}",
            utc(view["signed_ms"].as_i64())
        );
        print_settings(&settings);
    }
    Ok(())
}

// ------------------------------------------------------------------- claim

async fn claim(a: ClaimArgs) -> anyhow::Result<()> {
    let (op, c) = a.who.resolve()?;
    let view = match c.claim(a.epoch, &op).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(404) => {
            return Err(anyhow!(e).context(format!(
                "no claim for operator {op} as of epoch {}",
                a.epoch
            )));
        }
        Err(e) => return Err(describe(e, &op)),
    };
    let amount = amount_of(&view.amount)?;
    let account = format!("0x{}", op.to_hex());
    if a.json {
        // What a distributor contract takes: bytes32 account, uint256
        // cumulative amount as a decimal string, bytes32[] proof, the root.
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "epoch": view.epoch,
                "account": account,
                "amount": amount.to_string(),
                "proof": view.proof,
                "root": view.root,
            }))?
        );
    } else {
        println!("claim of operator {op} as of epoch {}", view.epoch);
        println!(
            "cumulative   {} tokens ({amount} base units)",
            tokens(amount)
        );
        println!("root         {}", view.root);
        println!("proof        {} hash(es)", view.proof.len());
        for p in &view.proof {
            println!("  {p}");
        }
        println!(
            "the claim is cumulative: a distributor pays the difference to what was already claimed"
        );
    }
    Ok(())
}
