//! ProjectClient against a tiny local data-plane stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use foundry_gateway_client::project::{CodeInterpreterTool, FunctionTool};
use foundry_gateway_client::*;
use serde_json::json;
use support::{Log, serve};

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"code": "not_found", "message": "nope", "type": "invalid_request_error"}}),
    )
}

fn version(n: u32) -> serde_json::Value {
    json!({"object": "agent.version", "id": format!("a1:{n}"), "name": "a1", "version": n.to_string(),
        "metadata": {"hash": format!("h{n}")}, "created_at": 1760000000 + n,
        "definition": {"kind": "prompt", "model": "gw/gpt-4o"}})
}

async fn app(log: Log, hits: Arc<AtomicUsize>) -> String {
    let router = Router::new().fallback(move |req: Request| {
        let (log, hits) = (log.clone(), hits.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            log.push(&parts, &body);
            hits.fetch_add(1, Ordering::SeqCst);
            assert_eq!(parts.headers["authorization"], "Bearer dp-token");
            let path = parts.uri.path().trim_start_matches("/api/projects/p1");
            let q = parts.uri.query().unwrap_or("");
            match (parts.method.as_str(), path) {
                ("POST", "/agents/a1/versions") => {
                    assert_eq!(q, "api-version=v1");
                    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    json_response(StatusCode::OK, json!({"object": "agent.version", "id": "a1:4", "name": "a1",
                        "version": "4", "metadata": b["metadata"], "created_at": 1, "definition": b["definition"]}))
                }
                ("POST", "/agents/busy/versions") => {
                    json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"error": {"code": "busy", "message": "try later"}}))
                }
                ("GET", "/agents/a1/versions") => {
                    let after = q.split('&').find_map(|kv| kv.strip_prefix("after="));
                    match after {
                        None => json_response(StatusCode::OK, json!({"data": [version(1), version(2)], "first_id": "a1:1", "last_id": "a1:2", "has_more": true})),
                        Some("a1%3A2") => json_response(StatusCode::OK, json!({"data": [version(3)], "first_id": "a1:3", "last_id": "a1:3", "has_more": false})),
                        Some(_) => json_response(StatusCode::OK, json!({"data": [], "first_id": null, "last_id": null, "has_more": false})),
                    }
                }
                ("GET", "/agents/a1") => json_response(StatusCode::OK, json!({"object": "agent", "id": "a1", "name": "a1", "versions": {"latest": version(3)}})),
                ("GET", "/agents/a1/versions/2") => json_response(StatusCode::OK, version(2)),
                ("DELETE", "/agents/a1/versions/2") => json_response(StatusCode::OK, json!({"object": "agent.version.deleted", "name": "a1", "version": "2", "deleted": true})),
                ("DELETE", "/agents/a1") => json_response(StatusCode::OK, json!({"object": "agent.deleted", "name": "a1", "deleted": true})),
                ("POST", "/openai/v1/conversations") => {
                    assert_eq!(q, "");
                    json_response(StatusCode::OK, json!({"id": "conv_1", "object": "conversation", "created_at": 1, "metadata": {}}))
                }
                ("DELETE", "/openai/v1/conversations/conv_1") => json_response(StatusCode::OK, json!({"id": "conv_1", "object": "conversation.deleted", "deleted": true})),
                ("POST", "/openai/v1/responses") => {
                    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    if b["model"] == "gone/gpt-4o" {
                        return json_response(StatusCode::BAD_GATEWAY, json!({"error": {"code": "gateway_unauthorized",
                            "message": "the gateway answered 401", "type": "server_error"}}));
                    }
                    let reply = if b["agent_reference"]["name"] == "a1" || b["model"] == "gw/gpt-4o" { "pong" } else { "?" };
                    json_response(StatusCode::OK, json!({"id": "resp_1", "object": "response", "status": "completed", "model": "gw/gpt-4o",
                        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": reply}]}]}))
                }
                _ => not_found(),
            }
        }
    });
    format!("{}/api/projects/p1", serve(router).await)
}

fn client(endpoint: &str) -> ProjectClient {
    ProjectClient::new(
        endpoint,
        StaticTokenCredential::new("dp-token"),
        Some(ProjectClientOptions {
            client_options: ClientOptions {
                retry: RetryOptions {
                    initial_delay: Duration::from_millis(5),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn agent_versions() {
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let c = client(&app(log.clone(), hits.clone()).await);

    let def = PromptAgentDefinition {
        instructions: Some("be brief".into()),
        tools: vec![
            Tool::CodeInterpreter(CodeInterpreterTool::default()),
            Tool::Function(FunctionTool {
                name: "f".into(),
                description: None,
                parameters: Some(json!({"type": "object", "properties": {}})),
                strict: None,
            }),
        ],
        ..PromptAgentDefinition::new("gw/gpt-4o")
    };
    let mut req = CreateAgentVersionRequest::new(def.clone());
    req.metadata = BTreeMap::from([("hash".to_string(), "abc".to_string())]);
    let v = c.create_version("a1", &req).await.unwrap();
    assert_eq!(v.version, "4");
    assert_eq!(v.metadata["hash"], "abc");
    assert_eq!(v.definition.as_prompt().unwrap(), &def);
    let sent: serde_json::Value = serde_json::from_str(&log.all()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"definition": {"kind": "prompt", "model": "gw/gpt-4o", "instructions": "be brief",
            "tools": [{"type": "code_interpreter"}, {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]},
            "metadata": {"hash": "abc"}})
    );

    let page = c
        .list_versions_page("a1", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 2);
    assert_eq!(page.last_id.as_deref(), Some("a1:2"));
    let all = c
        .list_versions("a1", &ListOptions::default())
        .await
        .unwrap();
    let versions: Vec<_> = all.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["1", "2", "3"]);

    let agent = c.get("a1").await.unwrap().unwrap();
    assert_eq!(agent.versions.latest.version, "3");
    assert!(c.get("other").await.unwrap().is_none());
    assert_eq!(
        c.get_version("a1", "2").await.unwrap().unwrap().metadata["hash"],
        "h2"
    );
    assert!(c.get_version("a1", "9").await.unwrap().is_none());
    assert!(
        c.list_versions("other", &ListOptions::default())
            .await
            .unwrap()
            .is_empty()
    );

    c.delete_version("a1", "2").await.unwrap();
    c.delete_version("a1", "9").await.unwrap();
    c.delete("a1").await.unwrap();
    c.delete("other").await.unwrap();
    assert!(c.create_version("bad_name", &req).await.is_err());
}

#[tokio::test]
async fn create_version_is_never_retried() {
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let c = client(&app(log, hits.clone()).await);
    let e = c
        .create_version(
            "busy",
            &CreateAgentVersionRequest::new(PromptAgentDefinition::new("gw/m")),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert!(e.is_retryable());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn conversation_and_response_with_an_agent_reference() {
    let log = Log::default();
    let c = client(&app(log.clone(), Arc::default()).await);
    let conv = c
        .conversations_create(&CreateConversationRequest::default())
        .await
        .unwrap();
    assert_eq!(conv.id, "conv_1");
    let mut req = CreateResponseRequest::new(AgentReference::new("a1", Some("3".into())), "ping");
    req.conversation = Some(conv.id.clone());
    let r = c.responses_create(&req).await.unwrap();
    assert_eq!(r.output_text, "pong");
    c.conversations_delete(&conv.id).await.unwrap();
    let sent: serde_json::Value = serde_json::from_str(&log.all()[1].body).unwrap();
    assert_eq!(
        sent,
        json!({"agent_reference": {"type": "agent_reference", "name": "a1", "version": "3"}, "input": "ping", "conversation": "conv_1"})
    );
    assert!(log.all()[1].query.is_none());
}

#[tokio::test]
async fn a_response_with_a_model_sends_the_model_and_no_agent() {
    let log = Log::default();
    let c = client(&app(log.clone(), Arc::default()).await);
    let r = c
        .responses_create(&CreateResponseRequest::for_model("gw/gpt-4o", "Hi"))
        .await
        .unwrap();
    assert_eq!(r.output_text, "pong");
    let sent: serde_json::Value = serde_json::from_str(&log.all()[0].body).unwrap();
    assert_eq!(sent, json!({"model": "gw/gpt-4o", "input": "Hi"}));
    assert_eq!(log.all()[0].path, "/api/projects/p1/openai/v1/responses");
}

#[tokio::test]
async fn a_failed_model_response_carries_the_status_and_the_service_code() {
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let c = client(&app(log.clone(), hits.clone()).await);
    let e = c
        .responses_create(&CreateResponseRequest::for_model("gone/gpt-4o", "Hi"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(502));
    assert_eq!(e.code(), Some("gateway_unauthorized"));
    // A POST is sent once.
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_needs_exactly_one_of_an_agent_and_a_model() {
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let c = client(&app(log.clone(), hits.clone()).await);
    let both = CreateResponseRequest {
        model: Some("gw/gpt-4o".into()),
        ..CreateResponseRequest::new(AgentReference::new("a1", None), "Hi")
    };
    let neither = CreateResponseRequest {
        agent_reference: None,
        ..both.clone()
    };
    let neither = CreateResponseRequest {
        model: None,
        ..neither
    };
    for req in [both, neither, CreateResponseRequest::for_model(" ", "Hi")] {
        let e = c.responses_create(&req).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{req:?}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
