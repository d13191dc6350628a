use serde_json::json;

use super::*;

/// The wire JSON of the only tool of a spec with `tool` (CR form).
fn wire_tool(tool: Value) -> Value {
    let spec = spec_with(json!({"tools": [tool]}));
    let definition = build_definition(&spec, "gw", None);
    assert_eq!(definition.tools.len(), 1);
    serde_json::to_value(&definition.tools[0]).unwrap()
}

fn definition_json(spec: &PromptAgentSpec, instructions: Option<&str>) -> Value {
    serde_json::to_value(build_definition(spec, "litellm-gw-conn", instructions)).unwrap()
}

#[test]
fn the_model_is_the_foundry_connection_name_slash_the_model_name() {
    assert_eq!(model_string("my-gw-conn", "gpt-4o"), "my-gw-conn/gpt-4o");
    // The Foundry connection name is given by the caller; the GatewayConnection's object name
    // in spec.model.connectionRef is not used.
    let definition = build_definition(&minimal_spec(), "apim-prod", None);
    assert_eq!(definition.model, "apim-prod/gpt-4o");
}

#[test]
fn a_minimal_spec_sends_only_kind_and_model() {
    assert_eq!(
        definition_json(&minimal_spec(), None),
        json!({"kind": "prompt", "model": "litellm-gw-conn/gpt-4o"})
    );
}

#[test]
fn code_interpreter_becomes_code_interpreter_with_an_auto_container_and_its_files() {
    assert_eq!(
        wire_tool(json!({"type": "codeInterpreter", "codeInterpreter": {"fileIds": ["f1", "f2"]}})),
        json!({"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["f1", "f2"]}})
    );
    assert_eq!(
        wire_tool(json!({"type": "codeInterpreter", "codeInterpreter": {}})),
        json!({"type": "code_interpreter", "container": {"type": "auto"}})
    );
}

#[test]
fn function_becomes_a_function_tool_with_its_schema_as_written() {
    assert_eq!(
        wire_tool(json!({"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": true}})),
        json!({"type": "function", "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": true})
    );
    assert_eq!(
        wire_tool(json!({"type": "function", "function": {"name": "ping"}})),
        json!({"type": "function", "name": "ping"})
    );
}

#[test]
fn file_search_becomes_file_search_with_vector_stores_and_result_cap() {
    assert_eq!(
        wire_tool(
            json!({"type": "fileSearch", "fileSearch": {"vectorStoreIds": ["vs_1", "vs_2"], "maxNumResults": 5}})
        ),
        json!({"type": "file_search", "vector_store_ids": ["vs_1", "vs_2"], "max_num_results": 5})
    );
}

#[test]
fn open_api_becomes_openapi_with_each_of_the_three_auth_shapes() {
    let tool = |auth: Value| {
        json!({"type": "openApi", "openApi": {"name": "weather", "description": "Weather API",
            "spec": {"openapi": "3.0.0"}, "auth": auth}})
    };
    let wire = |auth: Value| {
        json!({"type": "openapi", "openapi": {"name": "weather", "description": "Weather API",
            "spec": {"openapi": "3.0.0"}, "auth": auth}})
    };
    assert_eq!(
        wire_tool(tool(json!({"type": "anonymous"}))),
        wire(json!({"type": "anonymous"}))
    );
    assert_eq!(
        wire_tool(tool(
            json!({"type": "projectConnection", "projectConnectionId": "weather-key"})
        )),
        wire(
            json!({"type": "project_connection", "security_scheme": {"project_connection_id": "weather-key"}})
        )
    );
    assert_eq!(
        wire_tool(tool(
            json!({"type": "managedIdentity", "audience": "https://weather.example"})
        )),
        wire(
            json!({"type": "managed_identity", "security_scheme": {"audience": "https://weather.example"}})
        )
    );
}

#[test]
fn foundry_iq_becomes_an_mcp_tool_on_the_knowledge_base_that_never_asks_for_approval() {
    let url =
        "https://srch.search.windows.net/knowledgebases/kb1/mcp?api-version=2025-11-01-preview";
    assert_eq!(
        wire_tool(json!({"type": "foundryIq", "foundryIq": {
            "serverLabel": "kb1", "serverUrl": url, "projectConnectionId": "kb-conn"}})),
        json!({"type": "mcp", "server_label": "kb1", "server_url": url,
            "allowed_tools": ["knowledge_base_retrieve"], "project_connection_id": "kb-conn",
            "require_approval": "never"})
    );
}

#[test]
fn share_point_grounding_becomes_sharepoint_grounding_preview_with_its_connections() {
    assert_eq!(
        wire_tool(
            json!({"type": "sharePointGrounding", "sharePointGrounding": {"projectConnectionIds": ["sp1", "sp2"]}})
        ),
        json!({"type": "sharepoint_grounding_preview", "sharepoint_grounding_preview": {
            "project_connections": [{"project_connection_id": "sp1"}, {"project_connection_id": "sp2"}]}})
    );
}

#[test]
fn fabric_data_agent_becomes_fabric_dataagent_preview_with_its_connections() {
    assert_eq!(
        wire_tool(
            json!({"type": "fabricDataAgent", "fabricDataAgent": {"projectConnectionIds": ["fab"]}})
        ),
        json!({"type": "fabric_dataagent_preview", "fabric_dataagent_preview": {
            "project_connections": [{"project_connection_id": "fab"}]}})
    );
}

#[test]
fn mcp_becomes_mcp_with_label_url_approval_allowed_tools_and_connection() {
    assert_eq!(
        wire_tool(json!({"type": "mcp", "mcp": {
            "serverLabel": "github", "serverUrl": "https://api.githubcopilot.com/mcp",
            "requireApproval": "always", "allowedTools": ["search_code", "get_file"],
            "projectConnectionId": "gh-conn"}})),
        json!({"type": "mcp", "server_label": "github", "server_url": "https://api.githubcopilot.com/mcp",
            "require_approval": "always", "allowed_tools": ["search_code", "get_file"],
            "project_connection_id": "gh-conn"})
    );
}

#[test]
fn an_mcp_tool_without_allowed_tools_or_approval_sends_neither_so_foundry_defaults_apply() {
    assert_eq!(
        wire_tool(
            json!({"type": "mcp", "mcp": {"serverLabel": "s", "serverUrl": "https://mcp.example/sse"}})
        ),
        json!({"type": "mcp", "server_label": "s", "server_url": "https://mcp.example/sse"})
    );
}

#[test]
fn browser_automation_becomes_browser_automation_preview_with_its_connection() {
    assert_eq!(
        wire_tool(
            json!({"type": "browserAutomation", "browserAutomation": {"projectConnectionId": "pw-conn"}})
        ),
        json!({"type": "browser_automation_preview", "browser_automation_preview": {
            "connection": {"project_connection_id": "pw-conn"}}})
    );
}

#[test]
fn tools_keep_their_order() {
    let definition = build_definition(&full_spec(), "gw", None);
    let types: Vec<&str> = definition.tools.iter().map(|t| t.tool_type()).collect();
    assert_eq!(
        types,
        [
            "code_interpreter",
            "function",
            "file_search",
            "openapi",
            "mcp",
            "sharepoint_grounding_preview",
            "fabric_dataagent_preview",
            "mcp",
            "browser_automation_preview"
        ]
    );
}

#[test]
fn tool_choice_modes_are_strings_and_a_function_choice_is_an_object() {
    for (mode, wire) in [("none", "none"), ("auto", "auto"), ("required", "required")] {
        let spec = spec_with(json!({"toolChoice": {"mode": mode}}));
        assert_eq!(definition_json(&spec, None)["tool_choice"], json!(wire));
    }
    assert_eq!(
        definition_json(&full_spec(), None)["tool_choice"],
        json!({"type": "function", "name": "get_weather"})
    );
}

#[test]
fn text_formats_map_to_text_json_object_and_json_schema() {
    let text = spec_with(json!({"text": {"format": {"type": "text"}}}));
    assert_eq!(
        definition_json(&text, None)["text"],
        json!({"format": {"type": "text"}})
    );
    let object = spec_with(json!({"text": {"format": {"type": "jsonObject"}}}));
    assert_eq!(
        definition_json(&object, None)["text"],
        json!({"format": {"type": "json_object"}})
    );
    let schema = spec_with(
        json!({"text": {"format": {"type": "jsonSchema", "name": "forecast", "schema": {"type": "object"}}}}),
    );
    assert_eq!(
        definition_json(&schema, None)["text"],
        json!({"format": {"type": "json_schema", "name": "forecast", "schema": {"type": "object"}}})
    );
}

#[test]
fn the_full_spec_becomes_the_reference_prompt_definition() {
    let v = definition_json(&full_spec(), Some(FULL_INSTRUCTIONS));
    let mut without_tools = v.clone();
    without_tools.as_object_mut().unwrap().remove("tools");
    assert_eq!(
        without_tools,
        json!({
            "kind": "prompt",
            "model": "litellm-gw-conn/gpt-4o",
            "instructions": "You answer questions about the weather.",
            "temperature": 0.2,
            "top_p": 0.9,
            "reasoning": {"effort": "low", "summary": "auto"},
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "forecast", "description": "A forecast",
                "schema": {"type": "object", "properties": {"summary": {"type": "string"}}}, "strict": true}},
            "structured_inputs": {"city": {"description": "Default city", "default_value": "Paris",
                "schema": {"type": "string"}, "required": false}},
        })
    );
    assert_eq!(v["tools"].as_array().unwrap().len(), 9);
    // Nothing of the CR that is not part of the definition leaks into it.
    for key in [
        "description",
        "metadata",
        "verify",
        "projectRef",
        "agentName",
    ] {
        assert!(v.get(key).is_none(), "{key} must not be in the definition");
    }
}

#[test]
fn the_instructions_sent_are_the_resolved_ones() {
    let spec = spec_with(json!({"instructionsFrom": {"name": "prompts", "key": "agent.md"}}));
    assert_eq!(
        definition_json(&spec, Some("From the ConfigMap"))["instructions"],
        json!("From the ConfigMap")
    );
}

#[test]
fn a_tool_without_its_settings_is_left_out_rather_than_sent_half_built() {
    let spec = spec_with(
        json!({"tools": [{"type": "function"}, {"type": "mcp", "mcp": {"serverLabel": "s", "serverUrl": "https://x/mcp"}}]}),
    );
    assert!(validate(&spec, None).is_err());
    let definition = build_definition(&spec, "gw", None);
    assert_eq!(definition.tools.len(), 1);
    assert_eq!(definition.tools[0].tool_type(), "mcp");
}
