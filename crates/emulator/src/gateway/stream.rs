//! Streaming chat completions: when a client streams a response, the emulator asks the gateway
//! for `"stream": true` and relays the chunks as they arrive. Neither the Foundry samples nor
//! their guides say how Foundry calls a gateway for a streamed run; an older fork of the guides
//! requires SSE support of gateways (reference §3.3), which only makes sense if Foundry streams.
//! A gateway that ignores `stream` and answers one JSON completion is accepted too.

use std::time::Instant;

use http::StatusCode;
use serde_json::Value;

use super::{
    CHAT_COMPLETION, CallTarget, Gateway, GatewayError, Reply, elapsed_ms, error_chain,
    send_failed, truncate,
};
use crate::connection::inference_url;
use crate::control::Control;

/// What a gateway answered to a streaming chat completion.
#[derive(Debug)]
pub(crate) enum ChatStream {
    /// `text/event-stream`: `chat.completion.chunk`s, read one by one.
    Events(Box<ChunkReader>),
    /// The gateway ignored `stream` and answered one `chat.completion`.
    Whole(Value),
}

/// Reads the `data:` payloads of a chat-completions event stream.
#[derive(Debug)]
pub(crate) struct ChunkReader {
    response: reqwest::Response,
    parser: SseParser,
    target: CallTarget,
    url: String,
    finished: bool,
}

impl ChunkReader {
    /// The next chunk; `None` after `data: [DONE]` or at the end of the body.
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Value>, GatewayError> {
        loop {
            if let Some(data) = self.parser.next_data() {
                if data.trim() == "[DONE]" {
                    self.finished = true;
                    return Ok(None);
                }
                if data.trim().is_empty() {
                    continue;
                }
                let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                    GatewayError::Failed(self.target.scrub(&format!(
                        "the gateway of connection '{}' streamed a chunk that is not JSON at {}: {e}: {}",
                        self.target.connection,
                        self.url,
                        truncate(&data, 300)
                    )))
                })?;
                if let Some(message) =
                    super::error_message(&chunk).filter(|_| chunk.get("error").is_some())
                {
                    return Err(GatewayError::Failed(self.target.scrub(&format!(
                        "the gateway of connection '{}' reported an error in the stream at {}: {message}",
                        self.target.connection, self.url
                    ))));
                }
                return Ok(Some(chunk));
            }
            if self.finished {
                return Ok(None);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => {
                    self.finished = true;
                    self.parser.end();
                }
                Err(e) => {
                    let msg = self.target.scrub(&format!(
                        "the stream from the gateway of connection '{}' at {} broke: {}",
                        self.target.connection,
                        self.url,
                        error_chain(&e)
                    ));
                    return Err(if e.is_timeout() {
                        GatewayError::Timeout(msg)
                    } else {
                        GatewayError::Failed(msg)
                    });
                }
            }
        }
    }
}

/// An incremental parser of `text/event-stream`: collects `data:` lines until a blank line
/// ends the event (WHATWG HTML, "Parsing an event stream"). Other fields are ignored.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    pending: Vec<u8>,
    data: Vec<String>,
    has_data: bool,
    ready: std::collections::VecDeque<String>,
}

impl SseParser {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            self.line(line.trim_end_matches(['\n', '\r']));
        }
    }

    /// The body ended: a last line without newline still counts, an unfinished event is
    /// dispatched.
    pub(crate) fn end(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            let line = String::from_utf8_lossy(&rest).into_owned();
            self.line(line.trim_end_matches('\r'));
        }
        self.line("");
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            if self.has_data {
                self.ready.push_back(self.data.join("\n"));
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push(value.to_string());
            self.has_data = true;
        }
    }

    pub(crate) fn next_data(&mut self) -> Option<String> {
        self.ready.pop_front()
    }
}

impl Gateway {
    /// Sends a chat completion with `"stream": true` in `body` and returns the open stream, or
    /// the error the gateway answered before streaming (the same errors as [`Gateway::chat`]).
    pub(crate) async fn chat_stream(
        &self,
        t: &CallTarget,
        deployment: &str,
        body: &Value,
        control: &Control,
    ) -> Result<ChatStream, GatewayError> {
        let url = inference_url(&t.target, &t.meta, deployment);
        let (req, mut record) = self
            .prepare(
                t,
                control,
                "inference",
                reqwest::Method::POST,
                &url,
                Some(body),
            )
            .await?;
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Err(send_failed(t, control, record, started, &e)),
        };
        let status = resp.status();
        record.status = Some(status.as_u16());
        record.duration_ms = elapsed_ms(started);
        control.record_gateway_call(record);
        tracing::info!(connection = %t.connection, status = status.as_u16(), "Called gateway with a stream");
        let event_stream = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !status.is_success() || !event_stream {
            let text = resp.text().await.unwrap_or_default();
            let reply = Reply {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
                text,
            };
            if !status.is_success() {
                return Err(Self::upstream_error(t, CHAT_COMPLETION, &url, &reply));
            }
            return whole_completion(t, &url, reply).map(ChatStream::Whole);
        }
        Ok(ChatStream::Events(Box::new(ChunkReader {
            response: resp,
            parser: SseParser::default(),
            target: t.clone(),
            url,
            finished: false,
        })))
    }
}

/// A gateway that answered a streaming request with one JSON completion.
fn whole_completion(t: &CallTarget, url: &str, reply: Reply) -> Result<Value, GatewayError> {
    if reply.status == StatusCode::OK
        && reply
            .body
            .get("choices")
            .and_then(Value::as_array)
            .is_some()
    {
        return Ok(reply.body);
    }
    Err(GatewayError::Failed(t.scrub(&format!(
        "the gateway of connection '{}' answered the streaming chat completion at {url} with neither an event stream nor 'choices': {}",
        t.connection,
        truncate(&reply.text, 300)
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(p: &mut SseParser) -> Vec<String> {
        std::iter::from_fn(|| p.next_data()).collect()
    }

    #[test]
    fn events_are_cut_at_blank_lines_whatever_the_chunking() {
        let text = "data: {\"a\":1}\r\n\r\n: comment\nevent: x\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";
        for size in [1, 2, 5, text.len()] {
            let mut p = SseParser::default();
            for chunk in text.as_bytes().chunks(size) {
                p.push(chunk);
            }
            assert_eq!(
                all(&mut p),
                ["{\"a\":1}", "line1\nline2", "[DONE]"],
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn an_unterminated_last_event_is_kept_at_the_end_of_the_body() {
        let mut p = SseParser::default();
        p.push(b"data: {\"b\":2}");
        assert!(p.next_data().is_none());
        p.end();
        assert_eq!(all(&mut p), ["{\"b\":2}"]);
    }
}
