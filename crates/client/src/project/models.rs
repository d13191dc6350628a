//! Wire models of the Foundry project data plane (reference §2.2–§2.5).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::tools::Tool;
use crate::types::string_enum;

/// A prompt agent definition. Only set fields are sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "prompt")]
pub struct PromptAgentDefinition {
    /// `<connection-name>/<deployment-name>` for a gateway model.
    pub model: String,
    /// System instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Reasoning settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Tool choice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Text output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    /// Structured inputs (template parameters).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub structured_inputs: BTreeMap<String, StructuredInput>,
    /// Content safety policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rai_config: Option<RaiConfig>,
}

impl PromptAgentDefinition {
    /// A definition with just the model.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Default::default()
        }
    }
}

string_enum! {
    /// `reasoning.effort`.
    pub enum ReasoningEffort {
        /// minimal
        Minimal => "minimal",
        /// low
        Low => "low",
        /// medium
        Medium => "medium",
        /// high
        High => "high",
    }
}

/// `reasoning`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reasoning {
    /// Effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<ReasoningEffort>,
    /// `auto`, `concise`, `detailed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// `tool_choice`: a mode string or a specific tool.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToolChoice {
    /// `"auto"`.
    Auto,
    /// `"none"`.
    None,
    /// `"required"`.
    Required,
    /// `{"type":"function","name":…}`.
    Function {
        /// Function name.
        name: String,
    },
    /// `{"type":<tool type>}` for a built-in tool.
    Tool {
        /// Tool type.
        tool_type: String,
    },
    /// Another mode string.
    Other(String),
}

impl Serialize for ToolChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::None => s.serialize_str("none"),
            Self::Required => s.serialize_str("required"),
            Self::Other(m) => s.serialize_str(m),
            Self::Function { name } => {
                serde_json::json!({"type": "function", "name": name}).serialize(s)
            }
            Self::Tool { tool_type } => serde_json::json!({"type": tool_type}).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ToolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::String(m) => match m.as_str() {
                "auto" => Self::Auto,
                "none" => Self::None,
                "required" => Self::Required,
                _ => Self::Other(m),
            },
            Value::Object(o) => {
                let t = o
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                match (t.as_str(), o.get("name").and_then(Value::as_str)) {
                    ("function", Some(n)) => Self::Function { name: n.to_owned() },
                    _ => Self::Tool { tool_type: t },
                }
            }
            other => Self::Other(other.to_string()),
        })
    }
}

/// `text`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Output format.
    pub format: TextFormat,
}

/// `text.format`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextFormat {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The JSON Schema.
        schema: Value,
        /// Description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Strict adherence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        strict: Option<bool>,
    },
}

/// One structured input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StructuredInput {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value: Option<Value>,
    /// JSON Schema of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// `rai_config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaiConfig {
    /// Policy name.
    pub rai_policy_name: String,
}

/// An agent definition as read: a prompt agent, or any other kind kept raw.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AgentDefinition {
    /// `kind: prompt`.
    Prompt(Box<PromptAgentDefinition>),
    /// Any other kind (hosted, workflow, …) or a prompt body this crate cannot read.
    Other(Value),
}

impl AgentDefinition {
    /// The prompt definition, if this is one.
    pub fn as_prompt(&self) -> Option<&PromptAgentDefinition> {
        match self {
            Self::Prompt(p) => Some(p.as_ref()),
            Self::Other(_) => None,
        }
    }
}

impl From<PromptAgentDefinition> for AgentDefinition {
    fn from(p: PromptAgentDefinition) -> Self {
        Self::Prompt(Box::new(p))
    }
}

impl Serialize for AgentDefinition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Prompt(p) => p.serialize(s),
            Self::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for AgentDefinition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.get("kind").and_then(Value::as_str) == Some("prompt")
            && let Ok(p) = serde_json::from_value::<PromptAgentDefinition>(v.clone())
        {
            return Ok(Self::Prompt(Box::new(p)));
        }
        Ok(Self::Other(v))
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `AgentVersionObject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentVersionObject {
    /// `agent.version`.
    #[serde(default)]
    pub object: String,
    /// Id (e.g. `name:version`).
    #[serde(default)]
    pub id: String,
    /// Agent name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Metadata (nullable on the wire; `null` reads as empty).
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    /// The definition.
    pub definition: AgentDefinition,
    /// `creating|active|failed|deleting|deleted` (newer services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `AgentObject`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentObject {
    /// `agent`.
    #[serde(default)]
    pub object: String,
    /// Id.
    #[serde(default)]
    pub id: String,
    /// Name.
    pub name: String,
    /// Versions.
    pub versions: AgentVersions,
}

/// `versions` of an [`AgentObject`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentVersions {
    /// The latest version.
    pub latest: AgentVersionObject,
}

/// Cursor-paged list envelope `{data, first_id, last_id, has_more}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// Items.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// First id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_id: Option<String>,
    /// Last id: the cursor for the next page (`after`). No `last_id` means no more pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    /// Informational; paging follows `last_id` like the official SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
}

string_enum! {
    /// Sort order of list calls.
    pub enum ListOrder {
        /// Oldest first.
        Asc => "asc",
        /// Newest first.
        Desc => "desc",
    }
}

/// Query of cursor-paged list calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// 1–100 (service default 20).
    pub limit: Option<u32>,
    /// Order.
    pub order: Option<ListOrder>,
    /// Cursor: items after this id.
    pub after: Option<String>,
    /// Cursor: items before this id.
    pub before: Option<String>,
}

/// Body of `POST /agents/{name}/versions`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreateAgentVersionRequest {
    /// The definition.
    pub definition: AgentDefinition,
    /// Description (≤ 512 chars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Metadata (the operator keeps its definition hash here).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl CreateAgentVersionRequest {
    /// A request with just a definition.
    pub fn new(definition: impl Into<AgentDefinition>) -> Self {
        Self {
            definition: definition.into(),
            description: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// A conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// `conv_…`.
    pub id: String,
    /// `conversation`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: i64,
    /// Metadata.
    #[serde(default, deserialize_with = "null_as_default")]
    pub metadata: BTreeMap<String, String>,
}

/// A user message item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageItem {
    /// `message`.
    #[serde(rename = "type")]
    pub item_type: String,
    /// `user`, `assistant`, `system`, `developer`.
    pub role: String,
    /// Text content.
    pub content: String,
}

impl MessageItem {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            item_type: "message".into(),
            role: "user".into(),
            content: text.into(),
        }
    }
}

/// Body of `POST /openai/v1/conversations`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CreateConversationRequest {
    /// Initial items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<MessageItem>,
    /// Metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `agent_reference` of a create-response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentReference {
    /// Always `agent_reference`.
    #[serde(rename = "type")]
    pub reference_type: String,
    /// Agent name.
    pub name: String,
    /// Version (absent → latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl AgentReference {
    /// A reference to `name` at `version` (or the latest).
    pub fn new(name: impl Into<String>, version: Option<String>) -> Self {
        Self {
            reference_type: "agent_reference".into(),
            name: name.into(),
            version,
        }
    }
}

/// Body of `POST /openai/v1/responses`: with an agent (`agent_reference`, the agent's model is
/// used) or with a model and no agent (`model`, e.g. a gateway model `<connection>/<model>`:
/// Foundry calls that connection's gateway itself, which is what a `Foundry` probe asks for).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CreateResponseRequest {
    /// The agent (absent when `model` is given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_reference: Option<AgentReference>,
    /// The model, when there is no agent (reference §2.5: with an agent, `model` is omitted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// User input text.
    pub input: String,
    /// Conversation to continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
    /// Whether the service keeps the response (`store`; absent means its default, true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<bool>,
    /// Metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl CreateResponseRequest {
    /// A request for `agent` with `input`.
    pub fn new(agent: AgentReference, input: impl Into<String>) -> Self {
        Self {
            agent_reference: Some(agent),
            model: None,
            input: input.into(),
            conversation: None,
            store: None,
            metadata: BTreeMap::new(),
        }
    }

    /// A request for `model` (no agent) with `input`; for a gateway model `model` is
    /// `<connection>/<model>`.
    pub fn for_model(model: impl Into<String>, input: impl Into<String>) -> Self {
        Self {
            agent_reference: None,
            model: Some(model.into()),
            input: input.into(),
            conversation: None,
            store: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// The parts of an OpenAI `Response` the operator needs.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResponse {
    /// Response id.
    pub id: String,
    /// `completed`, `failed`, `incomplete`, …
    pub status: Option<String>,
    /// Model that answered.
    pub model: Option<String>,
    /// Concatenated `output_text` parts of the assistant messages (like the SDK's
    /// `output_text`).
    pub output_text: String,
    /// `error` object when the response failed.
    pub error: Option<Value>,
}

impl AgentResponse {
    /// Extract from a raw `Response` JSON object.
    pub fn from_value(v: &Value) -> Self {
        let mut text = String::new();
        if let Some(output) = v.get("output").and_then(Value::as_array) {
            for item in output {
                if item.get("type").and_then(Value::as_str) != Some("message") {
                    continue;
                }
                if let Some(parts) = item.get("content").and_then(Value::as_array) {
                    for part in parts {
                        if part.get("type").and_then(Value::as_str) == Some("output_text")
                            && let Some(t) = part.get("text").and_then(Value::as_str)
                        {
                            text.push_str(t);
                        }
                    }
                }
            }
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            id: s("id").unwrap_or_default(),
            status: s("status"),
            model: s("model"),
            output_text: text,
            error: v.get("error").filter(|e| !e.is_null()).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_set_fields_are_sent() {
        let d = PromptAgentDefinition::new("my-gw-conn/gpt-4o");
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"kind":"prompt","model":"my-gw-conn/gpt-4o"})
        );
        let d = PromptAgentDefinition {
            instructions: Some("be brief".into()),
            temperature: Some(0.2),
            reasoning: Some(Reasoning {
                effort: Some(ReasoningEffort::Low),
                summary: Some("auto".into()),
            }),
            tool_choice: Some(ToolChoice::Auto),
            text: Some(TextConfig {
                format: TextFormat::Text,
            }),
            structured_inputs: BTreeMap::from([(
                "city".into(),
                StructuredInput {
                    description: Some("c".into()),
                    required: Some(false),
                    ..Default::default()
                },
            )]),
            ..PromptAgentDefinition::new("c/m")
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"kind":"prompt","model":"c/m","instructions":"be brief","temperature":0.2,
                "reasoning":{"effort":"low","summary":"auto"},"tool_choice":"auto",
                "text":{"format":{"type":"text"}},
                "structured_inputs":{"city":{"description":"c","required":false}}})
        );
        let back: PromptAgentDefinition =
            serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn tool_choice_forms() {
        let f = ToolChoice::Function { name: "f".into() };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"type":"function","name":"f"})
        );
        let back: ToolChoice =
            serde_json::from_value(json!({"type":"function","name":"f"})).unwrap();
        assert_eq!(back, f);
        let t: ToolChoice = serde_json::from_value(json!({"type":"file_search"})).unwrap();
        assert_eq!(
            t,
            ToolChoice::Tool {
                tool_type: "file_search".into()
            }
        );
        let r: ToolChoice = serde_json::from_value(json!("required")).unwrap();
        assert_eq!(r, ToolChoice::Required);
    }

    #[test]
    fn version_objects_are_read_tolerantly() {
        let v = json!({ "object": "agent.version", "id": "my-agent:1", "name": "my-agent", "version": "1",
            "description": "d", "metadata": null, "created_at": 1760000000, "newField": true,
            "definition": { "kind": "prompt", "model": "my-gw-conn/gpt-4o", "instructions": "…",
                "tools": [{"type":"code_interpreter"}, {"type":"brand_new_tool"}] } });
        let o: AgentVersionObject = serde_json::from_value(v).unwrap();
        assert!(o.metadata.is_empty());
        let p = o.definition.as_prompt().unwrap();
        assert_eq!(p.model, "my-gw-conn/gpt-4o");
        assert_eq!(p.tools.len(), 2);
        assert!(matches!(p.tools[1], Tool::Other(_)));

        let hosted =
            json!({"name": "h", "version": "2", "definition": {"kind": "hosted", "image": "x"}});
        let o: AgentVersionObject = serde_json::from_value(hosted).unwrap();
        assert!(matches!(o.definition, AgentDefinition::Other(_)));

        let agent = json!({"object":"agent","id":"a","name":"a","versions":{"latest":
            {"name":"a","version":"3","definition":{"kind":"prompt","model":"c/m"}}}});
        let a: AgentObject = serde_json::from_value(agent).unwrap();
        assert_eq!(a.versions.latest.version, "3");
    }

    #[test]
    fn list_pages() {
        let p: ListPage<AgentVersionObject> =
            serde_json::from_value(json!({"data": [], "last_id": null, "has_more": false}))
                .unwrap();
        assert!(p.data.is_empty() && p.last_id.is_none());
    }

    #[test]
    fn create_response_body() {
        let r = CreateResponseRequest {
            conversation: Some("conv_1".into()),
            ..CreateResponseRequest::new(AgentReference::new("my-agent", Some("1".into())), "Hello")
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"conversation":"conv_1","input":"Hello",
                "agent_reference":{"type":"agent_reference","name":"my-agent","version":"1"}})
        );
        let latest = AgentReference::new("a", None);
        assert_eq!(
            serde_json::to_value(&latest).unwrap(),
            json!({"type":"agent_reference","name":"a"})
        );
    }

    #[test]
    fn a_model_response_body_has_the_model_and_no_agent() {
        let r = CreateResponseRequest::for_model("my-gw/gpt-4o", "Hi");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"model": "my-gw/gpt-4o", "input": "Hi"})
        );
        let r = CreateResponseRequest {
            store: Some(false),
            ..CreateResponseRequest::for_model("my-gw/gpt-4o", "Hi")
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"model": "my-gw/gpt-4o", "input": "Hi", "store": false})
        );
    }

    #[test]
    fn output_text_is_concatenated() {
        let v = json!({"id":"resp_1","object":"response","status":"completed","model":"c/m",
            "output":[{"type":"reasoning"},
                {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hel"},{"type":"refusal"},{"type":"output_text","text":"lo"}]}]});
        let r = AgentResponse::from_value(&v);
        assert_eq!(r.output_text, "Hello");
        assert_eq!(r.status.as_deref(), Some("completed"));
        assert!(r.error.is_none());
    }
}
