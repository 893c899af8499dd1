//! `depin`: the one binary. Each subcommand is a thin shell over a library crate.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "depin", version, about = "Decentralized physical infrastructure network: run, join, estimate, audit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the reason codes the network uses, with their meaning.
    Reasons,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Reasons => {
            for r in depin_core::Reason::ALL {
                println!("{:<20} {}", r.as_str(), r.explain());
            }
        }
    }
    Ok(())
}
