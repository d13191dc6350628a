//! Request pipeline shared by the ARM and data-plane clients: bearer token, timeout, shallow
//! retries for idempotent calls, tracing span and metrics observer.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use rand::Rng;
use tracing::Instrument;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::transport::{BodyError, Transport};

/// Shallow in-process retries. Only idempotent calls (GET, PUT, DELETE) are retried; POSTs
/// (creating an agent version, a response) are sent once.
#[derive(Clone, Debug)]
pub struct RetryOptions {
    /// Attempts in total, including the first (default 3; 1 disables retries).
    pub max_attempts: u32,
    /// Backoff before the second attempt (default 500 ms); doubles each attempt, with jitter.
    pub initial_delay: Duration,
    /// Largest computed backoff (default 8 s).
    pub max_delay: Duration,
    /// A server retry hint longer than this is not waited for in-process: the error is returned
    /// at once (carrying the hint) so the caller can requeue the object (default 30 s).
    pub max_retry_after: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryOptions {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt` (1-based) failed: the
    /// exponential backoff with jitter (`jitter` in `[0, 1]` picks a point in the upper half of
    /// the backoff), and never less than the server's hint.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = self
            .initial_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let base = exp.min(self.max_delay);
        let jitter = if jitter.is_nan() {
            1.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        // `mul_f64` panics on overflow; the factor is within [0.5, 1], so this cannot grow.
        let backoff =
            Duration::try_from_secs_f64(base.as_secs_f64() * (0.5 + 0.5 * jitter)).unwrap_or(base);
        match retry_after {
            Some(hint) => backoff.max(hint),
            None => backoff,
        }
    }
}

/// What one HTTP attempt did, for metrics. Contains no URL, header or body.
#[derive(Clone, Debug)]
pub struct CallRecord {
    /// `ConnectionsClient`, `ProjectClient` or `Prober`.
    pub client: &'static str,
    /// The REST operation, e.g. `ProjectConnections_CreateOrUpdate`, `Agents_CreateVersion`,
    /// `Gateway_ChatCompletion`.
    pub operation: &'static str,
    /// HTTP method.
    pub method: Method,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// `Ok` or the error's [`Error::label`].
    pub outcome: &'static str,
    /// Time spent on this attempt (token acquisition included).
    pub duration: Duration,
    /// 1-based attempt number.
    pub attempt: u32,
    /// True when another attempt follows; false on the last attempt of a call, so counting
    /// records with `will_retry == false` counts calls.
    pub will_retry: bool,
}

/// A metrics hook, called once per HTTP attempt.
pub type Observer = Arc<dyn Fn(&CallRecord) + Send + Sync>;

/// Options common to [`crate::ConnectionsClient`] and [`crate::ProjectClient`].
#[derive(Clone)]
pub struct ClientOptions {
    /// The HTTP transport (share one per process). `None` builds a default one.
    pub transport: Option<Transport>,
    /// Timeout of one attempt, token acquisition excluded (default 30 s).
    pub timeout: Duration,
    /// In-process retries of idempotent calls.
    pub retry: RetryOptions,
    /// Metrics hook.
    pub observer: Option<Observer>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            transport: None,
            timeout: Duration::from_secs(30),
            retry: RetryOptions::default(),
            observer: None,
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("transport", &self.transport)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field(
                "observer",
                &self.observer.as_ref().map(|_| "Fn(&CallRecord)"),
            )
            .finish()
    }
}

/// A successful response, body read whole (at most the transport's body cap).
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    #[allow(dead_code)]
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub(crate) fn json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &'static str,
    ) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::InvalidResponse,
                operation,
                format!("the response body is not the expected JSON: {e}"),
            )
            .with_status(Some(self.status.as_u16()))
        })
    }
}

pub(crate) struct Pipeline {
    client_name: &'static str,
    transport: Transport,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    options: ClientOptions,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("client", &self.client_name)
            .field("scope", &self.scope)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

pub(crate) fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::PUT | Method::DELETE | Method::HEAD
    )
}

impl Pipeline {
    pub(crate) fn new(
        client_name: &'static str,
        credential: Arc<dyn TokenCredential>,
        scope: &str,
        options: ClientOptions,
    ) -> Result<Self> {
        let transport = match &options.transport {
            Some(t) => t.clone(),
            None => Transport::default_transport()?,
        };
        Ok(Self {
            client_name,
            transport,
            credential,
            scope: scope.to_owned(),
            options,
        })
    }

    /// Send a request; non-2xx answers become errors (callers map 404 where it means "absent").
    pub(crate) async fn send(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Response> {
        let span = tracing::info_span!(
            "foundry_call",
            client = self.client_name,
            operation,
            method = %method,
            path = url.path(),
            status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let body = body.map(Bytes::from);
        let result = if self.transport.is_denied(&url) {
            Err(Error::invalid_input(
                operation,
                format!(
                    "the address of {} is not allowed by the operator's network policy",
                    url.host_str().unwrap_or_default()
                ),
            ))
        } else {
            self.send_with_retries(operation, &method, &url, body)
                .instrument(span.clone())
                .await
        };
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        match &result {
            Ok((r, attempts)) => {
                span.record("status", r.status.as_u16());
                span.record("attempts", attempts);
            }
            Err(e) => {
                if let Some(s) = e.status() {
                    span.record("status", s);
                }
                span.in_scope(|| {
                    tracing::debug!(error = %e, label = e.label(), "Call failed");
                });
            }
        }
        result.map(|(r, _)| r)
    }

    async fn send_with_retries(
        &self,
        operation: &'static str,
        method: &Method,
        url: &Url,
        body: Option<Bytes>,
    ) -> Result<(Response, u32)> {
        let retry = &self.options.retry;
        let max_attempts = if is_idempotent(method) {
            retry.max_attempts.max(1)
        } else {
            1
        };
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let started = Instant::now();
            let result = self.attempt(operation, method, url, body.clone()).await;
            let (status, outcome) = match &result {
                Ok(r) => (Some(r.status.as_u16()), "Ok"),
                Err(e) => (e.status(), e.label()),
            };
            let delay = match &result {
                Err(e) if e.is_retryable() && attempt < max_attempts => {
                    let hint = e.retry_after();
                    if hint.is_some_and(|h| h > retry.max_retry_after) {
                        None
                    } else {
                        Some(retry.delay(attempt, hint, rand::rng().random::<f64>()))
                    }
                }
                _ => None,
            };
            if let Some(observer) = &self.options.observer {
                observer(&CallRecord {
                    client: self.client_name,
                    operation,
                    method: method.clone(),
                    status,
                    outcome,
                    duration: started.elapsed(),
                    attempt,
                    will_retry: delay.is_some(),
                });
            }
            match (result, delay) {
                (Ok(r), _) => return Ok((r, attempt)),
                (Err(e), None) => return Err(e),
                (Err(e), Some(d)) => {
                    tracing::debug!(attempt, delay_ms = d.as_millis() as u64, error = %e, "Scheduled a retry");
                    tokio::time::sleep(d).await;
                }
            }
        }
    }

    async fn attempt(
        &self,
        operation: &'static str,
        method: &Method,
        url: &Url,
        body: Option<Bytes>,
    ) -> Result<Response> {
        let token = self
            .credential
            .get_token(&[self.scope.as_str()], None)
            .await
            .map_err(|e| Error::from_credential(operation, e))?;
        let mut req = self
            .transport
            .reqwest()
            .request(method.clone(), url.clone())
            .timeout(self.options.timeout)
            .bearer_auth(token.token.secret())
            .header(http::header::ACCEPT, "application/json")
            .header("x-ms-client-request-id", request_id());
        if let Some(body) = body {
            req = req
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let rsp = req
            .send()
            .await
            .map_err(|e| Error::from_reqwest(operation, e))?;
        let status = rsp.status();
        let headers = rsp.headers().clone();
        let body = self.transport.read_body(rsp).await.map_err(|e| {
            match e {
                BodyError::TooLarge { limit } => Error::new(
                    ErrorKind::InvalidResponse,
                    operation,
                    BodyError::too_large_message(limit),
                ),
                BodyError::Read(e) => Error::from_reqwest(operation, e),
            }
            .with_status(Some(status.as_u16()))
        })?;
        if status.is_success() {
            Ok(Response {
                status,
                headers,
                body,
            })
        } else {
            Err(Error::from_response(
                operation,
                status.as_u16(),
                &headers,
                &body,
            ))
        }
    }
}

fn request_id() -> String {
    let b: [u8; 16] = rand::rng().random();
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        // UUID layout: 8-4-4-4-12 hex digits.
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push_str(&format!("{x:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RetryOptions::default();
        assert_eq!(r.delay(1, None, 1.0), Duration::from_millis(500));
        assert_eq!(r.delay(2, None, 1.0), Duration::from_secs(1));
        assert_eq!(r.delay(3, None, 1.0), Duration::from_secs(2));
        assert_eq!(r.delay(10, None, 1.0), Duration::from_secs(8));
        assert_eq!(r.delay(1, None, 0.0), Duration::from_millis(250));
        assert_eq!(r.delay(40, None, 0.5), Duration::from_secs(6));
    }

    #[test]
    fn backoff_never_undercuts_the_server_hint() {
        let r = RetryOptions::default();
        for j in [0.0, 0.3, 1.0] {
            assert!(r.delay(1, Some(Duration::from_secs(2)), j) >= Duration::from_secs(2));
        }
        assert_eq!(
            r.delay(4, Some(Duration::from_millis(10)), 1.0),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn only_idempotent_methods_retry() {
        assert!(is_idempotent(&Method::GET));
        assert!(is_idempotent(&Method::PUT));
        assert!(is_idempotent(&Method::DELETE));
        assert!(!is_idempotent(&Method::POST));
        assert!(!is_idempotent(&Method::PATCH));
    }

    #[test]
    fn request_ids_look_like_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
