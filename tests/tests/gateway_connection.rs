//! GatewayConnection end to end: the operator (shipped RBAC, its own namespace) against the real
//! apiserver, the Foundry emulator, the LiteLLM gateway and the OAuth2 token server.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use foundry_gateway_testbed::gateway::{Gateway, GatewayModel, GatewayOptions};
use foundry_gateway_testbed::stack::{GATEWAY_CLIENT_ID, GATEWAY_SCOPE};
use foundry_gateway_tests::world::{
    World, apply, apply_secret, get, has_condition, stack, wait_for,
};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const GWC: &str = "GatewayConnection";

/// Emulator requests of one operation on one connection.
fn foundry_calls(operation: &str, connection: &str) -> Vec<Value> {
    let all = stack()
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("request log");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/connections/{connection}")))
        })
        .cloned()
        .collect()
}

fn active(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
        && has_condition(o, "GatewayActive", "True", Some("Active"))
}

fn inactive_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |o| {
        has_condition(o, "GatewayActive", "False", Some(reason))
            && has_condition(o, "Ready", "False", Some("GatewayInactive"))
    }
}

fn key_secret() -> Value {
    json!({"key": stack().gateway.master_key.expose()})
}

fn probe(interval: &str, threshold: i32) -> Value {
    json!({"interval": interval, "timeout": "3s", "failureThreshold": threshold})
}

#[tokio::test]
async fn each_kind_of_connection_goes_ready_and_active_with_the_documented_body() {
    let w = World::new("gwc-kinds", Duration::from_secs(600)).await;
    let s = stack();
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply_secret(
        &w.ns,
        "oauth-client",
        json!({"secret": s.client_secret(GATEWAY_CLIENT_ID).expect("client").expose()}),
    )
    .await;
    let prefix = &w.ns.name()[..12.min(w.ns.name().len())];
    let names = [
        format!("{prefix}-apimkey"),
        format!("{prefix}-apimentra"),
        format!("{prefix}-mgstatic"),
        format!("{prefix}-mgoauth"),
    ];
    let applied = std::time::Instant::now();
    apply(&w.ns, GWC, "apim-key", json!({
        "projectRef": {"name": "local"}, "connectionName": names[0], "category": "ApiManagement",
        "target": s.gateway.azure_target(), "inferenceApiVersion": "2024-02-01",
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
    })).await;
    apply(&w.ns, GWC, "apim-entra", json!({
        "projectRef": {"name": "local"}, "connectionName": names[1], "category": "ApiManagement",
        "target": s.gateway.azure_target(), "inferenceApiVersion": "2024-02-01",
        "auth": {"entraId": {"audience": "https://cognitiveservices.azure.com"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    })).await;
    apply(&w.ns, GWC, "mg-static", json!({
        "projectRef": {"name": "local"}, "connectionName": names[2], "category": "ModelGateway",
        "target": s.gateway.openai_target(),
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}, "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}]},
        "customHeaders": [{"name": "X-Client-App", "value": "foundry-agents"}],
    })).await;
    apply(&w.ns, GWC, "mg-oauth", json!({
        "projectRef": {"name": "local"}, "connectionName": names[3], "category": "ModelGateway",
        "target": s.gateway.openai_target(),
        "auth": {"oauth2": {"tokenUrl": s.token_server.token_url(), "scopes": [GATEWAY_SCOPE], "clientId": GATEWAY_CLIENT_ID,
                 "clientSecretRef": {"name": "oauth-client", "key": "secret"}}},
        "models": {"discovery": {"listModelsEndpoint": "/models", "getModelEndpoint": "/models/{deploymentName}", "provider": "OpenAI"}},
    })).await;
    for object in ["apim-key", "apim-entra", "mg-static", "mg-oauth"] {
        let o = wait_for(&w.ns, GWC, object, READY, "Ready and Active", active).await;
        eprintln!(
            "measured: GatewayConnection {object} apply -> Ready and Active in {:?}",
            applied.elapsed()
        );
        assert_eq!(o["status"]["gatewayState"], "Active");
        assert!(
            o["status"]["models"]
                .as_array()
                .is_some_and(|m| m.iter().any(|m| m == "gpt-4o")),
            "{object}: {}",
            o["status"]
        );
        assert!(
            o["status"]["connectionId"]
                .as_str()
                .is_some_and(|id| id.contains("/connections/"))
        );
    }
    let body = |name: &str| {
        let calls = foundry_calls("ProjectConnections_Create", name);
        assert_eq!(calls.len(), 1, "exactly one PUT for {name}: {calls:?}");
        calls[0]["requestBody"]["properties"].clone()
    };
    let apim_key = body(&names[0]);
    assert_eq!(
        (apim_key["category"].as_str(), apim_key["authType"].as_str()),
        (Some("ApiManagement"), Some("ApiKey"))
    );
    assert_eq!(apim_key["metadata"]["deploymentInPath"], "true");
    assert_eq!(apim_key["metadata"]["inferenceAPIVersion"], "2024-02-01");
    assert_eq!(
        apim_key["metadata"]["modelDiscovery"],
        r#"{"listModelsEndpoint":"/deployments","getModelEndpoint":"/deployments/{deploymentName}","deploymentProvider":"AzureOpenAI"}"#
    );
    let entra = body(&names[1]);
    assert_eq!(entra["authType"], "ProjectManagedIdentity");
    assert_eq!(entra["audience"], "https://cognitiveservices.azure.com");
    assert_eq!(
        entra["metadata"]["models"],
        r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#
    );
    let mg = body(&names[2]);
    assert_eq!(
        (
            mg["category"].as_str(),
            mg["metadata"]["deploymentInPath"].as_str()
        ),
        (Some("ModelGateway"), Some("false"))
    );
    assert_eq!(
        mg["metadata"]["authConfig"],
        r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#
    );
    assert_eq!(
        mg["metadata"]["customHeaders"],
        r#"{"X-Client-App":"foundry-agents"}"#
    );
    let oauth = body(&names[3]);
    assert_eq!(oauth["authType"], "OAuth2");
    assert_eq!(oauth["tokenUrl"], s.token_server.token_url());
    assert_eq!(oauth["scopes"], json!([GATEWAY_SCOPE]));
    // The emulator's log redacts every credential value; the hash shows they arrived.
    assert!(
        oauth["credentials"]["clientId"].is_string()
            && oauth["credentials"]["clientSecret"].is_string()
    );
    assert_eq!(
        oauth["metadata"]["modelDiscovery"],
        r#"{"listModelsEndpoint":"/models","getModelEndpoint":"/models/{deploymentName}","deploymentProvider":"OpenAI"}"#
    );
}

#[tokio::test]
async fn a_wrong_key_is_inactive_unauthorized_and_a_rotated_key_reaches_foundry_with_one_put() {
    let w = World::new("gwc-rotate", Duration::from_secs(600)).await;
    let s = stack();
    let name = format!("{}-rot", &w.ns.name()[..12.min(w.ns.name().len())]);
    apply_secret(&w.ns, "gateway-key", json!({"key": "not-the-key"})).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        json!({
            "projectRef": {"name": "local"}, "connectionName": name, "category": "ModelGateway",
            "target": s.gateway.openai_target(), "probe": probe("5s", 1),
            "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        }),
    )
    .await;
    let before = wait_for(
        &w.ns,
        GWC,
        "gw",
        READY,
        "Inactive with Unauthorized",
        inactive_with("Unauthorized"),
    )
    .await;
    assert_eq!(before["status"]["gatewayState"], "Inactive");
    let first_hash = before["status"]["credentialsHash"]
        .as_str()
        .expect("hash")
        .to_owned();
    let puts_before = foundry_calls("ProjectConnections_Create", &name);
    assert_eq!(puts_before.len(), 1);
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    let after = wait_for(
        &w.ns,
        GWC,
        "gw",
        Duration::from_secs(30),
        "Active after the rotation",
        active,
    )
    .await;
    let puts = foundry_calls("ProjectConnections_Create", &name);
    assert_eq!(
        puts.len(),
        2,
        "exactly one new PUT after the rotation: {puts:?}"
    );
    assert_ne!(
        puts[0]["credentialsSha256"], puts[1]["credentialsSha256"],
        "the new key reached Foundry"
    );
    assert_ne!(
        after["status"]["credentialsHash"].as_str(),
        Some(first_hash.as_str())
    );
}

#[tokio::test]
async fn a_stopped_gateway_is_unreachable_and_active_again_after_it_restarts() {
    let w = World::new("gwc-restart", Duration::from_secs(600)).await;
    let s = stack();
    let mut own = Gateway::start(GatewayOptions::new(w.dir.join("gateway"), s.ca().clone()))
        .expect("own gateway");
    let name = format!("{}-stop", &w.ns.name()[..12.min(w.ns.name().len())]);
    apply_secret(&w.ns, "own-key", json!({"key": own.master_key.expose()})).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        json!({
            "projectRef": {"name": "local"}, "connectionName": name, "category": "ModelGateway",
            "target": own.openai_target(), "probe": probe("5s", 2),
            "auth": {"apiKey": {"secretRef": {"name": "own-key", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        }),
    )
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Active", active).await;
    own.stop().expect("gateway stops");
    // Two failures in a row at a 5 s interval: Inactive within about 10 s.
    wait_for(
        &w.ns,
        GWC,
        "gw",
        Duration::from_secs(30),
        "Inactive with Unreachable",
        inactive_with("Unreachable"),
    )
    .await;
    own.restart().expect("gateway restarts");
    wait_for(
        &w.ns,
        GWC,
        "gw",
        Duration::from_secs(20),
        "Active again",
        active,
    )
    .await;
}

#[tokio::test]
async fn a_slow_gateway_times_out_and_a_missing_model_is_model_not_found() {
    let w = World::new("gwc-causes", Duration::from_secs(600)).await;
    let s = stack();
    // Only the slow deployment: with a fast twin of the same name LiteLLM would balance between them.
    let mut slow_options = GatewayOptions::new(w.dir.join("slow"), s.ca().clone());
    slow_options.models = vec![GatewayModel::new("gpt-4o").with_delay(Duration::from_secs(6))];
    let slow = Gateway::start(slow_options).expect("slow gateway");
    let prefix = &w.ns.name()[..12.min(w.ns.name().len())];
    apply_secret(&w.ns, "slow-key", json!({"key": slow.master_key.expose()})).await;
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(&w.ns, GWC, "slow", json!({
        "projectRef": {"name": "local"}, "connectionName": format!("{prefix}-slow"), "category": "ModelGateway",
        "target": slow.openai_target(), "probe": {"mode": "Inference", "interval": "10s", "timeout": "2s", "failureThreshold": 1},
        "auth": {"apiKey": {"secretRef": {"name": "slow-key", "key": "key"}}},
        "models": {"static": [{"name": "gpt-4o"}]},
    })).await;
    // APIM default discovery lists the gateway's deployments; the one the probe must find is not there.
    apply(&w.ns, GWC, "missing-model", json!({
        "projectRef": {"name": "local"}, "connectionName": format!("{prefix}-miss"), "category": "ApiManagement",
        "target": s.gateway.azure_target(),
        "probe": {"interval": "5s", "timeout": "3s", "failureThreshold": 1, "model": "gpt-9-not-deployed"},
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
    })).await;
    wait_for(
        &w.ns,
        GWC,
        "slow",
        READY,
        "Inactive with Timeout",
        inactive_with("Timeout"),
    )
    .await;
    let missing = wait_for(
        &w.ns,
        GWC,
        "missing-model",
        READY,
        "Inactive with ModelNotFound",
        inactive_with("ModelNotFound"),
    )
    .await;
    let message = missing["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "GatewayActive")
        .unwrap()["message"]
        .clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("gpt-9-not-deployed")),
        "the message names the model: {message}"
    );
}

#[tokio::test]
async fn quiet_resyncs_write_nothing_and_drift_made_in_foundry_is_restored() {
    let w = World::new("gwc-steady", Duration::from_secs(4)).await;
    let s = stack();
    let name = format!("{}-idle", &w.ns.name()[..12.min(w.ns.name().len())]);
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        json!({
            "projectRef": {"name": "local"}, "connectionName": name, "category": "ModelGateway",
            "target": s.gateway.openai_target(), "probe": probe("5s", 3),
            "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        }),
    )
    .await;
    let ready = wait_for(&w.ns, GWC, "gw", READY, "Active", active).await;
    let version = ready["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_secs(14)).await;
    let idle = get(&w.ns, GWC, "gw").await.expect("exists");
    assert_eq!(
        idle["metadata"]["resourceVersion"], version,
        "no status write during quiet resyncs"
    );
    assert_eq!(
        foundry_calls("ProjectConnections_Create", &name).len(),
        1,
        "no PUT during quiet resyncs"
    );
    assert!(
        foundry_calls("ProjectConnections_Get", &name).len() >= 2,
        "the resyncs did read Foundry"
    );

    // Someone changes the connection in Foundry directly.
    let mut body = foundry_calls("ProjectConnections_Create", &name)[0]["requestBody"].clone();
    body["properties"]["target"] = json!("https://changed-by-hand.example.com/v1");
    body["properties"]["credentials"] = json!({"key": "x"});
    let http = s.http().expect("http client");
    let path = foundry_calls("ProjectConnections_Create", &name)[0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {}", s.arm_token().expect("token").expose());
    let reply = http
        .put_json(
            &format!("{}{path}?api-version=2025-12-01", s.emulator.arm_endpoint),
            &[("Authorization", bearer.as_str())],
            &body,
        )
        .expect("manual PUT");
    assert!(reply.is_success(), "manual PUT refused: {reply:?}");
    let started = std::time::Instant::now();
    loop {
        let puts = foundry_calls("ProjectConnections_Create", &name);
        if puts.len() >= 3 {
            assert_eq!(
                puts[2]["requestBody"]["properties"]["target"],
                s.gateway.openai_target(),
                "the operator restored the target"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "drift not restored: {puts:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn throttling_from_arm_is_honoured_and_then_converges() {
    let w = World::new("gwc-429", Duration::from_secs(600)).await;
    let s = stack();
    let name = format!("{}-thr", &w.ns.name()[..12.min(w.ns.name().len())]);
    s.emulator
        .add_faults(&json!({"operation": "ProjectConnections_Create", "pathPrefix": null, "status": 429, "retryAfterSeconds": 4, "times": 1}))
        .expect("fault");
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        json!({
            "projectRef": {"name": "local"}, "connectionName": name, "category": "ModelGateway",
            "target": s.gateway.openai_target(),
            "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        }),
    )
    .await;
    // While it waits out the hint the object says it is still working, and is not Ready.
    wait_for(&w.ns, GWC, "gw", READY, "Reconciling after the 429", |o| {
        has_condition(o, "Reconciling", "True", None) && has_condition(o, "Ready", "False", None)
    })
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Active", active).await;
    let puts = foundry_calls("ProjectConnections_Create", &name);
    assert!(puts.len() >= 2, "{puts:?}");
    assert_eq!(puts[0]["status"], 429);
    let gap = puts[1]["timeUnixMs"].as_i64().unwrap() - puts[0]["timeUnixMs"].as_i64().unwrap();
    assert!(
        gap >= 4000,
        "retried {gap} ms after a 429 with Retry-After: 4"
    );
}

#[tokio::test]
async fn deletion_follows_the_policy_and_a_taken_name_needs_adopt() {
    let w = World::new("gwc-delete", Duration::from_secs(600)).await;
    let s = stack();
    let prefix = &w.ns.name()[..12.min(w.ns.name().len())];
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    let spec = |connection: &str, policy: &str, adopt: bool| {
        json!({
            "projectRef": {"name": "local"}, "connectionName": connection, "category": "ModelGateway",
            "target": s.gateway.openai_target(), "deletionPolicy": policy, "adopt": adopt,
            "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
            "models": {"static": [{"name": "gpt-4o"}]},
        })
    };
    let deleted = format!("{prefix}-del");
    let orphaned = format!("{prefix}-orph");
    apply(&w.ns, GWC, "deleted", spec(&deleted, "Delete", false)).await;
    apply(&w.ns, GWC, "orphaned", spec(&orphaned, "Orphan", false)).await;
    wait_for(&w.ns, GWC, "deleted", READY, "Active", active).await;
    wait_for(&w.ns, GWC, "orphaned", READY, "Active", active).await;
    // A second object claiming the orphaned connection's name is refused while its owner lives
    // (ownership per object: tests/ownership.rs covers adopt and an owner that is gone).
    apply(&w.ns, GWC, "claimant", spec(&orphaned, "Orphan", false)).await;
    let stalled = wait_for(
        &w.ns,
        GWC,
        "claimant",
        READY,
        "Stalled with OwnedElsewhere",
        |o| has_condition(o, "Stalled", "True", Some("OwnedElsewhere")),
    )
    .await;
    assert!(has_condition(
        &stalled,
        "Ready",
        "False",
        Some("OwnedElsewhere")
    ));
    foundry_gateway_tests::world::delete(&w.ns, GWC, "claimant").await;
    foundry_gateway_tests::world::delete(&w.ns, GWC, "deleted").await;
    foundry_gateway_tests::world::delete(&w.ns, GWC, "orphaned").await;
    for object in ["deleted", "orphaned", "claimant"] {
        foundry_gateway_tests::world::wait_gone(&w.ns, GWC, object, Duration::from_secs(30)).await;
    }
    let exists = |name: &str| {
        let bearer = format!("Bearer {}", s.arm_token().expect("token").expose());
        let url = format!(
            "{}{}/connections/{name}?api-version=2025-12-01",
            s.emulator.arm_endpoint,
            foundry_gateway_testbed::emulator::EmulatorProject::default_project().arm_id()
        );
        s.http()
            .expect("http")
            .get(&url, &[("Authorization", bearer.as_str())])
            .expect("GET")
            .status
            == 200
    };
    assert!(
        !exists(&deleted),
        "deletionPolicy Delete removed the connection"
    );
    assert!(
        exists(&orphaned),
        "deletionPolicy Orphan kept the connection (and the claimant did not delete it)"
    );
}

#[tokio::test]
async fn no_secret_value_appears_in_logs_events_or_status() {
    let w = World::new("gwc-secrets", Duration::from_secs(5)).await;
    let s = stack();
    let name = format!("{}-sec", &w.ns.name()[..12.min(w.ns.name().len())]);
    let oauth_secret = s
        .client_secret(GATEWAY_CLIENT_ID)
        .expect("client")
        .expose()
        .to_owned();
    apply_secret(&w.ns, "oauth-client", json!({"secret": oauth_secret})).await;
    apply_secret(&w.ns, "gateway-key", json!({"key": "wrong-key-0123456789"})).await;
    apply(&w.ns, GWC, "oauth", json!({
        "projectRef": {"name": "local"}, "connectionName": name, "category": "ModelGateway",
        "target": s.gateway.openai_target(), "probe": probe("5s", 1),
        "auth": {"oauth2": {"tokenUrl": s.token_server.token_url(), "scopes": [GATEWAY_SCOPE], "clientId": GATEWAY_CLIENT_ID,
                 "clientSecretRef": {"name": "oauth-client", "key": "secret"}}},
        "models": {"static": [{"name": "gpt-4o"}]},
        "customHeaders": [{"name": "X-Tenant", "valueFrom": {"name": "gateway-key", "key": "key"}}],
    })).await;
    apply(&w.ns, GWC, "wrong", json!({
        "projectRef": {"name": "local"}, "connectionName": format!("{name}w"), "category": "ModelGateway",
        "target": s.gateway.openai_target(), "probe": probe("5s", 1),
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
        "models": {"static": [{"name": "gpt-4o"}]},
    })).await;
    wait_for(&w.ns, GWC, "oauth", READY, "Active", active).await;
    wait_for(
        &w.ns,
        GWC,
        "wrong",
        READY,
        "Inactive",
        inactive_with("Unauthorized"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let project_secret = s
        .client_secret(foundry_gateway_testbed::stack::OPERATOR_CLIENT_ID)
        .expect("operator")
        .expose()
        .to_owned();
    let secrets = [
        oauth_secret.as_str(),
        "wrong-key-0123456789",
        s.gateway.master_key.expose(),
        project_secret.as_str(),
    ];
    let log = w.operator.log_text();
    let events = w.ns.dump().await;
    let mut status_text = String::new();
    for object in ["oauth", "wrong"] {
        status_text.push_str(&get(&w.ns, GWC, object).await.expect("exists")["status"].to_string());
    }
    for secret in secrets {
        assert!(
            !log.contains(secret),
            "a secret value is in the operator log"
        );
        assert!(
            !events.contains(secret),
            "a secret value is in events or objects"
        );
        assert!(!status_text.contains(secret), "a secret value is in status");
        assert!(
            !w.operator.metrics().expect("metrics").contains(secret),
            "a secret value is in the metrics"
        );
    }
    assert!(
        log.contains("Wrote Foundry connection"),
        "the log is the operator's: {}",
        &log[..log.len().min(500)]
    );
}
