//! The probe and the clients against hostile local servers: oversized and endless bodies, huge
//! model lists, overflowing token lifetimes, slow drips, redirects and denied addresses. Every
//! server listens on 127.0.0.1; denied addresses are refused before any connection, so no
//! traffic leaves the machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use foundry_gateway_client::probe::*;
use foundry_gateway_client::*;
use futures::StreamExt;
use serde_json::json;
use support::{Log, TestPki, serve, serve_tls};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const KEY: &str = "sk-good-0123456789";
const POLICY: &str = "not allowed by the operator's network policy";

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn chat() -> serde_json::Value {
    json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}}]})
}

fn api_key() -> GatewayAuth {
    GatewayAuth::ApiKey {
        key: SecretString::new(KEY),
        auth_config: None,
    }
}

fn settings(target: &str, auth: GatewayAuth) -> GatewaySettings {
    GatewaySettings {
        target: target.to_string(),
        category: ConnectionCategory::ModelGateway,
        deployment_in_path: false,
        inference_api_version: None,
        deployment_api_version: None,
        discovery: None,
        static_models: vec!["gpt-4o".into()],
        model_formats: BTreeMap::new(),
        custom_headers: BTreeMap::new(),
        auth,
    }
}

fn discovering(target: &str) -> GatewaySettings {
    let mut s = settings(target, api_key());
    s.static_models = vec![];
    s.discovery = Some(ModelDiscovery {
        list_models_endpoint: "/v1/models".into(),
        get_model_endpoint: "/v1/models/{deploymentName}".into(),
        deployment_provider: DeploymentProvider::OpenAI,
    });
    s
}

fn request(settings: GatewaySettings, mode: ProbeMode, timeout: Duration) -> ProbeRequest {
    ProbeRequest {
        settings,
        mode,
        model: None,
        timeout,
    }
}

fn prober() -> Prober {
    Prober::new(Transport::default_transport().unwrap())
}

fn inactive(o: &ProbeOutcome) -> (InactiveCause, &str) {
    match o {
        ProbeOutcome::Inactive { cause, message } => {
            eprintln!("{cause}: {message}");
            assert!(!message.contains(KEY), "{message}");
            (*cause, message)
        }
        other => panic!("expected Inactive, got {other:?}"),
    }
}

/// The peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A body of `total` bytes streamed in 64 KiB chunks (one shared buffer, never allocated
/// whole); `sent` counts the chunks handed to the server.
fn endless_body(prefix: &'static [u8], total: usize, sent: Arc<AtomicUsize>) -> Body {
    const CHUNK: usize = 64 * 1024;
    let filler = Bytes::from(vec![b' '; CHUNK]);
    let chunks = total / CHUNK;
    let stream = futures::stream::iter(
        std::iter::once(Bytes::from_static(prefix)).chain(std::iter::repeat_n(filler, chunks)),
    )
    .map(move |b| {
        sent.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(b)
    });
    Body::from_stream(stream)
}

/// A raw HTTP/1.1 server that answers every connection with `head` and then keeps the
/// connection open, sending nothing more.
async fn raw_server(head: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await;
                let _ = tcp.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_secs(20)).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_256_mib_model_list_is_a_bad_response_and_memory_does_not_grow() {
    let sent = Arc::new(AtomicUsize::new(0));
    let s2 = sent.clone();
    let app = Router::new().route(
        "/v1/models",
        axum::routing::get(move || {
            let sent = s2.clone();
            async move {
                (
                    [("content-type", "application/json")],
                    endless_body(b"{\"data\":[", 256 * 1024 * 1024, sent),
                )
            }
        }),
    );
    let base = serve(app).await;
    let before = vm_hwm_kib();
    let started = Instant::now();
    let o = prober()
        .probe(&request(
            discovering(&base),
            ProbeMode::Discovery,
            Duration::from_secs(20),
        ))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let after = vm_hwm_kib();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::BadResponse);
    assert!(
        message.starts_with(
            "The gateway's answer to the model list request is larger than 1048576 bytes; check that http://127.0.0.1:"
        ),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    let growth_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "VmHWM {before} KiB -> {after} KiB (+{growth_mib} MiB); the server produced {} of 4097 chunks",
        sent.load(Ordering::SeqCst)
    );
    assert!(growth_mib < 32, "peak RSS grew by {growth_mib} MiB");
    // The client hung up long before the end of the body.
    assert!(sent.load(Ordering::SeqCst) < 4097 / 2);
}

#[tokio::test]
async fn a_content_length_beyond_the_cap_fails_before_the_body_arrives() {
    let base = raw_server(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 268435456\r\n\r\n",
    )
    .await;
    let started = Instant::now();
    let o = prober()
        .probe(&request(
            settings(&base, api_key()),
            ProbeMode::Inference,
            Duration::from_secs(10),
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::BadResponse);
    assert!(
        message.starts_with(
            "The gateway's answer to the chat completion is larger than 1048576 bytes; check that http://127.0.0.1:"
        ),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn client_calls_with_an_oversized_body_are_invalid_responses() {
    let sent = Arc::new(AtomicUsize::new(0));
    let s2 = sent.clone();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = Router::new().fallback(move || {
        let (sent, hits) = (s2.clone(), h2.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            (
                [("content-type", "application/json")],
                endless_body(b"{\"id\":\"", 2 * 1024 * 1024, sent),
            )
        }
    });
    let base = serve(app).await;
    for (cap, expected) in [(None, 1_048_576), (Some(4096), 4096)] {
        let transport = Transport::new(TransportOptions {
            max_body_bytes: cap,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(transport.max_body_bytes(), expected);
        let c = ConnectionsClient::new(
            &base,
            ProjectResourceId::new("s", "r", "a", "p").unwrap(),
            StaticTokenCredential::new("t"),
            Some(ConnectionsClientOptions {
                client_options: ClientOptions {
                    transport: Some(transport),
                    ..Default::default()
                },
                ..Default::default()
            }),
        )
        .unwrap();
        let e = c.get("c1").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidResponse, "{e}");
        assert_eq!(
            e.message(),
            format!("the response body is larger than {expected} bytes")
        );
        assert_eq!(e.status(), Some(200));
        assert!(!e.is_retryable());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2, "not retried");
}

#[tokio::test]
async fn an_oversized_token_reply_fails_the_credential_without_retries() {
    let pki = TestPki::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = Router::new().fallback(move || {
        let hits = h2.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            (
                [("content-type", "application/json")],
                endless_body(b"{\"access_token\":\"", 8 * 1024 * 1024, Arc::default()),
            )
        }
    });
    let authority = serve_tls(app, &pki).await;
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        ..Default::default()
    })
    .unwrap();
    let cred = credentials::client_secret_credential(
        "tenant",
        "app",
        "secret",
        &CredentialOptions {
            authority_host: Some(authority.parse().unwrap()),
            transport: Some(transport),
            max_retries: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let err = cred.get_token(&[ARM_SCOPE], None).await.unwrap_err();
    eprintln!("{err}");
    assert!(
        format!("{err:?}").contains("the response body is larger than 1048576 bytes"),
        "{err:?}"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "an oversized body is not retried"
    );
}

fn model_list_gateway(names: usize, list_hits: Arc<AtomicUsize>, log: Log) -> Router {
    Router::new().fallback(move |req: Request| {
        let (list_hits, log) = (list_hits.clone(), log.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            log.push(&parts, &body);
            let path = parts.uri.path().to_string();
            if path == "/v1/models" {
                list_hits.fetch_add(1, Ordering::SeqCst);
                let data: Vec<_> = (0..names)
                    .map(|i| json!({"id": format!("model-{i}"), "object": "model"}))
                    .collect();
                return json_response(StatusCode::OK, json!({"object": "list", "data": data}));
            }
            if let Some(m) = path.strip_prefix("/v1/models/") {
                return json_response(StatusCode::OK, json!({"id": m, "object": "model"}));
            }
            json_response(StatusCode::OK, chat())
        }
    })
}

#[tokio::test]
async fn a_list_of_1500_models_keeps_1000_and_counts_the_rest() {
    let log = Log::default();
    let base = serve(model_list_gateway(1500, Arc::default(), log.clone())).await;
    let o = prober()
        .probe(&request(
            discovering(&base),
            ProbeMode::Discovery,
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    let ProbeOutcome::Active {
        models, omitted, ..
    } = &o
    else {
        panic!("{o:?}")
    };
    assert_eq!(models.len(), MAX_MODELS);
    assert_eq!(MAX_MODELS, 1000);
    assert_eq!(*omitted, 500);
    assert_eq!(models[0], "model-0");
    assert_eq!(models[999], "model-999");

    // A model among the names left out is looked up by name instead of being "not found".
    let mut r = request(
        discovering(&base),
        ProbeMode::Discovery,
        Duration::from_secs(5),
    );
    r.model = Some("model-1200".into());
    let o = prober().probe(&r).await.unwrap();
    assert!(o.is_active(), "{o:?}");
    assert_eq!(log.all().last().unwrap().path, "/v1/models/model-1200");
}

/// A gateway whose token endpoint answers `{"access_token": "tok-N", "expires_in": <raw>}`.
async fn token_gateway(expires_in: &'static str) -> (String, Arc<AtomicUsize>, Log) {
    let issued = Arc::new(AtomicUsize::new(0));
    let i = issued.clone();
    let log = Log::default();
    let l = log.clone();
    let app = Router::new()
        .route(
            "/token",
            axum::routing::post(move || {
                let n = i.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"access_token":"tok-{n}","expires_in":{expires_in}}}"#),
                    )
                }
            }),
        )
        .route(
            "/chat/completions",
            axum::routing::post(move |req: Request| {
                let l = l.clone();
                async move {
                    let (parts, _) = req.into_parts();
                    l.push(&parts, b"");
                    json_response(StatusCode::OK, chat())
                }
            }),
        );
    (serve(app).await, issued, log)
}

fn oauth(base: &str) -> GatewayAuth {
    GatewayAuth::OAuth2 {
        token_url: format!("{base}/token"),
        scopes: vec!["s".into()],
        client_id: "c".into(),
        client_secret: SecretString::new("cs-secret"),
    }
}

#[tokio::test]
async fn an_overflowing_expires_in_does_not_panic_and_the_token_is_used() {
    let (base, issued, log) = token_gateway("18446744073709551615").await;
    let p = prober();
    for _ in 0..2 {
        let o = p
            .probe(&request(
                settings(&base, oauth(&base)),
                ProbeMode::Inference,
                Duration::from_secs(5),
            ))
            .await
            .unwrap();
        assert!(o.is_active(), "{o:?}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "cached, for at most 24 h");
    assert!(
        log.all()
            .iter()
            .all(|c| c.headers["authorization"] == "Bearer tok-1")
    );
}

#[tokio::test]
async fn odd_expires_in_values_are_handled() {
    // (raw expires_in, tokens issued for two probes): a negative lifetime is used once and
    // not cached; unreadable ones fall back to 5 minutes; huge ones are clamped.
    for (raw, tokens) in [
        ("-5", 2),
        ("\"abc\"", 1),
        ("1e308", 1),
        ("\"-5\"", 2),
        ("3600.5", 1),
        ("null", 1),
    ] {
        let (base, issued, log) = token_gateway(raw).await;
        let p = prober();
        for _ in 0..2 {
            let o = p
                .probe(&request(
                    settings(&base, oauth(&base)),
                    ProbeMode::Inference,
                    Duration::from_secs(5),
                ))
                .await
                .unwrap();
            assert!(o.is_active(), "{raw}: {o:?}");
        }
        assert_eq!(issued.load(Ordering::SeqCst), tokens, "{raw}");
        assert_eq!(
            log.all().last().unwrap().headers["authorization"],
            format!("Bearer tok-{tokens}"),
            "{raw}"
        );
    }
}

#[tokio::test]
async fn a_slow_drip_gateway_is_a_timeout_within_the_probe_budget() {
    let app = Router::new().fallback(|| async {
        let drip = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b" ")), ()))
        });
        (
            [("content-type", "application/json")],
            Body::from_stream(drip),
        )
    });
    let base = serve(app).await;
    let started = Instant::now();
    let o = prober()
        .probe(&request(
            settings(&base, api_key()),
            ProbeMode::Inference,
            Duration::from_secs(1),
        ))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Timeout, "{message}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_probe_timeout_beyond_the_maximum_is_clamped_without_panicking() {
    assert_eq!(MAX_PROBE_TIMEOUT, Duration::from_secs(30));
    let base =
        serve(Router::new().fallback(|| async { json_response(StatusCode::OK, chat()) })).await;
    let o = prober()
        .probe(&request(
            settings(&base, api_key()),
            ProbeMode::Inference,
            Duration::MAX,
        ))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
}

#[tokio::test]
async fn a_metadata_ip_literal_is_refused_before_any_connection() {
    let transport = Transport::default_transport().unwrap();
    for url in [
        "http://169.254.169.254/",
        "http://169.254.169.254:80/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://0xA9FEA9FE/",
        "http://[fe80::1]:8080/",
        "http://168.63.129.16/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
    ] {
        assert!(transport.is_denied(&Url::parse(url).unwrap()), "{url}");
    }
    for url in [
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254.example.com/",
        "http://10.0.0.1/",
    ] {
        assert!(!transport.is_denied(&Url::parse(url).unwrap()), "{url}");
    }
    let open = Transport::new(TransportOptions {
        denied_networks: Some(vec![]),
        ..Default::default()
    })
    .unwrap();
    assert!(!open.is_denied(&Url::parse("http://169.254.169.254/").unwrap()));

    let records: Arc<Mutex<Vec<CallRecord>>> = Arc::default();
    let r = records.clone();
    let p = Prober::new(transport.clone()).with_observer(Arc::new(move |rec: &CallRecord| {
        r.lock().unwrap().push(rec.clone())
    }));
    for target in ["http://169.254.169.254", "http://[::ffff:169.254.169.254]"] {
        let started = Instant::now();
        let o = p
            .probe(&request(
                settings(target, api_key()),
                ProbeMode::Inference,
                Duration::from_secs(5),
            ))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_millis(50));
        let (cause, message) = inactive(&o);
        assert_eq!(cause, InactiveCause::Unreachable);
        assert!(
            message.starts_with("The address of the gateway at http://")
                && message.contains(POLICY),
            "{message}"
        );
    }
    // A token URL at the metadata address is refused the same way.
    let o = p
        .probe(&request(
            settings(
                "http://127.0.0.1:9",
                GatewayAuth::OAuth2 {
                    token_url: "http://169.254.169.254/metadata/identity/oauth2/token".into(),
                    scopes: vec![],
                    client_id: "c".into(),
                    client_secret: SecretString::new("cs-secret"),
                },
            ),
            ProbeMode::Inference,
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Unreachable);
    assert!(message.contains("OAuth2 token endpoint") && message.contains(POLICY));
    assert!(records.lock().unwrap().is_empty(), "no call was made");

    // The clients refuse it too, as an input error, without a call.
    let c = ConnectionsClient::new(
        "https://169.254.169.254",
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        StaticTokenCredential::new("t"),
        Some(ConnectionsClientOptions {
            client_options: ClientOptions {
                transport: Some(transport),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap();
    let started = Instant::now();
    let e = c.get("c1").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(
        e.message(),
        "the address of 169.254.169.254 is not allowed by the operator's network policy"
    );
}

#[tokio::test]
async fn a_host_name_that_resolves_to_a_denied_address_is_refused() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    let app = Router::new().fallback(move || {
        let hits = h2.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            json_response(StatusCode::OK, chat())
        }
    });
    let base = serve(app).await;
    let port = Url::parse(&base).unwrap().port().unwrap();
    let by_name = format!("http://localhost:{port}");
    let deny_loopback = Transport::new(TransportOptions {
        denied_networks: Some(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]),
        ..Default::default()
    })
    .unwrap();
    let o = Prober::new(deny_loopback.clone())
        .probe(&request(
            settings(&by_name, api_key()),
            ProbeMode::Inference,
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Unreachable);
    assert_eq!(
        message,
        format!(
            "The address of the gateway at {by_name} is not allowed by the operator's network policy; use another URL or ask the operator's administrator."
        )
    );
    let c = ConnectionsClient::new(
        &by_name,
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        StaticTokenCredential::new("t"),
        Some(ConnectionsClientOptions {
            client_options: ClientOptions {
                transport: Some(deny_loopback),
                ..Default::default()
            },
            ..Default::default()
        }),
    )
    .unwrap();
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert_eq!(
        e.message(),
        "the address of localhost is not allowed by the operator's network policy"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);

    // The default policy lets loopback through.
    let o = prober()
        .probe(&request(
            settings(&by_name, api_key()),
            ProbeMode::Inference,
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_to_another_listener_is_not_followed() {
    let second_hits = Arc::new(AtomicUsize::new(0));
    let h2 = second_hits.clone();
    let second = serve(Router::new().fallback(move || {
        let hits = h2.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            json_response(
                StatusCode::OK,
                json!({"data": [{"id": "x"}], "choices": []}),
            )
        }
    }))
    .await;
    let first = serve(Router::new().fallback(move |req: Request| {
        let location = format!("{second}{}", req.uri().path());
        async move {
            (
                StatusCode::FOUND,
                [("location", location)],
                "moved, see the internal service",
            )
                .into_response()
        }
    }))
    .await;
    for (s, mode) in [
        (settings(&first, api_key()), ProbeMode::Inference),
        (discovering(&first), ProbeMode::Discovery),
    ] {
        let o = prober()
            .probe(&request(s, mode, Duration::from_secs(5)))
            .await
            .unwrap();
        let (cause, message) = inactive(&o);
        assert_eq!(cause, InactiveCause::BadResponse);
        assert!(message.contains("HTTP 302"), "{message}");
        assert!(!message.contains("internal service"), "{message}");
    }
    assert_eq!(second_hits.load(Ordering::SeqCst), 0);
}
