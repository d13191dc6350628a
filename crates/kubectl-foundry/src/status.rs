//! `status`: one table across FoundryProjects, GatewayConnections and PromptAgents, grouped by
//! project, then each object that is not Ready with its reason, message and what to do.

use std::fmt::Write as _;

use serde_json::Value;

use crate::fixes::fix_for;

/// The kinds, in the order the table lists them within a project.
pub const KINDS: [&str; 3] = ["FoundryProject", "GatewayConnection", "PromptAgent"];

/// Conditions that carry the cause of a not-Ready object.
const CAUSE_CONDITIONS: [&str; 4] = [
    "GatewayActive",
    "ConnectionResolved",
    "ModelResolved",
    "Verified",
];

/// One condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `type`.
    pub type_: String,
    /// `status`.
    pub status: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
}

/// What the table needs of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The project: its own name for a FoundryProject, `spec.projectRef.name` otherwise.
    pub project: String,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// Whether `status.observedGeneration` is behind `metadata.generation`.
    pub stale: bool,
}

impl Row {
    /// Reads an object as the apiserver returns it.
    pub fn from_object(kind: &str, object: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let metadata = &object["metadata"];
        let name = text(&metadata["name"]);
        let project = if kind == "FoundryProject" {
            name.clone()
        } else {
            text(&object["spec"]["projectRef"]["name"])
        };
        let conditions = object["status"]["conditions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| Condition {
                        type_: text(&c["type"]),
                        status: text(&c["status"]),
                        reason: text(&c["reason"]),
                        message: text(&c["message"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stale = match (
            metadata["generation"].as_i64(),
            object["status"]["observedGeneration"].as_i64(),
        ) {
            (Some(generation), Some(observed)) => observed < generation,
            (Some(_), None) => true,
            _ => false,
        };
        Self {
            kind: kind.to_owned(),
            namespace: text(&metadata["namespace"]),
            name,
            project,
            conditions,
            stale,
        }
    }

    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    fn ready(&self) -> (&str, &str) {
        match self.condition("Ready") {
            Some(c) => (c.status.as_str(), c.reason.as_str()),
            None => ("Unknown", "-"),
        }
    }
}

fn kind_order(kind: &str) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len())
}

/// The table and the not-Ready details.
pub fn render(rows: &[Row], all_namespaces: bool) -> String {
    let mut rows: Vec<&Row> = rows.iter().collect();
    rows.sort_by(|a, b| {
        (&a.namespace, &a.project, kind_order(&a.kind), &a.name).cmp(&(
            &b.namespace,
            &b.project,
            kind_order(&b.kind),
            &b.name,
        ))
    });
    if rows.is_empty() {
        return "No FoundryProjects, GatewayConnections or PromptAgents found.\n".to_owned();
    }
    let mut header = vec!["PROJECT", "KIND", "NAME", "READY", "REASON"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    for row in &rows {
        let (ready, reason) = row.ready();
        let mut cells = vec![
            row.project.clone(),
            row.kind.clone(),
            row.name.clone(),
            ready.to_owned(),
            reason.to_owned(),
        ];
        if all_namespaces {
            cells.insert(0, row.namespace.clone());
        }
        table.push(cells);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            table
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let mut previous_group: Option<(String, String)> = None;
    for (index, cells) in table.iter().enumerate() {
        if index > 0
            && let Some(row) = rows.get(index.saturating_sub(1))
        {
            let group = (row.namespace.clone(), row.project.clone());
            if previous_group.as_ref().is_some_and(|g| *g != group) {
                out.push('\n');
            }
            previous_group = Some(group);
        }
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let not_ready: Vec<&&Row> = rows.iter().filter(|r| r.ready().0 != "True").collect();
    if !not_ready.is_empty() {
        out.push_str("\nNot ready:\n");
        for row in not_ready {
            details(&mut out, row);
        }
    }
    out
}

fn details(out: &mut String, row: &Row) {
    let (_, reason) = row.ready();
    let message = row
        .condition("Ready")
        .map(|c| c.message.as_str())
        .unwrap_or_default();
    let _ = write!(out, "  {}/{}", row.kind, row.name);
    if !row.namespace.is_empty() {
        let _ = write!(out, " (namespace {})", row.namespace);
    }
    out.push('\n');
    if reason == "-" {
        out.push_str("    no Ready condition yet: the operator has not reconciled it; check that the operator runs\n");
        return;
    }
    if message.is_empty() {
        let _ = writeln!(out, "    reason: {reason}");
    } else {
        let _ = writeln!(out, "    reason: {reason}: {message}");
    }
    let cause = CAUSE_CONDITIONS.iter().find_map(|t| {
        row.condition(t)
            .filter(|c| c.status == "False" && c.reason != reason)
    });
    let (fix_reason, fix_type) = match cause {
        Some(c) => {
            if c.message.is_empty() {
                let _ = writeln!(out, "    cause:  {}={} {}", c.type_, c.status, c.reason);
            } else {
                let _ = writeln!(
                    out,
                    "    cause:  {}={} {}: {}",
                    c.type_, c.status, c.reason, c.message
                );
            }
            (c.reason.as_str(), c.type_.as_str())
        }
        None => (reason, "Ready"),
    };
    let stalled = row.condition("Stalled").is_some_and(|c| c.status == "True");
    let fix = fix_for(fix_reason, fix_type)
        .unwrap_or("read the message; see the README's Troubleshooting table");
    let _ = writeln!(out, "    fix:    {fix}");
    if stalled {
        out.push_str("    (Stalled: the operator waits for a change of the spec or the world)\n");
    } else if row.stale {
        out.push_str(
            "    (the status describes an older generation: the operator has not caught up)\n",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(kind: &str, name: &str, project: &str, conditions: Value) -> Row {
        Row::from_object(
            kind,
            &json!({
                "metadata": {"name": name, "namespace": "team-a", "generation": 1},
                "spec": {"projectRef": {"name": project}},
                "status": {"observedGeneration": 1, "conditions": conditions},
            }),
        )
    }

    fn ready() -> Value {
        json!([{"type": "Ready", "status": "True", "reason": "Reconciled", "message": ""}])
    }

    /// The example the README shows.
    pub(crate) fn example() -> Vec<Row> {
        vec![
            object(
                "PromptAgent",
                "helper",
                "main",
                json!([
                    {"type": "Ready", "status": "False", "reason": "ConnectionNotReady", "message": "GatewayConnection litellm is not Ready"},
                    {"type": "ConnectionResolved", "status": "False", "reason": "ConnectionNotReady", "message": "GatewayConnection litellm is not Ready"},
                ]),
            ),
            object(
                "GatewayConnection",
                "litellm",
                "main",
                json!([
                    {"type": "Ready", "status": "False", "reason": "GatewayInactive", "message": "the gateway failed 3 probes in a row"},
                    {"type": "GatewayActive", "status": "False", "reason": "Unreachable", "message": "connection refused"},
                ]),
            ),
            object("GatewayConnection", "apim", "main", ready()),
            object("FoundryProject", "main", "", ready()),
            object(
                "FoundryProject",
                "other",
                "",
                json!([
                    {"type": "Ready", "status": "False", "reason": "Unauthorized", "message": "Foundry answered 403 AuthorizationFailed"},
                    {"type": "Stalled", "status": "True", "reason": "Unauthorized", "message": ""},
                ]),
            ),
            object("PromptAgent", "writer", "main", ready()),
        ]
    }

    #[test]
    fn status_output_groups_by_project_and_explains_what_is_not_ready() {
        let out = render(&example(), false);
        let expected = "\
PROJECT  KIND               NAME     READY  REASON
main     FoundryProject     main     True   Reconciled
main     GatewayConnection  apim     True   Reconciled
main     GatewayConnection  litellm  False  GatewayInactive
main     PromptAgent        helper   False  ConnectionNotReady
main     PromptAgent        writer   True   Reconciled

other    FoundryProject     other    False  Unauthorized

Not ready:
  GatewayConnection/litellm (namespace team-a)
    reason: GatewayInactive: the gateway failed 3 probes in a row
    cause:  GatewayActive=False Unreachable: connection refused
    fix:    check spec.target, DNS, firewalls and network policies from the operator's pod and from Foundry's network (private endpoints)
  PromptAgent/helper (namespace team-a)
    reason: ConnectionNotReady: GatewayConnection litellm is not Ready
    fix:    fix the connection (see its reason); the agent follows on its own
  FoundryProject/other (namespace team-a)
    reason: Unauthorized: Foundry answered 403 AuthorizationFailed
    fix:    check the project identity: client id, tenant, secret or federated credential, and its roles on the project
    (Stalled: the operator waits for a change of the spec or the world)
";
        assert_eq!(out, expected);
    }

    #[test]
    fn the_readme_shows_this_output() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&render(&example(), false)),
            "README.md's kubectl foundry section must show the output of status::tests::example"
        );
    }

    #[test]
    fn all_namespaces_adds_a_namespace_column_and_unreconciled_objects_say_so() {
        let row = Row::from_object(
            "GatewayConnection",
            &json!({"metadata": {"name": "new", "namespace": "b", "generation": 1}, "spec": {"projectRef": {"name": "p"}}}),
        );
        assert!(row.stale);
        let out = render(&[row], true);
        assert!(out.starts_with("NAMESPACE  PROJECT  KIND"));
        assert!(out.contains("b          p        GatewayConnection  new   Unknown  -"));
        assert!(out.contains("no Ready condition yet"));
    }

    #[test]
    fn nothing_found_says_so() {
        assert!(render(&[], false).starts_with("No FoundryProjects"));
    }
}
