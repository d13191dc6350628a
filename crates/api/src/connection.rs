//! `GatewayConnection`: a Foundry project connection of category `ApiManagement` or
//! `ModelGateway`, and the health of the gateway behind it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, ProjectRef, SecretKeyRef};

/// A company AI gateway (Azure API Management or any OpenAI-compatible gateway) made available
/// to a Foundry project as a project connection. Prompt agents of the project use its models as
/// `<connectionName>/<model>`. The operator probes the gateway the way Foundry calls it and
/// reports Active or Inactive in the `GatewayActive` condition.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.foundry.dev",
    version = "v1alpha1",
    kind = "GatewayConnection",
    namespaced,
    doc = "A company AI gateway made available to a Foundry project as an ApiManagement or ModelGateway connection, with its health.",
    status = "GatewayConnectionStatus",
    shortname = "gwc",
    category = "foundry",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(name = "Gateway", type_ = "string", json_path = ".status.gatewayState"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Category",
        type_ = "string",
        json_path = ".spec.category",
        priority = 1
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.target",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = kube::core::Rule::new("!has(self.auth.entraId) || self.category == 'ApiManagement'").message("auth.entraId is supported only with category ApiManagement").field_path(".auth.entraId"),
    validation = kube::core::Rule::new("!has(self.auth.oauth2) || self.category == 'ModelGateway'").message("auth.oauth2 is supported only with category ModelGateway").field_path(".auth.oauth2"),
    validation = kube::core::Rule::new("self.category == 'ApiManagement' || (has(self.models) && (has(self.models.static) || has(self.models.discovery)))").message("a ModelGateway connection needs models.static or models.discovery").field_path(".models"),
    validation = kube::core::Rule::new("self.category == 'ApiManagement' || !has(self.models) || !has(self.models.discovery) || (has(self.models.discovery.listModelsEndpoint) && has(self.models.discovery.getModelEndpoint) && has(self.models.discovery.provider))").message("a ModelGateway connection's models.discovery needs listModelsEndpoint, getModelEndpoint and provider (only ApiManagement has defaults)").field_path(".models.discovery"),
    validation = kube::core::Rule::new("has(self.connectionName) == has(oldSelf.connectionName) && (!has(self.connectionName) || self.connectionName == oldSelf.connectionName)").message("connectionName is immutable").field_path(".connectionName"),
    validation = kube::core::Rule::new("!has(self.probe) || !has(self.probe.mode) || self.probe.mode != 'Foundry' || has(self.probe.model) || (has(self.models) && has(self.models.static))").message("probe mode Foundry needs a model: set probe.model or models.static").field_path(".probe.mode"),
    validation = kube::core::Rule::new("(has(self.scope) ? self.scope : 'Project') == (has(oldSelf.scope) ? oldSelf.scope : 'Project')").message("scope is immutable").field_path(".scope"),
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectionSpec {
    /// The FoundryProject (same namespace) in which the connection is created. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("projectRef is immutable"))]
    pub project_ref: ProjectRef,

    /// Name of the connection in Foundry; agents use models as `<connectionName>/<model>`.
    /// Default: metadata.name. 3 to 33 characters: letters, digits, `_` and `-`, starting with a
    /// letter or digit. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$"))]
    pub connection_name: Option<String>,

    /// Kind of gateway: `ApiManagement` (Azure API Management) or `ModelGateway` (any other
    /// OpenAI-compatible gateway).
    pub category: GatewayCategory,

    /// Where the connection lives in Foundry: `Project` (the default; ARM
    /// `accounts/{a}/projects/{p}/connections/{name}`, used by that project's agents) or `Account`
    /// (`accounts/{a}/connections/{name}`, on the Foundry resource of the projectRef's project,
    /// usable by PromptAgents of every project of that account). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ConnectionScope>,

    /// Base URL of the gateway (https). For API Management: the gateway URL plus the API path,
    /// e.g. `https://contoso.azure-api.net/foundry/models`.
    #[schemars(
        length(min = 9, max = 2048),
        pattern(r"^https://[^\s/?#@]+(/[^\s?#]*)?$")
    )]
    pub target: String,

    /// How Foundry authenticates to the gateway: exactly one of apiKey, entraId (ApiManagement
    /// only) or oauth2 (ModelGateway only).
    pub auth: GatewayAuth,

    /// Which models the gateway offers: a static list, or dynamic discovery. For ApiManagement
    /// with neither, discovery uses the APIM defaults (`/deployments`,
    /// `/deployments/{deploymentName}`, provider AzureOpenAI); explicit discovery fields override
    /// the defaults one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<GatewayModels>,

    /// true: inference calls go to `{target}/deployments/{model}/chat/completions`; false: to
    /// `{target}/chat/completions` with the model in the body. Default: true for ApiManagement,
    /// false for ModelGateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_in_path: Option<bool>,

    /// api-version appended to inference calls. None is appended when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Za-z0-9._-]{1,64}$"))]
    pub inference_api_version: Option<String>,

    /// api-version appended to discovery calls. None is appended when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[A-Za-z0-9._-]{1,64}$"))]
    pub deployment_api_version: Option<String>,

    /// Extra headers Foundry adds to every request to the gateway. Values come inline or from a
    /// Secret in this namespace. Foundry keeps every header value, including those read from a
    /// Secret, as plain connection metadata that anyone who may read the project's connections
    /// can see: put credentials in `auth`, not in a custom header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub custom_headers: Vec<CustomHeader>,

    /// Share the connection with every user of the project. Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_to_all: Option<bool>,

    /// How the operator checks the gateway's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSpec>,

    /// What happens to the Foundry connection when this object is deleted. Default: Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Take over a connection of the same name that already exists in Foundry. When false (the
    /// default), such a connection is left alone and the object is Stalled with reason
    /// AlreadyExists. Never takes over a connection that another live GatewayConnection manages
    /// (in any namespace sharing the project): that is Stalled with reason OwnedElsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<bool>,

    /// While true the controller reads and writes nothing for this object; status keeps what it
    /// last knew. Deletion still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// `Full` (the default): the operator creates and corrects the Foundry connection. `Observe`:
    /// it reads the connection, probes the gateway and reports differences in the `Drifted`
    /// condition, but writes nothing to Foundry, and never deletes the connection when this
    /// object is deleted (Observe implies `deletionPolicy: Orphan`). A connection without a
    /// marker is observed without `adopt`; one managed by another live object is still Stalled
    /// `OwnedElsewhere`. Switching to `Full` writes only if something differs: a connection made
    /// elsewhere (no marker, `adopt: true`) that matches is taken over as it is, and one marked
    /// by an object that is gone gets one PUT to record this object as the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,
}

/// Whether the operator may write to Foundry for an object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ManagementPolicy {
    /// Create, update and (per `deletionPolicy`) delete the Foundry object.
    #[default]
    Full,
    /// Read Foundry and report drift in the `Drifted` condition; write and delete nothing.
    Observe,
}

/// The category of a gateway connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GatewayCategory {
    /// Azure API Management in front of Azure OpenAI or other models.
    #[default]
    ApiManagement,
    /// Any other OpenAI-compatible gateway (LiteLLM, Kong, MuleSoft, a custom one).
    ModelGateway,
}

/// Authentication to the gateway: exactly one member is set.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("[has(self.apiKey), has(self.entraId), has(self.oauth2)].filter(x, x).size() == 1").message("set exactly one of apiKey, entraId, oauth2"))]
#[serde(rename_all = "camelCase")]
pub struct GatewayAuth {
    /// A static key read from a Secret, sent in the `api-key` header unless header/format say
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// Microsoft Entra ID: Foundry sends a token of the project's managed identity
    /// (ApiManagement only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entra_id: Option<EntraIdAuth>,
    /// OAuth2 client credentials: Foundry fetches a token from tokenUrl and sends it as a Bearer
    /// token (ModelGateway only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Auth>,
}

/// API key authentication.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("!has(self.format) || has(self.header)").message("format needs header"))]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// The Secret key holding the API key (for API Management: the subscription key).
    pub secret_ref: SecretKeyRef,
    /// Header that carries the key. Default: `api-key`. Examples: `Authorization`,
    /// `Ocp-Apim-Subscription-Key`, `x-api-key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(crate::common::HEADER_NAME_PATTERN))]
    pub header: Option<String>,
    /// Template of the header value, containing `{api_key}` exactly once. Default: `{api_key}`.
    /// Example: `Bearer {api_key}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256), pattern(r"^[^{}]*\{api_key\}[^{}]*$"))]
    pub format: Option<String>,
}

/// Microsoft Entra ID authentication with the project's managed identity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntraIdAuth {
    /// Audience of the token Foundry requests. Default: `https://cognitiveservices.azure.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub audience: Option<String>,
}

/// OAuth2 client-credentials authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Auth {
    /// Token endpoint (https) that accepts the client_credentials grant.
    #[schemars(length(min = 9, max = 2048), pattern(crate::common::HTTPS_URL_PATTERN))]
    pub token_url: String,
    /// Scopes requested, joined by spaces in the token request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 512), pattern(r"^\S+$")))]
    pub scopes: Vec<String>,
    /// OAuth2 client id.
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// The Secret key holding the client secret.
    pub client_secret_ref: SecretKeyRef,
}

/// The models of a gateway: a static list or dynamic discovery, not both.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("!(has(self.static) && has(self.discovery))").message("set models.static or models.discovery, not both"))]
#[serde(rename_all = "camelCase")]
pub struct GatewayModels {
    /// A fixed list of model deployments; no discovery calls are made.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["name".into()]))]
    pub static_models: Option<Vec<StaticModel>>,
    /// Ask the gateway for its models: Foundry lists and gets deployments at these endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<ModelDiscovery>,
}

/// One model deployment offered by the gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticModel {
    /// Deployment name on the gateway; agents use `<connectionName>/<name>`.
    #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"))]
    pub name: String,
    /// Underlying model name. Default: the deployment name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub model: Option<String>,
    /// Model version, if the gateway has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub version: Option<String>,
    /// API format of the model. Default: OpenAI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ModelFormat>,
}

/// API format a model speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ModelFormat {
    /// OpenAI-compatible chat completions (also for Gemini or Anthropic OpenAI-compatible endpoints).
    #[default]
    OpenAI,
    /// The Anthropic Messages API.
    Anthropic,
    /// Anything else.
    NonOpenAI,
}

/// Dynamic model discovery.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDiscovery {
    /// Path relative to target (e.g. `/deployments`, `/v1/models`), or an absolute https URL on
    /// the same scheme, host and port as target (checked by the controller), that lists the models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        pattern(r"^(https://[^\s/?#@]+)?/?[^\s#]*$")
    )]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('..') && !self.lowerAscii().contains('%2f')").message("must not contain '..' or an encoded slash"))]
    pub list_models_endpoint: Option<String>,
    /// Like listModelsEndpoint, for one model, with `{deploymentName}` exactly once (e.g.
    /// `/deployments/{deploymentName}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 2048),
        pattern(r"^[^{}\s#]*\{deploymentName\}[^{}\s#]*$")
    )]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('..') && !self.lowerAscii().contains('%2f')").message("must not contain '..' or an encoded slash"))]
    pub get_model_endpoint: Option<String>,
    /// Shape of the discovery responses: AzureOpenAI (`{"value":[{"name",...}]}`) or OpenAI
    /// (`{"data":[{"id",...}]}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<DiscoveryProvider>,
}

/// Shape of discovery responses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DiscoveryProvider {
    /// Azure OpenAI deployments: `{"value":[{"name":"…","properties":{"model":{…}}}]}`.
    #[default]
    AzureOpenAI,
    /// OpenAI models: `{"data":[{"id":"…","object":"model"}]}`.
    OpenAI,
}

/// A header added to every request Foundry makes to the gateway.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.value) != has(self.valueFrom)").message("set exactly one of value, valueFrom"),
    validation = kube::core::Rule::new("!(self.name.lowerAscii() in ['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'authorization'])").message("this header is set by Foundry itself and cannot be overridden"),
)]
#[serde(rename_all = "camelCase")]
pub struct CustomHeader {
    /// Header name.
    #[schemars(
        length(min = 1, max = 128),
        pattern(crate::common::HEADER_NAME_PATTERN)
    )]
    pub name: String,
    /// Header value, inline. Do not put secrets here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Header value read from a Secret key in this namespace. Kept out of the manifest, but
    /// Foundry stores it as plain connection metadata (readable by anyone who may read the
    /// project's connections), so it is not a place for credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<SecretKeyRef>,
}

/// How the gateway is probed.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("!has(self.timeout) || !has(self.interval) || duration(self.timeout) < duration(self.interval)").message("timeout must be shorter than interval"))]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    /// Auto (default): discovery when the connection discovers models, else one minimal chat
    /// completion. Discovery: list models only (no tokens spent). Inference: always one minimal
    /// chat completion. Off: no probe; GatewayActive stays Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ProbeMode>,
    /// Time between probes, a duration such as `60s` or `5m`. Default: 60s. Minimum 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('5s') && duration(self) <= duration('24h')").message("interval must be between 5s and 24h"))]
    pub interval: Option<String>,
    /// Time a probe may take, a duration such as `10s`. Default: 10s. At most 30s: probes share
    /// a budget across namespaces, so one slow gateway may not hold a probe slot for long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(validation = kube::core::Rule::new("duration(self) >= duration('100ms') && duration(self) <= duration('30s')").message("timeout must be between 100ms and 30s"))]
    pub timeout: Option<String>,
    /// The model deployment the probe must find (in discovery) or call (inference), so that
    /// "Active" means "this model is served". Default: the first static model, or any model
    /// discovery lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"))]
    pub model: Option<String>,
    /// Consecutive failed probes before an Active gateway is reported Inactive; one success makes
    /// it Active again, and a gateway that was never Active is Inactive at its first failure.
    /// Default: 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 20))]
    pub failure_threshold: Option<i32>,
}

/// What the probe does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ProbeMode {
    /// `Foundry` for Entra ID connections that name a model (static models or probe.model), else
    /// discovery when models are discovered, else a minimal chat completion. Anthropic-format
    /// models are never called directly (their request format is not documented for gateway
    /// connections): Auto uses Foundry for them.
    #[default]
    Auto,
    /// Only the discovery calls, made by the operator itself.
    Discovery,
    /// One minimal chat completion per probe, made by the operator itself (exactly what the
    /// Foundry samples' validation scripts send: no token limit).
    Inference,
    /// Ask Foundry itself: one minimal response of the project's Responses API with model
    /// `<connectionName>/<model>`, so the gateway sees Foundry's own call and identity (the
    /// project's managed identity for Entra ID). The verdict is what Foundry saw. Needs a model:
    /// probe.model or the first static model.
    Foundry,
    /// No probe.
    Off,
}

/// Observed state of a GatewayConnection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: Ready, Reconciling, Stalled, GatewayActive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// Gateway health as the portal shows it: Active, Inactive or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_state: Option<GatewayState>,
    /// ARM id of the Foundry connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    /// Name of the Foundry connection (agents use `<connectionName>/<model>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_name: Option<String>,
    /// Model deployment names the connection offers (static list, or found by discovery; at
    /// most 1,000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// How many more models discovery listed beyond the 1,000 kept in `models`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_omitted: Option<i64>,
    /// Hash of the credentials last applied to Foundry (never the credentials themselves); a
    /// change means a rotated Secret reached Foundry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_hash: Option<String>,
    /// PromptAgents in this namespace that use this connection; deletion waits for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// The last `reconcile.fluxcd.io/requestedAt` annotation value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// Where a connection lives in Foundry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConnectionScope {
    /// On the project: `accounts/{a}/projects/{p}/connections/{name}`.
    #[default]
    Project,
    /// On the Foundry resource: `accounts/{a}/connections/{name}`, for every project of it.
    Account,
}

/// Gateway health.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum GatewayState {
    /// The gateway answers as Foundry expects.
    Active,
    /// The gateway failed failureThreshold probes in a row.
    Inactive,
    /// Not probed yet, or probing is off.
    #[default]
    Unknown,
}
