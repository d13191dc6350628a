//! Fault injection under `/_emulator/faults` and the default latency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_429_rule_answers_with_retry_after_in_the_planes_envelope_for_its_times() {
    let h = start().await;
    let (s, v) = h
        .control(Method::POST, "/faults", Some(json!({"operation": "ProjectConnections_Get", "status": 429, "retryAfterSeconds": 7, "times": 2})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rules"][0]["remaining"], 2);
    for _ in 0..2 {
        let resp = h.raw(Method::GET, &h.connection_url("x-conn")).await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["retry-after"], "7");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "TooManyRequests");
    }
    let resp = h.raw(Method::GET, &h.connection_url("x-conn")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "the rule is used up");
    // Data plane, matched by method and path prefix, with milliseconds.
    h.control(Method::POST, "/faults", Some(json!({"method": "GET", "pathPrefix": "/api/projects/", "status": 503, "retryAfterMs": 1500})))
        .await;
    let resp = h
        .raw(
            Method::GET,
            &format!("{}/agents?api-version=v1", h.project()),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "2");
    assert_eq!(resp.headers()["retry-after-ms"], "1500");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
    let (_, log) = h.control(Method::GET, "/requests", None).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == 503 && r["fault"].is_u64())
    );
    assert_eq!(
        h.control(Method::DELETE, "/faults", None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, v) = h.control(Method::GET, "/faults", None).await;
    assert_eq!(v["rules"], json!([]));
}

#[tokio::test]
async fn latency_rules_and_the_default_latency_slow_calls_down() {
    let h = start_with(|c| c.latency = Duration::from_millis(150)).await;
    let t = Instant::now();
    h.get(&h.connection_url("x-conn")).await;
    assert!(t.elapsed() >= Duration::from_millis(150));
    let t = Instant::now();
    h.control(Method::GET, "/health", None).await;
    assert!(
        t.elapsed() < Duration::from_millis(150),
        "/_emulator is not slowed down"
    );
    h.control(
        Method::POST,
        "/faults",
        Some(json!({"operation": "ProjectConnections_Get", "latencyMs": 300})),
    )
    .await;
    let t = Instant::now();
    let (s, _) = h.get(&h.connection_url("x-conn")).await;
    assert!(t.elapsed() >= Duration::from_millis(450));
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a latency-only rule then serves normally"
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_connection_error_for_reqwest() {
    let h = start().await;
    h.control(
        Method::POST,
        "/faults",
        Some(json!({"operation": "Agents_List", "dropConnection": true, "times": 1})),
    )
    .await;
    let err = h
        .authed(
            Method::GET,
            &format!("{}/agents?api-version=v1", h.project()),
        )
        .header("user-agent", "fault-test/1")
        .send()
        .await
        .unwrap_err();
    assert!(err.status().is_none());
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    let (s, _) = h
        .get(&format!("{}/agents?api-version=v1", h.project()))
        .await;
    assert_eq!(s, StatusCode::OK, "the next connection is served");
    let (_, log) = h
        .control(Method::GET, "/requests?operation=Agents_List", None)
        .await;
    assert_eq!(log[0]["dropped"], true);
    assert!(log[0]["status"].is_null());
    assert_eq!(
        log[0]["userAgent"], "fault-test/1",
        "the caller is recorded: {log:?}"
    );
    let (dropped_on, served_on) = (log[0]["connection"].as_u64(), log[1]["connection"].as_u64());
    assert!(
        dropped_on.is_some() && served_on.is_some() && dropped_on != served_on,
        "each record names its connection, and the retry came on a new one: {log:?}"
    );
}

#[tokio::test]
async fn probabilistic_faults_are_deterministic_for_a_seed() {
    async fn outcomes(seed: u64) -> Vec<u16> {
        let h = start_with(|c| c.seed = seed).await;
        h.control(
            Method::POST,
            "/faults",
            Some(json!({"operation": "ProjectConnections_Get", "status": 500, "probability": 0.5})),
        )
        .await;
        let mut out = Vec::new();
        for _ in 0..24 {
            out.push(h.get(&h.connection_url("x-conn")).await.0.as_u16());
        }
        out
    }
    let a = outcomes(42).await;
    assert_eq!(a, outcomes(42).await);
    assert_ne!(a, outcomes(43).await);
    assert!(a.contains(&500) && a.contains(&404), "{a:?}");
}

#[tokio::test]
async fn invalid_fault_rules_are_400() {
    let h = start().await;
    let (s, v) = h
        .control(
            Method::POST,
            "/faults",
            Some(json!({"status": 500, "probability": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("probability"));
    let (s, _) = h
        .control(Method::POST, "/faults", Some(json!({"statuz": 500})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}
