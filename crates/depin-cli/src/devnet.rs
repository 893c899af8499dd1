//! `depin devnet`: the whole network simulated on this machine, a thin shell
//! over the `depin-devnet` crate. Stdout carries only the deterministic
//! summary table; progress and timing go to stderr.

use anyhow::Context as _;
use depin_devnet::{Config, FaultLevel, Progress, Scenario};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DevnetArgs {
    /// Seed of everything simulated: keys, operators, behaviours, network, token price.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of devices.
    #[arg(long, default_value_t = 200)]
    pub nodes: u32,
    /// Number of reward epochs (one simulated hour each).
    #[arg(long, default_value_t = 24)]
    pub epochs: u32,
    /// Who cheats: mixed (about 15% cheats), honest (none) or cheaters (half).
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    /// Faults injected, from the seed: none, default (a few coordinator
    /// restarts, store errors, reordered and duplicated deliveries) or heavy.
    #[arg(long, default_value = "default")]
    pub faults: String,
    /// Output directory: summary.json, devices.json, epochs/N/claims.json, depin.sqlite.
    #[arg(long, default_value = "./devnet-out")]
    pub out: PathBuf,
}

/// A progress bar on stderr; indicatif hides it when stderr is not a terminal.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn start(&mut self, total: u64) {
        self.0.set_length(total);
        self.0.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg:<15} [{bar:40}] {pos}/{len} events",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
    }
    fn advance(&mut self, done: u64, phase: &str) {
        self.0.set_position(done);
        if self.0.message() != phase {
            self.0.set_message(phase.to_string());
        }
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

pub async fn run(args: DevnetArgs) -> anyhow::Result<()> {
    let scenario: Scenario = args.scenario.parse()?;
    let faults: FaultLevel = args.faults.parse()?;
    let config = Config {
        seed: args.seed,
        nodes: args.nodes,
        epochs: args.epochs,
        scenario,
        faults,
    };
    let started = std::time::Instant::now();
    let mut bar = Bar(indicatif::ProgressBar::with_draw_target(
        Some(0),
        indicatif::ProgressDrawTarget::stderr(),
    ));
    let outcome = depin_devnet::run(&config, &args.out, &mut bar)
        .await
        .with_context(|| {
            format!(
                "devnet run (seed {}, {} nodes, {} epochs, scenario {}, faults {})",
                args.seed, args.nodes, args.epochs, scenario, faults
            )
        })?;
    print!(
        "{}",
        depin_devnet::table(&outcome, &args.out.display().to_string())
    );
    eprintln!(
        "devnet finished in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
