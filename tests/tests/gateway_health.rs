//! `GatewayActive` tells the truth for the models and identities real customers use: a
//! reasoning model that refuses `max_tokens`, an APIM gateway that accepts only the project's
//! managed identity (its `xms_mirid` claim), and a connection on the Foundry account that
//! every project of the account can use. The operator runs under the shipped RBAC against the
//! emulator, LiteLLM and the token server.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use foundry_gateway_testbed::gateway::{
    COGNITIVE_SERVICES_AUDIENCE, Gateway, GatewayModel, GatewayOptions, JwtAuth, REASONING_MODEL,
    RequiredClaim,
};
use foundry_gateway_testbed::token_server::{DEFAULT_TENANT, managed_identity_mirid};
use foundry_gateway_tests::world::{
    PROJECT_SECRET, World, apply, apply_secret, condition, get, has_condition, second_project,
    stack, wait_for,
};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const GWC: &str = "GatewayConnection";

fn active(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
        && has_condition(o, "GatewayActive", "True", Some("Active"))
}

fn key_secret() -> Value {
    json!({"key": stack().gateway.master_key.expose()})
}

fn prefix(w: &World) -> String {
    w.ns.name().chars().take(12).collect()
}

/// Responses the operator asked of the emulator for a model (probe mode Foundry).
fn foundry_probe_calls(model: &str) -> usize {
    let all = stack().emulator.requests("").expect("request log");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/openai/v1/responses"))
                && r["requestBody"]["model"] == model
        })
        .count()
}

#[tokio::test]
async fn a_reasoning_model_that_refuses_max_tokens_is_active() {
    let w = World::new("health-reasoning", Duration::from_secs(600)).await;
    let s = stack();
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(&w.ns, GWC, "reasoning", json!({
        "projectRef": {"name": "local"}, "connectionName": format!("{}-reason", prefix(&w)),
        "category": "ModelGateway", "target": s.gateway.openai_target(),
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}, "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": REASONING_MODEL}]},
        "probe": {"mode": "Inference", "interval": "10s", "timeout": "5s"},
    }))
    .await;
    let o = wait_for(&w.ns, GWC, "reasoning", READY, "Ready and Active", active).await;
    assert_eq!(o["status"]["models"], json!([REASONING_MODEL]));
}

#[tokio::test]
async fn an_entra_connection_is_judged_by_foundry_with_the_projects_identity() {
    let w = World::new("health-entra", Duration::from_secs(600)).await;
    let s = stack();
    let p = prefix(&w);
    // The stack's gateway accepts Entra tokens for Cognitive Services only with the xms_mirid of
    // one of the emulator's projects, as the APIM setup guide's policy does.
    let spec = |name: String, target: String, probe: Value| {
        json!({
            "projectRef": {"name": "local"}, "connectionName": name, "category": "ApiManagement",
            "target": target, "inferenceApiVersion": "2024-02-01",
            "auth": {"entraId": {"audience": COGNITIVE_SERVICES_AUDIENCE}},
            "models": {"static": [{"name": "gpt-4o"}]},
            "probe": probe,
        })
    };
    let good = format!("{p}-entra");
    apply(
        &w.ns,
        GWC,
        "entra",
        spec(
            good.clone(),
            s.gateway.azure_target(),
            json!({"interval": "10s", "timeout": "5s"}),
        ),
    )
    .await;
    wait_for(
        &w.ns,
        GWC,
        "entra",
        READY,
        "Ready and Active through Foundry",
        active,
    )
    .await;
    assert!(
        foundry_probe_calls(&format!("{good}/gpt-4o")) >= 1,
        "probe mode Auto asked Foundry (a response with model <connection>/<model>)"
    );

    // A gateway that admits another project's identity only: Foundry's call is refused.
    let mut options = GatewayOptions::new(w.dir.join("other-gateway"), s.ca().clone());
    options.models = GatewayModel::defaults();
    options.jwt = Some(JwtAuth {
        jwks_url: format!("{}/jwks", s.token_server.base_url),
        audiences: vec![COGNITIVE_SERVICES_AUDIENCE.to_owned()],
        issuer: Some(s.token_server.base_url.clone()),
        required_claims: vec![RequiredClaim::mirid(
            COGNITIVE_SERVICES_AUDIENCE,
            &managed_identity_mirid(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-other/providers/Microsoft.CognitiveServices/accounts/other/projects/other",
            ),
        )],
    });
    let other = Gateway::start(options).expect("a second gateway");
    apply(
        &w.ns,
        GWC,
        "entra-refused",
        spec(
            format!("{p}-refused"),
            other.azure_target(),
            json!({"interval": "10s", "timeout": "5s"}),
        ),
    )
    .await;
    let o = wait_for(
        &w.ns,
        GWC,
        "entra-refused",
        READY,
        "Inactive Unauthorized",
        |o| {
            has_condition(o, "GatewayActive", "False", Some("Unauthorized"))
                && has_condition(o, "Ready", "False", Some("GatewayInactive"))
        },
    )
    .await;
    let message = condition(&o, "GatewayActive").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("Foundry"),
        "the verdict is what Foundry saw: {message}"
    );

    // A direct probe uses the operator's own identity: a refusal proves nothing, so it is never
    // reported as Inactive.
    apply(
        &w.ns,
        GWC,
        "entra-direct",
        spec(
            format!("{p}-direct"),
            other.azure_target(),
            json!({"mode": "Inference", "interval": "10s", "timeout": "5s"}),
        ),
    )
    .await;
    let o = wait_for(
        &w.ns,
        GWC,
        "entra-direct",
        READY,
        "GatewayActive Unknown",
        |o| has_condition(o, "GatewayActive", "Unknown", Some("ProbeIdentityMismatch")),
    )
    .await;
    assert_ne!(o["status"]["gatewayState"], "Inactive");
    assert!(
        condition(&o, "GatewayActive").unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("probe.mode: Foundry"),
        "says how to get a truthful verdict"
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    let again = get(&w.ns, GWC, "entra-direct").await.unwrap();
    assert_ne!(
        again["status"]["gatewayState"], "Inactive",
        "still not Inactive after another probe"
    );
    drop(other);
}

#[tokio::test]
async fn an_account_connection_is_active_and_an_agent_of_a_second_project_uses_it() {
    let w = World::new("health-account", Duration::from_secs(600)).await;
    let s = stack();
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    let second = second_project();
    apply(&w.ns, "FoundryProject", "second", json!({
        "armId": second.arm_id(),
        "endpoint": s.emulator.endpoint_of(&second),
        "managementEndpoint": s.emulator.arm_endpoint,
        "authorityHost": s.token_server.entra_authority_host(),
        "identity": {"clientSecret": {"clientId": foundry_gateway_testbed::stack::OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
            "secretRef": {"name": PROJECT_SECRET, "key": "clientSecret"}}},
    }))
    .await;
    let name = format!("{}-acct", prefix(&w));
    apply(&w.ns, GWC, "shared", json!({
        "projectRef": {"name": "local"}, "connectionName": name, "scope": "Account",
        "category": "ModelGateway", "target": s.gateway.openai_target(),
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}, "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    }))
    .await;
    let o = wait_for(&w.ns, GWC, "shared", READY, "Ready and Active", active).await;
    let id = o["status"]["connectionId"].as_str().unwrap();
    assert!(
        id.ends_with(&format!("/accounts/local-account/connections/{name}"))
            && !id.contains("/projects/"),
        "an account connection's ARM id: {id}"
    );
    let puts = stack()
        .emulator
        .requests("operation=AccountConnections_Create")
        .expect("request log");
    assert_eq!(
        puts.as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(&name)))
            .count(),
        1,
        "one PUT on the account path"
    );

    // An agent of the second project runs on it.
    apply(
        &w.ns,
        "PromptAgent",
        "on-account",
        json!({
            "projectRef": {"name": "second"}, "agentName": format!("{}-agent", prefix(&w)),
            "model": {"connectionRef": {"name": "shared"}, "name": "gpt-4o"},
            "instructions": "Answer briefly.",
            "verify": {"input": "Say hello.", "expect": "Hello from the gateway"},
        }),
    )
    .await;
    let agent = wait_for(
        &w.ns,
        "PromptAgent",
        "on-account",
        READY,
        "Ready and Verified",
        |o| has_condition(o, "Ready", "True", None) && has_condition(o, "Verified", "True", None),
    )
    .await;
    assert_eq!(agent["status"]["model"], format!("{name}/gpt-4o"));

    // A project-scope connection of the first project does not serve the second project.
    apply(&w.ns, GWC, "project-only", json!({
        "projectRef": {"name": "local"}, "connectionName": format!("{}-proj", prefix(&w)),
        "category": "ModelGateway", "target": s.gateway.openai_target(),
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}, "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    }))
    .await;
    wait_for(
        &w.ns,
        GWC,
        "project-only",
        READY,
        "Ready and Active",
        active,
    )
    .await;
    apply(
        &w.ns,
        "PromptAgent",
        "wrong-project",
        json!({
            "projectRef": {"name": "second"}, "agentName": format!("{}-wrong", prefix(&w)),
            "model": {"connectionRef": {"name": "project-only"}, "name": "gpt-4o"},
            "instructions": "Answer briefly.",
        }),
    )
    .await;
    let o = wait_for(
        &w.ns,
        "PromptAgent",
        "wrong-project",
        READY,
        "ConnectionNotReady",
        |o| has_condition(o, "ConnectionResolved", "False", Some("ConnectionNotReady")),
    )
    .await;
    let message = condition(&o, "ConnectionResolved").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("scope: Account"), "{message}");
}
