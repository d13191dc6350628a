//! The CRDs as the apiserver enforces them: every sample is accepted and round-trips through the
//! typed client; invalid manifests are rejected with a message naming the offending field;
//! immutable fields stay immutable; `kubectl explain` prints the field docs.

// Helpers of this test crate fail the test on purpose when the test bed misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use foundry_gateway_tests::harness::{TestNamespace, kubectl};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const MANAGER: &str = "foundry-gateway-tests";

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        foundry_gateway_api::GROUP,
        foundry_gateway_api::VERSION,
        kind,
    ))
}

fn base(kind: &str) -> Value {
    match kind {
        "FoundryProject" => json!({
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "resourceGroup": "rg", "account": "acct", "project": "proj",
            "identity": {"clientSecret": {"clientId": "c", "tenantId": "t",
                "secretRef": {"name": "s", "key": "k"}}}
        }),
        "GatewayConnection" => json!({
            "projectRef": {"name": "p"},
            "category": "ModelGateway",
            "target": "https://gw.example.com/v1",
            "auth": {"apiKey": {"secretRef": {"name": "s", "key": "k"}}},
            "models": {"static": [{"name": "gpt-4o"}]}
        }),
        "PromptAgent" => json!({
            "projectRef": {"name": "p"},
            "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
            "instructions": "Be brief."
        }),
        other => panic!("no base object for {other}"),
    }
}

/// RFC 7386 JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

struct Case {
    name: &'static str,
    kind: &'static str,
    patch: Value,
    /// Substrings the apiserver's message must contain: the field path, and the rule's words.
    expect: &'static [&'static str],
}

fn invalid_cases() -> Vec<Case> {
    let c = |name, kind, patch, expect| Case {
        name,
        kind,
        patch,
        expect,
    };
    vec![
        c(
            "project with both armId and the four name fields",
            "FoundryProject",
            json!({"armId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p"}),
            &["spec", "set either armId or subscriptionId"],
        ),
        c(
            "project missing its project name",
            "FoundryProject",
            json!({"project": null}),
            &["spec", "all required when armId is not set"],
        ),
        c(
            "project with two identities",
            "FoundryProject",
            json!({"identity": {"managedIdentity": {}}}),
            &["spec.identity", "exactly one of workloadIdentity"],
        ),
        c(
            "project with no identity member",
            "FoundryProject",
            json!({"identity": {"clientSecret": null}}),
            &["spec.identity", "exactly one of workloadIdentity"],
        ),
        c(
            "project with a subscription id that is not a UUID",
            "FoundryProject",
            json!({"subscriptionId": "my-subscription"}),
            &["spec.subscriptionId"],
        ),
        c(
            "project with a plain http endpoint",
            "FoundryProject",
            json!({"endpoint": "http://acct.services.ai.azure.com/api/projects/proj"}),
            &["spec.endpoint"],
        ),
        c(
            "project with a malformed ARM api-version",
            "FoundryProject",
            json!({"armApiVersion": "latest"}),
            &["spec.armApiVersion"],
        ),
        c(
            "connection name too short",
            "GatewayConnection",
            json!({"connectionName": "ab"}),
            &["spec.connectionName"],
        ),
        c(
            "connection name starting with a hyphen",
            "GatewayConnection",
            json!({"connectionName": "-gateway"}),
            &["spec.connectionName"],
        ),
        c(
            "unknown category",
            "GatewayConnection",
            json!({"category": "OpenAI"}),
            &["spec.category", "Unsupported value"],
        ),
        c(
            "plain http target",
            "GatewayConnection",
            json!({"target": "http://gw.example.com/v1"}),
            &["spec.target"],
        ),
        c(
            "two auth modes at once",
            "GatewayConnection",
            json!({"auth": {"oauth2": {"tokenUrl": "https://login.example.com/token", "clientId": "c",
                 "clientSecretRef": {"name": "s", "key": "k"}}}}),
            &["spec.auth", "exactly one of apiKey, entraId, oauth2"],
        ),
        c(
            "no auth mode",
            "GatewayConnection",
            json!({"auth": {"apiKey": null}}),
            &["spec.auth", "exactly one of apiKey, entraId, oauth2"],
        ),
        c(
            "Entra ID on a ModelGateway",
            "GatewayConnection",
            json!({"auth": {"apiKey": null, "entraId": {}}}),
            &["spec.auth.entraId", "only with category ApiManagement"],
        ),
        c(
            "OAuth2 on ApiManagement",
            "GatewayConnection",
            json!({"category": "ApiManagement", "auth": {"apiKey": null, "oauth2": {
                 "tokenUrl": "https://login.example.com/token", "clientId": "c",
                 "clientSecretRef": {"name": "s", "key": "k"}}}}),
            &["spec.auth.oauth2", "only with category ModelGateway"],
        ),
        c(
            "ModelGateway without models",
            "GatewayConnection",
            json!({"models": null}),
            &["spec.models", "needs models.static or models.discovery"],
        ),
        c(
            "static models and discovery together",
            "GatewayConnection",
            json!({"models": {"discovery": {"listModelsEndpoint": "/models",
                 "getModelEndpoint": "/models/{deploymentName}", "provider": "OpenAI"}}}),
            &["spec.models", "not both"],
        ),
        c(
            "ModelGateway discovery without a provider",
            "GatewayConnection",
            json!({"models": {"static": null, "discovery": {"listModelsEndpoint": "/models",
                 "getModelEndpoint": "/models/{deploymentName}"}}}),
            &[
                "spec.models.discovery",
                "needs listModelsEndpoint, getModelEndpoint and provider",
            ],
        ),
        c(
            "get-model endpoint without the deployment placeholder",
            "GatewayConnection",
            json!({"category": "ApiManagement", "models": {"static": null, "discovery": {"getModelEndpoint": "/deployments/gpt"}}}),
            &["spec.models.discovery.getModelEndpoint"],
        ),
        c(
            "discovery endpoint escaping the target with ..",
            "GatewayConnection",
            json!({"category": "ApiManagement", "models": {"static": null, "discovery": {"listModelsEndpoint": "/v1/../admin"}}}),
            &["spec.models.discovery.listModelsEndpoint", "'..'"],
        ),
        c(
            "unknown discovery provider",
            "GatewayConnection",
            json!({"category": "ApiManagement", "models": {"static": null, "discovery": {"provider": "Anthropic"}}}),
            &["spec.models.discovery.provider", "Unsupported value"],
        ),
        c(
            "two static models with the same name",
            "GatewayConnection",
            json!({"models": {"static": [{"name": "gpt-4o"}, {"name": "gpt-4o"}]}}),
            &["spec.models.static[1]", "Duplicate value"],
        ),
        c(
            "api key format without the placeholder",
            "GatewayConnection",
            json!({"auth": {"apiKey": {"header": "Authorization", "format": "Bearer key"}}}),
            &["spec.auth.apiKey.format"],
        ),
        c(
            "api key format without a header",
            "GatewayConnection",
            json!({"auth": {"apiKey": {"format": "Bearer {api_key}"}}}),
            &["spec.auth.apiKey", "format needs header"],
        ),
        c(
            "custom header with both value and valueFrom",
            "GatewayConnection",
            json!({"customHeaders": [{"name": "X-Team", "value": "a", "valueFrom": {"name": "s", "key": "k"}}]}),
            &["spec.customHeaders[0]", "exactly one of value, valueFrom"],
        ),
        c(
            "custom header overriding Authorization",
            "GatewayConnection",
            json!({"customHeaders": [{"name": "Authorization", "value": "x"}]}),
            &["spec.customHeaders[0]", "cannot be overridden"],
        ),
        c(
            "probe timeout longer than the interval",
            "GatewayConnection",
            json!({"probe": {"interval": "30s", "timeout": "1m"}}),
            &["spec.probe", "timeout must be shorter than interval"],
        ),
        c(
            "probe timeout above thirty seconds",
            "GatewayConnection",
            json!({"probe": {"interval": "5m", "timeout": "45s"}}),
            &[
                "spec.probe.timeout",
                "timeout must be between 100ms and 30s",
            ],
        ),
        c(
            "probe interval below five seconds",
            "GatewayConnection",
            json!({"probe": {"interval": "1s"}}),
            &["spec.probe.interval", "between 5s and 24h"],
        ),
        c(
            "probe failure threshold of zero",
            "GatewayConnection",
            json!({"probe": {"failureThreshold": 0}}),
            &["spec.probe.failureThreshold"],
        ),
        c(
            "unknown deletion policy",
            "GatewayConnection",
            json!({"deletionPolicy": "Keep"}),
            &["spec.deletionPolicy", "Unsupported value"],
        ),
        c(
            "agent name with an underscore",
            "PromptAgent",
            json!({"agentName": "support_agent"}),
            &["spec.agentName"],
        ),
        c(
            "agent name of 64 characters",
            "PromptAgent",
            json!({"agentName": "a".repeat(64)}),
            &["spec.agentName"],
        ),
        c(
            "agent without a model",
            "PromptAgent",
            json!({"model": null}),
            &["spec.model", "Required value"],
        ),
        c(
            "instructions inline and from a ConfigMap",
            "PromptAgent",
            json!({"instructionsFrom": {"name": "cm", "key": "k"}}),
            &["spec.instructionsFrom", "not both"],
        ),
        c(
            "unsupported tool kind",
            "PromptAgent",
            json!({"tools": [{"type": "webSearch"}]}),
            &["spec.tools[0].type", "Unsupported value", "\"webSearch\""],
        ),
        c(
            "function tool without its settings",
            "PromptAgent",
            json!({"tools": [{"type": "function"}]}),
            &[
                "spec.tools[0]",
                "function must be set exactly when type is function",
            ],
        ),
        c(
            "mcp tool carrying function settings",
            "PromptAgent",
            json!({"tools": [{"type": "mcp", "mcp": {"serverLabel": "kb", "serverUrl": "https://kb.example.com/mcp"},
                 "function": {"name": "f"}}]}),
            &[
                "spec.tools[0]",
                "function must be set exactly when type is function",
            ],
        ),
        c(
            "mcp tool on plain http",
            "PromptAgent",
            json!({"tools": [{"type": "mcp", "mcp": {"serverLabel": "kb", "serverUrl": "http://kb.example.com/mcp"}}]}),
            &["spec.tools[0].mcp.serverUrl"],
        ),
        c(
            "temperature above 2",
            "PromptAgent",
            json!({"temperature": 3}),
            &["spec.temperature"],
        ),
        c(
            "negative top_p",
            "PromptAgent",
            json!({"topP": -0.1}),
            &["spec.topP"],
        ),
        c(
            "metadata key in the reserved prefix",
            "PromptAgent",
            json!({"metadata": {"gateway.foundry.dev/spec-hash": "x"}}),
            &["spec.metadata", "gateway.foundry.dev/"],
        ),
        c(
            "tool choice function without a name",
            "PromptAgent",
            json!({"toolChoice": {"mode": "function"}}),
            &[
                "spec.toolChoice",
                "set function exactly when mode is function",
            ],
        ),
        c(
            "json schema output without a schema",
            "PromptAgent",
            json!({"text": {"format": {"type": "jsonSchema", "name": "answer"}}}),
            &["spec.text.format", "needs name and schema"],
        ),
        c(
            "verification with an empty input",
            "PromptAgent",
            json!({"verify": {"input": ""}}),
            &["spec.verify.input"],
        ),
    ]
}

fn manifest(kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": format!("{}/{}", foundry_gateway_api::GROUP, foundry_gateway_api::VERSION),
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn apply(ns: &TestNamespace, object: &Value) -> Result<DynamicObject, kube::Error> {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(ns.client().clone(), ns.name(), &resource(kind));
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

#[tokio::test]
async fn every_invalid_manifest_is_rejected_by_the_apiserver_naming_the_field() {
    let ns = TestNamespace::new("crd-invalid").await;
    let cases = invalid_cases();
    assert!(cases.len() >= 25, "the table must keep at least 25 cases");
    // Each base object is valid on its own, so a rejection below is caused by the patch.
    for kind in ["FoundryProject", "GatewayConnection", "PromptAgent"] {
        apply(&ns, &manifest(kind, "valid-base", base(kind)))
            .await
            .unwrap_or_else(|e| panic!("the valid base {kind} was rejected: {e}"));
    }
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let mut spec = base(case.kind);
        merge(&mut spec, &case.patch);
        let object = manifest(case.kind, &format!("invalid-{i}"), spec);
        // A plain create: server-side apply refuses duplicate list-map keys before validation
        // (HTTP 500 while building the typed patch), and kubectl create is what most users meet.
        let object: DynamicObject = serde_json::from_value(object).expect("valid object JSON");
        let api: Api<DynamicObject> =
            Api::namespaced_with(ns.client().clone(), ns.name(), &resource(case.kind));
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => failures.push(format!("{}: accepted", case.name)),
            Err(kube::Error::Api(status)) => {
                let missing: Vec<_> = case
                    .expect
                    .iter()
                    .filter(|s| !status.message.contains(**s))
                    .collect();
                if status.code != 422 || !missing.is_empty() {
                    failures.push(format!(
                        "{}: HTTP {} without {missing:?} in: {}",
                        case.name, status.code, status.message
                    ));
                }
            }
            Err(other) => failures.push(format!("{}: unexpected error {other}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn samples() -> Vec<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/samples exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable sample");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).expect("sample is YAML");
            if !value.is_null() {
                objects.push(value);
            }
        }
    }
    objects
}

#[tokio::test]
async fn every_sample_is_accepted_and_round_trips_through_the_typed_client() {
    let ns = TestNamespace::new("crd-samples").await;
    let objects = samples();
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in ["FoundryProject", "GatewayConnection", "PromptAgent"] {
        assert!(kinds.contains(&kind), "config/samples has no {kind}");
    }
    for object in &objects {
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        if kind == "Secret" {
            let api: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(ns.client().clone(), ns.name());
            api.patch(name, &PatchParams::apply(MANAGER), &Patch::Apply(object))
                .await
                .unwrap_or_else(|e| panic!("sample Secret {name} rejected: {e}"));
            continue;
        }
        apply(&ns, object)
            .await
            .unwrap_or_else(|e| panic!("sample {kind} {name} rejected: {e}"));
        let sent = &object["spec"];
        let client = ns.client().clone();
        // Read back through the typed API and compare the spec as JSON: nothing lost, nothing added.
        let read_back = match kind {
            "FoundryProject" => serde_json::to_value(
                Api::<FoundryProject>::namespaced(client, ns.name())
                    .get(name)
                    .await
                    .expect("get")
                    .spec,
            ),
            "GatewayConnection" => serde_json::to_value(
                Api::<GatewayConnection>::namespaced(client, ns.name())
                    .get(name)
                    .await
                    .expect("get")
                    .spec,
            ),
            "PromptAgent" => serde_json::to_value(
                Api::<PromptAgent>::namespaced(client, ns.name())
                    .get(name)
                    .await
                    .expect("get")
                    .spec,
            ),
            other => panic!("unexpected kind {other} in samples"),
        }
        .expect("spec serialises");
        assert_eq!(&read_back, sent, "{kind} {name} did not round-trip");
    }
}

#[tokio::test]
async fn immutable_fields_cannot_be_changed() {
    let ns = TestNamespace::new("crd-immutable").await;
    let cases: [(&str, Value, Value, &str); 4] = [
        (
            "GatewayConnection",
            json!({"connectionName": "gateway-one"}),
            json!({"connectionName": "gateway-two"}),
            "connectionName is immutable",
        ),
        (
            "GatewayConnection",
            json!({}),
            json!({"projectRef": {"name": "other"}}),
            "projectRef is immutable",
        ),
        (
            "PromptAgent",
            json!({"agentName": "agent-one"}),
            json!({"agentName": "agent-two"}),
            "agentName is immutable",
        ),
        (
            "PromptAgent",
            json!({}),
            json!({"agentName": "late-name"}),
            "agentName is immutable",
        ),
    ];
    for (i, (kind, first, second, message)) in cases.into_iter().enumerate() {
        let name = format!("immutable-{i}");
        let mut spec = base(kind);
        merge(&mut spec, &first);
        apply(&ns, &manifest(kind, &name, spec.clone()))
            .await
            .expect("first apply is valid");
        merge(&mut spec, &second);
        match apply(&ns, &manifest(kind, &name, spec)).await {
            Err(kube::Error::Api(status)) => assert!(
                status.message.contains(message),
                "{kind} change {second} rejected for another reason: {}",
                status.message
            ),
            Ok(_) => panic!("{kind} accepted a change of an immutable field: {second}"),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}

#[tokio::test]
async fn kubectl_explain_prints_the_field_docs() {
    let _ns = TestNamespace::new("crd-explain").await;
    let cases = [
        ("gatewayconnection.spec.target", "Base URL of the gateway"),
        (
            "gatewayconnection.spec.auth.apiKey.header",
            "Header that carries the key",
        ),
        (
            "promptagent.spec.model.name",
            "Deployment name of the model",
        ),
        (
            "foundryproject.spec.identity.workloadIdentity",
            "Workload ID",
        ),
    ];
    for (field, doc) in cases {
        let output = kubectl()
            .args(["explain", field])
            .output()
            .expect("kubectl runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "kubectl explain {field} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(doc),
            "kubectl explain {field} lacks {doc:?}:\n{stdout}"
        );
    }
}
