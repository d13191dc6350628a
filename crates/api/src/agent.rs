//! `PromptAgent`: a Foundry prompt agent whose model sits behind a GatewayConnection.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ConfigMapKeyRef, DeletionPolicy, ProjectRef};
pub use crate::connection::ManagementPolicy;

/// Metadata keys with this prefix are reserved for the operator (it records the spec hash there).
pub const RESERVED_METADATA_PREFIX: &str = "gateway.foundry.dev/";

/// A Foundry prompt agent whose model is served by a company gateway: the operator creates one
/// agent version per real change of this spec, with model `<connectionName>/<model.name>`, and can
/// verify that it answers through the gateway.
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "gateway.foundry.dev",
    version = "v1alpha1",
    kind = "PromptAgent",
    namespaced,
    doc = "A Foundry prompt agent whose model is served through a GatewayConnection.",
    status = "PromptAgentStatus",
    shortname = "pa",
    category = "foundry",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.agent.version"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Model",
        type_ = "string",
        json_path = ".status.model",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(
    validation = kube::core::Rule::new("!(has(self.instructions) && has(self.instructionsFrom))").message("set instructions or instructionsFrom, not both").field_path(".instructionsFrom"),
    validation = kube::core::Rule::new("has(self.agentName) == has(oldSelf.agentName) && (!has(self.agentName) || self.agentName == oldSelf.agentName)").message("agentName is immutable").field_path(".agentName"),
)]
#[serde(rename_all = "camelCase")]
pub struct PromptAgentSpec {
    /// The FoundryProject (same namespace) that holds the agent. Immutable.
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("projectRef is immutable"))]
    pub project_ref: ProjectRef,

    /// Name of the agent in Foundry. Default: metadata.name. Up to 63 characters: letters, digits
    /// and hyphens, starting and ending with a letter or digit. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"))]
    pub agent_name: Option<String>,

    /// The gateway model the agent runs on; Foundry sees it as `<connectionName>/<name>`.
    pub model: AgentModel,

    /// System instructions of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262144))]
    pub instructions: Option<String>,

    /// Read the instructions from a ConfigMap key in this namespace (watched: an edit creates a
    /// new version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_from: Option<ConfigMapKeyRef>,

    /// Description of the agent version (at most 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub description: Option<String>,

    /// Metadata of the agent version: at most 15 string pairs (Foundry allows 16; the operator
    /// keeps one for the spec hash). Keys up to 64 characters, values up to 512; the prefix
    /// `gateway.foundry.dev/` is reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 15))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, k.size() <= 64 && !k.startsWith('gateway.foundry.dev/') && self[k].size() <= 512)").message("metadata keys must be at most 64 characters and not start with gateway.foundry.dev/; values at most 512 characters"))]
    pub metadata: BTreeMap<String, String>,

    /// Sampling temperature, 0 to 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,

    /// Nucleus sampling probability mass, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f64>,

    /// Reasoning options, for reasoning models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,

    /// How the model picks tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,

    /// Output text format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextOptions>,

    /// Named inputs the agent's instructions can refer to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub structured_inputs: BTreeMap<String, StructuredInput>,

    /// Tools of the agent: the kinds Foundry supports with gateway models. Each item sets `type`
    /// and the member of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub tools: Vec<Tool>,

    /// Optional smoke test after each new version: a conversation with `input` is answered through
    /// the gateway, the reply is checked for `expect`, and the conversation is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,

    /// What happens to the agent's versions in Foundry when this object is deleted. Default:
    /// Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// While true the controller reads and writes nothing for this object; status keeps what it
    /// last knew. Deletion still works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// `Full` (the default): the operator creates a version whenever the newest one is not this
    /// object's with the current definition. `Observe`: it lists the versions and reports in the
    /// `Drifted` condition whether the newest one matches the spec, but writes nothing to
    /// Foundry: no version, no verification conversation (`verify` is skipped, `Verified` is
    /// Unknown with reason Observing), and the agent is never deleted with this object (Observe
    /// implies `deletionPolicy: Orphan`). An agent another live PromptAgent manages is still
    /// Stalled `OwnedElsewhere`. Switching to `Full` creates one version unless the newest one
    /// already is this object's with this definition, or the operator never wrote the agent and
    /// its newest version holds what the spec would send (then it is served as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,
}

/// The gateway model of an agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentModel {
    /// The GatewayConnection (same namespace) that offers the model.
    pub connection_ref: GatewayConnectionRef,
    /// Deployment name of the model in that connection.
    #[schemars(length(min = 1, max = 256), pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"))]
    pub name: String,
}

/// A reference to a GatewayConnection in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConnectionRef {
    /// Name of a GatewayConnection (its metadata.name) in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Reasoning options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reasoning {
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// Reasoning summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ReasoningSummary>,
}

/// Reasoning effort.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningEffort {
    /// Minimal effort.
    Minimal,
    /// Low effort.
    Low,
    /// Medium effort.
    Medium,
    /// High effort.
    High,
}

/// Reasoning summary style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningSummary {
    /// The model decides.
    Auto,
    /// Short summaries.
    Concise,
    /// Detailed summaries.
    Detailed,
}

/// How the model picks tools.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(validation = kube::core::Rule::new("has(self.function) == (self.mode == 'function')").message("set function exactly when mode is function"))]
#[serde(rename_all = "camelCase")]
pub struct ToolChoice {
    /// none, auto, required, or function (then `function` names it).
    pub mode: ToolChoiceMode,
    /// The function tool the model must call, when mode is function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub function: Option<String>,
}

/// Tool choice mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    /// Never call tools.
    None,
    /// The model decides.
    #[default]
    Auto,
    /// The model must call a tool.
    Required,
    /// The model must call the named function.
    Function,
}

/// Output text options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TextOptions {
    /// Output format.
    pub format: TextFormat,
}

/// Output format of the agent's text.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(
    validation = kube::core::Rule::new("self.type != 'jsonSchema' || (has(self.name) && has(self.schema))").message("a jsonSchema format needs name and schema"),
    validation = kube::core::Rule::new("self.type == 'jsonSchema' || !(has(self.name) || has(self.schema) || has(self.strict))").message("name, schema and strict apply only to type jsonSchema"),
)]
#[serde(rename_all = "camelCase")]
pub struct TextFormat {
    /// text, jsonObject or jsonSchema.
    #[serde(rename = "type")]
    pub type_: TextFormatType,
    /// Name of the JSON schema (jsonSchema only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub name: Option<String>,
    /// Description of the JSON schema (jsonSchema only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// The JSON Schema the output must follow (jsonSchema only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub schema: Option<serde_json::Value>,
    /// Enforce the schema strictly (jsonSchema only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// Output format type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TextFormatType {
    /// Plain text.
    #[default]
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON that follows `schema`.
    JsonSchema,
}

/// A named input of the agent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StructuredInput {
    /// What the input is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Value used when the caller gives none (any JSON value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::any_value")]
    pub default_value: Option<serde_json::Value>,
    /// JSON Schema of the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub schema: Option<serde_json::Value>,
    /// Whether the caller must give the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// One tool. `type` names the kind and the member of the same name holds its settings; only the
/// nine kinds Foundry supports with gateway models are accepted.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.codeInterpreter) == (self.type == 'codeInterpreter')").message("codeInterpreter must be set exactly when type is codeInterpreter"),
    validation = kube::core::Rule::new("has(self.function) == (self.type == 'function')").message("function must be set exactly when type is function"),
    validation = kube::core::Rule::new("has(self.fileSearch) == (self.type == 'fileSearch')").message("fileSearch must be set exactly when type is fileSearch"),
    validation = kube::core::Rule::new("has(self.openApi) == (self.type == 'openApi')").message("openApi must be set exactly when type is openApi"),
    validation = kube::core::Rule::new("has(self.foundryIq) == (self.type == 'foundryIq')").message("foundryIq must be set exactly when type is foundryIq"),
    validation = kube::core::Rule::new("has(self.sharePointGrounding) == (self.type == 'sharePointGrounding')").message("sharePointGrounding must be set exactly when type is sharePointGrounding"),
    validation = kube::core::Rule::new("has(self.fabricDataAgent) == (self.type == 'fabricDataAgent')").message("fabricDataAgent must be set exactly when type is fabricDataAgent"),
    validation = kube::core::Rule::new("has(self.mcp) == (self.type == 'mcp')").message("mcp must be set exactly when type is mcp"),
    validation = kube::core::Rule::new("has(self.browserAutomation) == (self.type == 'browserAutomation')").message("browserAutomation must be set exactly when type is browserAutomation"),
)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// The tool kind: codeInterpreter, function, fileSearch, openApi, foundryIq,
    /// sharePointGrounding, fabricDataAgent, mcp or browserAutomation.
    #[serde(rename = "type")]
    pub type_: ToolType,
    /// Settings of a codeInterpreter tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_interpreter: Option<CodeInterpreterTool>,
    /// Settings of a function tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionTool>,
    /// Settings of a fileSearch tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_search: Option<FileSearchTool>,
    /// Settings of an openApi tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_api: Option<OpenApiTool>,
    /// Settings of a foundryIq (knowledge base) tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub foundry_iq: Option<FoundryIqTool>,
    /// Settings of a sharePointGrounding tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_point_grounding: Option<ConnectionsTool>,
    /// Settings of a fabricDataAgent tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric_data_agent: Option<ConnectionsTool>,
    /// Settings of an mcp tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpTool>,
    /// Settings of a browserAutomation tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_automation: Option<BrowserAutomationTool>,
}

/// The tool kinds Foundry supports with gateway models.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolType {
    /// Code Interpreter.
    #[default]
    CodeInterpreter,
    /// A function the caller implements.
    Function,
    /// File Search over vector stores.
    FileSearch,
    /// An OpenAPI-described web API.
    OpenApi,
    /// Foundry IQ knowledge base (an MCP endpoint of Azure AI Search).
    FoundryIq,
    /// SharePoint grounding.
    SharePointGrounding,
    /// Microsoft Fabric data agent.
    FabricDataAgent,
    /// A remote MCP server.
    Mcp,
    /// Browser Automation.
    BrowserAutomation,
    /// A kind this version does not know, as written. The schema refuses it, so it only arrives
    /// in an object admitted under another version of the CRD; reading it here (instead of
    /// failing the whole watch on it) lets the operator report it on that object alone.
    #[serde(untagged)]
    Unsupported(String),
}

impl ToolType {
    /// The supported kinds as written in `spec.tools[].type`.
    pub const SUPPORTED: [&'static str; 9] = [
        "codeInterpreter",
        "function",
        "fileSearch",
        "openApi",
        "foundryIq",
        "sharePointGrounding",
        "fabricDataAgent",
        "mcp",
        "browserAutomation",
    ];

    /// The kind as written in `spec.tools[].type`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::CodeInterpreter => "codeInterpreter",
            Self::Function => "function",
            Self::FileSearch => "fileSearch",
            Self::OpenApi => "openApi",
            Self::FoundryIq => "foundryIq",
            Self::SharePointGrounding => "sharePointGrounding",
            Self::FabricDataAgent => "fabricDataAgent",
            Self::Mcp => "mcp",
            Self::BrowserAutomation => "browserAutomation",
            Self::Unsupported(kind) => kind,
        }
    }
}

/// The schema admits the supported kinds only: a plain string enum.
impl JsonSchema for ToolType {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ToolType".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The tool kinds Foundry supports with gateway models.",
            "type": "string",
            "enum": Self::SUPPORTED,
        })
    }
}

/// Code Interpreter settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CodeInterpreterTool {
    /// Files available to the code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub file_ids: Vec<String>,
}

/// A function tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FunctionTool {
    /// Function name.
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub name: String,
    /// What the function does (the model reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// JSON Schema of the function's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub parameters: Option<serde_json::Value>,
    /// Enforce the parameter schema strictly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// File Search settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileSearchTool {
    /// Vector stores searched.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 256)))]
    pub vector_store_ids: Vec<String>,
    /// Maximum results returned, 1 to 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50))]
    pub max_num_results: Option<i32>,
}

/// An OpenAPI tool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenApiTool {
    /// Tool name.
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub name: String,
    /// What the API is for (the model reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// The OpenAPI 3 document.
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub spec: serde_json::Value,
    /// How Foundry authenticates to the API.
    pub auth: OpenApiAuth,
}

/// Authentication of an OpenAPI tool.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[x_kube(
    validation = kube::core::Rule::new("has(self.projectConnectionId) == (self.type == 'projectConnection')").message("set projectConnectionId exactly when type is projectConnection"),
    validation = kube::core::Rule::new("has(self.audience) == (self.type == 'managedIdentity')").message("set audience exactly when type is managedIdentity"),
)]
#[serde(rename_all = "camelCase")]
pub struct OpenApiAuth {
    /// anonymous, projectConnection or managedIdentity.
    #[serde(rename = "type")]
    pub type_: OpenApiAuthType,
    /// Connection holding the API's credentials (type projectConnection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub project_connection_id: Option<String>,
    /// Token audience (type managedIdentity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub audience: Option<String>,
}

/// OpenAPI tool authentication type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OpenApiAuthType {
    /// No authentication.
    #[default]
    Anonymous,
    /// Credentials from a project connection.
    ProjectConnection,
    /// The project's managed identity.
    ManagedIdentity,
}

/// A Foundry IQ knowledge base.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FoundryIqTool {
    /// Label of the knowledge base for the model.
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub server_label: String,
    /// The knowledge base MCP endpoint (https), e.g.
    /// `https://{search}.search.windows.net/knowledgebases/{kb}/mcp?api-version=2025-11-01-preview`.
    #[schemars(length(min = 9, max = 2048), pattern(crate::common::HTTPS_URL_PATTERN))]
    pub server_url: String,
    /// The RemoteTool project connection Foundry authenticates with.
    #[schemars(length(min = 1, max = 1024))]
    pub project_connection_id: String,
}

/// A tool whose only settings are project connections (SharePoint, Fabric).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsTool {
    /// Project connections used by the tool.
    #[schemars(length(min = 1, max = 16), inner(length(min = 1, max = 1024)))]
    pub project_connection_ids: Vec<String>,
}

/// A remote MCP server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpTool {
    /// Label of the server for the model.
    #[schemars(pattern(r"^[a-zA-Z0-9_-]{1,64}$"))]
    pub server_label: String,
    /// Server URL (https).
    #[schemars(length(min = 9, max = 2048), pattern(crate::common::HTTPS_URL_PATTERN))]
    pub server_url: String,
    /// Whether tool calls need approval: always or never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<McpApproval>,
    /// Tools of the server the agent may call (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(min = 1, max = 128)))]
    pub allowed_tools: Vec<String>,
    /// Project connection holding the server's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub project_connection_id: Option<String>,
}

/// MCP approval policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpApproval {
    /// Every call needs approval.
    #[default]
    Always,
    /// No call needs approval.
    Never,
}

/// Browser Automation settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrowserAutomationTool {
    /// The Playwright workspace project connection.
    #[schemars(length(min = 1, max = 1024))]
    pub project_connection_id: String,
}

/// A smoke test of each new version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// The user message sent to the agent.
    #[schemars(length(min = 1, max = 4096))]
    pub input: String,
    /// Text the reply must contain (case-sensitive). Any non-empty reply passes when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub expect: Option<String>,
}

/// Observed state of a PromptAgent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PromptAgentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions: Ready, Reconciling, Stalled, ConnectionResolved, ModelResolved, Verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
    /// The Foundry agent version that matches the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentVersionRef>,
    /// The model string Foundry sees: `<connectionName>/<model>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Hash of the agent definition, also stored in the version's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// The last `reconcile.fluxcd.io/requestedAt` annotation value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// A Foundry agent version.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersionRef {
    /// Agent name in Foundry.
    pub name: String,
    /// Version string in Foundry.
    pub version: String,
}
