//! The OpenAI-compatible surface under `/api/projects/{project}/openai/v1` (reference §2.5):
//! conversations, their items, and the stored responses. Creating a response is in
//! `responses`.

use serde_json::{Value, json};

use crate::agents::validate_metadata;
use crate::errors::{ApiError, HandlerResult, ok_json};
use crate::paging::{Item, PageQuery, page};
use crate::routes::DataOp;
use crate::state::{Conversation, Store};
use crate::util::{new_id, unix_seconds};

const MAX_ITEMS_PER_CALL: usize = 20;

pub(crate) fn parse_json_or_empty(body: &[u8]) -> Result<Value, ApiError> {
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

pub(crate) fn find_conversation<'a>(
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
            if let Some(task) = store.responses.remove(id).and_then(|r| r.task) {
                task.abort();
            }
            // `DeleteResponseResult` (Foundry openai/responses/models.tsp): `object` is
            // "Always return 'response'", as in OpenAI's own example of this call.
            Ok(ok_json(
                &json!({ "id": id, "object": "response", "deleted": true }),
            ))
        }
        DataOp::ResponsesCancel(id) => crate::responses::cancel(store, project, id),
        DataOp::ResponsesInputItems(id) => {
            let q = PageQuery::parse(query)?;
            let r = store
                .responses
                .get(id)
                .filter(|r| r.project.eq_ignore_ascii_case(project))
                .ok_or_else(|| response_not_found(id))?;
            let items: Vec<Item> = r
                .input_items
                .iter()
                .zip(1u64..)
                .map(|(v, key)| Item {
                    key,
                    id: item_id(v),
                    value: v.clone(),
                })
                .collect();
            let keys: Vec<(String, u64)> = items.iter().map(|i| (i.id.clone(), i.key)).collect();
            Ok(ok_json(&page(items, &q, |c| {
                keys.iter().find(|(i, _)| i == c).map(|(_, k)| *k)
            })?))
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

pub(crate) fn response_not_found(id: &str) -> ApiError {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
