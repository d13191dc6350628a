//! Observability and control under `/_emulator/`: the request log, the outgoing gateway call
//! log and fault rules.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One recorded Foundry request, as `/_emulator/requests` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RequestRecord {
    pub(crate) seq: u64,
    pub(crate) time: String,
    pub(crate) time_unix_ms: u64,
    pub(crate) plane: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    /// `null` when the connection was dropped by a fault.
    pub(crate) status: Option<u16>,
    pub(crate) duration_ms: u64,
    /// Id of the TCP connection the request came on. A dropped connection loses every answer
    /// still in flight on it (HTTP/2 multiplexes requests), even those recorded with a status.
    pub(crate) connection: u64,
    /// The `User-Agent` the caller sent (cut at 200 characters), to tell callers apart.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) user_agent: Option<String>,
    /// The JSON body with every credential value replaced by `"<redacted>"`.
    pub(crate) request_body: Value,
    /// SHA-256 of the credentials (canonical JSON) when the body carried any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) credentials_sha256: Option<String>,
    /// Id of the fault rule that answered, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fault: Option<u64>,
    pub(crate) dropped: bool,
}

/// One outgoing call to a gateway or token server, as `/_emulator/gateway-calls` lists it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayCallRecord {
    pub(crate) seq: u64,
    pub(crate) time: String,
    /// `inference`, `discovery-list`, `discovery-get` or `token`.
    pub(crate) kind: &'static str,
    pub(crate) project: String,
    pub(crate) connection: String,
    pub(crate) method: String,
    pub(crate) url: String,
    /// Header names in the order sent.
    pub(crate) header_names: Vec<String>,
    /// Header values; those of the auth header and of custom headers are `"<redacted>"`.
    pub(crate) headers: serde_json::Map<String, Value>,
    /// JSON body sent (chat completions only; token requests are never recorded).
    pub(crate) request_body: Value,
    pub(crate) status: Option<u16>,
    pub(crate) error: Option<String>,
    pub(crate) duration_ms: u64,
}

/// A fault rule as posted to `/_emulator/faults`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FaultRuleSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) drop_connection: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) times: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}

impl FaultRuleSpec {
    fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.status
            && !(400..=599).contains(&s)
        {
            return Err(format!(
                "status {s} must be an error status between 400 and 599"
            ));
        }
        if self.status.is_some() && self.drop_connection == Some(true) {
            return Err(
                "a rule either answers with a status or drops the connection, not both".into(),
            );
        }
        if self.status.is_none() && self.drop_connection != Some(true) && self.latency_ms.is_none()
        {
            return Err("a rule needs status, dropConnection or latencyMs".into());
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err(format!("probability {p} must be between 0 and 1"));
        }
        if self.times == Some(0) {
            return Err("times must be at least 1 (omit it for a rule without limit)".into());
        }
        Ok(())
    }

    fn matches(&self, operation: &str, method: &str, path: &str) -> bool {
        self.operation
            .as_deref()
            .is_none_or(|o| o.eq_ignore_ascii_case(operation))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

#[derive(Debug, Clone)]
struct FaultRule {
    id: u64,
    spec: FaultRuleSpec,
    fired: u64,
}

impl FaultRule {
    fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(&self.spec).unwrap_or_else(|_| json!({}));
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), json!(self.id));
            m.insert("fired".into(), json!(self.fired));
            m.insert(
                "remaining".into(),
                json!(self.spec.times.map(|t| t.saturating_sub(self.fired))),
            );
        }
        v
    }
}

/// What a firing rule does to a request.
#[derive(Debug, Clone)]
pub(crate) struct FaultAction {
    pub(crate) rule: u64,
    pub(crate) latency: Duration,
    pub(crate) outcome: FaultOutcome,
}

/// The part of a fault that replaces the normal answer.
#[derive(Debug, Clone)]
pub(crate) enum FaultOutcome {
    /// Only the latency; the request is then served normally.
    Continue,
    /// An error answer.
    Status {
        status: u16,
        retry_after_seconds: Option<u64>,
        retry_after_ms: Option<u64>,
        message: Option<String>,
    },
    /// Close the connection without an answer.
    Drop,
}

#[derive(Debug)]
struct FaultState {
    rules: Vec<FaultRule>,
    rng: StdRng,
    next_id: u64,
}

/// Shared log and fault state.
#[derive(Debug)]
pub(crate) struct Control {
    seed: u64,
    max_recorded: usize,
    seq: AtomicU64,
    connections: AtomicU64,
    requests: Mutex<VecDeque<RequestRecord>>,
    gateway_seq: AtomicU64,
    gateway_calls: Mutex<VecDeque<GatewayCallRecord>>,
    faults: Mutex<FaultState>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Control {
    pub(crate) fn new(seed: u64, max_recorded: usize) -> Self {
        Self {
            seed,
            max_recorded: max_recorded.max(1),
            seq: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            requests: Mutex::new(VecDeque::new()),
            gateway_seq: AtomicU64::new(0),
            gateway_calls: Mutex::new(VecDeque::new()),
            faults: Mutex::new(FaultState {
                rules: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
                next_id: 1,
            }),
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh id for an accepted connection.
    pub(crate) fn next_connection(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        let mut q = lock(&self.requests);
        if q.len() >= self.max_recorded {
            q.pop_front();
        }
        q.push_back(record);
    }

    pub(crate) fn record_gateway_call(&self, mut record: GatewayCallRecord) {
        record.seq = self.gateway_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut q = lock(&self.gateway_calls);
        if q.len() >= self.max_recorded {
            q.pop_front();
        }
        q.push_back(record);
    }

    /// Requests, optionally filtered by operation, plane and a sequence number to start after.
    pub(crate) fn requests(
        &self,
        operation: Option<&str>,
        plane: Option<&str>,
        since: u64,
    ) -> Value {
        let q = lock(&self.requests);
        let list: Vec<&RequestRecord> = q
            .iter()
            .filter(|r| r.seq > since)
            .filter(|r| operation.is_none_or(|o| r.operation.eq_ignore_ascii_case(o)))
            .filter(|r| plane.is_none_or(|p| r.plane == p))
            .collect();
        serde_json::to_value(list).unwrap_or_else(|_| json!([]))
    }

    pub(crate) fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub(crate) fn gateway_calls(&self, since: u64) -> Value {
        let q = lock(&self.gateway_calls);
        let list: Vec<&GatewayCallRecord> = q.iter().filter(|r| r.seq > since).collect();
        serde_json::to_value(list).unwrap_or_else(|_| json!([]))
    }

    pub(crate) fn clear_gateway_calls(&self) {
        lock(&self.gateway_calls).clear();
    }

    /// Adds rules; the random source restarts from the seed (the one given or the configured
    /// one) so that a test posting the same rules sees the same outcomes.
    pub(crate) fn add_faults(
        &self,
        specs: Vec<FaultRuleSpec>,
        seed: Option<u64>,
    ) -> Result<Value, String> {
        for (i, s) in specs.iter().enumerate() {
            s.validate().map_err(|e| format!("rule {i}: {e}"))?;
        }
        let mut f = lock(&self.faults);
        for spec in specs {
            let id = f.next_id;
            f.next_id += 1;
            f.rules.push(FaultRule { id, spec, fired: 0 });
        }
        f.rng = StdRng::seed_from_u64(seed.unwrap_or(self.seed));
        Ok(Self::faults_json(&f))
    }

    pub(crate) fn faults(&self) -> Value {
        Self::faults_json(&lock(&self.faults))
    }

    fn faults_json(f: &FaultState) -> Value {
        json!({ "rules": f.rules.iter().map(FaultRule::to_json).collect::<Vec<_>>() })
    }

    pub(crate) fn clear_faults(&self) {
        let mut f = lock(&self.faults);
        f.rules.clear();
        f.rng = StdRng::seed_from_u64(self.seed);
    }

    /// The first matching rule that fires for this request, if any. Rules whose `times` are
    /// used up are removed.
    pub(crate) fn check_fault(
        &self,
        operation: &str,
        method: &str,
        path: &str,
    ) -> Option<FaultAction> {
        let mut guard = lock(&self.faults);
        let f = &mut *guard;
        let mut chosen = None;
        for (idx, rule) in f.rules.iter_mut().enumerate() {
            if !rule.spec.matches(operation, method, path) {
                continue;
            }
            if let Some(p) = rule.spec.probability {
                let draw: f64 = f.rng.random();
                if draw >= p {
                    continue;
                }
            }
            rule.fired += 1;
            let spec = &rule.spec;
            let outcome = if spec.drop_connection == Some(true) {
                FaultOutcome::Drop
            } else if let Some(status) = spec.status {
                FaultOutcome::Status {
                    status,
                    retry_after_seconds: spec.retry_after_seconds,
                    retry_after_ms: spec.retry_after_ms,
                    message: spec.message.clone(),
                }
            } else {
                FaultOutcome::Continue
            };
            chosen = Some((
                idx,
                FaultAction {
                    rule: rule.id,
                    latency: Duration::from_millis(spec.latency_ms.unwrap_or(0)),
                    outcome,
                },
            ));
            break;
        }
        let (idx, action) = chosen?;
        if f.rules
            .get(idx)
            .is_some_and(|r| r.spec.times.is_some_and(|t| r.fired >= t))
        {
            f.rules.remove(idx);
        }
        Some(action)
    }
}

/// The body of `POST /_emulator/faults`: one rule, a list, or `{ "rules": [...], "seed": n }`.
pub(crate) fn parse_fault_post(body: &[u8]) -> Result<(Vec<FaultRuleSpec>, Option<u64>), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let parse = |v: Value| serde_json::from_value::<FaultRuleSpec>(v).map_err(|e| e.to_string());
    match value {
        Value::Array(items) => Ok((
            items.into_iter().map(parse).collect::<Result<_, _>>()?,
            None,
        )),
        Value::Object(mut m) if m.contains_key("rules") => {
            let seed = match m.remove("seed") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or("seed must be a non-negative integer")?),
            };
            let Some(Value::Array(items)) = m.remove("rules") else {
                return Err("rules must be an array".into());
            };
            if let Some(k) = m.keys().next() {
                return Err(format!("unknown field '{k}'"));
            }
            Ok((
                items.into_iter().map(parse).collect::<Result<_, _>>()?,
                seed,
            ))
        }
        other => Ok((vec![parse(other)?], None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> FaultRuleSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rules_match_by_operation_or_method_and_prefix() {
        let c = Control::new(1, 10);
        c.add_faults(
            vec![rule(
                json!({"method": "PUT", "pathPrefix": "/subscriptions/", "status": 500}),
            )],
            None,
        )
        .unwrap();
        assert!(
            c.check_fault("ProjectConnections_Get", "GET", "/subscriptions/x")
                .is_none()
        );
        assert!(
            c.check_fault("ProjectConnections_Create", "PUT", "/subscriptions/x")
                .is_some()
        );
        c.clear_faults();
        c.add_faults(
            vec![rule(
                json!({"operation": "Responses_Create", "status": 429, "times": 2}),
            )],
            None,
        )
        .unwrap();
        assert!(c.check_fault("responses_create", "POST", "/x").is_some());
        assert!(c.check_fault("Responses_Create", "POST", "/x").is_some());
        assert!(
            c.check_fault("Responses_Create", "POST", "/x").is_none(),
            "times is a limit"
        );
    }

    #[test]
    fn probability_draws_are_reproducible_with_a_seed() {
        let run = |seed| {
            let c = Control::new(seed, 10);
            c.add_faults(vec![rule(json!({"status": 503, "probability": 0.5}))], None)
                .unwrap();
            (0..64)
                .map(|_| c.check_fault("X", "GET", "/").is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fired = run(7).iter().filter(|b| **b).count();
        assert!((16..=48).contains(&fired), "{fired}");
    }

    #[test]
    fn invalid_rules_are_refused() {
        let c = Control::new(1, 10);
        assert!(
            c.add_faults(vec![rule(json!({"status": 200}))], None)
                .is_err()
        );
        assert!(
            c.add_faults(
                vec![rule(json!({"status": 500, "dropConnection": true}))],
                None
            )
            .is_err()
        );
        assert!(
            c.add_faults(vec![rule(json!({"probability": 2.0, "status": 500}))], None)
                .is_err()
        );
        assert!(
            c.add_faults(vec![rule(json!({"operation": "X"}))], None)
                .is_err()
        );
        assert!(parse_fault_post(br#"{"bogus": 1}"#).is_err());
        let (rules, seed) =
            parse_fault_post(br#"{"rules": [{"status": 500}], "seed": 3}"#).unwrap();
        assert_eq!((rules.len(), seed), (1, Some(3)));
    }
}
