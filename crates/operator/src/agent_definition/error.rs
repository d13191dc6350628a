//! Why a PromptAgent spec cannot be sent to Foundry as written.

use foundry_gateway_api::conditions::reasons;

use super::SUPPORTED_TOOL_KINDS;

/// A spec that cannot work as written. Every message starts with the field to fix and says what
/// to do; none is retried (the controller waits for a change of the spec or of the watched
/// ConfigMap).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// A tool kind the operator does not send (only possible in an object admitted under another
    /// version of the CRD, whose schema allowed it).
    #[error(
        "spec.tools[{index}].type {kind:?} is not supported with gateway models; use one of {}",
        SUPPORTED_TOOL_KINDS.join(", ")
    )]
    UnsupportedTool {
        /// Position in `spec.tools`.
        index: usize,
        /// The `type` as written.
        kind: String,
    },

    /// `type` names a kind whose settings member is not set.
    #[error(
        "spec.tools[{index}] has type {kind} but no {kind} settings; add spec.tools[{index}].{kind}"
    )]
    ToolSettingsMissing {
        /// Position in `spec.tools`.
        index: usize,
        /// The kind, as written in `type`.
        kind: &'static str,
    },

    /// Settings of other kinds next to the one `type` names.
    #[error(
        "spec.tools[{index}] has type {kind} but also sets {}; one tool has one kind, so move those settings to a tool of their own",
        others.join(", ")
    )]
    ToolSettingsConflict {
        /// Position in `spec.tools`.
        index: usize,
        /// The kind, as written in `type`.
        kind: &'static str,
        /// The other members that are set.
        others: Vec<&'static str>,
    },

    /// Two tools share a name the model tells them apart by.
    #[error(
        "spec.tools[{second}] repeats the {what} {name:?} of spec.tools[{first}]; {what}s must be unique"
    )]
    DuplicateToolName {
        /// `function name`, `mcp server label` (shared by mcp and foundryIq) or `openApi name`.
        what: &'static str,
        /// The repeated name.
        name: String,
        /// The first tool with it.
        first: usize,
        /// The tool that repeats it.
        second: usize,
    },

    /// A tool name or label the model cannot use.
    #[error("{field} {name:?} must be 1 to 64 letters, digits, underscores or hyphens")]
    InvalidName {
        /// Path of the field.
        field: String,
        /// The name as written.
        name: String,
    },

    /// `toolChoice.mode` is function but `toolChoice.function` is not set.
    #[error(
        "spec.toolChoice.mode is function but spec.toolChoice.function is not set; name the function tool to call"
    )]
    ToolChoiceFunctionMissing,

    /// `toolChoice.function` is set with a mode other than function.
    #[error(
        "spec.toolChoice.function is set but spec.toolChoice.mode is {mode}; set mode to function or remove function"
    )]
    ToolChoiceFunctionUnexpected {
        /// The mode as written.
        mode: &'static str,
    },

    /// `toolChoice.function` names no function tool of the agent.
    #[error(
        "spec.toolChoice.function {name:?} is not a function tool of this agent; {}",
        available_functions(available)
    )]
    UnknownToolChoiceFunction {
        /// The name as written.
        name: String,
        /// The function tools the agent has.
        available: Vec<String>,
    },

    /// `toolChoice.mode` is required but the agent has no tools.
    #[error(
        "spec.toolChoice.mode is required but spec.tools is empty; add a tool or choose another mode"
    )]
    ToolChoiceWithoutTools,

    /// A free-form JSON field that must be a JSON object is something else.
    #[error("{field} must be a JSON object, not {found}")]
    NotAJsonObject {
        /// Path of the field.
        field: String,
        /// The JSON type found (`array`, `string`, …).
        found: &'static str,
    },

    /// A jsonSchema text format without name or schema.
    #[error("spec.text.format.type is jsonSchema but spec.text.format.{missing} is not set")]
    TextFormatIncomplete {
        /// `name` or `schema`.
        missing: &'static str,
    },

    /// name, description, schema or strict on a text format other than jsonSchema.
    #[error(
        "spec.text.format.{} only applies to type jsonSchema, not {format}; remove it or use jsonSchema",
        fields.join(", ")
    )]
    TextFormatOptionsNotAllowed {
        /// The format type as written.
        format: &'static str,
        /// The fields that are set.
        fields: Vec<&'static str>,
    },

    /// An openApi tool's auth misses the field its type needs, or sets one of another type.
    #[error("spec.tools[{index}].openApi.auth: {message}")]
    OpenApiAuth {
        /// Position in `spec.tools`.
        index: usize,
        /// What to change.
        message: &'static str,
    },

    /// A number outside its range.
    #[error("{field} is {value}; it must be {allowed}")]
    OutOfRange {
        /// Path of the field.
        field: String,
        /// The value as written.
        value: String,
        /// The allowed range.
        allowed: &'static str,
    },

    /// A text longer than Foundry accepts.
    #[error("{field} has {len} characters; at most {max} are allowed")]
    TooLong {
        /// Path of the field (or the metadata key).
        field: String,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A list or map with more entries than allowed.
    #[error("{field} has {count} entries; at most {max} are allowed{hint}")]
    TooMany {
        /// Path of the field.
        field: &'static str,
        /// Entries found.
        count: usize,
        /// The limit.
        max: usize,
        /// Why the limit is what it is (empty or starting with `; `).
        hint: &'static str,
    },

    /// A list that needs at least one entry is empty.
    #[error("{field} is empty; give at least one entry")]
    Empty {
        /// Path of the field.
        field: String,
    },

    /// A user metadata key with the operator's prefix.
    #[error(
        "spec.metadata key {key:?} uses the reserved prefix gateway.foundry.dev/; rename it (the operator writes those keys itself)"
    )]
    ReservedMetadataKey {
        /// The key.
        key: String,
    },

    /// Both `instructions` and `instructionsFrom`.
    #[error("spec.instructions and spec.instructionsFrom are both set; keep one")]
    InstructionsConflict,

    /// `instructionsFrom` is set but no text was resolved from it.
    #[error(
        "spec.instructionsFrom: ConfigMap {config_map:?} has no key {key:?}; create it or fix the reference"
    )]
    InstructionsNotResolved {
        /// ConfigMap name.
        config_map: String,
        /// Key.
        key: String,
    },

    /// Instructions that are set but empty (only whitespace).
    #[error("{origin} is empty; write the instructions or remove the field to run without any")]
    EmptyInstructions {
        /// Where they came from (`spec.instructions` or the ConfigMap key).
        origin: String,
    },

    /// The Foundry agent name is not valid.
    #[error(
        "{field} {name:?} is not a valid Foundry agent name (1 to 63 letters, digits and hyphens, starting and ending with a letter or digit); set spec.agentName"
    )]
    InvalidAgentName {
        /// `spec.agentName` or `metadata.name`.
        field: &'static str,
        /// The name.
        name: String,
    },
}

impl ValidationError {
    /// The stable condition reason (and metrics/event label) of this error, one of
    /// [`foundry_gateway_api::conditions::reasons`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedTool { .. } => reasons::UNSUPPORTED_TOOL,
            Self::InstructionsNotResolved { .. } => reasons::CONFIG_MAP_NOT_FOUND,
            _ => reasons::INVALID_SPEC,
        }
    }

    /// Always false: a spec that cannot work does not heal by retrying. The controller waits for
    /// a change of the spec or of the ConfigMap it reads the instructions from (both watched).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

fn available_functions(available: &[String]) -> String {
    if available.is_empty() {
        "this agent has no function tools".to_owned()
    } else {
        format!("its function tools are {}", available.join(", "))
    }
}
