//! The gateway probe against a tiny local gateway stand-in: Active, and each Inactive cause.
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
use foundry_gateway_client::probe::*;
use foundry_gateway_client::*;
use serde_json::json;
use support::{Log, TestPki, serve, serve_tls};

const KEY: &str = "sk-good-0123456789";
const WRONG_KEY: &str = "sk-wrong-9876543210";
const CLIENT_SECRET: &str = "cs-good-secret";
const WRONG_SECRET: &str = "cs-wrong-secret";
const ACCESS_TOKEN: &str = "at-issued-token-42";
const HEADER_SECRET: &str = "hdr-value-secret";
const SECRETS: &[&str] = &[
    KEY,
    WRONG_KEY,
    CLIENT_SECRET,
    WRONG_SECRET,
    ACCESS_TOKEN,
    HEADER_SECRET,
];

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn chat() -> serde_json::Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}, "finish_reason": "length"}]})
}

const MODELS: &[&str] = &["gpt-4o", "mini"];

/// A gateway that serves both discovery formats, both inference URL forms and an OAuth2
/// token endpoint. It echoes a wrong key or secret in its error bodies, as some gateways do.
fn gateway(log: Log, token_hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(move |req: Request| {
        let (log, token_hits) = (log.clone(), token_hits.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            log.push(&parts, &body);
            let path = parts.uri.path().to_string();
            let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if path == "/token" {
                token_hits.fetch_add(1, Ordering::SeqCst);
                let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
                assert_eq!(form["grant_type"], "client_credentials");
                assert_eq!(h("content-type"), "application/x-www-form-urlencoded");
                return if form["client_secret"] == CLIENT_SECRET && form["scope"] == "api://gw/.default other" {
                    json_response(StatusCode::OK, json!({"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600}))
                } else {
                    json_response(StatusCode::UNAUTHORIZED, json!({"error": "invalid_client", "error_description": format!("bad secret {}", form["client_secret"])}))
                };
            }
            let authorised = h("api-key") == KEY
                || h("authorization") == format!("Bearer {KEY}")
                || h("authorization") == format!("Bearer {ACCESS_TOKEN}")
                || h("authorization") == "Bearer entra-token"
                || h("x-api-key") == KEY;
            if !authorised {
                let shown = format!("{}{}{}", h("api-key"), h("authorization"), h("x-api-key"));
                return json_response(StatusCode::UNAUTHORIZED, json!({"error": {"message": format!("Invalid key: {shown}"), "code": "401"}}));
            }
            let known = |m: &str| MODELS.contains(&m);
            let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match (parts.method.as_str(), seg.as_slice()) {
                ("GET", ["deployments"]) => json_response(StatusCode::OK, json!({"value": MODELS.iter().map(|m| json!({"name": m, "properties": {"model": {"format": "OpenAI", "name": m, "version": "1"}}})).collect::<Vec<_>>()})),
                ("GET", ["deployments", d]) if known(d) => json_response(StatusCode::OK, json!({"name": d, "properties": {"model": {"format": "OpenAI", "name": d, "version": "1"}}})),
                ("GET", ["v1", "models"]) => json_response(StatusCode::OK, json!({"object": "list", "data": MODELS.iter().map(|m| json!({"id": m, "object": "model"})).collect::<Vec<_>>()})),
                ("GET", ["v1", "models", m]) if known(m) => json_response(StatusCode::OK, json!({"id": m, "object": "model"})),
                ("POST", [.., "deployments", d, "chat", "completions"]) => {
                    if known(d) { json_response(StatusCode::OK, chat()) } else { json_response(StatusCode::NOT_FOUND, json!({"error": {"code": "DeploymentNotFound", "message": "no such deployment"}})) }
                }
                ("POST", [.., "chat", "completions"]) => {
                    let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    if known(b["model"].as_str().unwrap_or("")) { json_response(StatusCode::OK, chat()) } else {
                        json_response(StatusCode::BAD_REQUEST, json!({"error": {"code": "model_not_found", "message": "Invalid model name"}}))
                    }
                }
                _ => json_response(StatusCode::NOT_FOUND, json!({"error": {"message": "not found"}})),
            }
        }
    })
}

async fn start() -> (String, Log, Arc<AtomicUsize>) {
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    (serve(gateway(log.clone(), hits.clone())).await, log, hits)
}

fn api_key(key: &str) -> GatewayAuth {
    GatewayAuth::ApiKey {
        key: SecretString::new(key),
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

fn request(settings: GatewaySettings, mode: ProbeMode, model: Option<&str>) -> ProbeRequest {
    ProbeRequest {
        settings,
        mode,
        model: model.map(str::to_owned),
        timeout: Duration::from_secs(5),
    }
}

fn prober() -> Prober {
    Prober::new(Transport::default_transport().unwrap())
}

fn inactive(o: &ProbeOutcome) -> (InactiveCause, &str) {
    match o {
        ProbeOutcome::Inactive { cause, message } => {
            eprintln!("{cause}: {message}");
            for s in SECRETS {
                assert!(!message.contains(s), "secret {s} leaked: {message}");
            }
            assert!(!message.is_empty() && message.ends_with('.'), "{message}");
            (*cause, message)
        }
        other => panic!("expected Inactive, got {other:?}"),
    }
}

#[tokio::test]
async fn model_gateway_static_inference_is_active_and_sends_foundrys_request() {
    let (base, log, _) = start().await;
    let mut s = settings(
        &format!("{base}/v1/"),
        GatewayAuth::ApiKey {
            key: SecretString::new(KEY),
            auth_config: Some(AuthConfig::new("Authorization", "Bearer {api_key}")),
        },
    );
    s.inference_api_version = Some("2024-02-01".into());
    s.custom_headers = BTreeMap::from([("X-Client-App".into(), SecretString::new(HEADER_SECRET))]);
    let o = prober()
        .probe(&request(s, ProbeMode::Auto, Some("gpt-4o")))
        .await
        .unwrap();
    let ProbeOutcome::Active {
        models,
        latency,
        omitted,
    } = o
    else {
        panic!("{o:?}")
    };
    assert_eq!(models, ["gpt-4o"]);
    assert_eq!(omitted, 0);
    assert!(latency < Duration::from_secs(5));
    let calls = log.all();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(
        (c.method.as_str(), c.path.as_str(), c.query.as_deref()),
        (
            "POST",
            "/v1/chat/completions",
            Some("api-version=2024-02-01")
        )
    );
    assert_eq!(c.headers["authorization"], format!("Bearer {KEY}"));
    assert_eq!(c.headers["x-client-app"], HEADER_SECRET);
    assert_eq!(c.headers["content-type"], "application/json");
    assert!(c.headers.get("api-key").is_none());
    assert_eq!(
        c.body,
        r#"{"messages":[{"role":"user","content":"Hello!"}],"model":"gpt-4o"}"#
    );
}

#[tokio::test]
async fn apim_discovery_uses_the_defaults_and_deployment_api_version() {
    let (base, log, _) = start().await;
    let mut s = settings(&base, api_key(KEY));
    s.category = ConnectionCategory::ApiManagement;
    s.deployment_in_path = true;
    s.static_models = vec![];
    s.deployment_api_version = Some("2023-05-01".into());
    s.inference_api_version = Some("2024-02-01".into());
    s.discovery = ModelDiscovery::resolve(&s.category, None, false).unwrap();
    let o = prober()
        .probe(&request(s.clone(), ProbeMode::Auto, Some("mini")))
        .await
        .unwrap();
    assert!(
        matches!(&o, ProbeOutcome::Active { models, .. } if models == &["gpt-4o", "mini"]),
        "{o:?}"
    );
    let calls = log.all();
    let seen: Vec<_> = calls
        .iter()
        .map(|c| (c.method.as_str(), c.path.as_str(), c.query.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/deployments", Some("api-version=2023-05-01")),
            ("GET", "/deployments/mini", Some("api-version=2023-05-01"))
        ]
    );
    assert_eq!(calls[0].headers["api-key"], KEY);

    // Inference mode: discovery, then the chat completion with the deployment in the path.
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, Some("mini")))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
    let last = log.all().pop().unwrap();
    assert_eq!(
        (last.path.as_str(), last.query.as_deref()),
        (
            "/deployments/mini/chat/completions",
            Some("api-version=2024-02-01")
        )
    );
    let body: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert!(body.get("model").is_none());
}

#[tokio::test]
async fn openai_format_discovery_then_inference_on_the_first_model() {
    let (base, log, _) = start().await;
    let mut s = settings(
        &base,
        GatewayAuth::ApiKey {
            key: SecretString::new(KEY),
            auth_config: Some(AuthConfig::new("x-api-key", "{api_key}")),
        },
    );
    s.static_models = vec![];
    s.discovery = Some(ModelDiscovery {
        list_models_endpoint: "v1/models".into(),
        get_model_endpoint: format!("{base}/v1/models/{{deploymentName}}"),
        deployment_provider: DeploymentProvider::OpenAI,
    });
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, None))
        .await
        .unwrap();
    assert!(
        matches!(&o, ProbeOutcome::Active { models, .. } if models == &["gpt-4o", "mini"]),
        "{o:?}"
    );
    let paths: Vec<_> = log.all().iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, ["/v1/models", "/chat/completions"]);
}

#[tokio::test]
async fn a_model_the_gateway_does_not_list_is_model_not_found() {
    let (base, log, _) = start().await;
    let mut s = settings(&base, api_key(KEY));
    s.static_models = vec![];
    s.category = ConnectionCategory::ApiManagement;
    s.discovery = Some(ModelDiscovery::apim_defaults());
    let o = prober()
        .probe(&request(s, ProbeMode::Discovery, Some("gpt-5")))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::ModelNotFound);
    assert!(
        message.contains("gpt-5") && message.contains("gpt-4o"),
        "{message}"
    );
    assert_eq!(log.count(), 1, "no get-by-name for an unlisted model");
}

#[tokio::test]
async fn a_404_on_the_deployment_is_model_not_found() {
    let (base, _, _) = start().await;
    let mut s = settings(&base, api_key(KEY));
    s.deployment_in_path = true;
    s.static_models = vec!["ghost".into()];
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, Some("ghost")))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::ModelNotFound);
    assert!(message.contains("404"), "{message}");

    // And a 400 model_not_found from an OpenAI-style gateway.
    let mut s = settings(&base, api_key(KEY));
    s.static_models = vec!["ghost".into()];
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, None))
        .await
        .unwrap();
    assert_eq!(inactive(&o).0, InactiveCause::ModelNotFound);

    // A model outside the static list is refused without calling the gateway.
    let s = settings("http://127.0.0.1:9", api_key(KEY));
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, Some("other")))
        .await
        .unwrap();
    assert_eq!(inactive(&o).0, InactiveCause::ModelNotFound);
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_never_echoed() {
    let (base, _, _) = start().await;
    let o = prober()
        .probe(&request(
            settings(&base, api_key(WRONG_KEY)),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Unauthorized);
    assert!(
        message.contains("401") && message.contains("api-key"),
        "{message}"
    );
    assert!(!message.contains("Invalid key"), "{message}");
}

#[tokio::test]
async fn a_refused_port_is_unreachable() {
    let addr = support::closed_port().await;
    let o = prober()
        .probe(&request(
            settings(&format!("http://{addr}"), api_key(KEY)),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Unreachable);
    // Refused, DNS failure and reset all read the same: no port scanning through status.
    assert_eq!(
        message,
        format!(
            "Could not connect to the gateway at http://{addr}; check the URL, DNS and network access."
        )
    );
}

#[tokio::test]
async fn a_sleeping_gateway_is_a_timeout() {
    let app = Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "late"
    });
    let base = serve(app).await;
    let mut r = request(settings(&base, api_key(KEY)), ProbeMode::Inference, None);
    r.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let o = prober().probe(&r).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(inactive(&o).0, InactiveCause::Timeout);
}

#[tokio::test]
async fn garbage_and_server_errors_are_bad_responses() {
    let app = Router::new()
        .route(
            "/garbage/chat/completions",
            axum::routing::post(|| async { "<html>hello</html>" }),
        )
        .route(
            "/json/chat/completions",
            axum::routing::post(|| async { json_response(StatusCode::OK, json!({"ok": true})) }),
        )
        .route(
            "/broken/chat/completions",
            axum::routing::post(|| async {
                json_response(
                    StatusCode::BAD_GATEWAY,
                    json!({"error": {"message": "upstream exploded"}}),
                )
            }),
        )
        .route(
            "/broken/deployments",
            axum::routing::get(|| async { json_response(StatusCode::OK, json!({"items": []})) }),
        );
    let base = serve(app).await;
    for (prefix, needle) in [
        ("garbage", "choices"),
        ("json", "choices"),
        ("broken", "502"),
    ] {
        let o = prober()
            .probe(&request(
                settings(&format!("{base}/{prefix}"), api_key(KEY)),
                ProbeMode::Inference,
                None,
            ))
            .await
            .unwrap();
        let (cause, message) = inactive(&o);
        assert_eq!(cause, InactiveCause::BadResponse, "{prefix}: {message}");
        assert!(message.contains(needle), "{message}");
        assert!(!message.contains("upstream exploded"), "{message}");
        assert!(!message.contains("hello"), "{message}");
    }
    let mut s = settings(&format!("{base}/broken"), api_key(KEY));
    s.static_models = vec![];
    s.discovery = Some(ModelDiscovery::apim_defaults());
    let o = prober()
        .probe(&request(s, ProbeMode::Discovery, None))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::BadResponse);
    assert!(message.contains("\"value\""), "{message}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_tls_error_and_the_extra_ca_fixes_it() {
    let pki = TestPki::new();
    let log = Log::default();
    let base = serve_tls(gateway(log, Arc::default()), &pki).await;
    let o = prober()
        .probe(&request(
            settings(&base, api_key(KEY)),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::TlsError, "{message}");
    assert!(
        message.contains("TLS handshake failed") && message.contains("UnknownIssuer"),
        "{message}"
    );

    let trusting = Prober::new(
        Transport::new(TransportOptions {
            extra_root_ca_pem: Some(pki.ca_pem.clone().into_bytes()),
            ..Default::default()
        })
        .unwrap(),
    );
    let o = trusting
        .probe(&request(
            settings(&base, api_key(KEY)),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
}

fn oauth(base: &str, secret: &str) -> GatewayAuth {
    GatewayAuth::OAuth2 {
        token_url: format!("{base}/token"),
        scopes: vec!["api://gw/.default".into(), "other".into()],
        client_id: "client-1".into(),
        client_secret: SecretString::new(secret),
    }
}

#[tokio::test]
async fn oauth2_tokens_are_fetched_once_and_cached_across_probes() {
    let (base, log, token_hits) = start().await;
    let p = prober();
    for _ in 0..3 {
        let o = p
            .probe(&request(
                settings(&format!("{base}/v1"), oauth(&base, CLIENT_SECRET)),
                ProbeMode::Inference,
                None,
            ))
            .await
            .unwrap();
        assert!(o.is_active(), "{o:?}");
    }
    assert_eq!(token_hits.load(Ordering::SeqCst), 1);
    let chat = log
        .all()
        .into_iter()
        .find(|c| c.path.ends_with("/chat/completions"))
        .unwrap();
    assert_eq!(
        chat.headers["authorization"],
        format!("Bearer {ACCESS_TOKEN}")
    );
    let token_call = log.all().into_iter().find(|c| c.path == "/token").unwrap();
    assert!(token_call.body.contains("client_id=client-1"));
    p.clear_token_cache();
    assert!(
        p.probe(&request(
            settings(&format!("{base}/v1"), oauth(&base, CLIENT_SECRET)),
            ProbeMode::Inference,
            None
        ))
        .await
        .unwrap()
        .is_active()
    );
    assert_eq!(token_hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_client_secret_is_unauthorized() {
    let (base, _, _) = start().await;
    let o = prober()
        .probe(&request(
            settings(&base, oauth(&base, WRONG_SECRET)),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    let (cause, message) = inactive(&o);
    assert_eq!(cause, InactiveCause::Unauthorized);
    assert!(
        message.contains("HTTP 401") && message.contains("clientId, clientSecret and scopes"),
        "{message}"
    );
    // The token endpoint's own words (error code, description) are not repeated.
    assert!(
        !message.contains("invalid_client") && !message.contains("bad secret"),
        "{message}"
    );
}

#[tokio::test]
async fn entra_auth_sends_the_credentials_bearer_token() {
    let (base, log, _) = start().await;
    let s = settings(
        &base,
        GatewayAuth::Entra {
            credential: StaticTokenCredential::new("entra-token"),
            audience: COGNITIVE_SERVICES_AUDIENCE.into(),
        },
    );
    assert!(
        prober()
            .probe(&request(s, ProbeMode::Inference, None))
            .await
            .unwrap()
            .is_active()
    );
    assert_eq!(log.all()[0].headers["authorization"], "Bearer entra-token");
}

#[tokio::test]
async fn impossible_settings_are_errors_not_outcomes() {
    let mut s = settings("https://gw.example.com", api_key(KEY));
    let e = prober()
        .probe(&request(s.clone(), ProbeMode::Discovery, None))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    s.static_models = vec![];
    s.discovery = Some(ModelDiscovery {
        list_models_endpoint: "https://elsewhere.example.com/models".into(),
        get_model_endpoint: "/models/{deploymentName}".into(),
        deployment_provider: DeploymentProvider::OpenAI,
    });
    let e = prober()
        .probe(&request(s.clone(), ProbeMode::Auto, None))
        .await
        .unwrap_err();
    assert!(e.message().contains("origin"), "{e}");
    s.discovery = Some(ModelDiscovery {
        list_models_endpoint: "/models?api-version=1&api-version=2".into(),
        ..ModelDiscovery::apim_defaults()
    });
    assert!(
        prober()
            .probe(&request(s, ProbeMode::Auto, None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn probe_calls_reach_the_observer() {
    let (base, _, _) = start().await;
    let records: Arc<std::sync::Mutex<Vec<CallRecord>>> = Arc::default();
    let r = records.clone();
    let p = prober().with_observer(Arc::new(move |rec: &CallRecord| {
        r.lock().unwrap().push(rec.clone())
    }));
    p.probe(&request(
        settings(&base, oauth(&base, CLIENT_SECRET)),
        ProbeMode::Inference,
        None,
    ))
    .await
    .unwrap();
    let ops: Vec<_> = records
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.operation, r.outcome))
        .collect();
    assert_eq!(
        ops,
        [
            ("Gateway_TokenRequest", "Ok"),
            ("Gateway_ChatCompletion", "Ok")
        ]
    );
}

#[tokio::test]
async fn a_cached_oauth2_token_the_gateway_refuses_is_replaced_once() {
    let issued = Arc::new(AtomicUsize::new(0));
    let i = issued.clone();
    let app = Router::new()
        .route(
            "/token",
            axum::routing::post(move || {
                let n = i.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    json_response(
                        StatusCode::OK,
                        json!({"access_token": format!("tok-{n}"), "expires_in": 3600}),
                    )
                }
            }),
        )
        .route(
            "/chat/completions",
            axum::routing::post(|headers: http::HeaderMap| async move {
                // The gateway rotated its signing key: only the second token is valid.
                if headers["authorization"] == "Bearer tok-2" {
                    json_response(StatusCode::OK, chat())
                } else {
                    json_response(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": {"message": "expired"}}),
                    )
                }
            }),
        );
    let base = serve(app).await;
    let auth = GatewayAuth::OAuth2 {
        token_url: format!("{base}/token"),
        scopes: vec!["s".into()],
        client_id: "c".into(),
        client_secret: SecretString::new(CLIENT_SECRET),
    };
    let p = prober();
    // A freshly issued token that is refused is reported, not retried.
    let o = p
        .probe(&request(
            settings(&base, auth.clone()),
            ProbeMode::Inference,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(inactive(&o).0, InactiveCause::Unauthorized);
    // The cached one is refused, so the probe fetches a new token and succeeds.
    let o = p
        .probe(&request(settings(&base, auth), ProbeMode::Inference, None))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
    assert_eq!(issued.load(Ordering::SeqCst), 2);
}

/// The headers a request carried, in the order they arrived, without the ones the HTTP stack
/// adds (`host`, `content-length`, `user-agent`, `accept-encoding`).
fn sent_headers(seen: &support::Seen) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "host" | "content-length" | "user-agent" | "accept-encoding"
            )
        })
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// One chat check: the connection's settings and what the gateway must see.
struct ChatCase {
    in_path: bool,
    api_version: Option<&'static str>,
    auth_config: Option<AuthConfig>,
    custom: &'static [(&'static str, &'static str)],
    path: &'static str,
    query: Option<&'static str>,
    body: &'static str,
    headers: Vec<(String, String)>,
}

/// Reference §5: the chat check of the validation scripts, for both URL forms, with and
/// without api-version, with api-key, authConfig and custom headers. What the gateway saw is
/// compared with what the scripts send: method, path, query, body bytes, and the headers in
/// the scripts' order (`requests` adds `Accept: */*`, and so does our HTTP client).
#[tokio::test]
async fn the_chat_check_sends_what_the_validation_scripts_send() {
    const IN_PATH: &str = r#"{"messages":[{"role":"user","content":"Hello!"}]}"#;
    const IN_BODY: &str = r#"{"messages":[{"role":"user","content":"Hello!"}],"model":"gpt-4o"}"#;
    let cases = vec![
        ChatCase {
            in_path: true,
            api_version: Some("2024-10-21"),
            auth_config: None,
            custom: &[],
            path: "/openai/deployments/gpt-4o/chat/completions",
            query: Some("api-version=2024-10-21"),
            body: IN_PATH,
            headers: pairs(&[
                ("content-type", "application/json"),
                ("api-key", KEY),
                ("accept", "*/*"),
            ]),
        },
        ChatCase {
            in_path: true,
            api_version: None,
            auth_config: None,
            custom: &[("X-Client-App", HEADER_SECRET)],
            path: "/openai/deployments/gpt-4o/chat/completions",
            query: None,
            body: IN_PATH,
            headers: pairs(&[
                ("content-type", "application/json"),
                ("api-key", KEY),
                ("x-client-app", HEADER_SECRET),
                ("accept", "*/*"),
            ]),
        },
        ChatCase {
            in_path: false,
            api_version: Some(""),
            auth_config: Some(AuthConfig::new("Authorization", "Bearer {api_key}")),
            custom: &[],
            path: "/openai/chat/completions",
            query: None,
            body: IN_BODY,
            headers: pairs(&[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {KEY}")),
                ("accept", "*/*"),
            ]),
        },
        ChatCase {
            in_path: false,
            api_version: Some("2025-03-01-preview"),
            auth_config: Some(AuthConfig::new("x-api-key", "{api_key}")),
            custom: &[("X-Client-App", HEADER_SECRET), ("X-Env", "prod")],
            path: "/openai/chat/completions",
            query: Some("api-version=2025-03-01-preview"),
            body: IN_BODY,
            headers: pairs(&[
                ("content-type", "application/json"),
                ("x-api-key", KEY),
                ("x-client-app", HEADER_SECRET),
                ("x-env", "prod"),
                ("accept", "*/*"),
            ]),
        },
    ];
    for (
        i,
        ChatCase {
            in_path,
            api_version,
            auth_config,
            custom,
            path,
            query,
            body,
            headers,
        },
    ) in cases.into_iter().enumerate()
    {
        let (base, log, _) = start().await;
        let mut s = settings(
            &format!("{base}/openai"),
            GatewayAuth::ApiKey {
                key: SecretString::new(KEY),
                auth_config,
            },
        );
        s.deployment_in_path = in_path;
        s.inference_api_version = api_version.map(str::to_owned);
        s.custom_headers = custom
            .iter()
            .map(|(n, v)| ((*n).to_owned(), SecretString::new(*v)))
            .collect();
        let o = prober()
            .probe(&request(s, ProbeMode::Inference, Some("gpt-4o")))
            .await
            .unwrap();
        assert!(o.is_active(), "case {i}: {o:?}");
        let calls = log.all();
        assert_eq!(calls.len(), 1, "case {i}");
        let c = &calls[0];
        assert_eq!(
            (c.method.as_str(), c.path.as_str(), c.query.as_deref()),
            ("POST", path, query),
            "case {i}"
        );
        assert_eq!(c.body, body, "case {i}");
        assert_eq!(sent_headers(c), headers, "case {i}");
    }
}

/// Reference §5: the discovery GETs carry the scripts' header dictionary too (Content-Type,
/// auth, custom headers), and api-version only when deploymentAPIVersion is set.
#[tokio::test]
async fn discovery_sends_what_the_validation_scripts_send() {
    for (api_version, query) in [
        (Some("2023-05-01"), Some("api-version=2023-05-01")),
        (None, None),
    ] {
        let (base, log, _) = start().await;
        let mut s = settings(&base, api_key(KEY));
        s.category = ConnectionCategory::ApiManagement;
        s.static_models = vec![];
        s.deployment_api_version = api_version.map(str::to_owned);
        s.custom_headers =
            BTreeMap::from([("X-Client-App".into(), SecretString::new(HEADER_SECRET))]);
        s.discovery = ModelDiscovery::resolve(&s.category, None, false).unwrap();
        let o = prober()
            .probe(&request(s, ProbeMode::Discovery, Some("mini")))
            .await
            .unwrap();
        assert!(o.is_active(), "{o:?}");
        let calls = log.all();
        let seen: Vec<_> = calls
            .iter()
            .map(|c| {
                (
                    c.method.as_str(),
                    c.path.as_str(),
                    c.query.as_deref(),
                    c.body.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("GET", "/deployments", query, ""),
                ("GET", "/deployments/mini", query, "")
            ]
        );
        for c in &calls {
            assert_eq!(
                sent_headers(c),
                pairs(&[
                    ("content-type", "application/json"),
                    ("api-key", KEY),
                    ("x-client-app", HEADER_SECRET),
                    ("accept", "*/*")
                ])
            );
        }
    }
}

/// A gpt-5 / o-series style deployment: any request with `max_tokens` gets the 400 those
/// deployments answer. The probe sends no token limit, so the gateway is Active.
#[tokio::test]
async fn a_deployment_that_refuses_max_tokens_is_active() {
    let log = Log::default();
    let l = log.clone();
    let app = Router::new().route(
        "/chat/completions",
        axum::routing::post(move |body: axum::body::Bytes| {
            let l = l.clone();
            async move {
                l.0.lock().unwrap().push(support::Seen {
                    method: "POST".into(),
                    path: "/chat/completions".into(),
                    query: None,
                    headers: http::HeaderMap::new(),
                    body: String::from_utf8_lossy(&body).to_string(),
                });
                let b: serde_json::Value = serde_json::from_slice(&body).unwrap();
                if b.get("max_tokens").is_some() {
                    json_response(
                        StatusCode::BAD_REQUEST,
                        json!({"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}),
                    )
                } else {
                    json_response(StatusCode::OK, chat())
                }
            }
        }),
    );
    let base = serve(app).await;
    let mut s = settings(&base, api_key(KEY));
    s.static_models = vec!["gpt-5-mini".into()];
    let o = prober()
        .probe(&request(s, ProbeMode::Inference, Some("gpt-5-mini")))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
    let body: serde_json::Value = serde_json::from_str(&log.all()[0].body).unwrap();
    assert_eq!(body["model"], "gpt-5-mini");
    for limit in [
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "stream",
    ] {
        assert!(body.get(limit).is_none(), "{limit} in {body}");
    }
}

/// Reference §3.3 and the setup guides say only that `Anthropic` is for "an Anthropic model's
/// /message API": no path, no headers. The probe does not guess: Inference on such a model is
/// refused before any call, and discovery still checks the connection.
#[tokio::test]
async fn an_anthropic_model_is_never_sent_a_chat_completion() {
    let (base, log, _) = start().await;
    let mut s = settings(&base, api_key(KEY));
    s.static_models = vec!["claude".into(), "gpt-4o".into()];
    s.model_formats = BTreeMap::from([
        ("claude".into(), ModelFormat::Anthropic),
        ("gpt-4o".into(), ModelFormat::OpenAI),
    ]);
    for (mode, model) in [
        (ProbeMode::Inference, Some("claude")),
        (ProbeMode::Auto, Some("claude")),
        (ProbeMode::Inference, None),
    ] {
        let e = prober()
            .probe(&request(s.clone(), mode, model))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{mode:?}");
        assert!(e.message().contains("Anthropic"), "{e}");
        assert!(e.message().contains("probe mode Discovery"), "{e}");
    }
    assert_eq!(log.count(), 0, "nothing was sent");
    // Another model of the same connection is probed as usual.
    let o = prober()
        .probe(&request(s.clone(), ProbeMode::Inference, Some("gpt-4o")))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");

    // With discovery, Auto resolves to Discovery: the Anthropic model is looked up, not called.
    let mut s = settings(&base, api_key(KEY));
    s.category = ConnectionCategory::ApiManagement;
    s.static_models = vec![];
    s.model_formats = BTreeMap::from([("mini".into(), ModelFormat::Anthropic)]);
    s.discovery = ModelDiscovery::resolve(&s.category, None, false).unwrap();
    let before = log.count();
    let o = prober()
        .probe(&request(s, ProbeMode::Auto, Some("mini")))
        .await
        .unwrap();
    assert!(o.is_active(), "{o:?}");
    let paths: Vec<String> = log.all()[before..].iter().map(|c| c.path.clone()).collect();
    assert_eq!(paths, ["/deployments", "/deployments/mini"]);
}

/// Reads one HTTP/1.1 request (head and Content-Length body) from `stream`; false at EOF.
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                if n == 0 {
                    return false;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return true;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return false;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn a_keep_alive_connection_the_gateway_closes_under_a_probe_is_not_an_inactive_gateway() {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}", listener.local_addr().unwrap());
    let answered = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (a, d) = (answered.clone(), dropped.clone());
    tokio::spawn(async move {
        let body = chat().to_string();
        let answer = |keep: bool| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: {}\r\n\r\n{body}",
                body.len(),
                if keep { "keep-alive" } else { "close" }
            )
        };
        let mut first = true;
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            if first {
                // Answers one request and keeps the connection, then takes the next request on it
                // and closes without an answer: a keep-alive timeout racing the client's reuse.
                first = false;
                assert!(read_request(&mut stream).await);
                stream.write_all(answer(true).as_bytes()).await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
                if read_request(&mut stream).await {
                    d.fetch_add(1, Ordering::SeqCst);
                }
                drop(stream);
            } else if read_request(&mut stream).await {
                stream.write_all(answer(false).as_bytes()).await.unwrap();
                a.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let prober = prober();
    let probe = request(
        settings(&target, api_key(KEY)),
        ProbeMode::Inference,
        Some("gpt-4o"),
    );
    for round in 1..=2 {
        let outcome = prober.probe(&probe).await.unwrap();
        assert!(outcome.is_active(), "probe {round}: {outcome:?}");
    }
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the second probe met the closed connection"
    );
    assert_eq!(
        answered.load(Ordering::SeqCst),
        2,
        "and was answered on a fresh one"
    );
}
