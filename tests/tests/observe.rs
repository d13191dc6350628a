//! `managementPolicy: Observe` (issue 16): objects that only read Foundry, probe and report.
//!
//! A connection and an agent are left in Foundry by objects deleted with `Orphan` (so Foundry
//! holds exactly what a spec describes, marked by an owner that is gone); objects of other names
//! then observe them. The emulator's request log proves what was written: nothing in Observe,
//! exactly one write each when switched to Full after a hand edit, nothing on quiet resyncs, and
//! nothing deleted when an Observe object is deleted.
//!
//! One test: the counts of writes are per Foundry name, but verification conversations are
//! counted for the whole emulator, which no other test of this binary shares.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_tests::world::{
    World, apply, apply_secret, condition, delete, has_condition, stack, wait_for, wait_gone,
};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(90);
const GONE: Duration = Duration::from_secs(30);
/// The operator's resync: short, so that hand edits are seen and quiet resyncs happen.
const RESYNC: Duration = Duration::from_secs(4);
const GWC: &str = "GatewayConnection";
const PA: &str = "PromptAgent";

// ----- Foundry, as seen through the emulator -------------------------------------------------

/// Recorded requests of one operation whose path ends with `suffix` or continues below it.
fn calls(operation: &str, suffix: &str) -> usize {
    let all = stack()
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("request log");
    let below = format!("{suffix}/");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(suffix) || p.contains(&below))
        })
        .count()
}

/// Every request that writes to Foundry for this connection and agent, by operation.
fn writes(connection: &str, agent: &str) -> Vec<(&'static str, usize)> {
    let connection = format!("/connections/{connection}");
    let agent = format!("/agents/{agent}");
    vec![
        (
            "ProjectConnections_Create",
            calls("ProjectConnections_Create", &connection),
        ),
        (
            "ProjectConnections_Delete",
            calls("ProjectConnections_Delete", &connection),
        ),
        (
            "Agents_CreateVersion",
            calls("Agents_CreateVersion", &agent),
        ),
        ("Agents_Delete", calls("Agents_Delete", &agent)),
        (
            "Agents_DeleteVersion",
            calls("Agents_DeleteVersion", &agent),
        ),
        ("Conversations_Create", calls("Conversations_Create", "")),
    ]
}

fn connection_url(name: &str) -> String {
    format!(
        "{}{}/connections/{name}?api-version=2025-12-01",
        stack().emulator.arm_endpoint,
        EmulatorProject::default_project().arm_id()
    )
}

fn arm_bearer() -> String {
    format!("Bearer {}", stack().arm_token().expect("token").expose())
}

/// The connection as ARM returns it (None on 404).
fn connection(name: &str) -> Option<Value> {
    let reply = stack()
        .http()
        .expect("http client")
        .get(&connection_url(name), &[("Authorization", &arm_bearer())])
        .expect("GET the connection");
    match reply.status {
        404 => None,
        200 => Some(serde_json::from_str(&reply.text).expect("JSON")),
        other => panic!("GET connection {name}: HTTP {other}: {}", reply.text),
    }
}

/// Edits the connection by hand, as a person in the portal would: `deploymentInPath` flipped.
fn edit_connection_by_hand(name: &str) {
    let live = connection(name).expect("the connection exists");
    let mut properties = live["properties"].clone();
    properties["metadata"]["deploymentInPath"] = json!("true");
    properties["credentials"] = json!({"key": stack().gateway.master_key.expose()});
    let reply = stack()
        .http()
        .expect("http client")
        .put_json(
            &connection_url(name),
            &[("Authorization", &arm_bearer())],
            &json!({ "properties": properties }),
        )
        .expect("PUT the connection");
    assert!(reply.is_success(), "PUT {name}: {}", reply.text);
}

fn data_plane(path: &str) -> (String, String) {
    let s = stack();
    let token = s.data_plane_token().expect("data-plane token");
    let separator = if path.contains('?') { '&' } else { '?' };
    (
        format!(
            "{}{path}{separator}api-version=v1",
            s.emulator.project_endpoint
        ),
        format!("Bearer {}", token.expose()),
    )
}

/// The agent's versions, oldest first (none when the agent does not exist).
fn versions(agent: &str) -> Vec<Value> {
    let (url, bearer) = data_plane(&format!("/agents/{agent}/versions?limit=100&order=asc"));
    let reply = stack()
        .http()
        .expect("http client")
        .get(&url, &[("Authorization", bearer.as_str())])
        .expect("GET the versions");
    if reply.status == 404 {
        return Vec::new();
    }
    assert_eq!(reply.status, 200, "listing the versions of {agent}");
    let body: Value = serde_json::from_str(&reply.text).expect("JSON");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// Creates a version by hand (as the SDK does): the newest definition with other instructions,
/// no metadata of the operator.
fn edit_agent_by_hand(agent: &str, instructions: &str) -> String {
    let newest = versions(agent).last().cloned().expect("a version exists");
    let mut definition = newest["definition"].clone();
    definition["instructions"] = json!(instructions);
    let (url, bearer) = data_plane(&format!("/agents/{agent}/versions"));
    let reply = stack()
        .http()
        .expect("http client")
        .post_json(
            &url,
            &[("Authorization", bearer.as_str())],
            &json!({"definition": definition}),
        )
        .expect("POST a version");
    assert!(reply.is_success(), "POST a version: {}", reply.text);
    let created: Value = serde_json::from_str(&reply.text).expect("JSON");
    created["version"].as_str().expect("a version").to_owned()
}

// ----- objects --------------------------------------------------------------------------------

fn tag(w: &World) -> String {
    w.ns.name().rsplit('-').next().unwrap_or("x").to_owned()
}

fn connection_spec(connection: &str, policy: Option<&str>, deletion: &str) -> Value {
    let mut spec = json!({
        "projectRef": {"name": "local"}, "connectionName": connection, "category": "ModelGateway",
        "target": stack().gateway.openai_target(), "deletionPolicy": deletion, "adopt": true,
        "probe": {"interval": "30s", "timeout": "5s", "failureThreshold": 1},
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                            "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    });
    if let Some(policy) = policy {
        spec["managementPolicy"] = json!(policy);
    }
    spec
}

fn agent_spec(agent: &str, connection_ref: &str, policy: Option<&str>, deletion: &str) -> Value {
    let mut spec = json!({
        "projectRef": {"name": "local"}, "agentName": agent,
        "model": {"connectionRef": {"name": connection_ref}, "name": "gpt-4o"},
        "instructions": "Answer in one short sentence.", "deletionPolicy": deletion,
        "verify": {"input": "Say hello.", "expect": "Hello from the gateway"},
    });
    if let Some(policy) = policy {
        spec["managementPolicy"] = json!(policy);
    }
    spec
}

fn ready(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
}

fn message<'a>(o: &'a Value, type_: &str) -> &'a str {
    condition(o, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn observe_writes_nothing_reports_hand_edits_as_drift_and_full_corrects_them_with_one_write_each()
 {
    let w = World::new("observe", RESYNC).await;
    let t = tag(&w);
    let conn = format!("{t}-obs");
    let agent = format!("{t}-obs-agent");
    apply_secret(
        &w.ns,
        "gateway-key",
        json!({"key": stack().gateway.master_key.expose()}),
    )
    .await;

    // Foundry gets a connection and an agent from objects that are then deleted with Orphan.
    apply(&w.ns, GWC, "seed", connection_spec(&conn, None, "Orphan")).await;
    apply(
        &w.ns,
        PA,
        "seed",
        agent_spec(&agent, "seed", None, "Orphan"),
    )
    .await;
    wait_for(&w.ns, GWC, "seed", READY, "Ready", ready).await;
    wait_for(&w.ns, PA, "seed", READY, "Ready", ready).await;
    delete(&w.ns, PA, "seed").await;
    wait_gone(&w.ns, PA, "seed", GONE).await;
    delete(&w.ns, GWC, "seed").await;
    wait_gone(&w.ns, GWC, "seed", GONE).await;
    assert!(connection(&conn).is_some(), "Orphan left the connection");
    let seeded = versions(&agent);
    assert_eq!(seeded.len(), 1, "Orphan left the agent: {seeded:?}");
    let before = writes(&conn, &agent);

    // Observe: Ready, in sync, verification skipped, and not one write.
    apply(
        &w.ns,
        GWC,
        "gw",
        connection_spec(&conn, Some("Observe"), "Delete"),
    )
    .await;
    apply(
        &w.ns,
        PA,
        "agent",
        agent_spec(&agent, "gw", Some("Observe"), "Delete"),
    )
    .await;
    let gw = wait_for(&w.ns, GWC, "gw", READY, "Ready and InSync", |o| {
        ready(o) && has_condition(o, "Drifted", "False", Some("InSync"))
    })
    .await;
    assert!(
        message(&gw, "Drifted").contains("not marked as managed by this object"),
        "{}",
        gw["status"]
    );
    assert_eq!(gw["status"]["gatewayState"], "Active", "{}", gw["status"]);
    let pa = wait_for(&w.ns, PA, "agent", READY, "Ready and InSync", |o| {
        ready(o) && has_condition(o, "Drifted", "False", Some("InSync"))
    })
    .await;
    assert!(
        has_condition(&pa, "Verified", "Unknown", Some("Observing")),
        "{}",
        pa["status"]
    );
    assert_eq!(pa["status"]["agent"]["version"], seeded[0]["version"]);
    tokio::time::sleep(RESYNC * 2).await;
    assert_eq!(writes(&conn, &agent), before, "Observe wrote to Foundry");

    // Hand edits in Foundry: Drifted names what differs, still no write, still Ready.
    edit_connection_by_hand(&conn);
    let edited = edit_agent_by_hand(&agent, "Answer at length.");
    let before = writes(&conn, &agent);
    let gw = wait_for(&w.ns, GWC, "gw", READY, "Drifted", |o| {
        has_condition(o, "Drifted", "True", Some("Drifted"))
    })
    .await;
    assert!(ready(&gw), "drift does not block Ready: {}", gw["status"]);
    assert!(
        message(&gw, "Drifted").contains("differs from the spec in: metadata"),
        "{}",
        gw["status"]
    );
    let pa = wait_for(&w.ns, PA, "agent", READY, "Drifted", |o| {
        has_condition(o, "Drifted", "True", Some("Drifted"))
    })
    .await;
    assert!(ready(&pa), "drift does not block Ready: {}", pa["status"]);
    let text = message(&pa, "Drifted");
    assert!(
        text.contains("instructions")
            && text.contains(&format!(
                "no version with this spec hash (newest: version {edited})"
            )),
        "{text}"
    );
    tokio::time::sleep(RESYNC * 2).await;
    assert_eq!(writes(&conn, &agent), before, "Observe wrote to Foundry");

    // Full: exactly one write each corrects the drift, then Drifted is gone and resyncs are quiet.
    apply(&w.ns, GWC, "gw", connection_spec(&conn, None, "Delete")).await;
    apply(&w.ns, PA, "agent", agent_spec(&agent, "gw", None, "Delete")).await;
    let gw = wait_for(&w.ns, GWC, "gw", READY, "Ready under Full", |o| {
        ready(o) && condition(o, "Drifted").is_none()
    })
    .await;
    let pa = wait_for(&w.ns, PA, "agent", READY, "Ready under Full", |o| {
        ready(o) && condition(o, "Drifted").is_none()
    })
    .await;
    let live = connection(&conn).expect("the connection exists");
    assert_eq!(live["properties"]["metadata"]["deploymentInPath"], "false");
    let newest = versions(&agent).last().cloned().expect("versions");
    assert_eq!(
        newest["definition"]["instructions"],
        "Answer in one short sentence."
    );
    assert_eq!(pa["status"]["agent"]["version"], newest["version"]);
    assert!(
        gw["status"]["credentialsHash"].is_string(),
        "{}",
        gw["status"]
    );
    let after = writes(&conn, &agent);
    let delta = |op: &str| {
        let of = |list: &[(&str, usize)]| list.iter().find(|(o, _)| *o == op).map(|(_, n)| *n);
        of(&after).unwrap_or(0) - of(&before).unwrap_or(0)
    };
    assert_eq!(delta("ProjectConnections_Create"), 1, "{after:?}");
    assert_eq!(delta("Agents_CreateVersion"), 1, "{after:?}");
    assert_eq!(delta("ProjectConnections_Delete"), 0, "{after:?}");
    tokio::time::sleep(RESYNC * 3).await;
    let quiet = writes(&conn, &agent);
    assert_eq!(
        quiet[..5],
        after[..5],
        "a quiet resync under Full wrote to Foundry"
    );

    // Back to Observe (deletionPolicy Delete): deleting the objects leaves both in Foundry.
    apply(
        &w.ns,
        PA,
        "agent",
        agent_spec(&agent, "gw", Some("Observe"), "Delete"),
    )
    .await;
    apply(
        &w.ns,
        GWC,
        "gw",
        connection_spec(&conn, Some("Observe"), "Delete"),
    )
    .await;
    wait_for(&w.ns, PA, "agent", READY, "InSync as its owner", |o| {
        ready(o) && has_condition(o, "Drifted", "False", Some("InSync"))
    })
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "InSync as its owner", |o| {
        ready(o) && has_condition(o, "Drifted", "False", Some("InSync"))
    })
    .await;
    let before = writes(&conn, &agent);
    delete(&w.ns, PA, "agent").await;
    wait_gone(&w.ns, PA, "agent", GONE).await;
    delete(&w.ns, GWC, "gw").await;
    wait_gone(&w.ns, GWC, "gw", GONE).await;
    assert!(
        connection(&conn).is_some(),
        "Observe deleted the connection"
    );
    assert!(!versions(&agent).is_empty(), "Observe deleted the agent");
    assert_eq!(writes(&conn, &agent)[..5], before[..5], "deletion wrote");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observed_object_missing_in_foundry_is_not_found_and_drifted_without_a_write() {
    let w = World::new("observe-missing", RESYNC).await;
    let t = tag(&w);
    let conn = format!("{t}-none");
    let agent = format!("{t}-none-agent");
    apply_secret(
        &w.ns,
        "gateway-key",
        json!({"key": stack().gateway.master_key.expose()}),
    )
    .await;
    apply(
        &w.ns,
        GWC,
        "gw",
        connection_spec(&conn, Some("Observe"), "Delete"),
    )
    .await;
    let gw = wait_for(&w.ns, GWC, "gw", READY, "NotFoundInFoundry", |o| {
        has_condition(o, "Ready", "False", Some("NotFoundInFoundry"))
            && has_condition(o, "Drifted", "True", Some("NotFoundInFoundry"))
    })
    .await;
    assert!(
        message(&gw, "Drifted").contains("does not exist in Foundry"),
        "{}",
        gw["status"]
    );
    assert!(
        condition(&gw, "Reconciling").is_none() && condition(&gw, "Stalled").is_none(),
        "neither Reconciling nor Stalled: {}",
        gw["status"]
    );
    tokio::time::sleep(RESYNC * 2).await;
    let none = writes(&conn, &agent);
    assert_eq!(none[0].1 + none[1].1, 0, "{none:?}");
    assert!(connection(&conn).is_none());
}
