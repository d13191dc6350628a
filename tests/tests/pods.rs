//! Day one and day two of a user, on a test bed with a real node: the operator's image built from
//! the release binaries (no container engine) and loaded into the node's containerd, `helm
//! install` of the chart with that image, two replicas Ready, a read-only root filesystem,
//! `/metrics` and `/readyz` answering on the pod's port, `kubectl logs`; a project, a LiteLLM
//! connection and an agent Ready through the operator's pod (the stack's token server, LiteLLM
//! and the emulator listen on the node's bridge address, which the pods reach); the Lease handed
//! over when the leader pod is deleted and on `helm upgrade` to a second image tag, with the
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

use foundry_gateway_testbed::stack::Stack;
use foundry_gateway_testbed::{Testbed, image, node};
use serde_json::{Value as Json, json};
use support::{
    DEMO_NAMESPACE, NAMESPACE, NodeBed, apply, demo_objects, has_condition, helm, install_flags,
    is_ready, json, kubectl, operator_pods, run, wait_demo_ready, wait_until,
};

const RELEASE: &str = "fgo";
const DEPLOYMENT: &str = "fgo-foundry-gateway-operator";
const FIRST_TAG: &str = "pods-test-1";
const SECOND_TAG: &str = "pods-test-2";
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
    bed.load_images(&[FIRST_TAG, SECOND_TAG]);
    let stack = bed.start_stack();
    let testbed = &bed.testbed;

    // helm install, as the README says, with our image.
    let mut install = helm(testbed);
    install
        .args(["install", RELEASE])
        .arg(chart::chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(install_flags(FIRST_TAG))
        .args(["--wait", "--timeout", "180s"]);
    run(&mut install);

    let pods = wait_until("two Ready operator pods", Duration::from_secs(120), || {
        let pods = operator_pods(testbed);
        (pods.len() == 2 && pods.iter().all(is_ready)).then_some(pods)
    });
    for pod in &pods {
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            format!("{}:{FIRST_TAG}", image::OPERATOR_IMAGE)
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
    upgrade_to_the_second_tag(testbed, &leader);
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
    bed.finish();
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

/// `helm upgrade` to the second tag: new pods of the new image, one of them leads.
fn upgrade_to_the_second_tag(testbed: &Testbed, leader: &str) {
    let mut upgrade = helm(testbed);
    upgrade
        .args(["upgrade", RELEASE])
        .arg(chart::chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(install_flags(SECOND_TAG))
        .args(["--wait", "--timeout", "180s"]);
    run(&mut upgrade);
    let upgraded = wait_until(
        "two Ready pods of the second tag",
        Duration::from_secs(120),
        || {
            let pods = operator_pods(testbed);
            let all_new = pods.iter().all(|p| {
                p["spec"]["containers"][0]["image"]
                    == format!("{}:{SECOND_TAG}", image::OPERATOR_IMAGE)
            });
            (pods.len() == 2 && all_new && pods.iter().all(is_ready)).then_some(pods)
        },
    );
    let upgraded = pod_names(&upgraded);
    let holder = wait_until(
        "a pod of the second tag holding the Lease",
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
