//! Unit tests of the PromptAgent pipeline's pure middle, one file per step, and shared specs.

mod build;
mod hash;
mod validate;
mod versions;

use foundry_gateway_api::PromptAgentSpec;
use serde_json::{Value, json};

use super::*;

/// A spec as a user writes it (camelCase, like the CR's `spec`), on top of the required fields.
pub(super) fn spec_with(extra: Value) -> PromptAgentSpec {
    let mut spec = json!({
        "projectRef": {"name": "proj"},
        "model": {"connectionRef": {"name": "litellm-gw"}, "name": "gpt-4o"},
    });
    if let (Some(base), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        base.extend(extra);
    }
    serde_json::from_value(spec).expect("test spec")
}

/// The smallest valid spec: a project, a model, nothing else.
pub(super) fn minimal_spec() -> PromptAgentSpec {
    spec_with(json!({}))
}

/// One tool of each of the nine kinds, in the CR's camelCase form.
pub(super) fn nine_tools() -> Value {
    json!([
        {"type": "codeInterpreter", "codeInterpreter": {"fileIds": ["assistant-f1"]}},
        {"type": "function", "function": {
            "name": "get_weather", "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": true}},
        {"type": "fileSearch", "fileSearch": {"vectorStoreIds": ["vs_1"], "maxNumResults": 5}},
        {"type": "openApi", "openApi": {
            "name": "weather", "description": "Weather API",
            "spec": {"openapi": "3.0.0", "info": {"title": "w", "version": "1"}, "paths": {}},
            "auth": {"type": "anonymous"}}},
        {"type": "foundryIq", "foundryIq": {
            "serverLabel": "kb1",
            "serverUrl": "https://srch.search.windows.net/knowledgebases/kb1/mcp?api-version=2025-11-01-preview",
            "projectConnectionId": "kb-conn"}},
        {"type": "sharePointGrounding", "sharePointGrounding": {"projectConnectionIds": ["sp-conn"]}},
        {"type": "fabricDataAgent", "fabricDataAgent": {"projectConnectionIds": ["fabric-conn"]}},
        {"type": "mcp", "mcp": {
            "serverLabel": "github", "serverUrl": "https://api.githubcopilot.com/mcp",
            "requireApproval": "never", "allowedTools": ["search_code"],
            "projectConnectionId": "gh-conn"}},
        {"type": "browserAutomation", "browserAutomation": {"projectConnectionId": "pw-conn"}},
    ])
}

/// A spec that sets every field that reaches Foundry.
pub(super) fn full_spec() -> PromptAgentSpec {
    spec_with(json!({
        "instructions": "You answer questions about the weather.",
        "description": "Weather agent",
        "metadata": {"team": "weather", "tier": "gold"},
        "temperature": 0.2,
        "topP": 0.9,
        "reasoning": {"effort": "low", "summary": "auto"},
        "toolChoice": {"mode": "function", "function": "get_weather"},
        "text": {"format": {"type": "jsonSchema", "name": "forecast", "description": "A forecast",
            "schema": {"type": "object", "properties": {"summary": {"type": "string"}}}, "strict": true}},
        "structuredInputs": {"city": {"description": "Default city", "defaultValue": "Paris",
            "schema": {"type": "string"}, "required": false}},
        "tools": nine_tools(),
        "verify": {"input": "Say hello", "expect": "hello"},
    }))
}

/// The instructions of [`full_spec`], as the controller would resolve them.
pub(super) const FULL_INSTRUCTIONS: &str = "You answer questions about the weather.";

#[test]
fn reply_matches_needs_a_non_empty_reply_containing_the_expected_text() {
    assert!(reply_matches("Hello there", None));
    assert!(reply_matches("Hello there", Some("Hello")));
    assert!(
        !reply_matches("hello there", Some("Hello")),
        "case-sensitive"
    );
    assert!(!reply_matches("Goodbye", Some("Hello")));
    assert!(!reply_matches("", None), "an empty reply never passes");
    assert!(!reply_matches("  \n", None), "a blank reply never passes");
    assert!(!reply_matches("", Some("")));
}

#[test]
fn desired_version_runs_validate_build_hash_and_request_in_one_call() {
    let spec = full_spec();
    let owner = crate::ownership::ObjectId::new("team-a", "weather", Some("uid-a"));
    let desired = desired_version(&spec, "litellm", Some(FULL_INSTRUCTIONS), &owner).unwrap();
    assert_eq!(desired.model, "litellm/gpt-4o");
    let definition = build_definition(&spec, "litellm", Some(FULL_INSTRUCTIONS));
    let hash = definition_hash(&definition, spec.description.as_deref(), &spec.metadata);
    assert_eq!(desired.spec_hash, hash);
    assert_eq!(
        desired.request,
        version_request(&spec, definition, &hash, &owner)
    );

    let mut bad = full_spec();
    bad.tool_choice = Some(foundry_gateway_api::agent::ToolChoice {
        mode: foundry_gateway_api::agent::ToolChoiceMode::Function,
        function: Some("nope".into()),
    });
    let err = desired_version(&bad, "litellm", Some(FULL_INSTRUCTIONS), &owner).unwrap_err();
    assert_eq!(err.reason(), "InvalidSpec");
}
