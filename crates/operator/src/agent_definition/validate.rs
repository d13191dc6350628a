//! Step "validate": everything about a PromptAgent spec that the CRD schema cannot check, or that
//! an older CRD may have let in. The first problem found is returned.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use foundry_gateway_api::PromptAgentSpec;
use foundry_gateway_api::agent::RESERVED_METADATA_PREFIX;
use foundry_gateway_api::agent::{
    OpenApiAuthType, TextFormatType, TextOptions, Tool, ToolChoiceMode, ToolType,
};
use foundry_gateway_client::project::is_valid_agent_name;
use serde_json::Value;

use super::{MAX_USER_METADATA_KEYS, SUPPORTED_TOOL_KINDS, ValidationError};

/// Most tools of one agent (the CRD's limit).
const MAX_TOOLS: usize = 128;
/// Most characters of the instructions (the CRD's limit for inline text, applied to ConfigMap
/// text too).
const MAX_INSTRUCTIONS_CHARS: usize = 262_144;
/// Most characters of a version description (Foundry's limit).
const MAX_DESCRIPTION_CHARS: usize = 512;
/// Most characters of a metadata key and value (Foundry's limits).
const MAX_METADATA_KEY_CHARS: usize = 64;
const MAX_METADATA_VALUE_CHARS: usize = 512;

/// Check a spec before anything is built from it.
///
/// `instructions` is the resolved text: `spec.instructions`, or the value of the
/// `spec.instructionsFrom` ConfigMap key (`None` when that key does not exist).
///
/// Missing instructions are allowed when neither `instructions` nor `instructionsFrom` is set:
/// Foundry accepts a prompt agent without instructions (only `kind` and `model` are required),
/// and an agent driven by its tools and structured inputs is legitimate. Instructions that are
/// set but empty or only whitespace are refused, because that is almost always a mistake (an
/// empty ConfigMap value, a templating gap) that would silently produce an agent without
/// instructions.
pub fn validate(spec: &PromptAgentSpec, instructions: Option<&str>) -> Result<(), ValidationError> {
    validate_instructions(spec, instructions)?;
    validate_description(spec)?;
    validate_metadata(&spec.metadata)?;
    validate_sampling(spec)?;
    validate_tools(&spec.tools)?;
    validate_tool_choice(spec)?;
    if let Some(text) = &spec.text {
        validate_text(text)?;
    }
    for (name, input) in &spec.structured_inputs {
        if let Some(schema) = &input.schema {
            require_object(schema, || format!("spec.structuredInputs.{name}.schema"))?;
        }
    }
    Ok(())
}

/// The Foundry agent name of an object: `spec.agentName`, or the object's `metadata.name`, which
/// Kubernetes allows to hold dots and be longer than Foundry accepts.
pub fn agent_name<'a>(
    spec: &'a PromptAgentSpec,
    object_name: &'a str,
) -> Result<&'a str, ValidationError> {
    let (field, name) = match spec.agent_name.as_deref() {
        Some(name) => ("spec.agentName", name),
        None => ("metadata.name", object_name),
    };
    if is_valid_agent_name(name) {
        Ok(name)
    } else {
        Err(ValidationError::InvalidAgentName {
            field,
            name: name.to_owned(),
        })
    }
}

fn validate_instructions(
    spec: &PromptAgentSpec,
    instructions: Option<&str>,
) -> Result<(), ValidationError> {
    if spec.instructions.is_some() && spec.instructions_from.is_some() {
        return Err(ValidationError::InstructionsConflict);
    }
    let origin = || match &spec.instructions_from {
        Some(r) => format!(
            "spec.instructionsFrom: ConfigMap {:?} key {:?}",
            r.name, r.key
        ),
        None => "spec.instructions".to_owned(),
    };
    match (instructions, &spec.instructions_from) {
        (None, Some(r)) => Err(ValidationError::InstructionsNotResolved {
            config_map: r.name.clone(),
            key: r.key.clone(),
        }),
        (None, None) => Ok(()),
        (Some(text), _) if text.trim().is_empty() => {
            Err(ValidationError::EmptyInstructions { origin: origin() })
        }
        (Some(text), _) => max_chars(origin, text, MAX_INSTRUCTIONS_CHARS),
    }
}

fn validate_description(spec: &PromptAgentSpec) -> Result<(), ValidationError> {
    match &spec.description {
        Some(d) => max_chars(|| "spec.description".to_owned(), d, MAX_DESCRIPTION_CHARS),
        None => Ok(()),
    }
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if metadata.len() > MAX_USER_METADATA_KEYS {
        return Err(ValidationError::TooMany {
            field: "spec.metadata",
            count: metadata.len(),
            max: MAX_USER_METADATA_KEYS,
            hint: "; Foundry allows 16 and the operator keeps one for its spec hash",
        });
    }
    for (key, value) in metadata {
        if key.starts_with(RESERVED_METADATA_PREFIX) {
            return Err(ValidationError::ReservedMetadataKey { key: key.clone() });
        }
        max_chars(
            || format!("spec.metadata key {key:?}"),
            key,
            MAX_METADATA_KEY_CHARS,
        )?;
        max_chars(
            || format!("spec.metadata.{key}"),
            value,
            MAX_METADATA_VALUE_CHARS,
        )?;
    }
    Ok(())
}

fn validate_sampling(spec: &PromptAgentSpec) -> Result<(), ValidationError> {
    let check = |field: &str, value: Option<f64>, max: f64, allowed| match value {
        Some(v) if !(v.is_finite() && (0.0..=max).contains(&v)) => {
            Err(ValidationError::OutOfRange {
                field: field.to_owned(),
                value: v.to_string(),
                allowed,
            })
        }
        _ => Ok(()),
    };
    check("spec.temperature", spec.temperature, 2.0, "between 0 and 2")?;
    check("spec.topP", spec.top_p, 1.0, "between 0 and 1")
}

fn validate_tools(tools: &[Tool]) -> Result<(), ValidationError> {
    if tools.len() > MAX_TOOLS {
        return Err(ValidationError::TooMany {
            field: "spec.tools",
            count: tools.len(),
            max: MAX_TOOLS,
            hint: "",
        });
    }
    let mut names = ToolNames::default();
    for (index, tool) in tools.iter().enumerate() {
        check_members(index, tool)?;
        check_tool(index, tool, &mut names)?;
    }
    Ok(())
}

/// The names the tools declare, each unique within its namespace.
struct ToolNames<'a> {
    functions: Names<'a>,
    server_labels: Names<'a>,
    open_apis: Names<'a>,
}

impl Default for ToolNames<'_> {
    fn default() -> Self {
        Self {
            functions: Names::new("function name"),
            server_labels: Names::new("mcp server label"),
            open_apis: Names::new("openApi name"),
        }
    }
}

/// The settings of one tool, whose members [`check_members`] checked; its names go to `names`.
fn check_tool<'a>(
    index: usize,
    tool: &'a Tool,
    names: &mut ToolNames<'a>,
) -> Result<(), ValidationError> {
    let field = |rest: &str| format!("spec.tools[{index}].{rest}");
    if let Some(f) = &tool.function {
        tool_name(&f.name, || field("function.name"))?;
        names.functions.insert(&f.name, index)?;
        if let Some(parameters) = &f.parameters {
            require_object(parameters, || field("function.parameters"))?;
        }
    }
    if let Some(fs) = &tool.file_search {
        check_file_search(fs, field)?;
    }
    if let Some(api) = &tool.open_api {
        tool_name(&api.name, || field("openApi.name"))?;
        names.open_apis.insert(&api.name, index)?;
        require_object(&api.spec, || field("openApi.spec"))?;
        check_open_api_auth(index, &api.auth)?;
    }
    if let Some(iq) = &tool.foundry_iq {
        tool_name(&iq.server_label, || field("foundryIq.serverLabel"))?;
        names.server_labels.insert(&iq.server_label, index)?;
    }
    if let Some(mcp) = &tool.mcp {
        tool_name(&mcp.server_label, || field("mcp.serverLabel"))?;
        names.server_labels.insert(&mcp.server_label, index)?;
    }
    for (member, settings) in [
        ("sharePointGrounding", &tool.share_point_grounding),
        ("fabricDataAgent", &tool.fabric_data_agent),
    ] {
        if settings
            .as_ref()
            .is_some_and(|s| s.project_connection_ids.is_empty())
        {
            return Err(ValidationError::Empty {
                field: field(&format!("{member}.projectConnectionIds")),
            });
        }
    }
    Ok(())
}

fn check_file_search(
    fs: &foundry_gateway_api::agent::FileSearchTool,
    field: impl Fn(&str) -> String,
) -> Result<(), ValidationError> {
    if fs.vector_store_ids.is_empty() {
        return Err(ValidationError::Empty {
            field: field("fileSearch.vectorStoreIds"),
        });
    }
    match fs.max_num_results {
        Some(n) if !(1..=50).contains(&n) => Err(ValidationError::OutOfRange {
            field: field("fileSearch.maxNumResults"),
            value: n.to_string(),
            allowed: "between 1 and 50",
        }),
        _ => Ok(()),
    }
}

/// The member named by `type` is set, and no other.
fn check_members(index: usize, tool: &Tool) -> Result<(), ValidationError> {
    let Some(kind) = tool_kind(&tool.type_) else {
        return Err(ValidationError::UnsupportedTool {
            index,
            kind: tool.type_.as_str().to_owned(),
        });
    };
    let set = [
        ("codeInterpreter", tool.code_interpreter.is_some()),
        ("function", tool.function.is_some()),
        ("fileSearch", tool.file_search.is_some()),
        ("openApi", tool.open_api.is_some()),
        ("foundryIq", tool.foundry_iq.is_some()),
        ("sharePointGrounding", tool.share_point_grounding.is_some()),
        ("fabricDataAgent", tool.fabric_data_agent.is_some()),
        ("mcp", tool.mcp.is_some()),
        ("browserAutomation", tool.browser_automation.is_some()),
    ];
    if !set
        .iter()
        .any(|(member, is_set)| *member == kind && *is_set)
    {
        return Err(ValidationError::ToolSettingsMissing { index, kind });
    }
    let others: Vec<&'static str> = set
        .iter()
        .filter(|(member, is_set)| *is_set && *member != kind)
        .map(|(member, _)| *member)
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::ToolSettingsConflict {
            index,
            kind,
            others,
        })
    }
}

fn check_open_api_auth(
    index: usize,
    auth: &foundry_gateway_api::agent::OpenApiAuth,
) -> Result<(), ValidationError> {
    let message = match auth.type_ {
        OpenApiAuthType::Anonymous if auth.project_connection_id.is_some() => {
            "projectConnectionId is set but type is anonymous; set type projectConnection or remove it"
        }
        OpenApiAuthType::Anonymous if auth.audience.is_some() => {
            "audience is set but type is anonymous; set type managedIdentity or remove it"
        }
        OpenApiAuthType::ProjectConnection if auth.project_connection_id.is_none() => {
            "type projectConnection needs projectConnectionId"
        }
        OpenApiAuthType::ProjectConnection if auth.audience.is_some() => {
            "audience only applies to type managedIdentity; remove it"
        }
        OpenApiAuthType::ManagedIdentity if auth.audience.is_none() => {
            "type managedIdentity needs audience"
        }
        OpenApiAuthType::ManagedIdentity if auth.project_connection_id.is_some() => {
            "projectConnectionId only applies to type projectConnection; remove it"
        }
        _ => return Ok(()),
    };
    Err(ValidationError::OpenApiAuth { index, message })
}

fn validate_tool_choice(spec: &PromptAgentSpec) -> Result<(), ValidationError> {
    let Some(choice) = &spec.tool_choice else {
        return Ok(());
    };
    match (choice.mode, &choice.function) {
        (ToolChoiceMode::Function, None) => Err(ValidationError::ToolChoiceFunctionMissing),
        (ToolChoiceMode::Function, Some(name)) => {
            let available: Vec<String> = spec
                .tools
                .iter()
                .filter(|t| t.type_ == ToolType::Function)
                .filter_map(|t| t.function.as_ref().map(|f| f.name.clone()))
                .collect();
            if available.contains(name) {
                Ok(())
            } else {
                Err(ValidationError::UnknownToolChoiceFunction {
                    name: name.clone(),
                    available,
                })
            }
        }
        (mode, Some(_)) => Err(ValidationError::ToolChoiceFunctionUnexpected {
            mode: tool_choice_mode(mode),
        }),
        (ToolChoiceMode::Required, None) if spec.tools.is_empty() => {
            Err(ValidationError::ToolChoiceWithoutTools)
        }
        (_, None) => Ok(()),
    }
}

fn validate_text(text: &TextOptions) -> Result<(), ValidationError> {
    let f = &text.format;
    match f.type_ {
        TextFormatType::JsonSchema => {
            let name = f
                .name
                .as_deref()
                .ok_or(ValidationError::TextFormatIncomplete { missing: "name" })?;
            tool_name(name, || "spec.text.format.name".to_owned())?;
            let schema = f
                .schema
                .as_ref()
                .ok_or(ValidationError::TextFormatIncomplete { missing: "schema" })?;
            require_object(schema, || "spec.text.format.schema".to_owned())
        }
        TextFormatType::Text | TextFormatType::JsonObject => {
            let fields: Vec<&'static str> = [
                ("name", f.name.is_some()),
                ("description", f.description.is_some()),
                ("schema", f.schema.is_some()),
                ("strict", f.strict.is_some()),
            ]
            .into_iter()
            .filter_map(|(field, set)| set.then_some(field))
            .collect();
            if fields.is_empty() {
                Ok(())
            } else {
                Err(ValidationError::TextFormatOptionsNotAllowed {
                    format: if f.type_ == TextFormatType::Text {
                        "text"
                    } else {
                        "jsonObject"
                    },
                    fields,
                })
            }
        }
    }
}

/// Names that must be unique within one namespace of tool names.
struct Names<'a> {
    what: &'static str,
    seen: BTreeMap<&'a str, usize>,
}

impl<'a> Names<'a> {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            seen: BTreeMap::new(),
        }
    }

    fn insert(&mut self, name: &'a str, index: usize) -> Result<(), ValidationError> {
        match self.seen.entry(name) {
            Entry::Vacant(e) => {
                e.insert(index);
                Ok(())
            }
            Entry::Occupied(e) => Err(ValidationError::DuplicateToolName {
                what: self.what,
                name: name.to_owned(),
                first: *e.get(),
                second: index,
            }),
        }
    }
}

/// The CRD's `type` string of a supported tool kind; `None` for a kind this version does not
/// know (only possible in an object admitted under another version of the CRD).
pub(super) fn tool_kind(kind: &ToolType) -> Option<&'static str> {
    SUPPORTED_TOOL_KINDS
        .into_iter()
        .find(|supported| *supported == kind.as_str())
}

fn tool_choice_mode(mode: ToolChoiceMode) -> &'static str {
    match mode {
        ToolChoiceMode::None => "none",
        ToolChoiceMode::Auto => "auto",
        ToolChoiceMode::Required => "required",
        ToolChoiceMode::Function => "function",
    }
}

/// `^[a-zA-Z0-9_-]{1,64}$`, the CRD's pattern for tool names and labels.
fn tool_name(name: &str, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::InvalidName {
            field: field(),
            name: name.to_owned(),
        })
    }
}

fn require_object(value: &Value, field: impl FnOnce() -> String) -> Result<(), ValidationError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(ValidationError::NotAJsonObject {
            field: field(),
            found: json_type(value),
        })
    }
}

fn max_chars(
    field: impl FnOnce() -> String,
    text: &str,
    max: usize,
) -> Result<(), ValidationError> {
    let len = text.chars().count();
    if len > max {
        Err(ValidationError::TooLong {
            field: field(),
            len,
            max,
        })
    } else {
        Ok(())
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
