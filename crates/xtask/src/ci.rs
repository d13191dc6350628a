//! `cargo xtask test`: the whole test suite, exactly what CI runs.
//!
//! Static checks first (format, CRD drift, clippy), while the test bed's Go binaries (and Flux's
//! controllers, the registry and cosign, where the node runs) build and the
//! stack's tools install on other threads; then one test bed for the whole run, shared by every
//! test binary through `FOUNDRY_TESTBED_DIR`, and `cargo test --workspace`.

use std::process::Command;
use std::thread;
use std::time::Instant;

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::{
    ENV_TESTBED_DIR, Options, Testbed, ensure_kube_binaries, ensure_node_binaries, flux, node,
    registry,
};

use crate::{crd, stack};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy` (for a quick local run of the tests).
    #[arg(long)]
    no_lint: bool,
    /// Extra arguments passed to `cargo test` after `--` (e.g. a test name filter).
    #[arg(last = true)]
    test_args: Vec<String>,
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, printing a header and its duration; fails when it fails.
pub fn step(title: &str, mut command: Command) -> anyhow::Result<()> {
    eprintln!("==> {title}");
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("failed to run {title}"))?;
    eprintln!(
        "==> {title}: {} in {:.1?}",
        if status.success() { "ok" } else { "FAILED" },
        started.elapsed()
    );
    if !status.success() {
        bail!("{title} failed ({status})");
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    // The Go build takes minutes on a cold cache: overlap it with the Rust checks and build. A
    // machine that can run the test bed's node (tests/tests/pods.rs) builds the node's binaries
    // with the others, in the same go invocations.
    let kube = thread::spawn(|| {
        if node::host_capabilities().is_ok() {
            ensure_node_binaries().map(|(kube, _)| kube)
        } else {
            ensure_kube_binaries()
        }
    });
    // And Flux's controllers (tests/tests/gitops.rs), then the registry and cosign
    // (tests/tests/pods.rs), on a machine that runs the node.
    let flux = thread::spawn(|| -> anyhow::Result<()> {
        if node::host_capabilities().is_ok() {
            flux::ensure_flux_binaries().context("failed to build Flux's controllers")?;
            registry::ensure_release_tools().context("failed to build the registry and cosign")?;
        }
        Ok(())
    });
    // So do the stack's installs (LiteLLM and SDK virtual environments, the token server's
    // node_modules): the tests that need them would otherwise wait for them one by one.
    let installs = stack::spawn_installs(false);
    if !args.no_lint {
        let mut fmt = cargo();
        fmt.args(["fmt", "--all", "--", "--check"]);
        step("cargo fmt --check", fmt)?;
        eprintln!("==> CRD drift check");
        crd::run(&crd::Args { check: true })?;
        eprintln!("==> deploy/ and chart README drift check");
        crate::chart::render(true)?;
        let mut clippy = cargo();
        clippy.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        step("cargo clippy", clippy)?;
    }
    // The binaries first: the cluster tests start the operator and the emulator as processes.
    let mut bins = cargo();
    bins.args(["build", "--workspace", "--bins"]);
    step("build the binaries", bins)?;
    let mut build = cargo();
    build.args(["test", "--workspace", "--no-run"]);
    step("build the tests", build)?;
    let binaries = kube
        .join()
        .map_err(|_| anyhow::anyhow!("the test bed build thread panicked"))?
        .context("failed to build kube-apiserver and etcd")?;
    eprintln!(
        "==> test bed binaries ready: {}",
        binaries.kube_apiserver.display()
    );
    stack::join_installs(installs).context("failed to install the stack's tools")?;
    flux.join()
        .map_err(|_| anyhow::anyhow!("the Flux build thread panicked"))??;
    let mut testbed = Testbed::start(Options {
        binaries: Some(binaries),
        ..Options::default()
    })
    .context("failed to start the test bed")?;
    eprintln!("==> test bed up at {}", testbed.server_url());
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env(ENV_TESTBED_DIR, testbed.state_dir());
    if !args.test_args.is_empty() {
        test.arg("--").args(&args.test_args);
    }
    let result = step("cargo test --workspace", test);
    if let Err(error) = testbed.stop() {
        eprintln!("warning: the test bed did not stop cleanly: {error}");
    }
    result?;
    if args.test_args.is_empty() {
        // Short runs of the benchmark and the fault campaign: their zero-counts are invariants
        // (no writes or status patches while idle, one write per object, no duplicates, no leaks,
        // no call before a Retry-After, no secret in logs), so a violation fails CI.
        let bench_started = Instant::now();
        eprintln!("==> short benchmark (cargo xtask bench, CI size)");
        crate::bench::run(&crate::bench::Args::ci())?;
        eprintln!("==> short benchmark: ok in {:.1?}", bench_started.elapsed());
        let faults_started = Instant::now();
        eprintln!("==> short fault campaign (cargo xtask faults, CI size)");
        crate::bench::faults::run(&crate::bench::faults::Args::ci())?;
        eprintln!(
            "==> short fault campaign: ok in {:.1?}",
            faults_started.elapsed()
        );
    }
    eprintln!("==> all checks passed in {:.1?}", started.elapsed());
    Ok(())
}
