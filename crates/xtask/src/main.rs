//! Developer tasks: `cargo xtask crd`, `cargo xtask testbed up|down|env|status`.

mod crd;
mod testbed;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Code generation and developer tasks of the Foundry gateway operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the CRD YAML to config/crd/ and the chart, or check that it is up to date.
    Crd(crd::Args),
    /// Build, start, stop and describe the local test bed.
    #[command(subcommand)]
    Testbed(testbed::Command),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd(args) => crd::run(&args),
        Command::Testbed(command) => testbed::run(command),
    }
}
