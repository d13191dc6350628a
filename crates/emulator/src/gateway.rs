//! Outgoing calls to a connection's gateway, the way Foundry makes them (reference §3):
//! discovery, chat completions, and the tokens those calls need.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::StatusCode;
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

/// What went wrong calling a gateway.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GatewayError {
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
}

impl GatewayError {
    pub(crate) fn into_api_error(self) -> ApiError {
        match self {
            Self::ModelNotFound(m) => ApiError::data(StatusCode::NOT_FOUND, "model_not_found", m),
            Self::Failed(m) => ApiError::data(StatusCode::BAD_GATEWAY, "gateway_error", m),
            Self::Timeout(m) => ApiError::data(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout", m),
        }
    }
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
                    } => {
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
        let started = Instant::now();
        let result = self
            .http
            .post(token_url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(form)
            .send()
            .await;
        let mut record = call_record(t, "token", "POST", token_url);
        record.header_names = vec!["Content-Type".into(), "Accept".into()];
        record.headers.insert(
            "Content-Type".into(),
            json!("application/x-www-form-urlencoded"),
        );
        record
            .headers
            .insert("Accept".into(), json!("application/json"));
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
                return Err(if e.is_timeout() {
                    GatewayError::Timeout(msg)
                } else {
                    GatewayError::Failed(msg)
                });
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
            return Err(GatewayError::Failed(t.scrub(&format!(
                "token request to {token_url} returned HTTP {}: {detail}",
                status.as_u16()
            ))));
        }
        let Some(token) = body.get("access_token").and_then(Value::as_str) else {
            return Err(GatewayError::Failed(format!(
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

    async fn send(
        &self,
        t: &CallTarget,
        control: &Control,
        kind: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Reply, GatewayError> {
        let auth = self.auth_header(t, control).await?;
        let mut record = call_record(t, kind, method.as_str(), url);
        let mut req = self.http.request(method, url);
        if let Some((name, value)) = &auth {
            req = req.header(name.as_str(), value.as_str());
        }
        for (name, value) in &t.meta.custom_headers {
            req = req.header(name.as_str(), value.as_str());
        }
        req = req.header("Accept", "application/json");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
            record.request_body = b.clone();
        }
        (record.header_names, record.headers) =
            logged_headers(auth.as_ref(), &t.meta.custom_headers, body.is_some());
        let started = Instant::now();
        let result = req.send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let msg = t.scrub(&format!(
                    "calling the gateway of connection '{}' at {url} failed: {}",
                    t.connection,
                    error_chain(&e)
                ));
                record.error = Some(msg.clone());
                record.duration_ms = elapsed_ms(started);
                control.record_gateway_call(record);
                tracing::warn!(connection = %t.connection, kind, "Failed to call gateway");
                return Err(if e.is_timeout() {
                    GatewayError::Timeout(msg)
                } else {
                    GatewayError::Failed(msg)
                });
            }
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

    fn upstream_error(t: &CallTarget, what: &str, url: &str, reply: &Reply) -> GatewayError {
        let detail = error_message(&reply.body).unwrap_or_else(|| truncate(&reply.text, 300));
        GatewayError::Failed(t.scrub(&format!(
            "the gateway of connection '{}' answered {what} at {url} with HTTP {} {}: {detail}",
            t.connection,
            reply.status.as_u16(),
            reply.status.canonical_reason().unwrap_or_default()
        )))
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
            GatewayError::Failed(format!(
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
            return Err(Self::upstream_error(t, "the chat completion", &url, &reply));
        }
        if reply
            .body
            .get("choices")
            .and_then(Value::as_array)
            .is_none()
        {
            return Err(GatewayError::Failed(t.scrub(&format!(
                "the gateway of connection '{}' answered the chat completion at {url} without 'choices': {}",
                t.connection,
                truncate(&reply.text, 300)
            ))));
        }
        Ok(reply.body)
    }
}

/// The headers of a gateway call as the call log shows them: every name in the order sent, with
/// the values of the auth header and of the custom headers replaced by `<redacted>`. Custom
/// header values often come from Secrets (Foundry keeps them as plain connection metadata), so
/// a log must not show them any more than it shows a key.
fn logged_headers(
    auth: Option<&(String, String)>,
    custom_headers: &[(String, String)],
    json_body: bool,
) -> (Vec<String>, serde_json::Map<String, Value>) {
    let secret = auth
        .into_iter()
        .chain(custom_headers)
        .map(|(name, _)| (name.as_str(), REDACTED));
    let plain = std::iter::once(("Accept", "application/json"))
        .chain(json_body.then_some(("Content-Type", "application/json")));
    let mut names = Vec::new();
    let mut values = serde_json::Map::new();
    for (name, value) in secret.chain(plain) {
        names.push(name.to_string());
        values.insert(name.to_string(), json!(value));
    }
    (names, values)
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
        let (names, values) = logged_headers(Some(&auth), &custom, true);
        assert_eq!(
            names,
            [
                "api-key",
                "X-Client-App",
                "X-Tenant-Token",
                "Accept",
                "Content-Type"
            ]
        );
        for name in ["api-key", "X-Client-App", "X-Tenant-Token"] {
            assert_eq!(values[name], REDACTED, "{name}");
        }
        assert_eq!(values["Accept"], "application/json");
        assert_eq!(values["Content-Type"], "application/json");
        let text = Value::Object(values).to_string();
        for secret in ["gw-key-123", "foundry-agents", "from-a-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let (names, _) = logged_headers(None, &[], false);
        assert_eq!(names, ["Accept"]);
    }
}
