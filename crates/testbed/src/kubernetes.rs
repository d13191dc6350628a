//! Kubernetes of the test bed: etcd and kube-apiserver on loopback, real RBAC, a throwaway PKI, an
//! admin token, and a kubeconfig. Without the node part ([`crate::node`]) there is no kubelet and
//! no controller manager: Pods never run and deleted namespaces stay Terminating.

use std::ffi::OsString;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::pki::{self, Ca, San};
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Launcher, ProcessSpec};
use crate::{Error, KubeBinaries, Result, Secret, node, random_hex};

/// The service-account issuer, also accepted as an audience.
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc";

/// The Service IP range the apiserver is configured with (traffic flows there only with a node,
/// whose kube-proxy sends it to pods on the node's bridge or to the apiserver).
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/16";

/// Name of the cluster and the context in every kubeconfig the test bed writes.
pub const CONTEXT: &str = "foundry-testbed";

/// User name and group of the admin token.
pub const ADMIN_USER: &str = "testbed-admin";

/// The audit log below the state directory, when the test bed keeps one ([`AUDIT_POLICY_FILE`]
/// says what it records).
pub const AUDIT_LOG_FILE: &str = "logs/kube-apiserver-audit.log";

/// The audit policy below the state directory, when the test bed keeps an audit log.
pub const AUDIT_POLICY_FILE: &str = "audit-policy.json";

/// The API group of the operator's kinds, whose requests the audit log records.
pub const OPERATOR_API_GROUP: &str = "gateway.foundry.dev";

/// Verbs that change something.
pub const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

/// The audit policy of the test bed (`--audit-policy-file`): at level `Metadata` (who, what, which
/// object and subresource, the answer's code; no bodies), every request but the stages before the
/// answer:
/// - writes ([`WRITE_VERBS`]) of the operator's group ([`OPERATOR_API_GROUP`], subresources
///   such as `status` included), of Secrets, ConfigMaps, ServiceAccount tokens and Events (both
///   groups), and of Leases;
/// - reads (`get`, `list`, `watch`) of the same resources, so a caller's traffic can be counted.
///
/// Everything else (the apiserver's own requests, other resources, non-resource URLs such as
/// `/readyz`) is left out, which keeps the log small. JSON is YAML: the apiserver reads it.
pub fn audit_policy() -> serde_json::Value {
    let resources = serde_json::json!([
        {"group": OPERATOR_API_GROUP},
        {"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token", "events"]},
        {"group": "events.k8s.io", "resources": ["events"]},
        {"group": "coordination.k8s.io", "resources": ["leases"]},
    ]);
    serde_json::json!({
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "users": ["system:apiserver"]},
            {"level": "None", "nonResourceURLs": ["*"]},
            {"level": "Metadata", "verbs": WRITE_VERBS, "resources": resources},
            {"level": "Metadata", "verbs": ["get", "list", "watch"], "resources": resources},
            {"level": "None"},
        ],
    })
}

/// Where a running Kubernetes of the test bed is, and how to reach it as admin.
#[derive(Debug, Clone)]
pub struct KubeCluster {
    /// `https://127.0.0.1:PORT`.
    pub server_url: String,
    /// etcd's client URL.
    pub etcd_url: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The CA certificate file.
    pub ca_file: PathBuf,
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// Bearer token of a member of `system:masters`.
    pub admin_token: Secret,
    /// The file holding the admin token.
    pub admin_token_file: PathBuf,
    /// The apiserver's audit log (JSON lines, one per request at [`audit_policy`]), when kept.
    pub audit_log: Option<PathBuf>,
}

/// Files of the Kubernetes part below the state directory.
struct Layout {
    pki: PathBuf,
    etcd_data: PathBuf,
    logs: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Self {
        Self {
            pki: dir.join("pki"),
            etcd_data: dir.join("etcd"),
            logs: dir.join("logs"),
        }
    }

    fn create(&self) -> Result<()> {
        for dir in [&self.pki, &self.logs] {
            fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Starts etcd, then kube-apiserver, and waits for `/readyz`, all within `timeout`.
pub(crate) fn start(
    launcher: &mut Launcher,
    dir: &Path,
    binaries: &KubeBinaries,
    timeout: Duration,
    with_node: bool,
    audit: bool,
) -> Result<KubeCluster> {
    let deadline = Instant::now() + timeout;
    let layout = Layout::new(dir);
    layout.create()?;

    let ca = Ca::create(&layout.pki, "ca", "foundry-testbed-ca")?;
    let mut sans = vec![
        San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        San::Dns("localhost".to_owned()),
        San::Dns("kubernetes.default.svc".to_owned()),
    ];
    if with_node {
        // Pods reach the apiserver through the `kubernetes` Service, which kube-proxy sends to
        // the node's bridge address.
        sans.extend([
            San::Ip(IpAddr::V4(node::NODE_IP)),
            San::Ip(IpAddr::V4(node::KUBERNETES_SERVICE_IP)),
            San::Dns("kubernetes".to_owned()),
            San::Dns("kubernetes.default".to_owned()),
        ]);
    }
    let serving = ca.issue_server_cert(&layout.pki, "apiserver", "kube-apiserver", &sans)?;
    let service_account = pki::rsa_key_pair(&layout.pki, "service-account")?;
    // The apiserver's identity towards the kubelet (`kubectl logs`, `exec`), which trusts our CA.
    let kubelet_client = if with_node {
        Some(ca.issue_client_cert(
            &layout.pki,
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            "system:masters",
        )?)
    } else {
        None
    };
    let ca_pem = ca.cert_pem()?;

    let admin_token = Secret::new(random_hex(32));
    let token_file = layout.pki.join("tokens.csv");
    write_private(
        &token_file,
        &format!(
            "{},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n",
            admin_token.expose()
        ),
    )?;
    let admin_token_file = layout.pki.join("admin.token");
    write_private(&admin_token_file, admin_token.expose())?;

    let [etcd_client, etcd_peer, secure_port] = match free_loopback_ports(3)?[..] {
        [a, b, c] => [a, b, c],
        _ => return Err(Error::FreePort(std::io::Error::other("too few ports"))),
    };
    let etcd_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    let server_url = format!("https://127.0.0.1:{secure_port}");

    let etcd = launcher.spawn(&ProcessSpec {
        name: "etcd".to_owned(),
        program: binaries.etcd.clone(),
        args: args(&[
            "--name=testbed".to_owned(),
            format!("--data-dir={}", layout.etcd_data.display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testbed={peer_url}"),
            "--initial-cluster-state=new".to_owned(),
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ]),
        log: layout.logs.join("etcd.log"),
        cwd: dir.to_path_buf(),
        env: Vec::new(),
    })?;
    Probe::new(format!("{etcd_url}/health"), None, None)?
        .wait_until_ready(etcd, remaining(deadline))?;

    let mut extra_args = Vec::new();
    if let Some(client) = &kubelet_client {
        extra_args.extend([
            format!("--kubelet-client-certificate={}", client.cert.display()),
            format!("--kubelet-client-key={}", client.key.display()),
            // The node's name resolves nowhere: the apiserver dials its address.
            "--kubelet-preferred-address-types=InternalIP".to_owned(),
        ]);
    }
    let audit_log = if audit {
        let policy = dir.join(AUDIT_POLICY_FILE);
        let text = serde_json::to_string_pretty(&audit_policy()).unwrap_or_default();
        fs::write(&policy, text + "\n").map_err(|source| Error::WriteFile {
            path: policy.clone(),
            source,
        })?;
        let log = dir.join(AUDIT_LOG_FILE);
        extra_args.extend(audit_args(&policy, &log));
        Some(log)
    } else {
        None
    };
    let apiserver = launcher.spawn(&ProcessSpec {
        name: "kube-apiserver".to_owned(),
        program: binaries.kube_apiserver.clone(),
        args: args(
            &[
                format!("--etcd-servers={etcd_url}"),
                // With a node, the apiserver listens on every address (the node guards the port with
                // iptables to loopback and the bridge) and advertises the bridge address, since the
                // `kubernetes` Service cannot point at loopback.
                format!(
                    "--bind-address={}",
                    if with_node { "0.0.0.0" } else { "127.0.0.1" }
                ),
                format!(
                    "--advertise-address={}",
                    if with_node {
                        node::NODE_IP
                    } else {
                        Ipv4Addr::LOCALHOST
                    }
                ),
                format!("--secure-port={secure_port}"),
                format!("--cert-dir={}", layout.pki.display()),
                format!("--tls-cert-file={}", serving.cert.display()),
                format!("--tls-private-key-file={}", serving.key.display()),
                format!("--client-ca-file={}", ca.pair().cert.display()),
                "--authorization-mode=RBAC".to_owned(),
                format!("--token-auth-file={}", token_file.display()),
                format!(
                    "--service-account-key-file={}",
                    service_account.public.display()
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    service_account.private.display()
                ),
                format!("--service-account-issuer={SERVICE_ACCOUNT_ISSUER}"),
                format!("--api-audiences={SERVICE_ACCOUNT_ISSUER}"),
                format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
                "--profiling=false".to_owned(),
            ]
            .into_iter()
            .chain(extra_args)
            .collect::<Vec<_>>(),
        ),
        log: layout.logs.join("kube-apiserver.log"),
        cwd: dir.to_path_buf(),
        env: Vec::new(),
    })?;
    Probe::new(
        format!("{server_url}/readyz"),
        Some(&ca_pem),
        Some(&admin_token),
    )?
    .wait_until_ready(apiserver, remaining(deadline))?;

    let kubeconfig = dir.join("kubeconfig");
    write_private(
        &kubeconfig,
        &render_kubeconfig(&server_url, &ca_pem, ADMIN_USER, &admin_token),
    )?;

    Ok(KubeCluster {
        server_url,
        etcd_url,
        kubeconfig,
        ca_file: ca.pair().cert.clone(),
        ca_pem,
        admin_token,
        admin_token_file,
        audit_log,
    })
}

/// The apiserver's flags of an audit log: `blocking` (each request waits until its event is
/// written, so the log is complete whenever a caller has its answer), JSON lines, no rotation.
fn audit_args(policy: &Path, log: &Path) -> Vec<String> {
    vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-mode=blocking".to_owned(),
        "--audit-log-format=json".to_owned(),
        "--audit-log-maxsize=0".to_owned(),
        "--audit-log-maxbackup=0".to_owned(),
    ]
}

/// A kubeconfig for `server_url` that trusts `ca_pem` (embedded) and authenticates `user` with a
/// bearer token.
pub fn render_kubeconfig(server_url: &str, ca_pem: &str, user: &str, token: &Secret) -> String {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    // JSON strings are valid YAML scalars, and escape whatever a name may contain.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {user}\ncurrent-context: {CONTEXT}\n",
        server = q(server_url),
        ca = q(&ca_data),
        user = q(user),
        token = q(token.expose()),
    )
}

/// Writes a file readable by its owner only (keys, tokens, kubeconfigs).
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).map_err(|source| Error::WriteFile {
        path: path.to_path_buf(),
        source,
    })?;
    pki::restrict(path)
}

fn args(list: &[String]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_policy_records_writes_and_reads_of_our_group_at_metadata_only() {
        let policy = audit_policy();
        assert_eq!(policy["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(policy["kind"], "Policy");
        assert_eq!(policy["omitStages"], serde_json::json!(["RequestReceived"]));
        let rules = policy["rules"].as_array().unwrap();
        // The apiserver's own requests and non-resource URLs go first, the catch-all None last.
        assert_eq!(rules[0]["users"], serde_json::json!(["system:apiserver"]));
        assert_eq!(rules[1]["nonResourceURLs"], serde_json::json!(["*"]));
        assert_eq!(rules.last().unwrap(), &serde_json::json!({"level": "None"}));
        let recorded: Vec<&serde_json::Value> =
            rules.iter().filter(|r| r["level"] != "None").collect();
        assert_eq!(recorded.len(), 2);
        assert!(recorded.iter().all(|r| r["level"] == "Metadata"));
        assert_eq!(
            recorded[0]["verbs"],
            serde_json::json!(["create", "update", "patch", "delete", "deletecollection"])
        );
        assert_eq!(
            recorded[1]["verbs"],
            serde_json::json!(["get", "list", "watch"])
        );
        for rule in recorded {
            let groups = rule["resources"].as_array().unwrap();
            // The whole group, subresources (status) included.
            assert_eq!(
                groups[0],
                serde_json::json!({"group": "gateway.foundry.dev"})
            );
            assert!(groups.iter().any(|g| {
                g["group"] == ""
                    && g["resources"]
                        .as_array()
                        .unwrap()
                        .contains(&"secrets".into())
            }));
            assert!(groups.iter().any(|g| g["group"] == "coordination.k8s.io"));
        }
    }

    #[test]
    fn the_audit_log_blocks_and_never_rotates() {
        let args = audit_args(Path::new("/p/policy.json"), Path::new("/p/audit.log"));
        assert_eq!(
            args,
            [
                "--audit-policy-file=/p/policy.json",
                "--audit-log-path=/p/audit.log",
                "--audit-log-mode=blocking",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
                "--audit-log-maxbackup=0",
            ]
        );
    }

    #[test]
    fn a_kubeconfig_embeds_the_ca_and_the_token_of_its_user() {
        let text = render_kubeconfig(
            "https://127.0.0.1:6443",
            "PEM",
            "system:serviceaccount:ns:sa",
            &Secret::new("tok"),
        );
        assert!(text.contains("server: \"https://127.0.0.1:6443\""));
        assert!(text.contains("certificate-authority-data: \"UEVN\""));
        assert!(text.contains("- name: \"system:serviceaccount:ns:sa\""));
        assert!(text.contains("token: \"tok\""));
        assert!(text.contains("current-context: foundry-testbed"));
    }
}
