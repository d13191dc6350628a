//! The operator's world for cluster tests: one Stack (token server, LiteLLM gateway, Foundry
//! emulator) per test binary, and per test a namespace with a FoundryProject pointing at the
//! emulator and an operator process scoped to that namespace, running with exactly the shipped
//! rules granted by a Role of that namespace only (a ServiceAccount token, never admin, no
//! cluster-wide right), as the chart's namespaced install runs it.
//!
//! Everything here panics on failure: it is test support, and a panic is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::operator::{self, Operator, OperatorOptions, RunningOperator};
use foundry_gateway_testbed::stack::{OPERATOR_CLIENT_ID, Stack, StackOptions};
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use crate::harness::{FIELD_MANAGER, TestNamespace, custom_resource, testbed};

static STACK: OnceLock<Result<Stack, String>> = OnceLock::new();

/// The stack of this test binary (started on first use, ended with the process).
pub fn stack() -> &'static Stack {
    let options = || StackOptions {
        projects: vec![EmulatorProject::default_project(), second_project()],
        ..StackOptions::default()
    };
    match STACK.get_or_init(|| Stack::start(options()).map_err(|e| format!("{e}"))) {
        Ok(stack) => stack,
        Err(message) => panic!("the stack did not start: {message}"),
    }
}

/// A second project of the default project's Foundry account (for account-scope connections).
pub fn second_project() -> EmulatorProject {
    EmulatorProject {
        project: "second-project".to_owned(),
        ..EmulatorProject::default_project()
    }
}

/// Name of the FoundryProject every test namespace gets.
pub const PROJECT: &str = "local";
/// Name of the Secret holding the project identity's client secret.
pub const PROJECT_SECRET: &str = "project-identity";

/// A test namespace with a FoundryProject and its own operator.
#[allow(missing_debug_implementations)]
pub struct World {
    /// The namespace (dumped on failure).
    pub ns: TestNamespace,
    /// The operator watching only this namespace.
    pub operator: RunningOperator,
    /// Where the operator's files go.
    pub dir: PathBuf,
}

impl World {
    /// Creates the namespace, the project and starts an operator with the given resync period.
    pub async fn new(hint: &str, resync: Duration) -> Self {
        let stack = stack();
        let ns = TestNamespace::new(hint).await;
        let tb = testbed();
        // The operator watches only this namespace, so it runs as the chart's namespaced install
        // does: the shipped rules in a Role of this namespace, no cluster-wide right.
        let kubeconfig = operator::namespaced_operator_kubeconfig(tb, ns.name())
            .expect("a namespaced ServiceAccount kubeconfig");
        let dir = std::env::temp_dir().join(format!("fgo-{}", ns.name()));
        std::fs::create_dir_all(&dir).expect("operator dir");
        let world_project = EmulatorProject::default_project();
        let secret = stack
            .client_secret(OPERATOR_CLIENT_ID)
            .expect("operator client secret")
            .expose()
            .to_owned();
        let api: Api<Secret> = Api::namespaced(ns.client().clone(), ns.name());
        api.patch(
            PROJECT_SECRET,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": PROJECT_SECRET}, "stringData": {"clientSecret": secret}})),
        )
        .await
        .expect("project secret");
        apply(&ns, "FoundryProject", PROJECT, json!({
            "armId": world_project.arm_id(),
            "endpoint": stack.emulator.project_endpoint,
            "managementEndpoint": stack.emulator.arm_endpoint,
            "authorityHost": stack.token_server.entra_authority_host(),
            "identity": {"clientSecret": {"clientId": OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
                "secretRef": {"name": PROJECT_SECRET, "key": "clientSecret"}}},
        }))
        .await;
        let operator = Operator::start(OperatorOptions {
            watch_namespace: Some(ns.name().to_owned()),
            lease_namespace: ns.name().to_owned(),
            resync,
            leader_elect: false,
            extra_ca_file: Some(stack.ca_file().to_path_buf()),
            extra_args: vec!["--secret-grace".into(), "3s".into()],
            ..OperatorOptions::new(dir.clone(), kubeconfig)
        })
        .expect("the operator starts");
        Self { ns, operator, dir }
    }

    /// The namespace's client.
    pub fn client(&self) -> &Client {
        self.ns.client()
    }
}

/// Server-side applies an object of one of our kinds with the given spec.
pub async fn apply(ns: &TestNamespace, kind: &str, name: &str, spec: Value) -> DynamicObject {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client().clone(), ns.name(), &custom_resource(kind));
    let object = json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name} was rejected: {e}"))
}

/// Server-side applies a Secret with string data.
pub async fn apply_secret(ns: &TestNamespace, name: &str, data: Value) {
    let api: Api<Secret> = Api::namespaced(ns.client().clone(), ns.name());
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})),
    )
    .await
    .unwrap_or_else(|e| panic!("Secret {name} was rejected: {e}"));
}

/// Reads an object of one of our kinds as JSON.
pub async fn get(ns: &TestNamespace, kind: &str, name: &str) -> Option<Value> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client().clone(), ns.name(), &custom_resource(kind));
    api.get_opt(name)
        .await
        .expect("get")
        .map(|o| serde_json::to_value(o).expect("JSON"))
}

/// The condition of `type_` in an object's status.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Asserts the status contract (docs/ARCHITECTURE.md) on one observed object. An object being deleted is
/// Terminating for every GitOps tool (its deletion bumps the generation), so it is not checked.
pub fn assert_status_contract(object: &Value) {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let generation = object["metadata"]["generation"].as_i64();
    let is_true = |t: &str| condition(object, t).is_some_and(|c| c["status"] == "True");
    assert!(
        !(is_true("Reconciling") && is_true("Stalled")),
        "Reconciling and Stalled are both True: {}",
        object["status"]
    );
    if is_true("Reconciling") || is_true("Stalled") {
        assert!(
            !is_true("Ready"),
            "Ready=True while Reconciling or Stalled: {}",
            object["status"]
        );
    }
    // Ready=True must describe the current generation, once the controller has seen it (until
    // then status.observedGeneration lags and every tool reads the object as in progress).
    if is_true("Ready") && object["status"]["observedGeneration"].as_i64() == generation {
        for c in object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(
                c["observedGeneration"].as_i64(),
                generation,
                "Ready=True with a condition of another generation: {}",
                object["status"]
            );
        }
    }
}

/// Polls an object until `done` says yes, checking the status contract on every observation.
pub async fn wait_for(
    ns: &TestNamespace,
    kind: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < timeout {
        if let Some(object) = get(ns, kind, name).await {
            assert_status_contract(&object);
            if done(&object) {
                return object;
            }
            last = object;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{kind} {name}: not {what} within {timeout:?}; last seen status: {}",
        serde_json::to_string_pretty(&last["status"]).unwrap_or_default()
    );
}

/// Whether the object's condition `type_` has `status` (and `reason`, when given) at the
/// current generation.
pub fn has_condition(object: &Value, type_: &str, status: &str, reason: Option<&str>) -> bool {
    condition(object, type_).is_some_and(|c| {
        c["status"] == status
            && reason.is_none_or(|r| c["reason"] == r)
            && c["observedGeneration"] == object["metadata"]["generation"]
    })
}

/// Deletes an object of one of our kinds (foreground is not needed: the finalizer holds it).
pub async fn delete(ns: &TestNamespace, kind: &str, name: &str) {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client().clone(), ns.name(), &custom_resource(kind));
    api.delete(name, &kube::api::DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete {kind} {name}: {e}"));
}

/// Waits until an object is gone (its finalizer removed).
pub async fn wait_gone(ns: &TestNamespace, kind: &str, name: &str, timeout: Duration) {
    let started = Instant::now();
    while started.elapsed() < timeout {
        match get(ns, kind, name).await {
            None => return,
            Some(object) => assert_status_contract(&object),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{kind} {name} still exists after {timeout:?}: {}",
        get(ns, kind, name)
            .await
            .map(|o| o["status"].to_string())
            .unwrap_or_default()
    );
}
