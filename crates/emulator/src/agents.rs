//! Prompt agents and their versions (reference §2.2–2.3).

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::errors::{ApiError, HandlerResult, ok_json};
use crate::paging::{Item, PageQuery, page};
use crate::routes::DataOp;
use crate::state::{Agent, ProjectState};
use crate::util::unix_seconds;

/// api-versions accepted on project APIs.
pub(crate) const DATA_API_VERSIONS: &[&str] = &["v1", "2025-11-15-preview"];

/// Checks the `api-version` of project (non-OpenAI) APIs.
pub(crate) fn check_api_version(query: &[(String, String)]) -> Result<(), ApiError> {
    match query.iter().find(|(k, _)| k == "api-version") {
        None => {
            let mut e = ApiError::data(
                StatusCode::BAD_REQUEST,
                "missing_api_version",
                "The api-version query parameter is required; use api-version=v1.",
            );
            e.param = Some("api-version".into());
            Err(e)
        }
        Some((_, v)) if DATA_API_VERSIONS.contains(&v.as_str()) => Ok(()),
        Some((_, v)) => {
            let mut e = ApiError::data(
                StatusCode::BAD_REQUEST,
                "unsupported_api_version",
                format!(
                    "The api-version '{v}' is not supported; supported versions are {}.",
                    DATA_API_VERSIONS.join(", ")
                ),
            );
            e.param = Some("api-version".into());
            Err(e)
        }
    }
}

/// Checks an agent name: alphanumeric at both ends, hyphens inside, at most 63 characters.
pub(crate) fn validate_agent_name(name: &str) -> Result<(), ApiError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_param(
            "agent_name",
            format!(
                "agent name '{name}' is invalid: use at most 63 letters, digits and hyphens, starting and ending with a letter or digit"
            ),
        ))
    }
}

/// Checks `metadata`: string values only, at most 16 keys of ≤64 characters, values ≤512.
pub(crate) fn validate_metadata(value: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(Map::new()),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_param(
                "metadata",
                "metadata must be an object of strings",
            ));
        }
    };
    if map.len() > 16 {
        return Err(ApiError::bad_param(
            "metadata",
            format!("metadata has {} keys; at most 16 are allowed", map.len()),
        ));
    }
    for (k, v) in &map {
        if k.chars().count() > 64 {
            return Err(ApiError::bad_param(
                "metadata",
                format!("metadata key '{k}' is longer than 64 characters"),
            ));
        }
        match v.as_str() {
            Some(s) if s.chars().count() <= 512 => {}
            Some(_) => {
                return Err(ApiError::bad_param(
                    "metadata",
                    format!("metadata value of '{k}' is longer than 512 characters"),
                ));
            }
            None => {
                return Err(ApiError::bad_param(
                    "metadata",
                    format!("metadata value of '{k}' must be a string"),
                ));
            }
        }
    }
    Ok(map)
}

/// The `Foundry-Features` opt-in that `draft` needs (`conditional_previews` of
/// `CreateAgentVersionRequest.draft` in agents/models.tsp; SDK `_AgentDefinitionOptInKeys`).
const DRAFT_PREVIEW: &str = "DraftAgents=V1Preview";

/// A validated create-version body.
#[derive(Debug, Clone)]
struct VersionInput {
    definition: Value,
    description: Option<String>,
    metadata: Map<String, Value>,
    draft: bool,
}

fn parse_version_input(body: &Value) -> Result<VersionInput, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_param(
            "body",
            "the request body must be a JSON object",
        ));
    };
    let Some(def) = obj.get("definition").and_then(Value::as_object) else {
        return Err(ApiError::bad_param(
            "definition",
            "definition is required and must be an object",
        ));
    };
    match def.get("kind").and_then(Value::as_str) {
        Some("prompt") => {}
        Some(other) => {
            return Err(ApiError::bad_param(
                "definition.kind",
                format!(
                    "definition.kind '{other}' is not supported by the emulator; only 'prompt' agents are"
                ),
            ));
        }
        None => {
            return Err(ApiError::bad_param(
                "definition.kind",
                "definition.kind is required",
            ));
        }
    }
    if def
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(|m| m.trim().is_empty())
    {
        return Err(ApiError::bad_param(
            "definition.model",
            "definition.model is required and must be a non-empty string",
        ));
    }
    if def
        .get("instructions")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(ApiError::bad_param(
            "definition.instructions",
            "definition.instructions must be a string",
        ));
    }
    for (field, max) in [("temperature", 2.0), ("top_p", 1.0)] {
        if let Some(v) = def.get(field).filter(|v| !v.is_null())
            && !v.as_f64().is_some_and(|x| (0.0..=max).contains(&x))
        {
            return Err(ApiError::bad_param(
                &format!("definition.{field}"),
                format!("definition.{field} must be a number from 0 to {max}"),
            ));
        }
    }
    if let Some(tools) = def.get("tools").filter(|v| !v.is_null()) {
        let ok = tools.as_array().is_some_and(|a| {
            a.iter()
                .all(|t| t.get("type").and_then(Value::as_str).is_some())
        });
        if !ok {
            return Err(ApiError::bad_param(
                "definition.tools",
                "definition.tools must be an array of objects with a 'type'",
            ));
        }
    }
    let description = match obj.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 512 => Some(s.clone()),
        Some(Value::String(_)) => {
            return Err(ApiError::bad_param(
                "description",
                "description is longer than 512 characters",
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_param(
                "description",
                "description must be a string",
            ));
        }
    };
    let metadata = validate_metadata(obj.get("metadata"))?;
    let draft = match obj.get("draft") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_param("draft", "draft must be a boolean")),
    };
    Ok(VersionInput {
        definition: Value::Object(def.clone()),
        description,
        metadata,
        draft,
    })
}

/// A draft needs the preview opt-in; the service answers 403 `preview_feature_required`
/// naming the header (the example error in the SDK's `AgentsOperations.create_version`).
fn check_draft_opt_in(input: &VersionInput, features: &str) -> Result<(), ApiError> {
    let opted_in = features
        .split(',')
        .any(|f| f.trim().eq_ignore_ascii_case(DRAFT_PREVIEW));
    if !input.draft || opted_in {
        return Ok(());
    }
    let mut e = ApiError::data(
        StatusCode::FORBIDDEN,
        "preview_feature_required",
        format!(
            "Draft agent versions are in preview. This operation requires the following opt-in preview feature(s): {DRAFT_PREVIEW}. Include the 'Foundry-Features: {DRAFT_PREVIEW}' header in your request."
        ),
    );
    e.param = Some("Foundry-Features".into());
    Err(e)
}

/// `CreateAgentRequest.state`: the initial state, `enabled` unless given.
fn parse_state(body: &Value) -> Result<String, ApiError> {
    match body.get("state") {
        None | Some(Value::Null) => Ok("enabled".into()),
        Some(Value::String(s)) if s == "enabled" || s == "disabled" => Ok(s.clone()),
        Some(_) => Err(ApiError::bad_param(
            "state",
            "state must be 'enabled' or 'disabled'",
        )),
    }
}

/// A random GUID (version 4 layout) for `agent_guid`.
fn new_guid() -> String {
    let hex: Vec<char> = crate::util::new_id("g").chars().skip(2).collect();
    let part = |from: usize, to: usize| hex.iter().skip(from).take(to - from).collect::<String>();
    format!(
        "{}-{}-4{}-a{}-{}",
        part(0, 8),
        part(8, 12),
        part(13, 16),
        part(17, 20),
        part(20, 32)
    )
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_param("body", format!("the request body is not valid JSON: {e}"))
    })
}

/// An `AgentVersionObject`: the fields of agents/models.tsp that a prompt agent has, plus
/// `agent_guid` (read by SDK 2.10's `AgentVersionDetails`). `draft` is a preview field and
/// appears only on drafts.
fn version_json(name: &str, version: u64, guid: &str, input: &VersionInput) -> Value {
    let mut v = json!({
        "object": "agent.version",
        "id": format!("{name}:{version}"),
        "name": name,
        "version": version.to_string(),
        "description": input.description,
        "metadata": input.metadata,
        "created_at": unix_seconds(),
        "definition": input.definition,
        "status": "active",
        "agent_guid": guid,
    });
    if input.draft {
        v["draft"] = json!(true);
    }
    v
}

/// An `AgentObject`. `state` is in agents/models.tsp; SDK 2.10's `AgentDetails` also requires
/// `configuration_state` (the state set by enable/disable; no identity can override it here,
/// so the two agree and `state_source` is absent).
fn agent_json(agent: &Agent) -> Value {
    json!({
        "object": "agent",
        "id": agent.name,
        "name": agent.name,
        "state": agent.state,
        "configuration_state": agent.state,
        "versions": { "latest": agent.latest().cloned().unwrap_or(Value::Null) },
    })
}

fn agent_not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("Agent '{name}' was not found."))
}

/// Adds a version, creating the agent (in `state`) when it does not exist yet.
fn add_version(project: &mut ProjectState, name: &str, input: &VersionInput, state: &str) -> Value {
    let order = project.agent_counter + 1;
    let agent = project
        .agents
        .entry(name.to_string())
        .or_insert_with(|| Agent {
            name: name.to_string(),
            versions: Default::default(),
            next_version: 1,
            order,
            state: state.to_string(),
            guid: new_guid(),
        });
    if agent.order == order {
        project.agent_counter = order;
    }
    let version = agent.next_version;
    agent.next_version += 1;
    let v = version_json(name, version, &agent.guid, input);
    agent.versions.insert(version, v.clone());
    tracing::info!(agent = name, version, "Created agent version");
    v
}

/// Serves agent operations of one project. `features` is the request's `Foundry-Features`
/// header (empty when absent).
pub(crate) fn handle(
    project: &mut ProjectState,
    op: &DataOp,
    query: &[(String, String)],
    body: &[u8],
    features: &str,
) -> HandlerResult {
    check_api_version(query)?;
    match op {
        DataOp::VersionsCreate(name) => {
            validate_agent_name(name)?;
            let input = parse_version_input(&parse_json(body)?)?;
            check_draft_opt_in(&input, features)?;
            Ok(ok_json(&add_version(project, name, &input, "enabled")))
        }
        // "Creates a new agent or a new version of an existing agent" (agents/routes.tsp
        // `createAgent`): an existing name gets a new version, and keeps its state.
        DataOp::AgentsCreate => {
            let v = parse_json(body)?;
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            validate_agent_name(&name)?;
            let input = parse_version_input(&v)?;
            check_draft_opt_in(&input, features)?;
            let state = parse_state(&v)?;
            add_version(project, &name, &input, &state);
            let agent = project
                .agents
                .get(&name)
                .ok_or_else(|| agent_not_found(&name))?;
            Ok(ok_json(&agent_json(agent)))
        }
        DataOp::AgentsUpdate(name) => {
            let mut input = parse_version_input(&parse_json(body)?)?;
            // `UpdateAgentRequest` is `CreateAgentVersionRequest` without `draft`.
            input.draft = false;
            let agent = project
                .agents
                .get(name)
                .ok_or_else(|| agent_not_found(name))?;
            let unchanged = agent
                .latest()
                .is_some_and(|l| l.get("definition") == Some(&input.definition));
            if !unchanged {
                add_version(project, name, &input, "enabled");
            }
            let agent = project
                .agents
                .get(name)
                .ok_or_else(|| agent_not_found(name))?;
            Ok(ok_json(&agent_json(agent)))
        }
        DataOp::AgentsEnable(name) | DataOp::AgentsDisable(name) => {
            let agent = project
                .agents
                .get_mut(name)
                .ok_or_else(|| agent_not_found(name))?;
            let state = if matches!(op, DataOp::AgentsEnable(_)) {
                "enabled"
            } else {
                "disabled"
            };
            agent.state = state.to_string();
            tracing::info!(agent = %name, state, "Changed agent state");
            // The SDK's `enable`/`disable` accept only 204.
            Ok(crate::errors::empty(StatusCode::NO_CONTENT))
        }
        DataOp::AgentsGet(name) => {
            let agent = project
                .agents
                .get(name)
                .ok_or_else(|| agent_not_found(name))?;
            Ok(ok_json(&agent_json(agent)))
        }
        DataOp::AgentsDelete(name) => {
            project
                .agents
                .remove(name)
                .ok_or_else(|| agent_not_found(name))?;
            tracing::info!(agent = %name, "Deleted agent");
            Ok(ok_json(
                &json!({ "object": "agent.deleted", "name": name, "deleted": true }),
            ))
        }
        DataOp::AgentsList => {
            let q = PageQuery::parse(query)?;
            let kind = query
                .iter()
                .find(|(k, _)| k == "kind")
                .map(|(_, v)| v.as_str());
            let items: Vec<Item> = project
                .agents
                .values()
                .filter(|_| kind.is_none_or(|k| k.is_empty() || k == "prompt"))
                .map(|a| Item {
                    key: a.order,
                    id: a.name.clone(),
                    value: agent_json(a),
                })
                .collect();
            let orders: Vec<(String, u64)> = project
                .agents
                .values()
                .map(|a| (a.name.clone(), a.order))
                .collect();
            let p = page(items, &q, |c| {
                orders.iter().find(|(n, _)| n == c).map(|(_, o)| *o)
            })?;
            Ok(ok_json(&p))
        }
        DataOp::VersionsList(name) => {
            let q = PageQuery::parse(query)?;
            let agent = project
                .agents
                .get(name)
                .ok_or_else(|| agent_not_found(name))?;
            // Drafts are listed only on request (SDK `list_versions(include_drafts=...)`).
            let include_drafts = query
                .iter()
                .any(|(k, v)| k == "include_drafts" && v.eq_ignore_ascii_case("true"));
            let items: Vec<Item> = agent
                .versions
                .iter()
                .filter(|(_, obj)| {
                    include_drafts || obj.get("draft").and_then(Value::as_bool) != Some(true)
                })
                .map(|(v, obj)| Item {
                    key: *v,
                    id: format!("{name}:{v}"),
                    value: obj.clone(),
                })
                .collect();
            // A cursor is a version id `name:N` (or a bare `N`), valid even after a delete.
            let prefix = format!("{name}:");
            let p = page(items, &q, |c| {
                c.strip_prefix(prefix.as_str()).unwrap_or(c).parse().ok()
            })?;
            Ok(ok_json(&p))
        }
        DataOp::VersionsGet(name, version) => {
            let agent = project
                .agents
                .get(name)
                .ok_or_else(|| agent_not_found(name))?;
            let v = version
                .parse::<u64>()
                .ok()
                .and_then(|n| agent.versions.get(&n))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Version '{version}' of agent '{name}' was not found."
                    ))
                })?;
            Ok(ok_json(v))
        }
        DataOp::VersionsDelete(name, version) => {
            let agent = project
                .agents
                .get_mut(name)
                .ok_or_else(|| agent_not_found(name))?;
            version
                .parse::<u64>()
                .ok()
                .and_then(|n| agent.versions.remove(&n))
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "Version '{version}' of agent '{name}' was not found."
                    ))
                })?;
            if agent.versions.is_empty() {
                // An agent without versions does not exist; a later create starts again at 1.
                project.agents.remove(name);
            }
            tracing::info!(agent = %name, version = %version, "Deleted agent version");
            Ok(ok_json(
                &json!({ "object": "agent.version.deleted", "name": name, "version": version, "deleted": true }),
            ))
        }
        _ => Err(ApiError::not_found("The requested resource was not found.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_follow_the_documented_rule() {
        assert!(validate_agent_name("my-agent-1").is_ok());
        assert!(validate_agent_name(&"a".repeat(63)).is_ok());
        assert!(validate_agent_name(&"a".repeat(64)).is_err());
        assert!(validate_agent_name("-a").is_err());
        assert!(validate_agent_name("a-").is_err());
        assert!(validate_agent_name("a_b").is_err());
        assert!(validate_agent_name("").is_err());
    }

    #[test]
    fn definitions_need_prompt_kind_and_model() {
        let e = parse_version_input(&json!({"definition": {"kind": "prompt"}})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("definition.model"));
        let e = parse_version_input(&json!({"definition": {"model": "c/m"}})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("definition.kind"));
        let e = parse_version_input(&json!({"definition": {"kind": "hosted", "model": "c/m"}}))
            .unwrap_err();
        assert!(e.message.contains("only 'prompt'"));
        assert!(
            parse_version_input(
                &json!({"definition": {"kind": "prompt", "model": "c/m", "temperature": 3}})
            )
            .is_err()
        );
        assert!(parse_version_input(&json!({"definition": {"kind": "prompt", "model": "c/m"}, "description": "d".repeat(513)})).is_err());
    }

    #[test]
    fn drafts_need_the_preview_opt_in() {
        let draft = parse_version_input(
            &json!({"definition": {"kind": "prompt", "model": "c/m"}, "draft": true}),
        )
        .unwrap();
        let e = check_draft_opt_in(&draft, "").unwrap_err();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert_eq!(e.code, "preview_feature_required");
        assert!(
            check_draft_opt_in(&draft, "WorkflowAgents=V1Preview, DraftAgents=V1Preview").is_ok()
        );
        let release =
            parse_version_input(&json!({"definition": {"kind": "prompt", "model": "c/m"}}))
                .unwrap();
        assert!(check_draft_opt_in(&release, "").is_ok());
        assert!(
            parse_version_input(
                &json!({"definition": {"kind": "prompt", "model": "c/m"}, "draft": "yes"})
            )
            .is_err()
        );
    }

    #[test]
    fn guids_have_the_uuid_layout() {
        let g = new_guid();
        let parts: Vec<&str> = g.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(g.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(g, new_guid());
    }

    #[test]
    fn metadata_must_be_at_most_sixteen_strings() {
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(validate_metadata(Some(&Value::Object(many))).is_err());
        assert!(validate_metadata(Some(&json!({"a": 1}))).is_err());
        assert!(validate_metadata(Some(&json!({"a": "1"}))).is_ok());
    }
}
