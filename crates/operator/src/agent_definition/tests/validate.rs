use foundry_gateway_api::agent::ToolType;
use foundry_gateway_api::conditions::reasons;
use serde_json::{Value, json};

use super::*;

fn err(spec: &PromptAgentSpec, instructions: Option<&str>) -> ValidationError {
    validate(spec, instructions).expect_err("spec should be refused")
}

fn msg(spec: &PromptAgentSpec, instructions: Option<&str>) -> String {
    err(spec, instructions).to_string()
}

#[test]
fn the_full_spec_with_all_nine_tool_kinds_is_valid() {
    validate(&full_spec(), Some(FULL_INSTRUCTIONS)).unwrap();
}

#[test]
fn an_agent_without_instructions_is_allowed_because_foundry_allows_it() {
    validate(&minimal_spec(), None).unwrap();
}

#[test]
fn instructions_from_a_missing_configmap_key_are_reported_as_config_map_not_found() {
    let spec = spec_with(json!({"instructionsFrom": {"name": "prompts", "key": "agent.md"}}));
    let e = err(&spec, None);
    assert_eq!(e.reason(), reasons::CONFIG_MAP_NOT_FOUND);
    assert_eq!(
        e.to_string(),
        r#"spec.instructionsFrom: ConfigMap "prompts" has no key "agent.md"; create it or fix the reference"#
    );
    validate(&spec, Some("Be brief.")).unwrap();
}

#[test]
fn empty_instructions_are_refused_naming_where_they_came_from() {
    let inline = spec_with(json!({"instructions": "  "}));
    assert_eq!(
        msg(&inline, Some("  ")),
        "spec.instructions is empty; write the instructions or remove the field to run without any"
    );
    let from = spec_with(json!({"instructionsFrom": {"name": "prompts", "key": "agent.md"}}));
    assert!(
        msg(&from, Some("\n"))
            .starts_with(r#"spec.instructionsFrom: ConfigMap "prompts" key "agent.md" is empty"#)
    );
}

#[test]
fn instructions_and_instructions_from_together_are_refused() {
    let spec =
        spec_with(json!({"instructions": "a", "instructionsFrom": {"name": "p", "key": "k"}}));
    assert_eq!(err(&spec, Some("a")), ValidationError::InstructionsConflict);
}

#[test]
fn instructions_from_a_configmap_longer_than_the_inline_limit_are_refused() {
    let spec = spec_with(json!({"instructionsFrom": {"name": "p", "key": "k"}}));
    let long = "a".repeat(262_145);
    assert!(msg(&spec, Some(&long)).ends_with("has 262145 characters; at most 262144 are allowed"));
}

#[test]
fn function_tool_names_must_be_unique() {
    let f = json!({"type": "function", "function": {"name": "lookup"}});
    let spec = spec_with(
        json!({"tools": [f.clone(), {"type": "mcp", "mcp": {"serverLabel": "lookup", "serverUrl": "https://x/mcp"}}, f]}),
    );
    assert_eq!(
        msg(&spec, None),
        r#"spec.tools[2] repeats the function name "lookup" of spec.tools[0]; function names must be unique"#
    );
}

#[test]
fn mcp_server_labels_are_unique_across_mcp_and_foundry_iq_tools() {
    let spec = spec_with(json!({"tools": [
        {"type": "foundryIq", "foundryIq": {"serverLabel": "kb", "serverUrl": "https://s/knowledgebases/kb/mcp", "projectConnectionId": "c"}},
        {"type": "mcp", "mcp": {"serverLabel": "kb", "serverUrl": "https://x/mcp"}},
    ]}));
    assert_eq!(
        msg(&spec, None),
        r#"spec.tools[1] repeats the mcp server label "kb" of spec.tools[0]; mcp server labels must be unique"#
    );
}

#[test]
fn open_api_tool_names_must_be_unique() {
    let t = json!({"type": "openApi", "openApi": {"name": "w", "spec": {}, "auth": {"type": "anonymous"}}});
    let spec = spec_with(json!({"tools": [t.clone(), t]}));
    assert!(msg(&spec, None).contains(r#"repeats the openApi name "w" of spec.tools[0]"#));
}

#[test]
fn tool_choice_function_must_name_a_function_tool_and_the_message_lists_them() {
    let mut spec = full_spec();
    spec.tool_choice.as_mut().unwrap().function = Some("get_wether".into());
    assert_eq!(
        msg(&spec, Some(FULL_INSTRUCTIONS)),
        r#"spec.toolChoice.function "get_wether" is not a function tool of this agent; its function tools are get_weather"#
    );
    let no_tools = spec_with(json!({"toolChoice": {"mode": "function", "function": "f"}}));
    assert!(msg(&no_tools, None).ends_with("this agent has no function tools"));
    // An openApi or mcp tool of that name is not a function tool.
    let other_kind = spec_with(json!({
        "toolChoice": {"mode": "function", "function": "weather"},
        "tools": [{"type": "openApi", "openApi": {"name": "weather", "spec": {}, "auth": {"type": "anonymous"}}}],
    }));
    assert!(matches!(
        err(&other_kind, None),
        ValidationError::UnknownToolChoiceFunction { .. }
    ));
}

#[test]
fn tool_choice_function_and_mode_must_agree() {
    let missing = spec_with(json!({"toolChoice": {"mode": "function"}}));
    assert_eq!(
        err(&missing, None),
        ValidationError::ToolChoiceFunctionMissing
    );
    let unexpected = spec_with(json!({"toolChoice": {"mode": "auto", "function": "f"}}));
    assert_eq!(
        msg(&unexpected, None),
        "spec.toolChoice.function is set but spec.toolChoice.mode is auto; set mode to function or remove function"
    );
}

#[test]
fn tool_choice_required_without_tools_is_refused() {
    let spec = spec_with(json!({"toolChoice": {"mode": "required"}}));
    assert_eq!(err(&spec, None), ValidationError::ToolChoiceWithoutTools);
    let none = spec_with(json!({"toolChoice": {"mode": "none"}}));
    validate(&none, None).unwrap();
}

#[test]
fn a_json_schema_text_format_needs_an_object_schema_and_a_name() {
    let array =
        spec_with(json!({"text": {"format": {"type": "jsonSchema", "name": "n", "schema": []}}}));
    assert_eq!(
        msg(&array, None),
        "spec.text.format.schema must be a JSON object, not an array"
    );
    let no_name = spec_with(json!({"text": {"format": {"type": "jsonSchema", "schema": {}}}}));
    assert_eq!(
        msg(&no_name, None),
        "spec.text.format.type is jsonSchema but spec.text.format.name is not set"
    );
    let no_schema = spec_with(json!({"text": {"format": {"type": "jsonSchema", "name": "n"}}}));
    assert_eq!(
        err(&no_schema, None),
        ValidationError::TextFormatIncomplete { missing: "schema" }
    );
}

#[test]
fn schema_options_on_a_text_or_json_object_format_are_refused_rather_than_dropped() {
    let spec = spec_with(
        json!({"text": {"format": {"type": "jsonObject", "description": "d", "strict": true}}}),
    );
    assert_eq!(
        msg(&spec, None),
        "spec.text.format.description, strict only applies to type jsonSchema, not jsonObject; remove it or use jsonSchema"
    );
}

#[test]
fn free_form_schemas_must_be_json_objects() {
    let params = spec_with(
        json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]}),
    );
    assert_eq!(
        msg(&params, None),
        "spec.tools[0].function.parameters must be a JSON object, not a string"
    );
    let openapi = spec_with(
        json!({"tools": [{"type": "openApi", "openApi": {"name": "w", "spec": 3, "auth": {"type": "anonymous"}}}]}),
    );
    assert_eq!(
        msg(&openapi, None),
        "spec.tools[0].openApi.spec must be a JSON object, not a number"
    );
    let input = spec_with(json!({"structuredInputs": {"city": {"schema": true}}}));
    assert_eq!(
        msg(&input, None),
        "spec.structuredInputs.city.schema must be a JSON object, not a boolean"
    );
}

#[test]
fn a_tool_must_set_exactly_the_settings_its_type_names() {
    let missing = spec_with(json!({"tools": [{"type": "fileSearch"}]}));
    assert_eq!(
        msg(&missing, None),
        "spec.tools[0] has type fileSearch but no fileSearch settings; add spec.tools[0].fileSearch"
    );
    let conflict = spec_with(json!({"tools": [{"type": "mcp",
        "mcp": {"serverLabel": "s", "serverUrl": "https://x/mcp"},
        "browserAutomation": {"projectConnectionId": "c"}}]}));
    assert_eq!(
        msg(&conflict, None),
        "spec.tools[0] has type mcp but also sets browserAutomation; one tool has one kind, so move those settings to a tool of their own"
    );
}

#[test]
fn open_api_auth_must_carry_the_field_of_its_type_and_no_other() {
    let cases = [
        (
            json!({"type": "projectConnection"}),
            "type projectConnection needs projectConnectionId",
        ),
        (
            json!({"type": "managedIdentity"}),
            "type managedIdentity needs audience",
        ),
        (
            json!({"type": "anonymous", "audience": "https://x"}),
            "audience is set but type is anonymous; set type managedIdentity or remove it",
        ),
    ];
    for (auth, expected) in cases {
        let spec = spec_with(
            json!({"tools": [{"type": "openApi", "openApi": {"name": "w", "spec": {}, "auth": auth}}]}),
        );
        assert_eq!(
            msg(&spec, None),
            format!("spec.tools[0].openApi.auth: {expected}")
        );
    }
}

#[test]
fn file_search_needs_a_vector_store_and_a_result_cap_between_1_and_50() {
    let empty =
        spec_with(json!({"tools": [{"type": "fileSearch", "fileSearch": {"vectorStoreIds": []}}]}));
    assert_eq!(
        msg(&empty, None),
        "spec.tools[0].fileSearch.vectorStoreIds is empty; give at least one entry"
    );
    let cap = spec_with(
        json!({"tools": [{"type": "fileSearch", "fileSearch": {"vectorStoreIds": ["v"], "maxNumResults": -1}}]}),
    );
    assert_eq!(
        msg(&cap, None),
        "spec.tools[0].fileSearch.maxNumResults is -1; it must be between 1 and 50"
    );
}

#[test]
fn sampling_parameters_outside_their_range_are_refused() {
    let spec = spec_with(json!({"temperature": 2.5}));
    assert_eq!(
        msg(&spec, None),
        "spec.temperature is 2.5; it must be between 0 and 2"
    );
    let spec = spec_with(json!({"topP": -0.1}));
    assert_eq!(
        msg(&spec, None),
        "spec.topP is -0.1; it must be between 0 and 1"
    );
}

#[test]
fn more_than_15_user_metadata_keys_are_refused_saying_why() {
    let metadata: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("k{i:02}"), json!("v"))).collect();
    let spec = spec_with(json!({"metadata": metadata}));
    assert_eq!(
        msg(&spec, None),
        "spec.metadata has 16 entries; at most 15 are allowed; Foundry allows 16 and the operator keeps one for its spec hash"
    );
    let metadata: serde_json::Map<String, Value> =
        (0..15).map(|i| (format!("k{i:02}"), json!("v"))).collect();
    validate(&spec_with(json!({"metadata": metadata})), None).unwrap();
}

#[test]
fn user_metadata_keys_with_the_reserved_prefix_are_refused() {
    let spec = spec_with(json!({"metadata": {"gateway.foundry.dev/spec-hash": "0"}}));
    let e = err(&spec, None);
    assert_eq!(e.reason(), reasons::INVALID_SPEC);
    assert!(
        e.to_string()
            .contains("uses the reserved prefix gateway.foundry.dev/")
    );
}

#[test]
fn metadata_keys_and_values_over_foundry_limits_are_refused() {
    let spec = spec_with(json!({"metadata": {"k".repeat(65): "v"}}));
    assert!(msg(&spec, None).ends_with("has 65 characters; at most 64 are allowed"));
    let spec = spec_with(json!({"metadata": {"k": "v".repeat(513)}}));
    assert_eq!(
        msg(&spec, None),
        "spec.metadata.k has 513 characters; at most 512 are allowed"
    );
}

#[test]
fn a_description_over_512_characters_is_refused() {
    let spec = spec_with(json!({"description": "é".repeat(513)}));
    assert_eq!(
        msg(&spec, None),
        "spec.description has 513 characters; at most 512 are allowed"
    );
    validate(&spec_with(json!({"description": "é".repeat(512)})), None).unwrap();
}

#[test]
fn the_agent_name_defaults_to_metadata_name_and_must_suit_foundry() {
    let spec = minimal_spec();
    assert_eq!(agent_name(&spec, "weather").unwrap(), "weather");
    let e = agent_name(&spec, "weather.v2").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"metadata.name "weather.v2" is not a valid Foundry agent name (1 to 63 letters, digits and hyphens, starting and ending with a letter or digit); set spec.agentName"#
    );
    let named = spec_with(json!({"agentName": "weather-v2"}));
    assert_eq!(agent_name(&named, "weather.v2").unwrap(), "weather-v2");
}

#[test]
fn an_unknown_tool_kind_is_refused_naming_it_and_listing_the_nine_supported_kinds() {
    let Value::Array(mut tools) = nine_tools() else {
        panic!("nine_tools is an array")
    };
    tools.insert(
        3,
        json!({"type": "imageGeneration", "imageGeneration": {"size": "auto"}}),
    );
    // The typed spec reads it (an object admitted under another CRD version must not fail the
    // whole watch); validation refuses it, naming it.
    let spec = spec_with(json!({"tools": tools}));
    assert_eq!(
        spec.tools[3].type_,
        ToolType::Unsupported("imageGeneration".into())
    );
    let e = err(&spec, None);
    assert_eq!(
        e,
        ValidationError::UnsupportedTool {
            index: 3,
            kind: "imageGeneration".into()
        }
    );
    assert_eq!(e.reason(), reasons::UNSUPPORTED_TOOL);
    assert_eq!(
        e.to_string(),
        r#"spec.tools[3].type "imageGeneration" is not supported with gateway models; use one of codeInterpreter, function, fileSearch, openApi, foundryIq, sharePointGrounding, fabricDataAgent, mcp, browserAutomation"#
    );
    // The wire name of a supported kind is not a CRD kind either.
    let wire = spec_with(json!({"tools": [{"type": "code_interpreter", "codeInterpreter": {}}]}));
    assert!(matches!(
        err(&wire, None),
        ValidationError::UnsupportedTool { index: 0, .. }
    ));
}

#[test]
fn a_prompt_agent_with_an_unknown_tool_kind_still_deserialises() {
    let object = json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent",
        "metadata": {"name": "a", "namespace": "n"},
        "spec": {
            "projectRef": {"name": "proj"},
            "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
            "tools": [{"type": "bingGrounding", "bingGrounding": {"connectionId": "c"}}],
        },
    });
    let agent: foundry_gateway_api::PromptAgent =
        serde_json::from_value(object).expect("typed read of an unknown tool kind");
    assert_eq!(
        agent.spec.tools[0].type_,
        ToolType::Unsupported("bingGrounding".into())
    );
    assert_eq!(agent.spec.tools[0].type_.as_str(), "bingGrounding");
}

#[test]
fn the_supported_kinds_are_exactly_the_crd_tool_types() {
    let kinds: Vec<ToolType> = SUPPORTED_TOOL_KINDS
        .iter()
        .map(|k| serde_json::from_value(json!(k)).unwrap())
        .collect();
    for (i, a) in kinds.iter().enumerate() {
        assert!(!kinds[i + 1..].contains(a), "{a:?} listed twice");
    }
    for (kind, name) in kinds.iter().zip(SUPPORTED_TOOL_KINDS) {
        assert!(!matches!(kind, ToolType::Unsupported(_)), "{name} is known");
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(name));
        assert_eq!(kind.as_str(), name);
    }
}

#[test]
fn every_error_reason_is_a_condition_reason_constant() {
    let errors = [
        ValidationError::UnsupportedTool {
            index: 0,
            kind: "x".into(),
        },
        ValidationError::InstructionsNotResolved {
            config_map: "c".into(),
            key: "k".into(),
        },
        ValidationError::InstructionsConflict,
        ValidationError::ToolChoiceWithoutTools,
    ];
    let known = [
        reasons::UNSUPPORTED_TOOL,
        reasons::CONFIG_MAP_NOT_FOUND,
        reasons::INVALID_SPEC,
    ];
    for e in errors {
        assert!(known.contains(&e.reason()), "{e:?}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
}
