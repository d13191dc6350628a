//! Responses for agents are forwarded to the gateway of the agent's connection (reference §3),
//! here a small OpenAI-compatible server over HTTPS with the test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use foundry_gateway_emulator::{IdentityClient, ProjectIdentity};
use serde_json::{Value, json};

#[tokio::test]
async fn a_model_gateway_with_an_api_key_gets_the_documented_request() {
    let (h, gw) = start_with_connection("my-gw", |gw| {
        api_key_connection(
            &format!("{}/llm/", gw.base),
            "gw-api-key-123",
            json!({"deploymentInPath": "false", "inferenceAPIVersion": "", "models": MODELS,
               "customHeaders": "{\"X-Client-App\":\"foundry-agents\",\"X-Team\":\"blue\"}"}),
        )
    })
    .await;
    h.create_agent("helper", "my-gw/gpt-4o").await;

    let (s, v) = h.respond("helper", "Ping").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "response");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "my-gw/gpt-4o");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["role"], "assistant");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], "echo: Ping");
    assert_eq!(v["usage"]["input_tokens"], 7);
    assert_eq!(v["usage"]["output_tokens"], 3);
    assert_eq!(v["usage"]["total_tokens"], 10);

    let calls = gw.chat_calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.method, Method::POST);
    assert_eq!(c.uri.path(), "/llm/chat/completions");
    assert_eq!(
        c.uri.query(),
        None,
        "an empty inferenceAPIVersion adds no api-version"
    );
    assert_eq!(c.headers["api-key"], "gw-api-key-123");
    assert!(c.headers.get("authorization").is_none());
    assert_eq!(c.headers["x-client-app"], "foundry-agents");
    assert_eq!(c.headers["x-team"], "blue");
    assert!(
        c.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        c.body["model"], "gpt-4o",
        "deploymentInPath=false puts the model in the body"
    );
    assert_eq!(
        c.body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ping"}])
    );

    // The outgoing call log keeps header names and hides the key and custom header values.
    let (_, log) = h.control(Method::GET, "/gateway-calls", None).await;
    let text = log.to_string();
    assert!(!text.contains("gw-api-key-123"), "{text}");
    assert!(!text.contains("\"blue\""), "{text}");
    let call = &log.as_array().unwrap()[0];
    assert_eq!(call["kind"], "inference");
    assert_eq!(call["url"], format!("{}/llm/chat/completions", gw.base));
    assert_eq!(call["headers"]["api-key"], "<redacted>");
    assert_eq!(call["headers"]["X-Client-App"], "<redacted>");
    assert_eq!(call["status"], 200);
    assert!(
        call["headerNames"]
            .as_array()
            .unwrap()
            .contains(&json!("api-key"))
    );
}

#[tokio::test]
async fn apim_puts_the_deployment_in_the_path_with_the_inference_api_version_and_auth_config() {
    let (h, gw) = start_with_connection("apim", |gw| {
        gateway_connection(
            "ApiManagement",
            &format!("{}/foundry/models", gw.base),
            json!({"authType": "ApiKey", "credentials": {"key": "apim-sub-key"}}),
            json!({"deploymentInPath": "true", "inferenceAPIVersion": "2024-02-01", "models": MODELS,
                   "authConfig": "{\"type\":\"api_key\",\"name\":\"Authorization\",\"format\":\"Bearer {api_key}\"}"}),
        )
    })
    .await;
    h.create_agent("apim-agent", "apim/gpt-4o").await;
    let (s, v) = h.respond("apim-agent", "Hi").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = &gw.chat_calls()[0];
    assert_eq!(
        c.uri.path(),
        "/foundry/models/deployments/gpt-4o/chat/completions"
    );
    assert_eq!(c.uri.query(), Some("api-version=2024-02-01"));
    assert_eq!(c.headers["authorization"], "Bearer apim-sub-key");
    assert!(c.headers.get("api-key").is_none());
    assert!(
        c.body.get("model").is_none(),
        "deploymentInPath=true keeps the model out of the body"
    );
}

#[tokio::test]
async fn unknown_connections_are_404_connection_not_found_and_unknown_deployments_model_not_found()
{
    let (h, gw) = start_with_connection("my-gw", |gw| {
        api_key_connection(&gw.base, "k-1234", json!({"models": MODELS}))
    })
    .await;
    h.create_agent("wrong-model", "my-gw/gpt-5").await;
    h.create_agent("wrong-conn", "nope/gpt-4o").await;
    h.create_agent("no-conn", "gpt-4o").await;
    for (agent, model, code) in [
        ("wrong-model", "my-gw/gpt-5", "model_not_found"),
        ("wrong-conn", "nope/gpt-4o", "connection_not_found"),
        ("no-conn", "gpt-4o", "model_not_found"),
    ] {
        let (s, v) = h.respond(agent, "x").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error"]["code"], code);
        assert_eq!(v["error"]["param"], "model");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(model),
            "{v}"
        );
    }
    assert!(gw.chat_calls().is_empty());
}

#[tokio::test]
async fn openai_discovery_lists_models_once_and_asks_get_by_name_for_unlisted_ones() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    let body = api_key_connection(
        &gw.base,
        "k-disc",
        json!({"deploymentAPIVersion": "2024-10-21", "modelDiscovery":
            "{\"listModelsEndpoint\":\"/v1/models\",\"getModelEndpoint\":\"/v1/models/{deploymentName}\",\"deploymentProvider\":\"OpenAI\"}",
            "customHeaders": "{\"X-Trace\":\"on\"}"}),
    );
    h.put_connection("disc", body.clone()).await;
    h.create_agent("a1", "disc/llama").await;
    h.create_agent("a2", "disc/hidden-model").await;
    h.create_agent("a3", "disc/absent").await;
    assert_eq!(h.respond("a1", "one").await.0, StatusCode::OK);
    assert_eq!(h.respond("a1", "two").await.0, StatusCode::OK);
    assert_eq!(h.respond("a2", "three").await.0, StatusCode::OK);
    let (s, v) = h.respond("a3", "four").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'gpt-4o', 'llama'"),
        "{v}"
    );

    let seen = gw.seen();
    let lists: Vec<_> = seen
        .iter()
        .filter(|s| s.uri.path() == "/v1/models")
        .collect();
    assert_eq!(lists.len(), 1, "the list is cached per connection");
    assert_eq!(lists[0].uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(lists[0].headers["api-key"], "k-disc");
    assert_eq!(lists[0].headers["x-trace"], "on");
    let gets: Vec<_> = seen
        .iter()
        .filter(|s| s.uri.path().starts_with("/v1/models/"))
        .map(|s| s.uri.path().to_string())
        .collect();
    assert_eq!(gets, vec!["/v1/models/hidden-model", "/v1/models/absent"]);

    // Writing the connection again clears the cache.
    h.put_connection("disc", body).await;
    assert_eq!(h.respond("a1", "five").await.0, StatusCode::OK);
    assert_eq!(
        gw.seen()
            .iter()
            .filter(|s| s.uri.path() == "/v1/models")
            .count(),
        2
    );
}

#[tokio::test]
async fn apim_without_discovery_metadata_uses_the_deployments_defaults() {
    let (h, gw) = start_with_connection("apim", |gw| {
        gateway_connection(
            "ApiManagement",
            &format!("{}/aoai", gw.base),
            json!({"authType": "ApiKey", "credentials": {"key": "k-apim"}}),
            json!({"deploymentAPIVersion": "2023-05-01"}),
        )
    })
    .await;
    h.create_agent("a1", "apim/gpt-4o").await;
    let (s, v) = h.respond("a1", "hello").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let seen = gw.seen();
    assert_eq!(seen[0].uri.path(), "/aoai/deployments");
    assert_eq!(seen[0].uri.query(), Some("api-version=2023-05-01"));
    assert_eq!(
        seen[1].uri.path(),
        "/aoai/deployments/gpt-4o/chat/completions"
    );
}

#[tokio::test]
async fn oauth2_connections_fetch_a_client_credentials_token_once_and_send_it_as_bearer() {
    let (h, gw) = start_with_connection("mg-oauth", |gw| {
        json!({"properties": {"category": "ModelGateway", "target": format!("{}/llm", gw.base), "authType": "OAuth2",
            "credentials": {"clientId": "gw-client", "clientSecret": "oauth-client-secret"},
            "tokenUrl": format!("{}/oauth2/token", gw.base), "scopes": ["api://gw/.default", "extra"],
            "metadata": {"deploymentInPath": "false", "inferenceAPIVersion": "", "models": MODELS}}})
    })
    .await;
    h.create_agent("oauth-agent", "mg-oauth/gpt-4o").await;
    assert_eq!(h.respond("oauth-agent", "one").await.0, StatusCode::OK);
    assert_eq!(h.respond("oauth-agent", "two").await.0, StatusCode::OK);
    assert_eq!(gw.token_count(), 1, "the token is cached until it expires");
    let token_call = gw
        .seen()
        .into_iter()
        .find(|s| s.uri.path() == "/oauth2/token")
        .unwrap();
    assert_eq!(token_call.method, Method::POST);
    assert_eq!(
        token_call.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(token_call.form.as_bytes())
        .into_owned()
        .collect();
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(form.contains(&("client_id".into(), "gw-client".into())));
    assert!(form.contains(&("client_secret".into(), "oauth-client-secret".into())));
    assert!(form.contains(&("scope".into(), "api://gw/.default extra".into())));
    for c in gw.chat_calls() {
        assert_eq!(c.headers["authorization"], "Bearer gw-access-token-1");
        assert!(c.headers.get("api-key").is_none());
    }
    let (_, log) = h.control(Method::GET, "/gateway-calls", None).await;
    let text = log.to_string();
    assert!(
        !text.contains("oauth-client-secret") && !text.contains("gw-access-token"),
        "{text}"
    );
    assert_eq!(log[0]["kind"], "token");
}

#[tokio::test]
async fn entra_connections_send_a_static_project_identity_token() {
    let h = start_with(|c| {
        c.project_identity = ProjectIdentity::StaticToken("project-mi-token".into())
    })
    .await;
    let gw = FakeGateway::start(&h.pki).await;
    let entra = |target: String| {
        json!({"properties": {"category": "ApiManagement", "target": target, "authType": "ProjectManagedIdentity",
            "audience": "https://cognitiveservices.azure.com", "credentials": {},
            "metadata": {"deploymentInPath": "true", "models": MODELS}}})
    };
    h.put_connection("apim-mi", entra(format!("{}/aoai", gw.base)))
        .await;
    h.create_agent("mi-agent", "apim-mi/gpt-4o").await;
    assert_eq!(h.respond("mi-agent", "x").await.0, StatusCode::OK);
    assert_eq!(
        gw.chat_calls()[0].headers["authorization"],
        "Bearer project-mi-token"
    );
}

#[tokio::test]
async fn a_gateway_certificate_from_an_untrusted_ca_fails_with_502_gateway_tls_error() {
    // This emulator trusts only its own test CA; the gateway uses another one.
    let h = start().await;
    let other = TestPki::new();
    let gw = FakeGateway::start(&other).await;
    h.put_connection(
        "my-gw",
        api_key_connection(&gw.base, "k-tls", json!({"models": MODELS})),
    )
    .await;
    h.create_agent("a1", "my-gw/gpt-4o").await;
    let (s, v) = h.respond("a1", "x").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "gateway_tls_error");
    assert!(gw.seen().is_empty());
}

#[tokio::test]
async fn entra_token_url_mode_requests_the_audience_default_scope() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    // A second emulator that trusts the same CA and uses the gateway's token endpoint.
    let ca = h.pki.ca_pem.clone();
    let tls = h.pki.tls();
    let token_url = format!("{}/oauth2/token", gw.base);
    let mut config = foundry_gateway_emulator::EmulatorConfig::new(
        foundry_gateway_emulator::AuthMode::StaticToken(TOKEN.into()),
    );
    config.tls = Some(tls);
    config.extra_ca_pem = Some(ca.into_bytes());
    config.project_identity =
        ProjectIdentity::client_credentials(token_url, "project-identity", "mi-secret");
    let emu = foundry_gateway_emulator::Emulator::start(config)
        .await
        .unwrap();
    let h2 = Harness {
        pki: TestPki {
            ca_pem: h.pki.ca_pem.clone(),
            cert_pem: h.pki.cert_pem.clone(),
            key_pem: h.pki.key_pem.clone(),
        },
        emu,
        client: h.pki.client(),
    };
    let body = json!({"properties": {"category": "ApiManagement", "target": format!("{}/aoai", gw.base), "authType": "AAD",
        "audience": "https://cognitiveservices.azure.com/", "metadata": {"deploymentInPath": "true", "models": MODELS}}});
    assert_eq!(h2.put_connection("apim-aad", body).await.0, StatusCode::OK);
    h2.create_agent("aad-agent", "apim-aad/gpt-4o").await;
    assert_eq!(h2.respond("aad-agent", "x").await.0, StatusCode::OK);
    assert_eq!(h2.respond("aad-agent", "y").await.0, StatusCode::OK);
    assert_eq!(gw.token_count(), 1);
    let token_call = gw
        .seen()
        .into_iter()
        .find(|s| s.uri.path() == "/oauth2/token")
        .unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(token_call.form.as_bytes())
        .into_owned()
        .collect();
    assert!(
        form.contains(&(
            "scope".into(),
            "https://cognitiveservices.azure.com/.default".into()
        )),
        "{form:?}"
    );
    assert!(form.contains(&("client_id".into(), "project-identity".into())));
    assert_eq!(
        gw.chat_calls()[0].headers["authorization"],
        "Bearer gw-access-token-1"
    );
}

#[tokio::test]
async fn gateway_errors_become_502_with_their_cause_saying_what_the_gateway_said_without_credentials()
 {
    let (h, gw) = start_with_connection("my-gw", |gw| {
        api_key_connection(&gw.base, "leaky-key-999", json!({"models": MODELS}))
    })
    .await;
    h.create_agent("a1", "my-gw/gpt-4o").await;
    gw.reply_next(
        StatusCode::UNAUTHORIZED,
        json!({"error": {"message": "Invalid key leaky-key-999 for this route", "type": "auth"}}),
    );
    let (s, v) = h.respond("a1", "x").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY);
    assert_eq!(v["error"]["code"], "gateway_unauthorized");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("401") && msg.contains("Invalid key"), "{msg}");
    assert!(!msg.contains("leaky-key-999"), "{msg}");

    // An unreachable gateway is a 502 too.
    let dead = api_key_connection("https://127.0.0.1:9", "k-dead", json!({"models": MODELS}));
    h.put_connection("dead-gw", dead).await;
    h.create_agent("a2", "dead-gw/gpt-4o").await;
    let (s, v) = h.respond("a2", "x").await;
    assert_eq!(s, StatusCode::BAD_GATEWAY, "{v}");
    assert_eq!(v["error"]["code"], "gateway_unreachable");
}

#[tokio::test]
async fn responses_in_a_conversation_send_its_history_and_append_input_and_reply() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    h.put_connection(
        "my-gw",
        api_key_connection(&gw.base, "k-conv", json!({"models": MODELS})),
    )
    .await;
    h.create_agent("chatty", "my-gw/gpt-4o").await;
    let (s, conv) = h
        .post(
            &h.openai("/conversations"),
            json!({"items": [{"type": "message", "role": "user", "content": "Earlier"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let conv_id = conv["id"].as_str().unwrap();
    // The legacy `agent` key works too, and the version is optional.
    let (s, v) = h.post(&h.openai("/responses"), json!({"conversation": conv_id, "input": "Now", "agent": {"type": "agent_reference", "name": "chatty"}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["conversation"]["id"], conv_id);
    assert_eq!(v["agent_reference"]["name"], "chatty");
    assert_eq!(v["agent_reference"]["version"], "1");
    let sent = &gw.chat_calls()[0].body["messages"];
    assert_eq!(
        *sent,
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Earlier"}, {"role": "user", "content": "Now"}])
    );
    let (s, items) = h
        .get(&h.openai(&format!("/conversations/{conv_id}/items?order=asc")))
        .await;
    assert_eq!(s, StatusCode::OK);
    let texts = item_texts(&items);
    assert_eq!(texts, vec!["Earlier", "Now", "echo: Now"]);
    let (s, got) = h
        .get(&h.openai(&format!("/responses/{}", v["id"].as_str().unwrap())))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["id"], v["id"]);
    // A specific version can be named.
    let (s, _) = h.post(&h.openai("/responses"), json!({"input": "x", "agent_reference": {"type": "agent_reference", "name": "chatty", "version": "9"}})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn responses_without_an_agent_or_with_an_unknown_agent_are_refused() {
    let h = start().await;
    let (s, v) = h.post(&h.openai("/responses"), json!({"input": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "agent_reference");
    let (s, v) = h.respond("ghost", "x").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let _: Value = v;
}

/// `POST /openai/v1/responses` of `project` with a model and no agent.
async fn model_response(
    h: &Harness,
    project: &str,
    model: &str,
    input: &str,
) -> (StatusCode, Value) {
    h.post(
        &format!("{}/openai/v1/responses", h.emu.project_endpoint(project)),
        json!({"model": model, "input": input}),
    )
    .await
}

fn project_id(account: &str, project: &str) -> foundry_gateway_emulator::ProjectId {
    foundry_gateway_emulator::ProjectId {
        subscription: SUB.into(),
        resource_group: "rg-local".into(),
        account: account.into(),
        project: project.into(),
    }
}

fn arm_url(
    h: &Harness,
    parent: &foundry_gateway_emulator::ProjectId,
    account_scope: bool,
    name: &str,
) -> String {
    let parent_id = if account_scope {
        parent.account_arm_id()
    } else {
        parent.arm_id()
    };
    format!(
        "{}{parent_id}/connections/{name}?api-version=2026-09-01",
        h.emu.base_url
    )
}

#[tokio::test]
async fn a_response_for_a_model_without_an_agent_calls_that_connections_gateway() {
    let (h, gw) = start_with_connection("my-gw", |gw| api_key_connection(
        &format!("{}/llm", gw.base),
        "gw-key-7",
        json!({"deploymentInPath": "false", "inferenceAPIVersion": "2024-10-21", "models": MODELS,
               "customHeaders": "{\"X-Client-App\":\"foundry-agents\"}"}),
    )).await;
    let (s, v) = model_response(&h, PROJECT, "my-gw/gpt-4o", "Hi").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["model"], "my-gw/gpt-4o");
    assert_eq!(v["agent_reference"], Value::Null);
    assert_eq!(v["output"][0]["content"][0]["text"], "echo: Hi");
    let calls = gw.chat_calls();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    // The same request an agent's model gets, without instructions: the connection's URL,
    // api-version, auth and custom headers, and the smallest body.
    assert_eq!(c.uri.path(), "/llm/chat/completions");
    assert_eq!(c.uri.query(), Some("api-version=2024-10-21"));
    assert_eq!(c.headers["api-key"], "gw-key-7");
    assert_eq!(c.headers["x-client-app"], "foundry-agents");
    assert_eq!(
        c.body,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
    );
}

/// A TCP listener that accepts and never answers (not even the TLS handshake).
async fn silent_listener() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn model_responses_tell_apart_every_way_a_gateway_can_fail() {
    let h = start_with(|c| c.gateway_timeout = std::time::Duration::from_millis(800)).await;
    let gw = FakeGateway::start(&h.pki).await;
    let untrusted = FakeGateway::start(&TestPki::new()).await;
    let silent = silent_listener().await;
    let apikey = json!({"authType": "ApiKey", "credentials": {"key": "k-fail"}});
    for (name, target) in [
        ("my-gw", gw.base.clone()),
        ("tls-gw", untrusted.base.clone()),
        ("slow-gw", format!("https://{silent}")),
        (
            "dead-gw",
            format!("https://127.0.0.1:{}", closed_port().await),
        ),
    ] {
        let body = gateway_connection(
            "ModelGateway",
            &target,
            apikey.clone(),
            json!({"models": MODELS}),
        );
        assert_eq!(h.put_connection(name, body).await.0, StatusCode::OK);
    }
    // An OAuth2 connection whose token endpoint refuses the client.
    let tokens = TokenServer::start(&[("other-client", "other-secret", "")]).await;
    let oauth = json!({"properties": {"category": "ModelGateway", "target": gw.base, "authType": "OAuth2",
        "credentials": {"clientId": "gw-client", "clientSecret": "wrong-secret"},
        "tokenUrl": tokens.token_url(), "scopes": ["api://gw/.default"],
        "metadata": {"models": MODELS}}});
    assert_eq!(h.put_connection("oauth-gw", oauth).await.0, StatusCode::OK);

    let unknown_model = json!({"error": {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist."}});
    // (model, the gateway's next chat answer, status, error code)
    type Case<'a> = (&'a str, Option<(StatusCode, Value)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            "nope/gpt-4o",
            None,
            StatusCode::NOT_FOUND,
            "connection_not_found",
        ),
        (
            "my-gw/gpt-5",
            None,
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::NOT_FOUND,
                json!({"error": {"message": "Resource not found"}}),
            )),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            "my-gw/gpt-4o",
            Some((StatusCode::BAD_REQUEST, unknown_model)),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::UNAUTHORIZED,
                json!({"error": {"message": "bad key"}}),
            )),
            StatusCode::BAD_GATEWAY,
            "gateway_unauthorized",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::FORBIDDEN,
                json!({"statusCode": 403, "message": "xms_mirid mismatch"}),
            )),
            StatusCode::BAD_GATEWAY,
            "gateway_unauthorized",
        ),
        (
            "oauth-gw/gpt-4o",
            None,
            StatusCode::BAD_GATEWAY,
            "gateway_unauthorized",
        ),
        (
            "dead-gw/gpt-4o",
            None,
            StatusCode::BAD_GATEWAY,
            "gateway_unreachable",
        ),
        (
            "tls-gw/gpt-4o",
            None,
            StatusCode::BAD_GATEWAY,
            "gateway_tls_error",
        ),
        (
            "slow-gw/gpt-4o",
            None,
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": {"message": "slow down"}}),
            )),
            StatusCode::TOO_MANY_REQUESTS,
            "gateway_rate_limited",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": {"message": "boom"}}),
            )),
            StatusCode::BAD_GATEWAY,
            "gateway_bad_response",
        ),
        (
            "my-gw/gpt-4o",
            Some((
                StatusCode::OK,
                json!({"id": "x", "object": "chat.completion"}),
            )),
            StatusCode::BAD_GATEWAY,
            "gateway_bad_response",
        ),
        ("my-gw/gpt-4o", None, StatusCode::OK, ""),
    ];
    for (model, reply, status, code) in cases {
        if let Some((s, body)) = reply {
            gw.reply_next(s, body);
        }
        let (s, v) = model_response(&h, PROJECT, model, "Hi").await;
        assert_eq!(s, status, "{model} {code}: {v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "{model}: {v}");
            assert!(
                !v.to_string().contains("k-fail") && !v.to_string().contains("wrong-secret"),
                "{v}"
            );
        }
    }
}

#[tokio::test]
async fn an_account_connection_serves_every_project_of_the_account_and_a_project_connection_of_the_same_name_wins()
 {
    let p1 = project_id("acct-a", "p1");
    let p2 = project_id("acct-a", "p2");
    let p3 = project_id("acct-b", "p3");
    let projects = vec![p1.clone(), p2.clone(), p3.clone()];
    let h = start_with(move |c| c.projects = projects).await;
    let shared = FakeGateway::start(&h.pki).await;
    let own = FakeGateway::start(&h.pki).await;
    let conn =
        |gw: &FakeGateway| api_key_connection(&gw.base, "k-shared", json!({"models": MODELS}));
    let (s, v) = h
        .put(&arm_url(&h, &p1, true, "shared-gw"), conn(&shared))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = h
        .put(&arm_url(&h, &p2, false, "shared-gw"), conn(&own))
        .await;
    assert_eq!(s, StatusCode::OK);

    // p1 has no connection of its own: the account's is used, for a model and for an agent.
    let (s, v) = model_response(&h, "p1", "shared-gw/gpt-4o", "from p1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = h
        .post(
            &format!(
                "{}/agents/a1/versions?api-version=v1",
                h.emu.project_endpoint("p1")
            ),
            json!({"definition": {"kind": "prompt", "model": "shared-gw/gpt-4o"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h.post(&format!("{}/openai/v1/responses", h.emu.project_endpoint("p1")), json!({"input": "agent in p1", "agent_reference": {"type": "agent_reference", "name": "a1"}})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // p2's own connection of the same name wins over the account's.
    let (s, v) = model_response(&h, "p2", "shared-gw/gpt-4o", "from p2").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // p3 is in another account.
    let (s, v) = model_response(&h, "p3", "shared-gw/gpt-4o", "from p3").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "connection_not_found");

    let inputs = |gw: &FakeGateway| -> Vec<String> {
        gw.chat_calls()
            .iter()
            .map(|c| {
                c.body["messages"].as_array().unwrap().last().unwrap()["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(inputs(&shared), ["from p1", "agent in p1"]);
    assert_eq!(inputs(&own), ["from p2"]);
    let (_, calls) = h.control(Method::GET, "/gateway-calls", None).await;
    let projects = strings(&calls, "project");
    assert_eq!(projects, ["p1", "p1", "p2"]);

    // Deleting the account connection leaves p1 without it.
    let resp = h
        .raw(Method::DELETE, &arm_url(&h, &p1, true, "shared-gw"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, v) = model_response(&h, "p1", "shared-gw/gpt-4o", "again").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "connection_not_found");
}

/// A client-credentials token endpoint over plain HTTP on loopback that issues HS256 JWTs
/// carrying `xms_mirid` of the client (as Entra does for a managed identity), and records the
/// clients it served.
struct TokenServer {
    base: String,
    issued: Issued,
}

type Issued = std::sync::Arc<std::sync::Mutex<Vec<String>>>;
/// Client id → (secret, xms_mirid).
type Clients = std::sync::Arc<std::collections::HashMap<String, (String, String)>>;

const TOKEN_KEY: &[u8] = b"emulator-test-token-key";

async fn issue_token(
    axum::extract::State((clients, issued)): axum::extract::State<(Clients, Issued)>,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
    let id = form.get("client_id").cloned().unwrap_or_default();
    let refused = (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"error": "invalid_client"})),
    );
    let Some((secret, mirid)) = clients.get(&id) else {
        return refused;
    };
    if form.get("client_secret") != Some(secret) {
        return refused;
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let claims = json!({
        "aud": scope.trim_end_matches("/.default"),
        "appid": id,
        "xms_mirid": mirid,
        "exp": 4_102_444_800u64,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TOKEN_KEY),
    )
    .unwrap();
    issued.lock().unwrap().push(id);
    (
        StatusCode::OK,
        axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600})),
    )
}

impl TokenServer {
    /// `clients`: (client id, secret, xms_mirid).
    async fn start(clients: &[(&str, &str, &str)]) -> Self {
        let clients: Clients = std::sync::Arc::new(
            clients
                .iter()
                .map(|(id, secret, mirid)| {
                    (id.to_string(), (secret.to_string(), mirid.to_string()))
                })
                .collect(),
        );
        let issued = Issued::default();
        let app = axum::Router::new()
            .route("/token", axum::routing::post(issue_token))
            .with_state((clients, issued.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{addr}"),
            issued,
        }
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }
}

/// The claims of the bearer token a gateway received, checked against the test key.
fn bearer_claims(seen: &Seen) -> Value {
    let header = seen.headers["authorization"].to_str().unwrap();
    let token = header.strip_prefix("Bearer ").unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["https://cognitiveservices.azure.com"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(TOKEN_KEY),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn entra_connections_reach_the_gateway_with_a_token_of_the_calling_projects_identity() {
    let p1 = project_id("acct-a", "p1");
    let p2 = project_id("acct-a", "p2");
    let tokens = TokenServer::start(&[
        ("mi-default", "s0", "/wrong"),
        ("mi-p1", "s1", &p1.arm_id()),
        ("mi-p2", "s2", &p2.arm_id()),
    ])
    .await;
    let projects = vec![p1.clone(), p2.clone()];
    let token_url = tokens.token_url();
    let h = start_with(move |c| {
        c.projects = projects;
        let mut identity = ProjectIdentity::client_credentials(token_url, "mi-default", "s0");
        if let ProjectIdentity::ClientCredentials {
            project_clients, ..
        } = &mut identity
        {
            project_clients.insert("p1".into(), IdentityClient::new("mi-p1", "s1"));
            project_clients.insert("P2".into(), IdentityClient::new("mi-p2", "s2"));
        }
        c.project_identity = identity;
    })
    .await;
    let gw = FakeGateway::start(&h.pki).await;
    let entra = json!({"properties": {"category": "ApiManagement", "target": format!("{}/aoai", gw.base),
        "authType": "ProjectManagedIdentity", "audience": "https://cognitiveservices.azure.com", "credentials": {},
        "metadata": {"deploymentInPath": "true", "models": MODELS}}});
    // A project connection of p1, and an account connection that p2 uses.
    let (s, v) = h
        .put(&arm_url(&h, &p1, false, "apim-mi"), entra.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h.put(&arm_url(&h, &p1, true, "apim-shared"), entra).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let (s, v) = model_response(&h, "p1", "apim-mi/gpt-4o", "one").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = model_response(&h, "p2", "apim-shared/gpt-4o", "two").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = model_response(&h, "p1", "apim-shared/gpt-4o", "three").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let calls = gw.chat_calls();
    assert_eq!(calls.len(), 3);
    let mirids: Vec<String> = calls
        .iter()
        .map(|c| bearer_claims(c)["xms_mirid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(mirids, [p1.arm_id(), p2.arm_id(), p1.arm_id()]);
    for c in &calls {
        assert_eq!(
            bearer_claims(c)["aud"],
            "https://cognitiveservices.azure.com"
        );
        assert!(c.headers.get("api-key").is_none());
    }
    // One token per project identity, cached across connections.
    assert_eq!(tokens.issued(), ["mi-p1", "mi-p2"]);
    let (_, log) = h.control(Method::GET, "/gateway-calls", None).await;
    let text = log.to_string();
    assert!(!text.contains("eyJ") && !text.contains("\"s1\""), "{text}");
}

// The emulator's gateway calls against the operator's probe: both must send what the Foundry
// samples' validation scripts send (reference §5), so for the same connection the gateway must
// receive the same URL, body and headers from either.

use foundry_gateway_client::probe::{
    PROBE_MESSAGE, api_key_header, bearer_header, chat_completions_body, chat_completions_url,
    discovery_url, gateway_headers, get_model_url, oauth2_token_form,
};
use foundry_gateway_client::{AuthConfig, ConnectionCategory, SecretString};

/// The headers a gateway received that the validation scripts set, in the order received, as
/// (name, value). Left out: what the HTTP stack adds on its own (`host`, `content-length`,
/// `user-agent`; reference §4 question 5) and the client's default `accept: */*`, which is what
/// Python's `requests` sends too. Any other `accept` stays in, and fails the comparison.
fn received_headers(seen: &Seen) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(n, v)| {
            let transport = matches!(n.as_str(), "host" | "content-length" | "user-agent");
            let default_accept = n.as_str() == "accept" && *v == "*/*";
            !transport && !default_accept
        })
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

/// The probe's headers as (name, value), in its order.
fn probe_headers(h: &axum::http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

fn category(name: &str) -> ConnectionCategory {
    match name {
        "ApiManagement" => ConnectionCategory::ApiManagement,
        _ => ConnectionCategory::ModelGateway,
    }
}

fn custom_map(custom: &[(&str, &str)]) -> std::collections::BTreeMap<String, SecretString> {
    custom
        .iter()
        .map(|(n, v)| ((*n).to_string(), SecretString::new(*v)))
        .collect()
}

/// An API-key connection as the operator would write it and as the probe reads it.
struct ApiKeyConnection {
    category: &'static str,
    /// Target path under the gateway's base; a trailing `/` is trimmed by both.
    path: &'static str,
    deployment_in_path: bool,
    inference_api_version: Option<&'static str>,
    /// `metadata.authConfig` as JSON, `name` possibly missing or empty.
    auth_config: Option<Value>,
    custom_headers: &'static [(&'static str, &'static str)],
}

impl ApiKeyConnection {
    fn body(&self, target: &str) -> Value {
        let mut metadata =
            json!({"deploymentInPath": self.deployment_in_path.to_string(), "models": MODELS});
        if let Some(v) = self.inference_api_version {
            metadata["inferenceAPIVersion"] = json!(v);
        }
        if let Some(c) = &self.auth_config {
            metadata["authConfig"] = json!(c.to_string());
        }
        if !self.custom_headers.is_empty() {
            let custom: serde_json::Map<String, Value> = self
                .custom_headers
                .iter()
                .map(|(n, v)| ((*n).to_string(), json!(v)))
                .collect();
            metadata["customHeaders"] = json!(Value::Object(custom).to_string());
        }
        gateway_connection(
            self.category,
            target,
            json!({"authType": "ApiKey", "credentials": {"key": "gw-key-1"}}),
            metadata,
        )
    }

    /// The probe's headers for this connection.
    fn probe_headers(&self) -> Vec<(String, String)> {
        let auth_config = self.auth_config.as_ref().map(|c| {
            AuthConfig::new(
                c["name"].as_str().unwrap_or_default(),
                c["format"].as_str().unwrap_or("{api_key}"),
            )
        });
        let auth = api_key_header(
            &SecretString::new("gw-key-1"),
            auth_config.as_ref(),
            &category(self.category),
        )
        .unwrap();
        probe_headers(&gateway_headers(Some(auth), &custom_map(self.custom_headers)).unwrap())
    }
}

#[tokio::test]
async fn chat_calls_send_the_probes_url_body_and_headers_for_every_connection_shape() {
    let h = start().await;
    let cases = [
        // ModelGateway defaults: model in the body, an empty inferenceAPIVersion adds nothing.
        ApiKeyConnection {
            category: "ModelGateway",
            path: "/llm/",
            deployment_in_path: false,
            inference_api_version: Some(""),
            auth_config: None,
            custom_headers: &[("X-Client-App", "foundry-agents"), ("X-Team", "blue")],
        },
        // Deployment in the path, an api-version, an authConfig header.
        ApiKeyConnection {
            category: "ModelGateway",
            path: "/openai",
            deployment_in_path: true,
            inference_api_version: Some("2025-03-01-preview"),
            auth_config: Some(
                json!({"type": "api_key", "name": "x-api-key", "format": "{api_key}"}),
            ),
            custom_headers: &[],
        },
        // APIM, an authConfig without a name: the APIM script's `api_key` header.
        ApiKeyConnection {
            category: "ApiManagement",
            path: "/foundry/models",
            deployment_in_path: true,
            inference_api_version: Some("2024-10-21"),
            auth_config: Some(json!({"type": "api_key", "format": "Bearer {api_key}"})),
            custom_headers: &[("X-Client-App", "foundry-agents")],
        },
        // ModelGateway, an authConfig with an empty name: the ModelGateway script's `api-key`.
        ApiKeyConnection {
            category: "ModelGateway",
            path: "/llm",
            deployment_in_path: false,
            inference_api_version: None,
            auth_config: Some(json!({"type": "api_key", "name": "", "format": "Key {api_key}"})),
            custom_headers: &[],
        },
        // APIM with the key as a bearer token.
        ApiKeyConnection {
            category: "ApiManagement",
            path: "/aoai",
            deployment_in_path: true,
            inference_api_version: None,
            auth_config: Some(
                json!({"type": "api_key", "name": "Authorization", "format": "Bearer {api_key}"}),
            ),
            custom_headers: &[("X-Env", "prod")],
        },
        // A custom header of the auth header's name replaces it: sent once, with its value.
        ApiKeyConnection {
            category: "ModelGateway",
            path: "/llm",
            deployment_in_path: false,
            inference_api_version: Some("2024-10-21"),
            auth_config: None,
            custom_headers: &[("X-Env", "prod"), ("api-key", "custom-wins")],
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let gw = FakeGateway::start(&h.pki).await;
        let target = format!("{}{}", gw.base, case.path);
        let name = format!("conn-{i}");
        let (s, v) = h.put_connection(&name, case.body(&target)).await;
        assert_eq!(s, StatusCode::OK, "case {i}: {v}");
        let (s, v) = model_response(&h, PROJECT, &format!("{name}/gpt-4o"), PROBE_MESSAGE).await;
        assert_eq!(s, StatusCode::OK, "case {i}: {v}");

        let seen = gw.seen();
        assert_eq!(seen.len(), 1, "case {i}: static models, one call");
        let c = &seen[0];
        assert_eq!(c.method, Method::POST, "case {i}");
        let url = chat_completions_url(
            &target,
            case.deployment_in_path,
            "gpt-4o",
            case.inference_api_version,
        )
        .unwrap();
        assert_eq!(
            format!("{}{}", gw.base, c.uri),
            url.as_str(),
            "case {i}: URL"
        );
        let probe_body: Value =
            serde_json::from_str(&chat_completions_body("gpt-4o", case.deployment_in_path))
                .unwrap();
        assert_eq!(c.body, probe_body, "case {i}: body");
        let expected = case.probe_headers();
        assert_eq!(received_headers(c), expected, "case {i}: headers");
        if i == 5 {
            assert_eq!(c.headers.get_all("api-key").iter().count(), 1);
            assert_eq!(c.headers["api-key"], "custom-wins");
        }

        // The call log names the same headers in the same order.
        let (_, log) = h.control(Method::GET, "/gateway-calls", None).await;
        let call = log
            .as_array()
            .unwrap()
            .iter()
            .rfind(|c| c["connection"] == name.as_str())
            .unwrap();
        let logged: Vec<String> = call["headerNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_ascii_lowercase())
            .collect();
        let expected_names: Vec<String> = expected.into_iter().map(|(n, _)| n).collect();
        assert_eq!(logged, expected_names, "case {i}: logged header names");
        assert!(!log.to_string().contains("gw-key-1"), "case {i}");
    }
}

#[tokio::test]
async fn discovery_calls_send_the_probes_urls_and_headers() {
    let h = start().await;

    // ModelGateway, OpenAI-format discovery with a deploymentAPIVersion and a custom header.
    let gw = FakeGateway::start(&h.pki).await;
    let custom: &[(&str, &str)] = &[("X-Trace", "on")];
    let body = api_key_connection(
        &gw.base,
        "gw-key-1",
        json!({"deploymentAPIVersion": "2024-10-21", "modelDiscovery":
            "{\"listModelsEndpoint\":\"/v1/models\",\"getModelEndpoint\":\"/v1/models/{deploymentName}\",\"deploymentProvider\":\"OpenAI\"}",
            "customHeaders": "{\"X-Trace\":\"on\"}"}),
    );
    assert_eq!(h.put_connection("disc", body).await.0, StatusCode::OK);
    let (s, v) = model_response(&h, PROJECT, "disc/hidden-model", PROBE_MESSAGE).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let auth = api_key_header(
        &SecretString::new("gw-key-1"),
        None,
        &ConnectionCategory::ModelGateway,
    )
    .unwrap();
    let expected = probe_headers(&gateway_headers(Some(auth), &custom_map(custom)).unwrap());
    let seen = gw.seen();
    let urls: Vec<String> = seen
        .iter()
        .map(|s| format!("{}{}", gw.base, s.uri))
        .collect();
    assert_eq!(
        urls,
        [
            discovery_url(&gw.base, "/v1/models", Some("2024-10-21"))
                .unwrap()
                .to_string(),
            get_model_url(
                &gw.base,
                "/v1/models/{deploymentName}",
                "hidden-model",
                Some("2024-10-21")
            )
            .unwrap()
            .to_string(),
            chat_completions_url(&gw.base, false, "hidden-model", None)
                .unwrap()
                .to_string(),
        ]
    );
    for (s, method) in seen.iter().zip([Method::GET, Method::GET, Method::POST]) {
        assert_eq!(s.method, method, "{}", s.uri);
        assert_eq!(received_headers(s), expected, "{}", s.uri);
    }
    assert!(seen[0].form.is_empty() && seen[1].form.is_empty());

    // APIM's default discovery without a deploymentAPIVersion, an authConfig without a name.
    let gw = FakeGateway::start(&h.pki).await;
    let target = format!("{}/aoai", gw.base);
    let body = gateway_connection(
        "ApiManagement",
        &target,
        json!({"authType": "ApiKey", "credentials": {"key": "gw-key-1"}}),
        json!({"authConfig": "{\"type\":\"api_key\",\"format\":\"{api_key}\"}"}),
    );
    assert_eq!(h.put_connection("apim-disc", body).await.0, StatusCode::OK);
    let (s, v) = model_response(&h, PROJECT, "apim-disc/absent", PROBE_MESSAGE).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let auth = api_key_header(
        &SecretString::new("gw-key-1"),
        Some(&AuthConfig::new("", "{api_key}")),
        &ConnectionCategory::ApiManagement,
    )
    .unwrap();
    let expected = probe_headers(&gateway_headers(Some(auth), &custom_map(&[])).unwrap());
    assert_eq!(expected[1].0, "api_key");
    let seen = gw.seen();
    let urls: Vec<String> = seen
        .iter()
        .map(|s| format!("{}{}", gw.base, s.uri))
        .collect();
    assert_eq!(
        urls,
        [
            discovery_url(&target, "/deployments", None)
                .unwrap()
                .to_string(),
            get_model_url(&target, "/deployments/{deploymentName}", "absent", None)
                .unwrap()
                .to_string(),
        ]
    );
    for s in &seen {
        assert_eq!(s.method, Method::GET);
        assert_eq!(received_headers(s), expected, "{}", s.uri);
    }
}

#[tokio::test]
async fn oauth2_connections_send_the_probes_token_form_and_bearer_header() {
    let h = start().await;
    for (i, scopes) in [vec!["api://gw/.default", "extra"], vec![]]
        .into_iter()
        .enumerate()
    {
        let gw = FakeGateway::start(&h.pki).await;
        let target = format!("{}/llm", gw.base);
        let name = format!("oauth-{i}");
        let body = json!({"properties": {"category": "ModelGateway", "target": target, "authType": "OAuth2",
            "credentials": {"clientId": "gw-client", "clientSecret": "oauth secret&1"},
            "tokenUrl": format!("{}/oauth2/token", gw.base), "scopes": scopes,
            "metadata": {"deploymentInPath": "false", "models": MODELS,
                         "customHeaders": "{\"X-Client-App\":\"foundry-agents\"}"}}});
        assert_eq!(h.put_connection(&name, body).await.0, StatusCode::OK);
        let (s, v) = model_response(&h, PROJECT, &format!("{name}/gpt-4o"), PROBE_MESSAGE).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let seen = gw.seen();
        assert_eq!(seen.len(), 2, "case {i}");

        let token = &seen[0];
        assert_eq!(token.method, Method::POST);
        assert_eq!(token.uri.path(), "/oauth2/token");
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_string()).collect();
        assert_eq!(
            token.form,
            oauth2_token_form("gw-client", &SecretString::new("oauth secret&1"), &scopes),
            "case {i}"
        );
        assert_eq!(
            received_headers(token),
            [(
                "content-type".to_string(),
                "application/x-www-form-urlencoded".to_string()
            )],
            "case {i}: only the form's Content-Type"
        );

        let chat = &seen[1];
        assert_eq!(
            format!("{}{}", gw.base, chat.uri),
            chat_completions_url(&target, false, "gpt-4o", None)
                .unwrap()
                .as_str()
        );
        let expected = probe_headers(
            &gateway_headers(
                Some(bearer_header("gw-access-token-1").unwrap()),
                &custom_map(&[("X-Client-App", "foundry-agents")]),
            )
            .unwrap(),
        );
        assert_eq!(received_headers(chat), expected, "case {i}");
        let probe_body: Value =
            serde_json::from_str(&chat_completions_body("gpt-4o", false)).unwrap();
        assert_eq!(chat.body, probe_body, "case {i}");
    }
}

#[tokio::test]
async fn a_chat_call_adds_to_the_probes_body_only_what_the_caller_asked_for() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    let conn = ApiKeyConnection {
        category: "ModelGateway",
        path: "/llm",
        deployment_in_path: false,
        inference_api_version: None,
        auth_config: None,
        custom_headers: &[],
    };
    let target = format!("{}{}", gw.base, conn.path);
    assert_eq!(
        h.put_connection("my-gw", conn.body(&target)).await.0,
        StatusCode::OK
    );
    let url = h.openai("/responses");
    for request in [
        json!({"model": "my-gw/gpt-4o", "input": PROBE_MESSAGE, "stream": true}),
        json!({"model": "my-gw/gpt-4o", "input": PROBE_MESSAGE, "max_output_tokens": 64}),
        json!({"model": "my-gw/gpt-4o", "input": PROBE_MESSAGE, "stream": false, "max_output_tokens": null}),
    ] {
        let resp = h
            .authed(Method::POST, &url)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{request}");
        resp.bytes().await.unwrap();
    }
    let probe: Value = serde_json::from_str(&chat_completions_body("gpt-4o", false)).unwrap();
    let with = |k: &str, v: Value| {
        let mut b = probe.clone();
        b[k] = v;
        b
    };
    let calls = gw.chat_calls();
    let bodies: Vec<&Value> = calls.iter().map(|c| &c.body).collect();
    assert_eq!(
        bodies,
        [
            &with("stream", json!(true)),
            &with("max_completion_tokens", json!(64)),
            &probe
        ]
    );
    for c in &calls {
        assert_eq!(received_headers(c), conn.probe_headers(), "{}", c.body);
    }
}

#[tokio::test]
async fn streamed_responses_tell_apart_a_timeout_a_tls_failure_and_an_unreachable_gateway() {
    let h = start_with(|c| c.gateway_timeout = std::time::Duration::from_millis(800)).await;
    let untrusted = FakeGateway::start(&TestPki::new()).await;
    let silent = silent_listener().await;
    let cases = [
        (
            "tls-gw",
            untrusted.base.clone(),
            StatusCode::BAD_GATEWAY,
            "gateway_tls_error",
        ),
        (
            "slow-gw",
            format!("https://{silent}"),
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
        ),
        (
            "dead-gw",
            format!("https://127.0.0.1:{}", closed_port().await),
            StatusCode::BAD_GATEWAY,
            "gateway_unreachable",
        ),
    ];
    for (name, target, status, code) in cases {
        let body = api_key_connection(&target, "k-stream-fail", json!({"models": MODELS}));
        assert_eq!(h.put_connection(name, body).await.0, StatusCode::OK);
        let (s, v) = h
            .post(
                &h.openai("/responses"),
                json!({"model": format!("{name}/gpt-4o"), "input": "Hi", "stream": true}),
            )
            .await;
        assert_eq!(s, status, "{name}: {v}");
        assert_eq!(v["error"]["code"], code, "{name}: {v}");
        assert!(!v.to_string().contains("k-stream-fail"), "{v}");
    }
}
