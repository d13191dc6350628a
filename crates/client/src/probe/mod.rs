//! Gateway probe: makes the calls Foundry makes to a gateway, exactly as the Foundry samples'
//! validation scripts make them (reference §5, §3), and says whether the connection is Active,
//! or Inactive and why.
//!
//! The URL, header and body rules live in pure functions (re-exported here from `wire`);
//! [`Prober`] does the IO: the OAuth2 client-credentials token (cached across probes until
//! 5 minutes before it expires), discovery (list, then get-by-name for the checked model) and
//! the scripts' chat completion: one short user message and no token limit, which gpt-5 and
//! o-series deployments would refuse.
//!
//! A model the connection declares with `format: Anthropic` ([`GatewaySettings::model_formats`])
//! is never sent a chat completion: Foundry calls such models through the Anthropic Messages
//! API, and neither the samples nor the guides say with which path and headers (they say only
//! "an Anthropic model's /message API"), so a direct probe could only guess.
//! [`Prober::probe`] refuses [`ProbeMode::Inference`] for them (an `InvalidInput` error, before
//! any call); discovery, or asking Foundry itself, is the truthful check.
//!
//! Every byte a gateway or a token endpoint sends is hostile input: tenants choose those URLs.
//! Bodies are read through the transport's cap, at most [`MAX_MODELS`] names are kept, token
//! lifetimes and the probe's budget are clamped ([`MAX_PROBE_TIMEOUT`]), denied addresses
//! are never contacted, and messages say what failed in our own words (the step, the origin,
//! unreachable / TLS / timeout, the HTTP status), never in the server's, so that a probe
//! cannot be used to read internal services or to tell their failures apart.

mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

pub use wire::*;

use crate::connections::{AuthConfig, ConnectionCategory, ModelDiscovery, ModelFormat};
use crate::credentials::scope_for_audience;
use crate::error::{Error, ErrorKind, Result, walk_chain};
use crate::pipeline::{CallRecord, Observer};
use crate::transport::{BodyError, Transport};
use crate::types::SecretString;

/// What the probe does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProbeMode {
    /// Discovery when the connection discovers models, else inference (so, for a declared
    /// `Anthropic` model without discovery, the same error as [`Self::Inference`]).
    #[default]
    Auto,
    /// Only the discovery calls (cheap, no tokens spent). Needs discovery settings.
    Discovery,
    /// The chat completion (after discovery when the connection discovers models). Refused for
    /// a model of `format: Anthropic`.
    Inference,
}

/// Why a gateway is Inactive. `as_str` gives the condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InactiveCause {
    /// Connection refused, DNS failure, connection reset (all reported alike), or an address
    /// the operator's network policy denies.
    Unreachable,
    /// No answer in time (or HTTP 408).
    Timeout,
    /// 401/403 from the gateway or the token endpoint, or no Entra token.
    Unauthorized,
    /// The model is not listed, or the gateway answers 404 for the deployment.
    ModelNotFound,
    /// Non-JSON, missing `choices`/`value`/`data`, 5xx, other 4xx (redirects included: they
    /// are never followed), or a body larger than the transport's cap.
    BadResponse,
    /// Certificate or handshake failure.
    TlsError,
}

impl InactiveCause {
    /// `Unreachable`, `Timeout`, `Unauthorized`, `ModelNotFound`, `BadResponse`, `TLSError`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "Unreachable",
            Self::Timeout => "Timeout",
            Self::Unauthorized => "Unauthorized",
            Self::ModelNotFound => "ModelNotFound",
            Self::BadResponse => "BadResponse",
            Self::TlsError => "TLSError",
        }
    }
}

impl fmt::Display for InactiveCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest a probe may take, whatever [`ProbeRequest::timeout`] asks for.
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The verdict of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The gateway answered as Foundry needs.
    Active {
        /// Models found (discovered, or the static list, or the model probed); at most
        /// [`MAX_MODELS`] discovered names.
        models: Vec<String>,
        /// Time the probe took.
        latency: Duration,
        /// Discovered names left out of `models` because the gateway listed more than
        /// [`MAX_MODELS`].
        omitted: usize,
    },
    /// It did not.
    Inactive {
        /// Why.
        cause: InactiveCause,
        /// One sentence a person can act on; never contains a key, secret or token.
        message: String,
    },
}

impl ProbeOutcome {
    /// True for `Active`.
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active { .. })
    }

    fn inactive(cause: InactiveCause, message: impl Into<String>) -> Self {
        Self::Inactive {
            cause,
            message: message.into(),
        }
    }
}

/// Resolved gateway auth.
#[derive(Clone)]
#[non_exhaustive]
pub enum GatewayAuth {
    /// An API key, sent as `api-key` or as `authConfig` says.
    ApiKey {
        /// The key.
        key: SecretString,
        /// Optional header name and format.
        auth_config: Option<AuthConfig>,
    },
    /// OAuth2 client credentials (ModelGateway).
    OAuth2 {
        /// Token endpoint.
        token_url: String,
        /// Scopes, joined by spaces in the request.
        scopes: Vec<String>,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: SecretString,
    },
    /// Entra ID (APIM): a bearer token for `audience` from `credential` (in Foundry the
    /// project's managed identity; here whatever identity the operator has).
    Entra {
        /// The credential.
        credential: Arc<dyn TokenCredential>,
        /// E.g. `https://cognitiveservices.azure.com`.
        audience: String,
    },
    /// No auth header.
    None,
}

impl fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey { auth_config, .. } => f
                .debug_struct("ApiKey")
                .field("key", &"***")
                .field("auth_config", auth_config)
                .finish(),
            Self::OAuth2 {
                token_url,
                scopes,
                client_id,
                ..
            } => f
                .debug_struct("OAuth2")
                .field("token_url", token_url)
                .field("scopes", scopes)
                .field("client_id", client_id)
                .field("client_secret", &"***")
                .finish(),
            Self::Entra { audience, .. } => f
                .debug_struct("Entra")
                .field("audience", audience)
                .finish_non_exhaustive(),
            Self::None => f.write_str("None"),
        }
    }
}

/// A connection's settings as the probe needs them (secrets resolved).
#[derive(Clone)]
pub struct GatewaySettings {
    /// `target`.
    pub target: String,
    /// `category`.
    pub category: ConnectionCategory,
    /// `deploymentInPath`.
    pub deployment_in_path: bool,
    /// `inferenceAPIVersion` (empty or `None`: no api-version on inference).
    pub inference_api_version: Option<String>,
    /// `deploymentAPIVersion` (discovery calls only).
    pub deployment_api_version: Option<String>,
    /// Discovery in force, APIM defaults already applied (see [`ModelDiscovery::resolve`]).
    pub discovery: Option<ModelDiscovery>,
    /// Static deployment names.
    pub static_models: Vec<String>,
    /// `properties.model.format` of the static models that declare one, by deployment name;
    /// a model missing here speaks OpenAI chat completions. An `Anthropic` model is never sent
    /// a chat completion (see [`Prober::probe`]).
    pub model_formats: BTreeMap<String, ModelFormat>,
    /// `customHeaders` with resolved values.
    pub custom_headers: BTreeMap<String, SecretString>,
    /// Auth.
    pub auth: GatewayAuth,
}

impl fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("target", &self.target)
            .field("category", &self.category)
            .field("deployment_in_path", &self.deployment_in_path)
            .field("inference_api_version", &self.inference_api_version)
            .field("deployment_api_version", &self.deployment_api_version)
            .field("discovery", &self.discovery)
            .field("static_models", &self.static_models)
            .field("model_formats", &self.model_formats)
            .field(
                "custom_headers",
                &self.custom_headers.keys().collect::<Vec<_>>(),
            )
            .field("auth", &self.auth)
            .finish()
    }
}

/// One probe to run.
#[derive(Clone, Debug)]
pub struct ProbeRequest {
    /// The connection.
    pub settings: GatewaySettings,
    /// What to call.
    pub mode: ProbeMode,
    /// The model (deployment) to check; `None` checks the first one found.
    pub model: Option<String>,
    /// Budget of the whole probe (token request included); at most [`MAX_PROBE_TIMEOUT`].
    pub timeout: Duration,
}

impl ProbeRequest {
    /// What makes two probes the same call: the gateway, every setting and credential sent, the
    /// mode, the model and the budget, as a SHA-256 digest. Two connections with the same
    /// identity get the same answer from the gateway, so one probe can serve both. Secret values
    /// enter the digest and never leave it. None for Entra ID: its token is the identity of one
    /// project, which no other connection may be taken for.
    pub fn identity(&self) -> Option<[u8; 32]> {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
            h.update(bytes);
        };
        let s = &self.settings;
        field(s.target.as_bytes());
        field(format!("{:?}", s.category).as_bytes());
        field(&[u8::from(s.deployment_in_path)]);
        for version in [&s.inference_api_version, &s.deployment_api_version] {
            field(version.as_deref().unwrap_or("\u{0}none").as_bytes());
        }
        field(format!("{:?}", s.discovery).as_bytes());
        field(s.static_models.join("\n").as_bytes());
        field(format!("{:?}", s.model_formats).as_bytes());
        for (name, value) in &s.custom_headers {
            field(name.as_bytes());
            field(value.expose().as_bytes());
        }
        match &s.auth {
            GatewayAuth::ApiKey { key, auth_config } => {
                field(b"api-key");
                field(key.expose().as_bytes());
                field(format!("{auth_config:?}").as_bytes());
            }
            GatewayAuth::OAuth2 {
                token_url,
                scopes,
                client_id,
                client_secret,
            } => {
                field(b"oauth2");
                field(&oauth_key(token_url, client_id, client_secret, scopes));
            }
            GatewayAuth::Entra { .. } => return None,
            GatewayAuth::None => field(b"none"),
        }
        field(format!("{:?}", self.mode).as_bytes());
        field(self.model.as_deref().unwrap_or("\u{0}none").as_bytes());
        field(&self.timeout.as_millis().to_be_bytes());
        Some(h.finalize().into())
    }
}

impl ProbeMode {
    /// The mode actually run for settings with or without discovery.
    pub fn resolve(self, discovers: bool) -> Self {
        match self {
            Self::Auto if discovers => Self::Discovery,
            Self::Auto => Self::Inference,
            m => m,
        }
    }
}

struct CachedToken {
    token: SecretString,
    valid_until: Instant,
}

/// Runs probes. Share one per process: it pools connections and caches OAuth2 tokens.
pub struct Prober {
    transport: Transport,
    observer: Option<Observer>,
    oauth_tokens: Mutex<HashMap<[u8; 32], CachedToken>>,
}

impl fmt::Debug for Prober {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prober").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Token,
    ListModels,
    GetModel,
    ChatCompletion,
}

impl Step {
    fn operation(self) -> &'static str {
        match self {
            Self::Token => "Gateway_TokenRequest",
            Self::ListModels => "Gateway_ListModels",
            Self::GetModel => "Gateway_GetModel",
            Self::ChatCompletion => "Gateway_ChatCompletion",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Token => "the OAuth2 token request",
            Self::ListModels => "the model list request",
            Self::GetModel => "the model lookup",
            Self::ChatCompletion => "the chat completion",
        }
    }
}

/// Per-probe state: the secrets to scrub from messages.
struct Ctx {
    secrets: Vec<String>,
    timeout: Duration,
}

impl Ctx {
    fn remember(&mut self, secret: &str) {
        if !secret.is_empty() {
            self.secrets.push(secret.to_owned());
        }
    }
}

/// Replace every occurrence of each secret by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| s.len() >= 3).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for s in sorted {
        out = out.replace(s.as_str(), "***");
    }
    out
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn where_(url: &Url) -> String {
    format!("{}{}", origin(url), url.path())
}

/// A short detail from a gateway error body (`error.message`, `message`, `detail`), at most
/// 160 characters, or the start of a non-JSON body. Only used to recognise a model-not-found
/// answer: the server's text never reaches a message.
fn error_detail(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let e = v.get("error").unwrap_or(&v);
            let m = e
                .get("message")
                .or_else(|| e.get("detail"))
                .or_else(|| v.get("message"))
                .or_else(|| v.get("detail"));
            match m {
                Some(Value::String(s)) => s.clone(),
                Some(other) if !other.is_null() => other.to_string(),
                _ => e.as_str().map(str::to_owned)?,
            }
        }
        Err(_) => String::from_utf8_lossy(body).to_string(),
    };
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let mut short: String = text.chars().take(160).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    Some(short)
}

fn error_code(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error").unwrap_or(&v);
    match e.get("code") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => e.as_str().map(str::to_owned),
    }
}

fn looks_like_model_not_found(body: &[u8]) -> bool {
    let code = error_code(body).unwrap_or_default().to_ascii_lowercase();
    let detail = error_detail(body).unwrap_or_default().to_ascii_lowercase();
    ["deploymentnotfound", "model_not_found", "modelnotfound"]
        .iter()
        .any(|k| code.contains(k) || detail.replace(' ', "").contains(k))
}

/// Which header or token the gateway saw, for Unauthorized messages.
fn auth_hint(auth: &GatewayAuth) -> String {
    match auth {
        GatewayAuth::ApiKey { auth_config, .. } => match auth_config {
            Some(c) => format!("check the API key and that the gateway reads it from the {} header", c.name),
            None => "check the API key and that the gateway reads it from the api-key header (or set authConfig)".into(),
        },
        GatewayAuth::OAuth2 { .. } => {
            "check that the gateway accepts tokens issued for the configured client and scopes".into()
        }
        GatewayAuth::Entra { audience, .. } => {
            format!("check that the gateway accepts Entra tokens for audience {audience} from this identity")
        }
        GatewayAuth::None => "the gateway wants credentials but the connection sends none".into(),
    }
}

/// Classify a non-2xx gateway answer.
fn classify_status(
    step: Step,
    url: &Url,
    status: u16,
    body: &[u8],
    auth: &GatewayAuth,
    model: Option<&str>,
) -> (InactiveCause, String) {
    let at = where_(url);
    match status {
        401 | 403 => (
            InactiveCause::Unauthorized,
            format!(
                "The gateway refused {} with HTTP {status} at {at}; {}.",
                step.describe(),
                auth_hint(auth)
            ),
        ),
        404 if step == Step::ListModels => (
            InactiveCause::BadResponse,
            format!(
                "The model list endpoint {at} answered HTTP 404; check the target and listModelsEndpoint."
            ),
        ),
        404 => (
            InactiveCause::ModelNotFound,
            format!(
                "The gateway answered HTTP 404 for model {:?} at {at}; check the model name, the target, deploymentInPath and the api-version.",
                model.unwrap_or("")
            ),
        ),
        400 if step != Step::ListModels && looks_like_model_not_found(body) => (
            InactiveCause::ModelNotFound,
            format!(
                "The gateway does not know model {:?} (HTTP 400 at {at}); check the model name.",
                model.unwrap_or("")
            ),
        ),
        408 => (
            InactiveCause::Timeout,
            format!(
                "The gateway timed out on {} (HTTP 408) at {at}; check the gateway and its backend.",
                step.describe()
            ),
        ),
        429 => (
            InactiveCause::BadResponse,
            format!(
                "The gateway is throttling {} (HTTP 429) at {at}; raise its rate limit or probe less often.",
                step.describe()
            ),
        ),
        500..=599 => (
            InactiveCause::BadResponse,
            format!(
                "The gateway failed {} with HTTP {status} at {at}; check the gateway's logs and backend.",
                step.describe()
            ),
        ),
        _ => (
            InactiveCause::BadResponse,
            format!(
                "The gateway answered {} with HTTP {status} at {at}; check the target, api-versions and request format.",
                step.describe()
            ),
        ),
    }
}

/// Who answers a step, for messages.
fn party(step: Step) -> &'static str {
    if step == Step::Token {
        "the OAuth2 token endpoint"
    } else {
        "the gateway"
    }
}

/// Classify a transport error (no HTTP answer). The message names the category only: a
/// refused connection, a failed DNS lookup and a reset all read "could not connect", so that
/// a tenant cannot map the operator's network through probe messages.
fn classify_transport(
    step: Step,
    url: &Url,
    err: &reqwest::Error,
    timeout: Duration,
) -> (InactiveCause, String) {
    let o = origin(url);
    let what = party(step);
    match crate::error::classify_reqwest(err) {
        ErrorKind::Timeout => (
            InactiveCause::Timeout,
            format!(
                "{} at {o} did not answer {} within {timeout:?}; check that it is reachable and not overloaded.",
                capitalise(what),
                step.describe()
            ),
        ),
        ErrorKind::Tls => (
            InactiveCause::TlsError,
            format!(
                "TLS handshake failed with {what} at {o} ({}); trust its CA or fix its certificate.",
                tls_detail(err)
            ),
        ),
        ErrorKind::InvalidInput if crate::error::denied_host(err).is_some() => {
            (InactiveCause::Unreachable, denied_message(step, url))
        }
        ErrorKind::InvalidResponse => (
            InactiveCause::BadResponse,
            format!(
                "The answer of {what} at {o} to {} could not be read; check that it speaks HTTP.",
                step.describe()
            ),
        ),
        _ => (
            InactiveCause::Unreachable,
            format!("Could not connect to {what} at {o}; check the URL, DNS and network access."),
        ),
    }
}

/// The message of a URL whose address the network policy denies.
fn denied_message(step: Step, url: &Url) -> String {
    format!(
        "The address of {} at {} is not allowed by the operator's network policy; use another URL or ask the operator's administrator.",
        party(step),
        origin(url)
    )
}

/// The message of a body larger than the transport's cap.
fn too_large_message(step: Step, url: &Url, limit: usize) -> String {
    let who = if step == Step::Token {
        "The OAuth2 token endpoint's"
    } else {
        "The gateway's"
    };
    format!(
        "{who} answer to {} is larger than {limit} bytes; check that {} is the right endpoint.",
        step.describe(),
        where_(url)
    )
}

/// Whether a request failed because the connection it reused was closed under it (before any
/// answer), as opposed to a gateway that cannot be reached or does not answer in time.
fn stale_connection(err: &reqwest::Error) -> bool {
    if err.is_timeout() || err.is_connect() {
        return false;
    }
    let mut stale = false;
    walk_chain(err, &mut |e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            stale = true;
            return true;
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("connection closed before message completed")
            || text.contains("incomplete message")
        {
            stale = true;
            return true;
        }
        false
    });
    stale
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            let mut out: String = f.to_uppercase().collect();
            out.push_str(c.as_str());
            out
        }
        None => String::new(),
    }
}

/// The TLS failure in our vocabulary: the name of the rustls error (for a certificate, the
/// name of the certificate error, e.g. `UnknownIssuer`), never text the peer sent.
fn tls_detail(err: &reqwest::Error) -> String {
    let mut detail = None;
    walk_chain(err, &mut |e| {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            detail = Some(match r {
                rustls::Error::InvalidCertificate(c) => {
                    format!("invalid certificate: {}", variant_name(&format!("{c:?}")))
                }
                other => variant_name(&format!("{other:?}")),
            });
            return true;
        }
        false
    });
    detail.unwrap_or_else(|| "no details".into())
}

/// The leading identifier of a `Debug` rendering (`UnknownIssuer` of `UnknownIssuer`,
/// `AlertReceived` of `AlertReceived(HandshakeFailure)`).
fn variant_name(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

type Inactive = (InactiveCause, String);

fn oauth_key(
    token_url: &str,
    client_id: &str,
    secret: &SecretString,
    scopes: &[String],
) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [token_url, client_id, secret.expose(), &scopes.join(" ")] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().into()
}

/// The longest an OAuth2 token is cached, whatever `expires_in` says.
pub const MAX_TOKEN_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long a token with `expires_in` seconds may be used: until 5 minutes before it expires
/// (half its life if it is shorter than 10 minutes; 5 minutes when the endpoint does not say),
/// and never longer than [`MAX_TOKEN_CACHE_LIFETIME`] (24 h).
pub fn oauth_cache_lifetime(expires_in: Option<u64>) -> Duration {
    let lifetime = match expires_in {
        None => Duration::from_secs(300),
        Some(s) if s >= 600 => Duration::from_secs(s.saturating_sub(300)),
        Some(s) => Duration::from_secs(s.checked_div(2).unwrap_or(0)),
    };
    lifetime.min(MAX_TOKEN_CACHE_LIFETIME)
}

/// Read `expires_in` leniently: a non-negative integer or float, as a number or a string;
/// negative values count as zero (use once, do not cache), anything else as absent.
/// Values are clamped to [`MAX_TOKEN_CACHE_LIFETIME`] in seconds.
fn parse_expires_in(v: Option<&Value>) -> Option<u64> {
    let max = MAX_TOKEN_CACHE_LIFETIME.as_secs();
    let from_f64 = |f: f64| -> Option<u64> {
        if f.is_nan() {
            None
        } else if f <= 0.0 {
            Some(0)
        } else if f >= max as f64 {
            Some(max)
        } else {
            // In (0, max): the cast cannot saturate.
            Some(f as u64)
        }
    };
    match v? {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Some(u.min(max)),
            (None, Some(_)) => Some(0),
            _ => n.as_f64().and_then(from_f64),
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(u) => Some(u.min(max)),
                Err(_) => s
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(from_f64),
            }
        }
        _ => None,
    }
}

/// Read an OAuth2 token endpoint's success reply: the `access_token` and how long it may be
/// cached ([`oauth_cache_lifetime`] of `expires_in`). `Err` says, in our words, what is wrong
/// with the body; it never quotes the body.
pub fn parse_token_reply(body: &[u8]) -> std::result::Result<(SecretString, Duration), String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the body has no access_token".to_owned())?;
    let lifetime = oauth_cache_lifetime(parse_expires_in(v.get("expires_in")));
    Ok((SecretString::new(token), lifetime))
}

impl Prober {
    /// A prober using `transport` (its extra root CA applies to gateways and token endpoints).
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            observer: None,
            oauth_tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Report each HTTP call to `observer` (client `Prober`, operations `Gateway_*`).
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Forget cached OAuth2 tokens.
    pub fn clear_token_cache(&self) {
        if let Ok(mut m) = self.oauth_tokens.lock() {
            m.clear();
        }
    }

    /// Run one probe, within `request.timeout` clamped to [`MAX_PROBE_TIMEOUT`]. `Err` only
    /// for settings that cannot work whatever the gateway does (an unusable URL, an absolute
    /// discovery URL on another origin, a duplicate api-version, discovery mode without
    /// discovery settings): a person must fix the spec. A URL whose address the network policy
    /// denies is `Inactive` `Unreachable`, without any connection attempt.
    pub async fn probe(&self, request: &ProbeRequest) -> Result<ProbeOutcome> {
        let settings = &request.settings;
        let timeout = request.timeout.min(MAX_PROBE_TIMEOUT);
        let discovers = settings.discovery.is_some();
        if discovers && !settings.static_models.is_empty() {
            return Err(Error::invalid_input(
                "Probe_Settings",
                "static models and model discovery are mutually exclusive",
            ));
        }
        let mode = request.mode.resolve(discovers);
        if mode == ProbeMode::Discovery && !discovers {
            return Err(Error::invalid_input(
                "Probe_Settings",
                "discovery probe mode needs model discovery settings (or an ApiManagement connection without static models)",
            ));
        }
        if mode == ProbeMode::Inference
            && let Some(model) = request
                .model
                .as_ref()
                .or_else(|| settings.static_models.first())
            && settings.model_formats.get(model) == Some(&ModelFormat::Anthropic)
        {
            return Err(Error::invalid_input(
                "Probe_Settings",
                format!(
                    "model {model:?} has format Anthropic: Foundry calls it through the Anthropic Messages API, whose path and headers for gateway connections the Foundry samples do not document, so the probe does not send it a chat completion; use probe mode Discovery (with model discovery) or Foundry"
                ),
            ));
        }
        // Validate every URL we may need before any IO.
        let (target_url, _) = parse_target(&settings.target)?;
        if let Some(d) = &settings.discovery {
            discovery_url(
                &settings.target,
                &d.list_models_endpoint,
                settings.deployment_api_version.as_deref(),
            )?;
            get_model_url(
                &settings.target,
                &d.get_model_endpoint,
                "probe",
                settings.deployment_api_version.as_deref(),
            )?;
        }
        chat_completions_url(
            &settings.target,
            settings.deployment_in_path,
            "probe",
            settings.inference_api_version.as_deref(),
        )?;
        if let GatewayAuth::OAuth2 { token_url, .. } = &settings.auth {
            let u = Url::parse(token_url).map_err(|e| {
                Error::invalid_input(
                    "Probe_Settings",
                    format!("tokenUrl {token_url:?} is not a URL: {e}"),
                )
            })?;
            if !matches!(u.scheme(), "https" | "http") {
                return Err(Error::invalid_input(
                    "Probe_Settings",
                    "tokenUrl must be an http(s) URL",
                ));
            }
        }
        wire::gateway_headers(None, &settings.custom_headers)?;
        if let GatewayAuth::ApiKey { key, auth_config } = &settings.auth {
            api_key_header(key, auth_config.as_ref(), &settings.category)?;
        }

        let span = tracing::info_span!(
            "gateway_probe",
            gateway = %origin(&target_url),
            mode = ?mode,
            outcome = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );

        let mut ctx = Ctx {
            secrets: Vec::new(),
            timeout,
        };
        collect_static_secrets(settings, &mut ctx);
        let started = Instant::now();
        let result = {
            let fut = self.run(request, mode, &mut ctx);
            tokio::time::timeout(timeout, tracing::Instrument::instrument(fut, span.clone())).await
        };
        let outcome = match result {
            Ok(Ok((models, omitted))) => ProbeOutcome::Active {
                models,
                latency: started.elapsed(),
                omitted,
            },
            Ok(Err((cause, message))) => {
                ProbeOutcome::inactive(cause, scrub(&message, &ctx.secrets))
            }
            Err(_) => ProbeOutcome::inactive(
                InactiveCause::Timeout,
                format!(
                    "The gateway at {} did not finish the probe within {timeout:?}; check that it is reachable and not overloaded.",
                    origin(&target_url),
                ),
            ),
        };
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        match &outcome {
            ProbeOutcome::Active { .. } => span.record("outcome", "Active"),
            ProbeOutcome::Inactive { cause, .. } => span.record("outcome", cause.as_str()),
        };
        Ok(outcome)
    }

    async fn run(
        &self,
        req: &ProbeRequest,
        mode: ProbeMode,
        ctx: &mut Ctx,
    ) -> std::result::Result<(Vec<String>, usize), Inactive> {
        let s = &req.settings;
        let api_dep = s.deployment_api_version.as_deref();
        let mut models: Vec<String> = s.static_models.clone();
        let mut omitted = 0;

        if let Some(d) = &s.discovery {
            let url =
                discovery_url(&s.target, &d.list_models_endpoint, api_dep).map_err(invalid)?;
            let body = self
                .call(
                    ctx,
                    s,
                    Step::ListModels,
                    Method::GET,
                    url.clone(),
                    None,
                    None,
                )
                .await?;
            let list = parse_model_list(&d.deployment_provider, &body).map_err(|why| {
                (
                    InactiveCause::BadResponse,
                    format!(
                        "The model list at {} is not in the {} format ({why}); check listModelsEndpoint and deploymentProvider.",
                        where_(&url),
                        d.deployment_provider
                    ),
                )
            })?;
            models = list.names;
            omitted = list.omitted;
            if let Some(m) = &req.model {
                // A model among the names left out is checked by name below.
                if omitted == 0 && !models.iter().any(|x| x == m) {
                    return Err((
                        InactiveCause::ModelNotFound,
                        not_listed(m, &models, "the gateway lists"),
                    ));
                }
                let url =
                    get_model_url(&s.target, &d.get_model_endpoint, m, api_dep).map_err(invalid)?;
                let body = self
                    .call(
                        ctx,
                        s,
                        Step::GetModel,
                        Method::GET,
                        url.clone(),
                        None,
                        Some(m),
                    )
                    .await?;
                parse_model_object(&d.deployment_provider, &body).map_err(|why| {
                    (
                        InactiveCause::BadResponse,
                        format!(
                            "The model lookup at {} is not in the {} format ({why}); check getModelEndpoint and deploymentProvider.",
                            where_(&url),
                            d.deployment_provider
                        ),
                    )
                })?;
            }
            if mode == ProbeMode::Discovery {
                return Ok((models, omitted));
            }
        } else if let Some(m) = &req.model
            && !models.is_empty()
            && !models.iter().any(|x| x == m)
        {
            return Err((
                InactiveCause::ModelNotFound,
                not_listed(m, &models, "the connection's static models are"),
            ));
        }

        let Some(model) = req.model.clone().or_else(|| models.first().cloned()) else {
            return Err((
                InactiveCause::ModelNotFound,
                "There is no model to probe: the connection lists none; add static models or deployments on the gateway.".into(),
            ));
        };
        let url = chat_completions_url(
            &s.target,
            s.deployment_in_path,
            &model,
            s.inference_api_version.as_deref(),
        )
        .map_err(invalid)?;
        let bytes = Bytes::from(chat_completions_body(&model, s.deployment_in_path));
        let answer = self
            .call(
                ctx,
                s,
                Step::ChatCompletion,
                Method::POST,
                url.clone(),
                Some(bytes),
                Some(&model),
            )
            .await?;
        if !is_chat_completion(&answer) {
            return Err((
                InactiveCause::BadResponse,
                format!(
                    "The answer of {} is not an OpenAI chat completion (no \"choices\"); check the target, deploymentInPath and inferenceAPIVersion.",
                    where_(&url)
                ),
            ));
        }
        if models.is_empty() {
            models.push(model);
        }
        Ok((models, omitted))
    }

    /// A gateway call with auth; an OAuth2 401 on a cached token is retried once with a fresh one.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        ctx: &mut Ctx,
        s: &GatewaySettings,
        step: Step,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        model: Option<&str>,
    ) -> std::result::Result<Bytes, Inactive> {
        let mut fresh = false;
        loop {
            let (auth, cached) = self.auth_header(ctx, s, fresh).await?;
            let headers = gateway_headers(auth, &s.custom_headers).map_err(invalid)?;
            let (status, answer) = self
                .send(
                    ctx,
                    step,
                    method.clone(),
                    url.clone(),
                    headers,
                    body.clone(),
                )
                .await?;
            if (200..300).contains(&status) {
                return Ok(answer);
            }
            if status == 401 && cached && !fresh {
                tracing::debug!("Gateway refused a cached OAuth2 token, fetching a new one");
                fresh = true;
                continue;
            }
            return Err(classify_status(step, &url, status, &answer, &s.auth, model));
        }
    }

    async fn send(
        &self,
        ctx: &Ctx,
        step: Step,
        method: Method,
        url: Url,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> std::result::Result<(u16, Bytes), Inactive> {
        if self.transport.is_denied(&url) {
            // Checked before any connection: reqwest does not resolve IP literals, so the
            // transport's resolver never sees them.
            return Err((InactiveCause::Unreachable, denied_message(step, &url)));
        }
        let started = Instant::now();
        let request = || {
            let mut req = self
                .transport
                .reqwest()
                .request(method.clone(), url.clone())
                .timeout(ctx.timeout)
                .headers(headers.clone());
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            req
        };
        // A pooled keep-alive connection that the gateway closed just as it was reused fails
        // before any answer: that says nothing about the gateway, so the call is made once more
        // on a fresh connection (within the same probe budget).
        let sent = match request().send().await {
            Err(e) if stale_connection(&e) => {
                tracing::debug!(
                    operation = step.operation(),
                    "A reused connection was closed by the gateway; calling again"
                );
                request().send().await
            }
            other => other,
        };
        let result = match sent {
            Ok(rsp) => {
                let status = rsp.status().as_u16();
                match self.transport.read_body(rsp).await {
                    Ok(b) => Ok((status, b)),
                    Err(BodyError::TooLarge { limit }) => Err((
                        InactiveCause::BadResponse,
                        too_large_message(step, &url, limit),
                    )),
                    Err(BodyError::Read(e)) => Err(classify_transport(step, &url, &e, ctx.timeout)),
                }
            }
            Err(e) => Err(classify_transport(step, &url, &e, ctx.timeout)),
        };
        tracing::debug!(
            operation = step.operation(),
            status = result.as_ref().ok().map(|r| r.0),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Called the gateway"
        );
        if let Some(observer) = &self.observer {
            let (status, outcome) = match &result {
                Ok((s, _)) if (200..300).contains(s) => (Some(*s), "Ok"),
                Ok((s, _)) => (Some(*s), Error::http("", *s, None, "").label()),
                Err((cause, _)) => (None, cause.as_str()),
            };
            observer(&CallRecord {
                client: "Prober",
                operation: step.operation(),
                method,
                status,
                outcome,
                duration: started.elapsed(),
                attempt: 1,
                will_retry: false,
            });
        }
        result
    }

    /// The auth header; the bool says whether it came from the OAuth2 cache.
    async fn auth_header(
        &self,
        ctx: &mut Ctx,
        s: &GatewaySettings,
        force_refresh: bool,
    ) -> std::result::Result<(Option<(HeaderName, HeaderValue)>, bool), Inactive> {
        match &s.auth {
            GatewayAuth::None => Ok((None, false)),
            GatewayAuth::ApiKey { key, auth_config } => {
                let h = api_key_header(key, auth_config.as_ref(), &s.category).map_err(invalid)?;
                Ok((Some(h), false))
            }
            GatewayAuth::OAuth2 {
                token_url,
                scopes,
                client_id,
                client_secret,
            } => {
                let (token, cached) = self
                    .oauth_token(
                        ctx,
                        token_url,
                        client_id,
                        client_secret,
                        scopes,
                        force_refresh,
                    )
                    .await?;
                ctx.remember(token.expose());
                Ok((
                    Some(bearer_header(token.expose()).map_err(invalid)?),
                    cached,
                ))
            }
            GatewayAuth::Entra {
                credential,
                audience,
            } => {
                let scope = scope_for_audience(audience);
                let token = credential
                    .get_token(&[scope.as_str()], None)
                    .await
                    .map_err(|e| entra_failure(audience, e))?;
                ctx.remember(token.token.secret());
                Ok((
                    Some(bearer_header(token.token.secret()).map_err(invalid)?),
                    false,
                ))
            }
        }
    }

    async fn oauth_token(
        &self,
        ctx: &mut Ctx,
        token_url: &str,
        client_id: &str,
        client_secret: &SecretString,
        scopes: &[String],
        force_refresh: bool,
    ) -> std::result::Result<(SecretString, bool), Inactive> {
        let key = oauth_key(token_url, client_id, client_secret, scopes);
        if !force_refresh
            && let Ok(cache) = self.oauth_tokens.lock()
            && let Some(t) = cache.get(&key)
            && Instant::now() < t.valid_until
        {
            return Ok((t.token.clone(), true));
        }
        let url = Url::parse(token_url)
            .map_err(|e| invalid(Error::invalid_input("Probe_Settings", e.to_string())))?;
        // Only the Content-Type, as the ModelGateway script sends (the HTTP client adds
        // `Accept: */*`, as Python's `requests` does).
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        let form = oauth2_token_form(client_id, client_secret, scopes);
        let (status, body) = self
            .send(
                ctx,
                Step::Token,
                Method::POST,
                url.clone(),
                headers,
                Some(Bytes::from(form)),
            )
            .await?;
        let at = where_(&url);
        if !(200..300).contains(&status) {
            // The endpoint's error code and description are its words, not ours: only the
            // status is reported.
            return Err(match status {
                400 | 401 | 403 => (
                    InactiveCause::Unauthorized,
                    format!(
                        "The OAuth2 token endpoint {at} refused the client credentials (HTTP {status}); check clientId, clientSecret and scopes."
                    ),
                ),
                408 => (
                    InactiveCause::Timeout,
                    format!(
                        "The OAuth2 token endpoint {at} timed out (HTTP 408); check the token server."
                    ),
                ),
                _ => (
                    InactiveCause::BadResponse,
                    format!(
                        "The OAuth2 token endpoint {at} answered HTTP {status}; check tokenUrl and the token server."
                    ),
                ),
            });
        }
        let (token, lifetime) = parse_token_reply(&body).map_err(|why| {
            (
                InactiveCause::BadResponse,
                format!(
                    "The OAuth2 token endpoint {at} answered without a usable access_token ({why}); check tokenUrl."
                ),
            )
        })?;
        ctx.remember(token.expose());
        let now = Instant::now();
        // A lifetime that does not fit the clock is not cached at all.
        if let Some(valid_until) = now.checked_add(lifetime)
            && let Ok(mut cache) = self.oauth_tokens.lock()
        {
            cache.retain(|_, t| now < t.valid_until);
            cache.insert(
                key,
                CachedToken {
                    token: token.clone(),
                    valid_until,
                },
            );
        }
        Ok((token, false))
    }
}

fn collect_static_secrets(s: &GatewaySettings, ctx: &mut Ctx) {
    for v in s.custom_headers.values() {
        ctx.remember(v.expose());
    }
    match &s.auth {
        GatewayAuth::ApiKey { key, auth_config } => {
            ctx.remember(key.expose());
            if let Ok((_, v)) = api_key_header(key, auth_config.as_ref(), &s.category)
                && let Ok(v) = v.to_str()
            {
                ctx.remember(v);
            }
        }
        GatewayAuth::OAuth2 { client_secret, .. } => ctx.remember(client_secret.expose()),
        GatewayAuth::Entra { .. } | GatewayAuth::None => {}
    }
}

/// An Entra ID token failure in our words: the category (TLS, unreachable, refused) and the
/// token endpoint's HTTP status, never the text `azure_identity` relays from the endpoint.
fn entra_failure(audience: &str, e: azure_core::Error) -> Inactive {
    let err = Error::from_credential("Gateway_EntraToken", e);
    let (cause, why) = if err.message().starts_with("TLS failure") {
        (
            InactiveCause::TlsError,
            "TLS handshake failed with the token endpoint".to_owned(),
        )
    } else if let Some(status) = err.status() {
        (
            InactiveCause::Unauthorized,
            format!("the token endpoint answered HTTP {status}"),
        )
    } else if err.is_retryable() {
        (
            InactiveCause::Unreachable,
            "could not connect to the token endpoint".to_owned(),
        )
    } else {
        (
            InactiveCause::Unauthorized,
            "the credential failed".to_owned(),
        )
    };
    (
        cause,
        format!(
            "No Entra ID token for audience {audience} could be obtained ({why}); check the identity and its federation."
        ),
    )
}

fn invalid(e: Error) -> Inactive {
    (
        InactiveCause::BadResponse,
        format!("{}.", e.message().trim_end_matches('.')),
    )
}

fn not_listed(model: &str, models: &[String], lists: &str) -> String {
    let shown: Vec<&str> = models.iter().take(10).map(String::as_str).collect();
    let more = if models.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    if models.is_empty() {
        format!(
            "Model {model:?} was not found: {lists} no models; check the gateway's deployments."
        )
    } else {
        format!(
            "Model {model:?} was not found: {lists} {}{more}; check the model name.",
            shown.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://gw.example.com/llm/chat/completions?api-version=1").unwrap()
    }

    fn key_auth() -> GatewayAuth {
        GatewayAuth::ApiKey {
            key: SecretString::new("sk-secret-1234"),
            auth_config: None,
        }
    }

    #[test]
    fn status_classification() {
        let a = key_auth();
        let c = |step, status, body: &[u8]| {
            classify_status(step, &url(), status, body, &a, Some("gpt-4o")).0
        };
        assert_eq!(
            c(Step::ChatCompletion, 401, b""),
            InactiveCause::Unauthorized
        );
        assert_eq!(c(Step::ListModels, 403, b""), InactiveCause::Unauthorized);
        assert_eq!(
            c(Step::ChatCompletion, 404, b""),
            InactiveCause::ModelNotFound
        );
        assert_eq!(c(Step::GetModel, 404, b""), InactiveCause::ModelNotFound);
        assert_eq!(c(Step::ListModels, 404, b""), InactiveCause::BadResponse);
        assert_eq!(
            c(
                Step::ChatCompletion,
                400,
                br#"{"error":{"code":"DeploymentNotFound","message":"x"}}"#
            ),
            InactiveCause::ModelNotFound
        );
        assert_eq!(
            c(Step::ChatCompletion, 400, br#"{"error":{"message":"bad"}}"#),
            InactiveCause::BadResponse
        );
        assert_eq!(c(Step::ChatCompletion, 408, b""), InactiveCause::Timeout);
        assert_eq!(
            c(Step::ChatCompletion, 429, b""),
            InactiveCause::BadResponse
        );
        assert_eq!(
            c(Step::ChatCompletion, 502, b"<html>bad gateway</html>"),
            InactiveCause::BadResponse
        );
        assert_eq!(
            c(Step::ChatCompletion, 418, b""),
            InactiveCause::BadResponse
        );
    }

    #[test]
    fn messages_name_the_place_and_never_the_query() {
        let (_, m) = classify_status(
            Step::ChatCompletion,
            &url(),
            401,
            b"Invalid key sk-secret-1234",
            &key_auth(),
            None,
        );
        assert!(
            m.contains("https://gw.example.com/llm/chat/completions"),
            "{m}"
        );
        assert!(!m.contains("sk-secret"), "{m}");
        assert!(m.contains("api-key header"), "{m}");
        let (_, m) = classify_status(
            Step::ChatCompletion,
            &url(),
            500,
            br#"{"error":{"message":"upstream down"}}"#,
            &key_auth(),
            None,
        );
        assert!(m.contains("HTTP 500"), "{m}");
    }

    #[test]
    fn messages_never_echo_the_body() {
        let bodies: [&[u8]; 4] = [
            br#"{"error":{"message":"internal-db-7 says hello","code":"model_not_found"}}"#,
            br#"{"detail":"internal-db-7 says hello"}"#,
            b"internal-db-7 says hello",
            br#"{"message":"internal-db-7 says hello"}"#,
        ];
        for body in bodies {
            for status in [400, 401, 403, 404, 408, 409, 418, 429, 500, 502, 503] {
                for step in [Step::ListModels, Step::GetModel, Step::ChatCompletion] {
                    let (_, m) = classify_status(step, &url(), status, body, &key_auth(), None);
                    assert!(!m.contains("internal-db-7"), "{m}");
                    assert!(!m.contains("model_not_found"), "{m}");
                    assert!(m.contains(&format!("HTTP {status}")), "{m}");
                }
            }
        }
    }

    #[test]
    fn secrets_are_scrubbed() {
        let s = scrub(
            "key sk-secret-1234 and Bearer tok-9",
            &["sk-secret-1234".into(), "tok-9".into(), "".into()],
        );
        assert_eq!(s, "key *** and Bearer ***");
    }

    #[test]
    fn error_details_are_short() {
        assert_eq!(
            error_detail(br#"{"error":{"message":"a  b\nc"}}"#).as_deref(),
            Some("a b c")
        );
        assert_eq!(
            error_detail(br#"{"detail":"nope"}"#).as_deref(),
            Some("nope")
        );
        let long = "x".repeat(500);
        assert_eq!(error_detail(long.as_bytes()).unwrap().chars().count(), 161);
        assert_eq!(error_detail(b""), None);
    }

    #[test]
    fn token_lifetimes() {
        assert_eq!(oauth_cache_lifetime(Some(3600)), Duration::from_secs(3300));
        assert_eq!(oauth_cache_lifetime(Some(600)), Duration::from_secs(300));
        assert_eq!(oauth_cache_lifetime(Some(120)), Duration::from_secs(60));
        assert_eq!(oauth_cache_lifetime(Some(0)), Duration::ZERO);
        assert_eq!(oauth_cache_lifetime(None), Duration::from_secs(300));
        assert_eq!(
            oauth_cache_lifetime(Some(u64::MAX)),
            MAX_TOKEN_CACHE_LIFETIME
        );
        assert_eq!(
            oauth_cache_lifetime(Some(10 * 24 * 3600)),
            MAX_TOKEN_CACHE_LIFETIME
        );
    }

    #[test]
    fn token_replies_with_odd_expires_in_are_read() {
        let lifetime = |expires_in: &str| {
            let body = format!(r#"{{"access_token":"tok","expires_in":{expires_in}}}"#);
            let (token, lifetime) = parse_token_reply(body.as_bytes()).unwrap();
            assert_eq!(token.expose(), "tok");
            lifetime
        };
        let max = MAX_TOKEN_CACHE_LIFETIME.min(Duration::from_secs(24 * 3600 - 300));
        assert_eq!(lifetime("18446744073709551615"), max);
        assert_eq!(lifetime("18446744073709551616"), max);
        assert_eq!(lifetime("1e308"), max);
        assert_eq!(lifetime("\"1e308\""), max);
        assert_eq!(lifetime("3600"), Duration::from_secs(3300));
        assert_eq!(lifetime("\"3600\""), Duration::from_secs(3300));
        assert_eq!(lifetime("3600.9"), Duration::from_secs(3300));
        assert_eq!(lifetime("-5"), Duration::ZERO);
        assert_eq!(lifetime("\"-5\""), Duration::ZERO);
        assert_eq!(lifetime("-1e308"), Duration::ZERO);
        assert_eq!(lifetime("\"abc\""), Duration::from_secs(300));
        assert_eq!(lifetime("\"NaN\""), Duration::from_secs(300));
        assert_eq!(lifetime("null"), Duration::from_secs(300));
        assert_eq!(lifetime("[1]"), Duration::from_secs(300));
        assert!(parse_token_reply(br#"{"expires_in":1}"#).is_err());
        assert!(parse_token_reply(br#"{"access_token":""}"#).is_err());
        assert!(parse_token_reply(br#"{"access_token":5}"#).is_err());
        assert!(parse_token_reply(b"access_token=x").is_err());
        // serde_json refuses numbers beyond f64: the body is not JSON, no panic.
        assert!(parse_token_reply(br#"{"access_token":"t","expires_in":1e400}"#).is_err());
    }

    #[test]
    fn tls_details_name_the_kind_only() {
        assert_eq!(variant_name("UnknownIssuer"), "UnknownIssuer");
        assert_eq!(
            variant_name("AlertReceived(HandshakeFailure)"),
            "AlertReceived"
        );
        assert_eq!(variant_name("Other(OtherError(\"peer text\"))"), "Other");
        assert_eq!(variant_name("(x)"), "unknown");
    }

    #[test]
    fn oversized_and_denied_messages_are_ours() {
        let m = too_large_message(Step::ListModels, &url(), 1_048_576);
        assert!(
            m.starts_with(
                "The gateway's answer to the model list request is larger than 1048576 bytes;"
            ),
            "{m}"
        );
        let u = Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        let m = denied_message(Step::Token, &u);
        assert_eq!(
            m,
            "The address of the OAuth2 token endpoint at http://169.254.169.254 is not allowed by the operator's network policy; use another URL or ask the operator's administrator."
        );
    }

    #[test]
    fn modes() {
        assert_eq!(ProbeMode::Auto.resolve(true), ProbeMode::Discovery);
        assert_eq!(ProbeMode::Auto.resolve(false), ProbeMode::Inference);
        assert_eq!(ProbeMode::Inference.resolve(true), ProbeMode::Inference);
        assert_eq!(InactiveCause::TlsError.as_str(), "TLSError");
    }

    #[test]
    fn debug_is_redacted() {
        let s = GatewaySettings {
            target: "https://gw".into(),
            category: ConnectionCategory::ModelGateway,
            deployment_in_path: false,
            inference_api_version: None,
            deployment_api_version: None,
            discovery: None,
            static_models: vec![],
            model_formats: BTreeMap::new(),
            custom_headers: BTreeMap::from([("X-A".into(), SecretString::new("hdr-secret"))]),
            auth: GatewayAuth::OAuth2 {
                token_url: "https://t".into(),
                scopes: vec![],
                client_id: "c".into(),
                client_secret: SecretString::new("cs-secret"),
            },
        };
        let d = format!("{s:?}");
        assert!(!d.contains("hdr-secret") && !d.contains("cs-secret"), "{d}");
        let d = format!("{:?}", key_auth());
        assert!(!d.contains("sk-secret"), "{d}");
    }
}
