//! Developer tasks: `cargo xtask test`, `cargo xtask demo`, `cargo xtask crd`,
//! `cargo xtask testbed build|up|down|env|status`, `cargo xtask stack install|up|down|env|status`.

mod chart;
mod ci;
mod crd;
mod demo;
mod stack;
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
    /// Run the whole test suite: format, CRD drift, clippy, and every test on a real test bed.
    Test(ci::Args),
    /// Start the local demo: test bed, CRDs, samples.
    Demo,
    /// Write the CRD YAML to config/crd/ and the chart, or check that it is up to date.
    Crd(crd::Args),
    /// Build, start, stop and describe the local test bed.
    #[command(subcommand)]
    Testbed(testbed::Command),
    /// Install, start, stop and describe the whole stack (token server, LiteLLM, emulator,
    /// Kubernetes).
    #[command(subcommand)]
    Stack(stack::Command),
    Chart(chart::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test(args) => ci::run(&args),
        Command::Demo => demo::run(),
        Command::Crd(args) => crd::run(&args),
        Command::Testbed(command) => testbed::run(command),
        Command::Stack(command) => stack::run(command),
        Command::Chart(args) => chart::run(&args),
    }
}
