//! The OpenAI-compatible surface under `/api/projects/{project}/openai/v1` (reference §2.5):
//! conversations, their items and responses. A response for an agent calls the gateway of the
//! agent's connection (reference §3).

use serde_json::{Map, Value, json};
use url::Url;

use crate::agents::validate_metadata;
use crate::app::App;
use crate::connection::{
    GatewayAuth, GatewayMetadata, ModelSource, secret_strings, string_metadata,
};
use crate::errors::{ApiError, HandlerResult, ok_json};
use crate::gateway::{CallTarget, GatewayError};
use crate::paging::{Item, PageQuery, page};
use crate::routes::DataOp;
use crate::state::{Conversation, Store, StoredResponse};
use crate::util::{new_id, unix_seconds};

const MAX_ITEMS_PER_CALL: usize = 20;

fn parse_json_or_empty(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_param("body", format!("the request body is not valid JSON: {e}"))
    })?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::bad_param(
            "body",
            "the request body must be a JSON object",
        ))
    }
}

fn conversation_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Conversation with id '{id}' not found."))
}

fn find_conversation<'a>(
    store: &'a mut Store,
    project: &str,
    id: &str,
) -> Result<&'a mut Conversation, ApiError> {
    store
        .conversations
        .get_mut(id)
        .filter(|c| c.project.eq_ignore_ascii_case(project))
        .ok_or_else(|| conversation_not_found(id))
}

/// Turns an input item into a stored conversation item (`message` items get typed parts).
pub(crate) fn normalize_item(v: &Value) -> Result<Value, ApiError> {
    let Some(obj) = v.as_object() else {
        return Err(ApiError::bad_param("items", "each item must be an object"));
    };
    let kind = obj.get("type").and_then(Value::as_str);
    if kind.is_none_or(|k| k == "message") {
        let role = obj.get("role").and_then(Value::as_str).unwrap_or_default();
        if !matches!(role, "user" | "assistant" | "system" | "developer") {
            return Err(ApiError::bad_param(
                "role",
                format!("message role must be user, assistant, system or developer, got '{role}'"),
            ));
        }
        let text_type = if role == "assistant" {
            "output_text"
        } else {
            "input_text"
        };
        let content = match obj.get("content") {
            Some(Value::String(s)) => vec![text_part(text_type, s)],
            Some(Value::Array(parts)) => parts
                .iter()
                .map(|p| match p {
                    Value::String(s) => Ok(text_part(text_type, s)),
                    Value::Object(_) if p.get("type").and_then(Value::as_str).is_some() => {
                        Ok(p.clone())
                    }
                    _ => Err(ApiError::bad_param(
                        "content",
                        "each content part must be an object with a 'type'",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => {
                return Err(ApiError::bad_param(
                    "content",
                    "message content must be a string or a list of parts",
                ));
            }
        };
        return Ok(json!({
            "type": "message",
            "id": obj.get("id").and_then(Value::as_str).map_or_else(|| new_id("msg"), String::from),
            "status": "completed",
            "role": role,
            "content": content,
        }));
    }
    let mut item = obj.clone();
    if !item.contains_key("id") {
        let prefix = match kind {
            Some("function_call") => "fc",
            Some("function_call_output") => "fco",
            _ => "item",
        };
        item.insert("id".into(), json!(new_id(prefix)));
    }
    Ok(Value::Object(item))
}

fn text_part(kind: &str, text: &str) -> Value {
    if kind == "output_text" {
        json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
    } else {
        json!({ "type": "input_text", "text": text })
    }
}

fn parse_items(v: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_ITEMS_PER_CALL => {
            items.iter().map(normalize_item).collect()
        }
        Some(Value::Array(_)) => Err(ApiError::bad_param(
            "items",
            format!("at most {MAX_ITEMS_PER_CALL} items can be added at once"),
        )),
        Some(_) => Err(ApiError::bad_param("items", "items must be a list")),
    }
}

/// Serves the synchronous OpenAI-compatible operations.
pub(crate) fn handle(
    store: &mut Store,
    project: &str,
    op: &DataOp,
    query: &[(String, String)],
    body: &[u8],
) -> HandlerResult {
    match op {
        DataOp::ConversationsCreate => {
            let v = parse_json_or_empty(body)?;
            let metadata = validate_metadata(v.get("metadata"))?;
            let items = parse_items(v.get("items"))?;
            let id = new_id("conv");
            let mut conv = Conversation {
                id: id.clone(),
                project: project.to_string(),
                created_at: unix_seconds(),
                metadata: Value::Object(metadata),
                items: Vec::new(),
            };
            for item in items {
                conv.items.push((store.next_order(), item));
            }
            let json = conv.to_json();
            store.conversations.insert(id, conv);
            Ok(ok_json(&json))
        }
        DataOp::ConversationsGet(id) => {
            Ok(ok_json(&find_conversation(store, project, id)?.to_json()))
        }
        DataOp::ConversationsUpdate(id) => {
            let v = parse_json_or_empty(body)?;
            let metadata = validate_metadata(v.get("metadata"))?;
            let conv = find_conversation(store, project, id)?;
            conv.metadata = Value::Object(metadata);
            Ok(ok_json(&conv.to_json()))
        }
        DataOp::ConversationsDelete(id) => {
            find_conversation(store, project, id)?;
            store.conversations.remove(id);
            Ok(ok_json(
                &json!({ "id": id, "object": "conversation.deleted", "deleted": true }),
            ))
        }
        DataOp::ItemsCreate(id) => {
            let v = parse_json_or_empty(body)?;
            let items = parse_items(v.get("items"))?;
            if items.is_empty() {
                return Err(ApiError::bad_param(
                    "items",
                    "items must list at least one item",
                ));
            }
            let orders: Vec<u64> = items.iter().map(|_| store.next_order()).collect();
            let conv = find_conversation(store, project, id)?;
            conv.items
                .extend(orders.into_iter().zip(items.iter().cloned()));
            Ok(ok_json(&json!({
                "object": "list",
                "data": items,
                "first_id": items.first().and_then(|i| i.get("id")),
                "last_id": items.last().and_then(|i| i.get("id")),
                "has_more": false,
            })))
        }
        DataOp::ItemsList(id) => {
            let q = PageQuery::parse(query)?;
            let conv = find_conversation(store, project, id)?;
            let items: Vec<Item> = conv
                .items
                .iter()
                .map(|(order, v)| Item {
                    key: *order,
                    id: item_id(v),
                    value: v.clone(),
                })
                .collect();
            let keys: Vec<(String, u64)> = items.iter().map(|i| (i.id.clone(), i.key)).collect();
            Ok(ok_json(&page(items, &q, |c| {
                keys.iter().find(|(i, _)| i == c).map(|(_, k)| *k)
            })?))
        }
        DataOp::ItemsGet(id, item) => {
            let conv = find_conversation(store, project, id)?;
            conv.items
                .iter()
                .find(|(_, v)| item_id(v) == *item)
                .map(|(_, v)| ok_json(v))
                .ok_or_else(|| ApiError::not_found(format!("Item with id '{item}' not found.")))
        }
        DataOp::ItemsDelete(id, item) => {
            let conv = find_conversation(store, project, id)?;
            let before = conv.items.len();
            conv.items.retain(|(_, v)| item_id(v) != *item);
            if conv.items.len() == before {
                return Err(ApiError::not_found(format!(
                    "Item with id '{item}' not found."
                )));
            }
            Ok(ok_json(&conv.to_json()))
        }
        DataOp::ResponsesGet(id) => store
            .responses
            .get(id)
            .filter(|r| r.project.eq_ignore_ascii_case(project))
            .map(|r| ok_json(&r.object))
            .ok_or_else(|| response_not_found(id)),
        DataOp::ResponsesDelete(id) => {
            if !store
                .responses
                .get(id)
                .is_some_and(|r| r.project.eq_ignore_ascii_case(project))
            {
                return Err(response_not_found(id));
            }
            store.responses.remove(id);
            Ok(ok_json(
                &json!({ "id": id, "object": "response.deleted", "deleted": true }),
            ))
        }
        DataOp::ResponsesList => {
            let q = PageQuery::parse(query)?;
            let get = |k: &str| {
                query
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
                    .filter(|v| !v.is_empty())
            };
            let (agent_name, agent_id, conversation) =
                (get("agent_name"), get("agent_id"), get("conversation_id"));
            let items: Vec<Item> = store
                .responses
                .iter()
                .filter(|(_, r)| r.project.eq_ignore_ascii_case(project))
                .filter(|(_, r)| {
                    let agent = r.object.get("agent_reference");
                    let name = agent.and_then(|a| a.get("name")).and_then(Value::as_str);
                    let version = agent.and_then(|a| a.get("version")).and_then(Value::as_str);
                    let conv = r
                        .object
                        .get("conversation")
                        .and_then(|c| c.get("id"))
                        .and_then(Value::as_str);
                    agent_name.is_none_or(|n| name == Some(n))
                        && agent_id.is_none_or(|i| {
                            name.zip(version)
                                .is_some_and(|(n, v)| format!("{n}:{v}") == i)
                        })
                        && conversation.is_none_or(|c| conv == Some(c))
                })
                .map(|(id, r)| Item {
                    key: r.order,
                    id: id.clone(),
                    value: r.object.clone(),
                })
                .collect();
            let keys: Vec<(String, u64)> = items.iter().map(|i| (i.id.clone(), i.key)).collect();
            Ok(ok_json(&page(items, &q, |c| {
                keys.iter().find(|(i, _)| i == c).map(|(_, k)| *k)
            })?))
        }
        _ => Err(ApiError::not_found("The requested resource was not found.")),
    }
}

fn item_id(v: &Value) -> String {
    v.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn response_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Response with id '{id}' not found."))
}

/// Chat messages for stored or input items.
pub(crate) fn items_to_messages(items: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    for item in items {
        match item.get("type").and_then(Value::as_str) {
            Some("message") | None => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") => "system",
                    Some(r) => r,
                    None => continue,
                };
                let text = match item.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str).or_else(|| p.as_str()))
                        .collect::<Vec<_>>()
                        .join(""),
                    _ => String::new(),
                };
                out.push(json!({ "role": role, "content": text }));
            }
            Some("function_call") => out.push(json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": { "name": item.get("name"), "arguments": item.get("arguments") },
                }],
            })),
            Some("function_call_output") => out.push(json!({
                "role": "tool",
                "tool_call_id": item.get("call_id"),
                "content": item.get("output").map(|o| o.as_str().map(String::from).unwrap_or_else(|| o.to_string())),
            })),
            Some(_) => {}
        }
    }
    out
}

/// The chat-completions request for a response: sampling settings of the request win over the
/// agent definition; function tools are mapped to chat tools, hosted tools are not sent.
pub(crate) fn chat_request(
    definition: &Map<String, Value>,
    request: &Map<String, Value>,
    messages: Vec<Value>,
    model_in_body: Option<&str>,
) -> Value {
    let pick = |k: &str| {
        request
            .get(k)
            .filter(|v| !v.is_null())
            .or_else(|| definition.get(k).filter(|v| !v.is_null()))
    };
    let mut body = Map::new();
    if let Some(m) = model_in_body {
        body.insert("model".into(), json!(m));
    }
    body.insert("messages".into(), Value::Array(messages));
    for k in ["temperature", "top_p"] {
        if let Some(v) = pick(k) {
            body.insert(k.into(), v.clone());
        }
    }
    let tools: Vec<Value> = pick("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                .map(|t| {
                    let mut f = Map::new();
                    for k in ["name", "description", "parameters", "strict"] {
                        if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                            f.insert(k.into(), v.clone());
                        }
                    }
                    json!({ "type": "function", "function": f })
                })
                .collect()
        })
        .unwrap_or_default();
    let has_tools = !tools.is_empty();
    if has_tools {
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(tc) = pick("tool_choice").filter(|_| has_tools) {
        let mapped = match tc {
            Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("function") => {
                json!({ "type": "function", "function": { "name": o.get("name") } })
            }
            other => other.clone(),
        };
        body.insert("tool_choice".into(), mapped);
    }
    if let Some(format) = pick("text").and_then(|t| t.get("format")) {
        match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                let mut js = Map::new();
                for k in ["name", "schema", "strict", "description"] {
                    if let Some(v) = format.get(k).filter(|v| !v.is_null()) {
                        js.insert(k.into(), v.clone());
                    }
                }
                body.insert(
                    "response_format".into(),
                    json!({ "type": "json_schema", "json_schema": js }),
                );
            }
            Some("json_object") => {
                body.insert("response_format".into(), json!({ "type": "json_object" }));
            }
            _ => {}
        }
    }
    if let Some(effort) = pick("reasoning")
        .and_then(|r| r.get("effort"))
        .filter(|v| !v.is_null())
    {
        body.insert("reasoning_effort".into(), effort.clone());
    }
    if let Some(max) = request.get("max_output_tokens").filter(|v| !v.is_null()) {
        body.insert("max_completion_tokens".into(), max.clone());
    }
    Value::Object(body)
}

/// Output items of a response built from a chat completion.
pub(crate) fn output_items(reply: &Value) -> Vec<Value> {
    let message = reply.pointer("/choices/0/message");
    let content = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str);
    let tool_calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    let mut out = Vec::new();
    if content.is_some() || tool_calls.is_none_or(Vec::is_empty) {
        out.push(json!({
            "type": "message",
            "id": new_id("msg"),
            "status": "completed",
            "role": "assistant",
            "content": [text_part("output_text", content.unwrap_or_default())],
        }));
    }
    for call in tool_calls.into_iter().flatten() {
        out.push(json!({
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": call.get("id"),
            "name": call.pointer("/function/name"),
            "arguments": call.pointer("/function/arguments"),
            "status": "completed",
        }));
    }
    out
}

fn usage(reply: &Value) -> Value {
    let Some(u) = reply.get("usage").filter(|u| u.is_object()) else {
        return Value::Null;
    };
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    json!({
        "input_tokens": n("prompt_tokens"),
        "input_tokens_details": { "cached_tokens": u.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0) },
        "output_tokens": n("completion_tokens"),
        "output_tokens_details": { "reasoning_tokens": u.pointer("/completion_tokens_details/reasoning_tokens").and_then(Value::as_u64).unwrap_or(0) },
        "total_tokens": n("total_tokens"),
    })
}

/// What a response needs from the store, gathered under one lock.
struct Plan {
    model: String,
    agent_reference: Value,
    definition: Map<String, Value>,
    conversation: Option<String>,
    history: Vec<Value>,
    input_items: Vec<Value>,
    connection_name: String,
    deployment: String,
}

fn model_not_found(model: &str, why: &str) -> ApiError {
    GatewayError::ModelNotFound(format!("The model '{model}' was not found: {why}."))
        .into_api_error()
}

fn plan(store: &mut Store, project: &str, req: &Map<String, Value>) -> Result<Plan, ApiError> {
    let agent_ref = req
        .get("agent_reference")
        .filter(|v| !v.is_null())
        .or_else(|| req.get("agent").filter(|v| !v.is_null()));
    let (definition, agent_reference) = match agent_ref {
        Some(r) => {
            let (name, version) = match r {
                Value::String(s) => (s.clone(), None),
                Value::Object(o) => (
                    o.get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    o.get("version").and_then(|v| {
                        v.as_str()
                            .map(String::from)
                            .or_else(|| v.as_u64().map(|n| n.to_string()))
                    }),
                ),
                _ => {
                    return Err(ApiError::bad_param(
                        "agent_reference",
                        "agent_reference must be an object with a name",
                    ));
                }
            };
            if name.is_empty() {
                return Err(ApiError::bad_param(
                    "agent_reference.name",
                    "agent_reference.name is required",
                ));
            }
            let p = store
                .data_project(project)
                .ok_or_else(|| ApiError::not_found(format!("Project '{project}' not found.")))?;
            let agent = p
                .agents
                .get(&name)
                .ok_or_else(|| ApiError::not_found(format!("Agent '{name}' was not found.")))?;
            let v = match &version {
                None => agent.latest(),
                Some(ver) => ver.parse::<u64>().ok().and_then(|n| agent.versions.get(&n)),
            }
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Version '{}' of agent '{name}' was not found.",
                    version.clone().unwrap_or_default()
                ))
            })?;
            let def = v
                .get("definition")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let ver = v.get("version").cloned().unwrap_or(Value::Null);
            (
                def,
                json!({ "type": "agent_reference", "name": name, "version": ver }),
            )
        }
        None => match req
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
        {
            Some(m) => {
                let mut def = Map::new();
                def.insert("model".into(), json!(m));
                (def, Value::Null)
            }
            None => {
                return Err(ApiError::bad_param(
                    "agent_reference",
                    "agent_reference (or model) is required",
                ));
            }
        },
    };
    let model = definition
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let conversation = match req.get("conversation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("id").and_then(Value::as_str).map(String::from),
        Some(_) => {
            return Err(ApiError::bad_param(
                "conversation",
                "conversation must be an id or {\"id\"}",
            ));
        }
    };
    let mut history = Vec::new();
    if let Some(prev) = req.get("previous_response_id").and_then(Value::as_str) {
        let r = store
            .responses
            .get(prev)
            .filter(|r| r.project.eq_ignore_ascii_case(project))
            .ok_or_else(|| response_not_found(prev))?;
        history.extend(
            r.messages
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) != Some("system"))
                .cloned(),
        );
    }
    if let Some(id) = &conversation {
        let conv = find_conversation(store, project, id)?;
        let items: Vec<Value> = conv.items.iter().map(|(_, v)| v.clone()).collect();
        history.extend(items_to_messages(&items));
    }
    let input_items = match req.get("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if s.is_empty() => Vec::new(),
        Some(Value::String(s)) => vec![normalize_item(&json!({ "role": "user", "content": s }))?],
        Some(Value::Array(items)) => items.iter().map(normalize_item).collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_param(
                "input",
                "input must be a string or a list of items",
            ));
        }
    };

    let Some((connection_name, deployment)) = model.split_once('/') else {
        return Err(model_not_found(
            &model,
            "the emulator serves only gateway models named '<connection>/<model>'",
        ));
    };
    Ok(Plan {
        model: model.clone(),
        agent_reference,
        definition,
        conversation,
        history,
        input_items,
        connection_name: connection_name.to_string(),
        deployment: deployment.to_string(),
    })
}

/// The connection of a plan, ready to call, plus what discovery already knows.
struct Resolved {
    target: CallTarget,
    generation: u64,
    known: Option<Vec<String>>,
    confirmed: bool,
}

fn call_target(store: &mut Store, project: &str, plan: &Plan) -> Result<Resolved, ApiError> {
    let p = store
        .data_project(project)
        .ok_or_else(|| ApiError::not_found(format!("Project '{project}' not found.")))?;
    let Some(c) = p
        .connections
        .get(&plan.connection_name.to_ascii_lowercase())
    else {
        return Err(model_not_found(
            &plan.model,
            &format!(
                "the project has no connection named '{}'",
                plan.connection_name
            ),
        ));
    };
    let broken = |e: String| {
        GatewayError::Failed(format!(
            "connection '{}' cannot be used to call a gateway: {e}",
            c.name
        ))
        .into_api_error()
    };
    let category = c
        .properties
        .get("category")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target_str = c
        .properties
        .get("target")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target = Url::parse(target_str).map_err(|e| broken(e.to_string()))?;
    let meta = GatewayMetadata::parse(
        category,
        &target,
        &string_metadata(&c.properties).map_err(broken)?,
    )
    .map_err(broken)?;
    let auth = GatewayAuth::from_connection(&c.properties, c.credentials.as_ref(), &meta)
        .map_err(broken)?;
    let known = match &meta.models {
        ModelSource::Static(names) => Some(names.clone()),
        _ => c.discovered.clone(),
    };
    let confirmed = c.confirmed.contains(&plan.deployment);
    let t = CallTarget {
        project: project.to_string(),
        connection: c.name.clone(),
        target,
        meta,
        auth,
        secrets: secret_strings(c.credentials.as_ref()),
    };
    Ok(Resolved {
        target: t,
        generation: c.generation,
        known,
        confirmed,
    })
}

/// `POST /responses`: runs the agent's model through its gateway.
pub(crate) async fn create_response(app: &App, project: &str, body: &[u8]) -> HandlerResult {
    let req = parse_json_or_empty(body)?;
    let req = req.as_object().cloned().unwrap_or_default();
    if req.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::bad_param(
            "stream",
            "streaming responses are not supported by the emulator; send stream=false",
        ));
    }
    let (plan, resolved) = {
        let mut store = app.store();
        let plan = plan(&mut store, project, &req)?;
        let resolved = call_target(&mut store, project, &plan)?;
        (plan, resolved)
    };
    resolve_model(app, project, &plan, &resolved).await?;
    let target = resolved.target;

    let mut messages = Vec::new();
    for instr in [plan.definition.get("instructions"), req.get("instructions")] {
        if let Some(text) = instr.and_then(Value::as_str).filter(|s| !s.is_empty()) {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    messages.extend(plan.history.iter().cloned());
    messages.extend(items_to_messages(&plan.input_items));
    let model_in_body = (!target.meta.deployment_in_path).then_some(plan.deployment.as_str());
    let chat = chat_request(&plan.definition, &req, messages.clone(), model_in_body);
    let reply = app
        .gateway
        .chat(&target, &plan.deployment, &chat, &app.control)
        .await
        .map_err(GatewayError::into_api_error)?;

    let output = output_items(&reply);
    let created_at = unix_seconds();
    let id = new_id("resp");
    let pick = |k: &str| {
        req.get(k)
            .filter(|v| !v.is_null())
            .or_else(|| plan.definition.get(k))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let response = json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "completed_at": unix_seconds(),
        "status": "completed",
        "error": null,
        "incomplete_details": null,
        "instructions": plan.definition.get("instructions").cloned().unwrap_or(Value::Null),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": req.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "temperature": pick("temperature"),
        "top_p": pick("top_p"),
        "tool_choice": req.get("tool_choice").or_else(|| plan.definition.get("tool_choice")).cloned().unwrap_or(json!("auto")),
        "tools": pick("tools").as_array().cloned().unwrap_or_default(),
        "text": pick("text").as_object().map_or_else(|| json!({ "format": { "type": "text" } }), |t| Value::Object(t.clone())),
        "metadata": req.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
        "usage": usage(&reply),
        "conversation": plan.conversation.as_ref().map(|c| json!({ "id": c })),
        "agent_reference": plan.agent_reference,
        "store": true,
    });

    let mut all_messages = messages;
    all_messages.extend(items_to_messages(&output));
    let mut store = app.store();
    if let Some(conv_id) = &plan.conversation {
        let orders: Vec<u64> = (0..plan.input_items.len() + output.len())
            .map(|_| store.next_order())
            .collect();
        if let Ok(conv) = find_conversation(&mut store, project, conv_id) {
            let items = plan.input_items.iter().chain(output.iter()).cloned();
            conv.items.extend(orders.into_iter().zip(items));
        }
    }
    if req.get("store").and_then(Value::as_bool) != Some(false) {
        let order = store.next_order();
        store.responses.insert(
            id.clone(),
            StoredResponse {
                project: project.to_string(),
                order,
                object: response.clone(),
                messages: all_messages,
            },
        );
    }
    tracing::info!(model = %plan.model, response = %id, "Created response");
    Ok(ok_json(&response))
}

/// Checks that the deployment is among the connection's models, running discovery if needed
/// and caching its result in the connection until the connection is written again.
async fn resolve_model(
    app: &App,
    project: &str,
    plan: &Plan,
    resolved: &Resolved,
) -> Result<(), ApiError> {
    let Resolved {
        target,
        generation,
        known,
        confirmed,
    } = resolved;
    let generation = *generation;
    let discovery = match &target.meta.models {
        ModelSource::Static(names) => {
            return if names.contains(&plan.deployment) {
                Ok(())
            } else {
                Err(model_not_found(
                    &plan.model,
                    &format!(
                        "connection '{}' has models {}",
                        target.connection,
                        quoted(names)
                    ),
                ))
            };
        }
        ModelSource::Discovery(d) => d.clone(),
    };
    if *confirmed {
        return Ok(());
    }
    let names = match known.clone() {
        Some(n) => n,
        None => {
            let n = app
                .gateway
                .list_models(target, &discovery, &app.control)
                .await
                .map_err(GatewayError::into_api_error)?;
            with_connection(app, project, &plan.connection_name, generation, |c| {
                c.discovered = Some(n.clone())
            });
            n
        }
    };
    if names.contains(&plan.deployment) {
        return Ok(());
    }
    // Not in the list: ask the get-by-name endpoint before giving up.
    if app
        .gateway
        .get_model(target, &discovery, &plan.deployment, &app.control)
        .await
        .map_err(GatewayError::into_api_error)?
    {
        with_connection(app, project, &plan.connection_name, generation, |c| {
            c.confirmed.insert(plan.deployment.clone());
        });
        return Ok(());
    }
    Err(model_not_found(
        &plan.model,
        &format!(
            "connection '{}' discovered models {}",
            target.connection,
            quoted(&names)
        ),
    ))
}

fn quoted(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn with_connection(
    app: &App,
    project: &str,
    connection: &str,
    generation: u64,
    f: impl FnOnce(&mut crate::state::StoredConnection),
) {
    let mut store = app.store();
    if let Some(c) = store
        .data_project(project)
        .and_then(|p| p.connections.get_mut(&connection.to_ascii_lowercase()))
        .filter(|c| c.generation == generation)
    {
        f(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn chat_requests_carry_model_only_when_asked_and_map_tools() {
        let def = map(
            json!({"kind": "prompt", "model": "gw/gpt-4o", "instructions": "Be brief.", "temperature": 0.2,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "code_interpreter"}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
            "reasoning": {"effort": "low"}}),
        );
        let req = map(json!({"top_p": 0.5}));
        let body = chat_request(
            &def,
            &req,
            vec![json!({"role": "user", "content": "hi"})],
            Some("gpt-4o"),
        );
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(body["temperature"], json!(0.2));
        assert_eq!(body["top_p"], json!(0.5));
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        );
        assert_eq!(
            body["tool_choice"],
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["reasoning_effort"], "low");
        let body = chat_request(&def, &req, vec![], None);
        assert!(body.get("model").is_none());
    }

    #[test]
    fn items_become_chat_messages() {
        let items = vec![
            normalize_item(&json!({"role": "user", "content": "Hello"})).unwrap(),
            normalize_item(&json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hi"}]})).unwrap(),
            normalize_item(&json!({"role": "developer", "content": [{"type": "input_text", "text": "Rules"}]})).unwrap(),
        ];
        assert_eq!(items[0]["content"][0]["type"], "input_text");
        assert_eq!(
            items_to_messages(&items),
            vec![
                json!({"role": "user", "content": "Hello"}),
                json!({"role": "assistant", "content": "Hi"}),
                json!({"role": "system", "content": "Rules"})
            ]
        );
        assert!(normalize_item(&json!({"role": "robot", "content": "x"})).is_err());
    }

    #[test]
    fn chat_replies_become_output_items() {
        let reply = json!({"choices": [{"message": {"role": "assistant", "content": "Pong"}}]});
        let out = output_items(&reply);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["content"][0]["text"], "Pong");
        let reply = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]});
        let out = output_items(&reply);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "function_call");
        assert_eq!(out[0]["call_id"], "call_1");
    }
}
