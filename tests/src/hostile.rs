//! A hostile gateway for cluster tests: an HTTPS server on loopback, with a certificate of the
//! stack's CA (so the operator, started with `--extra-ca-file` of that CA, trusts it), whose
//! behaviour is chosen by the first segment of the path:
//!
//! - `/huge/…`: 200 and a JSON body of [`HUGE_BODY_BYTES`], streamed (never held whole);
//! - `/many/…`: 200 and an OpenAI model list (`{"data":[{"id":"m0"},…]}`) of [`MANY_MODELS`]
//!   models, streamed; `/many/…/models/{id}` answers one model;
//! - `/drip/…`: 200, then one byte per second (at most [`DRIP_BYTES`]);
//! - `/redirect/…`: 302 to the trap, a second listener on another loopback address
//!   (127.0.0.2 when it can be bound, else another port of 127.0.0.1) that only counts its hits;
//! - `/oauth/token`: a valid-looking client-credentials token with `expires_in` of
//!   [`OVERFLOWING_EXPIRES_IN`] (`u64::MAX`);
//! - `/healthy/<label>/…`: a correct OpenAI-compatible gateway: `models`, `models/{id}`,
//!   `chat/completions`.
//!
//! Every hostile body holds [`MARKER`], so a test can assert that no status message, event or log
//! line echoes it. Every request is recorded with its path and the instant it arrived. Only
//! loopback addresses are ever bound or redirected to. Every connection is bounded in time
//! ([`CONNECTION_LIMIT`]), and the server stops when dropped.
//!
//! Everything here panics on failure: it is test support, and a panic is how a test fails.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use foundry_gateway_testbed::pki::{Ca, San};
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Text inside every hostile body; it must never reach a status, an event or a log line.
pub const MARKER: &str = "HOSTILE-BODY-MARKER";
/// Size of the `/huge/` body.
pub const HUGE_BODY_BYTES: usize = 256 * 1024 * 1024;
/// Models in the `/many/` list.
pub const MANY_MODELS: usize = 2_000_000;
/// Most bytes a `/drip/` answer sends, one per second.
pub const DRIP_BYTES: usize = 120;
/// `expires_in` of the `/oauth/token` answer: `u64::MAX` seconds.
pub const OVERFLOWING_EXPIRES_IN: u64 = u64::MAX;
/// The models of a `/healthy/` gateway.
pub const HEALTHY_MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini"];
/// Longest life of one client connection (TLS handshake included); then it is closed.
pub const CONNECTION_LIMIT: Duration = Duration::from_secs(180);

/// Chunk size of the streamed bodies.
const CHUNK_BYTES: usize = 64 * 1024;
/// Models per chunk of the `/many/` list.
const MODELS_PER_CHUNK: usize = 4096;
/// Requests remembered (so a runaway client cannot grow the log without bound).
const MAX_RECORDED: usize = 100_000;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the hostile gateway received.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Its path, without the query.
    pub path: String,
    /// When its head arrived.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Recorder {
    hits: Mutex<Vec<Hit>>,
    trap_connections: AtomicUsize,
}

impl Recorder {
    fn record(&self, path: &str) {
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() < MAX_RECORDED {
            hits.push(Hit {
                path: path.to_owned(),
                at: Instant::now(),
            });
        }
    }
}

/// The running hostile gateway; dropping it stops both listeners and every open connection.
#[allow(missing_debug_implementations)]
pub struct HostileGateway {
    base_url: String,
    trap_url: String,
    recorder: Arc<Recorder>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HostileGateway {
    /// Issues a certificate for 127.0.0.1 and 127.0.0.2 from `ca` into `dir` and starts both
    /// listeners on a runtime of their own (so a test that blocks its own runtime, or reads a
    /// huge answer, never stalls the server).
    pub fn start(ca: &Ca, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("hostile gateway dir");
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let second = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let pair = ca
            .issue_server_cert(
                dir,
                "hostile-gateway",
                "hostile-gateway",
                &[San::Ip(localhost), San::Ip(second)],
            )
            .expect("a certificate for the hostile gateway");
        let acceptor = tls_acceptor(
            &std::fs::read(&pair.cert).expect("hostile certificate"),
            &std::fs::read(&pair.key).expect("hostile key"),
        );
        let main = StdListener::bind(SocketAddr::new(localhost, 0)).expect("bind 127.0.0.1");
        let trap = StdListener::bind(SocketAddr::new(second, 0))
            .or_else(|_| StdListener::bind(SocketAddr::new(localhost, 0)))
            .expect("bind the trap listener");
        for listener in [&main, &trap] {
            listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
        }
        let base_url = format!("https://{}", main.local_addr().expect("address"));
        let trap_url = format!("https://{}", trap.local_addr().expect("address"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hostile-gateway")
            .enable_all()
            .build()
            .expect("a runtime for the hostile gateway");
        let recorder = Arc::new(Recorder::default());
        let behaviour = Arc::new(Behaviour {
            trap_url: trap_url.clone(),
            recorder: recorder.clone(),
        });
        runtime.spawn(serve(main, acceptor.clone(), move |request| {
            let behaviour = behaviour.clone();
            async move { behaviour.answer(request).await }
        }));
        let trap_recorder = recorder.clone();
        runtime.spawn(serve(trap, acceptor, move |_request| {
            trap_recorder
                .trap_connections
                .fetch_add(1, Ordering::Relaxed);
            async { json_response(StatusCode::OK, &json!({"data": [{"id": "stolen"}]})) }
        }));
        Self {
            base_url,
            trap_url,
            recorder,
            runtime: Some(runtime),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `https://127.0.0.2:PORT` (or another port of 127.0.0.1): where `/redirect/` points.
    pub fn trap_url(&self) -> &str {
        &self.trap_url
    }

    /// Requests the trap received (it must receive none).
    pub fn trap_hits(&self) -> usize {
        self.recorder.trap_connections.load(Ordering::Relaxed)
    }

    /// Every request so far, oldest first.
    pub fn hits(&self) -> Vec<Hit> {
        self.recorder
            .hits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Arrival instants of the requests whose path starts with `prefix`, oldest first.
    pub fn hit_times(&self, prefix: &str) -> Vec<Instant> {
        self.hits()
            .into_iter()
            .filter(|h| h.path.starts_with(prefix))
            .map(|h| h.at)
            .collect()
    }

    /// How many requests each path received.
    pub fn hits_per_path(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for hit in self.hits() {
            *counts.entry(hit.path).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for HostileGateway {
    fn drop(&mut self) {
        // Not a plain drop: that blocks, and a test may drop the gateway inside its runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> TlsAcceptor {
    let certs = rustls_pemfile::certs(&mut &cert_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .expect("certificate PEM");
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .expect("key PEM")
        .expect("a private key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("TLS certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// Accepts connections until the runtime stops; each one is served over HTTP/1.1 for at most
/// [`CONNECTION_LIMIT`].
async fn serve<F, Fut>(listener: StdListener, acceptor: TlsAcceptor, answer: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::from_std(listener).expect("a tokio listener");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let answer = answer.clone();
        tokio::spawn(tokio::time::timeout(CONNECTION_LIMIT, async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            else {
                return;
            };
            let service = service_fn(move |request| {
                let answer = answer.clone();
                async move { Ok::<_, Infallible>(answer(request).await) }
            });
            // A client that hangs up mid-body is what hostile answers expect: ignore the error.
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }));
    }
}

struct Behaviour {
    trap_url: String,
    recorder: Arc<Recorder>,
}

impl Behaviour {
    async fn answer(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        self.recorder.record(&path);
        let mut segments = path.trim_start_matches('/').splitn(2, '/');
        let behaviour = segments.next().unwrap_or_default();
        let rest = segments.next().unwrap_or_default();
        match behaviour {
            "huge" => stream_response(huge_body()),
            "many" => match model_id(rest) {
                Some(id) => json_response(
                    StatusCode::OK,
                    &json!({"id": id, "object": "model", "owned_by": MARKER}),
                ),
                None => stream_response(many_models_body()),
            },
            "drip" => stream_response(drip_body()),
            "redirect" => Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, format!("{}/stolen/{rest}", self.trap_url))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    json!({"error": {"message": format!("{MARKER}: moved to the trap")}})
                        .to_string(),
                ))
                .expect("a redirect"),
            "oauth" if rest == "token" => json_response(
                StatusCode::OK,
                &json!({
                    "access_token": "hostile-access-token",
                    "token_type": "Bearer",
                    "expires_in": OVERFLOWING_EXPIRES_IN,
                    "ext_expires_in": OVERFLOWING_EXPIRES_IN,
                    "note": MARKER,
                }),
            ),
            "healthy" => healthy(request.method(), rest),
            _ => json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": {"message": format!("{MARKER}: no such behaviour")}}),
            ),
        }
    }
}

/// The id in `…/models/{id}`, if the path asks for one model.
fn model_id(rest: &str) -> Option<&str> {
    let (_, id) = rest.rsplit_once("models/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// A correct OpenAI-compatible gateway below `/healthy/<label>/`.
fn healthy(method: &Method, rest: &str) -> Response<Body> {
    let (_, route) = rest.split_once('/').unwrap_or(("", rest));
    match (method, route) {
        (&Method::GET, "models") => json_response(
            StatusCode::OK,
            &json!({
                "object": "list",
                "data": HEALTHY_MODELS.iter()
                    .map(|id| json!({"id": id, "object": "model", "owned_by": "healthy"}))
                    .collect::<Vec<_>>(),
            }),
        ),
        (&Method::GET, _) if model_id(route).is_some_and(|id| HEALTHY_MODELS.contains(&id)) => {
            json_response(
                StatusCode::OK,
                &json!({"id": model_id(route), "object": "model", "owned_by": "healthy"}),
            )
        }
        (&Method::POST, "chat/completions") => json_response(
            StatusCode::OK,
            &json!({
                "id": "chatcmpl-healthy",
                "object": "chat.completion",
                "model": HEALTHY_MODELS[0],
                "choices": [{"index": 0, "finish_reason": "length",
                    "message": {"role": "assistant", "content": "ok"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": "model_not_found", "message": "not found"}}),
        ),
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a JSON response")
}

/// 200 with a chunked body (no Content-Length: the reader learns the size only by reading).
fn stream_response(body: Body) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("a streamed response")
}

/// `{"object":"list","data":[{"id":"m0","note":"<MARKER MARKER …>"}]}` of at least
/// [`HUGE_BODY_BYTES`]: valid JSON, one model, one enormous string. One chunk is shared by
/// reference, so the server holds 64 KiB whatever the client reads.
fn huge_body() -> Body {
    let unit = format!("{MARKER} ");
    let filler = Bytes::from(unit.repeat(CHUNK_BYTES.div_ceil(unit.len())));
    let chunks = HUGE_BODY_BYTES.div_ceil(filler.len());
    let parts = std::iter::once(Bytes::from_static(
        br#"{"object":"list","data":[{"id":"m0","note":""#,
    ))
    .chain(std::iter::repeat_n(filler, chunks))
    .chain(std::iter::once(Bytes::from_static(br#""}]}"#)))
    .map(Ok::<_, Infallible>);
    Body::from_stream(futures::stream::iter(parts))
}

/// `{"object":"list","note":"<MARKER>","data":[{"id":"m0","object":"model"},…]}` with
/// [`MANY_MODELS`] models, made one chunk at a time.
fn many_models_body() -> Body {
    let head = format!(r#"{{"object":"list","note":"{MARKER}","data":["#);
    let chunks = (0..MANY_MODELS.div_ceil(MODELS_PER_CHUNK)).map(|chunk| {
        let first = chunk * MODELS_PER_CHUNK;
        let mut text = String::with_capacity(MODELS_PER_CHUNK * 32);
        for i in first..(first + MODELS_PER_CHUNK).min(MANY_MODELS) {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, r#"{{"id":"m{i}","object":"model"}}"#);
        }
        Bytes::from(text)
    });
    let parts = std::iter::once(Bytes::from(head))
        .chain(chunks)
        .chain(std::iter::once(Bytes::from_static(b"]}")))
        .map(Ok::<_, Infallible>);
    Body::from_stream(futures::stream::iter(parts))
}

/// The start of a model list, one byte per second, never finished within [`DRIP_BYTES`] s.
fn drip_body() -> Body {
    let text: Bytes = format!(r#"{{"object":"list","note":"{MARKER}","data":[{{"id":"{MARKER}"#)
        .into_bytes()
        .into();
    let bytes = futures::stream::unfold(0usize, move |sent| {
        let text = text.clone();
        async move {
            if sent >= DRIP_BYTES {
                return None;
            }
            if sent > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let at = sent % text.len();
            Some((Ok::<_, Infallible>(text.slice(at..=at)), sent + 1))
        }
    });
    Body::from_stream(bytes)
}

#[cfg(test)]
mod tests {
    use super::model_id;

    #[test]
    fn model_ids_are_the_last_segment_after_models() {
        assert_eq!(model_id("x/models/gpt-4o"), Some("gpt-4o"));
        assert_eq!(model_id("models/m7"), Some("m7"));
        assert_eq!(model_id("x/models"), None);
        assert_eq!(model_id("x/models/"), None);
        assert_eq!(model_id("x/models/a/b"), None);
    }
}
