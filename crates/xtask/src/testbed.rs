//! `cargo xtask testbed`: build the Kubernetes binaries, start a detached test bed in
//! `<repo>/.testbed/`, print its environment, describe it, stop it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::{
    KUBERNETES_VERSION, Mode, Options, Testbed, ensure_kube_binaries, ensure_node_binaries, node,
    paths,
};

/// Entries a test bed leaves in its state directory; a directory holding only these is ours to clear.
const OWN_ENTRIES: &[&str] = &[
    "state.json",
    ".state.json.tmp",
    "testbed.env",
    "kubeconfig",
    "kubeconfigs",
    "attached.pids",
    "pki",
    "etcd",
    "logs",
    "node",
];

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build kube-apiserver and etcd into the cache outside the repository (if missing).
    Build {
        /// Also build the node's binaries (kubelet, controller manager, scheduler, kube-proxy)
        /// and install its Debian packages (containerd, runc, CNI plugins, iptables).
        #[arg(long)]
        nodes: bool,
    },
    /// Start the test bed and leave it running; print the line that points kubectl at it.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Seconds to wait for the apiserver (and the node) to become ready.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Also run a node (containerd, kubelet, controller manager, scheduler, kube-proxy on a
        /// bridge of the test bed's own), so Pods run. Needs root; `down` restores the machine.
        #[arg(long)]
        nodes: bool,
    },
    /// Stop a test bed started with `up` and remove its state directory.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print the `export KUBECONFIG=…` lines of the running test bed (`eval "$(cargo xtask testbed env)"`).
    Env {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Tell whether the test bed runs and answers; exit non-zero if it does not.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// State directory of the test bed [default: <repo>/.testbed]
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(paths::default_state_dir)
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build { nodes } => build(nodes),
        Command::Up {
            dir,
            timeout,
            nodes,
        } => up(&dir.path(), Duration::from_secs(timeout), nodes),
        Command::Down { dir } => down(&dir.path()),
        Command::Env { dir } => env(&dir.path()),
        Command::Status { dir } => status(&dir.path()),
    }
}

fn build(nodes: bool) -> anyhow::Result<()> {
    if nodes {
        let (_, node) = ensure_node_binaries().context("failed to build the node's binaries")?;
        eprintln!("kubelet: {}", node.kubelet.display());
        let packages =
            node::ensure_node_packages().context("failed to install the node's Debian packages")?;
        eprintln!("containerd: {}", packages.containerd().display());
    }
    let binaries = ensure_kube_binaries().context("failed to build the test bed binaries")?;
    eprintln!(
        "kube-apiserver v{KUBERNETES_VERSION}: {}",
        binaries.kube_apiserver.display()
    );
    eprintln!("etcd: {}", binaries.etcd.display());
    Ok(())
}

fn up(dir: &Path, timeout: Duration, nodes: bool) -> anyhow::Result<()> {
    if dir.join("state.json").exists() {
        match Testbed::open(dir) {
            Ok(testbed) if testbed.is_healthy() => {
                eprintln!(
                    "The test bed is already up at {} ({})",
                    testbed.server_url(),
                    dir.display()
                );
                print_kubeconfig_line(&testbed);
                return Ok(());
            }
            Ok(mut stale) => {
                eprintln!(
                    "Cleared a test bed that no longer answers ({})",
                    dir.display()
                );
                let _ = stale.stop();
            }
            Err(err) => eprintln!("Cleared an unreadable test bed state ({err})"),
        }
    }
    clear_own_dir(dir)?;
    let testbed = Testbed::start(Options {
        ready_timeout: timeout,
        node: nodes,
        ..Options::detached(dir)
    })
    .context("failed to start the test bed")?;
    print_kubeconfig_line(&testbed);
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    match Testbed::open(dir) {
        Ok(mut testbed) => {
            testbed.stop().context("failed to stop the test bed")?;
            eprintln!("Stopped the test bed ({})", dir.display());
        }
        Err(foundry_gateway_testbed::Error::NoState { .. }) => {
            eprintln!("No test bed state in {}", dir.display());
        }
        Err(err) => return Err(err).context("failed to read the test bed state"),
    }
    clear_own_dir(dir)
}

fn env(dir: &Path) -> anyhow::Result<()> {
    let testbed = open(dir)?;
    if !testbed.is_healthy() {
        bail!(
            "the test bed in {} does not answer; restart it with `cargo xtask testbed up`",
            dir.display()
        );
    }
    let path = testbed.env_file();
    let text =
        fs::read_to_string(&path).with_context(|| format!("failed to read {}", path.display()))?;
    print!("{text}");
    Ok(())
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let mut testbed = open(dir)?;
    let healthy = testbed.is_healthy();
    let row = |label: &str, value: String| println!("{:<16}{value}", format!("{label}:"));
    row("state dir", testbed.state_dir().display().to_string());
    row(
        "kubernetes",
        format!("v{KUBERNETES_VERSION} at {}", testbed.server_url()),
    );
    row(
        "kubeconfig",
        testbed.kubeconfig_path().display().to_string(),
    );
    row(
        "mode",
        match testbed.mode() {
            Mode::Detached => "detached".to_owned(),
            Mode::Attached { owner } => format!("attached to pid {owner}"),
        },
    );
    for process in testbed.processes_mut() {
        let state = process
            .exit_status()
            .unwrap_or_else(|| "running".to_owned());
        row(process.name(), format!("pid {} {state}", process.pid()));
    }
    if testbed.node().is_some() {
        row("node", format!("{} at {}", node::NODE_NAME, node::NODE_IP));
    }
    row(
        "readyz",
        if healthy { "ok" } else { "no answer" }.to_owned(),
    );
    if !healthy {
        bail!("the test bed is not healthy");
    }
    Ok(())
}

fn open(dir: &Path) -> anyhow::Result<Testbed> {
    Testbed::open(dir).with_context(|| {
        format!(
            "no test bed in {}; start one with `cargo xtask testbed up`",
            dir.display()
        )
    })
}

fn print_kubeconfig_line(testbed: &Testbed) {
    println!(
        "export KUBECONFIG='{}'",
        testbed
            .kubeconfig_path()
            .display()
            .to_string()
            .replace('\'', r"'\''")
    );
}

/// Removes `dir` if it holds nothing but what a test bed leaves there; refuses anything else.
fn clear_own_dir(dir: &Path) -> anyhow::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("failed to read {}", dir.display())),
    };
    for entry in entries {
        let name = entry
            .with_context(|| format!("failed to read {}", dir.display()))?
            .file_name();
        if !OWN_ENTRIES.iter().any(|own| name == *own) {
            bail!(
                "{} holds {name:?}, which a test bed does not write; not removing it",
                dir.display()
            );
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", dir.display()))
}
