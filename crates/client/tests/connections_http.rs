//! ConnectionsClient against a tiny local ARM stand-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use foundry_gateway_client::*;
use serde_json::json;
use support::{Log, serve};

fn project() -> ProjectResourceId {
    ProjectResourceId::new("sub1", "rg1", "acct", "proj").unwrap()
}

const BASE: &str = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj/connections";
const ACCOUNT_BASE: &str = "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/connections";

fn client(endpoint: &str, retry: RetryOptions, observer: Option<Observer>) -> ConnectionsClient {
    ConnectionsClient::new(
        endpoint,
        project(),
        StaticTokenCredential::new("arm-token"),
        Some(ConnectionsClientOptions {
            client_options: ClientOptions {
                retry,
                observer,
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap()
}

fn fast_retry() -> RetryOptions {
    RetryOptions {
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..Default::default()
    }
}

async fn logged(log: &Log, req: Request) -> (http::request::Parts, Vec<u8>) {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap()
        .to_vec();
    log.push(&parts, &bytes);
    (parts, bytes)
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

#[tokio::test]
async fn put_get_delete_round_trip() {
    let log = Log::default();
    let store: Arc<Mutex<Option<serde_json::Value>>> = Arc::default();
    let (l, s) = (log.clone(), store.clone());
    let app = Router::new().fallback(move |req: Request| {
        let (log, store) = (l.clone(), s.clone());
        async move {
            let (parts, body) = logged(&log, req).await;
            assert_eq!(parts.uri.query(), Some("api-version=2026-09-01"));
            assert_eq!(parts.headers["authorization"], "Bearer arm-token");
            assert_eq!(parts.uri.path(), format!("{BASE}/gw1"));
            match parts.method.as_str() {
                "PUT" => {
                    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    v["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("credentials");
                    v["name"] = json!("gw1");
                    v["id"] = json!(format!("{BASE}/gw1"));
                    *store.lock().unwrap() = Some(v.clone());
                    json_response(StatusCode::OK, v)
                }
                "GET" => match store.lock().unwrap().clone() {
                    Some(v) => json_response(StatusCode::OK, v),
                    None => json_response(
                        StatusCode::NOT_FOUND,
                        json!({"error": {"code": "ResourceNotFound", "message": "not there"}}),
                    ),
                },
                "DELETE" => {
                    let existed = store.lock().unwrap().take().is_some();
                    if existed {
                        StatusCode::OK.into_response()
                    } else {
                        StatusCode::NO_CONTENT.into_response()
                    }
                }
                _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
            }
        }
    });
    let c = client(&serve(app).await, RetryOptions::default(), None);

    assert_eq!(c.get("gw1").await.unwrap(), None);
    let mut props = ConnectionProperties::new(
        ConnectionCategory::ModelGateway,
        "https://gw.example.com",
        ConnectionAuth::ApiKey {
            key: Some(SecretString::new("k-1")),
        },
    );
    props.metadata = GatewayMetadata {
        deployment_in_path: Some(false),
        models: Some(vec![StaticModel::new(
            "gpt-4o",
            "gpt-4o",
            "",
            ModelFormat::OpenAI,
        )]),
        ..Default::default()
    }
    .to_map();
    let stored = c
        .create_or_update("gw1", &ConnectionResource::new(props.clone()))
        .await
        .unwrap();
    assert_eq!(stored.name.as_deref(), Some("gw1"));
    assert_eq!(stored.properties.auth, ConnectionAuth::ApiKey { key: None });
    let put = &log.all()[1];
    let sent: serde_json::Value = serde_json::from_str(&put.body).unwrap();
    assert_eq!(sent["properties"]["credentials"]["key"], "k-1");
    assert_eq!(put.headers["content-type"], "application/json");

    let got = c.get("gw1").await.unwrap().unwrap();
    assert_eq!(got.properties.metadata, props.metadata);
    c.delete("gw1").await.unwrap();
    c.delete("gw1").await.unwrap(); // 204
    assert!(c.get("gw1").await.unwrap().is_none());
    assert!(
        c.create_or_update("bad name!", &ConnectionResource::new(props))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn delete_of_a_missing_connection_is_ok() {
    let app = Router::new().fallback(|| async {
        json_response(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "ResourceNotFound", "message": "x"}}),
        )
    });
    let c = client(&serve(app).await, RetryOptions::default(), None);
    c.delete("gone1").await.unwrap();
}

#[tokio::test]
async fn list_follows_next_link() {
    let log = Log::default();
    let l = log.clone();
    let base_url: Arc<Mutex<String>> = Arc::default();
    let b = base_url.clone();
    let app = Router::new().fallback(move |req: Request| {
        let (log, base) = (l.clone(), b.clone());
        async move {
            let (parts, _) = logged(&log, req).await;
            let q = parts.uri.query().unwrap_or("");
            let item = |n: &str| json!({"name": n, "properties": {"category": "ModelGateway", "target": "https://x", "authType": "ApiKey"}});
            if q.contains("skipToken=2") {
                json_response(StatusCode::OK, json!({"value": [item("c3")]}))
            } else {
                assert!(q.contains("category=ModelGateway"), "{q}");
                let next = format!("{}{BASE}?api-version=2026-09-01&$skipToken=2", base.lock().unwrap());
                json_response(StatusCode::OK, json!({"value": [item("c1"), item("c2")], "nextLink": next}))
            }
        }
    });
    let endpoint = serve(app).await;
    *base_url.lock().unwrap() = endpoint.clone();
    let c = client(&endpoint, RetryOptions::default(), None);
    let all = c
        .list(Some(&ListConnectionsOptions {
            category: Some(ConnectionCategory::ModelGateway),
            ..Default::default()
        }))
        .await
        .unwrap();
    let names: Vec<_> = all.iter().map(|c| c.name.clone().unwrap()).collect();
    assert_eq!(names, ["c1", "c2", "c3"]);
    assert_eq!(log.count(), 2);
    assert!(log.all()[1].headers.contains_key("authorization"));
}

#[tokio::test]
async fn next_link_to_another_origin_is_refused() {
    let app = Router::new().fallback(|| async {
        json_response(
            StatusCode::OK,
            json!({"value": [], "nextLink": "https://elsewhere.example/steal"}),
        )
    });
    let c = client(&serve(app).await, RetryOptions::default(), None);
    let e = c.list(None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidResponse);
}

#[tokio::test]
async fn throttled_get_waits_at_least_the_retry_after_hint() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let hits = h.clone();
        async move {
            if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
                )
                    .into_response()
            } else {
                json_response(StatusCode::OK, json!({"name": "c1", "properties": {"category": "ModelGateway", "target": "https://x", "authType": "ApiKey"}}))
            }
        }
    });
    let records: Arc<Mutex<Vec<CallRecord>>> = Arc::default();
    let r = records.clone();
    let observer: Observer = Arc::new(move |rec: &CallRecord| r.lock().unwrap().push(rec.clone()));
    // The computed backoff (10 ms) is far shorter than the hint: the hint must win.
    let c = client(&serve(app).await, fast_retry(), Some(observer));
    let started = Instant::now();
    let got = c.get("c1").await.unwrap();
    let elapsed = started.elapsed();
    assert!(got.is_some());
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "retried after {elapsed:?}"
    );
    let recs = records.lock().unwrap().clone();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        (recs[0].status, recs[0].outcome, recs[0].will_retry),
        (Some(429), "Throttled", true)
    );
    assert_eq!(
        (recs[1].status, recs[1].outcome, recs[1].will_retry),
        (Some(200), "Ok", false)
    );
    assert_eq!(recs[1].operation, "ProjectConnections_Get");
    assert_eq!(recs[1].attempt, 2);
}

#[tokio::test]
async fn a_long_hint_is_returned_to_the_caller_not_slept() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after-ms", "120000")],
                "busy",
            )
                .into_response()
        }
    });
    let c = client(&serve(app).await, fast_retry(), None);
    let started = Instant::now();
    let e = c.get("c1").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(e.is_retryable());
    assert_eq!(e.label(), "ServerError");
}

#[tokio::test]
async fn server_errors_are_retried_then_surface_with_the_last_hint() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async {
            json_response(
                StatusCode::BAD_GATEWAY,
                json!({"error": {"code": "BadGateway", "message": "upstream"}}),
            )
        }
    });
    let c = client(&serve(app).await, fast_retry(), None);
    let e = c.delete("c1").await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    assert_eq!(e.status(), Some(502));
    assert_eq!(e.code(), Some("BadGateway"));
    assert_eq!(e.operation(), "ProjectConnections_Delete");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        h.fetch_add(1, Ordering::SeqCst);
        async {
            json_response(StatusCode::BAD_REQUEST, json!({"error": {"code": "InvalidRequestContent", "message": "metadata values must be strings"}}))
        }
    });
    let c = client(&serve(app).await, fast_retry(), None);
    let props = ConnectionProperties::new(
        ConnectionCategory::ModelGateway,
        "https://x",
        ConnectionAuth::None,
    );
    let e = c
        .create_or_update("gw1", &ConnectionResource::new(props))
        .await
        .unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(e.label(), "BadRequest");
    assert!(!e.is_retryable());
    assert_eq!(e.message(), "metadata values must be strings");
}

#[tokio::test]
async fn a_refused_connection_is_a_retryable_connection_error() {
    let addr = support::closed_port().await;
    let c = client(&format!("http://{addr}"), RetryOptions::none(), None);
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connection);
    assert!(e.is_retryable());
    assert!(!e.to_string().contains("arm-token"));
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let app = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    });
    let c = ConnectionsClient::new(
        &serve(app).await,
        project(),
        StaticTokenCredential::new("t"),
        Some(ConnectionsClientOptions {
            client_options: ClientOptions {
                timeout: Duration::from_millis(200),
                retry: RetryOptions::none(),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap();
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.label(), "Timeout");
}

fn account_client(
    endpoint: &str,
    api_version: &str,
    observer: Option<Observer>,
) -> ConnectionsClient {
    ConnectionsClient::with_scope(
        endpoint,
        project(),
        ConnectionScope::Account,
        StaticTokenCredential::new("arm-token"),
        Some(ConnectionsClientOptions {
            api_version: api_version.into(),
            client_options: ClientOptions {
                retry: RetryOptions::none(),
                observer,
                timeout: Duration::from_secs(5),
                ..Default::default()
            },
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn account_connections_use_the_account_path_and_account_operation_names() {
    let log = Log::default();
    let store: Arc<Mutex<Option<serde_json::Value>>> = Arc::default();
    let (l, s) = (log.clone(), store.clone());
    let base_url: Arc<Mutex<String>> = Arc::default();
    let b = base_url.clone();
    let app = Router::new().fallback(move |req: Request| {
        let (log, store, base) = (l.clone(), s.clone(), b.clone());
        async move {
            let (parts, body) = logged(&log, req).await;
            assert_eq!(parts.headers["authorization"], "Bearer arm-token");
            let q = parts.uri.query().unwrap_or("");
            assert!(q.starts_with("api-version=2026-09-01"), "{q}");
            match (parts.method.as_str(), parts.uri.path()) {
                ("PUT", p) if p == format!("{ACCOUNT_BASE}/shared-gw") => {
                    let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    v["properties"]
                        .as_object_mut()
                        .unwrap()
                        .remove("credentials");
                    v["name"] = json!("shared-gw");
                    v["type"] = json!("Microsoft.CognitiveServices/accounts/connections");
                    v["id"] = json!(format!("{ACCOUNT_BASE}/shared-gw"));
                    *store.lock().unwrap() = Some(v.clone());
                    json_response(StatusCode::OK, v)
                }
                ("GET", p) if p == format!("{ACCOUNT_BASE}/shared-gw") => {
                    match store.lock().unwrap().clone() {
                        Some(v) => json_response(StatusCode::OK, v),
                        None => json_response(
                            StatusCode::NOT_FOUND,
                            json!({"error": {"code": "ResourceNotFound", "message": "not there"}}),
                        ),
                    }
                }
                ("DELETE", p) if p == format!("{ACCOUNT_BASE}/shared-gw") => {
                    store.lock().unwrap().take();
                    StatusCode::NO_CONTENT.into_response()
                }
                ("GET", p) if p == ACCOUNT_BASE => {
                    let items: Vec<_> = store.lock().unwrap().iter().cloned().collect();
                    if q.contains("skipToken") {
                        json_response(StatusCode::OK, json!({"value": []}))
                    } else {
                        let next = format!(
                            "{}{ACCOUNT_BASE}?api-version=2026-09-01&$skipToken=x",
                            base.lock().unwrap()
                        );
                        json_response(StatusCode::OK, json!({"value": items, "nextLink": next}))
                    }
                }
                (m, p) => panic!("unexpected {m} {p}"),
            }
        }
    });
    let endpoint = serve(app).await;
    *base_url.lock().unwrap() = endpoint.clone();
    let records: Arc<Mutex<Vec<CallRecord>>> = Arc::default();
    let r = records.clone();
    let observer: Observer = Arc::new(move |rec: &CallRecord| r.lock().unwrap().push(rec.clone()));
    let c = account_client(
        &endpoint,
        connections::DEFAULT_ARM_API_VERSION,
        Some(observer),
    );

    let props = ConnectionProperties::new(
        ConnectionCategory::ApiManagement,
        "https://apim.example.com/aoai",
        ConnectionAuth::ApiKey {
            key: Some(SecretString::new("k-1")),
        },
    );
    let stored = c
        .create_or_update("shared-gw", &ConnectionResource::new(props))
        .await
        .unwrap();
    assert_eq!(
        stored.id.as_deref(),
        Some(c.connection_id("shared-gw").as_str())
    );
    assert!(c.get("shared-gw").await.unwrap().is_some());
    assert_eq!(c.list(None).await.unwrap().len(), 1);
    c.delete("shared-gw").await.unwrap();
    assert!(c.get("shared-gw").await.unwrap().is_none());

    let ops: Vec<&str> = records
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(
        ops,
        [
            "AccountConnections_Create",
            "AccountConnections_Get",
            "AccountConnections_List",
            "AccountConnections_List",
            "AccountConnections_Delete",
            "AccountConnections_Get",
        ]
    );
    let paths: Vec<String> = log.all().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().all(|p| !p.contains("/projects/")), "{paths:?}");
}

#[tokio::test]
async fn an_account_client_can_speak_the_previous_api_version() {
    let log = Log::default();
    let l = log.clone();
    let app = Router::new().fallback(move |req: Request| {
        let log = l.clone();
        async move {
            logged(&log, req).await;
            json_response(
                StatusCode::NOT_FOUND,
                json!({"error": {"code": "ResourceNotFound", "message": "x"}}),
            )
        }
    });
    let c = account_client(&serve(app).await, "2025-12-01", None);
    assert!(c.get("gw1").await.unwrap().is_none());
    let req = &log.all()[0];
    assert_eq!(req.path, format!("{ACCOUNT_BASE}/gw1"));
    assert_eq!(req.query.as_deref(), Some("api-version=2025-12-01"));
}
