use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::kubernetes::{self, KubeCluster};
use crate::node::{self, NodeInfo};
use crate::probe::Probe;
use crate::process::{Launcher, ManagedProcess, Watchdog};
use crate::state::{STATE_FILE, State};
use crate::{
    ENV_TESTBED_DIR, Error, KUBERNETES_VERSION, KubeBinaries, Result, Secret, ensure_kube_binaries,
    ensure_node_binaries, random_hex,
};

pub use crate::process::Mode;

/// How long stopping waits for a process after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to start a test bed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory (must be empty or absent); `None` makes a temporary one that is deleted
    /// when the test bed stops.
    pub state_dir: Option<PathBuf>,
    /// Detached (outlives the caller) or attached (ends with an owner pid).
    pub mode: Mode,
    /// How long to wait for etcd and kube-apiserver to become ready, together.
    pub ready_timeout: Duration,
    /// The binaries to run; `None` uses (and if needed builds) the cached ones.
    pub binaries: Option<KubeBinaries>,
    /// Also run a node ([`crate::node`]): containerd, kubelet, controller manager, scheduler and
    /// kube-proxy, so Pods run. Needs root; changes the machine until the test bed stops.
    pub node: bool,
    /// Run kube-apiserver with an audit log ([`kubernetes::audit_policy`], JSON lines written
    /// before each answer) at [`Testbed::audit_log_path`].
    pub audit_log: bool,
}

impl Default for Options {
    /// A temporary test bed attached to this process.
    fn default() -> Self {
        Self {
            state_dir: None,
            mode: Mode::attached_to_this_process(),
            ready_timeout: Duration::from_secs(120),
            binaries: None,
            node: false,
            audit_log: false,
        }
    }
}

impl Options {
    /// A detached test bed in `dir`, as `cargo xtask testbed up` starts it.
    pub fn detached(dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: Some(dir.into()),
            mode: Mode::Detached,
            ..Self::default()
        }
    }
}

/// A running test bed: today Kubernetes (etcd and kube-apiserver).
///
/// A test bed this value started in attached mode is stopped when the value is dropped; one that
/// was detached, or opened from a state directory, is left running.
#[derive(Debug)]
pub struct Testbed {
    state_dir: PathBuf,
    temporary: bool,
    mode: Mode,
    owned: bool,
    kube: KubeCluster,
    processes: Vec<ManagedProcess>,
    watchdog: Option<Watchdog>,
    node: Option<NodeInfo>,
    stopped: bool,
}

impl Testbed {
    /// Builds the binaries if needed, starts everything and waits until it is ready.
    pub fn start(options: Options) -> Result<Self> {
        let (binaries, node_parts) = if options.node {
            node::host_capabilities().map_err(Error::node)?;
            let (kube, node_binaries) = ensure_node_binaries()?;
            let packages = node::ensure_node_packages().map_err(|e| Error::node(e.into()))?;
            (
                options.binaries.unwrap_or(kube),
                Some((node_binaries, packages)),
            )
        } else {
            let binaries = match options.binaries {
                Some(binaries) => binaries,
                None => ensure_kube_binaries()?,
            };
            (binaries, None)
        };
        let (state_dir, temporary) = match options.state_dir {
            Some(dir) => (prepare_state_dir(dir)?, false),
            None => (create_temp_dir()?, true),
        };
        let started = Instant::now();
        let mut launcher = Launcher::new(&state_dir, options.mode, temporary)?;
        let mut node_info = None;
        let result = (|| {
            if let Some((_, packages)) = &node_parts {
                let owner = match options.mode {
                    Mode::Detached => None,
                    Mode::Attached { owner } => Some(owner),
                };
                node::prepare_host(&state_dir, packages, owner).map_err(Error::node)?;
            }
            let kube = kubernetes::start(
                &mut launcher,
                &state_dir,
                &binaries,
                options.ready_timeout,
                node_parts.is_some(),
                options.audit_log,
            )?;
            if let Some((node_binaries, packages)) = &node_parts {
                let port = kube
                    .server_url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_default();
                node::guard(packages, &[port]).map_err(Error::node)?;
                node_info = Some(
                    node::start(
                        &mut launcher,
                        &state_dir,
                        &kube,
                        node_binaries,
                        packages,
                        options.ready_timeout,
                    )
                    .map_err(Error::node)?,
                );
            }
            Ok(kube)
        })();
        let kube = match result {
            Ok(kube) => kube,
            Err(err) => {
                launcher.abort();
                let _ = node::teardown(&state_dir);
                // A temporary directory has nothing worth keeping; a given one keeps the logs.
                if temporary {
                    let _ = fs::remove_dir_all(&state_dir);
                }
                return Err(err);
            }
        };
        let (processes, watchdog) = launcher.into_parts();
        let mut testbed = Self {
            state_dir,
            temporary,
            mode: options.mode,
            owned: true,
            kube,
            processes,
            watchdog,
            node: node_info,
            stopped: false,
        };
        if let Err(err) = testbed.write_files() {
            let _ = testbed.stop();
            return Err(err);
        }
        eprintln!(
            "Started Kubernetes v{KUBERNETES_VERSION} at {} in {:.1?} (state in {})",
            testbed.kube.server_url,
            started.elapsed(),
            testbed.state_dir.display()
        );
        Ok(testbed)
    }

    /// A handle on the test bed described by `<dir>/state.json`, whether or not it still runs
    /// (ask [`Testbed::is_healthy`]). Dropping it leaves the test bed alone.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let state_dir = dir.as_ref().to_path_buf();
        let state = State::read(&state_dir)?;
        let node = node::node_dir(&state_dir)
            .join("host.json")
            .exists()
            .then(node::ensure_node_packages)
            .and_then(Result::ok)
            .map(|packages| NodeInfo::of(&state_dir, packages));
        let read = |path: &Path| {
            fs::read_to_string(path).map_err(|source| Error::ReadFile {
                path: path.to_path_buf(),
                source,
            })
        };
        let kube = KubeCluster {
            server_url: state.server_url,
            etcd_url: state.etcd_url,
            kubeconfig: state.kubeconfig,
            ca_pem: read(&state.ca_file)?,
            ca_file: state.ca_file,
            admin_token: Secret::new(read(&state.admin_token_file)?.trim()),
            admin_token_file: state.admin_token_file,
            audit_log: state.audit_log,
        };
        Ok(Self {
            state_dir,
            temporary: state.temporary,
            mode: match state.owner {
                Some(owner) => Mode::Attached { owner },
                None => Mode::Detached,
            },
            owned: false,
            kube,
            processes: state
                .processes
                .iter()
                .map(ManagedProcess::from_record)
                .collect(),
            watchdog: None,
            node,
            stopped: false,
        })
    }

    /// The running test bed named by `$FOUNDRY_TESTBED_DIR`, else the one in `default_dir`, if
    /// either answers `/readyz`.
    pub fn find_running(default_dir: &Path) -> Option<Self> {
        let dir = std::env::var_os(ENV_TESTBED_DIR)
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| default_dir.to_path_buf(), PathBuf::from);
        Self::open(dir).ok().filter(Self::is_healthy)
    }

    /// Whether the apiserver answers `/readyz` now.
    pub fn is_healthy(&self) -> bool {
        Probe::new(
            format!("{}/readyz", self.kube.server_url),
            Some(&self.kube.ca_pem),
            Some(&self.kube.admin_token),
        )
        .is_ok_and(|probe| probe.check().is_ok())
    }

    /// The admin kubeconfig (token of a `system:masters` member, CA embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kube.kubeconfig
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.kube.server_url
    }

    /// The admin bearer token. Pass it on; do not log it.
    pub fn admin_token(&self) -> &Secret {
        &self.kube.admin_token
    }

    /// The CA certificate (PEM) that signed the apiserver's serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.kube.ca_pem
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> &Path {
        &self.kube.ca_file
    }

    /// The apiserver's audit log, when the test bed was started with [`Options::audit_log`]: one
    /// JSON object (an `audit.k8s.io/v1` Event) per line and request, written before the
    /// request is answered.
    pub fn audit_log_path(&self) -> Option<&Path> {
        self.kube.audit_log.as_deref()
    }

    /// The state directory (kubeconfig, testbed.env, state.json, logs/, pki/).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `<state dir>/testbed.env`, a file of `export` lines for a shell.
    pub fn env_file(&self) -> PathBuf {
        self.state_dir.join("testbed.env")
    }

    /// Detached or attached, and to whom.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The node, when the test bed runs one.
    pub fn node(&self) -> Option<&NodeInfo> {
        self.node.as_ref()
    }

    /// The processes, in start order.
    pub fn processes(&self) -> &[ManagedProcess] {
        &self.processes
    }

    /// The processes, in start order, to ask whether they still run.
    pub fn processes_mut(&mut self) -> &mut [ManagedProcess] {
        &mut self.processes
    }

    /// Restarts the process `name` (`etcd` or `kube-apiserver`): SIGTERM, `down` of outage, the
    /// same command again (its log appended to, its data kept), watched like the others; then
    /// waits until the apiserver answers `/readyz` again. Only for a test bed this value started.
    pub fn restart(&mut self, name: &str, down: Duration, timeout: Duration) -> Result<()> {
        let Some(process) = self.processes.iter_mut().find(|p| p.name() == name) else {
            return Err(Error::NoProcess {
                name: name.to_owned(),
            });
        };
        process.respawn(STOP_GRACE, down)?;
        if let Some(watchdog) = &self.watchdog {
            watchdog.watch(process.pid())?;
        }
        self.write_files()?;
        let probe = Probe::new(
            format!("{}/readyz", self.kube.server_url),
            Some(&self.kube.ca_pem),
            Some(&self.kube.admin_token),
        )?;
        let apiserver = self
            .processes
            .iter_mut()
            .find(|p| p.name() == "kube-apiserver")
            .ok_or_else(|| Error::NoProcess {
                name: "kube-apiserver".to_owned(),
            })?;
        probe.wait_until_ready(apiserver, timeout)
    }

    /// Writes `<state dir>/kubeconfigs/<name>.kubeconfig` that authenticates with `token` (a
    /// ServiceAccount token, say) and returns its path. The user in the file is `name`.
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        let dir = self.state_dir.join("kubeconfigs");
        fs::create_dir_all(&dir).map_err(|source| Error::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let file_name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{file_name}.kubeconfig"));
        kubernetes::write_private(
            &path,
            &kubernetes::render_kubeconfig(
                &self.kube.server_url,
                &self.kube.ca_pem,
                name,
                &Secret::new(token),
            ),
        )?;
        Ok(path)
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period), newest first. A temporary
    /// state directory is deleted; a given one is kept (its logs may matter).
    pub fn stop(&mut self) -> Result<()> {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        let mut first_error = None;
        for process in self.processes.iter_mut().rev() {
            if let Err(err) = process.terminate(STOP_GRACE) {
                first_error.get_or_insert(err);
            }
        }
        // The node's containers, mounts, links, iptables rules and sysctls (a no-op without one).
        if let Err(err) = node::teardown(&self.state_dir) {
            first_error.get_or_insert(Error::node(err));
        }
        self.stopped = true;
        if let Some(err) = first_error {
            return Err(err);
        }
        if self.temporary {
            fs::remove_dir_all(&self.state_dir).map_err(|source| Error::RemoveDir {
                path: self.state_dir.clone(),
                source,
            })?;
        } else {
            let _ = fs::remove_file(self.state_dir.join(STATE_FILE));
        }
        Ok(())
    }

    fn write_files(&self) -> Result<()> {
        let env = format!(
            "# The local test bed; load it with: . {env_file}\nexport KUBECONFIG={kubeconfig}\nexport {ENV_TESTBED_DIR}={dir}\nexport FOUNDRY_TESTBED_KUBE_SERVER={server}\nexport FOUNDRY_TESTBED_CA_FILE={ca}\n",
            env_file = shell_quote(&self.env_file().display().to_string()),
            kubeconfig = shell_quote(&self.kube.kubeconfig.display().to_string()),
            dir = shell_quote(&self.state_dir.display().to_string()),
            server = shell_quote(&self.kube.server_url),
            ca = shell_quote(&self.kube.ca_file.display().to_string()),
        );
        let env_file = self.env_file();
        fs::write(&env_file, env).map_err(|source| Error::WriteFile {
            path: env_file,
            source,
        })?;
        State {
            kubernetes_version: KUBERNETES_VERSION.to_owned(),
            owner: match self.mode {
                Mode::Detached => None,
                Mode::Attached { owner } => Some(owner),
            },
            temporary: self.temporary,
            server_url: self.kube.server_url.clone(),
            etcd_url: self.kube.etcd_url.clone(),
            kubeconfig: self.kube.kubeconfig.clone(),
            ca_file: self.kube.ca_file.clone(),
            admin_token_file: self.kube.admin_token_file.clone(),
            audit_log: self.kube.audit_log.clone(),
            processes: self.processes.iter().map(ManagedProcess::record).collect(),
        }
        .write(&self.state_dir)
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.owned && !self.stopped && matches!(self.mode, Mode::Attached { .. }) {
            let _ = self.stop();
        }
    }
}

/// Creates `dir` if needed (mode 0700) and refuses one that holds anything.
fn prepare_state_dir(dir: PathBuf) -> Result<PathBuf> {
    fs::create_dir_all(&dir).map_err(|source| Error::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let mut entries = fs::read_dir(&dir).map_err(|source| Error::ReadFile {
        path: dir.clone(),
        source,
    })?;
    if entries.next().is_some() {
        return Err(Error::StateDirNotEmpty { path: dir });
    }
    private_dir(&dir)?;
    // Absolute paths go into the kubeconfig, the env file and process arguments.
    fs::canonicalize(&dir).map_err(|source| Error::ReadFile { path: dir, source })
}

fn create_temp_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let dir = base.join(format!("foundry-testbed-{}", random_hex(6)));
        match fs::create_dir(&dir) {
            Ok(()) => {
                private_dir(&dir)?;
                return Ok(dir);
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(Error::CreateDir { path: dir, source }),
        }
    }
}

fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Single-quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
