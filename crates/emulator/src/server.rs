//! The listener: a custom accept loop (TLS via tokio-rustls, HTTP via hyper-util) so that a
//! fault can really close a connection without answering, and the request pipeline:
//! route → latency and faults → auth → handler → record.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::auth::Authenticator;
use crate::config::EmulatorConfig;
use crate::control::{Control, FaultOutcome, RequestRecord, parse_fault_post};
use crate::errors::{ApiError, Plane, empty, json_response, ok_json};
use crate::gateway::Gateway;
use crate::routes::{DataOp, Route, route};
use crate::state::Store;
use crate::util::{
    REDACTED, canonical_json, new_id, redact_all, rfc3339_millis, sha256_hex, unix_millis,
};
use crate::{agents, arm, inventory, openai, responses};

const MAX_BODY: usize = 8 * 1024 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS certificate or key could not be used.
    #[error("loading the TLS certificate and key failed: {0}")]
    Tls(String),
    /// The extra CA could not be used or the HTTP client could not be built.
    #[error("building the outgoing HTTP client failed: {0}")]
    HttpClient(String),
    /// Binding the listen address failed.
    #[error("binding {addr} failed: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Entry point of the library.
#[derive(Debug)]
pub struct Emulator;

/// A started emulator; dropping it stops the server too.
#[derive(Debug)]
pub struct RunningEmulator {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or `http://` with plain HTTP).
    pub base_url: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// The data-plane endpoint of a project, as `AIProjectClient` expects it.
    pub fn project_endpoint(&self, project: &str) -> String {
        format!("{}/api/projects/{project}", self.base_url)
    }

    /// Stops accepting, lets open connections finish their current request, and waits.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

fn build_tls(config: &EmulatorConfig) -> Result<Option<TlsAcceptor>, StartError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let certs = rustls_pemfile::certs(&mut tls.cert_chain_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("reading the certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(StartError::Tls(
            "the certificate file has no CERTIFICATE block".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut tls.key_pem.as_slice())
        .map_err(|e| StartError::Tls(format!("reading the key PEM: {e}")))?
        .ok_or_else(|| StartError::Tls("the key file has no private key block".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn build_http_client(config: &EmulatorConfig) -> Result<reqwest::Client, StartError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(config.gateway_timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("foundry-emulator/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &config.extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| StartError::HttpClient(format!("reading the CA file: {e}")))?;
        if certs.is_empty() {
            return Err(StartError::HttpClient(
                "the CA file has no CERTIFICATE block".into(),
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| StartError::HttpClient(e.to_string()))
}

impl Emulator {
    /// Binds, starts serving in the background and returns once the port is known.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        // jsonwebtoken picks its crypto backend from crate features; with more than one enabled
        // in a build it needs an explicit choice. Ignoring the error: someone already chose.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        if config.projects.is_empty() {
            return Err(StartError::Config("at least one project is needed".into()));
        }
        for (i, p) in config.projects.iter().enumerate() {
            if config.projects[..i]
                .iter()
                .any(|q| q.project.eq_ignore_ascii_case(&p.project))
            {
                return Err(StartError::Config(format!(
                    "project name '{}' is configured twice; data-plane paths /api/projects/{{project}} need unique names",
                    p.project
                )));
            }
        }
        let tls = build_tls(&config)?;
        let http = build_http_client(&config)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{addr}");
        let app = Arc::new(App {
            store: Mutex::new(Store::new(&config.projects)),
            control: Control::new(config.seed, config.max_recorded),
            auth: Authenticator::new(config.auth.clone(), http.clone()),
            gateway: Gateway::new(http, config.project_identity.clone()),
            scheme,
            config,
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, tls, app, rx));
        tracing::info!(%base_url, "Started Foundry emulator");
        Ok(RunningEmulator {
            addr,
            base_url,
            shutdown,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "Failed to accept connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                // A client on this machine: loopback, or one that dialled a local address of ours
                // from that same address (a pod's address never equals the listener's).
                let same_host = remote.ip().is_loopback()
                    || stream.local_addr().is_ok_and(|local| local.ip() == remote.ip());
                let app = app.clone();
                let tls = tls.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    match tls {
                        None => serve_connection(TokioIo::new(stream), remote, same_host, app, shutdown).await,
                        Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => serve_connection(TokioIo::new(s), remote, same_host, app, shutdown).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, %remote, "Rejected TLS handshake"),
                            Err(_) => tracing::debug!(%remote, "Timed out TLS handshake"),
                        },
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Let in-flight requests finish (each connection shuts down gracefully), but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
    tracing::info!("Stopped Foundry emulator");
}

/// Per-connection context handed to every request.
#[derive(Clone, Debug)]
struct ConnCtx {
    id: u64,
    /// Whether the client runs on this machine (the `/_emulator/` API is served to those only).
    same_host: bool,
    drop: Arc<Notify>,
}

async fn serve_connection<I>(
    io: I,
    remote: SocketAddr,
    same_host: bool,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let ctx = ConnCtx {
        id: app.control.next_connection(),
        same_host,
        drop: Arc::new(Notify::new()),
    };
    let drop_signal = ctx.drop.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(app, ctx, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, %remote, "Closed connection with an error");
            }
        }
        // Dropping the connection future closes the socket without an answer.
        _ = drop_signal.notified() => tracing::info!(%remote, "Dropped connection by fault rule"),
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

async fn handle(app: Arc<App>, ctx: ConnCtx, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return control(&app, &ctx, req).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_string();
    let origin = origin_of(&app, &req);
    let (parts, body) = req.into_parts();
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect::<String>());
    let body = match axum::body::to_bytes(Body::new(body), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::data(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            )
            .into_response();
        }
    };
    let routed = route(&method, &path);
    let seq = app.control.next_seq();
    let plane = routed.plane();
    let operation = routed.operation();

    if !app.config.latency.is_zero() {
        tokio::time::sleep(app.config.latency).await;
    }
    let fault = app.control.check_fault(operation, method.as_str(), &path);
    let mut fault_id = None;
    let mut response = None;
    if let Some(action) = fault {
        fault_id = Some(action.rule);
        if !action.latency.is_zero() {
            tokio::time::sleep(action.latency).await;
        }
        match action.outcome {
            FaultOutcome::Continue => {}
            FaultOutcome::Drop => {
                let (request_body, creds) = redact_body(&body);
                app.control.record(RequestRecord {
                    seq,
                    time: rfc3339_millis(unix_millis()),
                    time_unix_ms: unix_millis(),
                    plane: plane.as_str(),
                    operation,
                    method: method.to_string(),
                    path: path.clone(),
                    query,
                    status: None,
                    duration_ms: elapsed_ms(started),
                    connection: ctx.id,
                    user_agent: user_agent.clone(),
                    request_body,
                    credentials_sha256: creds,
                    fault: fault_id,
                    dropped: true,
                });
                tracing::info!(operation, method = %method, path = %path, "Dropped request by fault rule");
                ctx.drop.notify_one();
                return std::future::pending().await;
            }
            FaultOutcome::Status {
                status,
                retry_after_seconds,
                retry_after_ms,
                message,
            } => {
                response = Some(fault_response(
                    plane,
                    status,
                    retry_after_seconds,
                    retry_after_ms,
                    message,
                ));
            }
        }
    }
    let response = match response {
        Some(r) => r,
        None => dispatch(&app, &routed, &parts.headers, &query, &body, &origin, &path).await,
    };
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&new_id("req")) {
        response.headers_mut().insert("x-ms-request-id", v);
    }
    let status = response.status().as_u16();
    let (request_body, creds) = redact_body(&body);
    let now = unix_millis();
    app.control.record(RequestRecord {
        seq,
        time: rfc3339_millis(now),
        time_unix_ms: now,
        plane: plane.as_str(),
        operation,
        method: method.to_string(),
        path: path.clone(),
        query,
        status: Some(status),
        duration_ms: elapsed_ms(started),
        connection: ctx.id,
        user_agent,
        request_body,
        credentials_sha256: creds,
        fault: fault_id,
        dropped: false,
    });
    tracing::info!(operation, method = %method, path = %path, status, "Served request");
    response
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn origin_of(app: &App, req: &Request<Incoming>) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(String::from)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) => format!("{}://{h}", app.scheme),
        None => format!("{}://localhost", app.scheme),
    }
}

fn fault_response(
    plane: Plane,
    status: u16,
    retry_after_seconds: Option<u64>,
    retry_after_ms: Option<u64>,
    message: Option<String>,
) -> Response<Body> {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (arm_code, data_code) = match status {
        408 => ("RequestTimeout", "request_timeout"),
        429 => ("TooManyRequests", "rate_limit_exceeded"),
        500 => ("InternalServerError", "server_error"),
        502 => ("BadGateway", "bad_gateway"),
        503 => ("ServiceUnavailable", "service_unavailable"),
        504 => ("GatewayTimeout", "gateway_timeout"),
        _ => ("InjectedFault", "injected_fault"),
    };
    let message =
        message.unwrap_or_else(|| format!("The emulator injected a fault with status {status}."));
    let mut err = match plane {
        Plane::Arm => ApiError::arm(code, arm_code, message),
        Plane::Data => ApiError::data(code, data_code, message),
    };
    let seconds = retry_after_seconds.or(retry_after_ms.map(|ms| ms.div_ceil(1000)));
    if let Some(s) = seconds.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
        err = err.with_header(header::RETRY_AFTER, s);
    }
    if let Some(ms) = retry_after_ms.and_then(|ms| HeaderValue::from_str(&ms.to_string()).ok()) {
        err = err.with_header(http::HeaderName::from_static("retry-after-ms"), ms.clone());
        err = err.with_header(http::HeaderName::from_static("x-ms-retry-after-ms"), ms);
    }
    err.into_response()
}

/// The alias `_project` of the data-plane path: "to target the default Project in your Hub,
/// use … /api/projects/_project" (SDK 2.10 `AIProjectClient` docs; reference §2.1). An
/// account's default project is the first one it got; here, the first project configured.
/// Project names cannot start with `_`, so the alias never hides a project.
const DEFAULT_PROJECT_ALIAS: &str = "_project";

/// The configured name of the project a data-plane path segment names.
fn data_project_name(store: &mut Store, segment: &str) -> Option<String> {
    if segment == DEFAULT_PROJECT_ALIAS {
        return store.projects.first().map(|p| p.id.project.clone());
    }
    store.data_project(segment).map(|p| p.id.project.clone())
}

async fn dispatch(
    app: &Arc<App>,
    routed: &Route,
    headers: &http::HeaderMap,
    query: &str,
    body: &Bytes,
    origin: &str,
    path: &str,
) -> Response<Body> {
    let plane = routed.plane();
    let result = async {
        match routed {
            Route::Unknown => return Err(ApiError::not_found("The requested resource was not found.")),
            Route::ArmUnknown => {
                return Err(ApiError::arm(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    "The resource type could not be found; the emulator serves Microsoft.CognitiveServices/accounts/projects/connections and Microsoft.CognitiveServices/accounts/connections.",
                ));
            }
            _ => {}
        }
        let caller = app.auth.authenticate(plane, headers).await?;
        let q = query_pairs(query);
        match routed {
            Route::Arm { subscription, resource_group, account, project, connection, op } => {
                let r = arm::ArmRequest {
                    subscription,
                    resource_group,
                    account,
                    project: project.as_deref(),
                    connection: connection.as_deref(),
                    op,
                    query: &q,
                    body,
                    caller: &caller,
                    origin,
                    path,
                    page_size: app.config.arm_page_size,
                };
                arm::handle(&mut app.store(), &r)
            }
            Route::Data { project, op } => {
                if *op == DataOp::NotFound {
                    return Err(ApiError::not_found("The requested resource was not found."));
                }
                if *op == DataOp::MethodNotAllowed {
                    return Err(ApiError::data(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "The HTTP method is not supported for this path."));
                }
                let project_name = data_project_name(&mut app.store(), project)
                    .ok_or_else(|| ApiError::not_found(format!("Project '{project}' not found.")))?;
                match op {
                    DataOp::ResponsesCreate => {
                        return responses::create_response(app, &project_name, body).await;
                    }
                    DataOp::ResponsesGet(id)
                        if q.iter().any(|(k, v)| k == "stream" && v.eq_ignore_ascii_case("true")) =>
                    {
                        return responses::replay(app, &project_name, id, &q);
                    }
                    DataOp::DeploymentsList | DataOp::DeploymentsGet(_) => {
                        return inventory::deployments(app, &project_name, op, &q).await;
                    }
                    _ => {}
                }
                let mut store = app.store();
                if op.is_openai() {
                    openai::handle(&mut store, &project_name, op, &q, body)
                } else if op.is_platform() {
                    inventory::connections(&store, &project_name, op, &q)
                } else {
                    let p = store
                        .data_project(&project_name)
                        .ok_or_else(|| ApiError::not_found(format!("Project '{project}' not found.")))?;
                    let features = headers
                        .get("foundry-features")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    agents::handle(p, op, &q, body, features)
                }
            }
            Route::Unknown | Route::ArmUnknown => Err(ApiError::not_found("The requested resource was not found.")),
        }
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => {
            let mut e = e;
            // Errors take the envelope of the plane they were asked on; the data plane's older
            // platform APIs (connections, deployments) answer in the Azure.Core envelope, which
            // is ARM's (reference §2.6).
            e.plane = match routed {
                Route::Data { op, .. } if op.is_platform() => Plane::Arm,
                _ => plane,
            };
            e.into_response()
        }
    }
}

/// Keys whose values are secrets wherever they appear in a request body.
const SECRET_KEYS: &[&str] = &[
    "credentials",
    "key",
    "clientsecret",
    "client_secret",
    "password",
    "apikey",
    "api_key",
    "token",
    "access_token",
    "refreshtoken",
    "developertoken",
    "secret",
    "secretaccesskey",
];

fn redact_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                    redact_all(child);
                    if child.is_null() {
                        *child = Value::String(REDACTED.into());
                    }
                } else {
                    redact_secrets(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// The recorded form of a request body, and the SHA-256 of its credentials if it had any.
fn redact_body(body: &[u8]) -> (Value, Option<String>) {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (Value::Null, None);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
        // Never keep text we could not inspect: it might hold a secret.
        return (
            json!(format!("<unparsed body of {} bytes>", body.len())),
            None,
        );
    };
    let creds = v
        .pointer("/properties/credentials")
        .filter(|c| !c.is_null())
        .map(|c| sha256_hex(canonical_json(c).as_bytes()));
    redact_secrets(&mut v);
    (v, creds)
}

async fn control(app: &App, ctx: &ConnCtx, req: Request<Incoming>) -> Response<Body> {
    if !ctx.same_host {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({"error": "the /_emulator/ API is served to clients on this machine only"}),
        );
    }
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let q = query_pairs(req.uri().query().unwrap_or_default());
    let get = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let body = axum::body::to_bytes(Body::new(req.into_body()), MAX_BODY)
        .await
        .unwrap_or_default();
    let bad = |msg: String| json_response(StatusCode::BAD_REQUEST, &json!({ "error": msg }));
    match (method, path.as_str()) {
        (Method::GET, "/_emulator/health") => ok_json(&json!({
            "status": "ok",
            "projects": app.config.projects.iter().map(|p| json!({
                "armId": p.arm_id(),
                "project": p.project,
            })).collect::<Vec<_>>(),
        })),
        (Method::GET, "/_emulator/requests") => {
            let since = get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            ok_json(&app.control.requests(get("operation"), get("plane"), since))
        }
        (Method::DELETE, "/_emulator/requests") => {
            app.control.clear_requests();
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, "/_emulator/gateway-calls") => {
            let since = get("since").and_then(|s| s.parse().ok()).unwrap_or(0);
            ok_json(&app.control.gateway_calls(since))
        }
        (Method::DELETE, "/_emulator/gateway-calls") => {
            app.control.clear_gateway_calls();
            empty(StatusCode::NO_CONTENT)
        }
        (Method::GET, "/_emulator/faults") => ok_json(&app.control.faults()),
        (Method::POST, "/_emulator/faults") => match parse_fault_post(&body) {
            Ok((rules, seed)) => match app.control.add_faults(rules, seed) {
                Ok(v) => {
                    tracing::info!("Installed fault rules");
                    ok_json(&v)
                }
                Err(e) => bad(e),
            },
            Err(e) => bad(e),
        },
        (Method::DELETE, "/_emulator/faults") => {
            app.control.clear_faults();
            empty(StatusCode::NO_CONTENT)
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown /_emulator/ endpoint" }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_bodies_hide_credentials_but_hash_them() {
        let body = br#"{"properties":{"category":"ModelGateway","credentials":{"key":"s3cret"},"metadata":{"a":"b"}}}"#;
        let (v, hash) = redact_body(body);
        assert_eq!(v["properties"]["credentials"]["key"], "<redacted>");
        assert_eq!(v["properties"]["metadata"]["a"], "b");
        assert_eq!(hash, Some(sha256_hex(br#"{"key":"s3cret"}"#)));
        assert!(!v.to_string().contains("s3cret"));
        let (v, hash) = redact_body(b"not json s3cret");
        assert!(!v.to_string().contains("s3cret"));
        assert!(hash.is_none());
    }
}
