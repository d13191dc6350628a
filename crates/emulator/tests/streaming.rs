//! Streamed and background responses: server-sent events as openai/openapi.json defines them
//! for Responses, relayed from a gateway that streams chat-completion chunks; replay with
//! `GET ?stream=true&starting_after=N`; cancellation of background responses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use common::*;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// A plain-HTTP gateway whose chat completions stream when asked. The model in the body
/// decides how: `gpt-4o` streams "Hello there" in three chunks and a usage chunk, `json`
/// ignores `stream`, `broken` drops the connection after one chunk, `slow` waits 30 s.
#[derive(Clone)]
struct StreamingGateway {
    base: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

const STATIC_MODELS: &str = r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"2024-11-20","format":"OpenAI"}}},{"name":"json","properties":{"model":{"name":"json","format":"OpenAI"}}},{"name":"broken","properties":{"model":{"name":"broken","format":"OpenAI"}}},{"name":"slow","properties":{"model":{"name":"slow","format":"OpenAI"}}}]"#;

fn chunk(delta: Value) -> String {
    let c = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    format!("data: {c}\n\n")
}

async fn chat(State(bodies): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bodies.lock().unwrap().push(req.clone());
    let stream = req["stream"] == true;
    let model = req["model"].as_str().unwrap_or_default().to_string();
    let whole = json!({"id": "chatcmpl-w", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "One piece"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}});
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if !stream || model == "json" {
        return axum::Json(whole).into_response();
    }
    let mut parts: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(chunk(
        json!({"role": "assistant", "content": ""}),
    )))];
    if model == "broken" {
        parts.push(Ok(Bytes::from(chunk(json!({"content": "Half"})))));
        parts.push(Err(std::io::Error::other("gateway fell over")));
    } else {
        for piece in ["Hel", "lo", " there"] {
            parts.push(Ok(Bytes::from(chunk(json!({"content": piece})))));
        }
        let last = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}});
        parts.push(Ok(Bytes::from(format!("data: {last}\n\ndata: [DONE]\n\n"))));
    }
    let body = futures::stream::iter(parts).then(|p| async move {
        // Separate writes, so the emulator really reads a stream.
        tokio::time::sleep(Duration::from_millis(5)).await;
        p
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

impl StreamingGateway {
    async fn start() -> Self {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/chat/completions", axum::routing::post(chat))
            .with_state(bodies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, bodies }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// An emulator with the streaming gateway behind connection `sgw` and an agent `streamer`.
async fn setup() -> (Harness, StreamingGateway) {
    let h = start().await;
    let gw = StreamingGateway::start().await;
    let conn = api_key_connection(
        &gw.base,
        "stream-key-1",
        json!({"deploymentInPath": "false", "models": STATIC_MODELS}),
    );
    let (s, v) = h.put_connection("sgw", conn).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for model in ["gpt-4o", "json", "broken", "slow"] {
        h.create_agent(&format!("agent-{model}"), &format!("sgw/{model}"))
            .await;
    }
    (h, gw)
}

/// One server-sent event: its `event:` name and its parsed `data:`.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    data: Value,
}

fn parse_sse(text: &str) -> Vec<Event> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_string();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                } else {
                    panic!("unexpected line {line:?} in {block:?}");
                }
            }
            Event {
                name,
                data: serde_json::from_str(&data).unwrap(),
            }
        })
        .collect()
}

/// POSTs and returns the status, the content type and the body text.
async fn post_raw(h: &Harness, url: &str, body: Value) -> (StatusCode, String, String) {
    let resp = h
        .authed(Method::POST, url)
        .json(&body)
        .send()
        .await
        .unwrap();
    parts(resp).await
}

/// Streams a response of `agent` to `input`.
async fn stream_agent(h: &Harness, agent: &str, input: &str) -> (StatusCode, String, String) {
    post_raw(
        h,
        &h.openai("/responses"),
        json!({"input": input, "stream": true, "agent_reference": {"type": "agent_reference", "name": agent}}),
    )
    .await
}

async fn get_raw(h: &Harness, url: &str) -> (StatusCode, String, String) {
    parts(h.raw(Method::GET, url).await).await
}

/// The status, the content type and the body text of a response.
async fn parts(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

const TEXT_EVENTS: [&str; 9] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
];

/// The event names with consecutive deltas folded into one.
fn folded(events: &[Event]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names(events) {
        if out.last() != Some(&n) {
            out.push(n);
        }
    }
    out
}

#[tokio::test]
async fn a_streamed_response_sends_the_documented_events_with_numbered_sequence() {
    let (h, gw) = setup().await;
    let (s, conv) = h.post_empty(&h.openai("/conversations")).await;
    assert_eq!(s, StatusCode::OK);
    let conv_id = conv["id"].as_str().unwrap();
    let (s, ct, text) = post_raw(
        &h,
        &h.openai("/responses"),
        json!({"input": "Hi", "stream": true, "conversation": conv_id,
               "agent_reference": {"type": "agent_reference", "name": "agent-gpt-4o"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let events = parse_sse(&text);
    assert_eq!(folded(&events), TEXT_EVENTS);
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e.name == "response.output_text.delta")
        .map(|e| e.data["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        deltas,
        ["Hel", "lo", " there"],
        "one delta per gateway chunk"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.data["type"], e.name, "event name and data type agree");
        assert_eq!(
            e.data["sequence_number"], i,
            "sequence numbers count from 0"
        );
    }
    let created = &events[0].data["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["agent_reference"]["name"], "agent-gpt-4o");
    let added = &events[2].data;
    assert_eq!(added["output_index"], 0);
    assert_eq!(added["item"]["status"], "in_progress");
    let item_id = added["item"]["id"].as_str().unwrap();
    assert!(item_id.starts_with("msg_"));
    for e in &events[3..8] {
        if e.data.get("item_id").is_some() {
            assert_eq!(e.data["item_id"], item_id, "{}", e.name);
            assert_eq!(e.data["content_index"], 0);
        }
    }
    assert_eq!(events[events.len() - 4].name, "response.output_text.done");
    assert_eq!(events[events.len() - 4].data["text"], "Hello there");
    let done = &events[events.len() - 1].data["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello there");
    assert_eq!(done["output"][0]["id"], item_id);
    assert_eq!(done["usage"]["input_tokens"], 9);
    assert_eq!(done["usage"]["output_tokens"], 3);

    let sent = gw.bodies();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["stream"], true, "the gateway was asked to stream");
    assert_eq!(sent[0]["model"], "gpt-4o");

    let id = done["id"].as_str().unwrap();
    let (s, stored) = h.get(&h.openai(&format!("/responses/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(stored, *done, "the stored response is the completed one");
    let (_, items) = h
        .get(&h.openai(&format!("/conversations/{conv_id}/items?order=asc")))
        .await;
    let texts = item_texts(&items);
    assert_eq!(
        texts,
        ["Hi", "Hello there"],
        "the conversation got both turns"
    );
}

#[tokio::test]
async fn a_stored_stream_replays_after_a_sequence_number() {
    let (h, _gw) = setup().await;
    let (_, _, text) = stream_agent(&h, "agent-gpt-4o", "Hi").await;
    let live = parse_sse(&text);
    let id = live[0].data["response"]["id"].as_str().unwrap();
    let (s, ct, text) = get_raw(
        &h,
        &h.openai(&format!("/responses/{id}?stream=true&starting_after=3")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(ct.starts_with("text/event-stream"));
    let replay = parse_sse(&text);
    assert_eq!(replay.len(), live.len() - 4);
    for (r, l) in replay.iter().zip(&live[4..]) {
        assert_eq!(r.data, l.data);
    }
    let (_, _, all) = get_raw(&h, &h.openai(&format!("/responses/{id}?stream=true"))).await;
    assert_eq!(parse_sse(&all).len(), live.len());
    let (s, _, text) = get_raw(
        &h,
        &h.openai(&format!("/responses/{id}?stream=true&starting_after=x")),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");

    // A response answered in one piece replays too: one delta with the whole text.
    let (_, r) = h.respond("agent-json", "Hi").await;
    let id = r["id"].as_str().unwrap();
    let (_, _, text) = get_raw(&h, &h.openai(&format!("/responses/{id}?stream=true"))).await;
    let events = parse_sse(&text);
    assert_eq!(names(&events), TEXT_EVENTS);
    assert_eq!(events[4].data["delta"], "One piece");
    assert_eq!(events[8].data["response"], r);
}

#[tokio::test]
async fn a_gateway_that_ignores_stream_still_gives_a_streamed_response() {
    let (h, _gw) = setup().await;
    let (s, _, text) = stream_agent(&h, "agent-json", "Hi").await;
    assert_eq!(s, StatusCode::OK);
    let events = parse_sse(&text);
    assert_eq!(names(&events), TEXT_EVENTS);
    let done = &events[8].data["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "One piece");
    assert_eq!(done["usage"]["total_tokens"], 6);
}

#[tokio::test]
async fn a_stream_that_breaks_midway_ends_with_response_failed() {
    let (h, _gw) = setup().await;
    let (s, _, text) = stream_agent(&h, "agent-broken", "Hi").await;
    assert_eq!(s, StatusCode::OK);
    let events = parse_sse(&text);
    let last = events.last().unwrap();
    assert_eq!(last.name, "response.failed", "{:?}", names(&events));
    assert_eq!(last.data["response"]["status"], "failed");
    assert_eq!(last.data["response"]["error"]["code"], "server_error");
    assert!(
        !text.contains("stream-key-1"),
        "no credential in the error: {text}"
    );
    let id = last.data["response"]["id"].as_str().unwrap();
    let (_, stored) = h.get(&h.openai(&format!("/responses/{id}"))).await;
    assert_eq!(stored["status"], "failed");
}

#[tokio::test]
async fn errors_found_before_streaming_are_http_errors() {
    let (h, _gw) = setup().await;
    h.create_agent("agent-missing", "sgw/gpt-5").await;
    let (s, ct, text) = stream_agent(&h, "agent-missing", "Hi").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{text}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    let (s, _, _) = post_raw(
        &h,
        &h.openai("/responses"),
        json!({"input": "Hi", "stream": "yes", "agent_reference": {"type": "agent_reference", "name": "agent-gpt-4o"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

async fn wait_for_status(h: &Harness, id: &str, want: &str) -> Value {
    for _ in 0..100 {
        let (_, r) = h.get(&h.openai(&format!("/responses/{id}"))).await;
        if r["status"] == want {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("response {id} never reached {want}");
}

#[tokio::test]
async fn a_background_response_is_queued_then_completes_and_replays_from_queued() {
    let (h, _gw) = setup().await;
    let (s, r) = h.post(&h.openai("/responses"), json!({"input": "Hi", "background": true, "agent_reference": {"type": "agent_reference", "name": "agent-gpt-4o"}})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["status"], "queued");
    assert_eq!(r["background"], true);
    let id = r["id"].as_str().unwrap();
    let done = wait_for_status(&h, id, "completed").await;
    assert_eq!(done["output"][0]["content"][0]["text"], "One piece");
    let (_, _, text) = get_raw(&h, &h.openai(&format!("/responses/{id}?stream=true"))).await;
    let events = parse_sse(&text);
    assert_eq!(names(&events), TEXT_EVENTS);
    assert_eq!(events[0].data["response"]["status"], "queued");
    assert_eq!(events[1].data["response"]["status"], "in_progress");
    let (s, v) = h
        .post_empty(&h.openai(&format!("/responses/{id}/cancel")))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["status"], "completed",
        "a finished response stays as it is"
    );
    let (s, _) = h
        .post(
            &h.openai("/responses"),
            json!({"input": "Hi", "background": true, "store": false,
                        "agent_reference": {"type": "agent_reference", "name": "agent-gpt-4o"}}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a background response is stored"
    );
}

#[tokio::test]
async fn a_running_background_response_can_be_cancelled() {
    let (h, gw) = setup().await;
    let (_, conv) = h.post_empty(&h.openai("/conversations")).await;
    let conv_id = conv["id"].as_str().unwrap();
    let (s, r) = h
        .post(
            &h.openai("/responses"),
            json!({"input": "Hi", "background": true, "conversation": conv_id,
                        "agent_reference": {"type": "agent_reference", "name": "agent-slow"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let id = r["id"].as_str().unwrap();
    wait_for_status(&h, id, "in_progress").await;
    // A replay of a running response follows it: here until the cancel ends it.
    let replay = {
        let client = h.client.clone();
        let url = h.openai(&format!("/responses/{id}?stream=true"));
        tokio::spawn(async move {
            let resp = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
            resp.text().await.unwrap()
        })
    };
    for _ in 0..100 {
        if !gw.bodies().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.bodies().len(), 1, "the gateway is being asked");
    let (s, v) = h
        .post_empty(&h.openai(&format!("/responses/{id}/cancel")))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "cancelled");
    let (_, again) = h
        .post_empty(&h.openai(&format!("/responses/{id}/cancel")))
        .await;
    assert_eq!(again["status"], "cancelled", "cancel is idempotent");
    let text = tokio::time::timeout(Duration::from_secs(5), replay)
        .await
        .expect("the replay ends once the response is cancelled")
        .unwrap();
    assert_eq!(
        names(&parse_sse(&text)),
        ["response.created", "response.in_progress"]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, stored) = h.get(&h.openai(&format!("/responses/{id}"))).await;
    assert_eq!(stored["status"], "cancelled");
    let (_, items) = h
        .get(&h.openai(&format!("/conversations/{conv_id}/items")))
        .await;
    assert_eq!(
        items["data"],
        json!([]),
        "a cancelled response adds nothing to its conversation"
    );
}

#[tokio::test]
async fn a_gateway_that_ignores_stream_on_the_fake_https_gateway_answers_too() {
    // The shared fake gateway never streams: the streaming path accepts its JSON answer.
    let (h, gw) = start_with_gateway().await;
    h.create_agent("plain", "my-gw/gpt-4o").await;
    let (s, _, text) = stream_agent(&h, "plain", "Ping").await;
    assert_eq!(s, StatusCode::OK, "{text}");
    let events = parse_sse(&text);
    assert_eq!(
        events.last().unwrap().data["response"]["output"][0]["content"][0]["text"],
        "echo: Ping"
    );
    assert_eq!(gw.chat_calls()[0].body["stream"], true);
}
