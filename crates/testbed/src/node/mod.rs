//! The node of the test bed: containerd (its own root, state and socket below
//! `<state>/node/`), the kubelet, kube-controller-manager, kube-scheduler and kube-proxy, on a
//! bridge network of the test bed's own: [`BRIDGE`] with [`NODE_IP`], pod addresses of
//! [`POD_SUBNET`] only inside the network namespaces the node creates, no masquerading and no
//! route off the machine (pods get routes to the pod subnet and the Service range only, and
//! traffic from the bridge is never forwarded elsewhere).
//!
//! The node changes the machine: the kubelet sets sysctls, the kubelet and kube-proxy add
//! iptables chains, the CNI plugin enables forwarding, the kubelet bind-mounts its root and the
//! pods' volumes, containers run outside our process tree. Before it starts, [`HostSnapshot`]
//! records the machine in `<state>/node/host.json`; [`teardown`] (called by `Testbed::stop`, and
//! so on drop) kills every container and process of the node, unmounts, removes links and
//! namespaces, restores sysctls and iptables, removes cgroups and the paths it created, then
//! compares the machine with the snapshot.

pub mod config;
pub mod host;
pub mod packages;

use std::ffi::OsString;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

pub use host::{HostSnapshot, NodeRecord};
pub use packages::{CONTAINERD_VERSION, NodePackages, ensure_node_packages};

use crate::binaries::NodeBinaries;
use crate::image::{self, Entry, ImageSpec};
use crate::kubernetes::KubeCluster;
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Launcher, ProcessSpec};
use crate::stack_error::StackError;

/// The bridge of the node's pod network (at most 15 characters).
pub const BRIDGE: &str = "fgotb0";

/// The pod network.
pub const POD_SUBNET: &str = "10.244.0.0/24";

/// The node's address: the bridge's, the kubelet's and the one the apiserver advertises for the
/// `kubernetes` Service.
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);

/// The first address of the Service range: the `kubernetes` Service.
pub const KUBERNETES_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);

/// The node's name.
pub const NODE_NAME: &str = "testbed-node";

/// The kubelet's cgroup root (below every cgroup hierarchy).
pub const CGROUP_ROOT: &str = "/foundry-testbed";

/// The pause image, built from a static C program.
pub const PAUSE_IMAGE: &str = "docker.io/library/foundry-testbed-pause:1";

/// The iptables chain that keeps the apiserver (which listens on every address so that pods
/// reach it on the bridge) to loopback and the bridge.
const GUARD_CHAIN: &str = "FOUNDRY-TESTBED-GUARD";

/// The node's pause program: sleeps until told to stop, reaps what is left to it.
const PAUSE_C: &str = r#"#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGINT, stop);
  signal(SIGTERM, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
"#;

/// What failed while preparing, starting or tearing down the node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("this machine cannot run the test bed's node: {what}: {message}")]
    Capability { what: &'static str, message: String },
    #[error(
        "another test bed with a node runs on this machine (network link {BRIDGE} exists); stop it with `cargo xtask testbed down --dir <its state dir>`"
    )]
    Busy,
    #[error(transparent)]
    Stack(#[from] Box<StackError>),
    #[error("failed to run `{command}`: {message}")]
    Command { command: String, message: String },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} was not ready within {timeout:?}: {last}")]
    NotReady {
        what: &'static str,
        timeout: Duration,
        last: String,
    },
    #[error("the machine is not as the node found it:\n{}", .0.join("\n"))]
    NotRestored(Vec<String>),
}

impl From<StackError> for NodeError {
    fn from(err: StackError) -> Self {
        Self::Stack(Box::new(err))
    }
}

impl From<crate::Error> for NodeError {
    fn from(err: crate::Error) -> Self {
        Self::Stack(Box::new(StackError::Testbed(err)))
    }
}

type NodeResult<T> = Result<T, NodeError>;

/// `<state>/node`.
pub fn node_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("node")
}

fn snapshot_file(state_dir: &Path) -> PathBuf {
    node_dir(state_dir).join("host.json")
}

/// Checks what a node needs of the machine, naming the first thing missing: root, a writable
/// cgroup hierarchy, overlayfs, `ip`, `gcc` with a static libc, `apt-get` and `dpkg-deb`.
pub fn host_capabilities() -> NodeResult<()> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default();
    if uid != "0" {
        return Err(NodeError::Capability {
            what: "root",
            message: format!("the effective uid is {uid}, not 0"),
        });
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems
        .lines()
        .any(|l| l.trim_end().ends_with("overlay"))
    {
        return Err(NodeError::Capability {
            what: "overlayfs",
            message: "/proc/filesystems does not list overlay".to_owned(),
        });
    }
    let probe = host::cgroup_dirs("")
        .into_iter()
        .map(|dir| dir.join("foundry-testbed-probe"))
        .find(|dir| {
            dir.parent()
                .is_some_and(|p| p.ends_with("memory") || p.ends_with("cgroup"))
        });
    if let Some(dir) = probe {
        fs::create_dir(&dir).map_err(|err| NodeError::Capability {
            what: "cgroups",
            message: format!("cannot create {}: {err}", dir.display()),
        })?;
        let _ = fs::remove_dir(&dir);
    }
    for (program, arg) in [
        ("ip", "-V"),
        ("gcc", "--version"),
        ("dpkg-deb", "--version"),
        ("apt-get", "--version"),
    ] {
        Command::new(program)
            .arg(arg)
            .output()
            .map_err(|err| NodeError::Capability {
                what: "a program",
                message: format!("{program}: {err}"),
            })?;
    }
    Ok(())
}

/// Records the machine and makes the bridge; on failure the machine is restored. A node left
/// behind by a test bed that can no longer stop it (its owner was killed) is torn down first.
pub(crate) fn prepare_host(
    state_dir: &Path,
    packages: &NodePackages,
    owner: Option<u32>,
) -> NodeResult<()> {
    if host::links().contains(BRIDGE) {
        match NodeRecord::read() {
            Some(record) if record.is_stale() => {
                eprintln!(
                    "Restoring the machine after the node of {}, whose test bed ended without stopping it",
                    record.state_dir.display()
                );
                teardown(&record.state_dir)?;
                // What the watchdog could not remove while the node's mounts were there.
                let temporary = record.state_dir.parent() == Some(std::env::temp_dir().as_path())
                    && record
                        .state_dir
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("foundry-testbed-"));
                if temporary && !record.state_dir.join(crate::state::STATE_FILE).exists() {
                    let _ = fs::remove_dir_all(&record.state_dir);
                }
            }
            _ => return Err(NodeError::Busy),
        }
    }
    let dir = node_dir(state_dir);
    create_dir(&dir)?;
    let snapshot = HostSnapshot::take(packages);
    let file = snapshot_file(state_dir);
    snapshot
        .write(&file)
        .map_err(|source| NodeError::Write { path: file, source })?;
    let record = NodeRecord {
        state_dir: state_dir.to_path_buf(),
        owner,
        snapshot,
    };
    if let Err(source) = record.write() {
        let _ = teardown(state_dir);
        return Err(NodeError::Write {
            path: NodeRecord::path().unwrap_or_default(),
            source,
        });
    }
    let made = make_bridge();
    if made.is_err() {
        let _ = teardown(state_dir);
    }
    made
}

fn make_bridge() -> NodeResult<()> {
    let prefix = POD_SUBNET.split_once('/').map_or("24", |(_, p)| p);
    run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
    run(Command::new("ip").args(["addr", "add", &format!("{NODE_IP}/{prefix}"), "dev", BRIDGE]))?;
    run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
    Ok(())
}

/// Keeps `ports` (the apiserver's) to loopback and the bridge, and drops whatever the bridge
/// would forward elsewhere.
pub(crate) fn guard(packages: &NodePackages, ports: &[u16]) -> NodeResult<()> {
    let iptables = |args: &[&str]| {
        run(packages
            .command(packages.iptables())
            .args(["-w", "5"])
            .args(args))
    };
    iptables(&["-N", GUARD_CHAIN])?;
    iptables(&["-A", GUARD_CHAIN, "-i", "lo", "-j", "RETURN"])?;
    iptables(&["-A", GUARD_CHAIN, "-i", BRIDGE, "-j", "RETURN"])?;
    iptables(&["-A", GUARD_CHAIN, "-j", "DROP"])?;
    for port in ports {
        iptables(&[
            "-I",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            GUARD_CHAIN,
        ])?;
    }
    iptables(&[
        "-I", "FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP",
    ])?;
    Ok(())
}

/// Builds the pause program with `gcc -static` into the node's folder.
fn build_pause(dir: &Path) -> NodeResult<PathBuf> {
    let source = dir.join("pause.c");
    fs::write(&source, PAUSE_C).map_err(|source_err| NodeError::Write {
        path: source.clone(),
        source: source_err,
    })?;
    let binary = dir.join("pause");
    run(Command::new("gcc")
        .args(["-static", "-Os", "-o"])
        .arg(&binary)
        .arg(&source))?;
    Ok(binary)
}

/// The running node's facts, for images and tests.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// containerd's socket.
    pub containerd_socket: PathBuf,
    /// containerd's registry hosts folder (`certs.d`), one folder per registry host.
    pub registry_hosts: PathBuf,
    /// The packages the node runs from (`ctr` among them).
    pub packages: NodePackages,
}

impl NodeInfo {
    /// The node of the test bed in `state_dir`.
    pub fn of(state_dir: &Path, packages: NodePackages) -> Self {
        Self {
            containerd_socket: node_dir(state_dir).join("containerd.sock"),
            registry_hosts: node_dir(state_dir).join("containerd").join("certs.d"),
            packages,
        }
    }

    /// Loads an image archive into the node's containerd (namespace `k8s.io`).
    pub fn import_image(&self, archive: &Path) -> Result<(), StackError> {
        image::import(
            &mut self.packages.command(self.packages.ctr()),
            &self.containerd_socket,
            archive,
        )
    }

    /// Lets the node's containerd pull from the registry at `host` (`127.0.0.1:<port>`) over
    /// TLS, trusting `ca_file` for it (containerd reads its hosts folder at each pull).
    pub fn trust_registry(&self, host: &str, ca_file: &Path) -> Result<(), StackError> {
        let dir = self.registry_hosts.join(host);
        fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
        let path = dir.join("hosts.toml");
        fs::write(&path, config::registry_host(host, ca_file))
            .map_err(|source| StackError::write(&path, source))
    }
}

/// Starts containerd, loads the pause image, then kube-controller-manager, kube-scheduler, the
/// kubelet and kube-proxy, and waits until the node is Ready.
pub(crate) fn start(
    launcher: &mut Launcher,
    state_dir: &Path,
    kube: &KubeCluster,
    binaries: &NodeBinaries,
    packages: &NodePackages,
    timeout: Duration,
) -> NodeResult<NodeInfo> {
    let deadline = Instant::now() + timeout;
    let dir = node_dir(state_dir);
    let logs = state_dir.join("logs");
    for sub in ["cni/net.d", "kubelet", "pod-logs", "containerd"] {
        create_dir(&dir.join(sub))?;
    }
    let info = NodeInfo::of(state_dir, packages.clone());
    let [
        kubelet_port,
        kubelet_healthz_port,
        proxy_healthz_port,
        proxy_metrics_port,
        cm_port,
        sched_port,
    ] = match free_loopback_ports(6)?[..] {
        [a, b, c, d, e, f] => [a, b, c, d, e, f],
        _ => return Err(crate::Error::FreePort(std::io::Error::other("too few ports")).into()),
    };
    let runc = packages.runc();
    let cni_bin_dir = packages.cni_bin_dir();
    let layout = config::Layout {
        dir: &dir,
        containerd_socket: &info.containerd_socket,
        runc: &runc,
        cni_bin_dir: &cni_bin_dir,
        pause_image: PAUSE_IMAGE,
        ca_file: &kube.ca_file,
        kubeconfig: &kube.kubeconfig,
        kubelet_port,
        kubelet_healthz_port,
        proxy_healthz_port,
        proxy_metrics_port,
    };
    let containerd_config = write(&dir.join("containerd.toml"), &config::containerd(&layout))?;
    write(
        &dir.join("cni/net.d/10-foundry-testbed.conflist"),
        &config::cni(&layout),
    )?;
    let kubelet_config = write(&dir.join("kubelet.yaml"), &config::kubelet(&layout))?;
    let proxy_config = write(&dir.join("kube-proxy.yaml"), &config::kube_proxy(&layout))?;

    let env: Vec<(OsString, Option<OsString>)> = packages
        .env()
        .into_iter()
        .map(|(k, v)| (OsString::from(k), Some(OsString::from(v))))
        .collect();
    let spec = |name: &str, program: &Path, args: Vec<String>| ProcessSpec {
        name: name.to_owned(),
        program: program.to_path_buf(),
        args: args.into_iter().map(OsString::from).collect(),
        log: logs.join(format!("{name}.log")),
        cwd: dir.clone(),
        env: env.clone(),
    };

    launcher.spawn(&spec(
        "containerd",
        &packages.containerd(),
        vec![format!("--config={}", containerd_config.display())],
    ))?;
    wait_for("containerd", remaining(deadline), || {
        output(
            packages
                .command(packages.ctr())
                .arg("--address")
                .arg(&info.containerd_socket)
                .arg("version"),
        )
        .map(drop)
    })?;
    let pause = build_pause(&dir)?;
    let pause_image = ImageSpec {
        name: "foundry-testbed-pause".to_owned(),
        tag: "1".to_owned(),
        entries: vec![Entry::file("/pause", read(&pause)?, 0o755)],
        entrypoint: vec!["/pause".to_owned()],
        env: Vec::new(),
        exposed_ports: Vec::new(),
        user: None,
        labels: Default::default(),
    };
    let archive = dir.join("pause.oci.tar");
    image::write_archive(&pause_image, &archive)?;
    info.import_image(&archive)?;

    let pki = state_dir.join("pki");
    let kubeconfig = kube.kubeconfig.display().to_string();
    launcher.spawn(&spec(
        "kube-controller-manager",
        &binaries.kube_controller_manager,
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={cm_port}"),
            "--leader-elect=false".to_owned(),
            format!("--root-ca-file={}", kube.ca_file.display()),
            format!(
                "--service-account-private-key-file={}",
                pki.join("service-account.key").display()
            ),
            "--use-service-account-credentials=false".to_owned(),
            format!("--cert-dir={}", dir.join("controller-manager").display()),
        ],
    ))?;
    launcher.spawn(&spec(
        "kube-scheduler",
        &binaries.kube_scheduler,
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={sched_port}"),
            "--leader-elect=false".to_owned(),
            format!("--cert-dir={}", dir.join("scheduler").display()),
        ],
    ))?;
    make_cgroups()?;
    let kubelet = launcher.spawn(&spec(
        "kubelet",
        &binaries.kubelet,
        vec![
            format!("--config={}", kubelet_config.display()),
            format!("--kubeconfig={kubeconfig}"),
            format!("--root-dir={}", dir.join("kubelet").display()),
            format!("--hostname-override={NODE_NAME}"),
            format!("--node-ip={NODE_IP}"),
        ],
    ))?;
    Probe::new(
        format!("http://127.0.0.1:{kubelet_healthz_port}/healthz"),
        None,
        None,
    )?
    .wait_until_ready(kubelet, remaining(deadline))?;
    let proxy = launcher.spawn(&spec(
        "kube-proxy",
        &binaries.kube_proxy,
        vec![format!("--config={}", proxy_config.display())],
    ))?;
    Probe::new(
        format!("http://127.0.0.1:{proxy_healthz_port}/healthz"),
        None,
        None,
    )?
    .wait_until_ready(proxy, remaining(deadline))?;
    let client = crate::http::HttpClient::new(&kube.ca_pem)?;
    let bearer = format!("Bearer {}", kube.admin_token.expose());
    let url = format!("{}/api/v1/nodes/{NODE_NAME}", kube.server_url);
    wait_for("the node", remaining(deadline), || {
        let reply = client
            .get(&url, &[("Authorization", &bearer)])
            .map_err(|err| err.to_string())?;
        let ready = reply.json()["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned();
        match ready {
            Some(c) if c["status"] == "True" => Ok(()),
            Some(c) => Err(format!("Ready={} ({})", c["status"], c["message"])),
            None => Err(format!("HTTP {}", reply.status)),
        }
    })?;
    Ok(info)
}

/// Ends the node and puts the machine back as the snapshot in `<state>/node/host.json` found
/// it; then compares. A no-op without a snapshot.
pub fn teardown(state_dir: &Path) -> NodeResult<()> {
    let file = snapshot_file(state_dir);
    let record = NodeRecord::read().filter(|r| r.state_dir == state_dir);
    let before = match (HostSnapshot::read(&file), record) {
        (Ok(before), _) => before,
        // The state directory is gone (an attached test bed's watchdog removed it).
        (Err(_), Some(record)) => record.snapshot,
        (Err(_), None) => return Ok(()),
    };
    let packages = ensure_node_packages()?;
    let dir = node_dir(state_dir);
    kill_node_processes(&dir);
    // Mounts of the node (its kubelet root, pod volumes, container root filesystems, network
    // namespaces), deepest first.
    let state = state_dir.display().to_string();
    let mut mounts: Vec<String> = host::mount_points()
        .difference(&before.mounts)
        .filter(|m| {
            m.starts_with(&state)
                || m.starts_with("/run/netns/")
                || m.starts_with("/run/containerd/")
        })
        .cloned()
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in &mounts {
        if run(Command::new("umount").arg(mount)).is_err() {
            let _ = run(Command::new("umount").arg("-l").arg(mount));
        }
    }
    for netns in host::dir_entries(Path::new("/run/netns")).difference(&before.netns) {
        let _ = fs::remove_file(Path::new("/run/netns").join(netns));
    }
    for link in host::links().difference(&before.links) {
        if link == BRIDGE || link.starts_with("veth") {
            let _ = run(Command::new("ip").args(["link", "delete", link]));
        }
    }
    for (key, value) in &before.iptables {
        let (family, table) = key.split_once('/').unwrap_or_default();
        let now = host::normalise_save(&host::iptables_save(&packages, family, table));
        if now != *value {
            let _ = restore_table(&packages, family, table, value);
        }
    }
    for (key, value) in &before.sysctls {
        if let Some(value) = value
            && host::read_sysctl(key).as_ref() != Some(value)
        {
            let _ = host::write_sysctl(key, value);
        }
    }
    remove_cgroups();
    for path in host::OUTSIDE_PATHS {
        if !before.paths.contains(*path) && Path::new(path).exists() {
            let _ = fs::remove_dir_all(path);
        }
    }
    let mut problems = before.differences(&HostSnapshot::take(&packages));
    problems.extend(
        host::node_processes(&dir, CGROUP_ROOT)
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid} ({cmd}) still runs")),
    );
    if problems.is_empty() {
        let _ = fs::remove_file(&file);
        NodeRecord::remove();
        Ok(())
    } else {
        Err(NodeError::NotRestored(problems))
    }
}

/// What differs on the machine from `before` (taken with [`HostSnapshot::take`] before a test
/// bed with a node started), processes of a node in `node_dir` included; empty when restored.
pub fn host_differences(
    before: &HostSnapshot,
    packages: &NodePackages,
    node_dir: &Path,
) -> Vec<String> {
    let mut problems = before.differences(&HostSnapshot::take(packages));
    problems.extend(
        host::node_processes(node_dir, CGROUP_ROOT)
            .into_iter()
            .map(|(pid, cmd)| format!("process {pid} ({cmd}) still runs")),
    );
    if !host::cgroup_dirs(CGROUP_ROOT).is_empty() {
        problems.push(format!("cgroup {CGROUP_ROOT} still exists"));
    }
    problems
}

/// SIGKILLs every process of the node (containers, shims, anything left of the components) until
/// none is left or 20 s have passed.
fn kill_node_processes(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = host::node_processes(dir, CGROUP_ROOT);
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        for (pid, _) in left {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .output();
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The kubelet wants its cgroup root to exist in every hierarchy; a v1 cpuset cgroup starts
/// without cpus and mems, so it gets its parent's.
fn make_cgroups() -> NodeResult<()> {
    let base = Path::new("/sys/fs/cgroup");
    let relative = CGROUP_ROOT.trim_start_matches('/');
    let hierarchies: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
        vec![base.to_path_buf()]
    } else {
        fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.is_symlink())
            .collect()
    };
    for hierarchy in hierarchies {
        let dir = hierarchy.join(relative);
        create_dir(&dir)?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(value) = fs::read_to_string(hierarchy.join(file)) {
                let _ = fs::write(dir.join(file), value.trim());
            }
        }
    }
    Ok(())
}

/// Removes the kubelet's cgroups, deepest first, in every hierarchy.
fn remove_cgroups() {
    for root in host::cgroup_dirs(CGROUP_ROOT) {
        let mut dirs = Vec::new();
        collect_dirs(&root, &mut dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let _ = fs::remove_dir(&dir);
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}

/// `iptables-restore` of one table as the snapshot kept it (flushing what was added).
fn restore_table(
    packages: &NodePackages,
    family: &str,
    table: &str,
    normalised: &str,
) -> NodeResult<()> {
    use std::io::Write as _;
    let mut text = format!("*{table}\n");
    for line in normalised.lines().filter(|l| !l.is_empty()) {
        if line.starts_with(':') {
            text.push_str(&format!("{line} [0:0]\n"));
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str("COMMIT\n");
    let program = packages.root.join("bin").join(format!("{family}-restore"));
    let shown = format!("{family}-restore (table {table})");
    let mut child = packages
        .command(program)
        .args(["-w", "5"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|err| NodeError::Command {
            command: shown.clone(),
            message: err.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|err| NodeError::Command {
        command: shown.clone(),
        message: err.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NodeError::Command {
            command: shown,
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn wait_for(
    what: &'static str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> NodeResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return Ok(()),
            Err(last) if Instant::now() >= deadline => {
                return Err(NodeError::NotReady {
                    what,
                    timeout,
                    last,
                });
            }
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn run(command: &mut Command) -> NodeResult<()> {
    output(command)
        .map(drop)
        .map_err(|message| NodeError::Command {
            command: describe(command),
            message,
        })
}

fn output(command: &mut Command) -> Result<String, String> {
    let out = command.output().map_err(|err| err.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn describe(command: &Command) -> String {
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        args.join(" ")
    )
}

fn create_dir(dir: &Path) -> NodeResult<()> {
    fs::create_dir_all(dir).map_err(|source| NodeError::Write {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> NodeResult<PathBuf> {
    fs::write(path, text).map_err(|source| NodeError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(path.to_path_buf())
}

fn read(path: &Path) -> NodeResult<Vec<u8>> {
    fs::read(path).map_err(|source| NodeError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
