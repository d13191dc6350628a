//! Day one and day two of a user, on a test bed with a real node: `cargo xtask release` publishes
//! two versions to an OCI registry on loopback (images built from the release binaries without a
//! container engine, SBOMs attested, everything signed with a throwaway cosign key, the chart
//! pinning the operator image's digest); the signatures and the SBOM verify with the public key,
//! and an image pushed over the released tag does not; `helm install` of the chart from
//! `oci://127.0.0.1:<port>` makes the node's containerd pull the image by digest, two replicas
//! Ready, a read-only root filesystem,
//! `/metrics` and `/readyz` answering on the pod's port, `kubectl logs`; a project, a LiteLLM
//! connection and an agent Ready through the operator's pod (the stack's token server, LiteLLM
//! and the emulator listen on the node's bridge address, which the pods reach); the Lease handed
//! over when the leader pod is deleted and on `helm upgrade` to the second version, with the
//! objects watched all along (Ready never leaves True) and no second Foundry write; deletion
//! policies honoured and `helm uninstall` leaving the objects in place; and afterwards the
//! machine exactly as the node found it.
//!
//! The test skips (and says why) only when the machine cannot run a node at all
//! (`node::host_capabilities`: root, overlayfs, cgroups, `ip`, `gcc`, apt).

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../crates/xtask/src/chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "support/node.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::registry::{Registry, ensure_release_tools};
use foundry_gateway_testbed::stack::Stack;
use foundry_gateway_testbed::{Testbed, cargo_bin, image, node, oci};
use serde_json::{Value as Json, json};
use support::{
    DEMO_NAMESPACE, NAMESPACE, NodeBed, apply, demo_objects, has_condition, helm, install_flags,
    is_ready, json, kubectl, operator_pods, run, wait_demo_ready, wait_until,
};

const RELEASE: &str = "fgo";
const DEPLOYMENT: &str = "fgo-foundry-gateway-operator";
/// The prereleases of the workspace version this test publishes.
const FIRST_PRERELEASE: &str = "pods.1";
const SECOND_PRERELEASE: &str = "pods.2";
/// The operator's Lease duration (run.rs): a deleted leader's Lease is taken over within it.
const LEASE_DURATION: Duration = Duration::from_secs(15);

fn lease_holder(testbed: &Testbed) -> String {
    let lease = json(kubectl(testbed).args(["get", "lease", DEPLOYMENT, "-n", NAMESPACE]));
    lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn pod_names(pods: &[Json]) -> BTreeSet<String> {
    pods.iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Foundry calls of `operation` the emulator has recorded.
fn foundry_calls(stack: &Stack, operation: &str) -> Vec<Json> {
    stack
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("the emulator's request log")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn the_helm_installed_operator_runs_as_ready_pods_of_our_image_and_hands_over_its_lease() {
    let Some(bed) = NodeBed::start() else {
        return;
    };
    let mut registry = bed.start_registry();
    let work = tempfile::tempdir().unwrap();
    let version = chart::workspace_version().unwrap();
    let first = release(
        &registry,
        &format!("{version}-{FIRST_PRERELEASE}"),
        work.path(),
    );
    let second = release(
        &registry,
        &format!("{version}-{SECOND_PRERELEASE}"),
        work.path(),
    );
    verify_before_installing(&registry, &first);
    let stack = bed.start_stack();
    let testbed = &bed.testbed;

    // helm install from the registry, as the README says: the chart names the image by digest.
    let mut install = helm(testbed);
    install
        .args(["install", RELEASE, &first.chart])
        .args(["--version", &first.version])
        .arg("--ca-file")
        .arg(registry.ca_file())
        .args(["--namespace", NAMESPACE])
        .args(install_flags())
        .args(["--wait", "--timeout", "180s"]);
    run(&mut install);

    let pods = wait_until("two Ready operator pods", Duration::from_secs(120), || {
        let pods = operator_pods(testbed);
        (pods.len() == 2 && pods.iter().all(is_ready)).then_some(pods)
    });
    for pod in &pods {
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            first.operator_by_digest()
        );
        let pulled = pod["status"]["containerStatuses"][0]["imageID"]
            .as_str()
            .unwrap_or_default();
        assert!(
            pulled.ends_with(&first.operator_digest),
            "containerd pulled the signed digest, not the tag moved since: {pulled}"
        );
        assert_eq!(pod["spec"]["nodeName"], node::NODE_NAME);
    }
    check_the_pod_as_the_runtime_runs_it(&pods);

    // One leader; its log says so, through `kubectl logs` (apiserver → kubelet).
    let leader = wait_until("a Lease holder", Duration::from_secs(60), || {
        let holder = lease_holder(testbed);
        (!holder.is_empty()).then_some(holder)
    });
    let names = pod_names(&pods);
    assert!(names.contains(&leader), "{leader} is one of {names:?}");
    let logs = run(kubectl(testbed).args(["logs", "-n", NAMESPACE, &leader]));
    assert!(!logs.trim().is_empty(), "the leader logged something");

    // The demo's objects become Ready through the operator's pod.
    apply(
        testbed,
        &json!({"apiVersion": "v1", "kind": "List",
                "items": demo_objects(&stack, stack.gateway.master_key.expose())}),
    );
    wait_demo_ready(testbed, Duration::from_secs(120));

    // From here to the end of the upgrade, every change of the demo's objects is watched.
    let watch = StatusWatch::start(testbed);
    let leader = hand_over_by_deleting_the_leader(testbed, &leader);
    upgrade_to_the_second_release(testbed, &leader, &registry, &second);
    // The new leader's first pass over every object falls inside the watch.
    thread::sleep(Duration::from_secs(10));
    let events = watch.stop();
    let flaps: Vec<&String> = events
        .iter()
        .filter(|e| !e.ends_with("Ready=True"))
        .collect();
    assert!(
        flaps.is_empty(),
        "Ready stays True through both handovers; the watch saw: {events:#?}"
    );
    eprintln!(
        "Watched {} changes of the demo's objects during the handovers, all Ready=True",
        events.len()
    );

    // Three operator processes led in turn; Foundry saw one create of each object.
    assert_eq!(foundry_calls(&stack, "ProjectConnections_Create").len(), 1);
    let versions = foundry_calls(&stack, "Agents_Create").len()
        + foundry_calls(&stack, "Agents_CreateVersion").len();
    assert_eq!(versions, 1, "one agent version, no duplicate");
    let connection =
        json(kubectl(testbed).args(["get", "gatewayconnection/litellm", "-n", DEMO_NAMESPACE]));
    assert_eq!(
        connection["status"]["gatewayState"], "Active",
        "{}",
        connection["status"]
    );

    deletion_policies_then_uninstall(testbed, &stack);
    drop(stack);
    registry.stop().expect("the registry stops");
    bed.finish();
}

/// What `cargo xtask release` published (its `release.json`).
struct Published {
    version: String,
    /// `oci://<registry>/charts/foundry-gateway-operator`.
    chart: String,
    chart_digest: String,
    operator_repository: String,
    operator_digest: String,
    public_key: std::path::PathBuf,
}

impl Published {
    fn operator_by_digest(&self) -> String {
        format!("{}@{}", self.operator_repository, self.operator_digest)
    }
}

/// Runs `cargo xtask release` of `version` to `registry` (its artifacts below `work`).
fn release(registry: &Registry, version: &str, work: &Path) -> Published {
    let xtask = cargo_bin::cargo_binary("xtask", "xtask", "FOUNDRY_XTASK_BIN").unwrap();
    let out = work.join(version);
    let started = Instant::now();
    let printed = run(std::process::Command::new(xtask)
        .args([
            "release",
            "--registry",
            registry.host(),
            "--version",
            version,
        ])
        .arg("--ca-file")
        .arg(registry.ca_file())
        .arg("--out")
        .arg(&out));
    eprintln!(
        "{printed}cargo xtask release took {:.1?}",
        started.elapsed()
    );
    let manifest: Json =
        serde_json::from_str(&std::fs::read_to_string(out.join("release.json")).unwrap()).unwrap();
    let operator = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == image::OPERATOR_IMAGE)
        .unwrap();
    let text = |value: &Json| value.as_str().unwrap().to_owned();
    Published {
        version: text(&manifest["version"]),
        chart: text(&manifest["chart"]["reference"]),
        chart_digest: text(&manifest["chart"]["digest"]),
        operator_repository: text(&operator["repository"]),
        operator_digest: text(&operator["digest"]),
        public_key: text(&manifest["public_key"]).into(),
    }
}

/// cosign of the test bed, trusting the registry's CA.
fn cosign(registry: &Registry) -> std::process::Command {
    let mut command = std::process::Command::new(ensure_release_tools().unwrap().cosign());
    command.env("SSL_CERT_FILE", registry.ca_file());
    command
}

/// What the README asks before installing: the image's and the chart's signatures verify with
/// the release's public key, and the SBOM attestation lists the crates of the binary. An image
/// pushed over the released tag by someone without the key fails the same check, and the chart,
/// which names the image by digest, still installs the signed one.
fn verify_before_installing(registry: &Registry, published: &Published) {
    let key = &published.public_key;
    let verified = run(cosign(registry)
        .args(["verify", "--insecure-ignore-tlog=true", "--key"])
        .arg(key)
        .arg(published.operator_by_digest()));
    assert!(
        verified.contains(&published.operator_digest),
        "cosign verify names the signed digest: {verified}"
    );
    let chart = format!(
        "{}@{}",
        published.chart.trim_start_matches("oci://"),
        published.chart_digest
    );
    run(cosign(registry)
        .args(["verify", "--insecure-ignore-tlog=true", "--key"])
        .arg(key)
        .arg(&chart));

    let attested = run(cosign(registry)
        .args([
            "verify-attestation",
            "--insecure-ignore-tlog=true",
            "--type",
            "cyclonedx",
        ])
        .arg("--key")
        .arg(key)
        .arg(published.operator_by_digest()));
    let envelope: Json = serde_json::from_str(attested.lines().next().unwrap()).unwrap();
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let statement: Json = serde_json::from_slice(&payload).unwrap();
    let bom = &statement["predicate"];
    assert_eq!(bom["bomFormat"], "CycloneDX", "{statement:#}");
    assert_eq!(
        bom["metadata"]["component"]["name"],
        "foundry-gateway-operator"
    );
    let crates: BTreeSet<&str> = bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for linked in ["kube-runtime", "tokio", "reqwest", "rustls"] {
        assert!(
            crates.contains(linked),
            "the SBOM lists {linked}: {crates:?}"
        );
    }
    assert!(
        !crates.contains("proptest"),
        "a dev-dependency is no part of the binary"
    );

    // Someone without the key moves the tag to an image of their own.
    let tampered = image::build(&image::ImageSpec {
        name: image::OPERATOR_IMAGE.to_owned(),
        tag: published.version.clone(),
        entries: vec![image::Entry::file(
            "/usr/local/bin/foundry-gateway-operator",
            b"#!/bin/sh\n".to_vec(),
            0o755,
        )],
        entrypoint: vec!["/usr/local/bin/foundry-gateway-operator".to_owned()],
        env: Vec::new(),
        exposed_ports: Vec::new(),
        user: None,
        labels: Default::default(),
    })
    .unwrap();
    let ca = std::fs::read_to_string(registry.ca_file()).unwrap();
    let client = oci::Registry::new(registry.host(), Some(&ca)).unwrap();
    let moved = client
        .push_image(image::OPERATOR_IMAGE, &published.version, &tampered)
        .unwrap();
    assert_ne!(moved, published.operator_digest);
    let refused = cosign(registry)
        .args(["verify", "--insecure-ignore-tlog=true", "--key"])
        .arg(key)
        .arg(format!(
            "{}:{}",
            published.operator_repository, published.version
        ))
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "an image without our signature fails verification: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    eprintln!(
        "cosign: the release verifies; the tampered image does not: {}",
        String::from_utf8_lossy(&refused.stderr)
            .lines()
            .last()
            .unwrap_or_default()
    );
}

/// What the runtime enforces: a read-only root, a writable `/tmp`, no route off the machine, and
/// the admin port on the pod's address.
fn check_the_pod_as_the_runtime_runs_it(pods: &[Json]) {
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

    for pod in pods {
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
}

/// Deletes the leader pod: the Lease goes to the other replica, or to the replacement pod when
/// that one asks first (the leader releases the Lease as it stops). Returns the new holder.
fn hand_over_by_deleting_the_leader(testbed: &Testbed, leader: &str) -> String {
    let deleted = Instant::now();
    run(kubectl(testbed).args(["delete", "pod", "-n", NAMESPACE, leader, "--wait=false"]));
    let next = wait_until(
        "another pod holding the Lease",
        Duration::from_secs(90),
        || {
            let holder = lease_holder(testbed);
            (!holder.is_empty() && holder != leader).then_some(holder)
        },
    );
    let took = deleted.elapsed();
    eprintln!("The Lease went from {leader} to {next} in {took:.1?}");
    assert!(
        took <= LEASE_DURATION,
        "another pod leads within the Lease duration ({LEASE_DURATION:?}), not {took:?}"
    );
    let current = pod_names(&operator_pods(testbed));
    assert!(
        current.contains(&next),
        "the new leader {next} is one of {current:?}"
    );
    next
}

/// `helm upgrade` to the second release from the registry: new pods of its image (by digest),
/// one of them leads.
fn upgrade_to_the_second_release(
    testbed: &Testbed,
    leader: &str,
    registry: &Registry,
    second: &Published,
) {
    let mut upgrade = helm(testbed);
    upgrade
        .args(["upgrade", RELEASE, &second.chart])
        .args(["--version", &second.version])
        .arg("--ca-file")
        .arg(registry.ca_file())
        .args(["--namespace", NAMESPACE])
        .args(install_flags())
        .args(["--wait", "--timeout", "180s"]);
    run(&mut upgrade);
    let upgraded = wait_until(
        "two Ready pods of the second release",
        Duration::from_secs(120),
        || {
            let pods = operator_pods(testbed);
            let all_new = pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == second.operator_by_digest());
            (pods.len() == 2 && all_new && pods.iter().all(is_ready)).then_some(pods)
        },
    );
    let upgraded = pod_names(&upgraded);
    let holder = wait_until(
        "a pod of the second release holding the Lease",
        Duration::from_secs(90),
        || {
            let holder = lease_holder(testbed);
            upgraded.contains(&holder).then_some(holder)
        },
    );
    assert_ne!(holder, leader);
}

/// Deleting objects while the operator runs honours their deletion policy (Delete: the Foundry
/// object goes; Orphan: it stays); `helm uninstall` then removes the operator and leaves the
/// remaining objects, and what they made in Foundry, in place.
fn deletion_policies_then_uninstall(testbed: &Testbed, stack: &Stack) {
    let kept = demo_objects(stack, stack.gateway.master_key.expose())
        .into_iter()
        .find(|o| o["kind"] == "GatewayConnection")
        .map(|mut o| {
            o["metadata"]["name"] = json!("kept");
            o["spec"]["connectionName"] = json!("kept");
            o["spec"]["deletionPolicy"] = json!("Orphan");
            o
        })
        .unwrap();
    apply(testbed, &kept);
    run(kubectl(testbed).args([
        "wait",
        "--for=condition=Ready",
        "gatewayconnection/kept",
        "-n",
        DEMO_NAMESPACE,
        "--timeout=120s",
    ]));
    run(kubectl(testbed).args([
        "delete",
        "promptagent/support-agent",
        "gatewayconnection/litellm",
        "gatewayconnection/kept",
        "-n",
        DEMO_NAMESPACE,
        "--wait=false",
    ]));
    let gone = std::panic::catch_unwind(|| {
        wait_until("the deleted objects gone", Duration::from_secs(120), || {
            let left = json(kubectl(testbed).args([
                "get",
                "promptagents,gatewayconnections",
                "-n",
                DEMO_NAMESPACE,
            ]));
            left["items"]
                .as_array()
                .is_some_and(Vec::is_empty)
                .then_some(())
        });
    });
    if gone.is_err() {
        let left = run(kubectl(testbed).args([
            "get",
            "promptagents,gatewayconnections",
            "-n",
            DEMO_NAMESPACE,
            "-o",
            "yaml",
        ]));
        let logs = run(kubectl(testbed).args([
            "logs",
            "-n",
            NAMESPACE,
            "-l",
            support::POD_SELECTOR,
            "--tail=60",
        ]));
        panic!("deleted objects are left:\n{left}\n{logs}");
    }
    let deleted: Vec<String> = foundry_calls(stack, "ProjectConnections_Delete")
        .iter()
        .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        deleted.len() == 1 && deleted[0].ends_with("/connections/litellm"),
        "only the Delete-policy connection is deleted in Foundry: {deleted:?}"
    );
    assert!(
        !foundry_calls(stack, "Agents_Delete").is_empty(),
        "the agent is deleted in Foundry"
    );

    let foundry_before = stack.emulator.requests("").unwrap();
    let before_count = foundry_before.as_array().map_or(0, Vec::len);
    run(helm(testbed).args(["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"]));
    wait_until("no operator pods", Duration::from_secs(120), || {
        operator_pods(testbed).is_empty().then_some(())
    });
    let project =
        json(kubectl(testbed).args(["get", "foundryproject/local", "-n", DEMO_NAMESPACE]));
    assert!(
        project["metadata"]["deletionTimestamp"].is_null()
            && has_condition(&project, "Ready", "True"),
        "helm uninstall leaves the objects in place: {project}"
    );
    let writes: Vec<Json> = stack
        .emulator
        .requests("")
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .skip(before_count)
        .filter(|r| r["method"] != "GET")
        .collect();
    assert!(
        writes.is_empty(),
        "uninstall writes nothing to Foundry: {writes:#?}"
    );
}

/// `kubectl get --watch` of the demo's kinds in the background (one watch per kind), each change
/// recorded as `<kind>/<name> generation=<g> Ready=<status>` (the Ready condition of the current
/// generation).
struct StatusWatch {
    watches: Vec<(std::process::Child, thread::JoinHandle<Vec<String>>)>,
}

impl StatusWatch {
    fn start(testbed: &Testbed) -> Self {
        let watches = ["foundryprojects", "gatewayconnections", "promptagents"]
            .into_iter()
            .map(|kind| {
                let mut child = kubectl(testbed)
                    .args(["get", kind, "-n", DEMO_NAMESPACE])
                    .args(["--watch-only", "--output-watch-events", "-o", "json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("kubectl get --watch runs");
                let stdout = child.stdout.take().unwrap();
                let reader = thread::spawn(move || {
                    serde_json::Deserializer::from_reader(BufReader::new(stdout))
                        .into_iter::<Json>()
                        .map_while(Result::ok)
                        .map(|event| describe(&event["object"]))
                        .collect()
                });
                (child, reader)
            })
            .collect();
        // Let the watches open before anything they must see happens.
        thread::sleep(Duration::from_secs(2));
        Self { watches }
    }

    fn stop(self) -> Vec<String> {
        let mut events = Vec::new();
        for (mut child, reader) in self.watches {
            let _ = child.kill();
            let _ = child.wait();
            events.extend(reader.join().expect("the watch reader ends"));
        }
        events
    }
}

fn describe(object: &Json) -> String {
    let generation = &object["metadata"]["generation"];
    let ready = object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .filter(|c| c["observedGeneration"] == *generation || c["observedGeneration"].is_null());
    let status = ready.map_or("Unknown", |c| c["status"].as_str().unwrap_or("Unknown"));
    let reason = ready.map_or("", |c| c["reason"].as_str().unwrap_or_default());
    let message = ready.map_or("", |c| c["message"].as_str().unwrap_or_default());
    format!(
        "{}/{} generation={generation} ({reason}: {message}) Ready={status}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
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
