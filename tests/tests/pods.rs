//! Day one of a user, on a test bed with a real node: the operator's image built from the release
//! binaries (no container engine) and loaded into the node's containerd, `helm install` of the
//! chart with that image, two replicas Ready, a read-only root filesystem, `/metrics` and
//! `/readyz` answering on the pod's port, `kubectl logs`, the Lease handed over when the leader
//! pod is deleted and on `helm upgrade` to a second image tag; a project, a LiteLLM connection
//! and an agent Ready through the operator's pod (the stack's token server, LiteLLM and the
//! emulator listen on the node's bridge address, which the pods reach); and afterwards the
//! machine exactly as the node found it.
//!
//! The test skips (and says why) only when the machine cannot run a node at all
//! (`node::host_capabilities`: root, overlayfs, cgroups, `ip`, `gcc`, apt).

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../crates/xtask/src/chart.rs"]
mod chart;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::node::{self, HostSnapshot};
use foundry_gateway_testbed::stack::{OPERATOR_CLIENT_ID, Stack, StackOptions};
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use foundry_gateway_testbed::{Options, Testbed, image};
use serde_json::{Value as Json, json};

const NAMESPACE: &str = "foundry-system";
const RELEASE: &str = "fgo";
const DEPLOYMENT: &str = "fgo-foundry-gateway-operator";
const FIRST_TAG: &str = "pods-test-1";
const SECOND_TAG: &str = "pods-test-2";
const CA_CONFIGMAP: &str = "stack-ca";
const DEMO_NAMESPACE: &str = "demo";

fn run(command: &mut Command) -> String {
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

fn kubectl(testbed: &Testbed) -> Command {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", testbed.kubeconfig_path());
    command
}

fn helm(testbed: &Testbed) -> Command {
    let mut command = Command::new(chart::helm_binary().expect("Helm 4 is installed"));
    command.arg("--kubeconfig").arg(testbed.kubeconfig_path());
    command
}

fn json(command: &mut Command) -> Json {
    serde_json::from_str(&run(command.args(["-o", "json"]))).expect("kubectl printed JSON")
}

fn operator_pods(testbed: &Testbed) -> Vec<Json> {
    let list = json(kubectl(testbed).args([
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/name=foundry-gateway-operator",
    ]));
    list["items"].as_array().cloned().unwrap_or_default()
}

fn is_ready(pod: &Json) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn lease_holder(testbed: &Testbed) -> String {
    let lease = json(kubectl(testbed).args(["get", "lease", DEPLOYMENT, "-n", NAMESPACE]));
    lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        thread::sleep(Duration::from_millis(500));
    }
}

/// A plain HTTP GET from the host to a pod's address (inside the node's network namespaces).
fn http_get(ip: &str, port: u16, path: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|err| panic!("failed to connect to {ip}:{port}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

/// The pid of a container's first process, found by its entrypoint, in a pod's cgroup.
fn container_pid(pod_uid: &str) -> u32 {
    let marker = pod_uid.replace('-', "_");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if (cgroup.contains(pod_uid) || cgroup.contains(&marker))
            && String::from_utf8_lossy(&cmdline)
                .starts_with("/usr/local/bin/foundry-gateway-operator")
        {
            return pid;
        }
    }
    panic!("no operator process of pod {pod_uid}");
}

fn build_and_load_images(testbed: &Testbed) {
    let started = Instant::now();
    let release = image::build_release_binaries().expect("the release binaries build");
    let out = tempfile::tempdir().unwrap();
    let node = testbed.node().expect("the test bed has a node");
    for tag in [FIRST_TAG, SECOND_TAG] {
        for (spec, written) in image::write_project_images(&release, tag, out.path()).unwrap() {
            node.import_image(&written.archive)
                .unwrap_or_else(|err| panic!("failed to load {}: {err}", spec.reference()));
        }
    }
    eprintln!("Built and loaded the images in {:.1?}", started.elapsed());
}

fn install_values(tag: &str) -> Vec<String> {
    // The stack serves Entra ID, ARM and Foundry on the node's address, under its own CA.
    let host = node::NODE_IP;
    [
        format!("image.repository={}", image::OPERATOR_IMAGE),
        format!("image.tag={tag}"),
        "image.pullPolicy=Never".to_owned(),
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

#[test]
fn the_helm_installed_operator_runs_as_ready_pods_of_our_image_and_hands_over_its_lease() {
    if let Err(err) = node::host_capabilities() {
        eprintln!("Skipping: this machine cannot run the test bed's node: {err}");
        return;
    }
    let packages = node::ensure_node_packages().expect("the node's packages install");
    let before = HostSnapshot::take(&packages);
    let started = Instant::now();
    let mut testbed = Testbed::start(Options {
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

    build_and_load_images(&testbed);

    // The stack the operator's pods talk to, on the node's bridge address.
    let stack = Stack::start(StackOptions {
        listen: node::NODE_IP,
        ..StackOptions::default()
    })
    .expect("the stack starts on the node's address");
    run(kubectl(&testbed).args(["create", "namespace", NAMESPACE]));
    run(kubectl(&testbed)
        .args(["create", "configmap", CA_CONFIGMAP, "-n", NAMESPACE])
        .arg(format!("--from-file=ca.crt={}", stack.ca_file().display())));

    // helm install, as the README says, with our image.
    let mut install = helm(&testbed);
    install
        .args(["install", RELEASE])
        .arg(chart::chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(install_values(FIRST_TAG))
        .args(["--wait", "--timeout", "180s"]);
    run(&mut install);

    let pods = wait_until("two Ready operator pods", Duration::from_secs(120), || {
        let pods = operator_pods(&testbed);
        (pods.len() == 2 && pods.iter().all(is_ready)).then_some(pods)
    });
    for pod in &pods {
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            format!("{}:{FIRST_TAG}", image::OPERATOR_IMAGE)
        );
        assert_eq!(pod["spec"]["nodeName"], node::NODE_NAME);
    }

    // The root filesystem is read-only; /tmp (an emptyDir) is writable.
    let uid = pods[0]["metadata"]["uid"].as_str().unwrap();
    let process = Path::new("/proc").join(container_pid(uid).to_string());
    let root = process.join("root");
    let write = std::fs::write(root.join("written-by-test"), "x");
    assert_eq!(
        write.as_ref().map_err(std::io::Error::raw_os_error),
        Err(Some(30)),
        "a write to the container's root fails with EROFS: {write:?}"
    );
    std::fs::write(root.join("tmp/written-by-test"), "x").expect("/tmp is writable");
    std::fs::remove_file(root.join("tmp/written-by-test")).unwrap();

    // The pod network leads nowhere off the machine: no default route in the pod.
    let routes = std::fs::read_to_string(process.join("net/route")).unwrap();
    assert!(
        !routes
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(1) == Some("00000000")),
        "a pod has no default route:\n{routes}"
    );

    // The admin port answers on the pod's address.
    for pod in &pods {
        let ip = pod["status"]["podIP"].as_str().unwrap();
        let (status, body) = http_get(ip, 8080, "/readyz");
        assert_eq!(status, 200, "{body}");
        let (status, metrics) = http_get(ip, 8080, "/metrics");
        assert_eq!(status, 200);
        assert!(
            metrics.contains("foundry_gateway_"),
            "metrics name the operator's series: {metrics}"
        );
    }

    // One leader; its log says so, through `kubectl logs` (apiserver → kubelet).
    let leader = wait_until("a Lease holder", Duration::from_secs(60), || {
        let holder = lease_holder(&testbed);
        (!holder.is_empty()).then_some(holder)
    });
    let names: BTreeSet<String> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&leader), "{leader} is one of {names:?}");
    let logs = run(kubectl(&testbed).args(["logs", "-n", NAMESPACE, &leader]));
    assert!(!logs.trim().is_empty(), "the leader logged something");

    // Deleting the leader pod hands the Lease on: to the other replica, or to the replacement pod
    // when that one asks first (the leader releases the Lease as it stops).
    run(kubectl(&testbed).args(["delete", "pod", "-n", NAMESPACE, &leader, "--wait=false"]));
    let next = wait_until(
        "another pod holding the Lease",
        Duration::from_secs(90),
        || {
            let holder = lease_holder(&testbed);
            (!holder.is_empty() && holder != leader).then_some(holder)
        },
    );
    let current: BTreeSet<String> = operator_pods(&testbed)
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        current.contains(&next),
        "the new leader {next} is one of {current:?}"
    );

    // helm upgrade to the second tag: new pods of the new image, one of them leads.
    let mut upgrade = helm(&testbed);
    upgrade
        .args(["upgrade", RELEASE])
        .arg(chart::chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(install_values(SECOND_TAG))
        .args(["--wait", "--timeout", "180s"]);
    run(&mut upgrade);
    let upgraded = wait_until(
        "two Ready pods of the second tag",
        Duration::from_secs(120),
        || {
            let pods = operator_pods(&testbed);
            let all_new = pods.iter().all(|p| {
                p["spec"]["containers"][0]["image"]
                    == format!("{}:{SECOND_TAG}", image::OPERATOR_IMAGE)
            });
            (pods.len() == 2 && all_new && pods.iter().all(is_ready)).then_some(pods)
        },
    );
    let upgraded: BTreeSet<String> = upgraded
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    wait_until(
        "a pod of the second tag holding the Lease",
        Duration::from_secs(90),
        || upgraded.contains(&lease_holder(&testbed)).then_some(()),
    );

    // The demo's objects become Ready through the operator's pod.
    apply_demo_objects(&testbed, &stack);
    for object in [
        "foundryproject/local",
        "gatewayconnection/litellm",
        "promptagent/support-agent",
    ] {
        let waited = kubectl(&testbed)
            .args([
                "wait",
                "--for=condition=Ready",
                object,
                "-n",
                DEMO_NAMESPACE,
            ])
            .args(["--timeout=120s"])
            .output()
            .unwrap();
        if !waited.status.success() {
            let all =
                run(kubectl(&testbed).args(["get", "foundry", "-n", DEMO_NAMESPACE, "-o", "yaml"]));
            let logs = run(kubectl(&testbed).args([
                "logs",
                "-n",
                NAMESPACE,
                "-l",
                "app.kubernetes.io/name=foundry-gateway-operator",
                "--tail=40",
            ]));
            panic!("{object} did not become Ready:\n{all}\n{logs}");
        }
    }
    let connection =
        json(kubectl(&testbed).args(["get", "gatewayconnection/litellm", "-n", DEMO_NAMESPACE]));
    assert_eq!(
        connection["status"]["gatewayState"], "Active",
        "{}",
        connection["status"]
    );
    drop(stack);

    // Stopping the test bed puts the machine back as the node found it.
    testbed
        .stop()
        .expect("the test bed stops and restores the machine");
    let left = node::host_differences(&before, &packages, &node_dir);
    assert!(
        left.is_empty(),
        "the machine is as found:\n{}",
        left.join("\n")
    );
}

/// The demo's project, LiteLLM connection and agent, pointing at the stack on the node's address.
fn apply_demo_objects(testbed: &Testbed, stack: &Stack) {
    let project = EmulatorProject::default_project();
    let secret = stack
        .client_secret(OPERATOR_CLIENT_ID)
        .expect("the operator's client secret")
        .expose()
        .to_owned();
    let objects = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}},
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "project-identity", "namespace": DEMO_NAMESPACE},
             "stringData": {"clientSecret": secret}},
            {"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "gateway-key", "namespace": DEMO_NAMESPACE},
             "stringData": {"key": stack.gateway.master_key.expose()}},
            {"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "FoundryProject",
             "metadata": {"name": "local", "namespace": DEMO_NAMESPACE},
             "spec": {
                "armId": project.arm_id(),
                "endpoint": stack.emulator.project_endpoint,
                "managementEndpoint": stack.emulator.arm_endpoint,
                "authorityHost": stack.token_server.entra_authority_host(),
                "identity": {"clientSecret": {"clientId": OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
                    "secretRef": {"name": "project-identity", "key": "clientSecret"}}},
             }},
            {"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "GatewayConnection",
             "metadata": {"name": "litellm", "namespace": DEMO_NAMESPACE},
             "spec": {
                "projectRef": {"name": "local"}, "connectionName": "litellm", "category": "ModelGateway",
                "target": stack.gateway.openai_target(),
                "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                    "header": "Authorization", "format": "Bearer {api_key}"}},
                "models": {"static": [{"name": "gpt-4o"}]},
             }},
            {"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent",
             "metadata": {"name": "support-agent", "namespace": DEMO_NAMESPACE},
             "spec": {
                "projectRef": {"name": "local"},
                "model": {"connectionRef": {"name": "litellm"}, "name": "gpt-4o"},
                "instructions": "You are the Contoso support assistant.",
             }},
        ],
    });
    let mut apply = kubectl(testbed);
    apply
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = apply.spawn().expect("kubectl runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(objects.to_string().as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
