//! Ownership per object (issue 11, item 4): two namespaces, each with its own operator under the
//! shipped RBAC, name the same Foundry connection or agent in the one emulator project they
//! share. The second is refused with `OwnedElsewhere` naming the first (even with `adopt: true`),
//! nothing of the first's is written over or deleted, and only an owner that is really gone can
//! be taken over.
//!
//! Each world's operator may read only its own namespace, so it cannot tell whether an owner in
//! another namespace still exists: it refuses (fail closed). The takeover tests grant the second
//! operator `get` on the first namespace's objects, as the cluster-wide install has.
//!
//! Foundry names carry the random suffix of the test's first namespace: every test of this binary
//! shares one emulator project.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::operator::OPERATOR_SERVICE_ACCOUNT;
use foundry_gateway_tests::world::{
    World, apply, apply_secret, condition, delete, get, has_condition, stack, wait_for, wait_gone,
};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const GONE: Duration = Duration::from_secs(30);
const GWC: &str = "GatewayConnection";
const PA: &str = "PromptAgent";
const AGENT_MANAGED_BY: &str = "gateway.foundry.dev/managed-by";
const AGENT_MANAGED_BY_UID: &str = "gateway.foundry.dev/managed-by-uid";

// ----- Foundry, as seen through the emulator -------------------------------------------------

/// Recorded ARM requests of one operation on one connection.
fn connection_calls(operation: &str, connection: &str) -> Vec<Value> {
    let all = stack()
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("request log");
    let suffix = format!("/connections/{connection}");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(&suffix)))
        .cloned()
        .collect()
}

/// The connection as ARM returns it (None on 404).
fn connection(name: &str) -> Option<Value> {
    let s = stack();
    let bearer = format!("Bearer {}", s.arm_token().expect("token").expose());
    let url = format!(
        "{}{}/connections/{name}?api-version=2025-12-01",
        s.emulator.arm_endpoint,
        EmulatorProject::default_project().arm_id()
    );
    let reply = s
        .http()
        .expect("http client")
        .get(&url, &[("Authorization", bearer.as_str())])
        .expect("GET the connection");
    match reply.status {
        404 => None,
        200 => Some(serde_json::from_str(&reply.text).expect("JSON")),
        other => panic!("GET connection {name}: HTTP {other}: {}", reply.text),
    }
}

/// The `managedBy` and `managedByUid` metadata of a connection in Foundry.
fn connection_owner(name: &str) -> (Value, Value) {
    let live = connection(name).unwrap_or_else(|| panic!("connection {name} exists in Foundry"));
    let metadata = &live["properties"]["metadata"];
    (
        metadata["managedBy"].clone(),
        metadata["managedByUid"].clone(),
    )
}

/// `GET {project endpoint}{path}` on the data plane: (status, body).
fn data_plane_get(path: &str) -> (u16, Value) {
    let s = stack();
    let token = s.data_plane_token().expect("data-plane token");
    let separator = if path.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{path}{separator}api-version=v1",
        s.emulator.project_endpoint
    );
    let bearer = format!("Bearer {}", token.expose());
    let reply = s
        .http()
        .expect("http client")
        .get(&url, &[("Authorization", bearer.as_str())])
        .expect("GET on the data plane");
    (
        reply.status,
        serde_json::from_str(&reply.text).unwrap_or(Value::Null),
    )
}

/// The agent's versions, oldest first (none when the agent does not exist).
fn versions(agent: &str) -> Vec<Value> {
    let (status, body) = data_plane_get(&format!("/agents/{agent}/versions?limit=100&order=asc"));
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "listing the versions of {agent}: {body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// Recorded data-plane requests of one operation on one agent (`/agents/{agent}` or below).
fn agent_calls(operation: &str, agent: &str) -> Vec<Value> {
    let all = stack()
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("request log");
    let exact = format!("/agents/{agent}");
    let below = format!("/agents/{agent}/");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&exact) || p.contains(&below))
        })
        .cloned()
        .collect()
}

// ----- objects --------------------------------------------------------------------------------

/// The random suffix of a world's namespace, for Foundry names unique to the test.
fn tag(w: &World) -> String {
    w.ns.name().rsplit('-').next().unwrap_or("x").to_owned()
}

/// A ModelGateway connection on the stack's LiteLLM with an API key (`gateway-key`/`key`).
fn connection_spec(connection: &str, policy: &str, adopt: bool) -> Value {
    json!({
        "projectRef": {"name": "local"}, "connectionName": connection, "category": "ModelGateway",
        "target": stack().gateway.openai_target(), "deletionPolicy": policy, "adopt": adopt,
        "probe": {"interval": "30s", "timeout": "5s", "failureThreshold": 1},
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                            "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    })
}

async fn key_secret(w: &World) {
    apply_secret(
        &w.ns,
        "gateway-key",
        json!({"key": stack().gateway.master_key.expose()}),
    )
    .await;
}

fn agent_spec(agent_name: &str, instructions: &str, policy: &str) -> Value {
    json!({
        "projectRef": {"name": "local"}, "agentName": agent_name,
        "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
        "instructions": instructions, "deletionPolicy": policy,
    })
}

/// A world's own connection `gw` (Foundry name `<its tag>-gw`), waited on until Ready.
async fn ready_connection(w: &World) {
    key_secret(w).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        connection_spec(&format!("{}-gw", tag(w)), "Delete", false),
    )
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Ready", ready).await;
}

/// Lets the operator of `reader` read (`get`) the GatewayConnections and PromptAgents of
/// `owner`'s namespace, as an operator installed cluster-wide may.
async fn grant_read(reader: &World, owner: &World) {
    let namespace = owner.ns.name();
    let name = format!("read-for-{}", reader.ns.name());
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "rules": [{"apiGroups": ["gateway.foundry.dev"],
                   "resources": ["gatewayconnections", "promptagents"], "verbs": ["get"]}],
    }))
    .expect("a Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [
            {"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": reader.ns.name()},
            // The shared ServiceAccount, when the worlds run the cluster-wide install.
            {"kind": "ServiceAccount", "name": OPERATOR_SERVICE_ACCOUNT, "namespace": "foundry-system"},
        ],
    }))
    .expect("a RoleBinding");
    let client = owner.client().clone();
    Api::<Role>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .expect("the Role is created");
    Api::<RoleBinding>::namespaced(client, namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("the RoleBinding is created");
}

async fn uid(w: &World, kind: &str, name: &str) -> String {
    get(&w.ns, kind, name).await.expect("exists")["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_owned()
}

// ----- conditions -----------------------------------------------------------------------------

fn ready(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
}

fn stalled_with(reason: &'static str) -> impl Fn(&Value) -> bool {
    move |o| {
        has_condition(o, "Stalled", "True", Some(reason))
            && has_condition(o, "Ready", "False", Some(reason))
    }
}

fn message(o: &Value, type_: &str) -> String {
    condition(o, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Prints the tail of each operator's log when the test fails (the namespace dumps show what the
/// objects say, this what the operators did).
struct LogsOnFailure<'a>(Vec<&'a World>);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for w in &self.0 {
            let text = w.operator.log_text();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- operator of {} (last 80 lines) -----", w.ns.name());
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
    }
}

// ----- GatewayConnection ----------------------------------------------------------------------

#[tokio::test]
async fn a_connection_name_managed_in_another_namespace_is_refused_even_with_adopt_and_its_deletion_leaves_the_owners_connection()
 {
    let a = World::new("own-gwc-a", Duration::from_secs(600)).await;
    let b = World::new("own-gwc-b", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure(vec![&a, &b]);
    let shared = format!("own{}-gw", tag(&a));
    key_secret(&a).await;
    key_secret(&b).await;

    apply(&a.ns, GWC, "gw", connection_spec(&shared, "Orphan", false)).await;
    wait_for(&a.ns, GWC, "gw", READY, "Ready", ready).await;
    let owner_uid = uid(&a, GWC, "gw").await;
    let owner_marker = format!("foundry-gateway-operator:{}/gw", a.ns.name());
    assert_eq!(
        connection_owner(&shared),
        (json!(owner_marker), json!(owner_uid)),
        "the connection names its object and uid"
    );

    // The same connection name in another namespace (another tenant of the project).
    apply(&b.ns, GWC, "gw", connection_spec(&shared, "Delete", false)).await;
    let refused = wait_for(
        &b.ns,
        GWC,
        "gw",
        READY,
        "Stalled with OwnedElsewhere",
        stalled_with("OwnedElsewhere"),
    )
    .await;
    let text = message(&refused, "Stalled");
    let owner = format!("GatewayConnection {}/gw (uid {owner_uid})", a.ns.name());
    assert!(
        text.contains(&format!("\"{shared}\"")) && text.contains(&owner),
        "the message names the connection and its owner: {text}"
    );
    assert!(
        text.contains("choose another spec.connectionName"),
        "{text}"
    );
    assert_eq!(message(&refused, "Ready"), text);

    // adopt: true does not take over what a live object owns.
    apply(&b.ns, GWC, "gw", connection_spec(&shared, "Delete", true)).await;
    let still = wait_for(
        &b.ns,
        GWC,
        "gw",
        READY,
        "still Stalled with OwnedElsewhere at generation 2",
        |o| o["metadata"]["generation"] == 2 && stalled_with("OwnedElsewhere")(o),
    )
    .await;
    let text = message(&still, "Stalled");
    assert!(
        text.contains(&owner) && text.contains("spec.adopt never takes over"),
        "{text}"
    );
    assert_eq!(
        connection_calls("ProjectConnections_Create", &shared).len(),
        1,
        "only the owner's PUT reached Foundry"
    );
    assert_eq!(
        connection_owner(&shared),
        (json!(owner_marker), json!(owner_uid)),
        "the connection still names its owner"
    );

    // Deleting the refused object (deletionPolicy Delete) leaves the owner's connection.
    delete(&b.ns, GWC, "gw").await;
    wait_gone(&b.ns, GWC, "gw", GONE).await;
    assert!(
        connection_calls("ProjectConnections_Delete", &shared).is_empty(),
        "no DELETE of another object's connection"
    );
    assert_eq!(
        connection_owner(&shared),
        (json!(owner_marker), json!(owner_uid))
    );
    let owner_object = get(&a.ns, GWC, "gw").await.expect("exists");
    assert!(ready(&owner_object), "{}", owner_object["status"]);
}

#[tokio::test]
async fn after_its_owner_is_deleted_with_orphan_the_connection_needs_adopt_and_is_then_taken_over()
{
    let a = World::new("own-orph-a", Duration::from_secs(600)).await;
    let b = World::new("own-orph-b", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure(vec![&a, &b]);
    grant_read(&b, &a).await;
    let shared = format!("own{}-or", tag(&a));
    key_secret(&a).await;
    key_secret(&b).await;

    apply(&a.ns, GWC, "gw", connection_spec(&shared, "Orphan", false)).await;
    wait_for(&a.ns, GWC, "gw", READY, "Ready", ready).await;
    delete(&a.ns, GWC, "gw").await;
    wait_gone(&a.ns, GWC, "gw", GONE).await;
    let former = format!("foundry-gateway-operator:{}/gw", a.ns.name());
    assert_eq!(
        connection_owner(&shared).0,
        json!(former),
        "deletionPolicy Orphan left the connection with its marker"
    );

    // Its owner is confirmed gone: the usual rule, adopt needed.
    apply(&b.ns, GWC, "gw", connection_spec(&shared, "Delete", false)).await;
    let refused = wait_for(
        &b.ns,
        GWC,
        "gw",
        READY,
        "Stalled with AlreadyExists",
        stalled_with("AlreadyExists"),
    )
    .await;
    let text = message(&refused, "Stalled");
    assert!(
        text.contains(&format!(
            "was managed by GatewayConnection {}/gw, which no longer exists",
            a.ns.name()
        )) && text.contains("spec.adopt: true"),
        "{text}"
    );
    assert_eq!(
        connection_calls("ProjectConnections_Create", &shared).len(),
        1
    );

    apply(&b.ns, GWC, "gw", connection_spec(&shared, "Delete", true)).await;
    wait_for(&b.ns, GWC, "gw", READY, "Ready at generation 2", |o| {
        o["metadata"]["generation"] == 2 && ready(o)
    })
    .await;
    let new_uid = uid(&b, GWC, "gw").await;
    assert_eq!(
        connection_owner(&shared),
        (
            json!(format!("foundry-gateway-operator:{}/gw", b.ns.name())),
            json!(new_uid)
        ),
        "the adopting object recorded itself"
    );
    assert_eq!(
        connection_calls("ProjectConnections_Create", &shared).len(),
        2,
        "one PUT to take it over"
    );
}

// ----- PromptAgent ----------------------------------------------------------------------------

#[tokio::test]
async fn an_agent_name_managed_in_another_namespace_is_refused_without_a_version_and_its_deletion_leaves_the_agent()
 {
    let a = World::new("own-pa-a", Duration::from_secs(600)).await;
    let b = World::new("own-pa-b", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure(vec![&a, &b]);
    let agent = format!("own{}-agent", tag(&a));
    ready_connection(&a).await;
    ready_connection(&b).await;

    apply(&a.ns, PA, "pa", agent_spec(&agent, "Be brief.", "Delete")).await;
    let owned = wait_for(&a.ns, PA, "pa", READY, "Ready", ready).await;
    assert_eq!(owned["status"]["agent"]["version"], "1");
    let owner_uid = uid(&a, PA, "pa").await;
    let first = versions(&agent);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        first[0]["metadata"][AGENT_MANAGED_BY],
        format!("foundry-gateway-operator:{}/pa", a.ns.name())
    );
    assert_eq!(
        first[0]["metadata"][AGENT_MANAGED_BY_UID],
        owner_uid.as_str()
    );

    // The same agent name in another namespace, with another definition.
    apply(
        &b.ns,
        PA,
        "pa",
        agent_spec(&agent, "Answer in French.", "Delete"),
    )
    .await;
    let refused = wait_for(
        &b.ns,
        PA,
        "pa",
        READY,
        "Stalled with OwnedElsewhere",
        stalled_with("OwnedElsewhere"),
    )
    .await;
    let text = message(&refused, "Stalled");
    assert!(
        text.contains(&format!("\"{agent}\""))
            && text.contains(&format!("PromptAgent {}/pa (uid {owner_uid})", a.ns.name()))
            && text.contains("choose another spec.agentName"),
        "the message names the agent and its owner: {text}"
    );
    assert!(
        refused["status"]["agent"].is_null(),
        "the refused object serves nothing: {}",
        refused["status"]
    );
    assert_eq!(
        agent_calls("Agents_CreateVersion", &agent).len(),
        1,
        "no version on top of the owner's"
    );
    assert_eq!(versions(&agent), first);

    // Deleting the refused object (deletionPolicy Delete) leaves the agent and its versions.
    delete(&b.ns, PA, "pa").await;
    wait_gone(&b.ns, PA, "pa", GONE).await;
    assert!(agent_calls("Agents_Delete", &agent).is_empty());
    assert!(agent_calls("Agents_DeleteVersion", &agent).is_empty());
    assert_eq!(versions(&agent), first, "the owner's agent is untouched");
    let owner_object = get(&a.ns, PA, "pa").await.expect("exists");
    assert!(ready(&owner_object), "{}", owner_object["status"]);
}

#[tokio::test]
async fn an_agent_whose_owner_was_deleted_with_orphan_is_taken_over_at_the_next_resync() {
    let a = World::new("own-pa-orph-a", Duration::from_secs(600)).await;
    // A short resync: the refused object looks again by itself.
    let b = World::new("own-pa-orph-b", Duration::from_secs(3)).await;
    let _logs = LogsOnFailure(vec![&a, &b]);
    grant_read(&b, &a).await;
    let agent = format!("own{}-agent", tag(&a));
    ready_connection(&a).await;
    ready_connection(&b).await;

    apply(&a.ns, PA, "pa", agent_spec(&agent, "Be brief.", "Orphan")).await;
    wait_for(&a.ns, PA, "pa", READY, "Ready", ready).await;
    apply(
        &b.ns,
        PA,
        "pa",
        agent_spec(&agent, "Answer in French.", "Delete"),
    )
    .await;
    wait_for(
        &b.ns,
        PA,
        "pa",
        READY,
        "Stalled with OwnedElsewhere",
        stalled_with("OwnedElsewhere"),
    )
    .await;
    // Several resyncs while the owner lives: still refused, still nothing written.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let still = get(&b.ns, PA, "pa").await.expect("exists");
    assert!(
        stalled_with("OwnedElsewhere")(&still),
        "{}",
        still["status"]
    );
    assert_eq!(agent_calls("Agents_CreateVersion", &agent).len(), 1);

    delete(&a.ns, PA, "pa").await;
    wait_gone(&a.ns, PA, "pa", GONE).await;
    let taken = wait_for(
        &b.ns,
        PA,
        "pa",
        READY,
        "Ready once the owner is gone",
        ready,
    )
    .await;
    assert_eq!(
        taken["status"]["agent"]["version"], "2",
        "{}",
        taken["status"]
    );
    let all = versions(&agent);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        all[1]["metadata"][AGENT_MANAGED_BY],
        format!("foundry-gateway-operator:{}/pa", b.ns.name())
    );
    assert_eq!(
        all[1]["metadata"][AGENT_MANAGED_BY_UID],
        uid(&b, PA, "pa").await.as_str()
    );
    assert_eq!(all[1]["definition"]["instructions"], "Answer in French.");
}
