//! `kubectl foundry` against the test bed: the manifests `import bicep` prints for each of the
//! samples' 11 parameter files are accepted by the real apiserver and, as stored, build the
//! template's connection; `import project` reads connections and an agent made in the emulator
//! and prints manifests the apiserver accepts; `plan` says create, update (with the diff),
//! nothing and new version against the emulator's live state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use foundry_gateway_client::connections::{
    ConnectionResource, ConnectionScope, ConnectionsClient, ConnectionsClientOptions,
    ProjectResourceId,
};
use foundry_gateway_client::project::{ProjectClient, ProjectClientOptions};
use foundry_gateway_client::{
    ClientOptions, SecretString, StaticTokenCredential, Transport, TransportOptions,
};
use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_tests::harness::{FIELD_MANAGER, TestNamespace};
use foundry_gateway_tests::world::stack;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubectl_foundry::bicep::{self, ImportOptions, Parameters};
use kubectl_foundry::operator::agent_definition;
use kubectl_foundry::operator::connection::build::{self, ResolvedSecrets};
use kubectl_foundry::operator::digest::DigestKey;
use kubectl_foundry::operator::ownership::ObjectId;
use kubectl_foundry::{Cli, Command, Env, FoundryArgs, ImportCommand, Policy, execute};
use serde::Deserialize as _;
use serde_json::{Value, json};

fn sample_files() -> Vec<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/kubectl-foundry/tests/samples");
    let mut files: Vec<PathBuf> = ["apim", "model-gateway"]
        .iter()
        .flat_map(|sub| std::fs::read_dir(dir.join(sub)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 11);
    files
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn api_resource(object: &Value) -> ApiResource {
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), "v1".to_owned()),
    };
    let kind = object["kind"].as_str().unwrap();
    let gvk = GroupVersionKind::gvk(&group, &version, kind);
    ApiResource::from_gvk_with_plural(&gvk, &format!("{}s", kind.to_ascii_lowercase()))
}

/// Server-side applies every document into the namespace; panics with the apiserver's answer
/// when one is refused. Returns the objects as stored.
async fn apply_all(ns: &TestNamespace, docs: &[Value]) -> Vec<Value> {
    let mut stored = Vec::new();
    for doc in docs {
        let mut doc = doc.clone();
        doc["metadata"]["namespace"] = json!(ns.name());
        let api: Api<DynamicObject> =
            Api::namespaced_with(ns.client().clone(), ns.name(), &api_resource(&doc));
        let name = doc["metadata"]["name"].as_str().unwrap().to_owned();
        let object = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&doc),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("the apiserver refused {} {name}: {e}\n{doc:#}", doc["kind"])
            });
        stored.push(serde_json::to_value(object).unwrap());
    }
    stored
}

#[tokio::test(flavor = "multi_thread")]
async fn imported_bicep_samples_are_accepted_by_the_apiserver_and_build_the_templates_body() {
    let ns = TestNamespace::new("kf-bicep").await;
    let files = sample_files();
    let cli = Cli {
        command: Command::Import(ImportCommand::Bicep {
            files: files.clone(),
            project: Some("main".into()),
            namespace: Some(ns.name().to_owned()),
            management_policy: Policy::Observe,
        }),
    };
    let out = execute(cli, Env::default()).await.unwrap();
    let docs = documents(&out);
    assert_eq!(
        docs.iter()
            .filter(|d| d["kind"] == "GatewayConnection")
            .count(),
        11
    );
    let stored = apply_all(&ns, &docs).await;
    // Each stored connection (after defaulting and pruning by the apiserver) builds the body the
    // template sends for its file, field by field (the one known difference aside, see
    // crates/kubectl-foundry/tests/bicep_samples.rs).
    let connections: Vec<&Value> = stored
        .iter()
        .filter(|d| d["kind"] == "GatewayConnection")
        .collect();
    for (file, object) in files.iter().zip(&connections) {
        let params = Parameters::parse("f", &std::fs::read_to_string(file).unwrap()).unwrap();
        let imported = bicep::import(params.clone(), &ImportOptions::default());
        let spec: foundry_gateway_api::GatewayConnectionSpec =
            serde_json::from_value(object["spec"].clone()).unwrap();
        assert_eq!(spec.adopt, Some(true));
        assert_eq!(
            spec.management_policy,
            Some(foundry_gateway_api::connection::ManagementPolicy::Observe)
        );
        let secret = SecretString::new("s");
        let secrets = ResolvedSecrets {
            api_key: spec.auth.api_key.as_ref().map(|_| secret.clone()),
            oauth_client_secret: spec.auth.oauth2.as_ref().map(|_| secret.clone()),
            ..Default::default()
        };
        let name = object["metadata"]["name"].as_str().unwrap();
        let desired = build::build_for(
            &spec,
            &ObjectId::new(ns.name(), name, Some("")),
            &secrets,
            &DigestKey::random(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut operator = serde_json::to_value(&desired.properties).unwrap();
        operator["metadata"]
            .as_object_mut()
            .unwrap()
            .remove(build::MANAGED_BY_KEY);
        let mut template = bicep::template_properties(&params, &imported.substitutions, "s");
        if params.template == bicep::Template::ModelGateway
            && params.str("inferenceAPIVersion").is_empty()
        {
            template["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("inferenceAPIVersion");
        }
        for key in [
            "category",
            "target",
            "authType",
            "credentials",
            "audience",
            "tokenUrl",
            "scopes",
            "isSharedToAll",
        ] {
            assert_eq!(
                operator.get(key),
                template.get(key),
                "{}: {key}",
                file.display()
            );
        }
        let as_json = |v: &Value| -> Value {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, s)| {
                    let s = s.as_str().unwrap();
                    (
                        k.clone(),
                        serde_json::from_str::<Value>(s)
                            .ok()
                            .filter(|j| j.is_object() || j.is_array())
                            .unwrap_or(json!(s)),
                    )
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        assert_eq!(
            as_json(&operator["metadata"]),
            as_json(&template["metadata"]),
            "{}",
            file.display()
        );
    }
}

fn client_options() -> ClientOptions {
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem: Some(stack().ca_pem().as_bytes().to_vec()),
        ..Default::default()
    })
    .unwrap();
    ClientOptions {
        transport: Some(transport),
        ..Default::default()
    }
}

fn connections(scope: ConnectionScope) -> ConnectionsClient {
    let s = stack();
    ConnectionsClient::with_scope(
        &s.emulator.arm_endpoint,
        ProjectResourceId::parse(&EmulatorProject::default_project().arm_id()).unwrap(),
        scope,
        StaticTokenCredential::new(s.arm_token().unwrap().expose().to_owned()),
        Some(ConnectionsClientOptions {
            client_options: client_options(),
            ..Default::default()
        }),
    )
    .unwrap()
}

fn agents() -> ProjectClient {
    let s = stack();
    ProjectClient::new(
        &s.emulator.project_endpoint,
        StaticTokenCredential::new(s.data_plane_token().unwrap().expose().to_owned()),
        Some(ProjectClientOptions {
            client_options: client_options(),
            ..Default::default()
        }),
    )
    .unwrap()
}

fn env() -> Env {
    let s = stack();
    Env {
        kube: None,
        foundry_token: Some(s.data_plane_token().unwrap().expose().to_owned()),
        arm_token: Some(s.arm_token().unwrap().expose().to_owned()),
    }
}

fn foundry_args() -> FoundryArgs {
    let s = stack();
    FoundryArgs {
        arm_id: Some(EmulatorProject::default_project().arm_id()),
        endpoint: Some(s.emulator.project_endpoint.clone()),
        management_endpoint: Some(s.emulator.arm_endpoint.clone()),
        ca_file: Some(s.ca_file().to_path_buf()),
    }
}

fn suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

fn resource(properties: Value) -> ConnectionResource {
    serde_json::from_value(json!({"properties": properties})).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn import_project_prints_the_emulators_connections_and_agent_as_accepted_manifests() {
    let ns = TestNamespace::new("kf-import").await;
    let id = suffix();
    let (mg, apim, oauth) = (
        format!("kf-mg-{id}"),
        format!("kf-apim-{id}"),
        format!("kf-oauth-{id}"),
    );
    let https_target = "https://gateway.example.com/llm".to_owned();
    connections(ConnectionScope::Project)
        .create_or_update(&mg, &resource(json!({
            "category": "ModelGateway", "target": https_target, "authType": "ApiKey", "credentials": {"key": "k"},
            "isSharedToAll": false,
            "metadata": {"deploymentInPath": "false", "inferenceAPIVersion": "",
                "models": r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#,
                "authConfig": r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#,
                "customHeaders": r#"{"X-Env":"prod"}"#}})))
        .await
        .unwrap();
    connections(ConnectionScope::Account)
        .create_or_update(&apim, &resource(json!({
            "category": "ApiManagement", "target": "https://contoso.azure-api.net/foundry", "authType": "ProjectManagedIdentity",
            "audience": "https://cognitiveservices.azure.com", "credentials": {}, "isSharedToAll": true,
            "metadata": {"deploymentInPath": "true", "inferenceAPIVersion": "2024-10-21"}})))
        .await
        .unwrap();
    connections(ConnectionScope::Project)
        .create_or_update(&oauth, &resource(json!({
            "category": "ModelGateway", "target": "https://gateway.example.com/oauth", "authType": "OAuth2",
            "credentials": {"clientId": "client-1", "clientSecret": "s"}, "tokenUrl": "https://login.example.com/token", "scopes": ["api://gw/.default"],
            "metadata": {"deploymentInPath": "false",
                "modelDiscovery": r#"{"listModelsEndpoint":"/v1/models","getModelEndpoint":"/v1/models/{deploymentName}","deploymentProvider":"OpenAI"}"#}})))
        .await
        .unwrap();
    let agent = format!("kf-agent-{id}");
    let mut definition =
        foundry_gateway_client::project::PromptAgentDefinition::new(format!("{mg}/gpt-4o"));
    definition.instructions = Some("Answer briefly.".into());
    agents()
        .create_version(
            &agent,
            &foundry_gateway_client::project::CreateAgentVersionRequest::new(definition),
        )
        .await
        .unwrap();

    let cli = Cli {
        command: Command::Import(ImportCommand::Project {
            namespace: Some(ns.name().to_owned()),
            project_ref: None,
            // No --agent: every agent of the project is listed (`Agents_List`).
            agents: vec![],
            management_policy: Policy::Observe,
            foundry: foundry_args(),
        }),
    };
    let out = execute(cli, env()).await.unwrap();
    let docs = documents(&out);
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in\n{out}"))
            .clone()
    };
    let c = find("GatewayConnection", &mg);
    assert_eq!(c["spec"]["adopt"], true);
    assert_eq!(c["spec"]["managementPolicy"], "Observe");
    assert_eq!(c["spec"]["auth"]["apiKey"]["header"], "Authorization");
    assert_eq!(c["spec"]["models"]["static"][0]["name"], "gpt-4o");
    assert_eq!(find("GatewayConnection", &apim)["spec"]["scope"], "Account");
    // ARM returns no credentials, so not the OAuth2 client id either: a placeholder and a comment.
    let o = find("GatewayConnection", &oauth);
    assert_eq!(
        o["spec"]["auth"]["oauth2"]["tokenUrl"],
        "https://login.example.com/token"
    );
    assert_eq!(
        o["spec"]["auth"]["oauth2"]["clientSecretRef"]["name"],
        format!("{oauth}-oauth2")
    );
    assert!(
        out.contains("spec.auth.oauth2.clientId: Foundry did not return it"),
        "{out}"
    );
    let a = find("PromptAgent", &agent);
    assert_eq!(a["spec"]["model"]["connectionRef"]["name"], mg);
    assert_eq!(a["spec"]["instructions"], "Answer briefly.");
    assert_eq!(a["spec"]["managementPolicy"], "Observe");
    let secret = find("Secret", &format!("{mg}-gateway-key"));
    assert!(secret.get("data").is_none() && secret.get("stringData").is_none());
    assert!(out.contains(&format!("{mg}-gateway-key --from-literal=apiKey=")));
    assert!(
        !out.contains("\"k\""),
        "a credential leaked into the output"
    );
    // Keep only what this test made (the emulator is shared by the binary's tests).
    let ours: Vec<Value> = docs
        .into_iter()
        .filter(|d| {
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            d["kind"] == "FoundryProject" || name.contains(&id)
        })
        .collect();
    apply_all(&ns, &ours).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_reports_create_update_nothing_and_new_version() {
    let ns = "plan-ns";
    let id = suffix();
    let (new, moved, same) = (
        format!("kf-new-{id}"),
        format!("kf-moved-{id}"),
        format!("kf-same-{id}"),
    );
    let agent = format!("kf-plan-agent-{id}");
    let spec = |target: &str| -> foundry_gateway_api::GatewayConnectionSpec {
        serde_json::from_value(json!({
            "projectRef": {"name": "main"}, "category": "ModelGateway", "target": target,
            "auth": {"apiKey": {"secretRef": {"name": "gw-key", "key": "apiKey"}}},
            "models": {"static": [{"name": "gpt-4o"}]}, "adopt": true,
        }))
        .unwrap()
    };
    // Live state: what the operator would have written for the old spec of `moved` and the
    // current spec of `same`.
    let secrets = ResolvedSecrets {
        api_key: Some(SecretString::new("k")),
        ..Default::default()
    };
    for (name, target) in [
        (&moved, "https://old.example.com"),
        (&same, "https://gw.example.com"),
    ] {
        let desired = build::build_for(
            &spec(target),
            &ObjectId::new(ns, name, Some("")),
            &secrets,
            &DigestKey::random(),
        )
        .unwrap();
        connections(ConnectionScope::Project)
            .create_or_update(name, &ConnectionResource::new(desired.properties))
            .await
            .unwrap();
    }
    let agent_spec = |instructions: &str| -> foundry_gateway_api::PromptAgentSpec {
        serde_json::from_value(json!({"projectRef": {"name": "main"}, "agentName": agent,
            "model": {"connectionRef": {"name": same}, "name": "gpt-4o"}, "instructions": instructions}))
        .unwrap()
    };
    let old = agent_definition::desired_version(
        &agent_spec("Old."),
        &same,
        Some("Old."),
        &ObjectId::new(ns, "helper", None),
    )
    .unwrap();
    agents().create_version(&agent, &old.request).await.unwrap();

    let manifest = |name: &str, target: &str| {
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "GatewayConnection",
        "metadata": {"name": name}, "spec": spec(target)})
    };
    let docs = [
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "FoundryProject", "metadata": {"name": "main"},
            "spec": {"armId": EmulatorProject::default_project().arm_id(), "identity": {"operatorDefault": {}}}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gw-key"}, "stringData": {"apiKey": "k"}}),
        manifest(&new, "https://gw.example.com"),
        manifest(&moved, "https://new.example.com"),
        manifest(&same, "https://gw.example.com"),
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent", "metadata": {"name": "helper"}, "spec": agent_spec("New.")}),
        json!({"apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent", "metadata": {"name": "steady"}, "spec": agent_spec("Old.")}),
    ];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("objects.yaml");
    let text: String = docs
        .iter()
        .map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap()))
        .collect();
    std::fs::write(&file, text).unwrap();
    let args = FoundryArgs {
        arm_id: None,
        ..foundry_args()
    };
    let cli = Cli {
        command: Command::Plan {
            file: Some(file),
            namespace: Some(ns.into()),
            foundry: args,
        },
    };
    let out = execute(cli, env()).await.unwrap();
    assert!(
        out.contains(&format!(
            "GatewayConnection {ns}/{new} -> project connection {new:?}: create\n"
        )),
        "{out}"
    );
    assert!(out.contains(&format!(
        "GatewayConnection {ns}/{moved} -> project connection {moved:?}: update\n    ~ target: \"https://old.example.com\" -> \"https://new.example.com\"\n"
    )), "{out}");
    assert!(
        out.contains(&format!(
            "GatewayConnection {ns}/{same} -> project connection {same:?}: nothing to do\n"
        )),
        "{out}"
    );
    assert!(out.contains(&format!(
        "PromptAgent {ns}/helper -> agent {agent:?}: new version\n    ~ definition.instructions: \"Old.\" -> \"New.\"\n"
    )), "{out}");
    // "steady" asks for the live definition: only its owner differs (made for "helper"), and
    // without a uid the hash alone decides.
    assert!(
        out.contains(&format!(
            "PromptAgent {ns}/steady -> agent {agent:?}: nothing to do (version"
        )),
        "{out}"
    );
}
