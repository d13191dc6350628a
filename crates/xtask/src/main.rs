//! Developer tasks: `cargo xtask test`, `cargo xtask demo`, `cargo xtask crd`,
//! `cargo xtask testbed build|up [--nodes]|down|env|status`, `cargo xtask image`, `cargo xtask stack install|up|down|env|status`,
//! `cargo xtask sbom`, `cargo xtask version`, `cargo xtask release`.

mod bench;
mod chart;
mod ci;
mod crd;
mod demo;
mod image;
mod publish;
mod release;
mod sbom;
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
    /// Run the operator end to end on this machine: the stack with Kubernetes, the operator with
    /// its shipped RBAC, the samples, and the official SDK asking the agent it made
    /// (`demo down` stops a demo left running).
    Demo(demo::Args),
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
    /// Build the operator's and the emulator's images (OCI archives, no container engine) from the
    /// release binaries and load them into a running test bed's node.
    Image(image::Args),
    /// Measure the performance targets (docs/ARCHITECTURE.md, Targets) on the test bed: N
    /// GatewayConnections + N PromptAgents from apply to
    /// Ready, Foundry calls, idle writes and status patches, operator memory and CPU.
    Bench(bench::Args),
    /// Converge under injected faults (429/5xx, latency, dropped connections, gateway restarts,
    /// Secret rotation, operator SIGKILLs, two replicas) and check nothing leaked or doubled.
    Faults(bench::faults::Args),
    /// Write a CycloneDX 1.5 JSON SBOM of the crates linked into a binary (from `cargo
    /// metadata`).
    Sbom(sbom::Args),
    /// Print the workspace version after checking that the chart and the Dockerfile follow it
    /// (and, with `--tag`, that a release tag names it).
    Version(release::Args),
    /// Publish a release to an OCI registry: the images and the chart pushed, each image's SBOM
    /// attested and everything signed with cosign (a throwaway key unless one is given).
    Release(publish::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test(args) => ci::run(&args),
        Command::Demo(args) => demo::run(args),
        Command::Crd(args) => crd::run(&args),
        Command::Testbed(command) => testbed::run(command),
        Command::Stack(command) => stack::run(command),
        Command::Chart(args) => chart::run(&args),
        Command::Image(args) => image::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Faults(args) => bench::faults::run(&args),
        Command::Sbom(args) => sbom::run(&args),
        Command::Version(args) => release::run(&args),
        Command::Release(args) => publish::run(&args),
    }
}
