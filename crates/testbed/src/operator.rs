//! The operator as a process: the `foundry-gateway-operator` binary of this workspace, run against
//! the test bed's Kubernetes with exactly the RBAC the project ships (`config/rbac/`), through a
//! token of its ServiceAccount, never with the admin kubeconfig.
//!
//! ```no_run
//! # fn main() -> Result<(), foundry_gateway_testbed::stack_error::StackError> {
//! use foundry_gateway_testbed::operator::{self, Operator, OperatorOptions};
//! use foundry_gateway_testbed::{Options, Testbed};
//! let testbed = Testbed::start(Options::default())?;
//! operator::install_crds(&testbed)?;
//! operator::install_rbac(&testbed)?;
//! let kubeconfig = operator::operator_kubeconfig(&testbed)?;
//! let dir = std::env::temp_dir().join("operator-example");
//! let mut running = Operator::start(OperatorOptions::new(&dir, kubeconfig))?;
//! assert!(running.metrics()?.contains("foundry_gateway_"));
//! running.kill()?; // a crash: no cleanup
//! running.restart()?; // the same flags, a new process
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::cargo_bin::cargo_binary;
use crate::http::HttpClient;
use crate::install::output_of;
use crate::part::PartProcess;
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Mode, ProcessSpec};
use crate::stack::Stack;
use crate::stack_error::{StackError, StackResult};
use crate::{LogTail, Testbed, paths, random_hex};

/// Names the operator binary to run instead of the one cargo builds.
pub const ENV_OPERATOR_BIN: &str = "FOUNDRY_OPERATOR_BIN";
/// The cargo package of the operator.
pub const OPERATOR_PACKAGE: &str = "foundry-gateway-operator";
/// The operator's binary target.
pub const OPERATOR_BIN: &str = "foundry-gateway-operator";
/// The namespace `config/rbac/service_account.yaml` creates; it also holds the leader Lease.
pub const OPERATOR_NAMESPACE: &str = "foundry-system";
/// The operator's ServiceAccount in [`OPERATOR_NAMESPACE`].
pub const OPERATOR_SERVICE_ACCOUNT: &str = "foundry-gateway-operator";
/// Field manager of what the test bed applies (the same as the test harness's).
pub const FIELD_MANAGER: &str = "foundry-gateway-tests";
/// Lifetime of the ServiceAccount token in [`operator_kubeconfig`].
pub const TOKEN_DURATION: &str = "24h";

/// How long an HTTP request to the admin server may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The `foundry-gateway-operator` binary: `$FOUNDRY_OPERATOR_BIN`, else the one cargo built next
/// to the running executable, rebuilt when missing or older than its sources (see
/// [`cargo_binary`]).
pub fn operator_binary() -> StackResult<PathBuf> {
    cargo_binary(OPERATOR_PACKAGE, OPERATOR_BIN, ENV_OPERATOR_BIN)
}

/// Runs `kubectl --kubeconfig <kubeconfig> <args>` and returns its trimmed stdout.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> StackResult<String> {
    output_of(kubectl_command(kubeconfig).args(args))
}

/// `kubectl auth can-i <args>` as the user of `kubeconfig`: whether it may.
pub fn can_i(kubeconfig: &Path, args: &[&str]) -> StackResult<bool> {
    let mut command = kubectl_command(kubeconfig);
    command.args(["auth", "can-i"]).args(args);
    let output = command.output().map_err(|source| StackError::Tool {
        command: format!("kubectl auth can-i {}", args.join(" ")),
        message: source.to_string(),
    })?;
    // Exit status 0 says yes, 1 says no; anything else is a failure.
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match (answer.as_str(), output.status.code()) {
        ("yes", Some(0)) => Ok(true),
        ("no", Some(1)) => Ok(false),
        _ => Err(StackError::Tool {
            command: format!("kubectl auth can-i {}", args.join(" ")),
            message: format!(
                "{}: {answer} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }),
    }
}

fn kubectl_command(kubeconfig: &Path) -> Command {
    let mut command = Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .current_dir(paths::repo_root());
    command
}

/// Server-side applies `config/crd/*.yaml` with the admin kubeconfig and waits until every CRD
/// is Established. Idempotent.
pub fn install_crds(testbed: &Testbed) -> StackResult<()> {
    let dir = paths::repo_root().join("config").join("crd");
    let files = yaml_files(&dir)?;
    apply(testbed.kubeconfig_path(), &files)?;
    let mut args: Vec<String> = vec![
        "wait".into(),
        "--for=condition=Established".into(),
        "--timeout=60s".into(),
    ];
    for file in &files {
        args.extend(["-f".into(), file.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    kubectl(testbed.kubeconfig_path(), &args).map(drop)
}

/// Server-side applies the operator's shipped RBAC, `config/rbac/*.yaml` (the namespace and
/// ServiceAccount, the ClusterRole, the leader-election Role and their bindings), with the admin
/// kubeconfig. Idempotent; files that create a Namespace go first.
pub fn install_rbac(testbed: &Testbed) -> StackResult<()> {
    let dir = paths::repo_root().join("config").join("rbac");
    let mut files = yaml_files(&dir)?;
    // Stable: within each group the files stay sorted by name.
    files.sort_by_key(|file| {
        !fs::read_to_string(file).is_ok_and(|text| {
            text.lines()
                .any(|line| line.trim_end() == "kind: Namespace")
        })
    });
    apply(testbed.kubeconfig_path(), &files)
}

/// A kubeconfig (below the test bed's state directory, 0600) that authenticates as the
/// operator's ServiceAccount `foundry-system/foundry-gateway-operator` with a fresh token of
/// [`TOKEN_DURATION`], so the operator has exactly the shipped RBAC. Needs [`install_rbac`]
/// first. Each call writes a new file, so concurrent callers never share one.
pub fn operator_kubeconfig(testbed: &Testbed) -> StackResult<PathBuf> {
    let token = kubectl(
        testbed.kubeconfig_path(),
        &[
            "create",
            "token",
            OPERATOR_SERVICE_ACCOUNT,
            "--namespace",
            OPERATOR_NAMESPACE,
            &format!("--duration={TOKEN_DURATION}"),
        ],
    )?;
    let name = format!("{OPERATOR_SERVICE_ACCOUNT}-{}", random_hex(4));
    Ok(testbed.kubeconfig_for_token(&name, &token)?)
}

/// A kubeconfig for an operator confined to `namespace`, as the chart's namespaced install runs
/// it: a ServiceAccount of that namespace bound by a Role there holding exactly the shipped rules
/// (the ClusterRole's and the leader-election Role's, read back from the apiserver after
/// [`install_rbac`]), and no cluster-wide right at all. Its Lease and digest-key Secret then
/// live in `namespace` too (pass it as the lease namespace).
pub fn namespaced_operator_kubeconfig(testbed: &Testbed, namespace: &str) -> StackResult<PathBuf> {
    install_rbac(testbed)?;
    let admin = testbed.kubeconfig_path();
    let rules = |args: &[&str]| -> StackResult<Vec<serde_json::Value>> {
        let text = kubectl(admin, args)?;
        let object: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StackError::Tool {
                command: format!("kubectl {}", args.join(" ")),
                message: format!("printed no JSON object: {e}"),
            })?;
        Ok(object["rules"].as_array().cloned().unwrap_or_default())
    };
    let mut all = rules(&["get", "clusterrole", OPERATOR_SERVICE_ACCOUNT, "-o", "json"])?;
    all.extend(rules(&[
        "get",
        "role",
        &format!("{OPERATOR_SERVICE_ACCOUNT}-leader-election"),
        "--namespace",
        OPERATOR_NAMESPACE,
        "-o",
        "json",
    ])?);
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace},
             "rules": all},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": OPERATOR_SERVICE_ACCOUNT, "namespace": namespace},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": OPERATOR_SERVICE_ACCOUNT},
             "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT,
                           "namespace": namespace}]},
        ],
    });
    let dir = testbed.state_dir().join("rbac");
    fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
    let file = dir.join(format!("namespaced-{namespace}.json"));
    fs::write(&file, list.to_string()).map_err(|source| StackError::write(&file, source))?;
    apply(admin, &[file])?;
    let token = kubectl(
        admin,
        &[
            "create",
            "token",
            OPERATOR_SERVICE_ACCOUNT,
            "--namespace",
            namespace,
            &format!("--duration={TOKEN_DURATION}"),
        ],
    )?;
    let name = format!("{OPERATOR_SERVICE_ACCOUNT}-{namespace}-{}", random_hex(4));
    Ok(testbed.kubeconfig_for_token(&name, &token)?)
}

fn yaml_files(dir: &Path) -> StackResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|source| StackError::read(dir, source))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// `kubectl apply --server-side` of `files` in order, tried three times (two test processes that
/// create the same object at once may see a conflict).
fn apply(kubeconfig: &Path, files: &[PathBuf]) -> StackResult<()> {
    let mut args: Vec<String> = vec![
        "apply".into(),
        "--server-side".into(),
        "--force-conflicts".into(),
        format!("--field-manager={FIELD_MANAGER}"),
    ];
    for file in files {
        args.extend(["-f".into(), file.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut attempt = 1;
    loop {
        match kubectl(kubeconfig, &args) {
            Ok(_) => return Ok(()),
            Err(err) if attempt >= 3 => return Err(err),
            Err(_) => {
                attempt += 1;
                thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// The operator's log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn flag_value(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Json => "json",
        }
    }
}

/// How to start the operator.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Its own directory (logs); created if missing.
    pub dir: PathBuf,
    /// Detached or attached.
    pub mode: Mode,
    /// The binary; `None` finds (or builds) the workspace's `foundry-gateway-operator`.
    pub binary: Option<PathBuf>,
    /// The kubeconfig it runs with (`KUBECONFIG`): normally [`operator_kubeconfig`].
    pub kubeconfig: PathBuf,
    /// `--extra-ca-file`: extra roots for Foundry, gateways and token endpoints (the stack's CA).
    pub extra_ca_file: Option<PathBuf>,
    /// `--watch-namespace`; `None` watches all namespaces.
    pub watch_namespace: Option<String>,
    /// `--resync` (default 10s).
    pub resync: Duration,
    /// `--leader-elect` (default true, as shipped).
    pub leader_elect: bool,
    /// `--lease-namespace` (default `foundry-system`, where the shipped Role allows Leases).
    pub lease_namespace: String,
    /// `--lease-name`; `None` picks a name of its own for this operator (kept across restarts),
    /// so operators of different tests never wait for each other. Give two operators the same
    /// name to test leader election between them.
    pub lease_name: Option<String>,
    /// `--identity`; `None` picks one (kept across restarts, so a restarted leader takes its
    /// Lease back at once).
    pub identity: Option<String>,
    /// Hosts allowed to receive the project identity's tokens (`--allowed-authority-hosts`,
    /// `--allowed-arm-hosts`, `--allowed-foundry-hosts`). The stack serves them all on loopback,
    /// so the default is `127.0.0.1` and `localhost`; empty keeps the operator's own defaults
    /// (Azure's public cloud).
    pub allowed_hosts: Vec<String>,
    /// More flags, e.g. `--secret-grace 2s`.
    pub extra_args: Vec<String>,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `RUST_LOG`; `None` passes on this process's `RUST_LOG`, else `info`.
    pub rust_log: Option<String>,
    /// How long the start (and each restart) may take to answer `/readyz`.
    pub ready_timeout: Duration,
}

impl OperatorOptions {
    /// An operator with `kubeconfig`, attached to this process, logging to `dir`.
    pub fn new(dir: impl Into<PathBuf>, kubeconfig: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            mode: Mode::attached_to_this_process(),
            binary: None,
            kubeconfig: kubeconfig.into(),
            extra_ca_file: None,
            watch_namespace: None,
            resync: Duration::from_secs(10),
            leader_elect: true,
            lease_namespace: OPERATOR_NAMESPACE.to_owned(),
            lease_name: None,
            identity: None,
            allowed_hosts: vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            extra_args: Vec::new(),
            log_format: LogFormat::Plain,
            rust_log: None,
            ready_timeout: Duration::from_secs(60),
        }
    }

    /// Options for an operator against `stack`'s Kubernetes: installs the CRDs and the shipped
    /// RBAC, makes the ServiceAccount kubeconfig and trusts the stack's CA. Logs go to `dir`.
    pub fn for_stack(stack: &Stack, dir: impl Into<PathBuf>) -> StackResult<Self> {
        let testbed = stack.kube.as_ref().ok_or(StackError::NotRunning {
            what: "the stack's Kubernetes (start the stack with `kubernetes: true`)",
        })?;
        install_crds(testbed)?;
        install_rbac(testbed)?;
        let mut options = Self::new(dir, operator_kubeconfig(testbed)?);
        options.extra_ca_file = Some(stack.ca_file().to_path_buf());
        Ok(options)
    }
}

/// The operator process. Start it with [`Operator::start`].
#[derive(Debug)]
pub struct Operator;

impl Operator {
    /// Finds or builds the binary, starts it on a free loopback admin port and waits until
    /// `/readyz` answers 200.
    pub fn start(options: OperatorOptions) -> StackResult<RunningOperator> {
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => operator_binary()?,
        };
        RunningOperator::start(&binary, options)
    }
}

/// A running operator. Attached, it stops when dropped.
#[derive(Debug)]
pub struct RunningOperator {
    /// `http://127.0.0.1:PORT`: `/metrics`, `/healthz`, `/readyz`.
    pub admin_url: String,
    /// Its identity in the Lease.
    pub identity: String,
    /// The Lease it competes for (when leader election is on).
    pub lease_name: String,
    dir: PathBuf,
    args: Vec<OsString>,
    previous_logs: Vec<PathBuf>,
    ready_timeout: Duration,
    http: HttpClient,
    part: PartProcess,
}

impl RunningOperator {
    fn start(binary: &Path, options: OperatorOptions) -> StackResult<Self> {
        let dir = &options.dir;
        fs::create_dir_all(dir).map_err(|source| StackError::create_dir(dir, source))?;
        let dir = fs::canonicalize(dir).map_err(|source| StackError::read(dir, source))?;
        let port = free_loopback_ports(1)?
            .first()
            .copied()
            .ok_or(StackError::NotRunning {
                what: "a free port",
            })?;
        let admin_url = format!("http://127.0.0.1:{port}");
        let suffix = random_hex(4);
        let identity = options
            .identity
            .clone()
            .unwrap_or_else(|| format!("testbed-operator-{suffix}"));
        let lease_name = options
            .lease_name
            .clone()
            .unwrap_or_else(|| format!("foundry-gateway-operator-{suffix}"));
        let mut args: Vec<OsString> = vec![
            "--admin-addr".into(),
            format!("127.0.0.1:{port}").into(),
            "--log-format".into(),
            options.log_format.flag_value().into(),
            "--leader-elect".into(),
            options.leader_elect.to_string().into(),
            "--lease-namespace".into(),
            options.lease_namespace.clone().into(),
            "--lease-name".into(),
            lease_name.clone().into(),
            "--identity".into(),
            identity.clone().into(),
            "--resync".into(),
            duration_flag(options.resync).into(),
        ];
        if let Some(namespace) = &options.watch_namespace {
            args.extend(["--watch-namespace".into(), namespace.into()]);
        }
        if let Some(file) = &options.extra_ca_file {
            args.extend(["--extra-ca-file".into(), file.clone().into_os_string()]);
        }
        if !options.allowed_hosts.is_empty() {
            let hosts = options.allowed_hosts.join(",");
            for flag in [
                "--allowed-authority-hosts",
                "--allowed-arm-hosts",
                "--allowed-foundry-hosts",
            ] {
                args.extend([flag.into(), hosts.clone().into()]);
            }
        }
        args.extend(options.extra_args.iter().map(OsString::from));
        let spec = ProcessSpec {
            name: OPERATOR_BIN.to_owned(),
            program: binary.to_path_buf(),
            args: args.clone(),
            log: dir.join("operator.log"),
            cwd: dir.clone(),
            env: child_env(&options),
        };
        let started = Instant::now();
        let part = PartProcess::start(spec, options.mode, &dir, None)?;
        let mut operator = Self {
            admin_url,
            identity,
            lease_name,
            dir,
            args,
            previous_logs: Vec::new(),
            ready_timeout: options.ready_timeout,
            http: HttpClient::plain(ADMIN_TIMEOUT),
            part,
        };
        if let Err(err) = operator.wait_ready() {
            // A detached process would outlive this failed start.
            let _ = operator.part.shutdown();
            return Err(err);
        }
        eprintln!(
            "Started {OPERATOR_BIN} (pid {}) with admin server {} in {:.1?}",
            operator.pid().unwrap_or_default(),
            operator.admin_url,
            started.elapsed()
        );
        Ok(operator)
    }

    fn wait_ready(&mut self) -> StackResult<()> {
        let probe = Probe::new(format!("{}/readyz", self.admin_url), None, None)?;
        self.part.wait_ready(&probe, self.ready_timeout)
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The flags it runs with (the same for every restart).
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// The log of the current (or last) run.
    pub fn log_path(&self) -> &Path {
        self.part.log()
    }

    /// The logs of every run, oldest first: `operator.1.log`, `operator.2.log`, …, then
    /// `operator.log` of the current run.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        let mut paths = self.previous_logs.clone();
        paths.push(self.log_path().to_path_buf());
        paths
    }

    /// The text of every run's log, oldest first (what a test greps for leaked secrets).
    pub fn log_text(&self) -> String {
        self.log_paths()
            .iter()
            .filter_map(|path| fs::read(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect::<Vec<_>>()
            .join("")
    }

    /// Waits until the current run's log holds `needle`; fails with the log's tail.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> StackResult<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if fs::read(self.log_path())
                .is_ok_and(|bytes| String::from_utf8_lossy(&bytes).contains(needle))
            {
                return Ok(());
            }
            if Instant::now() >= deadline || !self.is_running() {
                return Err(StackError::WaitTimedOut {
                    what: format!("{OPERATOR_BIN} logging {needle:?}"),
                    timeout,
                    log: Box::new(LogTail {
                        path: self.log_path().to_path_buf(),
                        tail: crate::install::tail(self.log_path(), 30),
                    }),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /metrics`: the Prometheus text.
    pub fn metrics(&self) -> StackResult<String> {
        let url = format!("{}/metrics", self.admin_url);
        let reply = self.http.get(&url, &[])?;
        if reply.is_success() {
            Ok(reply.text)
        } else {
            Err(StackError::Status {
                method: "GET",
                url,
                status: reply.status,
                body: reply.text,
            })
        }
    }

    /// The value of one series of `/metrics`, named exactly as exposed, labels included
    /// (`foundry_gateway_leader`, `foundry_gateway_reconciles_total{kind="PromptAgent"}`);
    /// `None` when it is not exposed (yet).
    pub fn metric(&self, series: &str) -> StackResult<Option<f64>> {
        Ok(metric_value(&self.metrics()?, series))
    }

    /// Whether it holds its Lease now (`foundry_gateway_leader 1`).
    pub fn is_leader(&self) -> StackResult<bool> {
        Ok(self.metric("foundry_gateway_leader")? == Some(1.0))
    }

    /// Waits until it holds its Lease (a restarted leader with the same identity takes it back at
    /// once; a new one waits until the old holder's Lease expires, 15 s).
    pub fn wait_until_leader(&mut self, timeout: Duration) -> StackResult<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_leader().unwrap_or(false) {
                return Ok(());
            }
            if Instant::now() >= deadline || !self.is_running() {
                return Err(StackError::WaitTimedOut {
                    what: format!("{OPERATOR_BIN} taking the Lease {}", self.lease_name),
                    timeout,
                    log: Box::new(LogTail {
                        path: self.log_path().to_path_buf(),
                        tail: crate::install::tail(self.log_path(), 30),
                    }),
                });
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.part.process().map(crate::process::ManagedProcess::pid)
    }

    /// Whether the process runs now.
    pub fn is_running(&mut self) -> bool {
        self.part.is_running()
    }

    /// SIGKILL: a crash, no cleanup (the Lease stays held, nothing is flushed). Waits until the
    /// process is gone.
    pub fn kill(&mut self) -> StackResult<()> {
        self.part.kill()
    }

    /// SIGTERM, and waits until it exits (SIGKILL after 10 s).
    pub fn stop(&mut self) -> StackResult<()> {
        self.part.stop()
    }

    /// Stops it if it runs (SIGTERM), then starts a new process with the same flags and waits for
    /// `/readyz`. The previous run's log is kept (see [`RunningOperator::log_paths`]).
    pub fn restart(&mut self) -> StackResult<()> {
        let previous = self
            .dir
            .join(format!("operator.{}.log", self.previous_logs.len() + 1));
        self.part.restart_keeping_log_as(&previous)?;
        self.previous_logs.push(previous);
        let started = Instant::now();
        self.wait_ready()?;
        eprintln!(
            "Restarted {OPERATOR_BIN} (pid {}) in {:.1?}",
            self.pid().unwrap_or_default(),
            started.elapsed()
        );
        Ok(())
    }
}

/// The environment of the operator: the kubeconfig, the log filter and no colours, without whatever the caller's
/// environment would add to its flags (`FOUNDRY_OPERATOR_*`, `POD_*`) or to its choice of
/// cluster, and with loopback exempt from any proxy.
fn child_env(options: &OperatorOptions) -> Vec<(OsString, Option<OsString>)> {
    let mut env: Vec<(OsString, Option<OsString>)> = std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| {
            name.to_str().is_some_and(|n| {
                n.starts_with("FOUNDRY_OPERATOR_")
                    || matches!(
                        n,
                        "POD_NAME"
                            | "POD_NAMESPACE"
                            | "KUBERNETES_SERVICE_HOST"
                            | "KUBERNETES_SERVICE_PORT"
                    )
            })
        })
        .map(|name| (name, None))
        .collect();
    env.push((
        "KUBECONFIG".into(),
        Some(options.kubeconfig.clone().into_os_string()),
    ));
    let rust_log = options
        .rust_log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_owned());
    env.push(("RUST_LOG".into(), Some(rust_log.into())));
    // Plain lines without colour codes, so a test can grep `key=value`.
    env.push(("NO_COLOR".into(), Some("1".into())));
    for name in ["NO_PROXY", "no_proxy"] {
        let mut value = String::from("127.0.0.1,localhost,::1");
        if let Ok(existing) = std::env::var(name)
            && !existing.is_empty()
        {
            value.push(',');
            value.push_str(&existing);
        }
        env.push((name.into(), Some(value.into())));
    }
    env
}

/// `10s`, `1500ms`: a duration as the operator's flags take it.
fn duration_flag(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis().max(1))
    }
}

/// The value of `series` in a Prometheus text exposition.
fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            // The series must end here: a space, then the value (and maybe a timestamp).
            let value = rest.strip_prefix(' ')?.split_whitespace().next()?;
            value.parse().ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_become_operator_flags() {
        assert_eq!(duration_flag(Duration::from_secs(10)), "10s");
        assert_eq!(duration_flag(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_flag(Duration::from_micros(10)), "1ms");
    }

    #[test]
    fn metric_values_are_read_by_exact_series() {
        let text = "# HELP foundry_gateway_leader 1 while leading\n\
                    # TYPE foundry_gateway_leader gauge\n\
                    foundry_gateway_leader 1\n\
                    foundry_gateway_leader_other 7\n\
                    foundry_gateway_reconciles_total{kind=\"PromptAgent\"} 3\n";
        assert_eq!(metric_value(text, "foundry_gateway_leader"), Some(1.0));
        assert_eq!(
            metric_value(
                text,
                "foundry_gateway_reconciles_total{kind=\"PromptAgent\"}"
            ),
            Some(3.0)
        );
        assert_eq!(metric_value(text, "foundry_gateway_missing"), None);
    }

    #[test]
    fn the_child_gets_the_kubeconfig_and_loses_inherited_operator_settings() {
        let mut options = OperatorOptions::new("operator", "kubeconfig");
        options.rust_log = Some("debug".to_owned());
        let env = child_env(&options);
        let value = |name: &str| {
            env.iter()
                .rev()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(value("KUBECONFIG"), Some("kubeconfig".into()));
        assert_eq!(value("RUST_LOG"), Some("debug".into()));
        assert!(
            value("NO_PROXY")
                .is_some_and(|v| v.to_string_lossy().starts_with("127.0.0.1,localhost"))
        );
    }
}
