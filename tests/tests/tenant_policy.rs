//! What a namespace user may not borrow: identities of the nodes and hosts that would receive a
//! credential are the installation's choice. The operator (shipped RBAC, loopback hosts allowed as
//! the test stack needs) refuses everything else before it reads a Secret or asks for a token.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use foundry_gateway_tests::world::{
    PROJECT_SECRET, World, apply, condition, has_condition, stack, wait_for,
};
use serde_json::{Value, json};

const STALLED: Duration = Duration::from_secs(30);
const PROJECT: &str = "FoundryProject";

/// A FoundryProject like the test world's, with `change` merged into its spec.
fn project_spec(change: Value) -> Value {
    let s = stack();
    let mut spec = json!({
        "armId": EmulatorProject::default_project().arm_id(),
        "endpoint": s.emulator.project_endpoint,
        "managementEndpoint": s.emulator.arm_endpoint,
        "authorityHost": s.token_server.entra_authority_host(),
        "identity": {"clientSecret": {"clientId": "00000000-0000-0000-0000-000000000001",
            "tenantId": DEFAULT_TENANT,
            "secretRef": {"name": PROJECT_SECRET, "key": "clientSecret"}}},
    });
    for (k, v) in change.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn stalled_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |o| {
        has_condition(o, "Stalled", "True", Some(reason))
            && has_condition(o, "Ready", "False", Some(reason))
    }
}

fn stalled_message(object: &Value) -> String {
    condition(object, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Swaps the loopback address the stack uses for another one nobody listens on, which the test
/// operator does not allow.
fn elsewhere(url: &str) -> String {
    url.replace("127.0.0.1", "127.0.0.9")
        .replace("localhost", "127.0.0.9")
}

#[tokio::test]
async fn a_namespace_cannot_use_a_managed_identity_the_installation_did_not_grant_it() {
    let w = World::new("policy-mi", Duration::from_secs(600)).await;
    apply(
        &w.ns,
        PROJECT,
        "node-identity",
        project_spec(json!({"identity": {"managedIdentity": {"clientId": "11111111-2222-3333-4444-555555555555"}}})),
    )
    .await;
    apply(
        &w.ns,
        PROJECT,
        "system-identity",
        project_spec(json!({"identity": {"managedIdentity": {}}})),
    )
    .await;
    apply(
        &w.ns,
        PROJECT,
        "operator-identity",
        project_spec(json!({"identity": {"operatorDefault": {}}})),
    )
    .await;
    for name in ["node-identity", "system-identity", "operator-identity"] {
        let o = wait_for(
            &w.ns,
            PROJECT,
            name,
            STALLED,
            "Stalled IdentityNotAllowed",
            stalled_with("IdentityNotAllowed"),
        )
        .await;
        let message = stalled_message(&o);
        assert!(
            message.contains("not allowed") && message.contains("--allow"),
            "{name}: the message says what an administrator would change: {message}"
        );
    }
    let o = wait_for(&w.ns, PROJECT, "node-identity", STALLED, "Stalled", |_| {
        true
    })
    .await;
    let message = stalled_message(&o);
    assert!(
        message.contains("11111111-2222-3333-4444-555555555555")
            && message.contains(&format!(
                "--allowed-managed-identities {}=11111111-2222-3333-4444-555555555555",
                w.ns.name()
            )),
        "names the identity and the grant that would allow it: {message}"
    );
}

#[tokio::test]
async fn a_tenant_cannot_send_the_project_identity_to_a_host_of_its_choice() {
    let w = World::new("policy-hosts", Duration::from_secs(600)).await;
    let s = stack();
    let cases = [
        (
            "evil-authority",
            json!({"authorityHost": elsewhere(&s.token_server.entra_authority_host())}),
            "spec.authorityHost",
            "--allowed-authority-hosts",
        ),
        (
            "evil-arm",
            json!({"managementEndpoint": elsewhere(&s.emulator.arm_endpoint)}),
            "spec.managementEndpoint",
            "--allowed-arm-hosts",
        ),
        (
            "evil-endpoint",
            json!({"endpoint": elsewhere(&s.emulator.project_endpoint)}),
            "spec.endpoint",
            "--allowed-foundry-hosts",
        ),
    ];
    for (name, change, _, _) in &cases {
        apply(&w.ns, PROJECT, name, project_spec(change.clone())).await;
    }
    for (name, _, field, flag) in &cases {
        let o = wait_for(
            &w.ns,
            PROJECT,
            name,
            STALLED,
            "Stalled HostNotAllowed",
            stalled_with("HostNotAllowed"),
        )
        .await;
        let message = stalled_message(&o);
        assert!(
            message.contains(field) && message.contains("\"127.0.0.9\"") && message.contains(flag),
            "{name}: names the field, the host and the setting: {message}"
        );
    }
    // A connection on such a project waits for it and never probes or writes.
    apply(
        &w.ns,
        "GatewayConnection",
        "on-evil-project",
        json!({
            "projectRef": {"name": "evil-arm"},
            "category": "ModelGateway",
            "target": s.gateway.openai_target(),
            "auth": {"apiKey": {"secretRef": {"name": "missing", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        }),
    )
    .await;
    let o = wait_for(
        &w.ns,
        "GatewayConnection",
        "on-evil-project",
        STALLED,
        "ProjectNotReady",
        |o| has_condition(o, "Ready", "False", Some("ProjectNotReady")),
    )
    .await;
    let message = condition(&o, "Ready").unwrap()["message"].as_str().unwrap();
    assert!(message.contains("--allowed-arm-hosts"), "{message}");
    // The project the world made (loopback hosts, allowed) is still served.
    wait_for(
        &w.ns,
        PROJECT,
        foundry_gateway_tests::world::PROJECT,
        STALLED,
        "Ready",
        |o| has_condition(o, "Ready", "True", None),
    )
    .await;
}
