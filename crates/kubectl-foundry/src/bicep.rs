//! `import bicep`: the Foundry samples' connection parameter files (`parameters-*.json` of
//! `01-connections/apim` and `01-connections/model-gateway`) as GatewayConnection manifests.
//!
//! Every parameter of the two templates (`connection-apim.bicep`,
//! `connection-modelgateway.bicep`) maps onto one spec field, or onto a comment saying why it
//! cannot ([`import`]). [`template_properties`] re-derives, from the same parameters, the ARM
//! `properties` the template itself would send; the tests compare it field by field with the
//! operator's `build` of the imported spec.

use std::collections::BTreeMap;

use foundry_gateway_api::common::{ProjectRef, SecretKeyRef};
use foundry_gateway_api::connection::{
    ApiKeyAuth, CustomHeader, DiscoveryProvider, EntraIdAuth, GatewayAuth, GatewayCategory,
    GatewayConnectionSpec, GatewayModels, ModelDiscovery, ModelFormat, OAuth2Auth, StaticModel,
};
use serde_json::{Map, Value, json};

use crate::manifest::{Document, object_name, secret_placeholder};

/// Headers the CRD refuses in `customHeaders` (Foundry sets them itself).
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "authorization",
];

/// The subscription id used when the parameter file holds a placeholder (the CRD wants a GUID).
pub const PLACEHOLDER_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000000";

/// Why a parameter file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Not JSON, or no `parameters` object.
    #[error("{file}: not a deployment parameters file: {reason}")]
    NotParameters {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither `apimResourceId` nor `targetUrl`: not one of the two connection templates.
    #[error(
        "{file}: neither apimResourceId (APIM template) nor targetUrl (ModelGateway template) is set"
    )]
    UnknownTemplate {
        /// The file.
        file: String,
    },
}

/// Which template a parameter file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// `apim/connection-apim.bicep`.
    Apim,
    /// `model-gateway/connection-modelgateway.bicep`.
    ModelGateway,
}

/// The `parameters` of a deployment parameters file, values only (`_comment`s dropped).
#[derive(Clone, Debug, PartialEq)]
pub struct Parameters {
    /// Which template.
    pub template: Template,
    /// Parameter name → value.
    pub values: BTreeMap<String, Value>,
}

impl Parameters {
    /// Parses a parameters file.
    pub fn parse(file: &str, text: &str) -> Result<Self, ImportError> {
        let not = |reason: String| ImportError::NotParameters {
            file: file.to_owned(),
            reason,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| not(e.to_string()))?;
        let params = root
            .get("parameters")
            .and_then(Value::as_object)
            .ok_or_else(|| not("no parameters object".into()))?;
        let values: BTreeMap<String, Value> = params
            .iter()
            .filter_map(|(k, v)| v.get("value").map(|value| (k.clone(), value.clone())))
            .collect();
        let template = if values.contains_key("apimResourceId") {
            Template::Apim
        } else if values.contains_key("targetUrl") {
            Template::ModelGateway
        } else {
            return Err(ImportError::UnknownTemplate {
                file: file.to_owned(),
            });
        };
        Ok(Self { template, values })
    }

    /// A string parameter; absent, null and non-strings read as the template default `""`.
    pub fn str(&self, name: &str) -> &str {
        self.values
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `deploymentInPath` as the template sends it (default `"true"` for APIM, `"false"` for
    /// ModelGateway).
    pub fn deployment_in_path(&self) -> String {
        match self.values.get("deploymentInPath") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => match self.template {
                Template::Apim => "true".into(),
                Template::ModelGateway => "false".into(),
            },
        }
    }

    /// The connection name the template uses: `connectionName`, else its generated name.
    pub fn connection_name(&self) -> String {
        let given = self.str("connectionName");
        if !given.is_empty() {
            return given.to_owned();
        }
        match self.template {
            Template::Apim => format!(
                "apim-{}-{}",
                arm_segment(self.str("apimResourceId"), 8),
                self.str("apiName")
            ),
            Template::ModelGateway => {
                format!("modelgateway-{}-comprehensive", self.str("gatewayName"))
            }
        }
    }

    fn is_shared_to_all(&self) -> bool {
        self.values
            .get("isSharedToAll")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    fn has_discovery(&self) -> bool {
        [
            "listModelsEndpoint",
            "getModelEndpoint",
            "deploymentProvider",
        ]
        .iter()
        .all(|k| !self.str(k).is_empty())
    }

    fn static_models(&self) -> Vec<Value> {
        self.values
            .get("staticModels")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    fn object(&self, name: &str) -> Map<String, Value> {
        self.values
            .get(name)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// Segment `index` of a `/`-separated ARM id (as Bicep's `split(id, '/')[index]`), or `""`.
fn arm_segment(id: &str, index: usize) -> &str {
    id.split('/').nth(index).unwrap_or_default()
}

/// What the import assumed for a parameter whose value is not usable as is.
pub type Substitutions = BTreeMap<String, String>;

/// An https URL from a parameter: kept when it is one; else a placeholder host made from the
/// value (`YOUR-MODEL-GATEWAY-URL` → `https://your-model-gateway-url.invalid`), and angle
/// brackets of `<your-resource>` placeholders removed.
fn https_url(value: &str) -> (String, bool) {
    let cleaned: String = value.chars().filter(|c| !matches!(c, '<' | '>')).collect();
    if cleaned.starts_with("https://") && url::Url::parse(&cleaned).is_ok() {
        let changed = cleaned != value;
        return (cleaned, changed);
    }
    (format!("https://{}.invalid", object_name(value)), true)
}

/// The result of importing one parameter file.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The parameters read.
    pub parameters: Parameters,
    /// `metadata.name` of the GatewayConnection.
    pub name: String,
    /// The spec.
    pub spec: GatewayConnectionSpec,
    /// Comments: what could not be inferred, and what was assumed.
    pub comments: Vec<String>,
    /// Parameter → the value the spec uses instead of the file's (placeholders, derived URLs).
    pub substitutions: Substitutions,
    /// Secret placeholders: (Secret name, key, what it holds).
    pub secrets: Vec<(String, String, String)>,
}

/// Options of [`import`].
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// `spec.projectRef.name` (default: from `projectResourceId`).
    pub project: Option<String>,
    /// `metadata.namespace` (default: none, the current namespace at apply time).
    pub namespace: Option<String>,
}

/// Maps one parameter file onto a GatewayConnection spec.
pub fn import(parameters: Parameters, options: &ImportOptions) -> Imported {
    let p = &parameters;
    let mut comments = Vec::new();
    let mut substitutions = Substitutions::new();
    let mut secrets = Vec::new();
    let connection_name = p.connection_name();
    let name = object_name(&connection_name);
    let project = options
        .project
        .clone()
        .unwrap_or_else(|| object_name(arm_segment(p.str("projectResourceId"), 10)));

    // target
    let target = match p.template {
        Template::Apim => {
            let service = arm_segment(p.str("apimResourceId"), 8);
            let api = p.str("apiName");
            let target = format!(
                "https://{}.azure-api.net/{}",
                object_name(service),
                api.trim_matches('/')
            );
            comments.push(format!(
                "spec.target: the template reads the gateway URL and the API path from APIM; assumed the default gateway host of service {service:?} and path = apiName {api:?}. Check: az apim api show --service-name {service} --api-id {api} --query path"
            ));
            substitutions.insert("target".into(), target.clone());
            target
        }
        Template::ModelGateway => {
            let raw = p.str("targetUrl");
            let (target, changed) = https_url(raw);
            if changed {
                comments.push(format!(
                    "spec.target: targetUrl {raw:?} is a placeholder or not an https URL; replace {target:?}"
                ));
                substitutions.insert("target".into(), target.clone());
            }
            target
        }
    };

    // auth
    let auth_type = p.str("authType");
    let auth_type = if auth_type.is_empty() {
        "ApiKey"
    } else {
        auth_type
    };
    let auth_config = p.object("authConfig");
    let mut auth = GatewayAuth::default();
    match auth_type {
        "ProjectManagedIdentity" | "AAD" => {
            auth.entra_id = Some(EntraIdAuth::default());
            if p.template == Template::ModelGateway {
                comments.push(format!(
                    "spec.auth: authType {auth_type} is supported only for ApiManagement; the apiserver will refuse this connection"
                ));
            }
        }
        "OAuth2" => {
            let secret = format!("{name}-oauth2");
            let (token_url, changed) = https_url(p.str("tokenUrl"));
            if changed {
                comments.push(format!(
                    "spec.auth.oauth2.tokenUrl: tokenUrl {:?} is a placeholder or not an https URL; replace {token_url:?}",
                    p.str("tokenUrl")
                ));
                substitutions.insert("tokenUrl".into(), token_url.clone());
            }
            let scopes = p
                .values
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let client_id = p.str("clientId");
            if client_id.is_empty() || client_id.starts_with("YOUR-") {
                comments.push(
                    "spec.auth.oauth2.clientId: the parameter file holds a placeholder; set the gateway's OAuth2 client id".into(),
                );
            }
            auth.oauth2 = Some(OAuth2Auth {
                token_url,
                scopes,
                client_id: if client_id.is_empty() {
                    "YOUR-CLIENT-ID".into()
                } else {
                    client_id.to_owned()
                },
                client_secret_ref: SecretKeyRef {
                    name: secret.clone(),
                    key: "clientSecret".into(),
                },
            });
            secrets.push((
                secret,
                "clientSecret".into(),
                "the OAuth2 client secret".into(),
            ));
            if p.template == Template::Apim {
                comments.push(
                    "spec.auth: OAuth2 is supported only for ModelGateway; the apiserver will refuse this connection".into(),
                );
            }
        }
        other => {
            if other != "ApiKey" {
                comments.push(format!(
                    "spec.auth: authType {other:?} is not one of ApiKey, ProjectManagedIdentity, AAD, OAuth2; imported as ApiKey"
                ));
            }
            let secret = format!("{name}-gateway-key");
            let what = match p.template {
                Template::Apim => format!(
                    "the primary key of APIM subscription {:?}",
                    non_empty(p.str("apimSubscriptionName"), "master")
                ),
                Template::ModelGateway => "the gateway API key".into(),
            };
            secrets.push((secret.clone(), "apiKey".into(), what));
            auth.api_key = Some(ApiKeyAuth {
                secret_ref: SecretKeyRef {
                    name: secret,
                    key: "apiKey".into(),
                },
                header: None,
                format: None,
            });
        }
    }
    for secure in ["apiKey", "clientSecret"] {
        if !p.str(secure).is_empty() {
            comments.push(format!(
                "parameter {secure}: its value was not imported (never copy credentials into manifests); put it in the Secret below"
            ));
        }
    }

    // authConfig → auth.apiKey.header/format
    if !auth_config.is_empty() {
        let config_type = auth_config.get("type").and_then(Value::as_str);
        let header = auth_config.get("name").and_then(Value::as_str);
        let format = auth_config.get("format").and_then(Value::as_str);
        match (&mut auth.api_key, config_type, header) {
            (Some(key), Some("api_key"), Some(header)) => {
                key.header = Some(header.to_owned());
                key.format = format.map(str::to_owned);
            }
            _ => comments.push(format!(
                "authConfig {}: not imported (needs type api_key, a header name and ApiKey auth)",
                Value::Object(auth_config.clone())
            )),
        }
    }

    // models
    let has_discovery = p.has_discovery();
    let statics = p.static_models();
    let models = if has_discovery {
        if !statics.is_empty() {
            comments.push(
                "staticModels: ignored, the file also configures discovery (the template refuses both)".into(),
            );
        }
        let provider = match p.str("deploymentProvider") {
            "OpenAI" => DiscoveryProvider::OpenAI,
            "AzureOpenAI" => DiscoveryProvider::AzureOpenAI,
            other => {
                comments.push(format!(
                    "spec.models.discovery.provider: {other:?} is not OpenAI or AzureOpenAI; set to AzureOpenAI"
                ));
                DiscoveryProvider::AzureOpenAI
            }
        };
        Some(GatewayModels {
            static_models: None,
            discovery: Some(ModelDiscovery {
                list_models_endpoint: Some(p.str("listModelsEndpoint").to_owned()),
                get_model_endpoint: Some(p.str("getModelEndpoint").to_owned()),
                provider: Some(provider),
            }),
        })
    } else if !statics.is_empty() {
        let models = statics
            .iter()
            .enumerate()
            .map(|(i, m)| static_model(i, m, &mut comments))
            .collect();
        Some(GatewayModels {
            static_models: Some(models),
            discovery: None,
        })
    } else {
        let partial = [
            "listModelsEndpoint",
            "getModelEndpoint",
            "deploymentProvider",
        ]
        .iter()
        .any(|k| !p.str(k).is_empty());
        if partial {
            comments.push(
                "spec.models: discovery parameters are only partly set; the template ignores them"
                    .into(),
            );
        }
        match p.template {
            Template::Apim => comments.push(
                "spec.models: neither staticModels nor discovery; the operator uses the APIM discovery defaults (the template sends no modelDiscovery)".into(),
            ),
            Template::ModelGateway => comments.push(
                "spec.models: neither staticModels nor discovery; a ModelGateway connection needs one: add models.static or models.discovery".into(),
            ),
        }
        None
    };

    // api versions
    let version = |param: &str, comments: &mut Vec<String>| {
        let v = p.str(param);
        if v.is_empty() {
            if p.template == Template::ModelGateway && param == "inferenceAPIVersion" {
                comments.push(
                    "spec.inferenceApiVersion: the template sends inferenceAPIVersion \"\"; the operator omits the key instead (no api-version is appended either way)".into(),
                );
            }
            None
        } else {
            Some(v.to_owned())
        }
    };
    let inference_api_version = version("inferenceAPIVersion", &mut comments);
    let deployment_api_version = version("deploymentAPIVersion", &mut comments);

    let deployment_in_path = match p.deployment_in_path().as_str() {
        "true" => true,
        "false" => false,
        other => {
            comments.push(format!(
                "spec.deploymentInPath: {other:?} is not \"true\" or \"false\"; set to the template default"
            ));
            p.template == Template::Apim
        }
    };

    // customHeaders
    let mut custom_headers = Vec::new();
    for (header, value) in p.object("customHeaders") {
        let Some(value) = value.as_str() else {
            comments.push(format!(
                "customHeaders.{header}: not a string; not imported"
            ));
            continue;
        };
        if RESERVED_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
            comments.push(format!(
                "customHeaders.{header}: Foundry sets this header itself; not imported (use auth.apiKey.header/format for credentials)"
            ));
            continue;
        }
        custom_headers.push(CustomHeader {
            name: header,
            value: Some(value.to_owned()),
            value_from: None,
        });
    }

    let known = [
        "projectResourceId",
        "apimResourceId",
        "apiName",
        "apimSubscriptionName",
        "targetUrl",
        "gatewayName",
        "connectionName",
        "authType",
        "isSharedToAll",
        "apiKey",
        "clientId",
        "clientSecret",
        "tokenUrl",
        "scopes",
        "deploymentInPath",
        "inferenceAPIVersion",
        "deploymentAPIVersion",
        "listModelsEndpoint",
        "getModelEndpoint",
        "deploymentProvider",
        "staticModels",
        "customHeaders",
        "authConfig",
    ];
    for param in p.values.keys() {
        if !known.contains(&param.as_str()) {
            comments.push(format!("parameter {param}: not known; not imported"));
        }
    }

    let spec = GatewayConnectionSpec {
        project_ref: ProjectRef { name: project },
        connection_name: Some(connection_name),
        category: match p.template {
            Template::Apim => GatewayCategory::ApiManagement,
            Template::ModelGateway => GatewayCategory::ModelGateway,
        },
        scope: None,
        target,
        auth,
        models,
        deployment_in_path: Some(deployment_in_path),
        inference_api_version,
        deployment_api_version,
        custom_headers,
        shared_to_all: Some(p.is_shared_to_all()),
        probe: None,
        deletion_policy: None,
        adopt: Some(true),
        suspend: None,
        management_policy: None,
    };
    Imported {
        parameters,
        name,
        spec,
        comments,
        substitutions,
        secrets,
    }
}

fn non_empty<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

fn static_model(index: usize, model: &Value, comments: &mut Vec<String>) -> StaticModel {
    let info = &model["properties"]["model"];
    let name = model["name"].as_str().unwrap_or_default().to_owned();
    let model_name = info["name"].as_str().map(str::to_owned);
    let version = info["version"].as_str().map(str::to_owned);
    let format = match info["format"].as_str() {
        None | Some("OpenAI") => None,
        Some("Anthropic") => Some(ModelFormat::Anthropic),
        Some("NonOpenAI") => Some(ModelFormat::NonOpenAI),
        Some(other) => {
            comments.push(format!(
                "spec.models.static[{index}].format: {other:?} is not OpenAI, Anthropic or NonOpenAI; set to NonOpenAI"
            ));
            Some(ModelFormat::NonOpenAI)
        }
    };
    StaticModel {
        model: model_name.filter(|m| *m != name),
        name,
        version,
        format,
    }
}

/// The manifests of imported files: a FoundryProject skeleton (when asked), then per file the
/// Secret placeholders and the GatewayConnection. Object names that repeat get the file's
/// name as a suffix.
pub fn manifests(
    imported: &mut [(String, Imported)],
    options: &ImportOptions,
    with_project: bool,
) -> Vec<crate::manifest::Document> {
    let mut docs = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut connection_names: BTreeMap<String, String> = BTreeMap::new();
    if with_project && let Some((_, first)) = imported.first() {
        docs.push(project_skeleton(first, options));
    }
    for (file, imp) in imported.iter_mut() {
        let count = seen.entry(imp.name.clone()).or_default();
        *count = count.saturating_add(1);
        if *count > 1 {
            let stem = std::path::Path::new(file.as_str())
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("file")
                .trim_start_matches("parameters-")
                .to_owned();
            let renamed = object_name(&format!("{}-{stem}", imp.name));
            rename_secrets(imp, &renamed);
            imp.name = renamed;
        }
        let cname = imp.spec.connection_name.clone().unwrap_or_default();
        if let Some(other) = connection_names.get(&cname) {
            imp.comments.push(format!(
                "spec.connectionName {cname:?} is also used by {other}; Foundry has one connection per name: choose another before applying both"
            ));
        } else {
            connection_names.insert(cname, file.clone());
        }
        for (secret, key, what) in &imp.secrets {
            docs.push(secret_placeholder(
                options.namespace.as_deref(),
                secret,
                key,
                what,
            ));
        }
        docs.push(connection_document(file, imp, options));
    }
    docs
}

fn rename_secrets(imp: &mut Imported, new_name: &str) {
    let old = imp.name.clone();
    for (secret, _, _) in &mut imp.secrets {
        let renamed = secret.replacen(&old, new_name, 1);
        if let Some(key) = imp.spec.auth.api_key.as_mut()
            && key.secret_ref.name == *secret
        {
            key.secret_ref.name = renamed.clone();
        }
        if let Some(oauth) = imp.spec.auth.oauth2.as_mut()
            && oauth.client_secret_ref.name == *secret
        {
            oauth.client_secret_ref.name = renamed.clone();
        }
        *secret = renamed;
    }
}

fn connection_document(file: &str, imp: &Imported, options: &ImportOptions) -> Document {
    let mut metadata = json!({ "name": imp.name });
    if let Some(ns) = &options.namespace {
        metadata["namespace"] = json!(ns);
    }
    let mut comments = vec![format!(
        "Imported from {file} (adopt: true takes over the existing Foundry connection of this name)."
    )];
    comments.extend(imp.comments.iter().cloned());
    Document {
        comments,
        object: json!({
            "apiVersion": format!("{}/{}", foundry_gateway_api::GROUP, foundry_gateway_api::VERSION),
            "kind": "GatewayConnection",
            "metadata": metadata,
            "spec": imp.spec,
        }),
        trailing_comments: Vec::new(),
    }
}

fn project_skeleton(imp: &Imported, options: &ImportOptions) -> Document {
    let arm_id = imp.parameters.str("projectResourceId");
    let mut comments = vec![
        "FoundryProject skeleton: choose one identity (workloadIdentity shown) and fill in its ids.".to_owned(),
    ];
    let subscription = arm_segment(arm_id, 2);
    let is_guid = subscription.len() == 36
        && subscription
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '-');
    let arm_id = if is_guid {
        arm_id.to_owned()
    } else {
        comments.push(format!(
            "spec.armId: subscription {subscription:?} is a placeholder; replaced by {PLACEHOLDER_SUBSCRIPTION}"
        ));
        arm_id.replacen(subscription, PLACEHOLDER_SUBSCRIPTION, 1)
    };
    let name = imp.spec.project_ref.name.clone();
    let mut metadata = json!({ "name": name });
    if let Some(ns) = &options.namespace {
        metadata["namespace"] = json!(ns);
    }
    Document {
        comments,
        object: json!({
            "apiVersion": format!("{}/{}", foundry_gateway_api::GROUP, foundry_gateway_api::VERSION),
            "kind": "FoundryProject",
            "metadata": metadata,
            "spec": {
                "armId": arm_id,
                "identity": {"workloadIdentity": {
                    "clientId": "00000000-0000-0000-0000-000000000000",
                    "tenantId": "00000000-0000-0000-0000-000000000000",
                    "serviceAccountName": "foundry-project",
                }},
            },
        }),
        trailing_comments: Vec::new(),
    }
}

/// The ARM `properties` the samples' template sends for these parameters, re-derived from its
/// logic (`connection-apim.bicep`, `connection-modelgateway.bicep` at foundry-samples
/// ec0972e3, and foundry-api.md §1.5–1.6): metadata built with `union(...)`, complex values as
/// compact JSON text, `deploymentInPath` always, `inferenceAPIVersion` always for ModelGateway
/// and only when non-empty for APIM, `deploymentAPIVersion` only when non-empty, discovery only
/// when all three of its parameters are set, static models only without discovery; APIM
/// Entra ID as `ProjectManagedIdentity` with audience `https://cognitiveservices.azure.com`,
/// OAuth2 with `tokenUrl`/`scopes` beside `credentials`. Values the import had to substitute
/// (`substitutions`: `target`, `tokenUrl`) are used as the import used them; credentials are
/// `key`/`clientSecret` = `secret`.
pub fn template_properties(p: &Parameters, substitutions: &Substitutions, secret: &str) -> Value {
    let mut metadata = Map::new();
    metadata.insert("deploymentInPath".into(), json!(p.deployment_in_path()));
    let inference = p.str("inferenceAPIVersion");
    if p.template == Template::ModelGateway || !inference.is_empty() {
        metadata.insert("inferenceAPIVersion".into(), json!(inference));
    }
    if !p.str("deploymentAPIVersion").is_empty() {
        metadata.insert(
            "deploymentAPIVersion".into(),
            json!(p.str("deploymentAPIVersion")),
        );
    }
    if p.has_discovery() {
        let discovery = json!({
            "listModelsEndpoint": p.str("listModelsEndpoint"),
            "getModelEndpoint": p.str("getModelEndpoint"),
            "deploymentProvider": p.str("deploymentProvider"),
        });
        metadata.insert("modelDiscovery".into(), json!(discovery.to_string()));
    } else if !p.static_models().is_empty() {
        metadata.insert(
            "models".into(),
            json!(Value::Array(p.static_models()).to_string()),
        );
    }
    let headers = p.object("customHeaders");
    if !headers.is_empty() {
        metadata.insert(
            "customHeaders".into(),
            json!(Value::Object(headers).to_string()),
        );
    }
    let auth_config = p.object("authConfig");
    if !auth_config.is_empty() {
        metadata.insert(
            "authConfig".into(),
            json!(Value::Object(auth_config).to_string()),
        );
    }
    let target = substitutions
        .get("target")
        .cloned()
        .unwrap_or_else(|| p.str("targetUrl").to_owned());
    let (category, _) = match p.template {
        Template::Apim => ("ApiManagement", ()),
        Template::ModelGateway => ("ModelGateway", ()),
    };
    let mut props = json!({
        "category": category,
        "target": target,
        "isSharedToAll": p.is_shared_to_all(),
        "metadata": metadata,
    });
    match non_empty(p.str("authType"), "ApiKey") {
        "ProjectManagedIdentity" | "AAD" => {
            props["authType"] = json!("ProjectManagedIdentity");
            props["audience"] = json!("https://cognitiveservices.azure.com");
            props["credentials"] = json!({});
        }
        "OAuth2" => {
            props["authType"] = json!("OAuth2");
            props["credentials"] = json!({"clientId": p.str("clientId"), "clientSecret": secret});
            props["tokenUrl"] = json!(
                substitutions
                    .get("tokenUrl")
                    .cloned()
                    .unwrap_or_else(|| p.str("tokenUrl").to_owned())
            );
            props["scopes"] = p.values.get("scopes").cloned().unwrap_or(json!([]));
        }
        _ => {
            props["authType"] = json!("ApiKey");
            props["credentials"] = json!({"key": secret});
        }
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(template: Template, values: Value) -> Parameters {
        Parameters {
            template,
            values: serde_json::from_value(values).unwrap(),
        }
    }

    fn mg(values: Value) -> Imported {
        let mut v = json!({"targetUrl": "https://gw.example.com/llm", "connectionName": "gw"});
        v.as_object_mut()
            .unwrap()
            .extend(values.as_object().unwrap().clone());
        import(params(Template::ModelGateway, v), &ImportOptions::default())
    }

    #[test]
    fn the_template_is_recognised_by_its_parameters() {
        let apim = Parameters::parse(
            "f",
            r#"{"parameters":{"apimResourceId":{"value":"x"},"authType":{"_comment":"c","value":"ApiKey"}}}"#,
        )
        .unwrap();
        assert_eq!(apim.template, Template::Apim);
        assert_eq!(apim.str("authType"), "ApiKey");
        assert!(matches!(
            Parameters::parse("f", r#"{"parameters":{}}"#),
            Err(ImportError::UnknownTemplate { .. })
        ));
        assert!(Parameters::parse("f", "[]").is_err());
    }

    #[test]
    fn api_key_auth_becomes_a_secret_reference_never_a_value() {
        let imp = mg(json!({"authType": "ApiKey", "apiKey": "sk-real"}));
        let key = imp.spec.auth.api_key.as_ref().unwrap();
        assert_eq!(key.secret_ref.name, "gw-gateway-key");
        assert_eq!(key.secret_ref.key, "apiKey");
        assert!(
            !serde_json::to_string(&imp.spec)
                .unwrap()
                .contains("sk-real")
        );
        assert!(imp.comments.iter().any(|c| c.contains("parameter apiKey")));
        assert_eq!(imp.spec.adopt, Some(true));
    }

    #[test]
    fn auth_config_sets_the_api_key_header_and_format() {
        let imp = mg(
            json!({"authConfig": {"type": "api_key", "name": "Authorization", "format": "Bearer {api_key}"}}),
        );
        let key = imp.spec.auth.api_key.unwrap();
        assert_eq!(key.header.as_deref(), Some("Authorization"));
        assert_eq!(key.format.as_deref(), Some("Bearer {api_key}"));
    }

    #[test]
    fn project_managed_identity_becomes_entra_id() {
        let p = params(
            Template::Apim,
            json!({"apimResourceId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.ApiManagement/service/Contoso", "apiName": "foundry", "authType": "ProjectManagedIdentity"}),
        );
        let imp = import(p, &ImportOptions::default());
        assert!(imp.spec.auth.entra_id.is_some());
        assert_eq!(imp.spec.target, "https://contoso.azure-api.net/foundry");
        assert_eq!(
            imp.spec.connection_name.as_deref(),
            Some("apim-Contoso-foundry")
        );
        assert_eq!(imp.spec.deployment_in_path, Some(true));
        assert!(imp.comments.iter().any(|c| c.starts_with("spec.target")));
    }

    #[test]
    fn oauth2_keeps_token_url_scopes_and_client_id_and_puts_the_secret_in_a_placeholder() {
        let imp = mg(
            json!({"authType": "OAuth2", "clientId": "cid", "tokenUrl": "https://login.example.com/t", "scopes": ["a", "b"]}),
        );
        let oauth = imp.spec.auth.oauth2.unwrap();
        assert_eq!(oauth.token_url, "https://login.example.com/t");
        assert_eq!(oauth.scopes, ["a", "b"]);
        assert_eq!(oauth.client_id, "cid");
        assert_eq!(oauth.client_secret_ref.name, "gw-oauth2");
        assert_eq!(imp.secrets[0].1, "clientSecret");
    }

    #[test]
    fn placeholder_urls_become_invalid_hosts_with_a_comment() {
        let imp = mg(json!({"targetUrl": "YOUR-MODEL-GATEWAY-URL"}));
        assert_eq!(imp.spec.target, "https://your-model-gateway-url.invalid");
        assert_eq!(imp.substitutions["target"], imp.spec.target);
        let imp =
            mg(json!({"targetUrl": "https://<your-foundry-resource>.openai.azure.com/openai"}));
        assert_eq!(
            imp.spec.target,
            "https://your-foundry-resource.openai.azure.com/openai"
        );
    }

    #[test]
    fn discovery_needs_all_three_parameters() {
        let imp = mg(
            json!({"listModelsEndpoint": "v1/models", "getModelEndpoint": "v1/models/{deploymentName}", "deploymentProvider": "OpenAI"}),
        );
        let d = imp.spec.models.unwrap().discovery.unwrap();
        assert_eq!(d.list_models_endpoint.as_deref(), Some("v1/models"));
        assert_eq!(d.provider, Some(DiscoveryProvider::OpenAI));
        let imp = mg(json!({"listModelsEndpoint": "v1/models"}));
        assert!(imp.spec.models.is_none());
        assert!(imp.comments.iter().any(|c| c.contains("partly set")));
    }

    #[test]
    fn static_models_keep_name_model_version_and_format() {
        let imp = mg(json!({"staticModels": [
            {"name": "d1", "properties": {"model": {"name": "gpt-4o", "version": "v", "format": "OpenAI"}}},
            {"name": "d2", "properties": {"model": {"name": "d2", "version": "", "format": "DeepSeek"}}}
        ]}));
        let models = imp.spec.models.unwrap().static_models.unwrap();
        assert_eq!(models[0].model.as_deref(), Some("gpt-4o"));
        assert_eq!(models[0].version.as_deref(), Some("v"));
        assert_eq!(models[0].format, None);
        assert_eq!(models[1].model, None);
        assert_eq!(models[1].format, Some(ModelFormat::NonOpenAI));
        assert!(imp.comments.iter().any(|c| c.contains("DeepSeek")));
    }

    #[test]
    fn custom_headers_are_inline_and_reserved_ones_are_refused() {
        let imp = mg(json!({"customHeaders": {"X-Env": "prod", "Authorization": "Bearer x"}}));
        assert_eq!(imp.spec.custom_headers.len(), 1);
        assert_eq!(imp.spec.custom_headers[0].name, "X-Env");
        assert_eq!(imp.spec.custom_headers[0].value.as_deref(), Some("prod"));
        assert!(
            imp.comments
                .iter()
                .any(|c| c.contains("customHeaders.Authorization"))
        );
    }

    #[test]
    fn api_versions_deployment_in_path_and_sharing_are_mapped() {
        let imp = mg(
            json!({"deploymentInPath": "true", "inferenceAPIVersion": "2025-03-01-preview", "deploymentAPIVersion": "", "isSharedToAll": true}),
        );
        assert_eq!(imp.spec.deployment_in_path, Some(true));
        assert_eq!(
            imp.spec.inference_api_version.as_deref(),
            Some("2025-03-01-preview")
        );
        assert_eq!(imp.spec.deployment_api_version, None);
        assert_eq!(imp.spec.shared_to_all, Some(true));
        let imp = mg(json!({"inferenceAPIVersion": ""}));
        assert_eq!(imp.spec.inference_api_version, None);
        assert!(
            imp.comments
                .iter()
                .any(|c| c.starts_with("spec.inferenceApiVersion"))
        );
    }

    #[test]
    fn unknown_parameters_are_named_in_a_comment() {
        let imp = mg(json!({"somethingElse": 1}));
        assert!(imp.comments.iter().any(|c| c.contains("somethingElse")));
    }

    #[test]
    fn repeated_names_get_the_file_name_as_suffix() {
        let a = mg(json!({}));
        let b = mg(json!({}));
        let mut imported = vec![
            ("parameters-static.json".to_owned(), a),
            ("parameters-dynamic.json".to_owned(), b),
        ];
        let docs = manifests(&mut imported, &ImportOptions::default(), true);
        let names: Vec<_> = docs
            .iter()
            .map(|d| (d.kind().to_owned(), d.name().to_owned()))
            .collect();
        assert_eq!(names[0].0, "FoundryProject");
        assert!(names.contains(&("GatewayConnection".into(), "gw".into())));
        assert!(names.contains(&("GatewayConnection".into(), "gw-dynamic".into())));
        assert!(names.contains(&("Secret".into(), "gw-dynamic-gateway-key".into())));
        assert_eq!(
            imported[1]
                .1
                .spec
                .auth
                .api_key
                .as_ref()
                .unwrap()
                .secret_ref
                .name,
            "gw-dynamic-gateway-key"
        );
    }
}
