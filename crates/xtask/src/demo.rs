//! `cargo xtask demo`: a local test bed with the CRDs installed and the samples applied.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::Context as _;
use foundry_gateway_testbed::{Testbed, paths};

use crate::ci::step;
use crate::crd::repo_root;

/// Namespace the samples are applied to.
const NAMESPACE: &str = "foundry-demo";

pub fn run() -> anyhow::Result<()> {
    let dir = paths::default_state_dir();
    crate::testbed::run(crate::testbed::Command::Up {
        dir: crate::testbed::DirArg::new(dir.clone()),
        timeout: 120,
    })?;
    let testbed = Testbed::open(&dir).context("failed to open the test bed just started")?;
    let root = repo_root();
    let kubectl = |args: &[&str]| {
        let mut command = Command::new("kubectl");
        command
            .env("KUBECONFIG", testbed.kubeconfig_path())
            .current_dir(&root)
            .args(args);
        command
    };
    step(
        "install the CRDs",
        kubectl(&["apply", "--server-side", "-f", "config/crd/"]),
    )?;
    step(
        "wait for the CRDs",
        kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            "config/crd/",
        ]),
    )?;
    let manifest = kubectl(&[
        "create",
        "namespace",
        NAMESPACE,
        "--dry-run=client",
        "-o",
        "yaml",
    ])
    .output()
    .context("failed to run kubectl")?
    .stdout;
    let mut child = kubectl(&["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .context("failed to run kubectl")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&manifest)
            .context("failed to send the namespace manifest")?;
    }
    if !child.wait().context("failed to run kubectl")?.success() {
        anyhow::bail!("could not create namespace {NAMESPACE}");
    }
    step(
        "apply the samples",
        kubectl(&[
            "apply",
            "--server-side",
            "-n",
            NAMESPACE,
            "-f",
            "config/samples/",
        ]),
    )?;
    step(
        "show them",
        kubectl(&["get", "foundry", "-n", NAMESPACE, "-o", "wide"]),
    )?;
    eprintln!(
        "\nThe test bed keeps running. Point kubectl at it with\n  eval \"$(cargo xtask testbed env)\"\nand stop it with\n  cargo xtask testbed down"
    );
    Ok(())
}
