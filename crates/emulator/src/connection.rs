//! Project connections: validation of ARM bodies and the gateway rules a connection implies
//! (reference §1.4–1.5 and §3). Pure functions only; IO lives in `arm` and `gateway`.

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use url::Url;

/// A connection body that passed validation, split into what may be returned and the secrets.
#[derive(Debug, Clone)]
pub(crate) struct ValidConnection {
    /// `properties` without `credentials`.
    pub(crate) properties: Map<String, Value>,
    /// `properties.credentials`, kept only for gateway calls.
    pub(crate) credentials: Option<Value>,
}

const GATEWAY_AUTH_TYPES: &[&str] = &["ApiKey", "OAuth2", "ProjectManagedIdentity", "AAD", "None"];

/// Checks a connection name against `^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$`.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let len = name.chars().count();
    if first_ok && rest_ok && (3..=33).contains(&len) {
        Ok(())
    } else {
        Err(format!(
            "connection name '{name}' is invalid: it must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{2,32}}$ (3 to 33 characters, starting with a letter or digit)"
        ))
    }
}

/// Whether the category is one of the two gateway categories.
pub(crate) fn is_gateway_category(category: &str) -> bool {
    category.eq_ignore_ascii_case("ApiManagement") || category.eq_ignore_ascii_case("ModelGateway")
}

fn is_apim(category: &str) -> bool {
    category.eq_ignore_ascii_case("ApiManagement")
}

/// Validates a whole PUT body `{ "properties": … }`; `type`, `name` and unknown top-level
/// fields are ignored.
pub(crate) fn validate_body(body: &Value) -> Result<ValidConnection, String> {
    let Some(obj) = body.as_object() else {
        return Err("the request body must be a JSON object".into());
    };
    match obj.get("properties") {
        Some(Value::Object(props)) => validate_properties(props.clone()),
        Some(_) => Err("'properties' must be an object".into()),
        None => Err("'properties' is required".into()),
    }
}

/// Validates connection properties (including `credentials`) and splits off the secrets.
pub(crate) fn validate_properties(
    mut props: Map<String, Value>,
) -> Result<ValidConnection, String> {
    let category = required_string(&props, "category")?;
    let auth_type = required_string(&props, "authType")?;
    let gateway = is_gateway_category(&category);

    for (field, expect) in [
        ("target", "a string"),
        ("expiryTime", "a string"),
        ("isSharedToAll", "a boolean"),
        ("useWorkspaceManagedIdentity", "a boolean"),
        ("sharedUserList", "an array of strings"),
        ("metadata", "an object"),
        ("credentials", "an object"),
        ("tokenUrl", "a string"),
        ("scopes", "an array of strings"),
        ("audience", "a string"),
    ] {
        if let Some(v) = props.get(field) {
            let ok = match expect {
                "a string" => v.is_string(),
                "a boolean" => v.is_boolean(),
                "an object" => v.is_object(),
                _ => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
            };
            if !ok && !v.is_null() {
                return Err(format!("properties.{field} must be {expect}"));
            }
        }
    }

    let metadata = string_metadata(&props)?;
    if gateway {
        let target = props
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let target = parse_target(target)?;
        let parsed = GatewayMetadata::parse(&category, &target, &metadata)?;
        if parsed.auth_config.is_some() && auth_type != "ApiKey" {
            return Err(format!(
                "metadata.authConfig applies only to authType ApiKey, not '{auth_type}'"
            ));
        }
        if !GATEWAY_AUTH_TYPES.contains(&auth_type.as_str()) {
            return Err(format!(
                "authType '{auth_type}' is not supported for {category} connections; use one of {}",
                GATEWAY_AUTH_TYPES.join(", ")
            ));
        }
    }

    let credentials = props.remove("credentials").filter(|v| !v.is_null());
    validate_credentials(&auth_type, gateway, &props, credentials.as_ref())?;
    Ok(ValidConnection {
        properties: props,
        credentials,
    })
}

fn required_string(props: &Map<String, Value>, field: &str) -> Result<String, String> {
    match props.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("properties.{field} must not be empty")),
        Some(_) => Err(format!("properties.{field} must be a string")),
        None => Err(format!("properties.{field} is required")),
    }
}

/// The metadata as a string map; any non-string value is rejected (open question 2 decided:
/// the wire form is `map<string,string>`, so objects and arrays must be sent as JSON text).
pub(crate) fn string_metadata(props: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let Some(Value::Object(meta)) = props.get("metadata") else {
        return Ok(Vec::new());
    };
    meta.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(format!(
                "properties.metadata.{k} must be a string, got {}; complex metadata values such as 'models', 'modelDiscovery', 'customHeaders' and 'authConfig' must be sent as JSON text",
                json_kind(other)
            )),
        })
        .collect()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_target(target: &str) -> Result<Url, String> {
    if target.is_empty() {
        return Err("properties.target is required for gateway connections".into());
    }
    let url = Url::parse(target)
        .map_err(|e| format!("properties.target '{target}' is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(format!("properties.target '{target}' must be an https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!(
            "properties.target '{target}' must not contain credentials or a fragment"
        ));
    }
    Ok(url)
}

fn validate_credentials(
    auth_type: &str,
    gateway: bool,
    props: &Map<String, Value>,
    credentials: Option<&Value>,
) -> Result<(), String> {
    let creds = credentials.and_then(Value::as_object);
    let non_empty = |field: &str| -> Result<(), String> {
        match creds.and_then(|c| c.get(field)) {
            Some(Value::String(s)) if !s.is_empty() => Ok(()),
            Some(_) => Err(format!(
                "properties.credentials.{field} must be a non-empty string"
            )),
            None => Err(format!(
                "properties.credentials.{field} is required for authType {auth_type}"
            )),
        }
    };
    match auth_type {
        "ApiKey" => non_empty("key"),
        "OAuth2" => {
            non_empty("clientId")?;
            non_empty("clientSecret")?;
            if gateway {
                let token_url = props
                    .get("tokenUrl")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if token_url.is_empty() {
                    return Err(
                        "properties.tokenUrl is required for OAuth2 gateway connections".into(),
                    );
                }
                let url = Url::parse(token_url)
                    .map_err(|e| format!("properties.tokenUrl is not an absolute URL: {e}"))?;
                if !matches!(url.scheme(), "https" | "http") {
                    return Err("properties.tokenUrl must be an https URL".into());
                }
            }
            Ok(())
        }
        "ProjectManagedIdentity" | "AAD" | "None" => {
            if creds.is_some_and(|c| !c.is_empty()) {
                return Err(format!(
                    "properties.credentials must be empty for authType {auth_type}"
                ));
            }
            if props
                .get("audience")
                .and_then(Value::as_str)
                .is_some_and(str::is_empty)
            {
                return Err("properties.audience must not be empty".into());
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Where the model list of a connection comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelSource {
    /// `metadata.models`: deployment names.
    Static(Vec<String>),
    /// `metadata.modelDiscovery` (or the APIM defaults).
    Discovery(Discovery),
}

/// Dynamic discovery endpoints of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Discovery {
    pub(crate) list_endpoint: String,
    pub(crate) get_endpoint: String,
    pub(crate) provider: Provider,
}

/// How discovery responses are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    AzureOpenAI,
    OpenAI,
}

/// `metadata.authConfig`: how an API key is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthConfig {
    pub(crate) name: String,
    pub(crate) format: String,
}

/// The gateway rules that a connection's metadata implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayMetadata {
    pub(crate) deployment_in_path: bool,
    pub(crate) inference_api_version: Option<String>,
    pub(crate) deployment_api_version: Option<String>,
    pub(crate) models: ModelSource,
    pub(crate) custom_headers: Vec<(String, String)>,
    pub(crate) auth_config: Option<AuthConfig>,
}

impl GatewayMetadata {
    /// Parses and checks the gateway metadata keys of a connection.
    pub(crate) fn parse(
        category: &str,
        target: &Url,
        metadata: &[(String, String)],
    ) -> Result<Self, String> {
        let get = |k: &str| {
            metadata
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let apim = is_apim(category);

        let deployment_in_path = match get("deploymentInPath") {
            None => apim,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(format!(
                    "metadata.deploymentInPath must be \"true\" or \"false\", got \"{v}\""
                ));
            }
        };
        let non_empty =
            |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
        let inference_api_version = non_empty(get("inferenceAPIVersion"));
        let deployment_api_version = non_empty(get("deploymentAPIVersion"));

        let models = match (get("models"), get("modelDiscovery")) {
            (Some(_), Some(_)) => {
                return Err(
                    "metadata.models and metadata.modelDiscovery are mutually exclusive; set only one".into()
                );
            }
            (Some(m), None) => ModelSource::Static(parse_static_models(m)?),
            (None, Some(d)) => ModelSource::Discovery(parse_discovery(d, apim, target)?),
            (None, None) if apim => ModelSource::Discovery(apim_default_discovery()),
            (None, None) => {
                return Err(format!(
                    "{category} connections need metadata.models (static list) or metadata.modelDiscovery"
                ));
            }
        };

        let custom_headers = match get("customHeaders") {
            None => Vec::new(),
            Some(text) => parse_custom_headers(text)?,
        };
        let auth_config = match get("authConfig") {
            None => None,
            Some(text) => Some(parse_auth_config(text, apim)?),
        };
        Ok(Self {
            deployment_in_path,
            inference_api_version,
            deployment_api_version,
            models,
            custom_headers,
            auth_config,
        })
    }
}

fn apim_default_discovery() -> Discovery {
    Discovery {
        list_endpoint: "/deployments".into(),
        get_endpoint: "/deployments/{deploymentName}".into(),
        provider: Provider::AzureOpenAI,
    }
}

fn parse_json(key: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("metadata.{key} is not valid JSON text: {e}"))
}

fn parse_static_models(text: &str) -> Result<Vec<String>, String> {
    let value = parse_json("models", text)?;
    let Some(items) = value.as_array() else {
        return Err(
            "metadata.models must be a JSON array of {\"name\",\"properties\":{\"model\":{…}}}"
                .into(),
        );
    };
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            return Err(format!("metadata.models[{i}].name is required"));
        }
        let model = item.get("properties").and_then(|p| p.get("model"));
        let Some(model) = model.and_then(Value::as_object) else {
            return Err(format!("metadata.models[{i}].properties.model is required"));
        };
        if model
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!(
                "metadata.models[{i}].properties.model.name is required"
            ));
        }
        for field in ["version", "format"] {
            if model.get(field).is_some_and(|v| !v.is_string()) {
                return Err(format!(
                    "metadata.models[{i}].properties.model.{field} must be a string"
                ));
            }
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("metadata.models lists '{name}' twice"));
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err("metadata.models must list at least one model".into());
    }
    Ok(names)
}

fn parse_discovery(text: &str, apim: bool, target: &Url) -> Result<Discovery, String> {
    let value = parse_json("modelDiscovery", text)?;
    let Some(obj) = value.as_object() else {
        return Err("metadata.modelDiscovery must be a JSON object".into());
    };
    let defaults = apim_default_discovery();
    let field = |name: &str, default: &str| -> Result<String, String> {
        match obj.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | None if apim => Ok(default.to_string()),
            Some(Value::String(_)) | None => {
                Err(format!("metadata.modelDiscovery.{name} is required"))
            }
            Some(_) => Err(format!("metadata.modelDiscovery.{name} must be a string")),
        }
    };
    let list_endpoint = field("listModelsEndpoint", &defaults.list_endpoint)?;
    let get_endpoint = field("getModelEndpoint", &defaults.get_endpoint)?;
    let provider = match field("deploymentProvider", "AzureOpenAI")?.as_str() {
        p if p.eq_ignore_ascii_case("AzureOpenAI") => Provider::AzureOpenAI,
        p if p.eq_ignore_ascii_case("OpenAI") => Provider::OpenAI,
        other => {
            return Err(format!(
                "metadata.modelDiscovery.deploymentProvider must be AzureOpenAI or OpenAI, got '{other}'"
            ));
        }
    };
    if get_endpoint.matches("{deploymentName}").count() != 1 {
        return Err(format!(
            "metadata.modelDiscovery.getModelEndpoint must contain {{deploymentName}} exactly once, got '{get_endpoint}'"
        ));
    }
    check_endpoint("listModelsEndpoint", &list_endpoint, target)?;
    check_endpoint(
        "getModelEndpoint",
        &get_endpoint.replace("{deploymentName}", "x"),
        target,
    )?;
    Ok(Discovery {
        list_endpoint,
        get_endpoint,
        provider,
    })
}

fn is_absolute(endpoint: &str) -> bool {
    let lower = endpoint.to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Rules for discovery endpoints: relative paths, or absolute URLs on the target's origin
/// without userinfo, fragments, `..`, encoded slashes or a duplicate `api-version`.
fn check_endpoint(name: &str, endpoint: &str, target: &Url) -> Result<(), String> {
    let lower = endpoint.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(format!(
            "metadata.modelDiscovery.{name} must not contain encoded slashes"
        ));
    }
    if endpoint.contains('#') {
        return Err(format!(
            "metadata.modelDiscovery.{name} must not contain a fragment"
        ));
    }
    let path = endpoint.split('?').next().unwrap_or_default();
    if path.split('/').any(|seg| seg == "..") {
        return Err(format!(
            "metadata.modelDiscovery.{name} must not contain '..' segments"
        ));
    }
    let api_versions = endpoint
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|kv| kv.starts_with("api-version="))
                .count()
        })
        .unwrap_or(0);
    if api_versions > 1 {
        return Err(format!(
            "metadata.modelDiscovery.{name} has more than one api-version"
        ));
    }
    if is_absolute(endpoint) {
        let url = Url::parse(endpoint)
            .map_err(|e| format!("metadata.modelDiscovery.{name} is not a valid URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "metadata.modelDiscovery.{name} must not contain userinfo"
            ));
        }
        let same_origin = url.scheme() == target.scheme()
            && url.host_str() == target.host_str()
            && url.port_or_known_default() == target.port_or_known_default();
        if !same_origin {
            return Err(format!(
                "metadata.modelDiscovery.{name} '{endpoint}' must be on the same origin (scheme, host and port) as the target '{}'",
                target.origin().ascii_serialization()
            ));
        }
    } else if endpoint.contains("://") {
        return Err(format!(
            "metadata.modelDiscovery.{name} must be a path relative to the target or an https URL"
        ));
    }
    Ok(())
}

fn parse_custom_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let value = parse_json("customHeaders", text)?;
    let Some(obj) = value.as_object() else {
        return Err(
            "metadata.customHeaders must be a JSON object of header names to values".into(),
        );
    };
    obj.iter()
        .map(|(k, v)| {
            let Some(v) = v.as_str() else {
                return Err(format!("metadata.customHeaders.{k} must be a string"));
            };
            if HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(format!(
                    "metadata.customHeaders has an invalid header name '{k}'"
                ));
            }
            if HeaderValue::from_str(v).is_err() {
                return Err(format!(
                    "metadata.customHeaders.{k} is not a valid header value"
                ));
            }
            Ok((k.clone(), v.to_string()))
        })
        .collect()
}

/// The header of an `authConfig` without a name, as the samples' validation scripts default it:
/// `api_key` in the APIM script (`auth_config.get('name') or 'api_key'`), `api-key` in the
/// ModelGateway script (`auth_config.get('name', 'api-key')`); the operator's probe does the
/// same.
fn default_auth_config_name(apim: bool) -> &'static str {
    if apim { "api_key" } else { "api-key" }
}

fn parse_auth_config(text: &str, apim: bool) -> Result<AuthConfig, String> {
    let value = parse_json("authConfig", text)?;
    let Some(obj) = value.as_object() else {
        return Err("metadata.authConfig must be a JSON object".into());
    };
    if let Some(t) = obj.get("type")
        && t.as_str() != Some("api_key")
    {
        return Err("metadata.authConfig.type must be \"api_key\"".into());
    }
    let name = match obj.get("name") {
        None | Some(Value::Null) => "",
        Some(Value::String(n)) => n.trim(),
        Some(_) => return Err("metadata.authConfig.name must be a string".into()),
    };
    let name = if name.is_empty() {
        default_auth_config_name(apim)
    } else {
        name
    };
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err("metadata.authConfig.name must be a valid header name".into());
    }
    let format = match obj.get("format") {
        None => "{api_key}".to_string(),
        Some(Value::String(f)) if f.contains("{api_key}") => f.clone(),
        Some(_) => {
            return Err("metadata.authConfig.format must be a string containing {api_key}".into());
        }
    };
    Ok(AuthConfig {
        name: name.to_string(),
        format,
    })
}

/// Target with a trailing slash removed, the base of relative gateway paths.
fn base(target: &Url) -> String {
    target.as_str().trim_end_matches('/').to_string()
}

fn with_api_version(url: String, api_version: Option<&str>) -> String {
    match api_version {
        Some(v) if !url.contains("api-version=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}api-version={}", encode_component(v))
        }
        _ => url,
    }
}

/// Percent-encodes everything except RFC 3986 unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn join_endpoint(target: &Url, endpoint: &str) -> String {
    if is_absolute(endpoint) {
        endpoint.to_string()
    } else if endpoint.starts_with('/') {
        format!("{}{endpoint}", base(target))
    } else {
        format!("{}/{endpoint}", base(target))
    }
}

/// `POST` URL of a chat completion for the deployment.
pub(crate) fn inference_url(target: &Url, meta: &GatewayMetadata, deployment: &str) -> String {
    let url = if meta.deployment_in_path {
        format!(
            "{}/deployments/{}/chat/completions",
            base(target),
            encode_component(deployment)
        )
    } else {
        format!("{}/chat/completions", base(target))
    };
    with_api_version(url, meta.inference_api_version.as_deref())
}

/// `GET` URL listing the models of a discovery connection.
pub(crate) fn discovery_list_url(target: &Url, meta: &GatewayMetadata, d: &Discovery) -> String {
    with_api_version(
        join_endpoint(target, &d.list_endpoint),
        meta.deployment_api_version.as_deref(),
    )
}

/// `GET` URL of one model of a discovery connection.
pub(crate) fn discovery_get_url(
    target: &Url,
    meta: &GatewayMetadata,
    d: &Discovery,
    deployment: &str,
) -> String {
    let endpoint = d
        .get_endpoint
        .replace("{deploymentName}", &encode_component(deployment));
    with_api_version(
        join_endpoint(target, &endpoint),
        meta.deployment_api_version.as_deref(),
    )
}

/// Deployment names in a discovery list response.
pub(crate) fn parse_model_list(provider: Provider, body: &Value) -> Result<Vec<String>, String> {
    let names = |key: &str, field: &str| -> Option<Vec<String>> {
        body.get(key)?.as_array().map(|items| {
            items
                .iter()
                .filter_map(|i| i.get(field).and_then(Value::as_str).map(String::from))
                .collect()
        })
    };
    match provider {
        // The ARM deployment shape the docs define; the Azure OpenAI data-plane shape
        // (`data[].id`) is accepted too (open question 7).
        Provider::AzureOpenAI => names("value", "name")
            .or_else(|| names("data", "id"))
            .ok_or_else(|| "expected {\"value\":[{\"name\":…}]} (AzureOpenAI format)".to_string()),
        Provider::OpenAI => names("data", "id")
            .ok_or_else(|| "expected {\"data\":[{\"id\":…}]} (OpenAI format)".to_string()),
    }
}

/// The deployment name in a discovery get-by-name response.
pub(crate) fn parse_model_get(provider: Provider, body: &Value) -> Option<String> {
    let field = match provider {
        Provider::AzureOpenAI => body.get("name").or_else(|| body.get("id")),
        Provider::OpenAI => body.get("id"),
    };
    field.and_then(Value::as_str).map(String::from)
}

/// How the gateway authenticates Foundry's calls.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum GatewayAuth {
    None,
    ApiKey {
        header: String,
        value: String,
    },
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scopes: Vec<String>,
    },
    ProjectIdentity {
        audience: String,
    },
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::ApiKey { header, .. } => write!(f, "ApiKey({header})"),
            Self::OAuth2 { token_url, .. } => write!(f, "OAuth2({token_url})"),
            Self::ProjectIdentity { audience } => write!(f, "ProjectIdentity({audience})"),
        }
    }
}

/// Default audience of Entra-authenticated gateways.
pub(crate) const DEFAULT_GATEWAY_AUDIENCE: &str = "https://cognitiveservices.azure.com";

impl GatewayAuth {
    /// Builds the auth of a stored, validated connection.
    pub(crate) fn from_connection(
        props: &Map<String, Value>,
        credentials: Option<&Value>,
        meta: &GatewayMetadata,
    ) -> Result<Self, String> {
        let auth_type = props
            .get("authType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let cred = |k: &str| {
            credentials
                .and_then(|c| c.get(k))
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| format!("connection credentials lack '{k}'"))
        };
        match auth_type {
            "ApiKey" => {
                let key = cred("key")?;
                let (header, value) = match &meta.auth_config {
                    Some(ac) => (ac.name.clone(), ac.format.replace("{api_key}", &key)),
                    None => ("api-key".to_string(), key),
                };
                Ok(Self::ApiKey { header, value })
            }
            "OAuth2" => Ok(Self::OAuth2 {
                token_url: props
                    .get("tokenUrl")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                client_id: cred("clientId")?,
                client_secret: cred("clientSecret")?,
                scopes: props
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            "ProjectManagedIdentity" | "AAD" => Ok(Self::ProjectIdentity {
                audience: props
                    .get("audience")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_GATEWAY_AUDIENCE)
                    .to_string(),
            }),
            "None" => Ok(Self::None),
            other => Err(format!(
                "authType '{other}' cannot be used to call a gateway"
            )),
        }
    }
}

/// Every string inside the credentials, to scrub them from texts that leave the emulator.
pub(crate) fn secret_strings(credentials: Option<&Value>) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.len() >= 4 => out.push(s.clone()),
            Value::Object(m) => m.values().for_each(|v| walk(v, out)),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(c) = credentials {
        walk(c, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn mg(metadata: Value) -> Value {
        json!({"properties": {
            "category": "ModelGateway", "target": "https://gw.example.com/llm", "authType": "ApiKey",
            "credentials": {"key": "k-123"}, "metadata": metadata }})
    }

    const MODELS: &str = r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#;

    #[test]
    fn names_follow_the_arm_pattern() {
        assert!(validate_name("abc").is_ok());
        assert!(validate_name("a1_b-c").is_ok());
        assert!(validate_name(&"a".repeat(33)).is_ok());
        assert!(validate_name(&"a".repeat(34)).is_err());
        assert!(validate_name("ab").is_err());
        assert!(validate_name("-abc").is_err());
        assert!(validate_name("ab.c").is_err());
    }

    #[test]
    fn credentials_are_split_from_the_returned_properties() {
        let v = validate_body(&mg(json!({"models": MODELS}))).unwrap();
        assert!(!v.properties.contains_key("credentials"));
        assert_eq!(v.credentials, Some(json!({"key": "k-123"})));
    }

    #[test]
    fn required_fields_are_named_in_errors() {
        assert_eq!(
            validate_body(&json!({})).unwrap_err(),
            "'properties' is required"
        );
        let e = validate_body(&json!({"properties": {"authType": "ApiKey"}})).unwrap_err();
        assert!(e.contains("properties.category is required"), "{e}");
        let e = validate_body(&json!({"properties": {"category": "ModelGateway"}})).unwrap_err();
        assert!(e.contains("properties.authType is required"), "{e}");
    }

    #[test]
    fn metadata_values_must_be_strings() {
        let e = validate_body(&mg(json!({"models": [{"name": "x"}]}))).unwrap_err();
        assert!(
            e.contains("metadata.models must be a string, got an array"),
            "{e}"
        );
    }

    #[test]
    fn models_and_discovery_are_exclusive_and_one_is_needed() {
        let d = r#"{"listModelsEndpoint":"/v1/models","getModelEndpoint":"/v1/models/{deploymentName}","deploymentProvider":"OpenAI"}"#;
        let e = validate_body(&mg(json!({"models": MODELS, "modelDiscovery": d}))).unwrap_err();
        assert!(e.contains("mutually exclusive"), "{e}");
        let e = validate_body(&mg(json!({}))).unwrap_err();
        assert!(e.contains("need metadata.models"), "{e}");
        assert!(validate_body(&mg(json!({"modelDiscovery": d}))).is_ok());
    }

    #[test]
    fn static_models_must_match_the_documented_shape() {
        for (bad, why) in [
            ("not json", "not valid JSON"),
            (r#"{"name":"x"}"#, "JSON array"),
            (
                r#"[{"properties":{"model":{"name":"m"}}}]"#,
                "models[0].name is required",
            ),
            (
                r#"[{"name":"x"}]"#,
                "models[0].properties.model is required",
            ),
            (
                r#"[{"name":"x","properties":{"model":{"name":"m","version":1}}}]"#,
                "version must be a string",
            ),
            ("[]", "at least one"),
        ] {
            let e = validate_body(&mg(json!({"models": bad}))).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn discovery_endpoints_are_checked() {
        let d = |list: &str, get: &str| {
            format!(
                r#"{{"listModelsEndpoint":"{list}","getModelEndpoint":"{get}","deploymentProvider":"OpenAI"}}"#
            )
        };
        let cases = [
            (d("/m", "/m/x"), "exactly once"),
            (
                d("/m", "/m/{deploymentName}/{deploymentName}"),
                "exactly once",
            ),
            (
                d("https://other.example.com/m", "/m/{deploymentName}"),
                "same origin",
            ),
            (
                d("https://gw.example.com:8443/m", "/m/{deploymentName}"),
                "same origin",
            ),
            (d("/a/../m", "/m/{deploymentName}"), "'..'"),
            (d("/a%2Fm", "/m/{deploymentName}"), "encoded slashes"),
            (
                d("/m?api-version=1&api-version=2", "/m/{deploymentName}"),
                "more than one api-version",
            ),
            (
                d("https://u:p@gw.example.com/m", "/m/{deploymentName}"),
                "userinfo",
            ),
        ];
        for (disc, why) in cases {
            let e = validate_body(&mg(json!({"modelDiscovery": disc}))).unwrap_err();
            assert!(e.contains(why), "{disc}: {e}");
        }
        let ok = d(
            "https://gw.example.com/llm/v1/models?api-version=2024-10-21",
            "v1/models/{deploymentName}",
        );
        assert!(validate_body(&mg(json!({"modelDiscovery": ok}))).is_ok());
        let bad_provider = r#"{"listModelsEndpoint":"/m","getModelEndpoint":"/m/{deploymentName}","deploymentProvider":"Gemini"}"#;
        assert!(
            validate_body(&mg(json!({"modelDiscovery": bad_provider})))
                .unwrap_err()
                .contains("AzureOpenAI or OpenAI")
        );
    }

    #[test]
    fn credentials_shape_follows_the_auth_type() {
        let base = |auth: &str, creds: Value, extra: Value| {
            let mut p = json!({"category": "ModelGateway", "target": "https://gw.example.com", "authType": auth,
                "metadata": {"models": MODELS}, "credentials": creds});
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            validate_properties(props(p))
        };
        assert!(
            base("ApiKey", json!({}), json!({}))
                .unwrap_err()
                .contains("credentials.key is required")
        );
        assert!(
            base("ApiKey", json!({"key": ""}), json!({}))
                .unwrap_err()
                .contains("non-empty")
        );
        let e = base(
            "OAuth2",
            json!({"clientId": "c", "clientSecret": "s"}),
            json!({}),
        )
        .unwrap_err();
        assert!(e.contains("tokenUrl is required"), "{e}");
        let e = base(
            "OAuth2",
            json!({"clientId": "c"}),
            json!({"tokenUrl": "https://t/token"}),
        )
        .unwrap_err();
        assert!(e.contains("clientSecret"), "{e}");
        // Open question 3: a non-UUID client id is accepted.
        assert!(
            base(
                "OAuth2",
                json!({"clientId": "gw-client", "clientSecret": "s"}),
                json!({"tokenUrl": "https://t/token", "scopes": ["api://gw/.default"]})
            )
            .is_ok()
        );
        assert!(
            base(
                "ProjectManagedIdentity",
                json!({}),
                json!({"audience": "https://cognitiveservices.azure.com"})
            )
            .is_ok()
        );
        assert!(base("AAD", Value::Null, json!({})).is_ok());
        assert!(
            base("AAD", json!({"key": "x"}), json!({}))
                .unwrap_err()
                .contains("must be empty")
        );
        assert!(
            base("PAT", json!({"pat": "x"}), json!({}))
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn other_categories_are_stored_without_gateway_rules() {
        let v = validate_body(
            &json!({"properties": {"category": "ContainerRegistry", "target": "[tartget url]",
            "authType": "None", "expiryTime": "2024-03-15T14:30:00Z"}}),
        );
        assert!(v.is_ok());
    }

    #[test]
    fn auth_config_and_custom_headers_are_parsed() {
        let v = validate_body(&mg(json!({"models": MODELS,
            "authConfig": r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#,
            "customHeaders": r#"{"X-Client-App":"foundry-agents"}"#}))).unwrap();
        let meta = GatewayMetadata::parse(
            "ModelGateway",
            &Url::parse("https://gw.example.com/llm").unwrap(),
            &string_metadata(&v.properties).unwrap(),
        )
        .unwrap();
        assert_eq!(
            meta.custom_headers,
            vec![("X-Client-App".to_string(), "foundry-agents".to_string())]
        );
        let auth =
            GatewayAuth::from_connection(&v.properties, v.credentials.as_ref(), &meta).unwrap();
        assert_eq!(
            auth,
            GatewayAuth::ApiKey {
                header: "Authorization".into(),
                value: "Bearer k-123".into()
            }
        );
        let e = validate_body(&mg(json!({"models": MODELS, "authConfig": r#"{"name":"x-key","format":"no placeholder"}"#}))).unwrap_err();
        assert!(e.contains("{api_key}"), "{e}");
        let e = validate_body(&mg(
            json!({"models": MODELS, "authConfig": r#"{"name":"bad header"}"#}),
        ))
        .unwrap_err();
        assert!(e.contains("valid header name"), "{e}");
        let e = validate_body(&mg(
            json!({"models": MODELS, "authConfig": r#"{"name":7}"#}),
        ))
        .unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
    }

    #[test]
    fn an_auth_config_without_a_name_uses_the_validation_scripts_default_header() {
        let target = Url::parse("https://gw.example.com/llm").unwrap();
        for (category, config, header) in [
            (
                "ModelGateway",
                r#"{"type":"api_key","format":"Key {api_key}"}"#,
                "api-key",
            ),
            (
                "ModelGateway",
                r#"{"type":"api_key","name":"","format":"Key {api_key}"}"#,
                "api-key",
            ),
            (
                "ModelGateway",
                r#"{"name":" ","format":"Key {api_key}"}"#,
                "api-key",
            ),
            (
                "ModelGateway",
                r#"{"name":null,"format":"Key {api_key}"}"#,
                "api-key",
            ),
            (
                "ApiManagement",
                r#"{"type":"api_key","format":"Key {api_key}"}"#,
                "api_key",
            ),
            (
                "ApiManagement",
                r#"{"name":"","format":"Key {api_key}"}"#,
                "api_key",
            ),
            (
                "ApiManagement",
                r#"{"name":" x-key ","format":"Key {api_key}"}"#,
                "x-key",
            ),
        ] {
            let mut body = mg(json!({"models": MODELS, "authConfig": config}));
            body["properties"]["category"] = json!(category);
            let v = validate_body(&body).unwrap_or_else(|e| panic!("{category} {config}: {e}"));
            let meta =
                GatewayMetadata::parse(category, &target, &string_metadata(&v.properties).unwrap())
                    .unwrap();
            let auth =
                GatewayAuth::from_connection(&v.properties, v.credentials.as_ref(), &meta).unwrap();
            assert_eq!(
                auth,
                GatewayAuth::ApiKey {
                    header: header.into(),
                    value: "Key k-123".into()
                },
                "{category} {config}"
            );
        }
    }

    #[test]
    fn urls_follow_deployment_in_path_and_api_versions() {
        let target = Url::parse("https://gw.example.com/llm/").unwrap();
        let meta = |kv: &[(&str, &str)], cat: &str| {
            let mut m: Vec<(String, String)> = kv
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            if !kv
                .iter()
                .any(|(k, _)| *k == "models" || *k == "modelDiscovery")
                && cat == "ModelGateway"
            {
                m.push(("models".into(), MODELS.into()));
            }
            GatewayMetadata::parse(cat, &target, &m).unwrap()
        };
        let apim = meta(&[("inferenceAPIVersion", "2024-02-01")], "ApiManagement");
        assert_eq!(
            inference_url(&target, &apim, "gpt-4o"),
            "https://gw.example.com/llm/deployments/gpt-4o/chat/completions?api-version=2024-02-01"
        );
        let m = meta(&[("inferenceAPIVersion", "")], "ModelGateway");
        assert_eq!(
            inference_url(&target, &m, "gpt-4o"),
            "https://gw.example.com/llm/chat/completions"
        );
        let ModelSource::Discovery(d) = &apim.models else {
            panic!("apim defaults")
        };
        assert_eq!(
            discovery_list_url(&target, &apim, d),
            "https://gw.example.com/llm/deployments"
        );
        let apim2 = meta(&[("deploymentAPIVersion", "2023-05-01")], "ApiManagement");
        assert_eq!(
            discovery_get_url(&target, &apim2, d, "gpt 4"),
            "https://gw.example.com/llm/deployments/gpt%204?api-version=2023-05-01"
        );
        let abs = r#"{"listModelsEndpoint":"https://gw.example.com/openai/deployments?api-version=2022-12-01","getModelEndpoint":"v1/models/{deploymentName}","deploymentProvider":"AzureOpenAI"}"#;
        let m = meta(
            &[
                ("modelDiscovery", abs),
                ("deploymentAPIVersion", "2099-01-01"),
            ],
            "ModelGateway",
        );
        let ModelSource::Discovery(d) = &m.models else {
            panic!("discovery")
        };
        // The absolute URL's own api-version wins.
        assert_eq!(
            discovery_list_url(&target, &m, d),
            "https://gw.example.com/openai/deployments?api-version=2022-12-01"
        );
        assert_eq!(
            discovery_get_url(&target, &m, d, "g"),
            "https://gw.example.com/llm/v1/models/g?api-version=2099-01-01"
        );
    }

    #[test]
    fn deployment_in_path_defaults_per_category_and_rejects_other_values() {
        let target = Url::parse("https://gw.example.com").unwrap();
        let models = vec![("models".to_string(), MODELS.to_string())];
        assert!(
            GatewayMetadata::parse("ApiManagement", &target, &models)
                .unwrap()
                .deployment_in_path
        );
        assert!(
            !GatewayMetadata::parse("ModelGateway", &target, &models)
                .unwrap()
                .deployment_in_path
        );
        let mut bad = models.clone();
        bad.push(("deploymentInPath".into(), "yes".into()));
        assert!(GatewayMetadata::parse("ModelGateway", &target, &bad).is_err());
    }

    #[test]
    fn discovery_lists_parse_per_provider() {
        let aoai =
            json!({"value": [{"name": "gpt-4o", "properties": {"model": {"name": "gpt-4o"}}}]});
        assert_eq!(
            parse_model_list(Provider::AzureOpenAI, &aoai).unwrap(),
            vec!["gpt-4o"]
        );
        let oai = json!({"object": "list", "data": [{"id": "m1"}, {"id": "m2"}]});
        assert_eq!(
            parse_model_list(Provider::OpenAI, &oai).unwrap(),
            vec!["m1", "m2"]
        );
        assert_eq!(
            parse_model_list(Provider::AzureOpenAI, &oai).unwrap(),
            vec!["m1", "m2"]
        );
        assert!(parse_model_list(Provider::OpenAI, &aoai).is_err());
        assert_eq!(
            parse_model_get(Provider::OpenAI, &json!({"id": "m1"})).as_deref(),
            Some("m1")
        );
    }
}
