//! Creating a response (reference §2.5): the agent's model runs through the gateway of its
//! connection (reference §3). A response is answered as one `Response` body, as server-sent
//! events (`stream: true`), or in the background (`background: true`: answered at once with
//! status `queued`, then read with `GET`, replayed with `GET ?stream=true`, or cancelled).
//!
//! Every response records its events, whichever way it was asked for, so that
//! `GET /responses/{id}?stream=true&starting_after=N` can replay any stored response.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use url::Url;

use crate::app::App;
use crate::connection::{
    GatewayAuth, GatewayMetadata, ModelSource, secret_strings, string_metadata,
};
use crate::errors::{ApiError, HandlerResult, ok_json};
use crate::gateway::{CallTarget, ChatStream, GatewayError};
use crate::openai::{
    find_conversation, items_to_messages, normalize_item, parse_json_or_empty, response_not_found,
};
use crate::sse::{self, EventLog, OutputBuilder, TERMINAL_EVENTS};
use crate::state::{Store, StoredResponse};
use crate::util::{new_id, unix_seconds};

/// Statuses after which a response no longer changes.
const FINAL_STATUSES: &[&str] = &["completed", "failed", "incomplete", "cancelled"];

/// How often a replay of a running response looks for new events.
const REPLAY_POLL: Duration = Duration::from_millis(50);

/// A boolean field of the request; absent or null is `default`.
fn flag(req: &Map<String, Value>, key: &str, default: bool) -> Result<bool, ApiError> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_param(key, format!("{key} must be a boolean"))),
    }
}

/// Whether a stored response is done.
pub(crate) fn is_final(object: &Value) -> bool {
    object
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| FINAL_STATUSES.contains(&s))
}

/// `POST /responses`: runs the agent's model through its gateway.
///
/// Errors found before the gateway answers (bad input, unknown agent, model not found, a
/// gateway refusing the call) are HTTP errors in every mode, so a streaming client sees the
/// same exception as a non-streaming one. A gateway failing after it started to stream ends
/// the stream with `response.failed`.
pub(crate) async fn create_response(app: &Arc<App>, project: &str, body: &[u8]) -> HandlerResult {
    let req = parse_json_or_empty(body)?;
    let req = req.as_object().cloned().unwrap_or_default();
    let stream = flag(&req, "stream", false)?;
    let background = flag(&req, "background", false)?;
    let stored = flag(&req, "store", true)?;
    if background && !stored {
        return Err(ApiError::bad_param(
            "background",
            "background responses must be stored; send store=true or leave store out",
        ));
    }
    let (plan, resolved) = {
        let mut store = app.store();
        let plan = plan(&mut store, project, &req)?;
        let resolved = call_target(&store, project, &plan)?;
        (plan, resolved)
    };
    resolve_model(app, project, &plan, &resolved).await?;
    let run = Run::new(project, plan, resolved.target, &req, stored, background);

    if background {
        let (sink, body) = if stream {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let queued = run.object.clone();
        run.insert(app);
        let id = run.id.clone();
        let task_app = app.clone();
        let task = tokio::spawn(async move {
            let mut log = EventLog::new(sink);
            run.start(&task_app, &mut log);
            let reply = run.call(&task_app, stream).await;
            run.finish(&task_app, reply, log).await;
        });
        if let Some(r) = app.store().responses.get_mut(&id) {
            r.task = Some(task.abort_handle());
        }
        tracing::info!(response = %id, "Queued background response");
        return Ok(match body {
            Some(rx) => sse::response(rx),
            None => ok_json(&queued),
        });
    }

    let reply = run
        .call(app, stream)
        .await
        .map_err(GatewayError::into_api_error)?;
    if stream {
        let (tx, rx) = mpsc::unbounded_channel();
        run.insert(app);
        let task_app = app.clone();
        tokio::spawn(async move {
            let mut log = EventLog::new(Some(tx));
            run.start(&task_app, &mut log);
            run.finish(&task_app, Ok(reply), log).await;
        });
        return Ok(sse::response(rx));
    }
    let mut log = EventLog::new(None);
    run.start(app, &mut log);
    let object = run.finish(app, Ok(reply), log).await;
    Ok(ok_json(&object))
}

/// One response on its way: what to send to the gateway and what to keep.
#[derive(Debug)]
struct Run {
    id: String,
    project: String,
    plan: Plan,
    target: CallTarget,
    /// The chat-completions body (without `stream`).
    chat: Value,
    /// The chat messages sent, for a later `previous_response_id`.
    messages: Vec<Value>,
    /// The `Response` as created: no output yet.
    object: Value,
    store: bool,
}

impl Run {
    fn new(
        project: &str,
        plan: Plan,
        target: CallTarget,
        req: &Map<String, Value>,
        store: bool,
        background: bool,
    ) -> Self {
        let mut messages = Vec::new();
        for instr in [plan.definition.get("instructions"), req.get("instructions")] {
            if let Some(text) = instr.and_then(Value::as_str).filter(|s| !s.is_empty()) {
                messages.push(json!({ "role": "system", "content": text }));
            }
        }
        messages.extend(plan.history.iter().cloned());
        messages.extend(items_to_messages(&plan.input_items));
        let model_in_body = (!target.meta.deployment_in_path).then_some(plan.deployment.as_str());
        let chat = chat_request(&plan.definition, req, messages.clone(), model_in_body);
        let id = new_id("resp");
        let pick = |k: &str| {
            req.get(k)
                .filter(|v| !v.is_null())
                .or_else(|| plan.definition.get(k))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let object = json!({
            "id": id,
            "object": "response",
            "created_at": unix_seconds(),
            "completed_at": null,
            "status": if background { "queued" } else { "in_progress" },
            "background": background,
            "error": null,
            "incomplete_details": null,
            "instructions": plan.definition.get("instructions").cloned().unwrap_or(Value::Null),
            "model": plan.model,
            "output": [],
            "parallel_tool_calls": true,
            "previous_response_id": req.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "temperature": pick("temperature"),
            "top_p": pick("top_p"),
            "tool_choice": req.get("tool_choice").or_else(|| plan.definition.get("tool_choice")).cloned().unwrap_or(json!("auto")),
            "tools": pick("tools").as_array().cloned().unwrap_or_default(),
            "text": pick("text").as_object().map_or_else(|| json!({ "format": { "type": "text" } }), |t| Value::Object(t.clone())),
            "metadata": req.get("metadata").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
            "usage": null,
            "conversation": plan.conversation.as_ref().map(|c| json!({ "id": c })),
            "agent_reference": plan.agent_reference,
            "store": store,
        });
        Self {
            id,
            project: project.to_string(),
            plan,
            target,
            chat,
            messages,
            object,
            store,
        }
    }

    /// Asks the gateway: a streaming chat completion when the client streams, else one
    /// completion.
    async fn call(&self, app: &App, stream: bool) -> Result<ChatStream, GatewayError> {
        if stream {
            let mut body = self.chat.clone();
            body["stream"] = json!(true);
            app.gateway
                .chat_stream(&self.target, &self.plan.deployment, &body, &app.control)
                .await
        } else {
            app.gateway
                .chat(
                    &self.target,
                    &self.plan.deployment,
                    &self.chat,
                    &app.control,
                )
                .await
                .map(ChatStream::Whole)
        }
    }

    /// Stores the response as created, so that it can be read (and a background one
    /// cancelled) while it runs.
    fn insert(&self, app: &App) {
        if !self.store {
            return;
        }
        let mut store = app.store();
        let order = store.next_order();
        store.responses.insert(
            self.id.clone(),
            StoredResponse {
                project: self.project.clone(),
                order,
                object: self.object.clone(),
                messages: Vec::new(),
                input_items: self.plan.input_items.clone(),
                events: Vec::new(),
                task: None,
            },
        );
    }

    /// The response as it runs: no output yet.
    fn running(&self) -> Value {
        let mut running = self.object.clone();
        running["status"] = json!("in_progress");
        running
    }

    /// Emits `response.created` and `response.in_progress`, and marks a stored response
    /// running.
    fn start(&self, app: &App, log: &mut EventLog) {
        let running = self.running();
        log.emit(json!({ "type": "response.created", "response": self.object }));
        log.emit(json!({ "type": "response.in_progress", "response": running }));
        self.update_running(app, &running, &log.events);
    }

    /// Emits the answer's events and the closing one, stores the final response and returns
    /// it.
    async fn finish(
        &self,
        app: &App,
        reply: Result<ChatStream, GatewayError>,
        mut log: EventLog,
    ) -> Value {
        let running = self.running();
        let mut out = OutputBuilder::default();
        let mut usage_value = Value::Null;
        let mut failure = None;
        match reply {
            Err(e) => failure = Some(e),
            Ok(ChatStream::Whole(reply)) => {
                out.completion(&mut log, &reply);
                usage_value = usage(&reply);
            }
            Ok(ChatStream::Events(mut reader)) => loop {
                match reader.next_chunk().await {
                    Ok(Some(chunk)) => {
                        out.chunk(&mut log, &chunk);
                        if chunk.get("usage").is_some_and(Value::is_object) {
                            usage_value = usage(&chunk);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            },
        }
        let mut object = running;
        match failure {
            None => {
                object["output"] = Value::Array(out.finish(&mut log));
                object["status"] = json!("completed");
                object["completed_at"] = json!(unix_seconds());
                object["usage"] = usage_value;
                log.emit(json!({ "type": "response.completed", "response": object }));
                tracing::info!(model = %self.plan.model, response = %self.id, "Created response");
            }
            Some(e) => {
                let e = e.into_api_error();
                object["output"] = Value::Array(out.partial());
                object["status"] = json!("failed");
                // `ResponseError.code` is an enum in openai/openapi.json; a gateway failure is
                // the service's `server_error`.
                object["error"] = json!({ "code": "server_error", "message": e.message });
                log.emit(json!({ "type": "response.failed", "response": object }));
                tracing::warn!(model = %self.plan.model, response = %self.id, "Failed response");
            }
        }
        self.commit(app, &object, log.events);
        object
    }

    /// Marks a stored response running, unless it was cancelled meanwhile.
    fn update_running(&self, app: &App, running: &Value, events: &[Value]) {
        let mut store = app.store();
        if let Some(r) = store.responses.get_mut(&self.id)
            && !is_final(&r.object)
        {
            r.object = running.clone();
            r.events = events.to_vec();
        }
    }

    /// Stores the final response and, when it completed, adds its input and output to its
    /// conversation. A cancelled response stays as cancel left it.
    fn commit(&self, app: &App, object: &Value, events: Vec<Value>) {
        let mut store = app.store();
        if store
            .responses
            .get(&self.id)
            .is_some_and(|r| r.object.get("status").and_then(Value::as_str) == Some("cancelled"))
        {
            return;
        }
        let output: Vec<Value> = object
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let completed = object.get("status").and_then(Value::as_str) == Some("completed");
        if let Some(conv_id) = self.plan.conversation.as_ref().filter(|_| completed) {
            let orders: Vec<u64> = (0..self.plan.input_items.len() + output.len())
                .map(|_| store.next_order())
                .collect();
            if let Ok(conv) = find_conversation(&mut store, &self.project, conv_id) {
                let items = self.plan.input_items.iter().chain(output.iter()).cloned();
                conv.items.extend(orders.into_iter().zip(items));
            }
        }
        if !self.store {
            return;
        }
        let mut messages = self.messages.clone();
        messages.extend(items_to_messages(&output));
        if let Some(r) = store.responses.get_mut(&self.id) {
            r.object = object.clone();
            r.events = events;
            r.messages = messages;
            r.task = None;
        } else {
            let order = store.next_order();
            store.responses.insert(
                self.id.clone(),
                StoredResponse {
                    project: self.project.clone(),
                    order,
                    object: object.clone(),
                    messages,
                    input_items: self.plan.input_items.clone(),
                    events,
                    task: None,
                },
            );
        }
    }
}

/// `GET /responses/{id}?stream=true[&starting_after=N]`: the response's events after
/// sequence number `N`, following a running response until it ends.
pub(crate) fn replay(
    app: &Arc<App>,
    project: &str,
    id: &str,
    query: &[(String, String)],
) -> HandlerResult {
    let starting_after = match query.iter().find(|(k, _)| k == "starting_after") {
        None => None,
        Some((_, v)) if v.is_empty() => None,
        Some((_, v)) => Some(v.parse::<u64>().map_err(|_| {
            ApiError::bad_param(
                "starting_after",
                format!("starting_after must be a non-negative integer, got '{v}'"),
            )
        })?),
    };
    if !app
        .store()
        .responses
        .get(id)
        .is_some_and(|r| r.project.eq_ignore_ascii_case(project))
    {
        return Err(response_not_found(id));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = app.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        let mut sent = 0;
        loop {
            let (events, done) = {
                let store = app.store();
                let Some(r) = store.responses.get(&id) else {
                    return;
                };
                (
                    r.events.iter().skip(sent).cloned().collect::<Vec<_>>(),
                    is_final(&r.object),
                )
            };
            sent += events.len();
            for e in &events {
                let seq = e.get("sequence_number").and_then(Value::as_u64);
                if starting_after.is_some_and(|n| seq.is_none_or(|s| s <= n)) {
                    continue;
                }
                if tx.send(sse::frame(e)).is_err() {
                    return;
                }
            }
            let ended = events.last().is_some_and(|e| {
                e.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| TERMINAL_EVENTS.contains(&t))
            });
            if done || ended || tx.is_closed() {
                return;
            }
            tokio::time::sleep(REPLAY_POLL).await;
        }
    });
    Ok(sse::response(rx))
}

/// `POST /responses/{id}/cancel`: only a background response can be cancelled
/// (openai/responses/routes.tsp `cancelResponse`); a running one becomes `cancelled`, a
/// finished one is returned as it is.
pub(crate) fn cancel(store: &mut Store, project: &str, id: &str) -> HandlerResult {
    let r = store
        .responses
        .get_mut(id)
        .filter(|r| r.project.eq_ignore_ascii_case(project))
        .ok_or_else(|| response_not_found(id))?;
    if r.object.get("background").and_then(Value::as_bool) != Some(true) {
        return Err(ApiError::bad_param(
            "response_id",
            "Only responses created with background=true can be cancelled.",
        ));
    }
    if !is_final(&r.object) {
        r.object["status"] = json!("cancelled");
        if let Some(task) = r.task.take() {
            task.abort();
        }
        tracing::info!(response = %id, "Cancelled response");
    }
    Ok(ok_json(&r.object))
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
#[derive(Debug)]
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

/// A gateway connection, ready to call, plus what discovery already knows of it.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) target: CallTarget,
    pub(crate) generation: u64,
    /// Static models, or the cached result of the list endpoint.
    pub(crate) known: Option<Vec<String>>,
    /// Deployments confirmed by the get-by-name endpoint.
    pub(crate) confirmed: BTreeSet<String>,
}

/// The connection named `name` (case-insensitive) that the project sees, its own or its
/// account's, ready to call; `None` when there is none, an error when it cannot be used to
/// call a gateway.
pub(crate) fn resolve_connection(
    store: &Store,
    project: &str,
    name: &str,
) -> Result<Option<Resolved>, ApiError> {
    let Some((c, _)) = store.visible_connection(project, name) else {
        return Ok(None);
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
    let t = CallTarget {
        project: project.to_string(),
        connection: c.name.clone(),
        target,
        meta,
        auth,
        secrets: secret_strings(c.credentials.as_ref()),
    };
    Ok(Some(Resolved {
        target: t,
        generation: c.generation,
        known,
        confirmed: c.confirmed.clone(),
    }))
}

fn call_target(store: &Store, project: &str, plan: &Plan) -> Result<Resolved, ApiError> {
    resolve_connection(store, project, &plan.connection_name)?.ok_or_else(|| {
        GatewayError::ConnectionNotFound(format!(
            "The model '{}' was not found: neither the project nor its account has a connection named '{}'.",
            plan.model, plan.connection_name
        ))
        .into_api_error()
    })
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
    let confirmed = confirmed.contains(&plan.deployment);
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
    if confirmed {
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

pub(crate) fn with_connection(
    app: &App,
    project: &str,
    connection: &str,
    generation: u64,
    f: impl FnOnce(&mut crate::state::StoredConnection),
) {
    let mut store = app.store();
    if let Some(c) = store
        .visible_connection_mut(project, connection)
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
    fn flags_must_be_booleans() {
        let req = map(json!({"stream": true, "store": null, "background": "yes"}));
        assert!(flag(&req, "stream", false).unwrap());
        assert!(flag(&req, "store", true).unwrap());
        assert!(flag(&req, "background", false).is_err());
    }

    #[test]
    fn only_final_statuses_are_final() {
        for s in ["completed", "failed", "incomplete", "cancelled"] {
            assert!(is_final(&json!({ "status": s })), "{s}");
        }
        for s in ["queued", "in_progress"] {
            assert!(!is_final(&json!({ "status": s })), "{s}");
        }
    }
}
