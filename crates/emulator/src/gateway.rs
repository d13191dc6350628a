//! Outgoing calls to a connection's gateway, the way Foundry makes them (reference §3, and §5
//! for what the samples' validation scripts send: the URL, body keys and headers):
//! discovery, chat completions, and the tokens those calls need.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use url::Url;

use crate::config::ProjectIdentity;
use crate::connection::{
    Discovery, GatewayAuth, GatewayMetadata, discovery_get_url, discovery_list_url, inference_url,
    parse_model_get, parse_model_list,
};
use crate::control::{Control, GatewayCallRecord};
use crate::errors::ApiError;
use crate::util::{REDACTED, rfc3339_millis, sha256_hex, unix_millis};

mod stream;
pub(crate) use stream::ChatStream;

/// What went wrong resolving `<connection>/<model>` or calling a gateway, for an agent's model
/// or a model named in the request alike, and what the emulator answers for it
/// (`POST /openai/v1/responses`, data-plane envelope
/// `{"error": {"code", "message", "param", "type", ...}}` plus header `x-ms-error-code`):
///
/// | Case | HTTP | `error.code` |
/// | --- | --- | --- |
/// | no connection of that name in the project or its account | 404 | `connection_not_found` |
/// | the model is not among the connection's models (static list, discovery list and get-by-name), the gateway answered the chat completion 404, or 400 naming `DeploymentNotFound`/`model_not_found` | 404 | `model_not_found` |
/// | the gateway (or the token endpoint of the connection's OAuth2 client or of the project identity) refused the credentials: 401/403 (token endpoint: 400/401/403) | 502 | `gateway_unauthorized` |
/// | no TCP connection or no HTTP answer (refused, DNS, reset) | 502 | `gateway_unreachable` |
/// | TLS failed (untrusted or invalid certificate, handshake) | 502 | `gateway_tls_error` |
/// | no answer within the gateway timeout | 504 | `gateway_timeout` |
/// | the gateway answered 429 | 429 | `gateway_rate_limited` |
/// | any other answer that cannot be used: other 4xx, 5xx, no JSON, no `choices`, a discovery body of the wrong shape, a token answer without `access_token` | 502 | `gateway_bad_response` |
/// | the connection cannot be used to call a gateway (bad target, metadata or credentials, an auth type without a gateway form, no project identity configured) | 502 | `gateway_error` |
///
/// No source documents Foundry's codes for these cases (reference §2.6, §3.3 only say "model
/// not found" for a wrong model and 401 for credentials) [I]: the codes are ours, chosen so a
/// client can tell the cases apart from `error.code` alone; messages name the URL and the
/// gateway's own words, never a credential.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GatewayError {
    #[error("{0}")]
    ConnectionNotFound(String),
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    BadResponse(String),
    #[error("{0}")]
    Failed(String),
}

impl GatewayError {
    pub(crate) fn into_api_error(self) -> ApiError {
        let (status, code, message, param) = match self {
            Self::ConnectionNotFound(m) => (
                StatusCode::NOT_FOUND,
                "connection_not_found",
                m,
                Some("model"),
            ),
            Self::ModelNotFound(m) => (StatusCode::NOT_FOUND, "model_not_found", m, Some("model")),
            Self::Unauthorized(m) => (StatusCode::BAD_GATEWAY, "gateway_unauthorized", m, None),
            Self::Unreachable(m) => (StatusCode::BAD_GATEWAY, "gateway_unreachable", m, None),
            Self::Tls(m) => (StatusCode::BAD_GATEWAY, "gateway_tls_error", m, None),
            Self::Timeout(m) => (StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", m, None),
            Self::RateLimited(m) => (
                StatusCode::TOO_MANY_REQUESTS,
                "gateway_rate_limited",
                m,
                None,
            ),
            Self::BadResponse(m) => (StatusCode::BAD_GATEWAY, "gateway_bad_response", m, None),
            Self::Failed(m) => (StatusCode::BAD_GATEWAY, "gateway_error", m, None),
        };
        let mut e = ApiError::data(status, code, message);
        e.param = param.map(String::from);
        e
    }

    /// The error of a request that got no HTTP answer: timed out, TLS failed, or no connection.
    pub(crate) fn from_send(message: String, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout(message)
        } else if is_tls_failure(e) {
            Self::Tls(message)
        } else {
            Self::Unreachable(message)
        }
    }
}

/// Whether a failed request failed in TLS: a rustls error somewhere in its chain (`io::Error`
/// hides its inner error from `source()`, so look inside those too), or words only TLS uses.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        next = err.source();
    }
    let text = error_chain(e).to_ascii_lowercase();
    [
        "certificate",
        "tls handshake",
        "handshake failure",
        "unknownissuer",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// One connection, ready to be called.
#[derive(Debug, Clone)]
pub(crate) struct CallTarget {
    pub(crate) project: String,
    pub(crate) connection: String,
    pub(crate) target: Url,
    pub(crate) meta: GatewayMetadata,
    pub(crate) auth: GatewayAuth,
    /// Credential strings to scrub from any message that leaves the emulator.
    pub(crate) secrets: Vec<String>,
}

impl CallTarget {
    /// Replaces credentials and custom header values (often read from Secrets) in a message.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let headers = self.meta.custom_headers.iter().map(|(_, v)| v);
        for s in self.secrets.iter().chain(headers.filter(|v| v.len() >= 4)) {
            out = out.replace(s.as_str(), REDACTED);
        }
        out
    }
}

#[derive(Debug, Clone)]
struct CachedToken {
    token: String,
    expires: Instant,
}

/// Makes gateway calls and caches the tokens they need.
#[derive(Debug)]
pub(crate) struct Gateway {
    http: reqwest::Client,
    identity: ProjectIdentity,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

struct Reply {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Gateway {
    pub(crate) fn new(http: reqwest::Client, identity: ProjectIdentity) -> Self {
        Self {
            http,
            identity,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The auth header to send, as (name, value).
    async fn auth_header(
        &self,
        t: &CallTarget,
        control: &Control,
    ) -> Result<Option<(String, String)>, GatewayError> {
        match &t.auth {
            GatewayAuth::None => Ok(None),
            GatewayAuth::ApiKey { header, value } => Ok(Some((header.clone(), value.clone()))),
            GatewayAuth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scopes,
            } => {
                let key = format!(
                    "oauth2|{token_url}|{client_id}|{}|{}",
                    sha256_hex(client_secret.as_bytes()),
                    scopes.join(" ")
                );
                let token = self
                    .client_credentials(
                        t,
                        control,
                        &key,
                        token_url,
                        client_id,
                        client_secret,
                        &scopes.join(" "),
                    )
                    .await?;
                Ok(Some(("Authorization".into(), format!("Bearer {token}"))))
            }
            GatewayAuth::ProjectIdentity { audience } => {
                let token = match &self.identity {
                    ProjectIdentity::StaticToken(tok) => tok.clone(),
                    ProjectIdentity::ClientCredentials {
                        token_url,
                        client_id,
                        client_secret,
                        project_clients,
                    } => {
                        // Each project has its own identity; a gateway may check which (APIM's
                        // `xms_mirid` check, reference §3.1). An account connection used by a
                        // project gets that project's identity.
                        let (client_id, client_secret) = project_clients
                            .iter()
                            .find(|(project, _)| project.eq_ignore_ascii_case(&t.project))
                            .map_or((client_id, client_secret), |(_, c)| {
                                (&c.client_id, &c.client_secret)
                            });
                        let scope = format!("{}/.default", audience.trim_end_matches('/'));
                        let key = format!("entra|{token_url}|{client_id}|{scope}");
                        self.client_credentials(
                            t,
                            control,
                            &key,
                            token_url,
                            client_id,
                            client_secret,
                            &scope,
                        )
                        .await?
                    }
                    ProjectIdentity::None => {
                        return Err(GatewayError::Failed(format!(
                            "connection '{}' uses the project managed identity, but the emulator has no project identity: start it with --entra-token-url or --project-identity-token",
                            t.connection
                        )));
                    }
                };
                Ok(Some(("Authorization".into(), format!("Bearer {token}"))))
            }
        }
    }

    /// A client-credentials token, cached until shortly before it expires.
    #[allow(clippy::too_many_arguments)]
    async fn client_credentials(
        &self,
        t: &CallTarget,
        control: &Control,
        key: &str,
        token_url: &str,
        client_id: &str,
        client_secret: &str,
        scope: &str,
    ) -> Result<String, GatewayError> {
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get(key)
            && c.expires > Instant::now()
        {
            return Ok(c.token.clone());
        }
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", client_secret);
            if !scope.is_empty() {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        // Only the form's Content-Type, as the ModelGateway script sends (reqwest adds
        // `Accept: */*`, as Python's `requests` does).
        let started = Instant::now();
        let result = self
            .http
            .post(token_url)
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(form)
            .send()
            .await;
        let mut record = call_record(t, "token", "POST", token_url);
        record.header_names = vec!["Content-Type".into()];
        record
            .headers
            .insert("Content-Type".into(), json!(FORM_CONTENT_TYPE));
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let msg = t.scrub(&format!(
                    "token request to {token_url} failed: {}",
                    error_chain(&e)
                ));
                record.error = Some(msg.clone());
                record.duration_ms = elapsed_ms(started);
                control.record_gateway_call(record);
                return Err(GatewayError::from_send(msg, &e));
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        record.status = Some(status.as_u16());
        record.duration_ms = elapsed_ms(started);
        control.record_gateway_call(record);
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body
                .get("error_description")
                .or_else(|| body.get("error"))
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_else(|| truncate(&text, 300));
            let message = t.scrub(&format!(
                "token request to {token_url} returned HTTP {}: {detail}",
                status.as_u16()
            ));
            // RFC 6749 §5.2: a refused client is 400 or 401 (`invalid_client`,
            // `unauthorized_client`, `invalid_grant`, `invalid_scope`).
            return Err(match status.as_u16() {
                400 | 401 | 403 => GatewayError::Unauthorized(message),
                429 => GatewayError::RateLimited(message),
                _ => GatewayError::BadResponse(message),
            });
        }
        let Some(token) = body.get("access_token").and_then(Value::as_str) else {
            return Err(GatewayError::BadResponse(format!(
                "token response from {token_url} has no access_token"
            )));
        };
        let lifetime = match body.get("expires_in") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        let margin = (lifetime / 2).min(60);
        tokens.insert(
            key.to_string(),
            CachedToken {
                token: token.to_string(),
                expires: Instant::now() + Duration::from_secs(lifetime.saturating_sub(margin)),
            },
        );
        Ok(token.to_string())
    }

    /// A gateway call ready to send, and its call-log record: the request with the headers of
    /// [`gateway_headers`] and, for a `POST`, the JSON body.
    async fn prepare(
        &self,
        t: &CallTarget,
        control: &Control,
        kind: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::RequestBuilder, GatewayCallRecord), GatewayError> {
        let auth = self.auth_header(t, control).await?;
        let headers = gateway_headers(auth.as_ref(), &t.meta.custom_headers).map_err(|e| {
            GatewayError::Failed(format!(
                "connection '{}' cannot call its gateway: {e}",
                t.connection
            ))
        })?;
        let mut record = call_record(t, kind, method.as_str(), url);
        (record.header_names, record.headers) =
            logged_headers(auth.as_ref(), &t.meta.custom_headers);
        let mut req = self.http.request(method, url).headers(headers);
        if let Some(b) = body {
            req = req.body(b.to_string());
            record.request_body = b.clone();
        }
        Ok((req, record))
    }

    async fn send(
        &self,
        t: &CallTarget,
        control: &Control,
        kind: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GatewayError> {
        let (req, mut record) = self.prepare(t, control, kind, method, url, body).await?;
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(send_failed(t, control, record, started, &e)),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        record.status = Some(status.as_u16());
        record.duration_ms = elapsed_ms(started);
        control.record_gateway_call(record);
        tracing::info!(connection = %t.connection, kind, status = status.as_u16(), "Called gateway");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, body, text })
    }

    /// The error for a non-2xx answer to `what` ([`CHAT_COMPLETION`] for inference).
    fn upstream_error(t: &CallTarget, what: &str, url: &str, reply: &Reply) -> GatewayError {
        let detail = error_message(&reply.body).unwrap_or_else(|| truncate(&reply.text, 300));
        let message = t.scrub(&format!(
            "the gateway of connection '{}' answered {what} at {url} with HTTP {} {}: {detail}",
            t.connection,
            reply.status.as_u16(),
            reply.status.canonical_reason().unwrap_or_default()
        ));
        let inference = what == CHAT_COMPLETION;
        match reply.status.as_u16() {
            401 | 403 => GatewayError::Unauthorized(message),
            429 => GatewayError::RateLimited(message),
            // What the samples' validation scripts report as "deployment not found"
            // (reference §5), and what OpenAI-style gateways say for an unknown model.
            404 if inference => GatewayError::ModelNotFound(message),
            400 if inference && names_a_missing_model(&reply.body) => {
                GatewayError::ModelNotFound(message)
            }
            _ => GatewayError::BadResponse(message),
        }
    }

    /// Deployment names from the list endpoint.
    pub(crate) async fn list_models(
        &self,
        t: &CallTarget,
        d: &Discovery,
        control: &Control,
    ) -> Result<Vec<String>, GatewayError> {
        let url = discovery_list_url(&t.target, &t.meta, d);
        let reply = self
            .send(
                t,
                control,
                "discovery-list",
                reqwest::Method::GET,
                &url,
                None,
            )
            .await?;
        if !reply.status.is_success() {
            return Err(Self::upstream_error(t, "model discovery", &url, &reply));
        }
        parse_model_list(d.provider, &reply.body).map_err(|e| {
            GatewayError::BadResponse(format!(
                "model discovery of connection '{}' at {url} returned an unexpected body: {e}",
                t.connection
            ))
        })
    }

    /// Whether the get-by-name endpoint knows the deployment.
    pub(crate) async fn get_model(
        &self,
        t: &CallTarget,
        d: &Discovery,
        deployment: &str,
        control: &Control,
    ) -> Result<bool, GatewayError> {
        let url = discovery_get_url(&t.target, &t.meta, d, deployment);
        let reply = self
            .send(
                t,
                control,
                "discovery-get",
                reqwest::Method::GET,
                &url,
                None,
            )
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !reply.status.is_success() {
            return Err(Self::upstream_error(t, "model lookup", &url, &reply));
        }
        Ok(parse_model_get(d.provider, &reply.body).is_some_and(|n| n == deployment))
    }

    /// Sends a chat completion and returns the gateway's JSON answer.
    pub(crate) async fn chat(
        &self,
        t: &CallTarget,
        deployment: &str,
        body: &Value,
        control: &Control,
    ) -> Result<Value, GatewayError> {
        let url = inference_url(&t.target, &t.meta, deployment);
        let reply = self
            .send(
                t,
                control,
                "inference",
                reqwest::Method::POST,
                &url,
                Some(body),
            )
            .await?;
        if !reply.status.is_success() {
            return Err(Self::upstream_error(t, CHAT_COMPLETION, &url, &reply));
        }
        if reply
            .body
            .get("choices")
            .and_then(Value::as_array)
            .is_none()
        {
            return Err(GatewayError::BadResponse(t.scrub(&format!(
                "the gateway of connection '{}' answered the chat completion at {url} without 'choices': {}",
                t.connection,
                truncate(&reply.text, 300)
            ))));
        }
        Ok(reply.body)
    }
}

/// What [`Gateway::upstream_error`] is told for an inference call.
pub(crate) const CHAT_COMPLETION: &str = "the chat completion";

/// Whether an error body names a missing deployment or model (`DeploymentNotFound`,
/// `model_not_found`, ...), in its code or message.
fn names_a_missing_model(body: &Value) -> bool {
    let e = body.get("error");
    let texts = [
        e.and_then(|e| e.get("code")),
        e.and_then(|e| e.get("message")),
        e.filter(|e| e.is_string()),
    ];
    texts
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|t| {
            let t = t.to_ascii_lowercase().replace(['_', ' '], "");
            t.contains("deploymentnotfound") || t.contains("modelnotfound")
        })
}

/// `Content-Type` of a client-credentials token request.
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The headers of every gateway call, discovery `GET`s included, in the order the samples'
/// validation scripts send them (reference §5): `Content-Type: application/json` (the scripts
/// build one header dictionary for all their calls), then the auth header, then the custom
/// headers, each replacing an earlier header of the same name as the scripts'
/// `headers.update(custom_headers)` does (reqwest's `.header()` would send both). No `Accept`:
/// reqwest sends `*/*`, as Python's `requests` does. `Err` names the header that cannot be
/// sent, never its value.
fn gateway_headers(
    auth: Option<&(String, String)>,
    custom_headers: &[(String, String)],
) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in auth.into_iter().chain(custom_headers) {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("'{name}' is not a valid header name"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header '{name}' is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The headers of a gateway call as the call log shows them: the names of
/// [`gateway_headers`] in the order sent (a replaced header keeps its place and first spelling),
/// with the values of the auth header and of the custom headers replaced by `<redacted>`.
/// Custom header values often come from Secrets (Foundry keeps them as plain connection
/// metadata), so a log must not show them any more than it shows a key.
fn logged_headers(
    auth: Option<&(String, String)>,
    custom_headers: &[(String, String)],
) -> (Vec<String>, serde_json::Map<String, Value>) {
    let secret = auth
        .into_iter()
        .chain(custom_headers)
        .map(|(name, _)| (name.as_str(), REDACTED));
    let mut names: Vec<String> = Vec::new();
    let mut values = serde_json::Map::new();
    for (name, value) in std::iter::once(("Content-Type", "application/json")).chain(secret) {
        let logged = match names.iter().find(|n| n.eq_ignore_ascii_case(name)) {
            Some(first) => first.clone(),
            None => {
                names.push(name.to_string());
                name.to_string()
            }
        };
        values.insert(logged, json!(value));
    }
    (names, values)
}

/// Records a call that got no HTTP answer and returns its error: timed out, TLS failed, or no
/// connection ([`GatewayError::from_send`]).
fn send_failed(
    t: &CallTarget,
    control: &Control,
    mut record: GatewayCallRecord,
    started: Instant,
    e: &reqwest::Error,
) -> GatewayError {
    let msg = t.scrub(&format!(
        "calling the gateway of connection '{}' at {} failed: {}",
        t.connection,
        record.url,
        error_chain(e)
    ));
    let kind = record.kind;
    record.error = Some(msg.clone());
    record.duration_ms = elapsed_ms(started);
    control.record_gateway_call(record);
    tracing::warn!(connection = %t.connection, kind, "Failed to call gateway");
    GatewayError::from_send(msg, e)
}

fn call_record(t: &CallTarget, kind: &'static str, method: &str, url: &str) -> GatewayCallRecord {
    let now = unix_millis();
    GatewayCallRecord {
        seq: 0,
        time: rfc3339_millis(now),
        kind,
        project: t.project.clone(),
        connection: t.connection.clone(),
        method: method.to_string(),
        url: url.to_string(),
        header_names: Vec::new(),
        headers: serde_json::Map::new(),
        request_body: Value::Null,
        status: None,
        error: None,
        duration_ms: 0,
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The message of an OpenAI-style (`{"error":{"message"}}`) or similar error body.
fn error_message(body: &Value) -> Option<String> {
    let e = body.get("error");
    e.and_then(|e| e.get("message"))
        .or_else(|| e.filter(|e| e.is_string()))
        .or_else(|| body.get("message"))
        .or_else(|| body.get("detail"))
        .and_then(Value::as_str)
        .map(|s| truncate(s, 500))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_log_keeps_header_names_and_redacts_auth_and_custom_header_values() {
        let auth = ("api-key".to_string(), "gw-key-123".to_string());
        let custom = vec![
            ("X-Client-App".to_string(), "foundry-agents".to_string()),
            ("X-Tenant-Token".to_string(), "from-a-secret".to_string()),
        ];
        let (names, values) = logged_headers(Some(&auth), &custom);
        assert_eq!(
            names,
            ["Content-Type", "api-key", "X-Client-App", "X-Tenant-Token"]
        );
        for name in ["api-key", "X-Client-App", "X-Tenant-Token"] {
            assert_eq!(values[name], REDACTED, "{name}");
        }
        assert_eq!(values["Content-Type"], "application/json");
        assert_eq!(values.len(), 4);
        let text = Value::Object(values).to_string();
        for secret in ["gw-key-123", "foundry-agents", "from-a-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let (names, values) = logged_headers(None, &[]);
        assert_eq!(names, ["Content-Type"]);
        assert_eq!(values["Content-Type"], "application/json");
    }

    #[test]
    fn headers_go_content_type_then_auth_then_custom_headers_which_replace_a_same_name_header() {
        let auth = ("api-key".to_string(), "gw-key-123".to_string());
        let custom = vec![
            ("API-Key".to_string(), "custom-wins".to_string()),
            ("X-Client-App".to_string(), "foundry-agents".to_string()),
        ];
        let headers = gateway_headers(Some(&auth), &custom).unwrap();
        let sent: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            sent,
            [
                ("content-type", "application/json"),
                ("api-key", "custom-wins"),
                ("x-client-app", "foundry-agents"),
            ]
        );
        assert!(headers["api-key"].is_sensitive());
        let (names, values) = logged_headers(Some(&auth), &custom);
        assert_eq!(names, ["Content-Type", "api-key", "X-Client-App"]);
        assert_eq!(values.len(), 3);
        assert_eq!(values["api-key"], REDACTED);

        // A custom Content-Type replaces ours, and is redacted like every custom value.
        let custom = vec![("content-type".to_string(), "text/plain".to_string())];
        let headers = gateway_headers(None, &custom).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[CONTENT_TYPE], "text/plain");
        let (names, values) = logged_headers(None, &custom);
        assert_eq!(names, ["Content-Type"]);
        assert_eq!(values["Content-Type"], REDACTED);

        let bad = ("api-key".to_string(), "line\nbreak".to_string());
        let e = gateway_headers(Some(&bad), &[]).unwrap_err();
        assert!(e.contains("'api-key'") && !e.contains("line"), "{e}");
    }
}
