//! The migration path of issue 16, from its first command: a Foundry project populated by hand
//! (connections of each kind and an agent with two versions, through the emulator's ARM and data
//! plane, as the portal, Bicep or the SDK would) is imported with `kubectl foundry import
//! project`, the printed manifests are applied as they are (managementPolicy: Observe), every
//! object goes Ready without one Foundry write, and switching them to Full writes nothing either,
//! because nothing differs. The emulator's request log is the witness.
//!
//! Hand edits seen as Drifted in Observe and corrected in Full are tests/observe.rs.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::stack::{GATEWAY_CLIENT_ID, GATEWAY_SCOPE};
use foundry_gateway_tests::world::{World, apply, apply_secret, has_condition, stack, wait_for};
use kubectl_foundry::{Cli, Command, Env, FoundryArgs, ImportCommand, Policy, execute};
use serde::Deserialize as _;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(120);
/// The operator's resync: short, so that several quiet resyncs fall inside the test.
const RESYNC: Duration = Duration::from_secs(3);

/// Every request that writes to Foundry, by operation, for paths naming one of `names`.
fn writes(names: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for operation in [
        "ProjectConnections_Create",
        "ProjectConnections_Delete",
        "AccountConnections_Create",
        "AccountConnections_Delete",
        "Agents_CreateVersion",
        "Agents_Delete",
        "Agents_DeleteVersion",
        "Conversations_Create",
    ] {
        let all = stack()
            .emulator
            .requests(&format!("operation={operation}"))
            .expect("request log");
        for request in all.as_array().into_iter().flatten() {
            let path = request["path"].as_str().unwrap_or_default();
            if operation == "Conversations_Create" || names.iter().any(|n| path.contains(n)) {
                out.push((operation.to_owned(), path.to_owned()));
            }
        }
    }
    out
}

fn arm_url(name: &str) -> String {
    format!(
        "{}{}/connections/{name}?api-version=2025-12-01",
        stack().emulator.arm_endpoint,
        EmulatorProject::default_project().arm_id()
    )
}

/// Creates a connection by hand through ARM, as the portal or a Bicep deployment does.
fn connection_by_hand(name: &str, properties: Value) {
    let bearer = format!("Bearer {}", stack().arm_token().expect("token").expose());
    let reply = stack()
        .http()
        .expect("http client")
        .put_json(
            &arm_url(name),
            &[("Authorization", bearer.as_str())],
            &json!({ "properties": properties }),
        )
        .expect("PUT the connection");
    assert!(reply.is_success(), "PUT {name}: {}", reply.text);
}

/// Creates an agent version by hand through the data plane, as the SDK does.
fn version_by_hand(agent: &str, model: &str, instructions: &str) {
    let s = stack();
    let token = s.data_plane_token().expect("data-plane token");
    let url = format!(
        "{}/agents/{agent}/versions?api-version=v1",
        s.emulator.project_endpoint
    );
    let reply = s
        .http()
        .expect("http client")
        .post_json(
            &url,
            &[("Authorization", &format!("Bearer {}", token.expose()))],
            &json!({"definition": {"kind": "prompt", "model": model, "instructions": instructions}}),
        )
        .expect("POST a version");
    assert!(reply.is_success(), "POST a version: {}", reply.text);
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn ready(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
}

fn at_generation(o: &Value) -> bool {
    ready(o) && o["status"]["observedGeneration"] == o["metadata"]["generation"]
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_project_is_observed_then_managed_without_a_single_foundry_write() {
    let w = World::new("migrate", RESYNC).await;
    let s = stack();
    let tag = w.ns.name().rsplit('-').next().unwrap_or("x").to_owned();
    let (mg, apim, oauth, agent) = (
        format!("mig-mg-{tag}"),
        format!("mig-apim-{tag}"),
        format!("mig-oauth-{tag}"),
        format!("mig-agent-{tag}"),
    );
    let models = r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#;

    // Foundry, populated by hand: one connection of each kind and auth, an agent of two versions.
    connection_by_hand(
        &mg,
        json!({
        "category": "ModelGateway", "target": s.gateway.openai_target(), "authType": "ApiKey",
        "credentials": {"key": s.gateway.master_key.expose()}, "isSharedToAll": false,
        "metadata": {"deploymentInPath": "false", "models": models,
            "authConfig": r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#}}),
    );
    connection_by_hand(
        &apim,
        json!({
        "category": "ApiManagement", "target": s.gateway.azure_target(), "authType": "ApiKey",
        "credentials": {"key": s.gateway.master_key.expose()}, "isSharedToAll": false,
        "metadata": {"deploymentInPath": "true", "inferenceAPIVersion": "2024-02-01", "models": models}}),
    );
    connection_by_hand(
        &oauth,
        json!({
        "category": "ModelGateway", "target": s.gateway.openai_target(), "authType": "OAuth2",
        "credentials": {"clientId": GATEWAY_CLIENT_ID,
            "clientSecret": s.client_secret(GATEWAY_CLIENT_ID).expect("client").expose()},
        "tokenUrl": s.token_server.token_url(), "scopes": [GATEWAY_SCOPE], "isSharedToAll": false,
        "metadata": {"deploymentInPath": "false",
            "modelDiscovery": r#"{"listModelsEndpoint":"/models","getModelEndpoint":"/models/{deploymentName}","deploymentProvider":"OpenAI"}"#}}),
    );
    version_by_hand(&agent, &format!("{mg}/gpt-4o"), "Answer at length.");
    version_by_hand(
        &agent,
        &format!("{mg}/gpt-4o"),
        "Answer in one short sentence.",
    );
    let names = [mg.as_str(), apim.as_str(), oauth.as_str(), agent.as_str()];
    let by_hand = writes(&names);

    // kubectl foundry import project, against the namespace's FoundryProject.
    let cli = Cli {
        command: Command::Import(ImportCommand::Project {
            namespace: Some(w.ns.name().to_owned()),
            project_ref: Some("local".into()),
            agents: vec![agent.clone()],
            management_policy: Policy::Observe,
            foundry: FoundryArgs {
                ca_file: Some(s.ca_file().to_path_buf()),
                ..FoundryArgs::default()
            },
        }),
    };
    let env = Env {
        kube: Some(w.client().clone()),
        foundry_token: Some(s.data_plane_token().unwrap().expose().to_owned()),
        arm_token: Some(s.arm_token().unwrap().expose().to_owned()),
    };
    let out = execute(cli, env).await.expect("import project");
    let docs: Vec<Value> = documents(&out)
        .into_iter()
        .filter(|d| {
            let spec = &d["spec"];
            let named = spec["connectionName"]
                .as_str()
                .or(spec["agentName"].as_str())
                .or(d["metadata"]["name"].as_str())
                .unwrap_or_default();
            names.iter().any(|n| named.starts_with(n))
        })
        .collect();
    let kinds = |kind: &str| docs.iter().filter(|d| d["kind"] == kind).count();
    assert_eq!(kinds("GatewayConnection"), 3, "{out}");
    assert_eq!(kinds("PromptAgent"), 1, "{out}");

    // What a user does with the output: fill in the Secrets the placeholders name (and the
    // OAuth2 client id Foundry does not return), then apply everything as printed.
    let mut objects = Vec::new();
    for doc in &docs {
        let kind = doc["kind"].as_str().unwrap();
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        let mut spec = doc["spec"].clone();
        if kind == "GatewayConnection" {
            assert_eq!(spec["managementPolicy"], "Observe");
            assert_eq!(spec["adopt"], true);
            if let Some(key) = spec["auth"]["apiKey"]["secretRef"].as_object() {
                apply_secret(
                    &w.ns,
                    key["name"].as_str().unwrap(),
                    json!({key["key"].as_str().unwrap(): s.gateway.master_key.expose()}),
                )
                .await;
            }
            if let Some(oauth2) = spec
                .pointer_mut("/auth/oauth2")
                .and_then(Value::as_object_mut)
            {
                oauth2.insert("clientId".into(), json!(GATEWAY_CLIENT_ID));
                let secret = oauth2["clientSecretRef"].clone();
                apply_secret(
                    &w.ns,
                    secret["name"].as_str().unwrap(),
                    json!({secret["key"].as_str().unwrap():
                        s.client_secret(GATEWAY_CLIENT_ID).unwrap().expose()}),
                )
                .await;
            }
        } else if kind == "PromptAgent" {
            assert_eq!(spec["managementPolicy"], "Observe");
        } else {
            continue;
        }
        apply(&w.ns, kind, &name, spec.clone()).await;
        objects.push((kind.to_owned(), name, spec));
    }

    // Observe: every object Ready (connections Active through the real gateway), not one write.
    for (kind, name, _) in &objects {
        let o = wait_for(&w.ns, kind, name, READY, "Ready in Observe", ready).await;
        assert!(
            has_condition(&o, "Drifted", "False", Some("InSync")),
            "{kind} {name} is not in sync after import: {}",
            o["status"]
        );
        if kind == "GatewayConnection" {
            assert_eq!(o["status"]["gatewayState"], "Active", "{name}");
        }
    }
    assert_eq!(writes(&names), by_hand, "Observe wrote to Foundry");

    // Full: the same specs, managed. Nothing differs, so nothing is written, now or on resyncs.
    for (kind, name, spec) in &objects {
        let mut spec = spec.clone();
        spec["managementPolicy"] = json!("Full");
        apply(&w.ns, kind, name, spec).await;
    }
    for (kind, name, _) in &objects {
        let o = wait_for(&w.ns, kind, name, READY, "Ready under Full", at_generation).await;
        assert!(
            o["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().all(|c| c["type"] != "Drifted")),
            "{kind} {name} keeps a Drifted condition under Full: {}",
            o["status"]
        );
        if kind == "PromptAgent" {
            assert_eq!(
                o["status"]["agent"]["version"], "2",
                "the newest hand-made version is served: {}",
                o["status"]
            );
        }
    }
    tokio::time::sleep(RESYNC * 3).await;
    assert_eq!(
        writes(&names),
        by_hand,
        "switching to Full wrote to Foundry although nothing differed"
    );
}
