//! `depin`: the one binary. Each subcommand is a thin shell over a library
//! crate; the logic lives there, so it is tested without the CLI.

mod audit;
mod bench;
mod consumer;
mod devnet;
mod estimate;
mod keygen;
mod logging;
mod node;
mod node_metrics;
mod operator;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "depin",
    version,
    about = "An open DePIN network: run a coordinator, join with a device, estimate earnings, audit payouts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a whole network deterministically on this machine.
    Devnet(devnet::DevnetArgs),
    /// Run the coordinator: HTTP API, report ingest, epoch closes.
    Serve(serve::ServeArgs),
    /// Create an operator or consumer key, encrypted under a passphrase.
    Keygen(keygen::KeygenArgs),
    /// Set up and run a device's node agent.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// What you have earned, your devices and alerts, cost settings and claims (operators).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// What a device earns net of electricity, internet, maintenance and hardware.
    Estimate(Box<estimate::EstimateArgs>),
    /// Recompute a closed epoch from stored inputs and compare byte for byte.
    AuditEpoch(audit::AuditArgs),
    /// Write an epoch's claim tree (OpenZeppelin StandardMerkleTree dump).
    Claims(audit::ClaimsArgs),
    /// Lock escrow for orders and see what they were charged (consumers).
    #[command(subcommand)]
    Consumer(consumer::ConsumerCommand),
    /// Credit consumers' escrow from external payments (coordinator operators).
    #[command(subcommand)]
    Escrow(consumer::EscrowCommand),
    /// Run a benchmark and print one JSON object.
    Bench(bench::BenchArgs),
    /// List the reason codes the network uses, with their meaning.
    Reasons,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Devnet(a) => devnet::run(a).await,
            Command::Serve(a) => serve::run(a).await,
            Command::Keygen(a) => keygen::run(a).await,
            Command::Node(c) => node::run(c).await,
            Command::Operator(c) => operator::run(c).await,
            Command::Estimate(a) => estimate::run(*a).await,
            Command::AuditEpoch(a) => audit::run_audit(a).await,
            Command::Claims(a) => audit::run_claims(a).await,
            Command::Bench(a) => bench::run(a).await,
            Command::Consumer(c) => consumer::run_consumer(c).await,
            Command::Escrow(c) => consumer::run_escrow(c).await,
            Command::Reasons => {
                for r in depin_core::Reason::ALL {
                    println!("{:<20} {}", r.as_str(), r.explain());
                }
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
