//! Flux for real, on a test bed with a node: source-controller, kustomize-controller and
//! helm-controller built from their Go modules (`foundry_gateway_testbed::flux`) run against the
//! test bed; a Git repository served over HTTP on loopback holds the chart and the demo's
//! objects. A HelmRelease installs the operator from the repository (pods of our image, pulled
//! by digest from the registry on loopback, on the node), and a Kustomization with the chart's `healthCheckExprs` applies the demo's objects and
//! waits for them: Ready when they are; unhealthy, naming the GatewayConnection, when its gateway
//! is Inactive (a wrong key committed); Ready again once the right key is back in Git.
//!
//! Flux's CEL evaluator gives a status and no message (RFC 0009), so the Kustomization names the
//! failing object and our reason is on that object (`GatewayInactive`, `GatewayActive` with the
//! cause).
//!
//! The test skips (and says why) only when the machine cannot run a node at all.

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../crates/xtask/src/chart.rs"]
mod chart;
#[allow(dead_code)]
#[path = "support/node.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foundry_gateway_testbed::Testbed;
use foundry_gateway_testbed::flux::{FLUX_NAMESPACE, Flux, FluxOptions, copy_tree};
use foundry_gateway_testbed::process::Mode;
use foundry_gateway_testbed::stack::Stack;
use serde_json::{Value as Json, json};
use support::{
    DEMO_NAMESPACE, NAMESPACE, NodeBed, apply, demo_objects, has_condition, install_values,
    is_ready, json, kubectl, operator_pods, run, wait_until,
};

const TAG: &str = "gitops-test-1";
const REPOSITORY: &str = "fleet";

/// The repository's tree: the chart as it is in this checkout, and the demo's objects.
fn write_tree(dir: &Path, stack: &Stack, gateway_key: &str) {
    copy_tree(
        &chart::chart_dir(),
        &dir.join("charts").join("foundry-gateway-operator"),
    )
    .unwrap();
    let demo = dir.join("demo");
    fs::create_dir_all(&demo).unwrap();
    let documents: Vec<String> = demo_objects(stack, gateway_key)
        .iter()
        .map(|object| serde_yaml::to_string(object).unwrap())
        .collect();
    fs::write(demo.join("objects.yaml"), documents.join("---\n")).unwrap();
}

/// The chart's Flux health checks (`health/flux/healthcheckexprs.yaml`).
fn health_check_exprs() -> Json {
    let path = chart::chart_dir()
        .join("health")
        .join("flux")
        .join("healthcheckexprs.yaml");
    let file: Json = serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    file["healthCheckExprs"].clone()
}

/// Flux's objects; the HelmRelease runs the operator's image `repository@digest`.
fn flux_objects(flux: &Flux, (repository, digest): (&str, &str)) -> Json {
    let source = json!({"kind": "GitRepository", "name": REPOSITORY});
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
         "metadata": {"name": REPOSITORY, "namespace": FLUX_NAMESPACE},
         "spec": {"url": flux.git_url(REPOSITORY), "ref": {"branch": "main"}, "interval": "1m"}},
        {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
         "metadata": {"name": "foundry-gateway-operator", "namespace": FLUX_NAMESPACE},
         "spec": {
            "interval": "5m",
            "releaseName": "fgo",
            "targetNamespace": NAMESPACE,
            "storageNamespace": NAMESPACE,
            "chart": {"spec": {"chart": "./charts/foundry-gateway-operator",
                               "sourceRef": source, "reconcileStrategy": "Revision"}},
            "install": {"crds": "Create", "timeout": "5m"},
            "upgrade": {"crds": "CreateReplace"},
            "values": install_values(repository, digest),
         }},
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
         "metadata": {"name": "demo", "namespace": FLUX_NAMESPACE},
         "spec": {
            "interval": "5m",
            "retryInterval": "10s",
            "path": "./demo",
            "prune": true,
            "wait": true,
            "timeout": "2m",
            "sourceRef": source,
            "healthCheckExprs": health_check_exprs(),
         }},
    ]})
}

fn get(testbed: &Testbed, object: &str, namespace: &str) -> Json {
    json(kubectl(testbed).args(["get", object, "-n", namespace]))
}

fn ready_condition(object: &Json) -> Json {
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or(Json::Null)
}

/// Asks Flux to reconcile `object` now (what `flux reconcile` does).
fn request_reconcile(testbed: &Testbed, object: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    run(kubectl(testbed).args([
        "annotate",
        "--overwrite",
        "-n",
        FLUX_NAMESPACE,
        object,
        &format!("reconcile.fluxcd.io/requestedAt={now}"),
    ]));
}

/// Publishes the tree with `gateway_key` and waits until the GitRepository serves that commit.
fn publish(
    testbed: &Testbed,
    flux: &Flux,
    stack: &Stack,
    gateway_key: &str,
    message: &str,
) -> String {
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path(), stack, gateway_key);
    let commit = flux.publish(REPOSITORY, tree.path(), message).unwrap();
    request_reconcile(testbed, &format!("gitrepository/{REPOSITORY}"));
    wait_until(
        "the GitRepository to serve the new commit",
        Duration::from_secs(60),
        || {
            let repository = get(
                testbed,
                &format!("gitrepository/{REPOSITORY}"),
                FLUX_NAMESPACE,
            );
            repository["status"]["artifact"]["revision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&commit))
                .then_some(())
        },
    );
    commit
}

/// Waits until the Kustomization has reconciled `commit` with Ready=`status`; returns Ready.
fn wait_kustomization(testbed: &Testbed, commit: &str, status: &str, timeout: Duration) -> Json {
    let mut last = Json::Null;
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the Kustomization's verdict", timeout, || {
            let kustomization = get(testbed, "kustomization/demo", FLUX_NAMESPACE);
            last = kustomization["status"].clone();
            let attempted = kustomization["status"]["lastAttemptedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(commit));
            let ready = ready_condition(&kustomization);
            (attempted && ready["status"] == status).then_some(ready)
        })
    }));
    found.unwrap_or_else(|_| {
        panic!(
            "the Kustomization did not report Ready={status} for {commit}: {last:#}\n{}",
            run(kubectl(testbed).args(["get", "foundry", "-n", DEMO_NAMESPACE, "-o", "yaml"]))
        )
    })
}

#[test]
fn flux_installs_the_operator_from_git_and_judges_the_objects_with_our_health_checks() {
    let Some(bed) = NodeBed::start() else {
        return;
    };
    let mut registry = bed.start_registry();
    let (repository, digest) = bed.push_images(&registry, TAG);
    let stack = bed.start_stack();
    let testbed = &bed.testbed;
    let flux_dir = tempfile::tempdir().unwrap();
    let mut flux = Flux::start(&FluxOptions {
        kubeconfig: testbed.kubeconfig_path().to_path_buf(),
        dir: flux_dir.path().to_path_buf(),
        mode: Mode::attached_to_this_process(),
        ready_timeout: Duration::from_secs(60),
    })
    .expect("Flux starts");

    // Day one from Git: the chart and the objects are committed, Flux does the rest.
    let key = stack.gateway.master_key.expose().to_owned();
    let tree = tempfile::tempdir().unwrap();
    write_tree(tree.path(), &stack, &key);
    let first = flux
        .publish(REPOSITORY, tree.path(), "The operator and the demo")
        .unwrap();
    apply(testbed, &flux_objects(&flux, (&repository, &digest)));

    let release = wait_until("the HelmRelease Ready", Duration::from_secs(420), || {
        let release = get(
            testbed,
            "helmrelease/foundry-gateway-operator",
            FLUX_NAMESPACE,
        );
        (ready_condition(&release)["status"] == "True").then_some(release)
    });
    eprintln!("HelmRelease: {}", ready_condition(&release)["message"]);
    let pods = operator_pods(testbed);
    assert_eq!(pods.len(), 2, "two replicas");
    for pod in &pods {
        assert!(is_ready(pod));
        assert_eq!(
            pod["spec"]["containers"][0]["image"],
            format!("{repository}@{digest}"),
            "the pods run the pushed image by digest"
        );
    }
    let ready = wait_kustomization(testbed, &first, "True", Duration::from_secs(300));
    eprintln!("Kustomization, healthy: {ready}");
    for object in support::DEMO_OBJECTS {
        let object = get(testbed, object, DEMO_NAMESPACE);
        assert!(has_condition(&object, "Ready", "True"), "{object}");
    }

    // A wrong key committed to Git: the gateway turns Inactive, and the Kustomization's health
    // check fails on the GatewayConnection.
    let broken = publish(
        testbed,
        &flux,
        &stack,
        "sk-wrong-key",
        "A wrong gateway key",
    );
    request_reconcile(testbed, "kustomization/demo");
    let connection = wait_until("the connection Inactive", Duration::from_secs(120), || {
        let connection = get(testbed, "gatewayconnection/litellm", DEMO_NAMESPACE);
        (connection["status"]["gatewayState"] == "Inactive").then_some(connection)
    });
    let reason = ready_condition(&connection)["reason"].clone();
    assert_eq!(reason, "GatewayInactive", "{}", connection["status"]);
    // The health check may have passed before the operator saw the new Secret; ask again.
    request_reconcile(testbed, "kustomization/demo");
    let unhealthy = wait_kustomization(testbed, &broken, "False", Duration::from_secs(180));
    let message = unhealthy["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "GatewayConnection/{DEMO_NAMESPACE}/litellm status: 'Failed'"
        )),
        "the Kustomization names the Inactive connection as Failed (our `failed` expression; \
         kstatus alone would wait for it as InProgress): {unhealthy}"
    );
    assert!(
        !message.contains("PromptAgent") && !message.contains("FoundryProject"),
        "only the connection fails: {unhealthy}"
    );
    eprintln!("Kustomization, unhealthy: {unhealthy}");

    // The right key back in Git: healthy again.
    let fixed = publish(testbed, &flux, &stack, &key, "The right gateway key");
    request_reconcile(testbed, "kustomization/demo");
    wait_until("the connection Active", Duration::from_secs(120), || {
        let connection = get(testbed, "gatewayconnection/litellm", DEMO_NAMESPACE);
        (connection["status"]["gatewayState"] == "Active").then_some(())
    });
    request_reconcile(testbed, "kustomization/demo");
    wait_kustomization(testbed, &fixed, "True", Duration::from_secs(180));

    flux.stop().expect("Flux stops");
    drop(stack);
    registry.stop().expect("the registry stops");
    bed.finish();
}
