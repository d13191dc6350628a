//! The apiserver's side of `cargo xtask bench`: what its audit log (the test bed's
//! [`foundry_gateway_testbed::kubernetes::audit_policy`], level Metadata, written before each
//! answer) says one user sent, between two byte offsets of the log.
//!
//! Counted once per request: the `ResponseComplete` event (`ResponseStarted` for a watch, which
//! may still be open when the window ends; `Panic` for a request that crashed the handler).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use foundry_gateway_testbed::kubernetes::{OPERATOR_API_GROUP, WRITE_VERBS};
use serde::{Deserialize, Serialize};

/// The resources of the kinds the bench counts writes of (GatewayConnections and PromptAgents).
pub const OBJECT_RESOURCES: [&str; 2] = ["gatewayconnections", "promptagents"];

/// An audit log and how far it is written.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    /// Bytes written so far: a window's start or end.
    pub fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// The requests of `user` between two offsets (lines cut by an offset are left out: the
    /// apiserver writes whole lines, and offsets are taken between requests).
    pub fn requests(&self, user: &str, from: u64, to: u64) -> anyhow::Result<Vec<Request>> {
        let mut file = std::fs::File::open(&self.path)
            .with_context(|| format!("failed to open {}", self.path.display()))?;
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.take(to.saturating_sub(from)).read_to_end(&mut bytes)?;
        Ok(parse(&String::from_utf8_lossy(&bytes), user))
    }
}

/// One request, as its audit event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    pub resource: String,
    /// `status`, or empty.
    pub subresource: String,
    pub namespace: String,
    /// Empty for lists, watches and creates that name no object in the path.
    pub name: String,
    pub code: u16,
}

impl Request {
    pub fn is_write(&self) -> bool {
        WRITE_VERBS.contains(&self.verb.as_str())
    }

    /// `verb resource[/subresource]`.
    pub fn label(&self) -> String {
        if self.subresource.is_empty() {
            format!("{} {}", self.verb, self.resource)
        } else {
            format!("{} {}/{}", self.verb, self.resource, self.subresource)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: User,
    #[serde(default)]
    object_ref: Option<ObjectRef>,
    #[serde(default)]
    response_status: Option<Status>,
}

#[derive(Default, Deserialize)]
struct User {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    #[serde(default)]
    api_group: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    subresource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: u16,
}

/// The requests of `user` in audit log lines (unparsable lines are skipped).
pub fn parse(text: &str, user: &str) -> Vec<Request> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<Event>(line).ok())
        .filter(|e| e.user.username == user)
        .filter(|e| match e.stage.as_str() {
            "ResponseStarted" => e.verb == "watch",
            "ResponseComplete" => e.verb != "watch",
            "Panic" => true,
            _ => false,
        })
        .filter_map(|e| {
            let o = e.object_ref?;
            Some(Request {
                verb: e.verb,
                group: o.api_group,
                resource: o.resource,
                subresource: o.subresource,
                namespace: o.namespace,
                name: o.name,
                code: e.response_status.map_or(0, |s| s.code),
            })
        })
        .collect()
}

/// Writes of one user to GatewayConnections and PromptAgents, per object.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Writes {
    /// Objects counted (every object of the run, those without a write too).
    pub objects: usize,
    /// Write requests per object, main resource and `status` together: mean and max.
    pub per_object_mean: f64,
    pub per_object_max: u64,
    /// Of which to the main resource (finalizer, annotations) and to `status`, per object.
    pub main_per_object_mean: f64,
    pub status_per_object_mean: f64,
    /// Write requests by verb and (sub)resource (`patch gatewayconnections/status`).
    pub by_request: BTreeMap<String, u64>,
    /// Of those, requests the apiserver refused (not 2xx: conflicts, invalid patches).
    pub refused: u64,
    /// Write requests to every other resource the log records (Leases, Events, Secrets), by
    /// verb and resource.
    pub other: BTreeMap<String, u64>,
}

impl Writes {
    /// Counts the writes in `requests` to the objects `objects` (resource, name) of `namespace`.
    pub fn count(
        requests: &[Request],
        namespace: &str,
        objects: &BTreeSet<(String, String)>,
    ) -> Self {
        let mut main: BTreeMap<&(String, String), u64> = objects.iter().map(|o| (o, 0)).collect();
        let mut status = main.clone();
        let mut out = Self {
            objects: objects.len(),
            ..Self::default()
        };
        for r in requests.iter().filter(|r| r.is_write()) {
            let ours = r.group == OPERATOR_API_GROUP
                && OBJECT_RESOURCES.contains(&r.resource.as_str())
                && r.namespace == namespace;
            if !ours {
                *out.other.entry(r.label()).or_insert(0) += 1;
                continue;
            }
            *out.by_request.entry(r.label()).or_insert(0) += 1;
            if !(200..300).contains(&r.code) {
                out.refused += 1;
            }
            let key = (r.resource.clone(), r.name.clone());
            let counts = if r.subresource == "status" {
                &mut status
            } else {
                &mut main
            };
            if let Some(count) = counts.get_mut(&key) {
                *count += 1;
            }
        }
        let total = |m: &BTreeMap<&(String, String), u64>| m.values().sum::<u64>() as f64;
        let per = objects.len().max(1) as f64;
        out.main_per_object_mean = round2(total(&main) / per);
        out.status_per_object_mean = round2(total(&status) / per);
        out.per_object_mean = round2((total(&main) + total(&status)) / per);
        out.per_object_max = main
            .iter()
            .map(|(key, m)| m + status.get(key).copied().unwrap_or(0))
            .max()
            .unwrap_or(0);
        out
    }

    /// Write requests to GatewayConnections and PromptAgents, all objects together.
    pub fn total(&self) -> u64 {
        self.by_request.values().sum()
    }
}

/// Reads (`get`, `list`, `watch`) in `requests`, by verb and resource.
pub fn reads(requests: &[Request]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for r in requests.iter().filter(|r| !r.is_write()) {
        *out.entry(r.label()).or_insert(0) += 1;
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR: &str = "system:serviceaccount:foundry-system:foundry-gateway-operator";

    fn line(stage: &str, verb: &str, user: &str, object: &str, code: u16) -> String {
        format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"{stage}","verb":"{verb}","user":{{"username":"{user}"}},"objectRef":{object},"responseStatus":{{"code":{code}}}}}"#
        )
    }

    fn object(resource: &str, name: &str, subresource: &str) -> String {
        format!(
            r#"{{"resource":"{resource}","namespace":"bench","name":"{name}","apiGroup":"gateway.foundry.dev","apiVersion":"v1alpha1","subresource":"{subresource}"}}"#
        )
    }

    #[test]
    fn each_request_counts_once_and_only_the_users() {
        let lease = r#"{"resource":"leases","namespace":"foundry-system","name":"l","apiGroup":"coordination.k8s.io"}"#;
        let text = [
            line(
                "ResponseComplete",
                "patch",
                OPERATOR,
                &object("gatewayconnections", "gw-0000", "status"),
                200,
            ),
            line(
                "ResponseComplete",
                "patch",
                "testbed-admin",
                &object("gatewayconnections", "gw-0000", ""),
                201,
            ),
            // A watch counts when it starts, not again when it ends.
            line(
                "ResponseStarted",
                "watch",
                OPERATOR,
                &object("promptagents", "", ""),
                200,
            ),
            line(
                "ResponseComplete",
                "watch",
                OPERATOR,
                &object("promptagents", "", ""),
                200,
            ),
            line(
                "ResponseStarted",
                "get",
                OPERATOR,
                &object("promptagents", "agent-0000", ""),
                200,
            ),
            line("ResponseComplete", "update", OPERATOR, lease, 200),
            "not json".to_owned(),
        ]
        .join("\n");
        let requests = parse(&text, OPERATOR);
        let labels: Vec<String> = requests.iter().map(Request::label).collect();
        assert_eq!(
            labels,
            [
                "patch gatewayconnections/status",
                "watch promptagents",
                "update leases"
            ]
        );
        assert_eq!(
            reads(&requests),
            BTreeMap::from([("watch promptagents".to_owned(), 1)])
        );
    }

    #[test]
    fn writes_are_split_into_main_and_status_per_object() {
        let text = [
            line(
                "ResponseComplete",
                "patch",
                OPERATOR,
                &object("gatewayconnections", "gw-0000", ""),
                200,
            ),
            line(
                "ResponseComplete",
                "patch",
                OPERATOR,
                &object("gatewayconnections", "gw-0000", "status"),
                200,
            ),
            line(
                "ResponseComplete",
                "patch",
                OPERATOR,
                &object("gatewayconnections", "gw-0000", "status"),
                409,
            ),
            line(
                "ResponseComplete",
                "patch",
                OPERATOR,
                &object("promptagents", "agent-0000", "status"),
                200,
            ),
            line(
                "ResponseComplete",
                "get",
                OPERATOR,
                &object("promptagents", "agent-0000", ""),
                200,
            ),
        ]
        .join("\n");
        let objects: BTreeSet<(String, String)> = [
            ("gatewayconnections", "gw-0000"),
            ("promptagents", "agent-0000"),
            ("promptagents", "agent-0001"),
        ]
        .into_iter()
        .map(|(r, n)| (r.to_owned(), n.to_owned()))
        .collect();
        let writes = Writes::count(&parse(&text, OPERATOR), "bench", &objects);
        assert_eq!(writes.objects, 3);
        assert_eq!(writes.total(), 4);
        assert_eq!(writes.per_object_max, 3);
        assert_eq!(writes.per_object_mean, 1.33);
        assert_eq!(writes.main_per_object_mean, 0.33);
        assert_eq!(writes.status_per_object_mean, 1.0);
        assert_eq!(writes.refused, 1);
        assert_eq!(writes.by_request["patch gatewayconnections/status"], 2);
        assert!(writes.other.is_empty());
    }
}
