//! Admission-time authorisation on the test bed's real apiserver (docs/ARCHITECTURE.md, Admission and RBAC):
//! the shipped ValidatingAdmissionPolicy (`config/admission/`, rendered from the chart) refuses a
//! FoundryProject, GatewayConnection or PromptAgent that references a Secret, ConfigMap or
//! ServiceAccount token the requesting user could not get or create themselves, with a message
//! naming the reference and the missing permission, and admits everything the user could do.
//!
//! The users are impersonated by the test bed's admin. Their rights come from Roles in each test's
//! namespace:
//! - `tenant-limited` may read and write the three kinds, and nothing else;
//! - `tenant-full` may also get every Secret and ConfigMap and create ServiceAccount tokens;
//! - `tenant-named` may also get the Secrets named in [`NAMED_SECRETS`], and no other.

// Helpers of this test crate fail the test on purpose when the test bed misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::paths;
use foundry_gateway_tests::harness::{TestNamespace, custom_resource, kubectl, testbed};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Status;
use kube::{Client, Config};
use serde_json::{Value, json};

const LIMITED: &str = "tenant-limited";
const FULL: &str = "tenant-full";
const NAMED: &str = "tenant-named";

/// The Secrets `tenant-named` may get, by name.
const NAMED_SECRETS: [&str; 3] = ["gw-key", "hdr-a", "hdr-b"];

/// How long the apiserver may take to enforce a new policy or new RBAC.
const EFFECT_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Set-up

/// The policy files, applied once per test process (they are cluster-scoped and idempotent).
fn install_policy() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = paths::repo_root().join("config").join("admission");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no policy in {}", dir.display());
        let mut command = kubectl();
        command.args([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=foundry-gateway-tests",
        ]);
        for file in &files {
            command.arg("-f").arg(file);
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "kubectl apply of the policy failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    });
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(owned(groups)),
        resources: Some(owned(resources)),
        verbs: owned(verbs),
        resource_names: (!names.is_empty()).then(|| owned(names)),
        ..PolicyRule::default()
    }
}

/// Grants `rules` to `user` in the namespace through a Role and RoleBinding named `name`.
async fn grant(ns: &TestNamespace, name: &str, user: &str, rules: Vec<PolicyRule>) {
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.name().to_owned()),
        ..ObjectMeta::default()
    };
    Api::<Role>::namespaced(ns.client().clone(), ns.name())
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta.clone(),
                rules: Some(rules),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(ns.client().clone(), ns.name())
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta,
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "Role".to_owned(),
                    name: name.to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "User".to_owned(),
                    name: user.to_owned(),
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
}

/// Whether `user` may, by `kubectl auth can-i --as` (the apiserver's authorizer).
fn may(user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let output = kubectl()
        .args([
            "auth", "can-i", verb, resource, "--as", user, "-n", namespace,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

/// A namespace with the three users' rights in effect and the policy enforced.
async fn tenants(hint: &str) -> TestNamespace {
    install_policy();
    let ns = TestNamespace::new(hint).await;
    let kinds = rule(
        &["gateway.foundry.dev"],
        &["foundryprojects", "gatewayconnections", "promptagents"],
        &[
            "get", "list", "watch", "create", "update", "patch", "delete",
        ],
        &[],
    );
    for user in [LIMITED, FULL, NAMED] {
        grant(&ns, &format!("{user}-objects"), user, vec![kinds.clone()]).await;
    }
    grant(
        &ns,
        "tenant-full-references",
        FULL,
        vec![
            rule(&[""], &["secrets", "configmaps"], &["get"], &[]),
            rule(&[""], &["serviceaccounts/token"], &["create"], &[]),
        ],
    )
    .await;
    grant(
        &ns,
        "tenant-named-secrets",
        NAMED,
        vec![rule(&[""], &["secrets"], &["get"], &NAMED_SECRETS)],
    )
    .await;

    let deadline = Instant::now() + EFFECT_TIMEOUT;
    let resource = "gatewayconnections.gateway.foundry.dev";
    while !(may(LIMITED, "create", resource, ns.name())
        && may(NAMED, "create", resource, ns.name())
        && may(FULL, "get", "secrets", ns.name())
        && may(NAMED, "get", "secrets/hdr-b", ns.name()))
    {
        assert!(
            Instant::now() < deadline,
            "the tenants' RBAC was not in effect within {EFFECT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_until_enforced(&ns).await;
    ns
}

/// The apiserver loads policies asynchronously: creates a connection the policy must refuse until
/// it is refused by the policy (a create admitted before that is deleted again).
async fn wait_until_enforced(ns: &TestNamespace) {
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    let as_limited = client_as(LIMITED).await;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("policy-probe-{attempt}");
        let spec = connection(json!({"apiKey": {"secretRef": {"name": "gw-key", "key": "key"}}}));
        match create(&as_limited, ns, "GatewayConnection", &name, spec).await {
            Err(status) if status.message.contains(ADMISSION_DENIED) => return,
            Ok(_) => {
                api(ns.client(), ns, "GatewayConnection")
                    .delete(&name, &Default::default())
                    .await
                    .unwrap();
            }
            Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "the admission policy was not enforced within {EFFECT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A client of the test bed's admin that impersonates `user`.
async fn client_as(user: &str) -> Client {
    let path = testbed().kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(path).unwrap();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    config.auth_info.impersonate = Some(user.to_owned());
    Client::try_from(config).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Objects

/// What the apiserver says when the policy refuses: `... denied request: <message>`.
const ADMISSION_DENIED: &str = "-reference-access' denied request: ";

fn api(client: &Client, ns: &TestNamespace, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns.name(), &custom_resource(kind))
}

async fn create(
    client: &Client,
    ns: &TestNamespace,
    kind: &str,
    name: &str,
    spec: Value,
) -> Result<DynamicObject, Box<Status>> {
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap();
    map_status(
        api(client, ns, kind)
            .create(&PostParams::default(), &object)
            .await,
    )
}

fn map_status<T>(result: Result<T, kube::Error>) -> Result<T, Box<Status>> {
    match result {
        Ok(value) => Ok(value),
        Err(kube::Error::Api(status)) => Err(status),
        Err(other) => panic!("the request failed before the apiserver answered: {other}"),
    }
}

/// A GatewayConnection to an OpenAI-compatible gateway with `auth`.
fn connection(auth: Value) -> Value {
    json!({
        "projectRef": {"name": "contoso"},
        "category": "ModelGateway",
        "target": "https://llm-gateway.example.com/v1",
        "auth": auth,
        "models": {"static": [{"name": "gpt-4o"}]},
    })
}

fn project(identity: Value) -> Value {
    json!({
        "subscriptionId": "00000000-0000-0000-0000-000000000000",
        "resourceGroup": "rg-contoso-ai",
        "account": "contoso-foundry",
        "project": "agents",
        "identity": identity,
    })
}

/// One reference of one kind: the object that makes it, and the words of its refusal.
struct Reference {
    kind: &'static str,
    spec: Value,
    /// What the user may not do, e.g. `get Secret "gw-key"`.
    missing: &'static str,
    /// The field, e.g. `spec.auth.apiKey.secretRef`.
    field: &'static str,
}

/// Every reference the policy checks.
fn references() -> Vec<Reference> {
    vec![
        Reference {
            kind: "GatewayConnection",
            spec: connection(json!({"apiKey": {"secretRef": {"name": "gw-key", "key": "key"}}})),
            missing: "get Secret \"gw-key\"",
            field: "spec.auth.apiKey.secretRef",
        },
        Reference {
            kind: "GatewayConnection",
            spec: connection(json!({"oauth2": {
                "tokenUrl": "https://login.example.com/oauth2/token",
                "clientId": "foundry-agents",
                "clientSecretRef": {"name": "oauth-client", "key": "clientSecret"},
            }})),
            missing: "get Secret \"oauth-client\"",
            field: "spec.auth.oauth2.clientSecretRef",
        },
        Reference {
            kind: "GatewayConnection",
            spec: {
                // Entra ID references no Secret: the header is the only reference.
                let mut spec = connection(json!({"entraId": {}}));
                spec["category"] = json!("ApiManagement");
                spec["customHeaders"] = json!([
                    {"name": "X-Client-App", "value": "foundry-agents"},
                    {"name": "X-Tenant", "valueFrom": {"name": "tenant-header", "key": "tenant"}},
                ]);
                spec
            },
            missing: "get Secret \"tenant-header\"",
            field: "spec.customHeaders[1].valueFrom",
        },
        Reference {
            kind: "PromptAgent",
            spec: json!({
                "projectRef": {"name": "contoso"},
                "model": {"connectionRef": {"name": "litellm"}, "name": "gpt-4o"},
                "instructionsFrom": {"name": "agent-instructions", "key": "text"},
            }),
            missing: "get ConfigMap \"agent-instructions\"",
            field: "spec.instructionsFrom",
        },
        Reference {
            kind: "FoundryProject",
            spec: project(json!({"clientSecret": {
                "clientId": "11111111-1111-1111-1111-111111111111",
                "tenantId": "22222222-2222-2222-2222-222222222222",
                "secretRef": {"name": "project-identity", "key": "clientSecret"},
            }})),
            missing: "get Secret \"project-identity\"",
            field: "spec.identity.clientSecret.secretRef",
        },
        Reference {
            kind: "FoundryProject",
            spec: project(json!({"workloadIdentity": {
                "clientId": "11111111-1111-1111-1111-111111111111",
                "tenantId": "22222222-2222-2222-2222-222222222222",
                "serviceAccountName": "foundry-agents",
            }})),
            missing: "create serviceaccounts/token for ServiceAccount \"foundry-agents\"",
            field: "spec.identity.workloadIdentity.serviceAccountName",
        },
    ]
}

/// The message the policy gives `user` for `reference` in `ns`.
fn refusal(user: &str, missing: &str, ns: &TestNamespace, field: &str) -> String {
    format!(
        "user \"{user}\" may not {missing} in namespace \"{}\" ({field})",
        ns.name()
    )
}

/// Asserts that the apiserver refused with the policy's Forbidden and `message`.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, Box<Status>>, message: &str, what: &str) {
    let status = match result {
        Ok(object) => panic!("{what} was admitted: {object:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code, 403, "{what}: {status:?}");
    assert_eq!(status.reason, "Forbidden", "{what}: {status:?}");
    assert!(
        status.message.contains(ADMISSION_DENIED) && status.message.contains(message),
        "{what}: the refusal does not say {message:?}: {}",
        status.message
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_reference_the_user_may_not_read_is_refused_naming_the_field_and_the_permission() {
    let ns = tenants("admission-refused").await;
    let limited = client_as(LIMITED).await;
    for (index, reference) in references().into_iter().enumerate() {
        let name = format!("ref-{index}");
        let what = format!("{} {name} ({})", reference.kind, reference.field);
        let created = create(&limited, &ns, reference.kind, &name, reference.spec).await;
        let expected = refusal(LIMITED, reference.missing, &ns, reference.field);
        assert_refused(created, &expected, &what);
    }
    // Nothing was stored.
    for kind in ["GatewayConnection", "PromptAgent", "FoundryProject"] {
        let left = api(ns.client(), &ns, kind)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(left.items.is_empty(), "{kind}: {:?}", left.items);
    }
}

#[tokio::test]
async fn a_user_who_may_read_every_reference_creates_every_kind() {
    let ns = tenants("admission-admitted").await;
    let full = client_as(FULL).await;
    for (index, reference) in references().into_iter().enumerate() {
        let name = format!("ref-{index}");
        let created = create(&full, &ns, reference.kind, &name, reference.spec).await;
        assert!(
            created.is_ok(),
            "{} {name} ({}) was refused: {created:?}",
            reference.kind,
            reference.field
        );
    }
}

#[tokio::test]
async fn a_user_who_may_read_some_secrets_by_name_may_reference_exactly_those() {
    let ns = tenants("admission-named").await;
    let named = client_as(NAMED).await;
    let with_headers = |secrets: &[&str]| {
        let mut spec =
            connection(json!({"apiKey": {"secretRef": {"name": "gw-key", "key": "key"}}}));
        spec["customHeaders"] = secrets
            .iter()
            .enumerate()
            .map(|(i, secret)| json!({"name": format!("X-Header-{i}"), "valueFrom": {"name": secret, "key": "value"}}))
            .collect();
        spec
    };

    // The API key and two header Secrets granted by name, one of them twice.
    let spec = with_headers(&["hdr-a", "gw-key", "hdr-a"]);
    let created = create(&named, &ns, "GatewayConnection", "granted", spec).await;
    assert!(created.is_ok(), "{created:?}");

    // A header Secret not granted is named with the header's index.
    let spec = with_headers(&["hdr-a", "other"]);
    let created = create(&named, &ns, "GatewayConnection", "not-granted", spec).await;
    let expected = refusal(
        NAMED,
        "get Secret \"other\"",
        &ns,
        "spec.customHeaders[1].valueFrom",
    );
    assert_refused(created, &expected, "a header Secret not granted");

    // Each check by name costs a third of an expression's CEL budget: a user who may not get
    // every Secret of the namespace adds at most two new header Secrets per change.
    let spec = with_headers(&["gw-key", "hdr-a", "hdr-b"]);
    let created = create(&named, &ns, "GatewayConnection", "three-new", spec).await;
    let expected = format!(
        "user \"{NAMED}\" may get only some Secrets in namespace \"{}\": reference at most 2 new \
         Secrets in spec.customHeaders[].valueFrom per change (found 3)",
        ns.name()
    );
    assert_refused(created, &expected, "three new header Secrets");

    // A user who may get every Secret has no such limit.
    let full = client_as(FULL).await;
    let spec = with_headers(&["gw-key", "hdr-a", "hdr-b", "other"]);
    let created = create(&full, &ns, "GatewayConnection", "four-new", spec).await;
    assert!(created.is_ok(), "{created:?}");
}

#[tokio::test]
async fn an_update_is_checked_only_for_the_references_it_changes() {
    let ns = tenants("admission-update").await;
    let limited = client_as(LIMITED).await;
    let full = client_as(FULL).await;
    let mut spec = connection(json!({"apiKey": {"secretRef": {"name": "gw-key", "key": "key"}}}));
    spec["customHeaders"] = json!([
        {"name": "X-Tenant", "valueFrom": {"name": "gw-key", "key": "tenant"}},
    ]);
    create(&full, &ns, "GatewayConnection", "shared", spec.clone())
        .await
        .unwrap();
    let as_limited = api(&limited, &ns, "GatewayConnection");

    // A label: no reference changes, so the limited user may make it.
    let labelled = as_limited
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "agents"}}})),
        )
        .await;
    assert!(labelled.is_ok(), "a label change was refused: {labelled:?}");

    // A GitOps re-apply of the same references by another identity, with a spec change.
    let mut reapplied = spec.clone();
    reapplied["target"] = json!("https://llm-gateway.example.com/v2");
    let applied = as_limited
        .patch(
            "shared",
            &PatchParams::apply("gitops").force(),
            &Patch::Apply(json!({
                "apiVersion": "gateway.foundry.dev/v1alpha1",
                "kind": "GatewayConnection",
                "metadata": {"name": "shared"},
                "spec": reapplied,
            })),
        )
        .await;
    assert!(
        applied.is_ok(),
        "a re-apply of unchanged references was refused: {applied:?}"
    );

    // Pointing the API key at a Secret the user may not read is refused, and nothing changes.
    let changed = as_limited
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"auth": {"apiKey": {"secretRef": {"name": "db-password"}}}}}),
            ),
        )
        .await;
    let expected = refusal(
        LIMITED,
        "get Secret \"db-password\"",
        &ns,
        "spec.auth.apiKey.secretRef",
    );
    assert_refused(map_status(changed), &expected, "a changed API key Secret");

    // So is a header that now names another Secret.
    let changed = as_limited
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"customHeaders": [
                {"name": "X-Tenant", "valueFrom": {"name": "db-password", "key": "tenant"}},
            ]}})),
        )
        .await;
    let expected = refusal(
        LIMITED,
        "get Secret \"db-password\"",
        &ns,
        "spec.customHeaders[0].valueFrom",
    );
    assert_refused(map_status(changed), &expected, "a changed header Secret");

    let stored = api(ns.client(), &ns, "GatewayConnection")
        .get("shared")
        .await
        .unwrap();
    let stored = serde_json::to_value(stored).unwrap();
    assert_eq!(
        stored["spec"]["auth"]["apiKey"]["secretRef"]["name"], "gw-key",
        "{stored}"
    );
    assert_eq!(
        stored["spec"]["customHeaders"][0]["valueFrom"]["name"], "gw-key",
        "{stored}"
    );
    assert_eq!(stored["metadata"]["labels"]["team"], "agents");
}

/// The finalizers of a stored object.
fn finalizers(object: &DynamicObject) -> Vec<String> {
    object.metadata.finalizers.clone().unwrap_or_default()
}

/// Lets an object go: without the operator, our finalizer would keep it (and its namespace).
async fn release(ns: &TestNamespace, kind: &str, name: &str) {
    api(ns.client(), ns, kind)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_apiserver_sets_the_operators_finalizer_when_a_connection_or_agent_is_created() {
    const FINALIZER: &str = "gateway.foundry.dev/finalizer";
    let ns = tenants("admission-finalizer").await;
    let full = client_as(FULL).await;
    let spec = || connection(json!({"apiKey": {"secretRef": {"name": "gw-key", "key": "key"}}}));
    // The apiserver loads policies asynchronously: create until the mutation shows.
    let deadline = Instant::now() + EFFECT_TIMEOUT;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let name = format!("finalizer-probe-{attempt}");
        let created = create(&full, &ns, "GatewayConnection", &name, spec())
            .await
            .unwrap();
        let set = finalizers(&created) == [FINALIZER];
        release(&ns, "GatewayConnection", &name).await;
        if set {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the finalizer policy was not in effect within {EFFECT_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let agent = create(
        &full,
        &ns,
        "PromptAgent",
        "agent",
        json!({"projectRef": {"name": "contoso"},
               "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"}}),
    )
    .await
    .unwrap();
    assert_eq!(finalizers(&agent), [FINALIZER]);
    release(&ns, "PromptAgent", "agent").await;
    // A finalizer of the user's own is kept beside ours.
    let mut theirs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "GatewayConnection",
        "metadata": {"name": "theirs", "finalizers": ["example.com/keep"]},
        "spec": spec(),
    }))
    .unwrap();
    theirs = api(&full, &ns, "GatewayConnection")
        .create(&PostParams::default(), &theirs)
        .await
        .unwrap();
    let mut kept = finalizers(&theirs);
    kept.sort();
    assert_eq!(kept, ["example.com/keep", FINALIZER]);
    release(&ns, "GatewayConnection", "theirs").await;
    // A FoundryProject has no finalizer of ours.
    let project = create(
        &full,
        &ns,
        "FoundryProject",
        "project",
        project(json!({"managedIdentity": {}})),
    )
    .await
    .unwrap();
    assert!(
        finalizers(&project).is_empty(),
        "{:?}",
        finalizers(&project)
    );
}
