//! PromptAgent end to end: the operator (shipped RBAC, its own namespace) against the real
//! apiserver, the Foundry emulator, the LiteLLM gateway, the OAuth2 token server and the official
//! Foundry SDK.
//!
//! Every test names its Foundry objects (connections, agents) after its namespace, because all
//! tests of this binary share one emulator project.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use foundry_gateway_testbed::python::{sdk_dir, sdk_python};
use foundry_gateway_testbed::stack::{GATEWAY_CLIENT_ID, GATEWAY_SCOPE};
use foundry_gateway_tests::harness::kubectl;
use foundry_gateway_tests::world::{
    World, apply, apply_secret, assert_status_contract, condition, delete, get, has_condition,
    stack, wait_for, wait_gone,
};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(60);
const GWC: &str = "GatewayConnection";
const PA: &str = "PromptAgent";
/// Metadata key of the definition hash on every version the operator creates.
const SPEC_HASH_KEY: &str = "gateway.foundry.dev/spec-hash";
/// What LiteLLM's mock answers for `gpt-4o`.
const GPT_4O_REPLY: &str = "Hello from the gateway (gpt-4o)";

// ----- Foundry, as seen through the emulator -------------------------------------------------

/// `GET {project endpoint}{path}` on the data plane with a fresh token: (status, body).
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
    let body = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
    (reply.status, body)
}

/// The agent's versions in Foundry, oldest first (none when the agent does not exist).
fn versions(agent: &str) -> Vec<Value> {
    let (status, body) = data_plane_get(&format!("/agents/{agent}/versions?limit=100&order=asc"));
    if status == 404 {
        return Vec::new();
    }
    assert_eq!(status, 200, "listing the versions of {agent}: {body}");
    assert_ne!(body["has_more"], true, "{agent} has more than 100 versions");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// The HTTP status of `GET /agents/{agent}`.
fn agent_status(agent: &str) -> u16 {
    data_plane_get(&format!("/agents/{agent}")).0
}

/// The newest version (highest number) of a version list.
fn newest(versions: &[Value]) -> Option<&Value> {
    versions.iter().max_by_key(|v| version_number(v))
}

fn version_number(version: &Value) -> u64 {
    version["version"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn spec_hash(version: &Value) -> Option<&str> {
    version["metadata"][SPEC_HASH_KEY].as_str()
}

/// Recorded Foundry requests of one operation on one agent (`/agents/{agent}` or below it).
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

/// The `Agents_CreateVersion` requests that reached the emulator for `agent`.
fn creates(agent: &str) -> Vec<Value> {
    agent_calls("Agents_CreateVersion", agent)
}

fn now_unix_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis(),
    )
    .expect("milliseconds fit")
}

// ----- objects --------------------------------------------------------------------------------

/// A short tag unique to the test's namespace (its random suffix) for Foundry names.
fn tag(w: &World) -> String {
    let suffix = w.ns.name().rsplit('-').next().unwrap_or("x");
    format!("pa{suffix}")
}

fn key_secret() -> Value {
    json!({"key": stack().gateway.master_key.expose()})
}

/// A ModelGateway connection with a static model list and an API key (`gateway-key`/`key`).
fn static_connection(connection: &str, probe: Value) -> Value {
    json!({
        "projectRef": {"name": "local"}, "connectionName": connection, "category": "ModelGateway",
        "target": stack().gateway.openai_target(), "probe": probe,
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                            "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}, {"name": "gpt-4o-mini"}]},
    })
}

fn default_probe() -> Value {
    json!({"interval": "30s", "timeout": "5s", "failureThreshold": 1})
}

/// An agent spec on `connection` (a GatewayConnection object name).
fn agent_spec(agent_name: &str, connection: &str, model: &str, instructions: &str) -> Value {
    json!({
        "projectRef": {"name": "local"}, "agentName": agent_name,
        "model": {"connectionRef": {"name": connection}, "name": model},
        "instructions": instructions,
    })
}

fn with(mut spec: Value, key: &str, value: Value) -> Value {
    spec[key] = value;
    spec
}

fn verify() -> Value {
    json!({"input": "Say hello.", "expect": "Hello from the gateway"})
}

// ----- conditions -----------------------------------------------------------------------------

fn active(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
        && has_condition(o, "GatewayActive", "True", Some("Active"))
}

fn ready(o: &Value) -> bool {
    has_condition(o, "Ready", "True", None)
}

fn message<'a>(o: &'a Value, type_: &str) -> &'a str {
    condition(o, type_)
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
}

/// Waits until the controller has observed the object's current generation. Right after a spec
/// change the status necessarily still describes the previous generation (Ready=True at the old
/// generation, which kstatus reads as InProgress); `world::assert_status_contract` compares the
/// conditions with `metadata.generation` and would flag that instant, so it is only applied once
/// the status caught up.
async fn wait_observed(w: &World, kind: &str, name: &str, timeout: Duration) {
    let started = Instant::now();
    loop {
        let o = get(&w.ns, kind, name).await.expect("exists");
        if o["status"]["observedGeneration"] == o["metadata"]["generation"] {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "{kind} {name}: generation {} not observed within {timeout:?}: {}",
            o["metadata"]["generation"],
            o["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The status contract on an observation whose status describes the current generation.
fn check_contract_when_observed(o: &Value) {
    if o["status"]["observedGeneration"] == o["metadata"]["generation"] {
        assert_status_contract(o);
    }
}

/// Polls (every 25 ms, for a measurement) until the agent is Ready; returns the time it took.
async fn time_to_ready(w: &World, name: &str, since: Instant) -> Duration {
    loop {
        if let Some(o) = get(&w.ns, PA, name).await {
            check_contract_when_observed(&o);
            if ready(&o) {
                return since.elapsed();
            }
        }
        assert!(
            since.elapsed() < READY,
            "PromptAgent {name} not Ready within {READY:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Removes the emulator's fault rules when dropped, so a failed test leaves no slow routes behind
/// for the other tests of the binary.
struct ClearFaultsOnDrop;

impl Drop for ClearFaultsOnDrop {
    fn drop(&mut self) {
        if let Err(error) = stack().emulator.clear_faults() {
            eprintln!("Failed to clear the emulator's faults: {error}");
        }
    }
}

/// Prints the operator's logs (every run) when the test fails: the namespace dump shows what
/// the objects say, this shows what the operator did.
struct LogsOnFailure(PathBuf);

impl LogsOnFailure {
    fn of(w: &World) -> Self {
        Self(w.operator.dir().to_path_buf())
    }
}

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("operator") && n.ends_with(".log"))
            })
            .collect();
        // operator.1.log, operator.2.log, …, then operator.log (the current run).
        logs.sort_by_key(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.trim_start_matches("operator.")
                .trim_end_matches(".log")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!("----- {} (last {} lines) -----", log.display(), tail.len());
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

// ----- 1. every kind of connection ------------------------------------------------------------

/// The key Secret and a static-model ModelGateway connection `gw` (Foundry name `<t>-gw`) on the
/// stack's LiteLLM, waited on until Ready and Active.
async fn ready_static_connection(w: &World, t: &str) {
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        static_connection(&format!("{t}-gw"), default_probe()),
    )
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Ready and Active", active).await;
}

#[tokio::test]
async fn an_agent_on_each_kind_of_connection_is_ready_with_the_gateway_model_and_a_verified_reply()
{
    let w = World::new("pa-kinds", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let s = stack();
    let t = tag(&w);
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply_secret(
        &w.ns,
        "oauth-client",
        json!({"secret": s.client_secret(GATEWAY_CLIENT_ID).expect("client").expose()}),
    )
    .await;
    let static_name = format!("{t}-static");
    let apim_name = format!("{t}-apim");
    let oauth_name = format!("{t}-oauth");
    apply(
        &w.ns,
        GWC,
        "static",
        static_connection(&static_name, default_probe()),
    )
    .await;
    apply(&w.ns, GWC, "apim", json!({
        "projectRef": {"name": "local"}, "connectionName": apim_name, "category": "ApiManagement",
        "target": s.gateway.azure_target(), "inferenceApiVersion": "2024-02-01",
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
    }))
    .await;
    apply(&w.ns, GWC, "oauth", json!({
        "projectRef": {"name": "local"}, "connectionName": oauth_name, "category": "ModelGateway",
        "target": s.gateway.openai_target(),
        "auth": {"oauth2": {"tokenUrl": s.token_server.token_url(), "scopes": [GATEWAY_SCOPE],
                 "clientId": GATEWAY_CLIENT_ID, "clientSecretRef": {"name": "oauth-client", "key": "secret"}}},
        "models": {"static": [{"name": "gpt-4o"}]},
    }))
    .await;
    for object in ["static", "apim", "oauth"] {
        wait_for(&w.ns, GWC, object, READY, "Ready and Active", active).await;
    }

    // The time from apply to Ready, without and then with verification (one at a time, on a
    // connection that is already Active).
    let plain = format!("{t}-plain");
    let applied = Instant::now();
    apply(
        &w.ns,
        PA,
        "plain",
        agent_spec(&plain, "static", "gpt-4o", "Be brief."),
    )
    .await;
    let took = time_to_ready(&w, "plain", applied).await;
    eprintln!("measured: PromptAgent apply -> Ready without verify (first agent) in {took:?}");
    let o = get(&w.ns, PA, "plain").await.expect("exists");
    let warm = format!("{t}-warm");
    let applied = Instant::now();
    apply(
        &w.ns,
        PA,
        "warm",
        agent_spec(&warm, "static", "gpt-4o", "Be brief."),
    )
    .await;
    let took = time_to_ready(&w, "warm", applied).await;
    eprintln!("measured: PromptAgent apply -> Ready without verify in {took:?}");
    assert!(
        condition(&o, "Verified").is_none(),
        "no verify, no Verified condition: {}",
        o["status"]
    );

    let agents = [
        (
            "static",
            format!("{t}-on-static"),
            "static",
            static_name.clone(),
        ),
        ("apim", format!("{t}-on-apim"), "apim", apim_name.clone()),
        (
            "oauth",
            format!("{t}-on-oauth"),
            "oauth",
            oauth_name.clone(),
        ),
    ];
    let (object, agent_name, connection, _) = &agents[0];
    let applied = Instant::now();
    let spec = with(
        agent_spec(agent_name, connection, "gpt-4o", "Be brief."),
        "verify",
        verify(),
    );
    apply(&w.ns, PA, object, spec).await;
    let took = time_to_ready(&w, object, applied).await;
    eprintln!("measured: PromptAgent apply -> Ready with verify in {took:?}");
    for (object, agent_name, connection, _) in &agents[1..] {
        let spec = with(
            agent_spec(agent_name, connection, "gpt-4o", "Be brief."),
            "verify",
            verify(),
        );
        apply(&w.ns, PA, object, spec).await;
    }

    for (object, agent_name, _, connection_name) in &agents {
        let o = wait_for(&w.ns, PA, object, READY, "Ready", ready).await;
        let model = format!("{connection_name}/gpt-4o");
        assert_eq!(
            o["status"]["agent"]["name"],
            agent_name.as_str(),
            "{object}: {}",
            o["status"]
        );
        assert_eq!(
            o["status"]["agent"]["version"], "1",
            "{object}: {}",
            o["status"]
        );
        assert_eq!(
            o["status"]["model"],
            model.as_str(),
            "{object}: {}",
            o["status"]
        );
        assert!(
            has_condition(&o, "ConnectionResolved", "True", None),
            "{object}: {}",
            o["status"]
        );
        assert!(
            has_condition(&o, "ModelResolved", "True", None),
            "{object}: {}",
            o["status"]
        );

        let versions = versions(agent_name);
        assert_eq!(
            versions.len(),
            1,
            "{object}: one version in Foundry: {versions:?}"
        );
        assert_eq!(
            versions[0]["definition"]["model"],
            model.as_str(),
            "{object}: {}",
            versions[0]
        );
        assert_eq!(
            versions[0]["definition"]["kind"], "prompt",
            "{object}: {}",
            versions[0]
        );
        assert_eq!(
            versions[0]["definition"]["instructions"], "Be brief.",
            "{object}"
        );
        assert_eq!(
            spec_hash(&versions[0]),
            o["status"]["specHash"].as_str(),
            "{object}: {}",
            versions[0]
        );
        let sent = creates(agent_name);
        assert_eq!(
            sent.len(),
            1,
            "{object}: one Agents_CreateVersion: {sent:?}"
        );
        assert_eq!(
            sent[0]["requestBody"]["definition"]["model"],
            model.as_str()
        );

        assert!(
            has_condition(&o, "Verified", "True", Some("ReplyMatched")),
            "{object}: {}",
            o["status"]
        );
        let verified = message(&o, "Verified");
        assert!(
            verified.contains(GPT_4O_REPLY),
            "{object}: the Verified message quotes the gateway's reply: {verified}"
        );
        assert!(
            verified.contains(&format!("Agent {agent_name} version 1")),
            "{object}: {verified}"
        );
    }
    // The verification went through the gateway: the emulator asked LiteLLM for each agent.
    let responses = stack()
        .emulator
        .requests("operation=Responses_Create")
        .expect("request log");
    for (object, agent_name, _, _) in &agents {
        let asked = responses.as_array().into_iter().flatten().any(|r| {
            r["status"] == 200
                && (r["requestBody"]["agent_reference"]["name"] == agent_name.as_str()
                    || r["requestBody"]["agent"]["name"] == agent_name.as_str())
        });
        assert!(asked, "{object}: a response was created for {agent_name}");
    }
}

// ----- 2. the official SDK --------------------------------------------------------------------

#[tokio::test]
async fn the_official_sdk_talks_to_the_agent_named_in_its_status_and_gets_the_gateway_reply() {
    let w = World::new("pa-sdk", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let s = stack();
    let t = tag(&w);
    ready_static_connection(&w, &t).await;
    apply(
        &w.ns,
        PA,
        "helper",
        agent_spec(&format!("{t}-helper"), "gw", "gpt-4o", "Be brief."),
    )
    .await;
    let o = wait_for(&w.ns, PA, "helper", READY, "Ready", ready).await;
    let name = o["status"]["agent"]["name"]
        .as_str()
        .expect("status.agent.name")
        .to_owned();
    let version = o["status"]["agent"]["version"]
        .as_str()
        .expect("status.agent.version")
        .to_owned();

    let python = sdk_python().expect("the SDK's Python");
    let token = s.data_plane_token().expect("data-plane token");
    let output = Command::new(python)
        .arg(sdk_dir().join("flow.py"))
        .args(["--endpoint", &s.emulator.project_endpoint])
        .args(["--agent-name", &name])
        .arg("--use-existing-agent")
        .args(["--expect", GPT_4O_REPLY])
        .env("FOUNDRY_TOKEN", token.expose())
        .env("SSL_CERT_FILE", s.ca_file())
        .env("REQUESTS_CA_BUNDLE", s.ca_file())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
    .replace(token.expose(), "<token>");
    eprintln!("{text}");
    assert!(output.status.success(), "the SDK flow failed:\n{text}");
    assert!(text.contains(&format!("REPLY: {GPT_4O_REPLY}")), "{text}");
    assert!(
        text.contains(&format!("SERVED BY: {name} version {version}")),
        "the reply came from the operator's version {version}:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "AGENT: {name} version {version} model {t}-gw/gpt-4o"
        )),
        "{text}"
    );
    // The SDK created nothing and left the operator's agent in place.
    assert_eq!(
        creates(&name).len(),
        1,
        "only the operator created a version"
    );
    assert_eq!(versions(&name).len(), 1);
    let after = get(&w.ns, PA, "helper").await.expect("exists");
    assert!(ready(&after), "{}", after["status"]);
}

// ----- 3. one version per change --------------------------------------------------------------

#[tokio::test]
async fn changing_the_instructions_creates_exactly_one_version_and_quiet_resyncs_create_none() {
    let w = World::new("pa-steady", Duration::from_secs(3)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let name = format!("{t}-steady");
    ready_static_connection(&w, &t).await;
    apply(
        &w.ns,
        PA,
        "steady",
        agent_spec(&name, "gw", "gpt-4o", "Answer in English."),
    )
    .await;
    let first = wait_for(&w.ns, PA, "steady", READY, "Ready", ready).await;
    assert_eq!(first["status"]["agent"]["version"], "1");
    let listed = agent_calls("Agents_ListVersions", &name).len();

    // Four resyncs (every 3 s) with nothing to do.
    tokio::time::sleep(Duration::from_secs(13)).await;
    let idle = get(&w.ns, PA, "steady").await.expect("exists");
    assert_eq!(
        idle["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"],
        "no status write during quiet resyncs: {}",
        idle["status"]
    );
    assert_eq!(creates(&name).len(), 1, "no version during quiet resyncs");
    assert!(
        agent_calls("Agents_ListVersions", &name).len() >= listed + 2,
        "the resyncs did look at Foundry"
    );

    apply(
        &w.ns,
        PA,
        "steady",
        agent_spec(&name, "gw", "gpt-4o", "Answer in French."),
    )
    .await;
    wait_observed(&w, PA, "steady", READY).await;
    let second = wait_for(
        &w.ns,
        PA,
        "steady",
        READY,
        "Ready at the new generation",
        |o| ready(o) && o["metadata"]["generation"] == 2,
    )
    .await;
    assert_eq!(
        second["status"]["agent"]["version"], "2",
        "{}",
        second["status"]
    );
    assert_eq!(second["status"]["observedGeneration"], 2);
    assert_ne!(second["status"]["specHash"], first["status"]["specHash"]);

    tokio::time::sleep(Duration::from_secs(10)).await;
    let sent = creates(&name);
    assert_eq!(
        sent.len(),
        2,
        "exactly one new version for one change: {sent:?}"
    );
    let idle = get(&w.ns, PA, "steady").await.expect("exists");
    assert_eq!(
        idle["metadata"]["resourceVersion"], second["metadata"]["resourceVersion"],
        "no status write after the change settled"
    );
    let versions = versions(&name);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[1]["version"], "2");
    assert_eq!(
        versions[1]["definition"]["instructions"],
        "Answer in French."
    );
    assert_eq!(
        spec_hash(&versions[1]),
        second["status"]["specHash"].as_str()
    );
    assert_eq!(
        spec_hash(&versions[0]),
        first["status"]["specHash"].as_str()
    );
}

// ----- 4. crashes -----------------------------------------------------------------------------

#[tokio::test]
async fn killing_the_operator_at_random_moments_never_duplicates_a_version_and_every_agent_converges()
 {
    const AGENTS: usize = 20;
    const KILLS: usize = 10;
    const SLOW_MS: u64 = 1500;
    let budget = Duration::from_secs(180);
    let started = Instant::now();
    let seed = std::env::var("PROMPT_AGENT_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6_u64);
    eprintln!("chaos seed {seed} (PROMPT_AGENT_CHAOS_SEED replays another)");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut w = World::new("pa-chaos", Duration::from_secs(5)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    ready_static_connection(&w, &t).await;
    // Two slow calls give a kill two windows to land in. A create of this test's agents takes
    // 1.5 s: a kill then cuts a create in flight (the emulator drops a request whose client went
    // away, as a server may). Each agent verifies its new version before the operator writes
    // status, and the verification's response takes 1.5 s: a kill then lands after the version
    // exists in Foundry and before the status says so, the case the spec hash in the version's
    // metadata is for. Responses cannot be told apart by path, so other tests' responses are
    // slowed too while this runs (they only take longer).
    let project = stack().emulator.project().project.clone();
    stack()
        .emulator
        .add_faults(&json!({"rules": [
            {"operation": "Agents_CreateVersion",
             "pathPrefix": format!("/api/projects/{project}/agents/{t}-"), "latencyMs": SLOW_MS},
            {"operation": "Responses_Create", "latencyMs": SLOW_MS},
        ]}))
        .expect("latency faults");
    let faults = ClearFaultsOnDrop;

    let objects: Vec<String> = (0..AGENTS).map(|i| format!("a{i:02}")).collect();
    let agent_name = |i: usize| format!("{t}-{}", objects[i]);
    let instructions = |i: usize, revision: u32| format!("Agent {i}, revision {revision}.");
    let spec = |i: usize, revision: u32| {
        with(
            agent_spec(&agent_name(i), "gw", "gpt-4o", &instructions(i, revision)),
            "verify",
            verify(),
        )
    };
    let mut revisions = vec![0_u32; AGENTS];
    for (i, object) in objects.iter().enumerate() {
        apply(&w.ns, PA, object, spec(i, 0)).await;
    }
    let mut kills_at = Vec::new();
    for _ in 0..KILLS {
        for _ in 0..rng.random_range(0..=3) {
            let i = rng.random_range(0..AGENTS);
            revisions[i] += 1;
            apply(&w.ns, PA, &objects[i], spec(i, revisions[i])).await;
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..3000))).await;
        kills_at.push(now_unix_ms());
        w.operator.kill().expect("SIGKILL");
        if rng.random_bool(0.3) {
            // A change made while the operator is down.
            let i = rng.random_range(0..AGENTS);
            revisions[i] += 1;
            apply(&w.ns, PA, &objects[i], spec(i, revisions[i])).await;
        }
        w.operator.restart().expect("restart");
    }
    let chaos_ended = Instant::now();
    eprintln!(
        "measured: {KILLS} kills and restarts in {:?}; revisions {revisions:?}",
        started.elapsed()
    );

    // Every agent converges: Ready (so verified) at its generation, serving the newest version in
    // Foundry, which carries the spec's hash and its last instructions.
    let mut pending: Vec<usize> = (0..AGENTS).collect();
    let mut last_seen: BTreeMap<usize, String> = BTreeMap::new();
    while !pending.is_empty() && started.elapsed() < budget {
        let mut still = Vec::new();
        for &i in &pending {
            let Some(o) = get(&w.ns, PA, &objects[i]).await else {
                still.push(i);
                continue;
            };
            check_contract_when_observed(&o);
            let versions = versions(&agent_name(i));
            let top = newest(&versions);
            let converged = ready(&o)
                && has_condition(&o, "Verified", "True", None)
                && top.is_some_and(|v| {
                    o["status"]["agent"]["version"] == v["version"]
                        && o["status"]["specHash"].as_str() == spec_hash(v)
                        && v["definition"]["instructions"] == instructions(i, revisions[i]).as_str()
                });
            if !converged {
                let top = top.cloned().unwrap_or_default();
                last_seen.insert(i, format!("status {} newest {top}", o["status"]));
                still.push(i);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let converged_in = chaos_ended.elapsed();
    drop(faults);

    let mut duplicates = Vec::new();
    let mut total_versions = 0;
    for i in 0..AGENTS {
        let versions = versions(&agent_name(i));
        total_versions += versions.len();
        let mut by_hash: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for v in &versions {
            by_hash
                .entry(spec_hash(v).unwrap_or("<none>"))
                .or_default()
                .push(v["version"].as_str().unwrap_or("?"));
        }
        for (hash, numbers) in by_hash.into_iter().filter(|(_, n)| n.len() > 1) {
            duplicates.push(format!(
                "{}: versions {numbers:?} share hash {hash}",
                agent_name(i)
            ));
        }
    }
    // Kills that came after a version was created and before its status could be written: the
    // emulator records a request when it answers, and the status waits for a verification that
    // takes at least SLOW_MS more.
    let answered: Vec<u64> = (0..AGENTS)
        .flat_map(|i| creates(&agent_name(i)))
        .filter(|r| r["status"] == 200)
        .filter_map(|r| r["timeUnixMs"].as_u64())
        .collect();
    let between = kills_at
        .iter()
        .filter(|&&kill| {
            answered
                .iter()
                .any(|&end| end <= kill && kill < end + SLOW_MS)
        })
        .count();
    let changes: u32 = revisions.iter().map(|r| r + 1).sum();
    eprintln!(
        "measured: converged {converged_in:?} after the last restart; {} versions created \
         for {changes} specs ({total_versions} in Foundry); {between} of {KILLS} kills landed \
         between a create and its status write",
        answered.len()
    );
    assert!(
        pending.is_empty(),
        "not converged within {budget:?}: {:#?}",
        pending
            .iter()
            .map(|i| (agent_name(*i), last_seen.get(i)))
            .collect::<Vec<_>>()
    );
    assert!(
        duplicates.is_empty(),
        "duplicate versions after kills: {duplicates:#?}"
    );
    // A spec replaced before the operator saw it never becomes a version; none becomes two.
    assert!(
        total_versions <= changes as usize,
        "more versions ({total_versions}) than distinct specs ({changes})"
    );
    assert!(
        between > 0,
        "no kill landed between a create and its status write; the test tested nothing"
    );
}

// ----- 5. a model the connection does not have ------------------------------------------------

#[tokio::test]
async fn a_model_the_connection_does_not_offer_is_model_not_found_with_the_models_it_has() {
    let w = World::new("pa-model", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let name = format!("{t}-nomodel");
    ready_static_connection(&w, &t).await;
    apply(
        &w.ns,
        PA,
        "nomodel",
        agent_spec(&name, "gw", "gpt-9-turbo", "Be brief."),
    )
    .await;
    let o = wait_for(&w.ns, PA, "nomodel", READY, "ModelResolved=False", |o| {
        has_condition(o, "ModelResolved", "False", Some("ModelNotFound"))
    })
    .await;
    let text = message(&o, "ModelResolved");
    assert!(
        text.contains("gpt-9-turbo"),
        "the message names the model: {text}"
    );
    assert!(
        text.contains("gpt-4o") && text.contains("gpt-4o-mini"),
        "the message lists the models that exist: {text}"
    );
    assert!(
        has_condition(&o, "Ready", "False", Some("ModelNotFound")),
        "{}",
        o["status"]
    );
    assert!(
        o["status"]["agent"].is_null(),
        "no version was made: {}",
        o["status"]
    );
    assert!(creates(&name).is_empty(), "nothing was sent to Foundry");

    // Fixing the model is enough.
    apply(
        &w.ns,
        PA,
        "nomodel",
        agent_spec(&name, "gw", "gpt-4o-mini", "Be brief."),
    )
    .await;
    wait_observed(&w, PA, "nomodel", READY).await;
    let o = wait_for(&w.ns, PA, "nomodel", READY, "Ready", ready).await;
    assert_eq!(o["status"]["model"], format!("{t}-gw/gpt-4o-mini"));
}

// ----- 6. an unsupported tool -----------------------------------------------------------------

/// `kubectl apply --server-side` of one manifest, as a user would.
fn kubectl_apply(manifest: &Value) -> std::process::Output {
    let mut child = kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager=prompt-agent-test",
            "-f",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(manifest.to_string().as_bytes())
            .expect("manifest written");
    }
    child.wait_with_output().expect("kubectl ends")
}

/// Where the PromptAgent CRD lists the tool kinds it admits.
const TOOL_KIND_ENUM: &str = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tools/items/properties/type/enum";

fn patch_prompt_agent_crd(patch: &Value) {
    let output = kubectl()
        .args([
            "patch",
            "crd",
            "promptagents.gateway.foundry.dev",
            "--type=json",
            "-p",
            &patch.to_string(),
        ])
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl patch crd: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The PromptAgent CRD as another version of it might be: any tool kind admitted. Dropping the
/// guard restores the list of supported kinds, even when the test fails.
struct AnyToolKindAdmitted;

impl AnyToolKindAdmitted {
    fn install() -> Self {
        patch_prompt_agent_crd(&json!([{"op": "remove", "path": TOOL_KIND_ENUM}]));
        Self
    }
}

impl Drop for AnyToolKindAdmitted {
    fn drop(&mut self) {
        patch_prompt_agent_crd(&json!([{
            "op": "add",
            "path": TOOL_KIND_ENUM,
            "value": foundry_gateway_api::agent::ToolType::SUPPORTED,
        }]));
    }
}

#[tokio::test]
async fn an_unsupported_tool_kind_is_refused_at_admission_and_one_admitted_by_another_crd_is_stalled_alone()
 {
    let w = World::new("pa-tool", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let refused = format!("{t}-bing");
    ready_static_connection(&w, &t).await;
    let manifest = json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent",
        "metadata": {"name": "bing", "namespace": w.ns.name()},
        "spec": with(agent_spec(&refused, "gw", "gpt-4o", "Search the web."), "tools",
                     json!([{"type": "bingGrounding"}])),
    });
    let output = kubectl_apply(&manifest);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("kubectl apply said: {}", stderr.trim().replace('\n', " "));
    assert!(
        !output.status.success(),
        "kubectl apply accepted an unsupported tool: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        stderr.contains("bingGrounding"),
        "the refusal names the tool kind: {stderr}"
    );
    assert!(
        stderr.contains("spec.tools[0].type"),
        "the refusal names the field: {stderr}"
    );
    assert!(
        get(&w.ns, PA, "bing").await.is_none(),
        "the object was not stored"
    );

    // A supported agent applied next is served, so the operator was watching all along.
    apply(
        &w.ns,
        PA,
        "ok",
        agent_spec(&format!("{t}-ok"), "gw", "gpt-4o", "Be brief."),
    )
    .await;
    wait_for(&w.ns, PA, "ok", READY, "Ready", ready).await;

    // The same object stored under a CRD that admitted the kind (another operator version, a
    // rollback): the operator reads it like any other, says on it alone what to fix, and keeps
    // serving the rest.
    {
        let _loose = AnyToolKindAdmitted::install();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let output = kubectl_apply(&manifest);
            if output.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the loosened CRD never admitted the tool: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let o = wait_for(&w.ns, PA, "bing", READY, "Stalled UnsupportedTool", |o| {
        has_condition(o, "Stalled", "True", Some("UnsupportedTool"))
    })
    .await;
    assert_status_contract(&o);
    let why = message(&o, "Stalled");
    assert!(
        why.contains("spec.tools[0].type") && why.contains("bingGrounding"),
        "the message names the field and the kind: {why}"
    );
    assert!(
        has_condition(&o, "Ready", "False", Some("UnsupportedTool")),
        "Ready=False with the same reason: {o}"
    );
    // Changing the supported agent still works while the bad one is stored.
    apply(
        &w.ns,
        PA,
        "ok",
        agent_spec(&format!("{t}-ok"), "gw", "gpt-4o", "Be briefer."),
    )
    .await;
    wait_observed(&w, PA, "ok", READY).await;
    wait_for(&w.ns, PA, "ok", READY, "Ready", ready).await;
    assert_eq!(creates(&format!("{t}-ok")).len(), 2, "one version per spec");
    assert!(
        creates(&refused).is_empty(),
        "no Agents_CreateVersion for {refused}"
    );
    assert!(
        agent_calls("Agents_ListVersions", &refused).is_empty(),
        "no call at all for {refused}"
    );
    // The schema refuses the kind again (on a new object: an unchanged stored field is let be).
    let mut again = manifest.clone();
    again["metadata"]["name"] = json!("bing-again");
    let deadline = Instant::now() + Duration::from_secs(30);
    while kubectl_apply(&again).status.success() {
        assert!(
            Instant::now() < deadline,
            "the CRD's list of tool kinds was not restored"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ----- 7. the connection's life and the agent's deletion --------------------------------------

#[tokio::test]
async fn an_inactive_connection_makes_its_agents_not_ready_and_they_recover_when_the_key_is_fixed()
{
    let w = World::new("pa-inactive", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let names = [format!("{t}-one"), format!("{t}-two")];
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    let probe = json!({"interval": "5s", "timeout": "3s", "failureThreshold": 1});
    apply(
        &w.ns,
        GWC,
        "gw",
        static_connection(&format!("{t}-gw"), probe),
    )
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Ready and Active", active).await;
    for (object, name) in ["one", "two"].iter().zip(&names) {
        apply(
            &w.ns,
            PA,
            object,
            agent_spec(name, "gw", "gpt-4o", "Be brief."),
        )
        .await;
    }
    for object in ["one", "two"] {
        wait_for(&w.ns, PA, object, READY, "Ready", ready).await;
    }

    apply_secret(&w.ns, "gateway-key", json!({"key": "not-the-key"})).await;
    wait_for(&w.ns, GWC, "gw", Duration::from_secs(30), "Inactive", |o| {
        has_condition(o, "GatewayActive", "False", Some("Unauthorized"))
    })
    .await;
    for object in ["one", "two"] {
        let o = wait_for(
            &w.ns,
            PA,
            object,
            Duration::from_secs(30),
            "not Ready with ConnectionNotReady",
            |o| has_condition(o, "Ready", "False", Some("ConnectionNotReady")),
        )
        .await;
        assert!(
            has_condition(
                &o,
                "ConnectionResolved",
                "False",
                Some("ConnectionNotReady")
            ),
            "{}",
            o["status"]
        );
        assert!(
            message(&o, "Ready").contains("gw"),
            "the message names the connection: {}",
            o["status"]
        );
        assert!(
            !has_condition(&o, "Stalled", "True", None),
            "it heals by itself, no person needed: {}",
            o["status"]
        );
        assert_eq!(
            o["status"]["agent"]["version"], "1",
            "the version in Foundry is still known"
        );
    }

    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    wait_for(
        &w.ns,
        GWC,
        "gw",
        Duration::from_secs(30),
        "Active again",
        active,
    )
    .await;
    for (object, name) in ["one", "two"].iter().zip(&names) {
        let o = wait_for(
            &w.ns,
            PA,
            object,
            Duration::from_secs(30),
            "Ready again",
            ready,
        )
        .await;
        assert!(
            has_condition(&o, "ConnectionResolved", "True", None),
            "{}",
            o["status"]
        );
        assert_eq!(o["status"]["agent"]["version"], "1", "{}", o["status"]);
        assert_eq!(
            creates(name).len(),
            1,
            "the outage created no version for {name}"
        );
    }
}

#[tokio::test]
async fn a_connection_in_use_is_not_deleted_until_its_agents_are_gone() {
    let w = World::new("pa-inuse", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let connection = format!("{t}-gw");
    apply_secret(&w.ns, "gateway-key", key_secret()).await;
    apply(
        &w.ns,
        GWC,
        "gw",
        with(
            static_connection(&connection, default_probe()),
            "deletionPolicy",
            json!("Delete"),
        ),
    )
    .await;
    wait_for(&w.ns, GWC, "gw", READY, "Ready and Active", active).await;
    apply(
        &w.ns,
        PA,
        "user",
        agent_spec(&format!("{t}-user"), "gw", "gpt-4o", "Be brief."),
    )
    .await;
    wait_for(&w.ns, PA, "user", READY, "Ready", ready).await;

    delete(&w.ns, GWC, "gw").await;
    let blocked = wait_for(
        &w.ns,
        GWC,
        "gw",
        Duration::from_secs(30),
        "blocked by its agent",
        |o| {
            o["status"]["usedBy"] == json!(["user"])
                && condition(o, "Ready")
                    .is_some_and(|c| c["status"] == "False" && c["reason"] == "InUse")
        },
    )
    .await;
    assert!(blocked["metadata"]["deletionTimestamp"].is_string());
    assert!(
        message(&blocked, "Ready").contains("user"),
        "the message names the agent: {}",
        blocked["status"]
    );
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        get(&w.ns, GWC, "gw").await.is_some(),
        "the connection waits for its agent"
    );
    assert!(
        connection_deletes(&connection).is_empty(),
        "the Foundry connection was not deleted while in use"
    );

    delete(&w.ns, PA, "user").await;
    wait_gone(&w.ns, PA, "user", Duration::from_secs(30)).await;
    wait_gone(&w.ns, GWC, "gw", Duration::from_secs(30)).await;
    assert_eq!(
        connection_deletes(&connection).len(),
        1,
        "then the Foundry connection was deleted"
    );
}

/// `ProjectConnections_Delete` requests for one connection.
fn connection_deletes(connection: &str) -> Vec<Value> {
    let all = stack()
        .emulator
        .requests("operation=ProjectConnections_Delete")
        .expect("request log");
    all.as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(&format!("/connections/{connection}")))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn deleting_an_agent_removes_it_from_foundry_with_policy_delete_and_keeps_it_with_orphan() {
    let w = World::new("pa-delete", Duration::from_secs(600)).await;
    let _logs = LogsOnFailure::of(&w);
    let t = tag(&w);
    let deleted = format!("{t}-deleted");
    let kept = format!("{t}-kept");
    ready_static_connection(&w, &t).await;
    apply(
        &w.ns,
        PA,
        "deleted",
        with(
            agent_spec(&deleted, "gw", "gpt-4o", "Be brief."),
            "deletionPolicy",
            json!("Delete"),
        ),
    )
    .await;
    apply(
        &w.ns,
        PA,
        "kept",
        with(
            agent_spec(&kept, "gw", "gpt-4o", "Be brief."),
            "deletionPolicy",
            json!("Orphan"),
        ),
    )
    .await;
    for object in ["deleted", "kept"] {
        wait_for(&w.ns, PA, object, READY, "Ready", ready).await;
    }
    assert_eq!(agent_status(&deleted), 200);
    assert_eq!(agent_status(&kept), 200);

    delete(&w.ns, PA, "deleted").await;
    delete(&w.ns, PA, "kept").await;
    wait_gone(&w.ns, PA, "deleted", Duration::from_secs(30)).await;
    wait_gone(&w.ns, PA, "kept", Duration::from_secs(30)).await;
    assert_eq!(
        agent_status(&deleted),
        404,
        "deletionPolicy Delete removed the agent from Foundry"
    );
    assert_eq!(
        agent_status(&kept),
        200,
        "deletionPolicy Orphan kept the agent"
    );
    assert_eq!(versions(&kept).len(), 1, "with its version");
}

/// A restarted operator (a new process, as after a crash, a rollout or a leader change) takes
/// over Ready objects without writing their status (no Ready flap while its first probe runs,
/// no "project does not exist" while its stores fill), and an agent deleted together with its
/// connection then goes first, the connection right after.
#[tokio::test]
async fn after_a_restart_nothing_flaps_and_an_agent_and_its_connection_deleted_together_go() {
    let mut w = World::new("pa-restart", Duration::from_secs(600)).await;
    let t = tag(&w);
    ready_static_connection(&w, &t).await;
    let agent = format!("{t}-restart");
    apply(
        &w.ns,
        PA,
        "agent",
        agent_spec(&agent, "gw", "gpt-4o", "Be brief."),
    )
    .await;
    wait_for(&w.ns, PA, "agent", READY, "Ready", ready).await;
    let version = |o: &Value| o["metadata"]["resourceVersion"].clone();
    let before = (
        version(&get(&w.ns, GWC, "gw").await.unwrap()),
        version(&get(&w.ns, PA, "agent").await.unwrap()),
    );

    w.operator.restart().expect("the operator restarts");
    // Its first pass (stores filled, the first probe run and answered) happens in here.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = (
        version(&get(&w.ns, GWC, "gw").await.unwrap()),
        version(&get(&w.ns, PA, "agent").await.unwrap()),
    );
    assert_eq!(after, before, "the restarted operator wrote no status");

    delete(&w.ns, PA, "agent").await;
    delete(&w.ns, GWC, "gw").await;
    wait_gone(&w.ns, PA, "agent", Duration::from_secs(30)).await;
    wait_gone(&w.ns, GWC, "gw", Duration::from_secs(30)).await;
}
