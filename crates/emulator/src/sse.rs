//! Server-sent events of the Responses API, as `openai/openapi.json` defines them
//! (`ResponseCreatedEvent` … `ResponseCompletedEvent`): one `event: <type>` and one
//! `data: <json>` line per event, numbered by `sequence_number` from 0. A response's output is
//! built here too, from text and tool-call deltas, so a streamed and a one-piece answer give
//! the same items.

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::util::new_id;

/// Event types after which a stream ends.
pub(crate) const TERMINAL_EVENTS: &[&str] = &[
    "response.completed",
    "response.failed",
    "response.incomplete",
];

/// One event as it goes on the wire.
pub(crate) fn frame(event: &Value) -> Bytes {
    let kind = event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message");
    Bytes::from(format!("event: {kind}\ndata: {event}\n\n"))
}

/// A `text/event-stream` response whose body is whatever arrives on `rx`, ending when every
/// sender is gone.
pub(crate) fn response(rx: UnboundedReceiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// Numbers events, keeps them, and sends them to a listening client if there is one.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    next: u64,
    sink: Option<UnboundedSender<Bytes>>,
    pub(crate) events: Vec<Value>,
}

impl EventLog {
    pub(crate) fn new(sink: Option<UnboundedSender<Bytes>>) -> Self {
        Self {
            next: 0,
            sink,
            events: Vec::new(),
        }
    }

    /// Adds `sequence_number` and emits the event. A client that went away does not stop the
    /// response: it is still finished and stored.
    pub(crate) fn emit(&mut self, mut event: Value) {
        event["sequence_number"] = json!(self.next);
        self.next += 1;
        if let Some(sink) = &self.sink
            && sink.send(frame(&event)).is_err()
        {
            self.sink = None;
        }
        self.events.push(event);
    }
}

/// The item being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Call(usize),
}

/// Output items of one response, built from deltas while their events are emitted.
#[derive(Debug, Default)]
pub(crate) struct OutputBuilder {
    items: Vec<Value>,
    open: Option<Open>,
    /// Tool-call index of the chat chunks → output index.
    calls: BTreeMap<u64, usize>,
}

impl OutputBuilder {
    /// Appends assistant text, opening a message item (and its `output_text` part) first.
    pub(crate) fn text(&mut self, log: &mut EventLog, delta: &str) {
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close(log);
                let item = json!({"id": new_id("msg"), "type": "message", "status": "in_progress", "role": "assistant", "content": []});
                let i = self.items.len();
                self.items.push(item.clone());
                log.emit(
                    json!({"type": "response.output_item.added", "output_index": i, "item": item}),
                );
                let part =
                    json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
                log.emit(json!({"type": "response.content_part.added", "item_id": item["id"], "output_index": i, "content_index": 0, "part": part}));
                self.items[i]["content"] = json!([part]);
                self.open = Some(Open::Text(i));
                i
            }
        };
        if delta.is_empty() {
            return;
        }
        let item = &mut self.items[index];
        let text = format!(
            "{}{delta}",
            item["content"][0]["text"].as_str().unwrap_or_default()
        );
        item["content"][0]["text"] = json!(text);
        let id = item["id"].clone();
        log.emit(json!({"type": "response.output_text.delta", "item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}));
    }

    /// Appends to the function call with chat tool-call index `index`, opening it first.
    pub(crate) fn call(
        &mut self,
        log: &mut EventLog,
        index: u64,
        call_id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) {
        let out = match self.calls.get(&index) {
            Some(i) => *i,
            None => {
                self.close(log);
                let item = json!({"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                    "call_id": call_id.unwrap_or_default(), "name": name.unwrap_or_default(), "arguments": ""});
                let i = self.items.len();
                self.items.push(item.clone());
                self.calls.insert(index, i);
                log.emit(
                    json!({"type": "response.output_item.added", "output_index": i, "item": item}),
                );
                self.open = Some(Open::Call(i));
                i
            }
        };
        let item = &mut self.items[out];
        // Later chunks of the same call may carry the id and name only now.
        if let Some(id) = call_id.filter(|s| !s.is_empty()) {
            item["call_id"] = json!(id);
        }
        if let Some(n) = name.filter(|s| !s.is_empty()) {
            item["name"] = json!(n);
        }
        if arguments.is_empty() {
            return;
        }
        let args = format!(
            "{}{arguments}",
            item["arguments"].as_str().unwrap_or_default()
        );
        item["arguments"] = json!(args);
        let id = item["id"].clone();
        // A call interleaved with another one after it was closed only grows its arguments.
        if self.open == Some(Open::Call(out)) {
            log.emit(json!({"type": "response.function_call_arguments.delta", "item_id": id, "output_index": out, "delta": arguments}));
        }
    }

    /// Feeds one `chat.completion.chunk`.
    pub(crate) fn chunk(&mut self, log: &mut EventLog, chunk: &Value) {
        let Some(delta) = chunk.pointer("/choices/0/delta") else {
            return;
        };
        if let Some(text) = delta.get("content").and_then(Value::as_str) {
            self.text(log, text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            self.call(
                log,
                index,
                call.get("id").and_then(Value::as_str),
                call.pointer("/function/name").and_then(Value::as_str),
                call.pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
        }
    }

    /// Feeds a whole `chat.completion`: its text (even empty) and its tool calls.
    pub(crate) fn completion(&mut self, log: &mut EventLog, reply: &Value) {
        let message = reply.pointer("/choices/0/message");
        if let Some(text) = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
        {
            self.text(log, text);
        }
        for (i, call) in message
            .and_then(|m| m.get("tool_calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            self.call(
                log,
                u64::try_from(i).unwrap_or(u64::MAX),
                call.get("id").and_then(Value::as_str),
                call.pointer("/function/name").and_then(Value::as_str),
                call.pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
        }
    }

    /// Emits the `.done` events of the open item and marks it completed.
    fn close(&mut self, log: &mut EventLog) {
        let Some(open) = self.open.take() else {
            return;
        };
        match open {
            Open::Text(i) => {
                let item = &mut self.items[i];
                let part = item["content"][0].clone();
                let id = item["id"].clone();
                log.emit(json!({"type": "response.output_text.done", "item_id": id, "output_index": i, "content_index": 0, "text": part["text"], "logprobs": []}));
                log.emit(json!({"type": "response.content_part.done", "item_id": id, "output_index": i, "content_index": 0, "part": part}));
                item["status"] = json!("completed");
                let item = item.clone();
                log.emit(
                    json!({"type": "response.output_item.done", "output_index": i, "item": item}),
                );
            }
            Open::Call(i) => {
                let item = &mut self.items[i];
                item["status"] = json!("completed");
                let item = item.clone();
                log.emit(json!({"type": "response.function_call_arguments.done", "item_id": item["id"], "name": item["name"], "output_index": i, "arguments": item["arguments"]}));
                log.emit(
                    json!({"type": "response.output_item.done", "output_index": i, "item": item}),
                );
            }
        }
    }

    /// Closes the open item and returns the output. An answer without text and calls still
    /// has one (empty) message, as a one-piece answer has.
    pub(crate) fn finish(mut self, log: &mut EventLog) -> Vec<Value> {
        if self.items.is_empty() {
            self.text(log, "");
        }
        self.close(log);
        for item in &mut self.items {
            item["status"] = json!("completed");
        }
        self.items
    }

    /// The items so far, as they stand (for a response that failed midway).
    pub(crate) fn partial(&self) -> Vec<Value> {
        self.items.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(log: &EventLog) -> Vec<&str> {
        log.events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default())
            .collect()
    }

    #[test]
    fn streamed_text_gives_the_documented_event_order_and_one_message() {
        let mut log = EventLog::new(None);
        let mut out = OutputBuilder::default();
        for piece in ["Hel", "lo"] {
            out.chunk(
                &mut log,
                &json!({"choices": [{"index": 0, "delta": {"content": piece}}]}),
            );
        }
        let items = out.finish(&mut log);
        assert_eq!(
            types(&log),
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done"
            ]
        );
        let seq: Vec<u64> = log
            .events
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert_eq!(seq, (0..7).collect::<Vec<_>>());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["content"][0]["text"], "Hello");
        assert_eq!(items[0]["status"], "completed");
        assert_eq!(log.events[4]["text"], "Hello");
        assert_eq!(log.events[6]["item"], items[0]);
    }

    #[test]
    fn tool_call_chunks_become_a_function_call_item() {
        let mut log = EventLog::new(None);
        let mut out = OutputBuilder::default();
        out.chunk(&mut log, &json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}}]}));
        out.chunk(&mut log, &json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}}]}));
        let items = out.finish(&mut log);
        assert_eq!(
            types(&log),
            [
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done"
            ]
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["call_id"], "call_1");
        assert_eq!(items[0]["arguments"], "{\"a\":1}");
        assert_eq!(log.events[3]["name"], "f");
    }

    #[test]
    fn a_whole_completion_gives_the_same_items_as_before() {
        let mut log = EventLog::new(None);
        let mut out = OutputBuilder::default();
        out.completion(
            &mut log,
            &json!({"choices": [{"message": {"role": "assistant", "content": "Pong"}}]}),
        );
        let items = out.finish(&mut log);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["type"], "message");
        assert_eq!(
            items[0]["content"],
            json!([{"type": "output_text", "text": "Pong", "annotations": [], "logprobs": []}])
        );
        let mut log = EventLog::new(None);
        let mut out = OutputBuilder::default();
        out.completion(&mut log, &json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}));
        let items = out.finish(&mut log);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["type"], "function_call");
        assert_eq!(items[0]["call_id"], "call_1");
        let out = OutputBuilder::default();
        let items = out.finish(&mut EventLog::new(None));
        assert_eq!(
            items[0]["content"][0]["text"], "",
            "an empty answer is an empty message"
        );
    }

    #[test]
    fn frames_carry_the_event_name_and_one_data_line() {
        let f = frame(&json!({"type": "response.created", "sequence_number": 0}));
        let text = String::from_utf8(f.to_vec()).unwrap();
        assert!(text.starts_with("event: response.created\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.trim_end().lines().count(), 2);
    }
}
