//! `cargo xtask demo`: the operator end to end on this machine.
//!
//! 1. the stack (token server, LiteLLM, the Foundry emulator and Kubernetes), detached in
//!    `<repo>/.demo/stack` and reused while every part answers;
//! 2. the CRDs and the shipped RBAC, and the operator, detached, with a token of its ServiceAccount
//!    (exactly the shipped RBAC) and the stack's CA;
//! 3. the objects of `config/samples/`, adapted to the stack (targets, token URL, identities and
//!    Secrets; see [`localize`]), in namespace `foundry-demo`;
//! 4. `kubectl wait --for=condition=Ready` and `kubectl get foundry -o wide`;
//! 5. the official Python SDK (`tests/sdk/flow.py`) asks the agent the operator created.
//!
//! With `--pods`, the operator runs as the chart's pods instead of a process: a test bed with a
//! node (`<repo>/.demo/kube`, containerd and the kubelet on a bridge of its own, root needed),
//! the stack listening on the node's address, our images built from the release binaries and
//! loaded into the node, and `helm install` of `charts/foundry-gateway-operator` with two
//! replicas; the rest is the same. Stopping it puts the machine back as the node found it.
//!
//! Then it waits for Ctrl-C and stops everything (`--keep`: it exits and leaves everything
//! running, for `cargo xtask demo down`; `--no-wait` or `CI=true`: it stops at once).
//!
//! The Secrets hold the stack's throwaway credentials; they go to kubectl on stdin and are never
//! printed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::gateway::GatewayModel;
use foundry_gateway_testbed::http::HttpClient;
use foundry_gateway_testbed::operator::{
    self, OPERATOR_BIN, Operator, OperatorOptions, operator_binary,
};
use foundry_gateway_testbed::process::{ManagedProcess, Mode};
use foundry_gateway_testbed::stack::{
    DATA_PLANE_SCOPE, STACK_ENV_FILE, STACK_STATE_FILE, Stack, StackOptions,
};
use foundry_gateway_testbed::{
    Options as TestbedOptions, ProcessRecord, Secret, Testbed, image, node, python,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::crd::repo_root;

/// Namespace of the demo objects.
pub const NAMESPACE: &str = "foundry-demo";
/// Field manager of what the demo applies.
const FIELD_MANAGER: &str = "foundry-demo";
/// The demo's own record (the operator's process) inside its directory.
const DEMO_STATE_FILE: &str = "demo.json";
/// Subdirectories of the demo's directory.
const STACK_DIR: &str = "stack";
const OPERATOR_DIR: &str = "operator";
/// The test bed with a node of `--pods`.
const KUBE_DIR: &str = "kube";
/// Entries the demo leaves in its directory; a directory holding only these is ours to remove.
const OWN_ENTRIES: &[&str] = &[DEMO_STATE_FILE, STACK_DIR, OPERATOR_DIR, KUBE_DIR];
/// The namespace, release and image tag of `--pods`.
const POD_NAMESPACE: &str = "foundry-system";
const POD_RELEASE: &str = "foundry-gateway-operator";
const POD_TAG: &str = "demo";
/// The ConfigMap with the stack's CA that the chart mounts (`extraCA.name`).
const POD_CA_CONFIGMAP: &str = "stack-ca";
/// The value of a Secret key that no credential of the stack fills (a custom header's value).
const PLAIN_VALUE: &str = "foundry-demo";
/// How long the operator may take to stop (SIGTERM, then SIGKILL).
const OPERATOR_STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Option<DemoCommand>,
    /// State directory of the demo [default: <repo>/.demo]
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Exit once the agent has replied and leave everything running (stop it with
    /// `cargo xtask demo down`).
    #[arg(long, conflicts_with = "no_wait")]
    keep: bool,
    /// Stop everything and exit once the agent has replied (the default when CI=true).
    #[arg(long)]
    no_wait: bool,
    /// Seconds each part of the stack, and then all demo objects, may take to become ready
    /// (installs and builds not counted).
    #[arg(long, default_value_t = 180)]
    timeout: u64,
    /// Run the operator as the Helm chart's pods on a node of the test bed (needs root; the
    /// machine is restored when the demo stops).
    #[arg(long)]
    pods: bool,
}

#[derive(Debug, clap::Subcommand)]
enum DemoCommand {
    /// Stop a demo left running (`--keep`, or a second Ctrl-C) and remove its state directory.
    Down,
}

/// What happens once the agent has replied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Wait for Ctrl-C, then stop everything.
    WaitForCtrlC,
    /// Stop everything now.
    Stop,
    /// Exit, leaving everything running.
    Keep,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    if matches!(args.command, Some(DemoCommand::Down)) {
        return down(&dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let end = if args.keep {
        End::Keep
    } else if args.no_wait || ci {
        End::Stop
    } else {
        End::WaitForCtrlC
    };
    let interrupted = ctrl_c_flag()?;
    let started = Instant::now();
    let result = up_and_ask(&dir, &args, end, &interrupted);
    let took = started.elapsed();
    match (result, end) {
        (Err(err), End::Keep) => {
            eprintln!(
                "The demo failed; what did start keeps running (logs in {}). Stop it with `cargo xtask demo down`.",
                shown(&dir)
            );
            Err(err)
        }
        (Err(err), _) => {
            if interrupted.load(Ordering::SeqCst) {
                stop_all(&dir, true);
            } else {
                stop_all(&dir, false);
                eprintln!(
                    "The demo failed and was stopped; its logs stay in {} until the next run.",
                    shown(&dir)
                );
            }
            Err(err)
        }
        (Ok(()), End::Keep) => {
            eprintln!(
                "Demo ready in {took:.1?}; it keeps running. Stop it with `cargo xtask demo down`."
            );
            Ok(())
        }
        (Ok(()), End::Stop) => {
            eprintln!("Demo ready in {took:.1?}; stopping it (--no-wait or CI).");
            stop_all(&dir, true);
            Ok(())
        }
        (Ok(()), End::WaitForCtrlC) => {
            eprintln!("Demo ready in {took:.1?}. Press Ctrl-C to stop everything.");
            while !interrupted.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(200));
            }
            stop_all(&dir, true);
            Ok(())
        }
    }
}

/// A flag that the first Ctrl-C (or SIGTERM, SIGHUP) raises; a second one exits at once and
/// leaves whatever runs for `cargo xtask demo down`.
fn ctrl_c_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let raised = Arc::clone(&flag);
    ctrlc::set_handler(move || {
        if raised.swap(true, Ordering::SeqCst) {
            eprintln!("\nLeft the demo running; stop it with `cargo xtask demo down`.");
            std::process::exit(130);
        }
        eprintln!("\nStopping the demo (press Ctrl-C again to leave at once)...");
    })
    .context("failed to install the Ctrl-C handler")?;
    Ok(flag)
}

fn interrupted_yet(flag: &AtomicBool) -> anyhow::Result<()> {
    if flag.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Everything up to the agent's reply.
fn up_and_ask(dir: &Path, args: &Args, end: End, interrupted: &AtomicBool) -> anyhow::Result<()> {
    private_dir(dir)?;
    stop_operator(dir);
    let samples = read_samples(&repo_root().join("config").join("samples"))?;
    let models = gateway_models(&samples);

    // The operator's build and the SDK's virtual environment overlap the stack's start.
    let pods = args.pods;
    let build = thread::spawn(move || {
        if pods {
            image::build_release_binaries()
        } else {
            operator_binary()
        }
    });
    let sdk = thread::spawn(python::sdk_python);
    let stack_dir = dir.join(STACK_DIR);
    let timeout = Duration::from_secs(args.timeout);
    if pods {
        start_node_and_stack(dir, &models, timeout)?;
    } else {
        ensure_stack(&stack_dir, &models, timeout)?;
    }
    interrupted_yet(interrupted)?;
    let env = read_env(&stack_dir.join(STACK_ENV_FILE))?;
    let local = Local::from_env(&env, &models)?;
    let state = Stack::read_state(&stack_dir).context("failed to read the stack's state")?;
    let kube_dir = if pods {
        dir.join(KUBE_DIR)
    } else {
        state
            .kube_dir
            .clone()
            .context("the demo's stack has no Kubernetes; run `cargo xtask demo down` and retry")?
    };
    let testbed = Testbed::open(&kube_dir).context("failed to open the demo's Kubernetes")?;
    let admin = testbed.kubeconfig_path().to_path_buf();
    let built = build
        .join()
        .map_err(|_| anyhow::anyhow!("the build thread panicked"))?
        .context("failed to build the operator")?;
    interrupted_yet(interrupted)?;
    let operator_log = if pods {
        install_with_helm(&testbed, &built, &state.ca_file, args.timeout)?;
        None
    } else {
        Some(start_operator_process(
            dir,
            &testbed,
            built,
            &state.ca_file,
        )?)
    };
    let show_logs = || match &operator_log {
        Some(log) => eprintln!("Operator log (tail):\n{}", tail(log, 30)),
        None => {
            let _ = kubectl(
                &admin,
                &["logs", "-n", POD_NAMESPACE, "-l", POD_SELECTOR, "--tail=30"],
            )
            .status();
        }
    };

    eprintln!("==> apply the samples, adapted to the local stack, in namespace {NAMESPACE}");
    let objects = localize(&samples, &local)?;
    let mut manifest = namespace_manifest();
    for object in &objects {
        manifest.push_str("---\n");
        manifest.push_str(&serde_yaml::to_string(object).context("failed to render YAML")?);
    }
    kubectl_apply(&admin, &manifest)?;
    eprintln!("==> wait until every demo object is Ready");
    interrupted_yet(interrupted)?;

    let timeout = format!("--timeout={}s", args.timeout);
    let waited = Instant::now();
    let wait = kubectl(
        &admin,
        &[
            "wait",
            "--for=condition=Ready",
            "foundryprojects,gatewayconnections,promptagents",
            "--all",
            "-n",
            NAMESPACE,
            &timeout,
        ],
    );
    if let Err(err) = to_stderr(wait, "kubectl wait") {
        // What holds them back, without a Secret in sight (only our kinds' status).
        let _ = kubectl(&admin, &["get", "foundry", "-n", NAMESPACE, "-o", "wide"]).status();
        let _ = kubectl(
            &admin,
            &[
                "get",
                "foundry",
                "-n",
                NAMESPACE,
                "-o",
                "custom-columns=OBJECT:.metadata.name,CONDITIONS:.status.conditions[*].message",
            ],
        )
        .status();
        show_logs();
        return Err(err);
    }
    eprintln!("All demo objects Ready in {:.1?}", waited.elapsed());
    println!();
    let table = kubectl(&admin, &["get", "foundry", "-n", NAMESPACE, "-o", "wide"])
        .output()
        .context("failed to run kubectl")?;
    print!("{}", String::from_utf8_lossy(&table.stdout));
    println!();
    interrupted_yet(interrupted)?;

    let agent = asked_agent(&objects).context("no PromptAgent in config/samples")?;
    let status = kubectl(
        &admin,
        &["get", "promptagent", &agent, "-n", NAMESPACE, "-o", "json"],
    )
    .output()
    .context("failed to run kubectl")?;
    let object: Value =
        serde_json::from_slice(&status.stdout).context("kubectl printed no PromptAgent")?;
    let name = object["status"]["agent"]["name"]
        .as_str()
        .context("the PromptAgent has no status.agent.name")?
        .to_owned();
    let model = object["status"]["model"].as_str().unwrap_or_default();
    let expect = model
        .rsplit('/')
        .next()
        .and_then(|m| local.replies.get(m))
        .cloned()
        .context("the agent's model is not one of the gateway's")?;
    let python = sdk
        .join()
        .map_err(|_| anyhow::anyhow!("the SDK install thread panicked"))?
        .context("failed to install the SDK")?;
    eprintln!("==> ask agent {name} with the official Python SDK (tests/sdk/flow.py)");
    let token = mint_token(&state.ca_file, &env)?;
    let reply = ask(
        &python,
        &local.endpoint,
        &name,
        &expect,
        &token,
        &state.ca_file,
    )?;
    println!(
        "Agent {} (version {}) replied: {}",
        reply.agent, reply.version, reply.text
    );
    println!();
    print_usage(
        dir,
        &stack_dir,
        &admin,
        operator_log.as_deref(),
        &agent,
        end,
    );
    Ok(())
}

/// The label of the chart's operator pods.
const POD_SELECTOR: &str = "app.kubernetes.io/name=foundry-gateway-operator";

/// The operator as a process of this machine, with a token of its ServiceAccount (exactly the
/// shipped RBAC) and the stack's CA; returns its log.
fn start_operator_process(
    dir: &Path,
    testbed: &Testbed,
    binary: PathBuf,
    ca_file: &Path,
) -> anyhow::Result<PathBuf> {
    eprintln!("==> install the CRDs and the shipped RBAC");
    operator::install_crds(testbed).context("failed to install the CRDs")?;
    operator::install_rbac(testbed).context("failed to install the operator's RBAC")?;
    let kubeconfig = operator::operator_kubeconfig(testbed)
        .context("failed to make the operator's ServiceAccount kubeconfig")?;
    eprintln!("==> start the operator (ServiceAccount token, shipped RBAC, the stack's CA)");
    let running = Operator::start(OperatorOptions {
        mode: Mode::Detached,
        binary: Some(binary.clone()),
        extra_ca_file: Some(ca_file.to_path_buf()),
        ..OperatorOptions::new(dir.join(OPERATOR_DIR), kubeconfig)
    })
    .context("failed to start the operator")?;
    let record = ProcessRecord {
        name: OPERATOR_BIN.to_owned(),
        pid: running.pid().context("the operator has no pid")?,
        program: binary,
        log: running.log_path().to_path_buf(),
    };
    write_demo_state(dir, &record)?;
    Ok(record.log)
}

/// `--pods`: a fresh test bed with a node in `<dir>/kube`, then the stack (without Kubernetes of
/// its own) on the node's address, where the pods reach it.
fn start_node_and_stack(
    dir: &Path,
    models: &[GatewayModel],
    timeout: Duration,
) -> anyhow::Result<()> {
    stop_all(dir, false);
    for part in [KUBE_DIR, STACK_DIR] {
        let path = dir.join(part);
        if path.exists() {
            fs::remove_dir_all(&path)
                .with_context(|| format!("failed to remove {}", shown(&path)))?;
        }
    }
    node::host_capabilities().context("--pods needs a machine that can run the test bed's node")?;
    eprintln!("==> start Kubernetes with a node (containerd, kubelet, a bridge of its own)");
    Testbed::start(TestbedOptions {
        node: true,
        ready_timeout: timeout,
        ..TestbedOptions::detached(dir.join(KUBE_DIR))
    })
    .context("failed to start the test bed with a node")?;
    eprintln!("==> start the stack on the node's address: token server, LiteLLM, the emulator");
    Stack::start(StackOptions {
        state_dir: Some(dir.join(STACK_DIR)),
        mode: Mode::Detached,
        kubernetes: false,
        models: models.to_vec(),
        ready_timeout: timeout,
        listen: node::NODE_IP,
        ..StackOptions::default()
    })
    .context("failed to start the stack")?;
    Ok(())
}

/// `--pods`: our images into the node, the stack's CA into a ConfigMap, and `helm install` of the
/// chart as the README says, with the hosts of the stack allowed.
fn install_with_helm(
    testbed: &Testbed,
    release_dir: &Path,
    ca_file: &Path,
    timeout: u64,
) -> anyhow::Result<()> {
    eprintln!("==> build the images from the release binaries and load them into the node");
    let node = testbed.node().context("the demo's test bed has no node")?;
    let out = testbed.state_dir().join("images");
    fs::create_dir_all(&out).with_context(|| format!("failed to create {}", shown(&out)))?;
    for (spec, written) in image::write_project_images(release_dir, POD_TAG, &out)
        .context("failed to write the images")?
    {
        node.import_image(&written.archive)
            .with_context(|| format!("failed to load {} into the node", spec.reference()))?;
    }
    let _ = fs::remove_dir_all(&out);
    let admin = testbed.kubeconfig_path();
    to_stderr(
        kubectl(admin, &["create", "namespace", POD_NAMESPACE]),
        "kubectl create namespace",
    )?;
    let from_file = format!("--from-file=ca.crt={}", ca_file.display());
    to_stderr(
        kubectl(
            admin,
            &[
                "create",
                "configmap",
                POD_CA_CONFIGMAP,
                "-n",
                POD_NAMESPACE,
                &from_file,
            ],
        ),
        "kubectl create configmap",
    )?;
    eprintln!("==> helm install {POD_RELEASE} charts/foundry-gateway-operator (two replicas)");
    let host = node::NODE_IP;
    let mut helm = Command::new(crate::chart::helm_binary()?);
    helm.arg("--kubeconfig")
        .arg(admin)
        .args(["install", POD_RELEASE])
        .arg(crate::chart::chart_dir())
        .args(["--namespace", POD_NAMESPACE, "--wait"])
        .arg(format!("--timeout={timeout}s"));
    for value in [
        format!("image.repository={}", image::OPERATOR_IMAGE),
        format!("image.tag={POD_TAG}"),
        "image.pullPolicy=Never".to_owned(),
        "replicas=2".to_owned(),
        format!("extraCA.name={POD_CA_CONFIGMAP}"),
        format!("allowedHosts.authority={{{host}}}"),
        format!("allowedHosts.arm={{{host}}}"),
        format!("allowedHosts.foundry={{{host}}}"),
    ] {
        helm.args(["--set", &value]);
    }
    to_stderr(helm, "helm install")?;
    to_stderr(
        kubectl(admin, &["get", "pods", "-n", POD_NAMESPACE, "-o", "wide"]),
        "kubectl get pods",
    )
}

/// Starts the stack with Kubernetes in `dir`, or reuses the one there when every part answers.
fn ensure_stack(dir: &Path, models: &[GatewayModel], timeout: Duration) -> anyhow::Result<()> {
    if dir.join(STACK_STATE_FILE).exists() {
        let has_kube = Stack::read_state(dir).is_ok_and(|s| s.kube_dir.is_some());
        match Stack::check_detached(dir) {
            Ok(parts) if has_kube && parts.iter().all(|p| p.answer.is_ok()) => {
                eprintln!("==> reuse the running stack ({})", shown(dir));
                return Ok(());
            }
            _ => {
                eprintln!("==> clear a stack that no longer answers in full");
                let _ = Stack::stop_detached(dir);
            }
        }
    }
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", shown(dir)))?;
    }
    eprintln!("==> start the stack: token server, LiteLLM, the Foundry emulator, Kubernetes");
    Stack::start(StackOptions {
        state_dir: Some(dir.to_path_buf()),
        mode: Mode::Detached,
        kubernetes: true,
        models: models.to_vec(),
        ready_timeout: timeout,
        ..StackOptions::default()
    })
    .context("failed to start the stack")?;
    Ok(())
}

/// `cargo xtask demo down`.
fn down(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        eprintln!("No demo in {}", shown(dir));
        return Ok(());
    }
    stop_all(dir, true);
    if dir.exists() {
        bail!("could not remove {}", shown(dir));
    }
    Ok(())
}

/// Stops the operator and the stack; with `remove`, removes the demo's directory when it holds
/// nothing but what the demo writes. Reports problems and goes on.
fn stop_all(dir: &Path, remove: bool) {
    stop_operator(dir);
    let stack_dir = dir.join(STACK_DIR);
    if stack_dir.join(STACK_STATE_FILE).exists() {
        match Stack::stop_detached(&stack_dir) {
            Ok(()) => eprintln!("Stopped the stack"),
            Err(err) => eprintln!("warning: the stack did not stop cleanly: {err}"),
        }
    }
    // `--pods`: the test bed with the node; stopping it restores the machine.
    let kube_dir = dir.join(KUBE_DIR);
    if kube_dir.exists() {
        match Testbed::open(&kube_dir).and_then(|mut testbed| testbed.stop()) {
            Ok(()) => eprintln!("Stopped Kubernetes and the node"),
            Err(err) => eprintln!("warning: the node's test bed did not stop cleanly: {err}"),
        }
    }
    if remove {
        let name = shown(dir);
        match own_dir(dir) {
            Ok(true) => match fs::remove_dir_all(dir) {
                Ok(()) => eprintln!("Removed {name}"),
                Err(err) => eprintln!("warning: could not remove {}: {err}", shown(dir)),
            },
            Ok(false) => eprintln!(
                "warning: {} holds files the demo does not write; not removing it",
                shown(dir)
            ),
            Err(err) => eprintln!("warning: could not read {}: {err}", shown(dir)),
        }
    }
}

/// Stops the operator of an earlier or the current run, if it still runs.
fn stop_operator(dir: &Path) {
    let path = dir.join(DEMO_STATE_FILE);
    let Ok(text) = fs::read_to_string(&path) else {
        return;
    };
    match serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::from_value::<ProcessRecord>(v["operator"].clone()).ok())
    {
        Some(record) => {
            let mut process = ManagedProcess::from_record(&record);
            if process.is_running() {
                match process.terminate(OPERATOR_STOP_GRACE) {
                    Ok(()) => eprintln!("Stopped the operator (pid {})", record.pid),
                    Err(err) => eprintln!("warning: the operator did not stop: {err}"),
                }
            }
        }
        None => eprintln!("warning: {} is unreadable", shown(&path)),
    }
    let _ = fs::remove_file(&path);
}

fn write_demo_state(dir: &Path, operator: &ProcessRecord) -> anyhow::Result<()> {
    let path = dir.join(DEMO_STATE_FILE);
    let text = serde_json::to_string_pretty(&json!({ "operator": operator }))?;
    fs::write(&path, text + "\n").with_context(|| format!("failed to write {}", shown(&path)))
}

/// Whether `dir` holds only what the demo writes.
fn own_dir(dir: &Path) -> std::io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if !OWN_ENTRIES.iter().any(|own| name == *own) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `<repo>/.demo`.
fn default_dir() -> PathBuf {
    root().join(".demo")
}

/// The repository root, without `..` in it.
fn root() -> PathBuf {
    fs::canonicalize(repo_root()).unwrap_or_else(|_| repo_root())
}

fn private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::create_dir_all(dir).with_context(|| format!("failed to create {}", shown(dir)))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("failed to protect {}", shown(dir)))
}

/// `path` relative to the repository root when it is inside it (what a user can paste there).
fn shown(path: &Path) -> String {
    let root = root();
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    path.strip_prefix(&root)
        .map_or(path.clone(), Path::to_path_buf)
        .display()
        .to_string()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("kubectl");
    command.arg("--kubeconfig").arg(kubeconfig).args(args);
    command
}

/// `kubectl apply --server-side -f -` of `manifest`, which goes on stdin (it holds Secrets).
fn kubectl_apply(kubeconfig: &Path, manifest: &str) -> anyhow::Result<()> {
    // Kinds whose CRDs were just installed (`--pods`: by `helm install`) may take a moment to be
    // served by the apiserver; that answer is retried for a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = kubectl_apply_once(kubeconfig, manifest)?;
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !stderr.contains("There can be a delay") || Instant::now() >= deadline {
            eprint!("{stderr}");
            bail!("kubectl apply of the demo objects failed");
        }
        thread::sleep(Duration::from_secs(1));
    }
}

fn kubectl_apply_once(kubeconfig: &Path, manifest: &str) -> anyhow::Result<std::process::Output> {
    let manager = format!("--field-manager={FIELD_MANAGER}");
    let mut child = kubectl(
        kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            &manager,
            "-f",
            "-",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .context("failed to run kubectl")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(manifest.as_bytes())
            .context("failed to send the manifests to kubectl")?;
    }
    child.wait_with_output().context("failed to run kubectl")
}

/// Runs `command` with its stdout sent to stderr (stdout is for the table, the reply and the
/// usage); fails when it fails.
fn to_stderr(mut command: Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {what}"))?;
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("{what} failed ({})", output.status);
    }
    Ok(())
}

fn namespace_manifest() -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")
}

/// The stack's env file (`export NAME='value'` lines) as a map.
fn read_env(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("failed to read {}", shown(path)))?;
    Ok(parse_env(&text))
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), unquote(value)))
        .collect()
}

/// Undoes POSIX single quoting: `'it'\''s'` is `it's`.
fn unquote(value: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '\'') | (false, '\'') => quoted = !quoted,
            (false, '\\') => out.extend(chars.next()),
            (_, c) => out.push(c),
        }
    }
    out
}

/// What the local stack offers the demo objects.
#[derive(Debug, Clone)]
struct Local {
    subscription_id: String,
    resource_group: String,
    account: String,
    project: String,
    endpoint: String,
    arm_endpoint: String,
    authority_host: String,
    tenant_id: String,
    client_id: String,
    client_secret: Secret,
    azure_target: String,
    openai_target: String,
    gateway_key: Secret,
    token_url: String,
    gateway_scope: String,
    gateway_client_id: String,
    gateway_client_secret: Secret,
    /// What each model of the gateway answers.
    replies: BTreeMap<String, String>,
}

impl Local {
    fn from_env(env: &BTreeMap<String, String>, models: &[GatewayModel]) -> anyhow::Result<Self> {
        let get = |name: &str| {
            env.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .with_context(|| format!("the stack's env file has no {name}"))
        };
        Ok(Self {
            subscription_id: get("FOUNDRY_SUBSCRIPTION_ID")?,
            resource_group: get("FOUNDRY_RESOURCE_GROUP")?,
            account: get("FOUNDRY_ACCOUNT")?,
            project: get("FOUNDRY_PROJECT")?,
            endpoint: get("FOUNDRY_PROJECT_ENDPOINT")?,
            arm_endpoint: get("FOUNDRY_ARM_ENDPOINT")?,
            authority_host: get("FOUNDRY_AUTHORITY_HOST")?,
            tenant_id: get("FOUNDRY_TENANT_ID")?,
            client_id: get("FOUNDRY_CLIENT_ID")?,
            client_secret: Secret::new(get("FOUNDRY_CLIENT_SECRET")?),
            azure_target: get("LITELLM_AZURE_TARGET")?,
            openai_target: get("LITELLM_OPENAI_TARGET")?,
            gateway_key: Secret::new(get("LITELLM_MASTER_KEY")?),
            token_url: get("FOUNDRY_TOKEN_URL")?,
            gateway_scope: get("FOUNDRY_GATEWAY_SCOPE")?,
            gateway_client_id: get("FOUNDRY_GATEWAY_CLIENT_ID")?,
            gateway_client_secret: Secret::new(get("FOUNDRY_GATEWAY_CLIENT_SECRET")?),
            replies: models
                .iter()
                .map(|m| (m.name.clone(), m.reply.clone()))
                .collect(),
        })
    }
}

/// Every object of every `*.yaml` file in `dir`, files in name order.
fn read_samples(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", shown(dir)))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file)
            .with_context(|| format!("failed to read {}", shown(&file)))?;
        objects.extend(parse_yaml_stream(&text).with_context(|| shown(&file))?);
    }
    Ok(objects)
}

fn parse_yaml_stream(text: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).context("invalid YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The gateway's models: the defaults, and every static model a sample connection lists, so that
/// every model of the samples is served.
fn gateway_models(samples: &[Value]) -> Vec<GatewayModel> {
    let mut models = GatewayModel::defaults();
    for object in samples.iter().filter(|o| o["kind"] == "GatewayConnection") {
        for listed in object["spec"]["models"]["static"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(name) = listed["name"].as_str() else {
                continue;
            };
            if models.iter().any(|m| m.name == name) {
                continue;
            }
            let mut model = GatewayModel::new(name);
            if let Some(behind) = listed["model"].as_str() {
                behind.clone_into(&mut model.model);
            }
            models.push(model);
        }
    }
    models
}

/// The sample objects made to run against the local stack, in namespace `foundry-demo`, Secrets
/// first. Everything else stays as the samples say:
/// - FoundryProject: the emulator's project, endpoints and the token server's authority host,
///   with a `clientSecret` identity (the stack's operator client) in a Secret `<name>-identity`;
/// - GatewayConnection: the LiteLLM target (`/openai` for ApiManagement, `/v1` for ModelGateway),
///   and for OAuth2 the token server's URL, scope and client;
/// - Secret: the LiteLLM key or the OAuth2 client secret where a connection refers to them, a
///   plain value elsewhere (custom headers);
/// - PromptAgent: a `verify.expect` that the local model's mock reply does not contain becomes
///   that reply.
fn localize(samples: &[Value], local: &Local) -> anyhow::Result<Vec<Value>> {
    let mut values: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut objects = Vec::new();
    for sample in samples {
        let mut object = sample.clone();
        let name = object["metadata"]["name"]
            .as_str()
            .context("a sample object has no metadata.name")?
            .to_owned();
        object["metadata"]["namespace"] = NAMESPACE.into();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Secret" => {}
            "FoundryProject" => {
                let spec = &mut object["spec"];
                let secret = format!("{name}-identity");
                if let Some(spec) = spec.as_object_mut() {
                    spec.remove("armId");
                    spec.remove("endpoint");
                    spec.remove("managementEndpoint");
                }
                spec["subscriptionId"] = local.subscription_id.clone().into();
                spec["resourceGroup"] = local.resource_group.clone().into();
                spec["account"] = local.account.clone().into();
                spec["project"] = local.project.clone().into();
                spec["endpoint"] = local.endpoint.clone().into();
                spec["managementEndpoint"] = local.arm_endpoint.clone().into();
                spec["authorityHost"] = local.authority_host.clone().into();
                spec["identity"] = json!({"clientSecret": {
                    "clientId": local.client_id,
                    "tenantId": local.tenant_id,
                    "secretRef": {"name": secret, "key": "clientSecret"},
                }});
                values.insert(
                    (secret.clone(), "clientSecret".to_owned()),
                    local.client_secret.expose().to_owned(),
                );
                objects.push(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": secret, "namespace": NAMESPACE},
                    "type": "Opaque", "stringData": {"clientSecret": ""},
                }));
            }
            "GatewayConnection" => {
                let spec = &mut object["spec"];
                let target = match spec["category"].as_str() {
                    Some("ApiManagement") => &local.azure_target,
                    _ => &local.openai_target,
                };
                spec["target"] = target.clone().into();
                let auth = &mut spec["auth"];
                if let Some(key) = secret_ref(&auth["apiKey"]["secretRef"]) {
                    values.insert(key, local.gateway_key.expose().to_owned());
                }
                if auth["oauth2"].is_object() {
                    let oauth2 = &mut auth["oauth2"];
                    oauth2["tokenUrl"] = local.token_url.clone().into();
                    oauth2["scopes"] = json!([local.gateway_scope]);
                    oauth2["clientId"] = local.gateway_client_id.clone().into();
                    if let Some(key) = secret_ref(&oauth2["clientSecretRef"]) {
                        values.insert(key, local.gateway_client_secret.expose().to_owned());
                    }
                }
            }
            "PromptAgent" => {
                let spec = &mut object["spec"];
                let model = spec["model"]["name"].as_str().unwrap_or_default();
                if let (Some(expect), Some(reply)) =
                    (spec["verify"]["expect"].as_str(), local.replies.get(model))
                    && !reply.contains(expect)
                {
                    spec["verify"]["expect"] = reply.clone().into();
                }
            }
            other => bail!(
                "config/samples holds a {other} ({name}); the demo does not know how to run it locally"
            ),
        }
        objects.push(object);
    }
    for object in objects.iter_mut().filter(|o| o["kind"] == "Secret") {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if let Some(data) = object["stringData"].as_object_mut() {
            for (key, value) in data.iter_mut() {
                *value = values
                    .get(&(name.clone(), key.clone()))
                    .map_or(PLAIN_VALUE, String::as_str)
                    .into();
            }
        }
    }
    let rank = |o: &Value| match o["kind"].as_str() {
        Some("Secret") => 0,
        Some("FoundryProject") => 1,
        Some("GatewayConnection") => 2,
        _ => 3,
    };
    objects.sort_by_key(rank);
    Ok(objects)
}

fn secret_ref(reference: &Value) -> Option<(String, String)> {
    Some((
        reference["name"].as_str()?.to_owned(),
        reference["key"].as_str()?.to_owned(),
    ))
}

/// The agent the SDK asks: the first one with tools and a verification, else the first one.
fn asked_agent(objects: &[Value]) -> Option<String> {
    let agents: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == "PromptAgent")
        .collect();
    agents
        .iter()
        .find(|a| a["spec"]["tools"].is_array() && a["spec"]["verify"].is_object())
        .or(agents.first())
        .and_then(|a| a["metadata"]["name"].as_str())
        .map(str::to_owned)
}

/// A data-plane token of the stack's operator client, from the token server.
fn mint_token(ca_file: &Path, env: &BTreeMap<String, String>) -> anyhow::Result<Secret> {
    let ca = fs::read_to_string(ca_file).context("failed to read the stack's CA")?;
    let http = HttpClient::new(&ca)?;
    let get = |name: &str| {
        env.get(name)
            .map(String::as_str)
            .with_context(|| format!("the stack's env file has no {name}"))
    };
    let url = get("FOUNDRY_TOKEN_URL")?;
    let reply = http.post_form(
        url,
        &[],
        &[
            ("grant_type", "client_credentials"),
            ("client_id", get("FOUNDRY_CLIENT_ID")?),
            ("client_secret", get("FOUNDRY_CLIENT_SECRET")?),
            ("scope", DATA_PLANE_SCOPE),
        ],
    )?;
    if !reply.is_success() {
        bail!("the token server answered HTTP {}", reply.status);
    }
    reply.json()["access_token"]
        .as_str()
        .map(Secret::new)
        .context("the token server sent no access_token")
}

/// What the agent answered through the SDK.
#[derive(Debug)]
struct Reply {
    agent: String,
    version: String,
    text: String,
}

/// Runs `tests/sdk/flow.py --use-existing-agent`: a conversation and one response of the agent
/// named `agent`, as the official SDK does it.
fn ask(
    python: &Path,
    endpoint: &str,
    agent: &str,
    expect: &str,
    token: &Secret,
    ca_file: &Path,
) -> anyhow::Result<Reply> {
    let output = Command::new(python)
        .arg(python::sdk_dir().join("flow.py"))
        .args(["--endpoint", endpoint])
        .args(["--agent-name", agent])
        .arg("--use-existing-agent")
        .args(["--expect", expect])
        // The token goes through the environment, not the command line `ps` shows.
        .env("FOUNDRY_TOKEN", token.expose())
        .env("SSL_CERT_FILE", ca_file)
        .env("REQUESTS_CA_BUNDLE", ca_file)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .context("failed to run python flow.py")?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let text = text.replace(token.expose(), "<token>");
    match parse_flow_output(&text) {
        Some(reply) if output.status.success() => Ok(reply),
        _ => bail!("the SDK flow failed ({}):\n{text}", output.status),
    }
}

/// `AGENT: <name> version <n> model <m>` and `REPLY: <text>` of flow.py.
fn parse_flow_output(text: &str) -> Option<Reply> {
    let agent = text.lines().find_map(|l| l.strip_prefix("AGENT: "))?;
    let (name, rest) = agent.split_once(" version ")?;
    let version = rest.split_whitespace().next()?;
    let reply = text.lines().find_map(|l| l.strip_prefix("REPLY: "))?;
    Some(Reply {
        agent: name.to_owned(),
        version: version.to_owned(),
        text: reply.to_owned(),
    })
}

fn print_usage(
    dir: &Path,
    stack_dir: &Path,
    kubeconfig: &Path,
    operator_log: Option<&Path>,
    agent: &str,
    end: End,
) {
    let stack = shown(stack_dir);
    let kubeconfig = shown(kubeconfig);
    let under_repo = Path::new(&stack).is_relative();
    let kubeconfig_line = if under_repo {
        format!("export KUBECONFIG=\"$PWD/{kubeconfig}\"")
    } else {
        format!("export KUBECONFIG='{kubeconfig}'")
    };
    println!(
        "Use it from another shell{}:",
        if under_repo {
            " at the repository root"
        } else {
            ""
        }
    );
    println!(
        "  eval \"$(cargo xtask stack env --dir {stack})\"   # KUBECONFIG, endpoints, throwaway secrets"
    );
    println!("  {kubeconfig_line}   # or just kubectl");
    println!("  kubectl get foundry -n {NAMESPACE} -o wide");
    println!("  kubectl describe gatewayconnection litellm -n {NAMESPACE}");
    println!("  kubectl get promptagent {agent} -n {NAMESPACE} -o jsonpath='{{.status.agent}}'");
    println!("  kubectl edit promptagent {agent} -n {NAMESPACE}   # a new version, verified again");
    match operator_log {
        Some(log) => println!("Operator log: {}", shown(log)),
        None => println!("Operator logs: kubectl logs -n {POD_NAMESPACE} -l {POD_SELECTOR}"),
    }
    let down = if dir == default_dir() {
        "cargo xtask demo down".to_owned()
    } else {
        format!("cargo xtask demo down --dir {}", shown(dir))
    };
    match end {
        End::WaitForCtrlC => println!("Stop: Ctrl-C here (or `{down}` from another shell)."),
        End::Keep => println!("Stop: `{down}`."),
        End::Stop => println!("Stop: nothing to do; --no-wait (or CI) stops it now."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn local() -> Local {
        let env = parse_env(
            "# comment\n\
             export FOUNDRY_SUBSCRIPTION_ID='00000000-0000-0000-0000-000000000000'\n\
             export FOUNDRY_RESOURCE_GROUP='rg-local'\n\
             export FOUNDRY_ACCOUNT='local-account'\n\
             export FOUNDRY_PROJECT='local-project'\n\
             export FOUNDRY_PROJECT_ENDPOINT='https://127.0.0.1:1/api/projects/local-project'\n\
             export FOUNDRY_ARM_ENDPOINT='https://127.0.0.1:1'\n\
             export FOUNDRY_AUTHORITY_HOST='https://127.0.0.1:2'\n\
             export FOUNDRY_TENANT_ID='tenant'\n\
             export FOUNDRY_CLIENT_ID='foundry-operator'\n\
             export FOUNDRY_CLIENT_SECRET='operator-secret'\n\
             export LITELLM_AZURE_TARGET='https://127.0.0.1:3/openai'\n\
             export LITELLM_OPENAI_TARGET='https://127.0.0.1:3/v1'\n\
             export LITELLM_MASTER_KEY='sk-master'\n\
             export FOUNDRY_TOKEN_URL='https://127.0.0.1:2/token'\n\
             export FOUNDRY_GATEWAY_SCOPE='api://gateway/.default'\n\
             export FOUNDRY_GATEWAY_CLIENT_ID='foundry-gateway-client'\n\
             export FOUNDRY_GATEWAY_CLIENT_SECRET='gateway-secret'\n",
        );
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        Local::from_env(&env, &gateway_models(&samples)).expect("complete env")
    }

    fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn single_quoted_env_values_are_read_back() {
        assert_eq!(unquote(r"'it'\''s'"), "it's");
        assert_eq!(unquote("'a b'"), "a b");
        assert_eq!(
            parse_env("export A='1'\nB=2\nexport C='x=y'\n"),
            BTreeMap::from([("A".into(), "1".into()), ("C".into(), "x=y".into())])
        );
    }

    #[test]
    fn every_sample_runs_against_the_stack_and_no_sample_endpoint_or_credential_is_left() {
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        let objects = localize(&samples, &local()).expect("every sample kind is known");
        let text = serde_json::to_string(&objects).expect("JSON");
        // Tool definitions (the MCP server's URL) are only stored by Foundry: they stay as written.
        let reached: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] != "PromptAgent")
            .collect();
        let reached = serde_json::to_string(&reached).expect("JSON");
        assert!(!reached.contains("contoso.com"), "{reached}");
        assert!(!reached.contains("azure-api.net"), "{reached}");
        assert!(!text.contains("replace-with"), "{text}");
        assert!(
            objects
                .iter()
                .all(|o| o["metadata"]["namespace"] == NAMESPACE)
        );
        assert!(
            objects
                .iter()
                .filter(|o| o["kind"] == "Secret")
                .all(|o| o.get("spec").is_none()),
            "{text}"
        );
        let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
        let first_other = kinds.iter().position(|k| *k != "Secret").expect("objects");
        assert!(
            kinds[first_other..].iter().all(|k| *k != "Secret"),
            "{kinds:?}"
        );
    }

    #[test]
    fn the_project_uses_the_emulator_and_a_client_secret_identity() {
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        let objects = localize(&samples, &local()).expect("localized");
        let project = find(&objects, "FoundryProject", "contoso");
        assert_eq!(project["spec"]["account"], "local-account");
        assert_eq!(project["spec"]["authorityHost"], "https://127.0.0.1:2");
        assert_eq!(
            project["spec"]["identity"]["clientSecret"]["secretRef"]["name"],
            "contoso-identity"
        );
        assert!(project["spec"]["identity"]["workloadIdentity"].is_null());
        let secret = find(&objects, "Secret", "contoso-identity");
        assert_eq!(secret["stringData"]["clientSecret"], "operator-secret");
    }

    #[test]
    fn connections_get_the_local_targets_credentials_and_token_server() {
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        let objects = localize(&samples, &local()).expect("localized");
        let apim = find(&objects, "GatewayConnection", "apim-openai");
        assert_eq!(apim["spec"]["target"], "https://127.0.0.1:3/openai");
        assert_eq!(
            find(&objects, "Secret", "apim-subscription")["stringData"]["key"],
            "sk-master"
        );
        let litellm = find(&objects, "GatewayConnection", "litellm");
        assert_eq!(litellm["spec"]["target"], "https://127.0.0.1:3/v1");
        assert_eq!(
            litellm["spec"]["auth"]["apiKey"]["format"],
            "Bearer {api_key}"
        );
        let key = find(&objects, "Secret", "litellm-key");
        assert_eq!(key["stringData"]["key"], "sk-master");
        assert_eq!(key["stringData"]["tenant"], PLAIN_VALUE);
        let oauth = find(&objects, "GatewayConnection", "gateway-oauth");
        assert_eq!(
            oauth["spec"]["auth"]["oauth2"]["tokenUrl"],
            "https://127.0.0.1:2/token"
        );
        assert_eq!(
            oauth["spec"]["auth"]["oauth2"]["scopes"],
            json!(["api://gateway/.default"])
        );
        assert_eq!(
            find(&objects, "Secret", "gateway-oauth-client")["stringData"]["clientSecret"],
            "gateway-secret"
        );
    }

    #[test]
    fn the_agent_with_tools_is_asked_and_expects_what_the_local_model_answers() {
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        let objects = localize(&samples, &local()).expect("localized");
        let agent = asked_agent(&objects).expect("an agent");
        assert_eq!(agent, "support-agent");
        let spec = &find(&objects, "PromptAgent", &agent)["spec"];
        let reply = &local().replies[spec["model"]["name"].as_str().expect("model")];
        assert!(
            reply.contains(spec["verify"]["expect"].as_str().expect("expect")),
            "{reply}"
        );
        assert_eq!(spec["tools"][1]["type"], "mcp");
    }

    #[test]
    fn every_static_model_of_the_samples_is_served() {
        let samples = read_samples(&repo_root().join("config").join("samples")).expect("samples");
        let models = gateway_models(&samples);
        let claude = models
            .iter()
            .find(|m| m.name == "claude-sonnet")
            .expect("claude-sonnet");
        assert_eq!(claude.model, "claude-sonnet-4");
        assert!(models.iter().any(|m| m.name == "gpt-4o-mini"));
    }

    #[test]
    fn the_flow_output_gives_agent_version_and_reply() {
        let reply = parse_flow_output(
            "AGENT: support-agent version 1 model litellm/gpt-4o\nCONVERSATION: c\n\
             REPLY: Hello from the gateway (gpt-4o)\nPASSED\n",
        )
        .expect("parsed");
        assert_eq!(
            (
                reply.agent.as_str(),
                reply.version.as_str(),
                reply.text.as_str()
            ),
            ("support-agent", "1", "Hello from the gateway (gpt-4o)")
        );
    }
}
