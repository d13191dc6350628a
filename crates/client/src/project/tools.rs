//! Agent tools supported with gateway models (reference §2.4), typed. Reading keeps any other
//! tool kind as [`Tool::Other`] so an agent made elsewhere can still be read.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A tool of a prompt agent.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Tool {
    /// `code_interpreter`.
    CodeInterpreter(CodeInterpreterTool),
    /// `function`.
    Function(FunctionTool),
    /// `file_search`.
    FileSearch(FileSearchTool),
    /// `openapi`.
    OpenApi(OpenApiTool),
    /// `mcp` (also Foundry IQ: see [`Tool::foundry_iq`]).
    Mcp(McpTool),
    /// `azure_ai_search` (the classic search tool; Foundry IQ is the MCP form).
    AzureAiSearch(AzureAiSearchTool),
    /// `sharepoint_grounding_preview`.
    SharepointGrounding(ProjectConnectionsTool),
    /// `fabric_dataagent_preview`.
    FabricDataAgent(ProjectConnectionsTool),
    /// `browser_automation_preview`.
    BrowserAutomation(BrowserAutomationTool),
    /// Any other kind, as read from the service (never built by this crate's users on purpose).
    Other(Value),
}

/// Every `type` string [`Tool`] knows, other than `Other`.
pub const SUPPORTED_TOOL_TYPES: &[&str] = &[
    "code_interpreter",
    "function",
    "file_search",
    "openapi",
    "mcp",
    "azure_ai_search",
    "sharepoint_grounding_preview",
    "fabric_dataagent_preview",
    "browser_automation_preview",
];

impl Tool {
    /// The wire `type`.
    pub fn tool_type(&self) -> &str {
        match self {
            Self::CodeInterpreter(_) => "code_interpreter",
            Self::Function(_) => "function",
            Self::FileSearch(_) => "file_search",
            Self::OpenApi(_) => "openapi",
            Self::Mcp(_) => "mcp",
            Self::AzureAiSearch(_) => "azure_ai_search",
            Self::SharepointGrounding(_) => "sharepoint_grounding_preview",
            Self::FabricDataAgent(_) => "fabric_dataagent_preview",
            Self::BrowserAutomation(_) => "browser_automation_preview",
            Self::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// Foundry IQ: an MCP tool on an Azure AI Search knowledge base
    /// (`{search}/knowledgebases/{kb}/mcp?api-version=2025-11-01-preview`, tool
    /// `knowledge_base_retrieve`), authenticated by a `RemoteTool` project connection.
    pub fn foundry_iq(
        search_endpoint: &str,
        knowledge_base: &str,
        project_connection_id: impl Into<String>,
    ) -> Self {
        Self::Mcp(McpTool {
            server_label: knowledge_base.to_owned(),
            server_url: format!(
                "{}/knowledgebases/{}/mcp?api-version=2025-11-01-preview",
                search_endpoint.trim_end_matches('/'),
                knowledge_base
            ),
            require_approval: Some(Value::String("never".into())),
            allowed_tools: Some(vec!["knowledge_base_retrieve".into()]),
            headers: None,
            project_connection_id: Some(project_connection_id.into()),
        })
    }
}

/// `{"type":"code_interpreter","container":…}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeInterpreterTool {
    /// A container id, or `{"type":"auto","file_ids":[…]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<CodeInterpreterContainer>,
}

/// `container` of the code interpreter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CodeInterpreterContainer {
    /// An existing container id.
    Id(String),
    /// An automatic container with files.
    Auto(AutoContainer),
}

/// `{"type":"auto","file_ids":[…]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoContainer {
    /// Always `auto`.
    #[serde(rename = "type")]
    pub container_type: String,
    /// Files made available.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub file_ids: Vec<String>,
}

impl AutoContainer {
    /// `{"type":"auto","file_ids":…}`.
    pub fn new(file_ids: Vec<String>) -> Self {
        Self {
            container_type: "auto".into(),
            file_ids,
        }
    }
}

/// `{"type":"function","name","description","parameters","strict"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionTool {
    /// Function name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `{"type":"file_search","vector_store_ids",…}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileSearchTool {
    /// Vector stores searched.
    #[serde(default)]
    pub vector_store_ids: Vec<String>,
    /// Result cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_num_results: Option<u32>,
    /// Ranking options (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranking_options: Option<Value>,
    /// Filters (opaque).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Value>,
}

/// `{"type":"openapi","openapi":{…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenApiTool {
    /// The OpenAPI function.
    pub openapi: OpenApiFunction,
}

/// `openapi` of an [`OpenApiTool`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenApiFunction {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The OpenAPI document.
    pub spec: Value,
    /// How calls authenticate.
    pub auth: OpenApiAuth,
}

/// `openapi.auth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpenApiAuth {
    /// `{"type":"anonymous"}`.
    Anonymous,
    /// `{"type":"project_connection","security_scheme":{"project_connection_id"}}`.
    ProjectConnection {
        /// The connection.
        security_scheme: ProjectConnectionRef,
    },
    /// `{"type":"managed_identity","security_scheme":{"audience"}}`.
    ManagedIdentity {
        /// The audience.
        security_scheme: AudienceRef,
    },
}

/// `{"project_connection_id": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectConnectionRef {
    /// Connection id (or name) in the project.
    pub project_connection_id: String,
}

/// `{"audience": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceRef {
    /// Token audience.
    pub audience: String,
}

/// `{"type":"mcp",…}`. `Debug` hides header values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct McpTool {
    /// Label.
    pub server_label: String,
    /// Server URL.
    pub server_url: String,
    /// `never`, `always`, or an object (kept as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_approval: Option<Value>,
    /// Tools allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    /// Extra headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Connection holding the server's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_connection_id: Option<String>,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("server_label", &self.server_label)
            .field("server_url", &self.server_url)
            .field("require_approval", &self.require_approval)
            .field("allowed_tools", &self.allowed_tools)
            .field(
                "headers",
                &self.headers.as_ref().map(|h| {
                    h.keys()
                        .map(|k| (k.as_str(), "***"))
                        .collect::<BTreeMap<_, _>>()
                }),
            )
            .field("project_connection_id", &self.project_connection_id)
            .finish()
    }
}

/// `{"type":"azure_ai_search","azure_ai_search":{"indexes":[…]}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AzureAiSearchTool {
    /// The search settings.
    pub azure_ai_search: AzureAiSearchSettings,
}

/// `azure_ai_search` of an [`AzureAiSearchTool`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AzureAiSearchSettings {
    /// At most one index.
    pub indexes: Vec<AzureAiSearchIndex>,
}

/// One index of the search tool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AzureAiSearchIndex {
    /// Search connection.
    pub project_connection_id: String,
    /// Index name.
    pub index_name: String,
    /// `simple|semantic|vector|vector_simple_hybrid|vector_semantic_hybrid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_type: Option<String>,
    /// Results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// OData filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Settings of the SharePoint and Fabric tools: `{"project_connections":[{"project_connection_id"}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectConnectionsTool {
    /// Connections used.
    pub project_connections: Vec<ProjectConnectionRef>,
}

impl ProjectConnectionsTool {
    /// One connection.
    pub fn new(project_connection_id: impl Into<String>) -> Self {
        Self {
            project_connections: vec![ProjectConnectionRef {
                project_connection_id: project_connection_id.into(),
            }],
        }
    }
}

/// Settings of the browser automation tool: `{"connection":{"project_connection_id"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowserAutomationTool {
    /// The Playwright workspace connection.
    pub connection: ProjectConnectionRef,
}

fn with_type(tool_type: &str, body: Value) -> Value {
    let mut map = match body {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    map.insert("type".into(), Value::String(tool_type.into()));
    // Put `type` first for readability of the wire form (serde_json keeps insertion order only
    // with preserve_order; harmless either way).
    Value::Object(map)
}

fn nested(key: &str, inner: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.into(), inner);
    Value::Object(map)
}

impl Serialize for Tool {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let v = |x: Result<Value, serde_json::Error>| x.map_err(S::Error::custom);
        let t = self.tool_type().to_owned();
        let value = match self {
            Self::CodeInterpreter(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::Function(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::FileSearch(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::OpenApi(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::Mcp(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::AzureAiSearch(x) => with_type(&t, v(serde_json::to_value(x))?),
            Self::SharepointGrounding(x) | Self::FabricDataAgent(x) => {
                with_type(&t, nested(&t, v(serde_json::to_value(x))?))
            }
            Self::BrowserAutomation(x) => with_type(&t, nested(&t, v(serde_json::to_value(x))?)),
            Self::Other(x) => x.clone(),
        };
        value.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Tool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(Self::from_value(value))
    }
}

impl Tool {
    /// Read a tool; a known `type` whose body does not parse is kept as [`Tool::Other`].
    pub fn from_value(value: Value) -> Self {
        fn parse<T: serde::de::DeserializeOwned>(v: &Value) -> Option<T> {
            serde_json::from_value(v.clone()).ok()
        }
        let t = value.get("type").and_then(Value::as_str).unwrap_or("");
        let parsed = match t {
            "code_interpreter" => parse(&value).map(Self::CodeInterpreter),
            "function" => parse(&value).map(Self::Function),
            "file_search" => parse(&value).map(Self::FileSearch),
            "openapi" => parse(&value).map(Self::OpenApi),
            "mcp" => parse(&value).map(Self::Mcp),
            "azure_ai_search" => parse(&value).map(Self::AzureAiSearch),
            "sharepoint_grounding_preview" => {
                value.get(t).and_then(parse).map(Self::SharepointGrounding)
            }
            "fabric_dataagent_preview" => value.get(t).and_then(parse).map(Self::FabricDataAgent),
            "browser_automation_preview" => {
                value.get(t).and_then(parse).map(Self::BrowserAutomation)
            }
            _ => None,
        };
        parsed.unwrap_or(Self::Other(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(tool: Tool, expected: Value) {
        assert_eq!(serde_json::to_value(&tool).unwrap(), expected, "{tool:?}");
        let back: Tool = serde_json::from_value(expected).unwrap();
        assert_eq!(back, tool);
    }

    #[test]
    fn wire_shapes_match_the_reference() {
        round_trip(
            Tool::CodeInterpreter(CodeInterpreterTool {
                container: Some(CodeInterpreterContainer::Auto(AutoContainer::new(vec![
                    "f1".into(),
                ]))),
            }),
            json!({"type":"code_interpreter","container":{"type":"auto","file_ids":["f1"]}}),
        );
        round_trip(
            Tool::CodeInterpreter(CodeInterpreterTool {
                container: Some(CodeInterpreterContainer::Id("cntr_1".into())),
            }),
            json!({"type":"code_interpreter","container":"cntr_1"}),
        );
        round_trip(
            Tool::Function(FunctionTool {
                name: "get_weather".into(),
                description: Some("d".into()),
                parameters: Some(json!({"type":"object"})),
                strict: Some(true),
            }),
            json!({"type":"function","name":"get_weather","description":"d","parameters":{"type":"object"},"strict":true}),
        );
        round_trip(
            Tool::FileSearch(FileSearchTool {
                vector_store_ids: vec!["vs_1".into()],
                max_num_results: Some(5),
                ..Default::default()
            }),
            json!({"type":"file_search","vector_store_ids":["vs_1"],"max_num_results":5}),
        );
        round_trip(
            Tool::OpenApi(OpenApiTool {
                openapi: OpenApiFunction {
                    name: "weather".into(),
                    description: None,
                    spec: json!({"openapi":"3.0.0"}),
                    auth: OpenApiAuth::ProjectConnection {
                        security_scheme: ProjectConnectionRef {
                            project_connection_id: "c1".into(),
                        },
                    },
                },
            }),
            json!({"type":"openapi","openapi":{"name":"weather","spec":{"openapi":"3.0.0"},
                "auth":{"type":"project_connection","security_scheme":{"project_connection_id":"c1"}}}}),
        );
        round_trip(
            Tool::SharepointGrounding(ProjectConnectionsTool::new("sp")),
            json!({"type":"sharepoint_grounding_preview","sharepoint_grounding_preview":{"project_connections":[{"project_connection_id":"sp"}]}}),
        );
        round_trip(
            Tool::FabricDataAgent(ProjectConnectionsTool::new("fab")),
            json!({"type":"fabric_dataagent_preview","fabric_dataagent_preview":{"project_connections":[{"project_connection_id":"fab"}]}}),
        );
        round_trip(
            Tool::BrowserAutomation(BrowserAutomationTool {
                connection: ProjectConnectionRef {
                    project_connection_id: "pw".into(),
                },
            }),
            json!({"type":"browser_automation_preview","browser_automation_preview":{"connection":{"project_connection_id":"pw"}}}),
        );
        round_trip(
            Tool::AzureAiSearch(AzureAiSearchTool {
                azure_ai_search: AzureAiSearchSettings {
                    indexes: vec![AzureAiSearchIndex {
                        project_connection_id: "s".into(),
                        index_name: "i".into(),
                        query_type: Some("simple".into()),
                        top_k: Some(5),
                        filter: None,
                    }],
                },
            }),
            json!({"type":"azure_ai_search","azure_ai_search":{"indexes":[{"project_connection_id":"s","index_name":"i","query_type":"simple","top_k":5}]}}),
        );
    }

    #[test]
    fn foundry_iq_is_an_mcp_tool() {
        let t = Tool::foundry_iq("https://srch.search.windows.net/", "kb1", "iq-conn");
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"type":"mcp","server_label":"kb1",
                "server_url":"https://srch.search.windows.net/knowledgebases/kb1/mcp?api-version=2025-11-01-preview",
                "require_approval":"never","allowed_tools":["knowledge_base_retrieve"],"project_connection_id":"iq-conn"})
        );
    }

    #[test]
    fn mcp_debug_hides_header_values() {
        let t = McpTool {
            server_label: "s".into(),
            server_url: "https://mcp".into(),
            require_approval: None,
            allowed_tools: None,
            headers: Some(BTreeMap::from([(
                "Authorization".into(),
                "Bearer mcp-secret".into(),
            )])),
            project_connection_id: None,
        };
        let d = format!("{:?}", Tool::Mcp(t));
        assert!(
            d.contains("Authorization") && !d.contains("mcp-secret"),
            "{d}"
        );
    }

    #[test]
    fn unknown_tools_are_kept() {
        let v = json!({"type":"image_generation","size":"auto"});
        let t: Tool = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(t.tool_type(), "image_generation");
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
        let bad = json!({"type":"function"});
        assert!(matches!(
            serde_json::from_value::<Tool>(bad).unwrap(),
            Tool::Other(_)
        ));
    }
}
