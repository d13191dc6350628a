//! Helpers shared by the emulator's integration tests: a throwaway CA, an emulator started
//! in-process, a small OpenAI-compatible gateway and a JWKS server on loopback.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use foundry_gateway_emulator::{AuthMode, Emulator, EmulatorConfig, RunningEmulator, TlsPem};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-static-token";
pub const SUB: &str = "00000000-0000-0000-0000-000000000000";
pub const PROJECT: &str = "local-project";

/// A throwaway CA and a server certificate for 127.0.0.1 / localhost.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "emulator test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    pub fn tls(&self) -> TlsPem {
        TlsPem {
            cert_chain_pem: self.cert_pem.clone().into_bytes(),
            key_pem: self.key_pem.clone().into_bytes(),
        }
    }

    /// A client trusting only this CA (plus the web PKI roots).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    pub fn rustls_server_config(&self) -> Arc<rustls::ServerConfig> {
        let certs = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(cfg)
    }
}

/// An emulator over HTTPS with the test CA, and a client that trusts it.
pub struct Harness {
    pub pki: TestPki,
    pub emu: RunningEmulator,
    pub client: reqwest::Client,
}

pub async fn start() -> Harness {
    start_with(|_| {}).await
}

pub async fn start_with(f: impl FnOnce(&mut EmulatorConfig)) -> Harness {
    let pki = TestPki::new();
    let mut config = EmulatorConfig::new(AuthMode::StaticToken(TOKEN.into()));
    config.tls = Some(pki.tls());
    config.extra_ca_pem = Some(pki.ca_pem.clone().into_bytes());
    f(&mut config);
    let emu = Emulator::start(config).await.unwrap();
    let client = pki.client();
    Harness { pki, emu, client }
}

impl Harness {
    pub fn arm_connections(&self) -> String {
        format!(
            "{}/subscriptions/{SUB}/resourceGroups/rg-local/providers/Microsoft.CognitiveServices/accounts/local-account/projects/{PROJECT}/connections",
            self.emu.base_url
        )
    }

    pub fn connection_url(&self, name: &str) -> String {
        format!("{}/{name}?api-version=2025-12-01", self.arm_connections())
    }

    pub fn project(&self) -> String {
        self.emu.project_endpoint(PROJECT)
    }

    pub fn openai(&self, path: &str) -> String {
        format!("{}/openai/v1{path}", self.project())
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, url).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn put_connection(&self, name: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, &self.connection_url(name), Some(body))
            .await
    }

    pub async fn create_agent(&self, name: &str, model: &str) -> Value {
        let (s, v) = self
            .send(
                Method::POST,
                &format!("{}/agents/{name}/versions?api-version=v1", self.project()),
                Some(json!({"definition": {"kind": "prompt", "model": model, "instructions": "Be brief."}})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    pub async fn respond(&self, agent: &str, input: &str) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            &self.openai("/responses"),
            Some(json!({"input": input, "agent_reference": {"type": "agent_reference", "name": agent}})),
        )
        .await
    }

    pub async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}/_emulator{path}", self.emu.base_url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

pub const MODELS: &str = r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"2024-11-20","format":"OpenAI"}}}]"#;

/// A request the fake gateway received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Value,
    pub form: String,
}

#[derive(Default)]
struct GwState {
    seen: Vec<Seen>,
    replies: VecDeque<(StatusCode, Value)>,
    token_count: usize,
}

/// A small OpenAI-compatible gateway over HTTPS (same test CA): chat completions at any path
/// ending in `/chat/completions`, discovery at `/v1/models` (OpenAI) and `/deployments`
/// (AzureOpenAI), and a client-credentials token endpoint at `/oauth2/token`.
#[derive(Clone)]
pub struct FakeGateway {
    pub addr: SocketAddr,
    pub base: String,
    state: Arc<Mutex<GwState>>,
}

impl FakeGateway {
    pub async fn start(pki: &TestPki) -> Self {
        let state = Arc::new(Mutex::new(GwState::default()));
        let app = Router::new().fallback(gw_handler).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.rustls_server_config());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Self {
            addr,
            base: format!("https://127.0.0.1:{}", addr.port()),
            state,
        }
    }

    /// Makes the next chat completion answer with this status and body.
    pub fn reply_next(&self, status: StatusCode, body: Value) {
        self.state.lock().unwrap().replies.push_back((status, body));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn chat_calls(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.uri.path().ends_with("/chat/completions"))
            .collect()
    }

    pub fn token_count(&self) -> usize {
        self.state.lock().unwrap().token_count
    }
}

async fn gw_handler(
    State(state): State<Arc<Mutex<GwState>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = String::from_utf8_lossy(&body).to_string();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut st = state.lock().unwrap();
    st.seen.push(Seen {
        method: method.clone(),
        uri: uri.clone(),
        headers,
        body: json_body.clone(),
        form,
    });
    let path = uri.path();
    if path == "/oauth2/token" {
        st.token_count += 1;
        let n = st.token_count;
        return (StatusCode::OK, axum::Json(json!({"access_token": format!("gw-access-token-{n}"), "token_type": "Bearer", "expires_in": 3600}))).into_response();
    }
    if path.ends_with("/v1/models") {
        return axum::Json(json!({"object": "list", "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "x"}, {"id": "llama", "object": "model", "created": 1, "owned_by": "x"}]})).into_response();
    }
    if let Some(name) = path.strip_prefix("/v1/models/") {
        if name == "hidden-model" {
            return axum::Json(json!({"id": "hidden-model", "object": "model"})).into_response();
        }
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "no such model"}})),
        )
            .into_response();
    }
    if path.ends_with("/deployments") {
        return axum::Json(json!({"value": [{"name": "gpt-4o", "properties": {"model": {"name": "gpt-4o", "version": "2024-11-20", "format": "OpenAI"}}}]})).into_response();
    }
    if path.contains("/deployments/") && !path.ends_with("/chat/completions") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"message": "DeploymentNotFound"}})),
        )
            .into_response();
    }
    if path.ends_with("/chat/completions") {
        if let Some((status, body)) = st.replies.pop_front() {
            return (status, axum::Json(body)).into_response();
        }
        let last = json_body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        return axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": json_body.get("model").cloned().unwrap_or(Value::Null),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("echo: {last}")}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        }))
        .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"message": "unknown path"}})),
    )
        .into_response()
}

/// A gateway connection body with the given auth and metadata.
pub fn gateway_connection(category: &str, target: &str, auth: Value, metadata: Value) -> Value {
    let mut props = json!({"category": category, "target": target, "isSharedToAll": false, "metadata": metadata});
    for (k, v) in auth.as_object().unwrap() {
        props[k] = v.clone();
    }
    json!({"properties": props})
}

impl Harness {
    /// A request with the static token as bearer, for the tests that look at headers or send
    /// extra ones.
    pub fn authed(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url).bearer_auth(TOKEN)
    }

    /// The response itself, for the tests that look at its headers or raw body.
    pub async fn raw(&self, method: Method, url: &str) -> reqwest::Response {
        self.authed(method, url).send().await.unwrap()
    }

    pub async fn get(&self, url: &str) -> (StatusCode, Value) {
        self.send(Method::GET, url, None).await
    }

    pub async fn delete(&self, url: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, url, None).await
    }

    pub async fn post(&self, url: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, url, Some(body)).await
    }

    /// A POST without a body.
    pub async fn post_empty(&self, url: &str) -> (StatusCode, Value) {
        self.send(Method::POST, url, None).await
    }

    pub async fn put(&self, url: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, url, Some(body)).await
    }
}

/// A `ModelGateway` connection with an API key, no deployment in the path and the static
/// model list [`MODELS`].
pub fn api_key_gateway(target: &str, key: &str) -> Value {
    api_key_connection(
        target,
        key,
        json!({"deploymentInPath": "false", "models": MODELS}),
    )
}

/// A `ModelGateway` connection with an API key and the given metadata.
pub fn api_key_connection(target: &str, key: &str, metadata: Value) -> Value {
    gateway_connection(
        "ModelGateway",
        target,
        json!({"authType": "ApiKey", "credentials": {"key": key}}),
        metadata,
    )
}

/// The string `field` of each element of a JSON array, in order.
pub fn strings(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e[field].as_str().unwrap().to_string())
        .collect()
}

/// An emulator, a fake gateway and the API-key connection `my-gw` to it (put with 200).
pub async fn start_with_gateway() -> (Harness, FakeGateway) {
    start_with_connection("my-gw", |gw| api_key_gateway(&gw.base, "k-123456")).await
}

/// An emulator, a fake gateway and the connection `name` made for it by `body` (put with 200).
pub async fn start_with_connection(
    name: &str,
    body: impl FnOnce(&FakeGateway) -> Value,
) -> (Harness, FakeGateway) {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    let (s, v) = h.put_connection(name, body(&gw)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (h, gw)
}

/// The text of the first content part of each item of a list page's `data`, in order.
pub fn item_texts(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap().to_string())
        .collect()
}
