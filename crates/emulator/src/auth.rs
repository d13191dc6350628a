//! Bearer-token checks of incoming requests: a static token, or RS256 JWTs from a JWKS with
//! the audience of the plane. Tokens are never logged or echoed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode, header};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::AuthMode;
use crate::errors::{ApiError, Plane};
use crate::util::secure_eq;

/// Audiences accepted on ARM.
pub(crate) const ARM_AUDIENCES: &[&str] = &[
    "https://management.azure.com",
    "https://management.azure.com/",
];
/// Audiences accepted on the data plane.
pub(crate) const DATA_AUDIENCES: &[&str] = &["https://ai.azure.com", "https://ai.azure.com/"];

/// Don't refetch the JWKS for the same unknown key id more often than this.
const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);

/// Who called, as far as the token says (used for ARM `systemData`).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) subject: String,
    pub(crate) kind: &'static str,
}

#[derive(Debug, Default)]
struct JwksCache {
    keys: Vec<(Option<String>, DecodingKey)>,
    fetched: bool,
    unknown_kids: HashMap<String, Instant>,
}

/// Checks `Authorization` headers.
#[derive(Debug)]
pub(crate) struct Authenticator {
    mode: AuthMode,
    http: reqwest::Client,
    jwks: Mutex<JwksCache>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    aud: Option<Value>,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    upn: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

enum Failure {
    Missing(&'static str),
    Invalid(String),
    Audience { got: String },
}

impl Authenticator {
    pub(crate) fn new(mode: AuthMode, http: reqwest::Client) -> Self {
        Self {
            mode,
            http,
            jwks: Mutex::new(JwksCache::default()),
        }
    }

    /// Authenticates a request of the given plane.
    pub(crate) async fn authenticate(
        &self,
        plane: Plane,
        headers: &HeaderMap,
    ) -> Result<Caller, ApiError> {
        self.check(plane, headers)
            .await
            .map_err(|f| failure_to_error(plane, f))
    }

    async fn check(&self, plane: Plane, headers: &HeaderMap) -> Result<Caller, Failure> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Failure::Missing("the 'Authorization' header is missing"));
        };
        let value = value
            .to_str()
            .map_err(|_| Failure::Missing("the 'Authorization' header is not valid text"))?;
        let token = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => {
                t.trim()
            }
            _ => {
                return Err(Failure::Missing(
                    "the 'Authorization' header is not a Bearer token",
                ));
            }
        };
        match &self.mode {
            AuthMode::StaticToken(expected) => {
                if secure_eq(token.as_bytes(), expected.as_bytes()) {
                    Ok(Caller {
                        subject: "static-token".into(),
                        kind: "Application",
                    })
                } else {
                    Err(Failure::Invalid(
                        "it is not the token this emulator accepts".into(),
                    ))
                }
            }
            AuthMode::Jwks { url, issuer } => {
                self.check_jwt(plane, token, url, issuer.as_deref()).await
            }
        }
    }

    async fn check_jwt(
        &self,
        plane: Plane,
        token: &str,
        url: &str,
        issuer: Option<&str>,
    ) -> Result<Caller, Failure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| Failure::Invalid("the access token is not a well-formed JWT".into()))?;
        if header.alg != Algorithm::RS256 {
            return Err(Failure::Invalid(format!(
                "the access token is signed with {:?}; only RS256 is accepted",
                header.alg
            )));
        }
        let keys = self.keys_for(header.kid.as_deref(), url).await?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.leeway = 60;
        validation.set_required_spec_claims(&["exp"]);
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        let mut last = Failure::Invalid("the access token signature is invalid".into());
        for key in &keys {
            match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                Ok(data) => return accept(plane, data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = Failure::Invalid(match e.kind() {
                        ErrorKind::ExpiredSignature => "the access token has expired".into(),
                        ErrorKind::ImmatureSignature => "the access token is not valid yet".into(),
                        ErrorKind::InvalidIssuer => "the access token has the wrong issuer".into(),
                        ErrorKind::MissingRequiredClaim(c) => {
                            format!("the access token lacks the '{c}' claim")
                        }
                        ErrorKind::InvalidSignature => {
                            "the access token signature is invalid".into()
                        }
                        _ => "the access token is invalid".into(),
                    });
                    if !matches!(e.kind(), ErrorKind::InvalidSignature) {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Decoding keys for a key id, fetching the JWKS on first use and again for an unknown kid.
    async fn keys_for(&self, kid: Option<&str>, url: &str) -> Result<Vec<DecodingKey>, Failure> {
        let mut cache = self.jwks.lock().await;
        let select = |cache: &JwksCache| -> Vec<DecodingKey> {
            cache
                .keys
                .iter()
                .filter(|(k, _)| kid.is_none() || k.as_deref() == kid)
                .map(|(_, key)| key.clone())
                .collect()
        };
        if cache.fetched {
            let found = select(&cache);
            if !found.is_empty() {
                return Ok(found);
            }
            let kid_key = kid.unwrap_or_default().to_string();
            if cache
                .unknown_kids
                .get(&kid_key)
                .is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH)
            {
                return Err(Failure::Invalid(
                    "the access token was signed by an unknown key".into(),
                ));
            }
            cache.unknown_kids.insert(kid_key, Instant::now());
        }
        match self.fetch_jwks(url).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "Fetched signing keys");
                cache.keys = keys;
                cache.fetched = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "Failed to fetch signing keys");
                return Err(Failure::Invalid(
                    "the signing keys could not be fetched".into(),
                ));
            }
        }
        let found = select(&cache);
        if found.is_empty() {
            Err(Failure::Invalid(
                "the access token was signed by an unknown key".into(),
            ))
        } else {
            Ok(found)
        }
    }

    async fn fetch_jwks(&self, url: &str) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
        let resp = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("JWKS endpoint returned {}", resp.status()));
        }
        let set: JwkSet = resp.json().await.map_err(|e| e.to_string())?;
        Ok(set
            .keys
            .iter()
            .filter(|k| matches!(k.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|k| {
                DecodingKey::from_jwk(k)
                    .ok()
                    .map(|d| (k.common.key_id.clone(), d))
            })
            .collect())
    }
}

fn accept(plane: Plane, claims: Claims) -> Result<Caller, Failure> {
    let allowed = match plane {
        Plane::Arm => ARM_AUDIENCES,
        Plane::Data => DATA_AUDIENCES,
    };
    let auds: Vec<String> = match &claims.aud {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => Vec::new(),
    };
    if !auds.iter().any(|a| allowed.contains(&a.as_str())) {
        return Err(Failure::Audience {
            got: auds.join(", "),
        });
    }
    let (subject, kind) = match (
        &claims.upn,
        &claims.oid,
        &claims.appid,
        &claims.azp,
        &claims.sub,
    ) {
        (Some(upn), ..) => (upn.clone(), "User"),
        (None, Some(oid), ..) => (oid.clone(), "Application"),
        (None, None, Some(app), ..) | (None, None, None, Some(app), _) => {
            (app.clone(), "Application")
        }
        (None, None, None, None, Some(sub)) => (sub.clone(), "Application"),
        _ => ("unknown".into(), "Application"),
    };
    Ok(Caller { subject, kind })
}

fn failure_to_error(plane: Plane, failure: Failure) -> ApiError {
    let status = StatusCode::UNAUTHORIZED;
    match (plane, failure) {
        (Plane::Arm, Failure::Missing(why)) => ApiError::arm(
            status,
            "AuthenticationFailed",
            format!("Authentication failed: {why}."),
        ),
        (Plane::Arm, Failure::Invalid(why)) => ApiError::arm(
            status,
            "InvalidAuthenticationToken",
            format!("The access token is invalid: {why}."),
        ),
        (Plane::Arm, Failure::Audience { got }) => ApiError::arm(
            status,
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for the wrong audience '{got}'; the audience must be {}.",
                ARM_AUDIENCES
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ),
        (Plane::Data, Failure::Missing(why)) => ApiError::data(
            status,
            "unauthorized",
            format!("Authentication failed: {why}."),
        ),
        (Plane::Data, Failure::Invalid(why)) => ApiError::data(
            status,
            "unauthorized",
            format!("The access token is invalid: {why}."),
        ),
        (Plane::Data, Failure::Audience { got }) => ApiError::data(
            status,
            "unauthorized",
            format!(
                "The access token has the wrong audience '{got}'; expected audience https://ai.azure.com (scope https://ai.azure.com/.default)."
            ),
        ),
    }
}
