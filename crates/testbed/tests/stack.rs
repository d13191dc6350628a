//! The stack's parts, started for real and called the way Foundry, the operator and the SDK call
//! them: LiteLLM's auth modes and discovery routes, its reasoning-style model that refuses
//! `max_tokens` (and the operator's probe, which sends none), the `xms_mirid` check of Entra
//! tokens, the token server's client checks and per-client claims, the emulator's JWT checks, and
//! the official SDK flow through the emulator to LiteLLM behind both connection categories.
//!
//! One stack serves the whole test binary (started on first use, attached to this process);
//! tests that stop a part start their own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::Secret;
use foundry_gateway_testbed::gateway::{
    COGNITIVE_SERVICES_AUDIENCE, Gateway, GatewayModel, GatewayOptions, JwtAuth,
    MAX_TOKENS_REFUSAL, MIRID_CLAIM, REASONING_MODEL, RequiredClaim,
};
use foundry_gateway_testbed::http::{HttpClient, Reply};
use foundry_gateway_testbed::pki::Ca;
use foundry_gateway_testbed::python::{ReferenceForm, SdkFlow, sdk_python};
use foundry_gateway_testbed::stack::{
    ARM_SCOPE, DATA_PLANE_SCOPE, GATEWAY_CLIENT_ID, GATEWAY_SCOPE, OPERATOR_CLIENT_ID,
    PROJECT_IDENTITY_CLIENT_ID, Stack, StackOptions,
};
use foundry_gateway_testbed::token_server::{
    TokenServer, TokenServerOptions, managed_identity_mirid,
};
use serde_json::{Value, json};

const ARM_API_VERSION: &str = "2025-12-01";
const INFERENCE_API_VERSION: &str = "2024-10-21";

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| {
        let started = Instant::now();
        let stack = Stack::start(StackOptions::default())
            .unwrap_or_else(|err| panic!("failed to start the stack: {err}"));
        eprintln!("The stack was ready in {:.1?}", started.elapsed());
        stack
    })
}

fn http() -> HttpClient {
    stack().http().unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}]})
}

fn reply_text(reply: &Reply) -> String {
    reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn names(list: &Value, array: &str, key: &str) -> Vec<String> {
    let mut names: Vec<String> = list[array]
        .as_array()
        .unwrap_or_else(|| panic!("no {array} array in {list}"))
        .iter()
        .map(|m| m[key].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn litellm_answers_with_the_mock_reply_for_every_accepted_credential() {
    let stack = stack();
    let gateway = &stack.gateway;
    let key = gateway.master_key.expose();
    let jwt = stack
        .token_server
        .mint(GATEWAY_CLIENT_ID, GATEWAY_SCOPE)
        .unwrap();
    let bearer_key = format!("Bearer {key}");
    let bearer_jwt = format!("Bearer {}", jwt.expose());
    let url = format!("{}/chat/completions", gateway.openai_target());
    for (mode, header) in [
        ("api-key header", ("api-key", key)),
        ("bearer master key", ("Authorization", bearer_key.as_str())),
        ("bearer JWT", ("Authorization", bearer_jwt.as_str())),
    ] {
        for model in ["gpt-4o", "gpt-4o-mini", REASONING_MODEL] {
            let reply = http().post_json(&url, &[header], &chat(model)).unwrap();
            assert_eq!(reply.status, 200, "{mode}, {model}: {}", reply.text);
            assert_eq!(
                reply_text(&reply),
                format!("Hello from the gateway ({model})"),
                "{mode}"
            );
        }
    }
}

#[test]
fn litellm_serves_the_azure_style_inference_route_with_the_deployment_in_the_path() {
    let gateway = &stack().gateway;
    let url = format!(
        "{}/deployments/gpt-4o-mini/chat/completions?api-version={INFERENCE_API_VERSION}",
        gateway.azure_target()
    );
    let body = json!({"messages": [{"role": "user", "content": "Say hello."}]});
    let reply = http()
        .post_json(&url, &[("api-key", gateway.master_key.expose())], &body)
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply_text(&reply), "Hello from the gateway (gpt-4o-mini)");
}

#[test]
fn litellm_refuses_a_wrong_key_a_missing_key_and_a_token_for_another_audience() {
    let stack = stack();
    let url = format!("{}/chat/completions", stack.gateway.openai_target());
    let wrong_audience = stack.data_plane_token().unwrap();
    let wrong_bearer = format!("Bearer {}", wrong_audience.expose());
    for (what, headers) in [
        ("wrong api-key", vec![("api-key", "sk-wrong")]),
        (
            "wrong bearer key",
            vec![("Authorization", "Bearer sk-wrong")],
        ),
        (
            "token for another audience",
            vec![("Authorization", wrong_bearer.as_str())],
        ),
        ("no credentials", vec![]),
    ] {
        let reply = http().post_json(&url, &headers, &chat("gpt-4o")).unwrap();
        assert_eq!(reply.status, 401, "{what}: {}", reply.text);
    }
    let discovery = format!("{}/deployments", stack.gateway.azure_target());
    let reply = http().get(&discovery, &[("api-key", "sk-wrong")]).unwrap();
    assert_eq!(reply.status, 401, "discovery is behind the same auth");
}

#[test]
fn discovery_lists_every_model_in_the_openai_and_the_apim_formats() {
    let gateway = &stack().gateway;
    let auth = [("api-key", gateway.master_key.expose())];
    let expected = vec![
        "gpt-4o".to_owned(),
        "gpt-4o-mini".to_owned(),
        REASONING_MODEL.to_owned(),
    ];

    let models = http()
        .get(&format!("{}/models", gateway.openai_target()), &auth)
        .unwrap();
    assert_eq!(models.status, 200, "{}", models.text);
    assert_eq!(names(&models.json(), "data", "id"), expected);

    let list = http()
        .get(
            &format!(
                "{}/deployments?api-version=2023-05-01",
                gateway.azure_target()
            ),
            &auth,
        )
        .unwrap();
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    assert_eq!(names(&list, "value", "name"), expected);
    let first = &list["value"][0];
    assert_eq!(first["properties"]["model"]["format"], "OpenAI");
    assert_eq!(first["properties"]["model"]["name"], "gpt-4o");
    assert_eq!(first["properties"]["model"]["version"], "2024-11-20");

    let one = http()
        .get(
            &format!("{}/deployments/gpt-4o-mini", gateway.azure_target()),
            &auth,
        )
        .unwrap();
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json()["properties"]["model"]["name"], "gpt-4o-mini");

    let missing = http()
        .get(
            &format!("{}/deployments/gpt-5", gateway.azure_target()),
            &auth,
        )
        .unwrap();
    assert_eq!(missing.status, 404, "{}", missing.text);
}

#[test]
fn the_token_server_refuses_a_wrong_client_secret_and_sets_the_audience_from_the_scope() {
    let ts = &stack().token_server;
    let refused = http()
        .post_form(
            &ts.token_url(),
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", GATEWAY_CLIENT_ID),
                ("client_secret", "not-the-secret"),
                ("scope", GATEWAY_SCOPE),
            ],
        )
        .unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(refused.json()["error"], "invalid_client");
    assert!(
        ts.request_token("nobody", &Secret::new("x"), GATEWAY_SCOPE)
            .is_err()
    );

    // The Entra path form, as azure_identity calls it with a custom authority host.
    let secret = stack().client_secret(OPERATOR_CLIENT_ID).unwrap().expose();
    let entra = http()
        .post_form(
            &ts.entra_token_url("some-tenant"),
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", OPERATOR_CLIENT_ID),
                ("client_secret", secret),
                ("scope", ARM_SCOPE),
            ],
        )
        .unwrap();
    assert_eq!(entra.status, 200, "{}", entra.text);
    let claims = jwt_claims(entra.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://management.azure.com");
    assert_eq!(claims["sub"], OPERATOR_CLIENT_ID);
    assert_eq!(claims["appid"], OPERATOR_CLIENT_ID);
    assert_eq!(claims["tid"], "some-tenant");
    assert_eq!(claims["iss"], ts.issuer());
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn the_emulator_accepts_real_tokens_only_for_the_audience_of_each_plane() {
    let stack = stack();
    let emulator = &stack.emulator;
    let data = stack.data_plane_token().unwrap();
    let arm = stack.arm_token().unwrap();
    let agents = format!("{}/agents?api-version=v1", emulator.project_endpoint);
    let connections = format!(
        "{}{}/connections?api-version={ARM_API_VERSION}",
        emulator.arm_endpoint,
        emulator.project().arm_id()
    );
    let get = |url: &str, token: &Secret| {
        http()
            .get(
                url,
                &[("Authorization", &format!("Bearer {}", token.expose()))],
            )
            .unwrap()
    };
    assert_eq!(get(&agents, &data).status, 200);
    assert_eq!(get(&connections, &arm).status, 200);
    assert_eq!(
        get(&agents, &arm).status,
        401,
        "an ARM token on the data plane"
    );
    assert_eq!(
        get(&connections, &data).status,
        401,
        "a data-plane token on ARM"
    );
    let gateway_token = stack
        .token_server
        .mint(GATEWAY_CLIENT_ID, GATEWAY_SCOPE)
        .unwrap();
    assert_eq!(
        get(&agents, &gateway_token).status,
        401,
        "a token for the gateway"
    );
    assert_eq!(get(&agents, &Secret::new("not-a-jwt")).status, 401);
}

/// PUTs a connection through the emulator's ARM endpoint.
fn put_connection(name: &str, properties: Value) {
    let scope = stack().emulator.project().arm_id();
    put_connection_at(&scope, name, properties);
}

/// PUTs a connection on the project's Foundry account (`accounts/{a}/connections/{name}`).
fn put_account_connection(name: &str, properties: Value) {
    let project = stack().emulator.project().arm_id();
    let account = project
        .rsplit_once("/projects/")
        .map(|(account, _)| account.to_owned())
        .unwrap();
    put_connection_at(&account, name, properties);
}

fn put_connection_at(scope: &str, name: &str, properties: Value) {
    let stack = stack();
    let arm = stack.arm_token().unwrap();
    let url = format!(
        "{}{scope}/connections/{name}?api-version={ARM_API_VERSION}",
        stack.emulator.arm_endpoint,
    );
    let reply = http()
        .put_json(
            &url,
            &[("Authorization", &format!("Bearer {}", arm.expose()))],
            &json!({ "properties": properties }),
        )
        .unwrap();
    assert!(
        reply.is_success(),
        "PUT {name}: {} {}",
        reply.status,
        reply.text
    );
}

fn model_gateway_connection(name: &str) {
    let stack = stack();
    let models = json!([
        {"name": "gpt-4o", "properties": {"model": {"name": "gpt-4o", "version": "2024-11-20", "format": "OpenAI"}}},
        {"name": "gpt-4o-mini", "properties": {"model": {"name": "gpt-4o-mini", "version": "", "format": "OpenAI"}}},
    ]);
    put_connection(
        name,
        json!({
            "category": "ModelGateway",
            "target": stack.gateway.openai_target(),
            "authType": "OAuth2",
            "credentials": {
                "clientId": GATEWAY_CLIENT_ID,
                "clientSecret": stack.client_secret(GATEWAY_CLIENT_ID).unwrap().expose(),
            },
            "tokenUrl": stack.token_server.token_url(),
            "scopes": [GATEWAY_SCOPE],
            "isSharedToAll": false,
            "metadata": {
                "deploymentInPath": "false",
                "inferenceAPIVersion": "",
                "models": models.to_string(),
            },
        }),
    );
}

fn apim_connection(name: &str) {
    let stack = stack();
    put_connection(
        name,
        json!({
            "category": "ApiManagement",
            "target": stack.gateway.azure_target(),
            "authType": "ApiKey",
            "credentials": {"key": stack.gateway.master_key.expose()},
            "isSharedToAll": false,
            "metadata": {
                "deploymentInPath": "true",
                "inferenceAPIVersion": INFERENCE_API_VERSION,
            },
        }),
    );
}

fn flow(connection: &str, model: &str, agent: &str, form: ReferenceForm, expect: Option<&str>) {
    let stack = stack();
    let token = stack
        .token_server
        .mint(OPERATOR_CLIENT_ID, DATA_PLANE_SCOPE)
        .unwrap();
    let outcome = SdkFlow {
        endpoint: stack.emulator.project_endpoint.clone(),
        token,
        connection: connection.to_owned(),
        model: model.to_owned(),
        agent_name: agent.to_owned(),
        expect: expect.map(str::to_owned),
        reference_form: form,
        ca_file: stack.ca_file().to_path_buf(),
    }
    .run()
    .unwrap();
    assert!(
        outcome.passed,
        "flow {connection}/{model} ({form:?}) failed:\n{}",
        outcome.output
    );
}

#[test]
fn the_sdk_flow_reaches_litellm_behind_a_model_gateway_connection_with_oauth2() {
    sdk_python().unwrap();
    model_gateway_connection("litellm-oauth2");
    flow(
        "litellm-oauth2",
        "gpt-4o",
        "sdk-mg-agent-ref",
        ReferenceForm::AgentReference,
        Some("Hello from the gateway (gpt-4o)"),
    );
    flow(
        "litellm-oauth2",
        "gpt-4o-mini",
        "sdk-mg-agent",
        ReferenceForm::Agent,
        Some("Hello from the gateway (gpt-4o-mini)"),
    );
    flow(
        "litellm-oauth2",
        "gpt-5",
        "sdk-mg-missing",
        ReferenceForm::AgentReference,
        None,
    );
    let calls = stack().emulator.gateway_calls("").unwrap();
    let calls = calls.as_array().cloned().unwrap_or_default();
    assert!(
        calls.iter().any(|c| c["connection"] == "litellm-oauth2"
            && c["kind"] == "token"
            && c["status"] == 200),
        "the emulator fetched an OAuth2 token: {calls:?}"
    );
    assert!(
        calls.iter().any(|c| c["connection"] == "litellm-oauth2"
            && c["kind"] == "inference"
            && c["status"] == 200
            && c["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/v1/chat/completions"))),
        "inference went to the OpenAI-style route: {calls:?}"
    );
}

#[test]
fn the_sdk_flow_reaches_litellm_behind_an_apim_connection_with_default_discovery() {
    sdk_python().unwrap();
    apim_connection("litellm-apim");
    flow(
        "litellm-apim",
        "gpt-4o-mini",
        "sdk-apim-agent-ref",
        ReferenceForm::AgentReference,
        Some("Hello from the gateway (gpt-4o-mini)"),
    );
    flow(
        "litellm-apim",
        "gpt-4o",
        "sdk-apim-agent",
        ReferenceForm::Agent,
        Some("Hello from the gateway (gpt-4o)"),
    );
    flow(
        "litellm-apim",
        "gpt-5",
        "sdk-apim-missing",
        ReferenceForm::Agent,
        None,
    );
    let calls = stack().emulator.gateway_calls("").unwrap();
    let calls = calls.as_array().cloned().unwrap_or_default();
    let apim: Vec<&Value> = calls
        .iter()
        .filter(|c| c["connection"] == "litellm-apim")
        .collect();
    assert!(
        apim.iter()
            .any(|c| c["kind"] == "discovery-list" && c["status"] == 200),
        "APIM default discovery listed the deployments: {apim:?}"
    );
    assert!(
        apim.iter().any(|c| c["kind"] == "inference"
            && c["status"] == 200
            && c["url"].as_str().is_some_and(|u| u.contains(&format!(
                "/openai/deployments/gpt-4o/chat/completions?api-version={INFERENCE_API_VERSION}"
            )))),
        "inference had the deployment in the path and the api-version: {apim:?}"
    );
}

#[test]
fn a_stopped_gateway_refuses_connections_and_answers_again_on_the_same_port_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(dir.path(), "ca", "restart-test-ca").unwrap();
    let options = GatewayOptions::new(dir.path().join("gateway"), ca.clone())
        .with_slow_model("slow", Duration::from_secs(3));
    let mut gateway = Gateway::start(options).unwrap();
    let client = HttpClient::with_timeout(&ca.cert_pem().unwrap(), Duration::from_secs(1)).unwrap();
    let url = format!("{}/chat/completions", gateway.openai_target());
    let key = gateway.master_key.clone();
    let ask = |model: &str| client.post_json(&url, &[("api-key", key.expose())], &chat(model));

    assert_eq!(
        reply_text(&ask("gpt-4o").unwrap()),
        "Hello from the gateway (gpt-4o)"
    );
    assert!(
        ask("slow").is_err(),
        "the slow model outlasts a one-second timeout"
    );

    let port = gateway.port();
    gateway.stop().unwrap();
    assert!(!gateway.is_running());
    assert!(ask("gpt-4o").is_err(), "nothing listens after stop");

    gateway.restart().unwrap();
    assert_eq!(gateway.port(), port);
    let reply = ask("gpt-4o").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply_text(&reply), "Hello from the gateway (gpt-4o)");
    gateway.shutdown().unwrap();
}

#[test]
fn the_env_file_is_private_and_names_every_endpoint() {
    use std::os::unix::fs::PermissionsExt as _;
    let stack = stack();
    let path = stack.env_file();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    for name in [
        "FOUNDRY_PROJECT_ENDPOINT",
        "FOUNDRY_ARM_ENDPOINT",
        "FOUNDRY_STACK_CA_FILE",
        "FOUNDRY_TOKEN_URL",
        "FOUNDRY_AUTHORITY_HOST",
        "FOUNDRY_CLIENT_SECRET",
        "LITELLM_MASTER_KEY",
        "LITELLM_AZURE_TARGET",
    ] {
        assert!(text.contains(&format!("export {name}=")), "{name} missing");
    }
    let state = std::fs::read_to_string(stack.state_dir().join("stack.json")).unwrap();
    assert!(
        !state.contains(stack.gateway.master_key.expose()),
        "stack.json holds no secret"
    );
}

#[test]
fn a_detached_stack_with_kubernetes_outlives_its_handle_until_stopped_from_its_directory() {
    use foundry_gateway_testbed::Mode;
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("stack");
    let started = Instant::now();
    let stack = Stack::start(StackOptions {
        state_dir: Some(state_dir.clone()),
        mode: Mode::Detached,
        kubernetes: true,
        ..StackOptions::default()
    })
    .unwrap();
    eprintln!(
        "A stack with Kubernetes was ready in {:.1?}",
        started.elapsed()
    );
    let env = std::fs::read_to_string(stack.env_file()).unwrap();
    assert!(env.contains("export KUBECONFIG="), "{env}");
    let client = stack.http().unwrap();
    let health = format!("{}/_emulator/health", stack.emulator.base_url);
    let liveliness = format!("{}/health/liveliness", stack.gateway.base_url);
    let jwks = stack.token_server.jwks_url();
    drop(stack);

    for url in [&health, &liveliness, &jwks] {
        let reply = client.get(url, &[]).unwrap();
        assert_eq!(reply.status, 200, "{url} answers after the handle is gone");
    }
    let parts = Stack::check_detached(&state_dir).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["token-server", "litellm", "foundry-emulator", "kubernetes"]
    );
    assert!(parts.iter().all(|p| p.answer.is_ok()), "{parts:?}");
    Stack::stop_detached(&state_dir).unwrap();
    assert!(Stack::check_detached(&state_dir).is_err(), "no state left");
    for url in [&health, &liveliness, &jwks] {
        assert!(client.get(url, &[]).is_err(), "{url} is gone after stop");
    }
    assert!(!state_dir.join("stack.json").exists());
}

#[test]
fn a_gateway_that_cannot_listen_fails_its_start_with_the_end_of_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(dir.path(), "ca", "failure-test-ca").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut options = GatewayOptions::new(dir.path().join("gateway"), ca);
    options.port = Some(taken.local_addr().unwrap().port());
    options.ready_timeout = Duration::from_secs(60);
    let error = Gateway::start(options).unwrap_err().to_string();
    assert!(error.contains("litellm exited during startup"), "{error}");
    assert!(error.contains("address already in use"), "{error}");
}

#[test]
fn the_sdk_flow_reaches_litellm_behind_an_apim_connection_with_the_project_managed_identity() {
    sdk_python().unwrap();
    let stack = stack();
    put_connection(
        "litellm-entra",
        json!({
            "category": "ApiManagement",
            "target": stack.gateway.azure_target(),
            "authType": "ProjectManagedIdentity",
            "audience": "https://cognitiveservices.azure.com",
            "credentials": {},
            "isSharedToAll": false,
            "metadata": {
                "deploymentInPath": "true",
                "inferenceAPIVersion": INFERENCE_API_VERSION,
            },
        }),
    );
    flow(
        "litellm-entra",
        "gpt-4o",
        "sdk-entra-agent-ref",
        ReferenceForm::AgentReference,
        Some("Hello from the gateway (gpt-4o)"),
    );
    let calls = stack.emulator.gateway_calls("").unwrap();
    let calls = calls.as_array().cloned().unwrap_or_default();
    assert!(
        calls.iter().any(|c| c["connection"] == "litellm-entra"
            && c["kind"] == "token"
            && c["status"] == 200
            && c["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/oauth2/v2.0/token"))),
        "the managed identity's token came from the Entra-form endpoint: {calls:?}"
    );
}

/// Runs `tests/sdk/surface.py` (the data plane beyond the documented flow, through the official
/// SDK) and returns whether it passed, with its output.
fn run_surface_script(args: &[&str], connection_key: &str) -> (bool, String) {
    use std::process::{Command, Stdio};
    let stack = stack();
    let token = stack
        .token_server
        .mint(OPERATOR_CLIENT_ID, DATA_PLANE_SCOPE)
        .unwrap();
    let script = foundry_gateway_testbed::python::sdk_dir().join("surface.py");
    let output = Command::new(sdk_python().unwrap())
        .arg(script)
        .args(["--endpoint", &stack.emulator.project_endpoint])
        .args(args)
        .env("FOUNDRY_TOKEN", token.expose())
        .env("FOUNDRY_CONNECTION_KEY", connection_key)
        .env("SSL_CERT_FILE", stack.ca_file())
        .env("REQUESTS_CA_BUNDLE", stack.ca_file())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .replace(token.expose(), "<token>")
    .replace(connection_key, "<key>");
    (output.status.success(), text)
}

#[test]
fn the_sdk_reads_connections_deployments_agents_and_responses_beyond_the_flow() {
    let stack = stack();
    let models = json!([
        {"name": "gpt-4o", "properties": {"model": {"name": "gpt-4o", "version": "2024-11-20", "format": "OpenAI"}}},
    ]);
    put_connection(
        "litellm-surface",
        json!({
            "category": "ModelGateway",
            "target": stack.gateway.openai_target(),
            "authType": "ApiKey",
            "credentials": {"key": stack.gateway.master_key.expose()},
            "isSharedToAll": false,
            "metadata": {"deploymentInPath": "false", "models": models.to_string()},
        }),
    );
    // A gateway that accepts TCP connections and never answers: a background response on it
    // stays running until it is cancelled.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    put_connection(
        "hanging-gw",
        json!({
            "category": "ModelGateway",
            "target": format!("https://127.0.0.1:{}", hanging.local_addr().unwrap().port()),
            "authType": "ApiKey",
            "credentials": {"key": "never-used-key"},
            "isSharedToAll": false,
            "metadata": {"deploymentInPath": "false", "models": models.to_string()},
        }),
    );
    let (passed, output) = run_surface_script(
        &[
            "--connection",
            "litellm-surface",
            "--model",
            "gpt-4o",
            "--expect",
            "Hello from the gateway (gpt-4o)",
            "--hanging-connection",
            "hanging-gw",
        ],
        stack.gateway.master_key.expose(),
    );
    eprintln!("{output}");
    assert!(passed, "surface.py failed:\n{output}");
    assert!(!output.contains("FAILED"), "{output}");
    drop(hanging);

    let calls = stack.emulator.gateway_calls("").unwrap();
    let calls = calls.as_array().cloned().unwrap_or_default();
    assert!(
        calls.iter().any(|c| c["connection"] == "litellm-surface"
            && c["kind"] == "inference"
            && c["status"] == 200
            && c["requestBody"]["stream"] == true),
        "a streamed response asked LiteLLM for a streaming chat completion: {calls:?}"
    );
}

/// A chat completion asking for at most `max_tokens` tokens.
fn chat_with_max_tokens(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 1})
}

#[test]
fn the_reasoning_model_refuses_max_tokens_with_the_error_of_gpt5_deployments() {
    let gateway = &stack().gateway;
    let key = [("api-key", gateway.master_key.expose())];
    let openai = format!("{}/chat/completions", gateway.openai_target());
    let azure = format!(
        "{}/deployments/{REASONING_MODEL}/chat/completions?api-version={INFERENCE_API_VERSION}",
        gateway.azure_target()
    );
    let expected: Value = serde_json::from_str(MAX_TOKENS_REFUSAL).unwrap();

    let refused = http()
        .post_json(&openai, &key, &chat_with_max_tokens(REASONING_MODEL))
        .unwrap();
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.text, MAX_TOKENS_REFUSAL);
    let mut in_path = chat_with_max_tokens(REASONING_MODEL);
    in_path.as_object_mut().unwrap().remove("model");
    let refused = http().post_json(&azure, &key, &in_path).unwrap();
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(refused.json(), expected);

    // Without a token limit it answers; other models take max_tokens.
    let reply = http()
        .post_json(&openai, &key, &chat(REASONING_MODEL))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply_text(&reply),
        format!("Hello from the gateway ({REASONING_MODEL})")
    );
    let reply = http()
        .post_json(
            &azure,
            &key,
            &json!({"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 5}),
        )
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = http()
        .post_json(&openai, &key, &chat_with_max_tokens("gpt-4o"))
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);

    // Credentials are checked first, as the service does.
    let reply = http()
        .post_json(
            &openai,
            &[("api-key", "sk-wrong")],
            &chat_with_max_tokens(REASONING_MODEL),
        )
        .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text);
}

/// The operator's probe against the stack's LiteLLM: the reasoning model is Active in both
/// connection forms, because the probe sends what Foundry's validation scripts send (no
/// `max_tokens`).
#[test]
fn the_probe_finds_the_reasoning_model_active_behind_both_connection_categories() {
    use foundry_gateway_client::probe::{
        GatewayAuth, GatewaySettings, ProbeMode, ProbeOutcome, ProbeRequest, Prober,
    };
    use foundry_gateway_client::{ConnectionCategory, SecretString, Transport, TransportOptions};

    let stack = stack();
    let gateway = &stack.gateway;
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem: Some(stack.ca_pem().as_bytes().to_vec()),
        ..TransportOptions::default()
    })
    .unwrap();
    let prober = Prober::new(transport);
    let key = || GatewayAuth::ApiKey {
        key: SecretString::new(gateway.master_key.expose()),
        auth_config: None,
    };
    let settings =
        |category, target: String, in_path: bool, api_version: Option<&str>| GatewaySettings {
            target,
            category,
            deployment_in_path: in_path,
            inference_api_version: api_version.map(str::to_owned),
            deployment_api_version: None,
            discovery: None,
            static_models: vec![REASONING_MODEL.to_owned()],
            model_formats: Default::default(),
            custom_headers: Default::default(),
            auth: key(),
        };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for s in [
        settings(
            ConnectionCategory::ModelGateway,
            gateway.openai_target(),
            false,
            Some(""),
        ),
        settings(
            ConnectionCategory::ApiManagement,
            gateway.azure_target(),
            true,
            Some(INFERENCE_API_VERSION),
        ),
    ] {
        let what = format!("{} at {}", s.category, s.target);
        let outcome = runtime
            .block_on(prober.probe(&ProbeRequest {
                settings: s,
                mode: ProbeMode::Inference,
                model: Some(REASONING_MODEL.to_owned()),
                timeout: Duration::from_secs(20),
            }))
            .unwrap();
        match outcome {
            ProbeOutcome::Active { models, .. } => assert_eq!(models, [REASONING_MODEL], "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// The stack's gateway checks Entra tokens as the APIM setup guide's policy does: a token for
/// `https://cognitiveservices.azure.com` needs `xms_mirid` = the project's ARM id, which the
/// token server puts into the project identity's tokens.
#[test]
fn the_stack_gateway_takes_a_cognitive_services_token_only_from_the_project_identity() {
    let stack = stack();
    let ts = &stack.token_server;
    let scope = format!("{COGNITIVE_SERVICES_AUDIENCE}/.default");
    let url = format!(
        "{}/deployments/gpt-4o/chat/completions?api-version={INFERENCE_API_VERSION}",
        stack.gateway.azure_target()
    );
    let body = json!({"messages": [{"role": "user", "content": "Hello!"}]});
    let bearer = |token: &Secret| format!("Bearer {}", token.expose());

    let project = ts.mint(PROJECT_IDENTITY_CLIENT_ID, &scope).unwrap();
    let claims = jwt_claims(project.expose());
    assert_eq!(claims[MIRID_CLAIM], stack.project_mirid());
    assert_eq!(
        stack.project_mirid(),
        managed_identity_mirid(&stack.emulator.project().arm_id())
    );
    assert!(stack.project_mirid().contains("/resourcegroups/"));
    let reply = http()
        .post_json(&url, &[("Authorization", &bearer(&project))], &body)
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);

    // The operator's own identity has no xms_mirid: refused, as APIM refuses it.
    let operator = ts.mint(OPERATOR_CLIENT_ID, &scope).unwrap();
    assert!(jwt_claims(operator.expose()).get(MIRID_CLAIM).is_none());
    let reply = http()
        .post_json(&url, &[("Authorization", &bearer(&operator))], &body)
        .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert!(
        reply.text.contains("Valid Entra token is required"),
        "{}",
        reply.text
    );
}

/// `xms_mirid` on a gateway of its own: tokens with the right claim, a wrong one (another
/// project, and the same id with `resourceGroups` in another case: APIM compares exactly) and
/// none; then the requirement changed while the gateway runs.
#[test]
fn a_gateway_requiring_xms_mirid_takes_the_right_claim_only_and_can_change_its_mind() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::create(dir.path(), "ca", "mirid-test-ca").unwrap();
    let project = "/subscriptions/0000/resourceGroups/rg-mirid/providers/Microsoft.CognitiveServices/accounts/acct/projects/p1";
    let right = managed_identity_mirid(project);
    let other = managed_identity_mirid(&project.replace("/p1", "/p2"));
    let clients: std::collections::BTreeMap<String, Secret> =
        ["right", "other-project", "arm-case", "none"]
            .into_iter()
            .map(|c| (c.to_owned(), Secret::new(format!("secret-{c}"))))
            .collect();
    let mut ts = TokenServer::start(
        TokenServerOptions::new(dir.path().join("token-server"), ca.clone(), clients)
            .with_claim("right", MIRID_CLAIM, &right)
            .with_claim("other-project", MIRID_CLAIM, &other)
            .with_claim("arm-case", MIRID_CLAIM, project),
    )
    .unwrap();
    let mut options = GatewayOptions::new(dir.path().join("gateway"), ca.clone());
    options.models = vec![GatewayModel::new("gpt-4o")];
    options.jwt = Some(JwtAuth {
        jwks_url: ts.jwks_url(),
        audiences: vec![COGNITIVE_SERVICES_AUDIENCE.to_owned()],
        issuer: Some(ts.issuer().to_owned()),
        required_claims: vec![RequiredClaim::mirid(COGNITIVE_SERVICES_AUDIENCE, &right)],
    });
    let gateway = Gateway::start(options).unwrap();
    let client = HttpClient::new(&ca.cert_pem().unwrap()).unwrap();
    let url = format!(
        "{}/deployments/gpt-4o/chat/completions?api-version={INFERENCE_API_VERSION}",
        gateway.azure_target()
    );
    let scope = format!("{COGNITIVE_SERVICES_AUDIENCE}/.default");
    let token = |c: &str| ts.mint(c, &scope).unwrap();
    let (right_token, other_token, case_token, none_token) = (
        token("right"),
        token("other-project"),
        token("arm-case"),
        token("none"),
    );
    assert_eq!(ts.claims_of("right")[MIRID_CLAIM], right);
    assert_eq!(jwt_claims(right_token.expose())[MIRID_CLAIM], right);
    assert!(jwt_claims(none_token.expose()).get(MIRID_CLAIM).is_none());
    let status = |t: &Secret| {
        let reply = client
            .post_json(
                &url,
                &[("Authorization", &format!("Bearer {}", t.expose()))],
                &json!({"messages": [{"role": "user", "content": "Hello!"}]}),
            )
            .unwrap();
        if reply.status == 401 {
            assert!(
                reply.json()["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("Unauthorized. Valid Entra token is required."),
                "{}",
                reply.text
            );
        }
        reply.status
    };
    assert_eq!(status(&right_token), 200, "the right claim");
    assert_eq!(status(&other_token), 401, "another project's claim");
    assert_eq!(status(&case_token), 401, "the ARM id in another case");
    assert_eq!(status(&none_token), 401, "no claim");

    gateway
        .set_required_claims(&[RequiredClaim::mirid(COGNITIVE_SERVICES_AUDIENCE, &other)])
        .unwrap();
    assert_eq!(status(&other_token), 200, "the new value");
    assert_eq!(status(&right_token), 401, "the old value");
    gateway.set_required_claims(&[]).unwrap();
    assert_eq!(status(&none_token), 200, "nothing required any more");
    gateway.shutdown().unwrap();
    ts.stop().unwrap();
}

#[test]
fn the_sdk_flow_streams_a_reply_into_the_conversation_through_a_model_gateway_with_an_api_key() {
    let stack = stack();
    put_connection(
        "litellm-streams",
        json!({
            "category": "ModelGateway",
            "target": stack.gateway.openai_target(),
            "authType": "ApiKey",
            "credentials": {"key": stack.gateway.master_key.expose()},
            "isSharedToAll": false,
            "metadata": {
                "deploymentInPath": "false",
                "models": json!([{"name": "gpt-4o-mini", "properties": {"model": {"name": "gpt-4o-mini", "format": "OpenAI"}}}]).to_string(),
            },
        }),
    );
    let token = stack
        .token_server
        .mint(OPERATOR_CLIENT_ID, DATA_PLANE_SCOPE)
        .unwrap();
    let outcome = SdkFlow {
        endpoint: stack.emulator.project_endpoint.clone(),
        token,
        connection: "litellm-streams".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        agent_name: "sdk-stream-agent".to_owned(),
        expect: Some("Hello from the gateway (gpt-4o-mini)".to_owned()),
        reference_form: ReferenceForm::AgentReference,
        ca_file: stack.ca_file().to_path_buf(),
    }
    .run()
    .unwrap();
    assert!(outcome.passed, "{}", outcome.output);
    assert!(
        outcome
            .output
            .contains("STREAMED REPLY: Hello from the gateway (gpt-4o-mini)"),
        "the flow streamed the reply:\n{}",
        outcome.output
    );
    let calls = stack.emulator.gateway_calls("").unwrap();
    let streamed = calls
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c["connection"] == "litellm-streams"
                && c["kind"] == "inference"
                && c["requestBody"]["stream"] == true
        })
        .count();
    assert_eq!(streamed, 1, "one streaming chat completion went to LiteLLM");
}

#[test]
fn the_sdk_flow_streams_through_an_account_connection_of_the_projects_foundry_resource() {
    sdk_python().unwrap();
    let stack = stack();
    put_account_connection(
        "litellm-account",
        json!({
            "category": "ModelGateway",
            "target": stack.gateway.openai_target(),
            "authType": "ApiKey",
            "credentials": {"key": stack.gateway.master_key.expose()},
            "isSharedToAll": true,
            "metadata": {
                "deploymentInPath": "false",
                "models": json!([{"name": "gpt-4o", "properties": {"model": {"name": "gpt-4o", "format": "OpenAI"}}}]).to_string(),
            },
        }),
    );
    flow(
        "litellm-account",
        "gpt-4o",
        "sdk-account-agent",
        ReferenceForm::AgentReference,
        Some("Hello from the gateway (gpt-4o)"),
    );
    let calls = stack.emulator.gateway_calls("").unwrap();
    assert!(
        calls
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["connection"] == "litellm-account"
                && c["kind"] == "inference"
                && c["status"] == 200),
        "the project's agent reached the gateway through the account connection: {calls}"
    );
}
