//! `depin estimate`: what a device earns after every cost, when it pays back, how wide the
//! spread is; `--rank` for "what should I buy?", `--portfolio` for several devices.
//!
//! A thin shell over `depin-economics`: this file reads the optional catalogue and
//! portfolio files, fetches rates from `--coordinator`, and turns library errors into
//! messages that name the flag. [`render`] is pure, so it is tested without I/O.

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use depin_core::Sector;
use depin_economics::report;
use depin_economics::{
    Catalogue, Defaults, EconomicsError, EstimateInputs, EstimateOptions, Holding, Market,
    NetworkRates, OperatorSettings, PortfolioFile, Scenario, Simulation, YearMonth, estimate,
    estimate_many, estimate_portfolio, inputs_for_estimate,
};
use std::path::PathBuf;
use std::time::Duration;

/// Estimate what a device earns after electricity, internet, maintenance and hardware.
///
/// Every default below is an assumption: pass your own figures. Money is USD.
#[derive(Args, Debug, Clone, Default)]
pub struct EstimateArgs {
    /// A device from the catalogue (see --list-devices).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// storage, compute, wireless or sensor: required for your own hardware, filters --rank.
    #[arg(long, value_name = "SECTOR")]
    pub sector: Option<String>,
    /// Hardware price in USD (overrides the catalogue's).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub price: Option<f64>,
    /// Average power draw in watts (overrides the catalogue's).
    #[arg(long, value_name = "W", allow_negative_numbers = true)]
    pub watts: Option<f64>,
    /// Expected earning life of the hardware in months (overrides the catalogue's).
    #[arg(long, value_name = "MONTHS", allow_negative_numbers = true)]
    pub lifetime_months: Option<i64>,
    /// Contribution in the sector's unit: TB, GPUs (1 = RTX 4090 class), coverage, data.
    #[arg(long, value_name = "UNITS", allow_negative_numbers = true)]
    pub capacity: Option<f64>,
    /// Tokens per month the device earns at full uptime, instead of the network's rate.
    #[arg(long, value_name = "TOKENS", allow_negative_numbers = true)]
    pub tokens_per_month: Option<f64>,
    /// You own the hardware already: its price is no outlay, but its resale value (the
    /// catalogue's resale_fraction × price) is the opportunity cost payback must recover.
    #[arg(long)]
    pub already_own: bool,
    /// Share of hours a compute device is rented, 0–1, on every path [default: the
    /// catalogue's range, e.g. 10/30/60% for p10/p50/p90].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub utilisation: Option<f64>,
    /// Electricity price in USD per kWh [default: 0.17].
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub kwh_price: Option<f64>,
    /// Your internet line's price in USD per month [default: 50].
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub internet: Option<f64>,
    /// Share of the internet line charged to the device, 0–1 [default: the catalogue's].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub internet_share: Option<f64>,
    /// Income tax on each month's profit after depreciation, 0–0.9 (0.3 = 30%) [default: 0].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub tax_rate: Option<f64>,
    /// Maintenance in USD per month [default: the catalogue's].
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub maintenance: Option<f64>,
    /// Token price in USD [default: the network's, else 0.50].
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub token_price: Option<f64>,
    /// Token-price scenario: base (no assumed drift, 90%/year volatility, a −50% crash
    /// about once in ten years), bear (median −39% a year, a crash every four years) or
    /// crash (median −90% in 20 months, like WXM or HNT) [default: base]. The flags below
    /// override single figures.
    #[arg(long, value_name = "NAME")]
    pub scenario: Option<String>,
    /// Crashes of the token price per year on average (a Poisson rate) [default: the
    /// scenario's].
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub crash_probability: Option<f64>,
    /// Share of the price one crash wipes out, 0–1 (0.5 = it halves) [default: the
    /// scenario's].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub crash_size: Option<f64>,
    /// The month the estimate starts in (YYYY-MM): places scheduled emission halvings
    /// [default: this month].
    #[arg(long, value_name = "YYYY-MM")]
    pub start: Option<String>,
    /// Yearly volatility of the token price, 0.9 = 90% [default: the scenario's, 0.9].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub volatility: Option<f64>,
    /// Yearly drift of the median token price, 0 = no assumed rise or fall [default: the
    /// scenario's, 0 for base].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub token_drift: Option<f64>,
    /// Monthly growth of the sector's device count, which dilutes rewards [default: 0.01].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub growth: Option<f64>,
    /// Monthly volatility of that growth, per sector [default: 0.03].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub growth_volatility: Option<f64>,
    /// Share of time the device is up and counted, 0–1 [default: 0.95].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub uptime: Option<f64>,
    /// Yearly decay of emissions, 0.1 = 10% less each year [default: the network's, else
    /// the catalogue's schedule for the device, else 0].
    #[arg(long, value_name = "FRACTION", allow_negative_numbers = true)]
    pub emission_decay: Option<f64>,
    /// Projection window in months [default: the hardware lifetime].
    #[arg(long, value_name = "MONTHS", allow_negative_numbers = true)]
    pub months: Option<i64>,
    /// Seed of the Monte Carlo; the same seed gives the same figures [default: 1].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Number of simulated paths [default: 2000].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub paths: Option<i64>,
    /// Print JSON: every figure as { "p10", "p50", "p90" }.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV: device,figure,p10,p50,p90 (with --rank: one row per device).
    #[arg(long)]
    pub csv: bool,
    /// Also write charts to an SVG file: running cash (p10/p50/p90, zero line, payback),
    /// a tornado of what moves the result most, and a histogram of payback months.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Take reward rates from a running network (GET URL/v1/economics/rates).
    #[arg(long, value_name = "URL")]
    pub coordinator: Option<String>,
    /// Use --coordinator's rates even when the network has too few closed epochs,
    /// devices or hours of data to extrapolate to months (they are then shown as
    /// warnings, not refused).
    #[arg(long, requires = "coordinator")]
    pub allow_thin_rates: bool,
    /// H3 cell where the device will stand (uses the cell's rate from --coordinator).
    #[arg(long, value_name = "CELL")]
    pub h3: Option<String>,
    /// Your own catalogue file (TOML); its entries add to or replace the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub catalogue: Option<PathBuf>,
    /// Rank every catalogue device by payback for your costs.
    #[arg(long)]
    pub rank: bool,
    /// Estimate several devices together (TOML with [[holding]] device/count entries).
    #[arg(long, value_name = "FILE")]
    pub portfolio: Option<PathBuf>,
    /// List the catalogue's devices and their assumptions.
    #[arg(long)]
    pub list_devices: bool,
}

/// What `run` gathered from outside: files and network rates.
pub struct Gathered {
    /// Text and origin (path) of a user catalogue.
    pub user_catalogue: Option<(String, String)>,
    pub portfolio: Option<String>,
    pub rates: NetworkRates,
    /// This month, from the clock: the default `--start`.
    pub this_month: YearMonth,
}

pub async fn run(args: EstimateArgs) -> anyhow::Result<()> {
    let read = |p: &PathBuf, flag: &str| {
        std::fs::read_to_string(p).with_context(|| format!("{flag}: cannot read {}", p.display()))
    };
    let user_catalogue = match &args.catalogue {
        Some(p) => Some((read(p, "--catalogue")?, p.display().to_string())),
        None => None,
    };
    let portfolio = args
        .portfolio
        .as_ref()
        .map(|p| read(p, "--portfolio"))
        .transpose()?;
    let rates = match &args.coordinator {
        Some(url) => fetch_rates(url).await?,
        None => NetworkRates::builtin(),
    };
    let (out, svg, notes) = render_all(
        &args,
        Gathered {
            user_catalogue,
            portfolio,
            rates,
            this_month: this_month(),
        },
    )?;
    if let (Some(path), Some(svg)) = (&args.plot, svg) {
        std::fs::write(path, svg)
            .with_context(|| format!("--plot: cannot write {}", path.display()))?;
        eprintln!(
            "charts written to {} (running cash, tornado, payback histogram)",
            path.display()
        );
    }
    for n in notes {
        eprintln!("{n}");
    }
    print!("{out}");
    Ok(())
}

/// The current month (UTC) from the system clock.
fn this_month() -> YearMonth {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    year_month_of_day(secs / 86_400)
}

/// The civil year and month of a day counted from 1970-01-01 (Howard Hinnant's
/// days-to-civil algorithm).
fn year_month_of_day(days: u64) -> YearMonth {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    YearMonth { year, month }
}

/// The part of `GET /v1/policy` the rates are read against.
#[derive(serde::Deserialize)]
struct PolicyBasis {
    epoch_seconds: u64,
    yearly_decay_bps: u32,
}

/// The network's rates and, from its policy, the epoch length they were scaled by and
/// its emission decay.
async fn fetch_rates(url: &str) -> anyhow::Result<NetworkRates> {
    let base = url.trim_end_matches('/');
    let hint = "is `depin serve` running there? Leave out --coordinator to use the built-in rates";
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let get = |path: &str| {
        let endpoint = format!("{base}{path}");
        let client = client.clone();
        async move {
            let resp = client
                .get(&endpoint)
                .send()
                .await
                .map_err(|e| anyhow!("--coordinator: cannot reach {endpoint}: {e}; {hint}"))?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                bail!("--coordinator: {endpoint} answered {status} {body}; {hint}");
            }
            Ok::<_, anyhow::Error>((endpoint, resp))
        }
    };
    let (endpoint, resp) = get("/v1/economics/rates").await?;
    let mut rates = resp
        .json::<NetworkRates>()
        .await
        .map_err(|e| anyhow!("--coordinator: {endpoint} did not return network rates: {e}"))?;
    let (endpoint, resp) = get("/v1/policy").await?;
    let policy = resp
        .json::<PolicyBasis>()
        .await
        .map_err(|e| anyhow!("--coordinator: {endpoint} did not return a reward policy: {e}"))?;
    apply_policy(&mut rates, &policy)?;
    Ok(rates)
}

/// Checks that the rates were scaled to months by the epoch length the network really
/// runs, and takes its emission decay unless the rates carry one.
fn apply_policy(rates: &mut NetworkRates, policy: &PolicyBasis) -> anyhow::Result<()> {
    if rates.epoch_seconds != policy.epoch_seconds {
        bail!(
            "--coordinator: the rates are per epoch of {} s but the policy's epochs are {} s (did the policy change between the two requests?); try again",
            rates.epoch_seconds,
            policy.epoch_seconds
        );
    }
    if rates.emission_decay_per_year.is_none() {
        rates.emission_decay_per_year = Some(f64::from(policy.yearly_decay_bps) / 10_000.0);
    }
    Ok(())
}

/// The sectors whose rates an estimate reads: the one device's, the portfolio's, or
/// every sector `--rank` covers.
fn sectors_used(catalogue: &Catalogue, filter: Option<Sector>) -> Vec<Sector> {
    let mut s: Vec<Sector> = catalogue
        .devices()
        .iter()
        .map(|d| d.sector)
        .filter(|s| filter.is_none_or(|f| f == *s))
        .collect();
    s.sort();
    s.dedup();
    s
}

/// For a running network's rates: refuses rates too thin to extrapolate (unless
/// `--allow-thin-rates`), and returns the lines saying what they rest on and the
/// warnings.
fn check_live_rates(
    rates: &NetworkRates,
    sectors: &[Sector],
    allow_thin: bool,
) -> anyhow::Result<(Vec<String>, Vec<depin_economics::Warning>)> {
    if rates.policy_id == depin_economics::rates::BUILTIN_POLICY_ID {
        return Ok((Vec::new(), Vec::new()));
    }
    let c = rates.check_live(sectors);
    let mut warnings = c.warnings;
    if !c.refusals.is_empty() {
        if !allow_thin {
            bail!(
                "--coordinator: too little data to extrapolate to months: {}. Wait until the network has run longer, leave out --coordinator to use the built-in rates, or pass --allow-thin-rates to see the figures anyway",
                c.refusals.join("; ")
            );
        }
        // What would have been refused comes first: it outweighs the rest.
        let refused = c.refusals.into_iter().map(|r| depin_economics::Warning {
            code: "live_rates_too_thin".into(),
            message: format!(
                "{r}; used because of --allow-thin-rates: the figures are not a forecast"
            ),
        });
        warnings = refused.chain(warnings).collect();
    }
    let basis = c
        .basis
        .iter()
        .map(|b| format!("live rates from policy {}: {b}", rates.policy_id))
        .collect();
    Ok((basis, warnings))
}

/// Basis lines and warnings as stderr lines, for outputs (rank, portfolio) that carry
/// no per-device warnings of their own.
fn notes_with_warnings(
    (mut notes, warnings): (Vec<String>, Vec<depin_economics::Warning>),
) -> Vec<String> {
    notes.extend(warnings.iter().map(|w| format!("warning: {}", w.message)));
    notes
}

/// The flag a library field comes from, for error messages.
fn flag_of(field: &str) -> &'static str {
    match field {
        "price_usd" => "--price",
        "watts" => "--watts",
        "lifetime_months" => "--lifetime-months",
        "capacity_units" => "--capacity",
        "tokens_per_month" => "--tokens-per-month",
        "kwh_price_usd" => "--kwh-price",
        "internet_usd_per_month" => "--internet",
        "internet_share" => "--internet-share",
        "maintenance_usd_per_month" => "--maintenance",
        "token_price_usd" => "--token-price",
        "token_volatility_per_year" => "--volatility",
        "token_drift_per_year" => "--token-drift",
        "network_growth_per_month" => "--growth",
        "network_growth_volatility_per_month" => "--growth-volatility",
        "uptime" => "--uptime",
        "emission_decay_per_year" => "--emission-decay",
        "crash_probability_per_year" => "--crash-probability",
        "crash_size" => "--crash-size",
        "tax_rate" => "--tax-rate",
        "start" => "--start",
        "months" => "--months",
        "paths" => "--paths",
        "sector" => "--sector",
        "h3_cell" => "--h3",
        "utilisation" => "--utilisation",
        "load_watts" => "--watts",
        _ => "input",
    }
}

fn flag_error(e: EconomicsError) -> anyhow::Error {
    match e {
        EconomicsError::Invalid { field, message } => anyhow!("{}: {message}", flag_of(field)),
        EconomicsError::UnknownDevice { .. } => {
            anyhow!("--device: {e} (see `depin estimate --list-devices`)")
        }
        EconomicsError::Catalogue { .. } => anyhow!("--catalogue: {e}"),
        EconomicsError::Portfolio(_) => anyhow!("--portfolio: {e}"),
    }
}

fn non_negative(flag: &str, v: Option<f64>) -> anyhow::Result<()> {
    match v {
        Some(x) if !(x.is_finite() && x >= 0.0) => bail!("{flag}: must be a number ≥ 0, got {x}"),
        _ => Ok(()),
    }
}

fn positive_count(flag: &str, v: Option<i64>) -> anyhow::Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(x) if x >= 1 && x <= depin_economics::MAX_MONTHS as i64 * 1000 => Ok(Some(x as u32)),
        Some(x) => bail!("{flag}: must be a whole number ≥ 1, got {x}"),
    }
}

fn parse_sector(s: &str) -> anyhow::Result<Sector> {
    s.parse::<Sector>().map_err(|e| anyhow!("--sector: {e}"))
}

/// Computes the output text (table or JSON) for `args`. Pure apart from its `ctx`.
#[cfg(test)]
pub fn render(args: &EstimateArgs, ctx: Gathered) -> anyhow::Result<String> {
    Ok(render_all(args, ctx)?.0)
}

/// The output text, with `--plot` the SVG document to write, and lines for stderr
/// (what live rates rest on, and their warnings, kept out of JSON and CSV output).
pub fn render_all(
    args: &EstimateArgs,
    ctx: Gathered,
) -> anyhow::Result<(String, Option<String>, Vec<String>)> {
    for (flag, v) in [
        ("--price", args.price),
        ("--watts", args.watts),
        ("--capacity", args.capacity),
        ("--tokens-per-month", args.tokens_per_month),
        ("--kwh-price", args.kwh_price),
        ("--internet", args.internet),
        ("--internet-share", args.internet_share),
        ("--maintenance", args.maintenance),
        ("--token-price", args.token_price),
        ("--volatility", args.volatility),
        ("--growth-volatility", args.growth_volatility),
        ("--uptime", args.uptime),
        ("--emission-decay", args.emission_decay),
        ("--crash-probability", args.crash_probability),
        ("--crash-size", args.crash_size),
        ("--tax-rate", args.tax_rate),
        ("--utilisation", args.utilisation),
    ] {
        non_negative(flag, v)?;
    }
    let lifetime = positive_count("--lifetime-months", args.lifetime_months)?;
    let months = positive_count("--months", args.months)?;
    let paths = positive_count("--paths", args.paths)?;
    let sector = args.sector.as_deref().map(parse_sector).transpose()?;

    let mut catalogue = Catalogue::builtin();
    if let Some((text, origin)) = &ctx.user_catalogue {
        catalogue.merge(Catalogue::from_toml(text, origin).map_err(flag_error)?);
    }
    if args.list_devices {
        if args.csv || args.plot.is_some() {
            bail!("--list-devices prints a table or --json, without --csv or --plot");
        }
        return Ok((list_devices(&catalogue, args.json), None, Vec::new()));
    }

    let rates = &ctx.rates;
    let scenario_name: Scenario = match &args.scenario {
        Some(s) => s.parse().map_err(|e| anyhow!("--scenario: {e}"))?,
        None => Scenario::Base,
    };
    let scenario = scenario_name.parameters();
    let start: YearMonth = match &args.start {
        Some(s) => s.parse().map_err(|e| anyhow!("--start: {e}"))?,
        None => ctx.this_month,
    };
    let settings = OperatorSettings {
        kwh_price_usd: args.kwh_price.unwrap_or(Defaults::KWH_PRICE_USD),
        internet_usd_per_month: args.internet.unwrap_or(Defaults::INTERNET_USD_PER_MONTH),
        internet_share: args.internet_share,
        maintenance_usd_per_month: args.maintenance,
        uptime: args.uptime.unwrap_or(Defaults::UPTIME),
        emission_decay_per_year: args
            .emission_decay
            .or(rates.emission_decay_per_year)
            .unwrap_or(0.0),
        market: Market {
            token_volatility_per_year: args
                .volatility
                .unwrap_or(scenario.token_volatility_per_year),
            token_drift_per_year: args.token_drift.unwrap_or(scenario.token_drift_per_year),
            crash_probability_per_year: args
                .crash_probability
                .unwrap_or(scenario.crash_probability_per_year),
            crash_size: args.crash_size.unwrap_or(scenario.crash_size),
            network_growth_per_month: args.growth.unwrap_or(Defaults::NETWORK_GROWTH_PER_MONTH),
            network_growth_volatility_per_month: args
                .growth_volatility
                .unwrap_or(Defaults::NETWORK_GROWTH_VOLATILITY_PER_MONTH),
            ..Market::for_scenario(
                scenario_name,
                args.token_price
                    .or(rates.token_price_usd)
                    .unwrap_or(Defaults::TOKEN_PRICE_USD),
            )
        },
        months,
    };
    let options = |utilisation: Option<f64>| EstimateOptions {
        utilisation,
        start: Some(start),
        catalogue_halvings: true,
        catalogue_decay: args.emission_decay.is_none(),
        tax_rate: args.tax_rate,
    };
    let sim = Simulation {
        seed: args.seed.unwrap_or(Defaults::SEED),
        paths: paths.unwrap_or(Defaults::PATHS),
    };
    let one_device_flags = [
        ("--price", args.price.is_some()),
        ("--watts", args.watts.is_some()),
        ("--lifetime-months", lifetime.is_some()),
        ("--capacity", args.capacity.is_some()),
        ("--tokens-per-month", args.tokens_per_month.is_some()),
        ("--device", args.device.is_some()),
        ("--already-own", args.already_own),
    ];
    let json =
        |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON values print") + "\n";

    if args.rank || args.portfolio.is_some() {
        let mode = if args.rank { "--rank" } else { "--portfolio" };
        if args.plot.is_some() {
            bail!("--plot draws one device's estimate; leave out {mode}");
        }
        if args.rank && args.portfolio.is_some() {
            bail!("--rank and --portfolio: choose one");
        }
        if let Some((flag, _)) = one_device_flags.iter().find(|(_, set)| *set) {
            bail!(
                "{flag} describes one device; leave it out with {mode} (use --catalogue for your own hardware)"
            );
        }
    }

    if args.rank {
        let notes = notes_with_warnings(check_live_rates(
            rates,
            &sectors_used(&catalogue, sector),
            args.allow_thin_rates,
        )?);
        let inputs = catalogue
            .devices()
            .iter()
            .filter(|d| sector.is_none_or(|s| d.sector == s))
            .map(|d| {
                let u = args.utilisation.filter(|_| d.rental.is_some());
                inputs_for_estimate(d, None, &settings, rates, args.h3.as_deref(), &options(u))
            })
            .collect::<Result<Vec<EstimateInputs>, _>>()
            .map_err(flag_error)?;
        let est = estimate_many(&inputs, sim).map_err(flag_error)?;
        let rows = report::rank(&est);
        let text = if args.json {
            json(report::rank_json(&rows, &est))
        } else if args.csv {
            report::rank_csv(&rows)
        } else {
            report::rank_table(&rows, est.first())
        };
        return Ok((text, None, notes));
    }

    if args.portfolio.is_some() {
        let text = ctx
            .portfolio
            .as_deref()
            .ok_or_else(|| anyhow!("--portfolio: the file was not read"))?;
        let file = PortfolioFile::from_toml(text).map_err(flag_error)?;
        let mut used = Vec::new();
        for h in &file.holding {
            if let Ok(p) = catalogue.get(&h.device) {
                used.push(p.sector);
            }
        }
        used.sort();
        used.dedup();
        let notes = notes_with_warnings(check_live_rates(rates, &used, args.allow_thin_rates)?);
        let mut holdings = Vec::with_capacity(file.holding.len());
        for h in &file.holding {
            let mut p = catalogue
                .get(&h.device)
                .map_err(|e| anyhow!("--portfolio: {e} (see `depin estimate --list-devices`)"))?
                .clone();
            let catalogue_price = p.price_usd;
            if let Some(price) = h.price_usd {
                non_negative("--portfolio price_usd", Some(price))?;
                p.price_usd = price;
            }
            let cell = h.h3_cell.as_deref().or(args.h3.as_deref());
            let u = args.utilisation.filter(|_| p.rental.is_some());
            let inputs = inputs_for_estimate(
                &p,
                Some(catalogue_price),
                &settings,
                rates,
                cell,
                &options(u),
            )
            .map_err(flag_error)?;
            holdings.push(Holding {
                inputs,
                count: h.count,
            });
        }
        let p = estimate_portfolio(&holdings, months, sim).map_err(flag_error)?;
        let text = if args.json {
            json(report::portfolio_json(&p))
        } else if args.csv {
            report::portfolio_csv(&p)
        } else {
            report::portfolio_table(&p)
        };
        return Ok((text, None, notes));
    }

    // One device: from the catalogue, or described by the flags.
    let (mut profile, catalogue_price) = match &args.device {
        Some(name) => {
            let p = catalogue.get(name).map_err(flag_error)?.clone();
            if let Some(s) = sector.filter(|s| *s != p.sector) {
                bail!("--sector: {name} is a {} device, not {s}", p.sector);
            }
            let price = p.price_usd;
            (p, Some(price))
        }
        None => {
            let Some(sector) = sector else {
                bail!(
                    "say which device: --device NAME (one of {}), or --sector with --price, --watts and --lifetime-months for your own hardware; or --rank, or --portfolio FILE",
                    catalogue
                        .devices()
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let missing: Vec<&str> = [
                ("--price", args.price.is_none()),
                ("--watts", args.watts.is_none()),
                ("--lifetime-months", lifetime.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(f, _)| *f)
            .collect();
            if !missing.is_empty() {
                bail!(
                    "{}: needed to describe your own {sector} hardware (or pick one with --device)",
                    missing.join(", ")
                );
            }
            let median = depin_economics::rates::BUILTIN_SECTOR_DEFAULTS
                .iter()
                .find(|d| d.0 == sector)
                .expect("every sector has defaults");
            let p = depin_economics::DeviceProfile {
                name: format!("custom-{sector}"),
                label: "your hardware".into(),
                sector,
                price_usd: 0.0,
                watts: 0.0,
                lifetime_months: 1,
                capacity_units: median.2,
                capacity_unit: median.3.into(),
                internet_share: 0.0,
                maintenance_usd_per_month: 0.0,
                driving_usd_per_month: 0.0,
                max_temperature_c: None,
                resale_fraction: None,
                rental: None,
                storage: None,
                emission: None,
                placement: None,
                assumption: "given on the command line".into(),
            };
            (p, None)
        }
    };
    if let Some(v) = args.price {
        profile.price_usd = v;
    }
    if let Some(v) = args.watts {
        profile.watts = v;
        // For a rented GPU the flag gives the draw under load.
        if let Some(r) = profile.rental.as_mut() {
            r.load_watts = v;
        }
    }
    if let Some(v) = lifetime {
        profile.lifetime_months = v;
    }
    if let Some(v) = args.capacity {
        profile.capacity_units = v;
    }
    // A rate given with --tokens-per-month does not rest on the network's data.
    let (notes, live_warnings) = if args.tokens_per_month.is_some() {
        (Vec::new(), Vec::new())
    } else {
        check_live_rates(rates, &[profile.sector], args.allow_thin_rates)?
    };
    let mut inputs = inputs_for_estimate(
        &profile,
        catalogue_price,
        &settings,
        rates,
        args.h3.as_deref(),
        &options(args.utilisation),
    )
    .map_err(flag_error)?;
    inputs.hardware.already_owned = args.already_own;
    if let Some(t) = args.tokens_per_month {
        inputs.rewards.tokens_per_month = t;
        inputs.rewards.source = format!("{t} tokens/month given with --tokens-per-month");
        // A rate the operator knows is the rate of their site: no placement draw.
        inputs.placement = None;
    }
    let mut e = estimate(&inputs, sim).map_err(flag_error)?;
    // Thin live data comes first: it qualifies every figure below.
    e.warnings.splice(0..0, live_warnings);
    let svg = match &args.plot {
        None => None,
        Some(_) => {
            // The tornado re-runs 11 variants; 1000 paths keep it quick.
            let t_sim = Simulation {
                paths: sim.paths.min(1000),
                ..sim
            };
            let t = depin_economics::plot::tornado(&inputs, t_sim).map_err(flag_error)?;
            Some(depin_economics::plot::charts_svg(&e, &t).map_err(flag_error)?)
        }
    };
    let text = if args.json {
        json(report::device_json(&e))
    } else if args.csv {
        report::device_csv(&e)
    } else {
        report::device_table(&e)
    };
    Ok((text, svg, notes))
}

fn list_devices(c: &Catalogue, as_json: bool) -> String {
    if as_json {
        return serde_json::to_string_pretty(&serde_json::json!({ "devices": c.devices() }))
            .expect("JSON values print")
            + "\n";
    }
    // Every column is followed by two spaces, so wide values never run together.
    let line = |c: [&str; 7]| {
        format!(
            "{:<24}  {:<8}  {:>9}  {:>7}  {:>6}  {:<14}  {}\n",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        )
    };
    let mut out = line([
        "device",
        "sector",
        "price USD",
        "watts",
        "months",
        "capacity",
        "label",
    ]);
    for d in c.devices() {
        out += &line([
            &d.name,
            d.sector.as_str(),
            &report::num(d.price_usd),
            &format!("{}", d.watts),
            &d.lifetime_months.to_string(),
            &format!("{} {}", d.capacity_units, d.capacity_unit),
            &d.label,
        ]);
    }
    out += "\nEvery figure is an assumption (see `--list-devices --json` for the source notes); add your own with --catalogue FILE.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: EstimateArgs,
    }

    fn ctx() -> Gathered {
        Gathered {
            user_catalogue: None,
            portfolio: None,
            rates: NetworkRates::builtin(),
            this_month: YearMonth {
                year: 2026,
                month: 12,
            },
        }
    }

    fn go(argv: &str) -> anyhow::Result<String> {
        go_with(argv, ctx())
    }

    fn go_with(argv: &str, c: Gathered) -> anyhow::Result<String> {
        let args =
            Cli::try_parse_from(std::iter::once("estimate").chain(argv.split_whitespace()))?.a;
        render(&args, c)
    }

    fn err(argv: &str) -> String {
        format!("{:#}", go(argv).expect_err(argv))
    }

    #[test]
    fn every_catalogue_device_prints_a_table_quickly() {
        for d in Catalogue::builtin().devices() {
            let t = std::time::Instant::now();
            let out = go(&format!("--device {}", d.name)).unwrap();
            assert!(
                t.elapsed().as_millis() < 1000,
                "{} took {:?}",
                d.name,
                t.elapsed()
            );
            assert!(
                out.contains("payback, months") && out.contains("p50"),
                "{out}"
            );
        }
    }

    #[test]
    fn json_is_deterministic_and_shaped() {
        let a = go("--device rtx-4090 --json --seed 9").unwrap();
        assert_eq!(a, go("--device rtx-4090 --json --seed 9").unwrap());
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["schema"], "depin.estimate.device.v1");
        for k in [
            "net_profit_usd_per_month",
            "payback_months",
            "revenue_usd_per_month",
            "break_even_token_price_usd",
        ] {
            assert!(v[k]["p10"].is_number() || v[k]["p10"].is_null(), "{k}");
            assert!(
                v[k].get("p50").is_some() && v[k].get("p90").is_some(),
                "{k}"
            );
        }
        assert_eq!(v["simulation"]["seed"], 9);
    }

    #[test]
    fn explicit_hardware_and_overrides() {
        let out = go("--sector storage --price 200 --watts 10 --lifetime-months 60 --capacity 8 --kwh-price 0.3 --json").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["inputs"]["hardware"]["capacity_units"], 8.0);
        assert_eq!(v["inputs"]["costs"]["kwh_price_usd"], 0.3);
        let out = go("--device rtx-4090 --price 2600").unwrap();
        assert!(out.contains("above the catalogue price"), "{out}");
        let out = go("--device dashcam --tokens-per-month 0").unwrap();
        assert!(out.contains("earns no tokens"), "{out}");
    }

    #[test]
    fn bad_input_names_the_flag() {
        assert!(err("--device rtx-4090 --kwh-price -0.1").starts_with("--kwh-price:"));
        assert!(err("--device rtx-4090 --price -5").starts_with("--price:"));
        assert!(err("--device rtx-4090 --token-price -1").starts_with("--token-price:"));
        assert!(err("--device rtx-4090 --lifetime-months 0").starts_with("--lifetime-months:"));
        assert!(err("--device rtx-4090 --internet-share 2").starts_with("--internet-share:"));
        assert!(err("--device rtx-4090 --volatility 9").starts_with("--volatility:"));
        assert!(err("--device rtx-4090 --months 0").starts_with("--months:"));
        let e = err("--device rtx4090");
        assert!(
            e.starts_with("--device:") && e.contains("did you mean rtx-4090"),
            "{e}"
        );
        let e = err("--sector radio --price 1 --watts 1 --lifetime-months 1");
        assert!(
            e.starts_with("--sector:") && e.contains("storage, compute, wireless, sensor"),
            "{e}"
        );
        let e = err("--sector storage --price 100");
        assert!(e.starts_with("--watts, --lifetime-months:"), "{e}");
        assert!(err("--device dashcam --sector compute").starts_with("--sector:"));
        assert!(err("--rank --price 10").starts_with("--price describes one device"));
        assert!(err("").contains("--device NAME"));
        assert!(err("--device dashcam --h3 8a2a1072b59ffff").starts_with("--h3:"));
    }

    #[test]
    fn rank_and_portfolio_and_catalogue() {
        let out = go("--rank").unwrap();
        assert!(out.contains("rank") && out.contains("h100-pcie"), "{out}");
        let out = go("--rank --sector sensor --json").unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["sector"] == "sensor")
        );

        let pf = "[[holding]]\ndevice = \"rtx-3060\"\n[[holding]]\ndevice = \"weather-station\"\ncount = 2\n";
        let c = Gathered {
            portfolio: Some(pf.into()),
            ..ctx()
        };
        let out = go_with("--portfolio p.toml", c).unwrap();
        assert!(out.contains("diversification across 2 sector(s)"), "{out}");
        let c = Gathered {
            portfolio: Some("[[holding]]\ndevice = \"nope\"\n".into()),
            ..ctx()
        };
        assert!(
            format!("{:#}", go_with("--portfolio p.toml", c).unwrap_err())
                .starts_with("--portfolio:")
        );

        let mine = "[[device]]\nname = \"my-pi\"\nlabel = \"pi\"\nsector = \"storage\"\nprice_usd = 80.0\nwatts = 4.0\nlifetime_months = 36\ncapacity_units = 2.0\ncapacity_unit = \"tb\"\n";
        let c = Gathered {
            user_catalogue: Some((mine.into(), "mine.toml".into())),
            ..ctx()
        };
        assert!(
            go_with("--device my-pi", c)
                .unwrap()
                .contains("my-pi (storage)")
        );
        let c = Gathered {
            user_catalogue: Some(("[[device]]\nname = 1\n".into(), "bad.toml".into())),
            ..ctx()
        };
        let e = format!("{:#}", go_with("--rank", c).unwrap_err());
        assert!(
            e.starts_with("--catalogue:") && e.contains("bad.toml"),
            "{e}"
        );
        assert!(go("--list-devices").unwrap().contains("weather-station"));
    }

    #[test]
    fn scenarios_and_start_month() {
        let out = go("--device gnss-reference-station --scenario crash --paths 200").unwrap();
        assert!(
            out.contains("scenario crash: token price USD 0.500, median drift -100%/year"),
            "{out}"
        );
        // GEODNET halves on 2027-06-30; from the test's December 2026, in month 8.
        assert!(
            out.contains("emission halves in month 8 and every 12 months after"),
            "{out}"
        );
        // From July 2027 the 2027-06-30 halving is in today's rate; the next, 2028-06-30,
        // takes effect in July 2028, month 13.
        let out = go("--device gnss-reference-station --start 2027-07 --paths 200").unwrap();
        assert!(
            out.contains("emission halves in month 13 and every 12 months after"),
            "{out}"
        );
        let out = go("--device dashcam --scenario bear --volatility 0.5 --paths 200").unwrap();
        assert!(out.contains("scenario bear with your overrides"), "{out}");
        let v: serde_json::Value =
            serde_json::from_str(&go("--rank --scenario bear --paths 100 --json").unwrap())
                .unwrap();
        assert_eq!(v["scenario"]["name"], "bear");
        assert_eq!(v["scenario"]["token_drift_per_year"], -0.5);
        assert!(
            err("--device dashcam --scenario doom").starts_with("--scenario: unknown scenario")
        );
        assert!(err("--device dashcam --start 2027-13").starts_with("--start:"));
        assert!(err("--device dashcam --crash-size 1").starts_with("--crash-size:"));
        assert!(err("--device dashcam --crash-probability -1").starts_with("--crash-probability:"));
        assert_eq!(
            year_month_of_day(0),
            YearMonth {
                year: 1970,
                month: 1
            }
        );
        assert_eq!(
            year_month_of_day(20818),
            YearMonth {
                year: 2026,
                month: 12
            }
        );
        assert_eq!(
            year_month_of_day(19782),
            YearMonth {
                year: 2024,
                month: 2
            }
        );
        assert_eq!(
            year_month_of_day(11017),
            YearMonth {
                year: 2000,
                month: 3
            }
        );
    }

    #[test]
    fn a_weather_station_in_a_full_cell_is_told_it_earns_nothing() {
        let mut rates = NetworkRates::builtin();
        rates.cells.push(depin_economics::CellRates {
            h3: "871f1d489ffffff".into(),
            sector: Sector::Sensor,
            devices: 10,
            tokens_per_device_month: 8.0,
        });
        let c = Gathered { rates, ..ctx() };
        let out = go_with(
            "--device weather-station --h3 871f1d489ffffff --paths 100",
            c,
        )
        .unwrap();
        assert!(
            out.contains("already has 10 sensor devices, at its capacity of 10")
                && out.contains("earns no tokens"),
            "{out}"
        );
        // Without a cell, each path draws a site: 10% of them are in a full cell.
        let out = go("--device weather-station --paths 100").unwrap();
        assert!(
            out.contains("placement: 10% of sites are in a cell that is already full"),
            "{out}"
        );
    }

    #[test]
    fn tax_fees_resale_and_break_even_electricity_are_shown() {
        let out = go("--device rtx-4090 --tax-rate 0.3 --paths 200").unwrap();
        for want in [
            "income tax 30% of each month's profit",
            "the platform keeps 10%; paid once the balance reaches USD 25.00",
            "resale value at month 48, USD",
            "cash if sold then, USD",
            "break-even electricity, USD/kWh",
        ] {
            assert!(out.contains(want), "{want}: {out}");
        }
        // USD 1800 × 0.5^(48/24) = 450 at the end of the 48 months.
        let line = out
            .lines()
            .find(|l| l.contains("resale value at month 48"))
            .unwrap();
        assert!(line.contains("450.00"), "{line}");
        assert!(err("--device rtx-4090 --tax-rate 30").starts_with("--tax-rate:"));
        assert!(go("--rank --paths 100").unwrap().contains("max USD/kWh"));
    }

    #[test]
    fn network_rates_and_cells_are_used() {
        let mut rates = NetworkRates::builtin();
        rates.token_price_usd = Some(2.0);
        rates.cells.push(depin_economics::CellRates {
            h3: "8a2a1072b59ffff".into(),
            sector: Sector::Wireless,
            devices: 3,
            tokens_per_device_month: 8.0,
        });
        let c = Gathered { rates, ..ctx() };
        let out = go_with(
            "--device lorawan-indoor-hotspot --h3 8a2a1072b59ffff --json",
            c,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["inputs"]["market"]["token_price_usd"], 2.0);
        assert_eq!(v["inputs"]["rewards"]["tokens_per_month"], 6.0); // 8 × 3/4
    }
}
