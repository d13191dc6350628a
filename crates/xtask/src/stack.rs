//! `cargo xtask stack`: the whole test bed around the operator (token server, LiteLLM, the Foundry
//! emulator and Kubernetes), detached in `<repo>/.stack/`, for a shell or a local run of the
//! operator; and the installs it needs, in parallel.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::stack::{STACK_ENV_FILE, STACK_STATE_FILE, Stack, StackOptions};
use foundry_gateway_testbed::stack_error::StackResult;
use foundry_gateway_testbed::{Mode, ensure_kube_binaries, gateway, paths, python, token_server};

/// Entries a stack leaves in its state directory; a directory holding only these is ours to clear.
const OWN_ENTRIES: &[&str] = &[
    STACK_STATE_FILE,
    STACK_ENV_FILE,
    "attached.pids",
    "pki",
    "token-server",
    "gateway",
    "emulator",
    "kube",
];

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Install what the stack runs (kube-apiserver and etcd, LiteLLM, the token server, the SDK),
    /// in parallel, into the cache outside the repository.
    Install,
    /// Start the stack and leave it running; print the line that loads its environment.
    Up {
        #[command(flatten)]
        dir: DirArg,
        /// Seconds each part may take to become ready (installs not counted).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// Leave Kubernetes out.
        #[arg(long)]
        no_kubernetes: bool,
    },
    /// Stop a stack started with `up` and remove its state directory.
    Down {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Print the line that loads the stack's environment (`eval "$(cargo xtask stack env)"`).
    Env {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Tell whether every part of the stack answers; exit non-zero if one does not.
    Status {
        #[command(flatten)]
        dir: DirArg,
    },
}

#[derive(Debug, clap::Args)]
pub struct DirArg {
    /// State directory of the stack [default: <repo>/.stack]
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl DirArg {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(paths::default_stack_dir)
    }
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Install => join_installs(spawn_installs(true)),
        Command::Up {
            dir,
            timeout,
            no_kubernetes,
        } => up(&dir.path(), Duration::from_secs(timeout), !no_kubernetes),
        Command::Down { dir } => down(&dir.path()),
        Command::Env { dir } => env(&dir.path()),
        Command::Status { dir } => status(&dir.path()),
    }
}

/// One install running on its own thread: what it installs, and its duration and result.
pub type Install = (&'static str, JoinHandle<(Duration, StackResult<PathBuf>)>);

/// Starts the installs of the stack's tools, each on a thread: LiteLLM's virtual environment,
/// the token server's node_modules, the SDK's virtual environment and, with `kube`, the
/// kube-apiserver and etcd build.
pub fn spawn_installs(kube: bool) -> Vec<Install> {
    let timed = |install: fn() -> StackResult<PathBuf>| {
        thread::spawn(move || {
            let started = Instant::now();
            let result = install();
            (started.elapsed(), result)
        })
    };
    let mut installs: Vec<Install> = vec![
        ("LiteLLM", timed(gateway::ensure_litellm)),
        ("the token server", timed(token_server::ensure_token_server)),
        ("the SDK", timed(python::sdk_python)),
    ];
    if kube {
        installs.push((
            "kube-apiserver and etcd",
            timed(|| {
                ensure_kube_binaries()
                    .map(|binaries| binaries.kube_apiserver)
                    .map_err(Into::into)
            }),
        ));
    }
    installs
}

/// Waits for every install, printing each one's duration; fails if any failed.
pub fn join_installs(installs: Vec<Install>) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for (what, handle) in installs {
        match handle.join() {
            Ok((took, Ok(path))) => {
                eprintln!("==> {what} ready in {took:.1?} ({})", path.display());
            }
            Ok((took, Err(err))) => {
                eprintln!("==> {what} FAILED after {took:.1?}: {err}");
                failed.push(what);
            }
            Err(_) => {
                eprintln!("==> the install of {what} panicked");
                failed.push(what);
            }
        }
    }
    if !failed.is_empty() {
        bail!("failed to install {}", failed.join(", "));
    }
    Ok(())
}

fn up(dir: &Path, timeout: Duration, kubernetes: bool) -> anyhow::Result<()> {
    if dir.join(STACK_STATE_FILE).exists() {
        match Stack::check_detached(dir) {
            Ok(parts) if parts.iter().all(|p| p.answer.is_ok()) => {
                eprintln!("The stack is already up ({})", dir.display());
                print_env_line(dir);
                return Ok(());
            }
            Ok(_) => {
                eprintln!(
                    "Cleared a stack that no longer answers in full ({})",
                    dir.display()
                );
                let _ = Stack::stop_detached(dir);
            }
            Err(err) => {
                eprintln!("Cleared an unreadable stack state ({err})");
                let _ = Stack::stop_detached(dir);
            }
        }
    }
    clear_own_dir(dir)?;
    let stack = Stack::start(StackOptions {
        state_dir: Some(dir.to_path_buf()),
        mode: Mode::Detached,
        kubernetes,
        ready_timeout: timeout,
        ..StackOptions::default()
    })
    .context("failed to start the stack")?;
    print_env_line(stack.state_dir());
    Ok(())
}

fn down(dir: &Path) -> anyhow::Result<()> {
    if dir.join(STACK_STATE_FILE).exists() {
        Stack::stop_detached(dir).context("failed to stop the stack")?;
        eprintln!("Stopped the stack ({})", dir.display());
    } else {
        eprintln!("No stack state in {}", dir.display());
    }
    clear_own_dir(dir)
}

fn env(dir: &Path) -> anyhow::Result<()> {
    let state = Stack::read_state(dir).with_context(|| no_stack(dir))?;
    if !state.env_file.is_file() {
        bail!("{} is missing; restart the stack", state.env_file.display());
    }
    print_env_line(dir);
    Ok(())
}

fn status(dir: &Path) -> anyhow::Result<()> {
    let state = Stack::read_state(dir).with_context(|| no_stack(dir))?;
    let parts = Stack::check_detached(dir).context("failed to ask the stack's parts")?;
    let row = |label: &str, value: String| println!("{:<18}{value}", format!("{label}:"));
    row("state dir", dir.display().to_string());
    row("env file", state.env_file.display().to_string());
    row(
        "mode",
        match state.owner {
            None => "detached".to_owned(),
            Some(owner) => format!("attached to pid {owner}"),
        },
    );
    let mut healthy = true;
    for part in &parts {
        let answer = match &part.answer {
            Ok(()) => "ok".to_owned(),
            Err(err) => {
                healthy = false;
                format!("NOT OK ({err})")
            }
        };
        let pid = state
            .processes
            .iter()
            .find(|p| p.name == part.name)
            .map(|p| format!("  (pid {})", p.pid))
            .unwrap_or_default();
        row(part.name.as_str(), format!("{answer}  {}{pid}", part.url));
    }
    if !healthy {
        bail!("the stack is not healthy");
    }
    Ok(())
}

fn no_stack(dir: &Path) -> String {
    format!(
        "no stack in {}; start one with `cargo xtask stack up`",
        dir.display()
    )
}

/// Prints `. '<dir>/stack.env'`, the only line on stdout, for `eval "$(cargo xtask stack env)"`.
fn print_env_line(dir: &Path) {
    let file = dir.join(STACK_ENV_FILE).display().to_string();
    println!(". '{}'", file.replace('\'', r"'\''"));
}

/// Removes `dir` if it holds nothing but what a stack leaves there; refuses anything else.
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
                "{} holds {name:?}, which a stack does not write; not removing it",
                dir.display()
            );
        }
    }
    fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", dir.display()))
}
