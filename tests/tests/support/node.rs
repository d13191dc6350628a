//! What the tests with a real node share (`pods.rs`, `gitops.rs`): a test bed with a node that
//! checks the machine is restored when it stops, an OCI registry on loopback that the node pulls
//! from (our images pushed to it), kubectl and Helm on the test bed, the stack on the node's
//! address, and the demo's objects.
//!
//! Included with `#[path]` by each of those test files, which also include the xtask's chart
//! module as `chart`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::node::{self, HostSnapshot, NodePackages};
use foundry_gateway_testbed::pki::Ca;
use foundry_gateway_testbed::process::Mode;
use foundry_gateway_testbed::registry::{Registry, RegistryOptions};
use foundry_gateway_testbed::stack::{OPERATOR_CLIENT_ID, Stack, StackOptions};
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use foundry_gateway_testbed::{Options, Testbed, image, oci};
use serde_json::{Value as Json, json};

/// The operator's namespace.
pub const NAMESPACE: &str = "foundry-system";
/// The ConfigMap with the stack's CA, in [`NAMESPACE`].
pub const CA_CONFIGMAP: &str = "stack-ca";
/// The namespace of the demo's objects.
pub const DEMO_NAMESPACE: &str = "demo";
/// The label of the operator's pods.
pub const POD_SELECTOR: &str = "app.kubernetes.io/name=foundry-gateway-operator";

/// Runs `command`, fails the test unless it succeeds, and returns its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("failed to run {command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// kubectl on the test bed.
pub fn kubectl(testbed: &Testbed) -> Command {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", testbed.kubeconfig_path());
    command
}

/// The pinned Helm 4 on the test bed.
pub fn helm(testbed: &Testbed) -> Command {
    let mut command = Command::new(crate::chart::helm_binary().expect("Helm 4 is installed"));
    command.arg("--kubeconfig").arg(testbed.kubeconfig_path());
    command
}

/// `command -o json`, parsed.
pub fn json(command: &mut Command) -> Json {
    serde_json::from_str(&run(command.args(["-o", "json"]))).expect("kubectl printed JSON")
}

/// `kubectl apply --server-side` of `objects` (one object or a `List`). Kinds whose CRDs were
/// just installed (by `helm install`) may take a moment to be served: that is retried for 60 s.
pub fn apply(testbed: &Testbed, objects: &Json) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut child = kubectl(testbed)
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(objects.to_string().as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            return;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let not_served_yet = stderr.contains("There can be a delay")
            || stderr.contains("no matches for kind")
            || stderr.contains("ensure CRDs are installed first");
        assert!(
            not_served_yet && Instant::now() < deadline,
            "kubectl apply failed: {stderr}"
        );
        thread::sleep(Duration::from_secs(1));
    }
}

/// Polls `check` every half second until it returns a value; fails the test after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        thread::sleep(Duration::from_millis(500));
    }
}

/// The operator's pods.
pub fn operator_pods(testbed: &Testbed) -> Vec<Json> {
    let list = json(kubectl(testbed).args(["get", "pods", "-n", NAMESPACE, "-l", POD_SELECTOR]));
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Whether `object` has condition `type` with `status`.
pub fn has_condition(object: &Json, kind: &str, status: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == status)
}

/// A pod that is Ready and not being deleted.
pub fn is_ready(pod: &Json) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null() && has_condition(pod, "Ready", "True")
}

/// A test bed with a node, and what it takes to check that the machine is restored after it.
pub struct NodeBed {
    pub testbed: Testbed,
    before: HostSnapshot,
    packages: NodePackages,
    node_dir: PathBuf,
}

impl NodeBed {
    /// Starts it, or returns `None` (after saying why) when the machine cannot run a node.
    pub fn start() -> Option<Self> {
        if let Err(err) = node::host_capabilities() {
            eprintln!("Skipping: this machine cannot run the test bed's node: {err}");
            return None;
        }
        let packages = node::ensure_node_packages().expect("the node's packages install");
        let before = HostSnapshot::take(&packages);
        let started = Instant::now();
        let testbed = Testbed::start(Options {
            node: true,
            ready_timeout: Duration::from_secs(180),
            ..Options::default()
        })
        .expect("the test bed starts with a node");
        let node_dir = node::node_dir(testbed.state_dir());
        eprintln!(
            "Started the test bed with a node in {:.1?}",
            started.elapsed()
        );
        Some(Self {
            testbed,
            before,
            packages,
            node_dir,
        })
    }

    /// Starts an OCI registry on loopback (TLS from a CA of its own, in the test bed's folder)
    /// and lets the node's containerd pull from it.
    pub fn start_registry(&self) -> Registry {
        let dir = self.testbed.state_dir().join("registry");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::create(&dir, "registry-ca", "foundry-testbed registry CA").unwrap();
        let registry = Registry::start(&RegistryOptions {
            dir,
            ca,
            mode: Mode::attached_to_this_process(),
            ready_timeout: Duration::from_secs(60),
        })
        .expect("the registry starts");
        let node = self.testbed.node().expect("the test bed has a node");
        node.trust_registry(registry.host(), registry.ca_file())
            .expect("the node trusts the registry");
        registry
    }

    /// Builds the operator's and the emulator's images from the release binaries and pushes them
    /// to `registry` as `<name>:<tag>`; returns the operator image's repository and digest.
    pub fn push_images(&self, registry: &Registry, tag: &str) -> (String, String) {
        let started = Instant::now();
        let release = image::build_release_binaries().expect("the release binaries build");
        let ca = std::fs::read_to_string(registry.ca_file()).unwrap();
        let client = oci::Registry::new(registry.host(), Some(&ca)).unwrap();
        let mut operator = None;
        for spec in image::project_images(&release, tag).unwrap() {
            let built = image::build(&spec).unwrap();
            let digest = client
                .push_image(&spec.name, tag, &built)
                .unwrap_or_else(|err| panic!("failed to push {}: {err}", spec.name));
            if spec.name == image::OPERATOR_IMAGE {
                operator = Some((format!("{}/{}", registry.host(), spec.name), digest));
            }
        }
        eprintln!("Built and pushed the images in {:.1?}", started.elapsed());
        operator.expect("the operator's image")
    }

    /// Starts the stack on the node's address and puts its CA into [`NAMESPACE`].
    pub fn start_stack(&self) -> Stack {
        let stack = Stack::start(StackOptions {
            listen: node::NODE_IP,
            ..StackOptions::default()
        })
        .expect("the stack starts on the node's address");
        run(kubectl(&self.testbed).args(["create", "namespace", NAMESPACE]));
        run(kubectl(&self.testbed)
            .args(["create", "configmap", CA_CONFIGMAP, "-n", NAMESPACE])
            .arg(format!("--from-file=ca.crt={}", stack.ca_file().display())));
        stack
    }

    /// Stops the test bed and fails the test unless the machine is as the node found it.
    pub fn finish(mut self) {
        self.testbed
            .stop()
            .expect("the test bed stops and restores the machine");
        let left = node::host_differences(&self.before, &self.packages, &self.node_dir);
        assert!(
            left.is_empty(),
            "the machine is as found:\n{}",
            left.join("\n")
        );
    }
}

/// The chart's values for the operator's image `repository@digest`, talking to the stack on the
/// node's address.
pub fn install_values(repository: &str, digest: &str) -> Json {
    // The stack serves Entra ID, ARM and Foundry on the node's address, under its own CA.
    let host = node::NODE_IP.to_string();
    json!({
        "image": {"repository": repository, "digest": digest},
        "replicas": 2,
        "logFormat": "plain",
        "extraCA": {"name": CA_CONFIGMAP},
        "allowedHosts": {"authority": [host], "arm": [host], "foundry": [host]},
    })
}

/// `--set` arguments of `helm` for the stack on the node's address; the image is the chart's
/// own (a released chart names the image and digest it was released with).
pub fn install_flags() -> Vec<String> {
    let host = node::NODE_IP;
    [
        "replicas=2".to_owned(),
        "logFormat=plain".to_owned(),
        format!("extraCA.name={CA_CONFIGMAP}"),
        format!("allowedHosts.authority={{{host}}}"),
        format!("allowedHosts.arm={{{host}}}"),
        format!("allowedHosts.foundry={{{host}}}"),
    ]
    .into_iter()
    .flat_map(|value| ["--set".to_owned(), value])
    .collect()
}

/// The demo's namespace, Secrets, project, LiteLLM connection (with `gateway_key`) and agent,
/// pointing at the stack on the node's address.
pub fn demo_objects(stack: &Stack, gateway_key: &str) -> Vec<Json> {
    let project = EmulatorProject::default_project();
    let secret = stack
        .client_secret(OPERATOR_CLIENT_ID)
        .expect("the operator's client secret")
        .expose()
        .to_owned();
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}}),
        json!({"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "project-identity", "namespace": DEMO_NAMESPACE},
         "stringData": {"clientSecret": secret}}),
        json!({"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "gateway-key", "namespace": DEMO_NAMESPACE},
         "stringData": {"key": gateway_key}}),
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "FoundryProject",
        "metadata": {"name": "local", "namespace": DEMO_NAMESPACE},
        "spec": {
           "armId": project.arm_id(),
           "endpoint": stack.emulator.project_endpoint,
           "managementEndpoint": stack.emulator.arm_endpoint,
           "authorityHost": stack.token_server.entra_authority_host(),
           "identity": {"clientSecret": {"clientId": OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
               "secretRef": {"name": "project-identity", "key": "clientSecret"}}},
        }}),
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "GatewayConnection",
        "metadata": {"name": "litellm", "namespace": DEMO_NAMESPACE},
        "spec": {
           "projectRef": {"name": "local"}, "connectionName": "litellm", "category": "ModelGateway",
           "target": stack.gateway.openai_target(),
           "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
               "header": "Authorization", "format": "Bearer {api_key}"}},
           "models": {"static": [{"name": "gpt-4o"}]},
        }}),
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent",
        "metadata": {"name": "support-agent", "namespace": DEMO_NAMESPACE},
        "spec": {
           "projectRef": {"name": "local"},
           "model": {"connectionRef": {"name": "litellm"}, "name": "gpt-4o"},
           "instructions": "You are the Contoso support assistant.",
        }}),
    ]
}

/// The demo's objects that the operator makes Ready.
pub const DEMO_OBJECTS: [&str; 3] = [
    "foundryproject/local",
    "gatewayconnection/litellm",
    "promptagent/support-agent",
];

/// Waits until the demo's objects are Ready; on failure prints them and the operator's logs.
pub fn wait_demo_ready(testbed: &Testbed, timeout: Duration) {
    for object in DEMO_OBJECTS {
        let waited = kubectl(testbed)
            .args([
                "wait",
                "--for=condition=Ready",
                object,
                "-n",
                DEMO_NAMESPACE,
            ])
            .arg(format!("--timeout={}s", timeout.as_secs()))
            .output()
            .unwrap();
        if !waited.status.success() {
            let all =
                run(kubectl(testbed).args(["get", "foundry", "-n", DEMO_NAMESPACE, "-o", "yaml"]));
            let logs = run(kubectl(testbed).args([
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                POD_SELECTOR,
                "--tail=40",
            ]));
            panic!("{object} did not become Ready:\n{all}\n{logs}");
        }
    }
}
