//! The exact requests Foundry sends to a gateway, as pure functions: what the Foundry samples'
//! validation scripts (`test_apim_connection.py`, `test_model_gateway_connection.py`) send,
//! reference §5 (and §3). These are the contract: the probe and the emulator must agree with
//! them.
//!
//! - Chat check: `POST {target}/deployments/{deployment}/chat/completions` when the deployment
//!   is in the path, else `POST {target}/chat/completions`; `?api-version=` only when
//!   `inferenceAPIVersion` is non-empty. Body: one user message with a short greeting, plus
//!   `model` when the deployment is not in the path; no token limit (reasoning models refuse
//!   `max_tokens`), no `temperature`, no `stream`.
//! - Discovery: `GET` of the list and get-by-name endpoints, `?api-version=` from
//!   `deploymentAPIVersion` only when set.
//! - Headers of every call: `Content-Type: application/json`, then the auth header (`api-key`,
//!   the `authConfig` header, or `Authorization: Bearer`), then the custom headers. The scripts
//!   build one header dictionary and send it on the discovery `GET`s too.

use std::collections::{BTreeMap, HashSet};

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::connections::{
    API_KEY_PLACEHOLDER, AuthConfig, ConnectionCategory, DEPLOYMENT_NAME_PLACEHOLDER,
    DeploymentProvider,
};
use crate::error::{Error, Result};
use crate::types::SecretString;
use crate::urls::{encode_component, same_origin};

const OP: &str = "Probe_Settings";

/// The message the probe sends: a short greeting, like the validation scripts' (theirs is a
/// longer "Hello! This is a test message from the … validation script. …").
pub const PROBE_MESSAGE: &str = "Hello!";

/// Parse the connection target: an absolute `http(s)` URL without credentials, query or
/// fragment. Returns the parsed URL and the target string with one trailing `/` removed.
pub fn parse_target(target: &str) -> Result<(Url, String)> {
    let t = target.trim();
    let url = Url::parse(t)
        .map_err(|e| Error::invalid_input(OP, format!("target {t:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::invalid_input(
            OP,
            format!("target {t:?} must be an http(s) URL"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid_input(
            OP,
            "target must not contain credentials",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_input(
            OP,
            format!("target {t:?} must not have a query or fragment"),
        ));
    }
    let base = t.strip_suffix('/').unwrap_or(t).to_owned();
    Ok((url, base))
}

fn count_api_version(url: &Url) -> usize {
    url.query_pairs()
        .filter(|(k, _)| k == "api-version")
        .count()
}

fn check_endpoint_text(endpoint: &str) -> Result<()> {
    let lower = endpoint.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || endpoint.contains('\\') {
        return Err(Error::invalid_input(
            OP,
            format!("discovery endpoint {endpoint:?} must not contain encoded slashes"),
        ));
    }
    let path = endpoint.split(['?', '#']).next().unwrap_or("");
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(Error::invalid_input(
            OP,
            format!("discovery endpoint {endpoint:?} must not contain '.' or '..' segments"),
        ));
    }
    if endpoint.contains('#') {
        return Err(Error::invalid_input(
            OP,
            format!("discovery endpoint {endpoint:?} must not contain a fragment"),
        ));
    }
    Ok(())
}

/// URL of a discovery call. A relative `endpoint` is appended to the target (one trailing `/`
/// of the target stripped; a `/` inserted when the endpoint lacks one). An absolute endpoint is
/// used as is, but must be on the target's origin (scheme, host, port) and carry no
/// credentials. `api-version` comes from `deployment_api_version` unless the endpoint already
/// has one (which wins); an endpoint with two is an error.
pub fn discovery_url(
    target: &str,
    endpoint: &str,
    deployment_api_version: Option<&str>,
) -> Result<Url> {
    let (target_url, base) = parse_target(target)?;
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Err(Error::invalid_input(OP, "discovery endpoint is empty"));
    }
    check_endpoint_text(endpoint)?;
    let lower = endpoint.to_ascii_lowercase();
    let mut url = if lower.starts_with("https://") || lower.starts_with("http://") {
        let url = Url::parse(endpoint).map_err(|e| {
            Error::invalid_input(
                OP,
                format!("discovery endpoint {endpoint:?} is not a URL: {e}"),
            )
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid_input(
                OP,
                "discovery endpoint must not contain credentials",
            ));
        }
        if !same_origin(&url, &target_url) {
            return Err(Error::invalid_input(
                OP,
                format!(
                    "absolute discovery endpoint {endpoint:?} must be on the target's origin ({})",
                    target_url.origin().ascii_serialization()
                ),
            ));
        }
        url
    } else if lower.contains("://") {
        return Err(Error::invalid_input(
            OP,
            format!("discovery endpoint {endpoint:?} must be a path or an http(s) URL"),
        ));
    } else {
        let sep = if endpoint.starts_with('/') { "" } else { "/" };
        let joined = format!("{base}{sep}{endpoint}");
        Url::parse(&joined).map_err(|e| {
            Error::invalid_input(OP, format!("discovery URL {joined:?} is not valid: {e}"))
        })?
    };
    match count_api_version(&url) {
        0 => {
            if let Some(v) = deployment_api_version
                .map(str::trim)
                .filter(|v| !v.is_empty())
            {
                url.query_pairs_mut().append_pair("api-version", v);
            }
        }
        1 => {}
        _ => {
            return Err(Error::invalid_input(
                OP,
                format!("discovery endpoint {endpoint:?} has more than one api-version"),
            ));
        }
    }
    Ok(url)
}

/// URL of the get-model call: `getModelEndpoint` with `{deploymentName}` replaced by the
/// percent-encoded deployment, then as [`discovery_url`].
pub fn get_model_url(
    target: &str,
    get_model_endpoint: &str,
    deployment: &str,
    deployment_api_version: Option<&str>,
) -> Result<Url> {
    if get_model_endpoint
        .matches(DEPLOYMENT_NAME_PLACEHOLDER)
        .count()
        != 1
    {
        return Err(Error::invalid_input(
            OP,
            "getModelEndpoint must contain {deploymentName} exactly once",
        ));
    }
    if deployment.is_empty() {
        return Err(Error::invalid_input(OP, "the deployment name is empty"));
    }
    let endpoint =
        get_model_endpoint.replace(DEPLOYMENT_NAME_PLACEHOLDER, &encode_component(deployment));
    discovery_url(target, &endpoint, deployment_api_version)
}

/// URL of the chat completion: `{target}/deployments/{deployment}/chat/completions` when the
/// deployment is in the path, else `{target}/chat/completions`; `?api-version=` added when
/// `inference_api_version` is non-empty.
pub fn chat_completions_url(
    target: &str,
    deployment_in_path: bool,
    deployment: &str,
    inference_api_version: Option<&str>,
) -> Result<Url> {
    let (_, base) = parse_target(target)?;
    let text = if deployment_in_path {
        if deployment.is_empty() {
            return Err(Error::invalid_input(OP, "the deployment name is empty"));
        }
        format!(
            "{base}/deployments/{}/chat/completions",
            encode_component(deployment)
        )
    } else {
        format!("{base}/chat/completions")
    };
    let mut url = Url::parse(&text).map_err(|e| {
        Error::invalid_input(OP, format!("inference URL {text:?} is not valid: {e}"))
    })?;
    if let Some(v) = inference_api_version
        .map(str::trim)
        .filter(|v| !v.is_empty())
    {
        url.query_pairs_mut().append_pair("api-version", v);
    }
    Ok(url)
}

/// The chat completion body of the validation scripts, as JSON text: only `messages` (one user
/// message, [`PROBE_MESSAGE`]) and, when the deployment is not in the path, `model` = the
/// deployment; keys in the scripts' order. No `max_tokens`, `max_completion_tokens`,
/// `temperature` or `stream`: gpt-5 and o-series deployments refuse `max_tokens` with 400
/// `unsupported_parameter`, and Foundry's own check sends no limit.
pub fn chat_completions_body(deployment: &str, deployment_in_path: bool) -> String {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        role: &'a str,
        content: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Body<'a> {
        messages: [Message<'a>; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<&'a str>,
    }
    let body = Body {
        messages: [Message {
            role: "user",
            content: PROBE_MESSAGE,
        }],
        model: (!deployment_in_path).then_some(deployment),
    };
    // Serialising two string fields cannot fail; an empty body would be refused as BadResponse.
    serde_json::to_string(&body).unwrap_or_default()
}

fn header_name(name: &str) -> Result<HeaderName> {
    HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Error::invalid_input(OP, format!("{name:?} is not a valid header name")))
}

fn sensitive_value(value: &str, what: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| Error::invalid_input(OP, format!("the {what} is not a valid header value")))?;
    v.set_sensitive(true);
    Ok(v)
}

/// The header name of an `authConfig` without a name, as the validation scripts default it:
/// `api_key` in the APIM script (`auth_config.get('name') or 'api_key'`), `api-key` in the
/// ModelGateway script (`auth_config.get('name', 'api-key')`).
pub fn default_auth_config_header(category: &ConnectionCategory) -> &'static str {
    match category {
        ConnectionCategory::ApiManagement => "api_key",
        _ => "api-key",
    }
}

/// The API key header: `api-key: <key>` without `authConfig`, else `<authConfig.name>:
/// <authConfig.format>` with `{api_key}` replaced (format default `{api_key}`, name default
/// [`default_auth_config_header`] of the category).
pub fn api_key_header(
    key: &SecretString,
    auth_config: Option<&AuthConfig>,
    category: &ConnectionCategory,
) -> Result<(HeaderName, HeaderValue)> {
    match auth_config {
        None => Ok((
            HeaderName::from_static("api-key"),
            sensitive_value(key.expose(), "API key")?,
        )),
        Some(c) => {
            let name = match c.name.trim() {
                "" => default_auth_config_header(category),
                name => name,
            };
            let format = if c.format.is_empty() {
                API_KEY_PLACEHOLDER
            } else {
                c.format.as_str()
            };
            let value = format.replace(API_KEY_PLACEHOLDER, key.expose());
            Ok((
                header_name(name)?,
                sensitive_value(&value, "API key header")?,
            ))
        }
    }
}

/// `Authorization: Bearer <token>`.
pub fn bearer_header(token: &str) -> Result<(HeaderName, HeaderValue)> {
    Ok((
        http::header::AUTHORIZATION,
        sensitive_value(&format!("Bearer {token}"), "token")?,
    ))
}

/// Every header of a gateway call, in the validation scripts' order: `Content-Type:
/// application/json` (the scripts send it on the discovery `GET`s too), then the auth header,
/// then the custom headers, which replace an earlier header of the same name as the scripts'
/// `headers.update(custom_headers)` does. No `Accept`: the HTTP client sends `*/*`, as Python's
/// `requests` does.
pub fn gateway_headers(
    auth: Option<(HeaderName, HeaderValue)>,
    custom_headers: &BTreeMap<String, SecretString>,
) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = auth {
        h.insert(name, value);
    }
    for (name, value) in custom_headers {
        h.insert(
            header_name(name)?,
            sensitive_value(value.expose(), "custom header value")?,
        );
    }
    Ok(h)
}

/// The OAuth2 client-credentials form body, as the ModelGateway script sends it:
/// `grant_type=client_credentials&client_id=…&client_secret=…&scope=<scopes joined by space>`,
/// without `scope` when there are no scopes.
pub fn oauth2_token_form(
    client_id: &str,
    client_secret: &SecretString,
    scopes: &[String],
) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client_id)
        .append_pair("client_secret", client_secret.expose());
    if !scopes.is_empty() {
        form.append_pair("scope", &scopes.join(" "));
    }
    form.finish()
}

/// The most model names kept from a discovery list; the rest are counted in
/// [`ModelList::omitted`].
pub const MAX_MODELS: usize = 1000;

/// Model names read from a discovery list body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelList {
    /// Distinct names in the order the gateway listed them, at most [`MAX_MODELS`].
    pub names: Vec<String>,
    /// Distinct names left out beyond [`MAX_MODELS`].
    pub omitted: usize,
}

/// Model names from a discovery list body: `value[].name` (AzureOpenAI) or `data[].id`
/// (OpenAI), without duplicates or empty names, at most [`MAX_MODELS`] (the others are only
/// counted). `Err` says, in our words, what is wrong with the body.
pub fn parse_model_list(
    provider: &DeploymentProvider,
    body: &[u8],
) -> std::result::Result<ModelList, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let (key, field) = provider_keys(provider);
    let items = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the body has no \"{key}\" array"))?;
    // The set borrows from `v`: the body is capped, so it stays small.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut list = ModelList::default();
    for name in items
        .iter()
        .filter_map(|i| i.get(field).and_then(Value::as_str))
        .filter(|n| !n.is_empty())
    {
        if !seen.insert(name) {
            continue;
        }
        if list.names.len() < MAX_MODELS {
            list.names.push(name.to_owned());
        } else {
            list.omitted = list.omitted.saturating_add(1);
        }
    }
    Ok(list)
}

/// The model name from a get-model body (`name` or `id`).
pub fn parse_model_object(
    provider: &DeploymentProvider,
    body: &[u8],
) -> std::result::Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_owned())?;
    let (_, field) = provider_keys(provider);
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("the body has no \"{field}\""))
}

fn provider_keys(provider: &DeploymentProvider) -> (&'static str, &'static str) {
    match provider {
        DeploymentProvider::OpenAI => ("data", "id"),
        _ => ("value", "name"),
    }
}

/// True when a chat completion body has a `choices` array.
pub fn is_chat_completion(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("choices").map(Value::is_array))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_urls() {
        let u = chat_completions_url(
            "https://contoso.azure-api.net/foundry/models/",
            true,
            "gpt-4o",
            Some("2024-02-01"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://contoso.azure-api.net/foundry/models/deployments/gpt-4o/chat/completions?api-version=2024-02-01"
        );
        let u =
            chat_completions_url("https://gw.example.com/llm", false, "gpt-4o", Some("")).unwrap();
        assert_eq!(u.as_str(), "https://gw.example.com/llm/chat/completions");
        let u = chat_completions_url("https://gw.example.com/llm", false, "gpt-4o", None).unwrap();
        assert_eq!(u.as_str(), "https://gw.example.com/llm/chat/completions");
        let u = chat_completions_url("http://127.0.0.1:4000", true, "a/b", None).unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:4000/deployments/a%2Fb/chat/completions"
        );
        assert!(chat_completions_url("ftp://x", true, "m", None).is_err());
        assert!(chat_completions_url("https://x/?a=1", true, "m", None).is_err());
        assert!(chat_completions_url("https://x", true, "", None).is_err());
    }

    #[test]
    fn inference_bodies() {
        assert_eq!(
            chat_completions_body("gpt-4o", true),
            r#"{"messages":[{"role":"user","content":"Hello!"}]}"#
        );
        assert_eq!(
            chat_completions_body("gpt-4o", false),
            r#"{"messages":[{"role":"user","content":"Hello!"}],"model":"gpt-4o"}"#
        );
        assert_eq!(
            chat_completions_body("a\"b", false),
            r#"{"messages":[{"role":"user","content":"Hello!"}],"model":"a\"b"}"#
        );
    }

    /// One case of reference §5 ("What the samples' validation scripts send"): the settings and
    /// the request the scripts build from them.
    struct Section5 {
        deployment_in_path: bool,
        inference_api_version: Option<&'static str>,
        auth_config: Option<AuthConfig>,
        category: ConnectionCategory,
        custom_headers: &'static [(&'static str, &'static str)],
        url: &'static str,
        body: &'static str,
        headers: &'static [(&'static str, &'static str)],
    }

    fn section5_cases() -> Vec<Section5> {
        const IN_PATH: &str = r#"{"messages":[{"role":"user","content":"Hello!"}]}"#;
        const IN_BODY: &str =
            r#"{"messages":[{"role":"user","content":"Hello!"}],"model":"gpt-5-mini"}"#;
        vec![
            // deploymentInPath true, api-version set, api-key.
            Section5 {
                deployment_in_path: true,
                inference_api_version: Some("2024-10-21"),
                auth_config: None,
                category: ConnectionCategory::ApiManagement,
                custom_headers: &[],
                url: "https://apim.example.com/openai/deployments/gpt-5-mini/chat/completions?api-version=2024-10-21",
                body: IN_PATH,
                headers: &[("content-type", "application/json"), ("api-key", "k-1")],
            },
            // deploymentInPath true, no api-version.
            Section5 {
                deployment_in_path: true,
                inference_api_version: None,
                auth_config: None,
                category: ConnectionCategory::ApiManagement,
                custom_headers: &[],
                url: "https://apim.example.com/openai/deployments/gpt-5-mini/chat/completions",
                body: IN_PATH,
                headers: &[("content-type", "application/json"), ("api-key", "k-1")],
            },
            // deploymentInPath false, empty api-version (the ModelGateway Bicep emits ""),
            // authConfig Bearer.
            Section5 {
                deployment_in_path: false,
                inference_api_version: Some(""),
                auth_config: Some(AuthConfig::new("Authorization", "Bearer {api_key}")),
                category: ConnectionCategory::ModelGateway,
                custom_headers: &[],
                url: "https://apim.example.com/openai/chat/completions",
                body: IN_BODY,
                headers: &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer k-1"),
                ],
            },
            // deploymentInPath false, api-version set, authConfig x-api-key, custom headers.
            Section5 {
                deployment_in_path: false,
                inference_api_version: Some("2025-03-01-preview"),
                auth_config: Some(AuthConfig::new("x-api-key", "{api_key}")),
                category: ConnectionCategory::ModelGateway,
                custom_headers: &[("X-Client-App", "foundry-agents"), ("X-Env", "prod")],
                url: "https://apim.example.com/openai/chat/completions?api-version=2025-03-01-preview",
                body: IN_BODY,
                headers: &[
                    ("content-type", "application/json"),
                    ("x-api-key", "k-1"),
                    ("x-client-app", "foundry-agents"),
                    ("x-env", "prod"),
                ],
            },
            // An authConfig without a name: `api_key` in the APIM script.
            Section5 {
                deployment_in_path: true,
                inference_api_version: None,
                auth_config: Some(AuthConfig::new("", "{api_key}")),
                category: ConnectionCategory::ApiManagement,
                custom_headers: &[("X-Client-App", "foundry-agents")],
                url: "https://apim.example.com/openai/deployments/gpt-5-mini/chat/completions",
                body: IN_PATH,
                headers: &[
                    ("content-type", "application/json"),
                    ("api_key", "k-1"),
                    ("x-client-app", "foundry-agents"),
                ],
            },
            // ... and `api-key` in the ModelGateway script.
            Section5 {
                deployment_in_path: false,
                inference_api_version: None,
                auth_config: Some(AuthConfig::new(" ", "Key {api_key}")),
                category: ConnectionCategory::ModelGateway,
                custom_headers: &[],
                url: "https://apim.example.com/openai/chat/completions",
                body: IN_BODY,
                headers: &[("content-type", "application/json"), ("api-key", "Key k-1")],
            },
        ]
    }

    #[test]
    fn the_chat_check_is_what_the_validation_scripts_send() {
        let key = SecretString::new("k-1");
        for (i, case) in section5_cases().into_iter().enumerate() {
            let url = chat_completions_url(
                "https://apim.example.com/openai",
                case.deployment_in_path,
                "gpt-5-mini",
                case.inference_api_version,
            )
            .unwrap();
            assert_eq!(url.as_str(), case.url, "case {i}");
            let body = chat_completions_body("gpt-5-mini", case.deployment_in_path);
            assert_eq!(body, case.body, "case {i}");
            let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&body)
                .unwrap()
                .keys()
                .cloned()
                .collect();
            for forbidden in [
                "max_tokens",
                "max_completion_tokens",
                "temperature",
                "stream",
            ] {
                assert!(!keys.iter().any(|k| k == forbidden), "case {i}: {keys:?}");
            }
            let custom: BTreeMap<String, SecretString> = case
                .custom_headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), SecretString::new(*v)))
                .collect();
            let auth = api_key_header(&key, case.auth_config.as_ref(), &case.category).unwrap();
            let headers = gateway_headers(Some(auth), &custom).unwrap();
            let sent: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
                .collect();
            assert_eq!(sent, case.headers, "case {i}");
        }
    }

    #[test]
    fn discovery_calls_are_what_the_validation_scripts_send() {
        // `GET {target}{listModelsEndpoint}` and the get-by-name endpoint, `api-version` only
        // when deploymentAPIVersion is set; the same headers as the chat check.
        let t = "https://apim.example.com/openai";
        for (api_version, list, get) in [
            (
                Some("2023-05-01"),
                "https://apim.example.com/openai/deployments?api-version=2023-05-01",
                "https://apim.example.com/openai/deployments/gpt-5-mini?api-version=2023-05-01",
            ),
            (
                None,
                "https://apim.example.com/openai/deployments",
                "https://apim.example.com/openai/deployments/gpt-5-mini",
            ),
            (
                Some(""),
                "https://apim.example.com/openai/deployments",
                "https://apim.example.com/openai/deployments/gpt-5-mini",
            ),
        ] {
            assert_eq!(
                discovery_url(t, "/deployments", api_version)
                    .unwrap()
                    .as_str(),
                list
            );
            assert_eq!(
                get_model_url(
                    t,
                    "/deployments/{deploymentName}",
                    "gpt-5-mini",
                    api_version
                )
                .unwrap()
                .as_str(),
                get
            );
        }
        let headers = gateway_headers(
            Some(bearer_header("tok").unwrap()),
            &BTreeMap::from([("X-Client-App".to_owned(), SecretString::new("a"))]),
        )
        .unwrap();
        let sent: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            sent,
            [
                ("content-type", "application/json"),
                ("authorization", "Bearer tok"),
                ("x-client-app", "a"),
            ]
        );
    }

    #[test]
    fn relative_discovery_urls() {
        let u = discovery_url(
            "https://contoso.azure-api.net/aoai/",
            "/deployments",
            Some("2023-05-01"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://contoso.azure-api.net/aoai/deployments?api-version=2023-05-01"
        );
        let u = discovery_url("https://gw.example.com/llm", "v1/models", None).unwrap();
        assert_eq!(u.as_str(), "https://gw.example.com/llm/v1/models");
        let u = discovery_url("https://gw.example.com", "/v1/models", Some(" ")).unwrap();
        assert_eq!(u.as_str(), "https://gw.example.com/v1/models");
        let u = get_model_url(
            "https://gw.example.com/aoai",
            "/deployments/{deploymentName}",
            "gpt 4o",
            Some("2023-05-01"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://gw.example.com/aoai/deployments/gpt%204o?api-version=2023-05-01"
        );
    }

    #[test]
    fn absolute_discovery_urls() {
        let t = "https://gw.example.com/llm";
        let u = discovery_url(
            t,
            "https://gw.example.com/openai/deployments?api-version=2022-12-01",
            Some("2024-01-01"),
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://gw.example.com/openai/deployments?api-version=2022-12-01"
        );
        let u = discovery_url(t, "https://GW.example.com:443/models", Some("2024-01-01")).unwrap();
        assert_eq!(
            u.as_str(),
            "https://gw.example.com/models?api-version=2024-01-01"
        );
        for bad in [
            "https://other.example.com/models",
            "http://gw.example.com/models",
            "https://gw.example.com:8443/models",
            "https://user:pw@gw.example.com/models",
            "https://gw.example.com/a/../models",
            "https://gw.example.com/a%2Fb/models",
            "https://gw.example.com/models#frag",
            "https://gw.example.com/models?api-version=1&api-version=2",
            "ftp://gw.example.com/models",
        ] {
            assert!(discovery_url(t, bad, Some("x")).is_err(), "{bad}");
        }
        assert!(discovery_url(t, "/models?api-version=1&api-version=1", None).is_err());
        assert!(discovery_url(t, "", None).is_err());
        assert!(get_model_url(t, "/deployments", "m", None).is_err());
    }

    #[test]
    fn api_key_headers() {
        let key = SecretString::new("k-123");
        let mg = ConnectionCategory::ModelGateway;
        let (n, v) = api_key_header(&key, None, &mg).unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("api-key", "k-123"));
        assert!(v.is_sensitive());
        let c = AuthConfig::new("Authorization", "Bearer {api_key}");
        let (n, v) = api_key_header(&key, Some(&c), &mg).unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer k-123")
        );
        let c = AuthConfig::new("x-api-key", "");
        let (n, v) = api_key_header(&key, Some(&c), &mg).unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-api-key", "k-123"));
        let c = AuthConfig::new("Ocp-Apim-Subscription-Key", "{api_key}");
        let (n, _) = api_key_header(&key, Some(&c), &mg).unwrap();
        assert_eq!(n.as_str(), "ocp-apim-subscription-key");
        let unnamed = AuthConfig::new("", "{api_key}");
        let (n, _) = api_key_header(&key, Some(&unnamed), &mg).unwrap();
        assert_eq!(n.as_str(), "api-key");
        let (n, _) =
            api_key_header(&key, Some(&unnamed), &ConnectionCategory::ApiManagement).unwrap();
        assert_eq!(n.as_str(), "api_key");
        assert!(
            api_key_header(&key, Some(&AuthConfig::new("bad header", "{api_key}")), &mg).is_err()
        );
        assert!(api_key_header(&SecretString::new("a\nb"), None, &mg).is_err());
    }

    #[test]
    fn custom_headers_come_last_and_replace_a_header_of_the_same_name() {
        let custom = BTreeMap::from([
            (
                "X-Client-App".to_string(),
                SecretString::new("foundry-agents"),
            ),
            ("api-key".to_string(), SecretString::new("custom-wins")),
        ]);
        let h = gateway_headers(
            Some(
                api_key_header(
                    &SecretString::new("k"),
                    None,
                    &ConnectionCategory::ModelGateway,
                )
                .unwrap(),
            ),
            &custom,
        )
        .unwrap();
        assert_eq!(h["x-client-app"], "foundry-agents");
        assert_eq!(h["api-key"], "custom-wins");
        assert_eq!(h["content-type"], "application/json");
        assert!(h.get("accept").is_none());
        let (n, v) = bearer_header("tok").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Bearer tok")
        );
        let h = gateway_headers(None, &BTreeMap::new()).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn oauth2_form() {
        let f = oauth2_token_form(
            "cid",
            &SecretString::new("s e&c"),
            &["api://gw/.default".into(), "b".into()],
        );
        assert_eq!(
            f,
            "grant_type=client_credentials&client_id=cid&client_secret=s+e%26c&scope=api%3A%2F%2Fgw%2F.default+b"
        );
        assert_eq!(
            oauth2_token_form("cid", &SecretString::new("s"), &[]),
            "grant_type=client_credentials&client_id=cid&client_secret=s"
        );
    }

    #[test]
    fn discovery_bodies() {
        let aoai = br#"{"value":[{"name":"gpt-4o","properties":{"model":{"format":"OpenAI","name":"gpt-4o","version":"2024-11-20"}}},{"x":1}]}"#;
        assert_eq!(
            parse_model_list(&DeploymentProvider::AzureOpenAI, aoai)
                .unwrap()
                .names,
            vec!["gpt-4o"]
        );
        let oai = br#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1687882411,"owned_by":"openai"},{"id":"m2"}]}"#;
        assert_eq!(
            parse_model_list(&DeploymentProvider::OpenAI, oai).unwrap(),
            ModelList {
                names: vec!["gpt-4o".into(), "m2".into()],
                omitted: 0
            }
        );
        assert!(parse_model_list(&DeploymentProvider::OpenAI, aoai).is_err());
        assert!(parse_model_list(&DeploymentProvider::AzureOpenAI, b"<html>").is_err());
        assert_eq!(
            parse_model_object(&DeploymentProvider::AzureOpenAI, br#"{"name":"gpt-4o"}"#).unwrap(),
            "gpt-4o"
        );
        assert_eq!(
            parse_model_object(&DeploymentProvider::OpenAI, br#"{"id":"m"}"#).unwrap(),
            "m"
        );
        assert!(parse_model_object(&DeploymentProvider::OpenAI, br#"{"name":"m"}"#).is_err());
        assert!(is_chat_completion(br#"{"choices":[]}"#));
        assert!(!is_chat_completion(br#"{"error":{}}"#));
        assert!(!is_chat_completion(b"pong"));
    }

    #[test]
    fn model_lists_are_deduplicated_and_capped() {
        let ids: Vec<String> = (0..1500)
            .map(|i| format!(r#"{{"id":"m{i}"}}"#))
            .chain([
                r#"{"id":"m0"}"#.into(),
                r#"{"id":""}"#.into(),
                r#"{"id":7}"#.into(),
            ])
            .collect();
        let body = format!(r#"{{"data":[{}]}}"#, ids.join(","));
        let list = parse_model_list(&DeploymentProvider::OpenAI, body.as_bytes()).unwrap();
        assert_eq!(list.names.len(), MAX_MODELS);
        assert_eq!(list.omitted, 500);
        assert_eq!(list.names[0], "m0");
        assert_eq!(list.names[999], "m999");
        let dup = br#"{"value":[{"name":"a"},{"name":"b"},{"name":"a"}]}"#;
        let list = parse_model_list(&DeploymentProvider::AzureOpenAI, dup).unwrap();
        assert_eq!(
            (list.names, list.omitted),
            (vec!["a".into(), "b".into()], 0)
        );
    }
}
