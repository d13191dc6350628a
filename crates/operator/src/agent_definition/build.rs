//! Step "build": the Foundry wire definition (reference §2.3, tools §2.4) of a validated spec.
//! CRD types are converted field by field; no CRD type is sent as is.

use foundry_gateway_api::PromptAgentSpec;
use foundry_gateway_api::agent::{
    self as api, McpApproval, OpenApiAuthType, ReasoningEffort, ReasoningSummary, TextFormatType,
    ToolChoiceMode, ToolType,
};
use foundry_gateway_client::project::{
    self as wire, AutoContainer, CodeInterpreterContainer, ProjectConnectionRef,
    ProjectConnectionsTool, PromptAgentDefinition,
};
use serde_json::Value;

/// The only tool the Foundry IQ knowledge-base MCP endpoint offers.
const KNOWLEDGE_BASE_RETRIEVE: &str = "knowledge_base_retrieve";

/// The model string Foundry resolves through a gateway connection: `<connection>/<model>`, where
/// `connection_name` is the Foundry connection name (the GatewayConnection's `connectionName`,
/// default its `metadata.name`) and `model_name` the deployment name in that connection.
pub fn model_string(connection_name: &str, model_name: &str) -> String {
    format!("{connection_name}/{model_name}")
}

/// The prompt-agent definition Foundry receives for a spec.
///
/// Expects a spec that passed [`super::validate`]: parts that validation refuses and that have no
/// faithful wire form (a tool whose settings member is missing, `toolChoice` mode function without
/// a function, a jsonSchema format without name or schema) are left out rather than sent
/// half-built. `instructions` is the resolved text (inline or from the ConfigMap).
pub fn build_definition(
    spec: &PromptAgentSpec,
    connection_name: &str,
    instructions: Option<&str>,
) -> PromptAgentDefinition {
    PromptAgentDefinition {
        model: model_string(connection_name, &spec.model.name),
        instructions: instructions.map(str::to_owned),
        temperature: spec.temperature,
        top_p: spec.top_p,
        reasoning: spec.reasoning.as_ref().map(reasoning),
        tools: spec.tools.iter().filter_map(tool).collect(),
        tool_choice: spec.tool_choice.as_ref().and_then(tool_choice),
        text: spec.text.as_ref().and_then(text),
        structured_inputs: spec
            .structured_inputs
            .iter()
            .map(|(name, input)| (name.clone(), structured_input(input)))
            .collect(),
        rai_config: None,
    }
}

fn reasoning(r: &api::Reasoning) -> wire::Reasoning {
    wire::Reasoning {
        effort: r.effort.map(|e| match e {
            ReasoningEffort::Minimal => wire::ReasoningEffort::Minimal,
            ReasoningEffort::Low => wire::ReasoningEffort::Low,
            ReasoningEffort::Medium => wire::ReasoningEffort::Medium,
            ReasoningEffort::High => wire::ReasoningEffort::High,
        }),
        summary: r.summary.map(|s| {
            match s {
                ReasoningSummary::Auto => "auto",
                ReasoningSummary::Concise => "concise",
                ReasoningSummary::Detailed => "detailed",
            }
            .to_owned()
        }),
    }
}

fn tool_choice(choice: &api::ToolChoice) -> Option<wire::ToolChoice> {
    Some(match choice.mode {
        ToolChoiceMode::None => wire::ToolChoice::None,
        ToolChoiceMode::Auto => wire::ToolChoice::Auto,
        ToolChoiceMode::Required => wire::ToolChoice::Required,
        ToolChoiceMode::Function => wire::ToolChoice::Function {
            name: choice.function.clone()?,
        },
    })
}

fn text(options: &api::TextOptions) -> Option<wire::TextConfig> {
    let f = &options.format;
    let format = match f.type_ {
        TextFormatType::Text => wire::TextFormat::Text,
        TextFormatType::JsonObject => wire::TextFormat::JsonObject,
        TextFormatType::JsonSchema => wire::TextFormat::JsonSchema {
            name: f.name.clone()?,
            schema: f.schema.clone()?,
            description: f.description.clone(),
            strict: f.strict,
        },
    };
    Some(wire::TextConfig { format })
}

fn structured_input(input: &api::StructuredInput) -> wire::StructuredInput {
    wire::StructuredInput {
        description: input.description.clone(),
        default_value: input.default_value.clone(),
        schema: input.schema.clone(),
        required: input.required,
    }
}

/// One CRD tool in its wire shape (reference §2.4); `None` when the member `type` names is
/// missing or the kind is not supported.
fn tool(t: &api::Tool) -> Option<wire::Tool> {
    Some(match &t.type_ {
        ToolType::CodeInterpreter => code_interpreter(t.code_interpreter.as_ref()?),
        ToolType::Function => function(t.function.as_ref()?),
        ToolType::FileSearch => file_search(t.file_search.as_ref()?),
        ToolType::OpenApi => open_api(t.open_api.as_ref()?)?,
        ToolType::FoundryIq => foundry_iq(t.foundry_iq.as_ref()?),
        ToolType::SharePointGrounding => {
            wire::Tool::SharepointGrounding(connections(t.share_point_grounding.as_ref()?))
        }
        ToolType::FabricDataAgent => {
            wire::Tool::FabricDataAgent(connections(t.fabric_data_agent.as_ref()?))
        }
        ToolType::Mcp => mcp(t.mcp.as_ref()?),
        ToolType::BrowserAutomation => browser_automation(t.browser_automation.as_ref()?),
        // Refused by validation, which runs first.
        ToolType::Unsupported(_) => return None,
    })
}

fn code_interpreter(ci: &api::CodeInterpreterTool) -> wire::Tool {
    wire::Tool::CodeInterpreter(wire::CodeInterpreterTool {
        container: Some(CodeInterpreterContainer::Auto(AutoContainer::new(
            ci.file_ids.clone(),
        ))),
    })
}

fn function(f: &api::FunctionTool) -> wire::Tool {
    wire::Tool::Function(wire::FunctionTool {
        name: f.name.clone(),
        description: f.description.clone(),
        parameters: f.parameters.clone(),
        strict: f.strict,
    })
}

fn file_search(fs: &api::FileSearchTool) -> wire::Tool {
    wire::Tool::FileSearch(wire::FileSearchTool {
        vector_store_ids: fs.vector_store_ids.clone(),
        // Validation keeps it within 1..=50.
        max_num_results: fs.max_num_results.and_then(|n| u32::try_from(n).ok()),
        ranking_options: None,
        filters: None,
    })
}

fn open_api(api: &api::OpenApiTool) -> Option<wire::Tool> {
    Some(wire::Tool::OpenApi(wire::OpenApiTool {
        openapi: wire::OpenApiFunction {
            name: api.name.clone(),
            description: api.description.clone(),
            spec: api.spec.clone(),
            auth: open_api_auth(&api.auth)?,
        },
    }))
}

fn foundry_iq(iq: &api::FoundryIqTool) -> wire::Tool {
    wire::Tool::Mcp(wire::McpTool {
        server_label: iq.server_label.clone(),
        server_url: iq.server_url.clone(),
        require_approval: Some(Value::String("never".to_owned())),
        allowed_tools: Some(vec![KNOWLEDGE_BASE_RETRIEVE.to_owned()]),
        headers: None,
        project_connection_id: Some(iq.project_connection_id.clone()),
    })
}

fn mcp(mcp: &api::McpTool) -> wire::Tool {
    wire::Tool::Mcp(wire::McpTool {
        server_label: mcp.server_label.clone(),
        server_url: mcp.server_url.clone(),
        require_approval: mcp.require_approval.map(|a| {
            Value::String(
                match a {
                    McpApproval::Always => "always",
                    McpApproval::Never => "never",
                }
                .to_owned(),
            )
        }),
        // An empty list on the wire would allow no tool at all; the CRD means "all".
        allowed_tools: (!mcp.allowed_tools.is_empty()).then(|| mcp.allowed_tools.clone()),
        headers: None,
        project_connection_id: mcp.project_connection_id.clone(),
    })
}

fn browser_automation(ba: &api::BrowserAutomationTool) -> wire::Tool {
    wire::Tool::BrowserAutomation(wire::BrowserAutomationTool {
        connection: ProjectConnectionRef {
            project_connection_id: ba.project_connection_id.clone(),
        },
    })
}

fn open_api_auth(auth: &api::OpenApiAuth) -> Option<wire::OpenApiAuth> {
    Some(match auth.type_ {
        OpenApiAuthType::Anonymous => wire::OpenApiAuth::Anonymous,
        OpenApiAuthType::ProjectConnection => wire::OpenApiAuth::ProjectConnection {
            security_scheme: ProjectConnectionRef {
                project_connection_id: auth.project_connection_id.clone()?,
            },
        },
        OpenApiAuthType::ManagedIdentity => wire::OpenApiAuth::ManagedIdentity {
            security_scheme: wire::AudienceRef {
                audience: auth.audience.clone()?,
            },
        },
    })
}

fn connections(c: &api::ConnectionsTool) -> ProjectConnectionsTool {
    ProjectConnectionsTool {
        project_connections: c
            .project_connection_ids
            .iter()
            .map(|id| ProjectConnectionRef {
                project_connection_id: id.clone(),
            })
            .collect(),
    }
}
