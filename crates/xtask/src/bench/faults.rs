//! `cargo xtask faults`: the operator converges under injected faults and leaves nothing behind.
//!
//! One run, reproducible from `--seed`: N GatewayConnections and N PromptAgents are applied while
//! the emulator answers about 10 % of Foundry calls with 429 (with `Retry-After`), about 10 % with
//! 500/502/503 and about 3 % by dropping the connection, and delays every call. During `--duration`
//! seconds a seeded schedule also: SIGKILLs the operator at random moments and restarts it (once
//! for longer than the Lease, so the second replica takes over), runs a second replica on the same
//! Lease (leader election on) for the middle of the run and SIGKILLs it once, stops and restarts
//! LiteLLM, rotates the gateway key to a wrong value and back and the custom-header Secret several
//! times, changes some agents' instructions and deletes some agents with their connections, and
//! restarts kube-apiserver and etcd (each down for a few seconds; the watches of every client end
//! and resume, or relist where their resource version is gone).
//!
//! Then the faults are cleared, one replica is left, and the run waits (bounded) until it has
//! converged. It reports, and fails unless each holds:
//! - every remaining object Ready at its generation, every deleted one gone;
//! - no duplicate agent versions (two versions of one agent with the same spec hash: the run
//!   never changes a spec back, so a repeated hash is a duplicate);
//! - no leaked connections (our `managedBy` marker, no GatewayConnection) or agents;
//! - no Foundry call by the operator on an object sooner than the `Retry-After` of a 429 on it
//!   (calls right after an operator process change are counted apart: a new process cannot know
//!   the hint; a 429 whose connection a fault dropped never reached the operator, so it has none);
//! - no secret value (keys, rotated values, client secrets) and no JWT in any operator log;
//! - once converged, a kube-apiserver restart (its watch cache starts empty, so a watch resumed
//!   from an older resource version may be told it is gone and relists) makes no operator write:
//!   counted from the apiserver's audit log over the restart and the seconds after it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::operator::RunningOperator;
use foundry_gateway_testbed::stack::{
    GATEWAY_CLIENT_ID, OPERATOR_CLIENT_ID, PROJECT_IDENTITY_CLIENT_ID,
};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use serde_json::{Value, json};

use super::Check;
use super::audit::AuditLog;
use super::world::{Bed, KEY_SECRET, Kind, agent_name, connection_name, is_ready, unix_ms};
use foundry_gateway_testbed::operator::{OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT};

/// The Secret whose value becomes the `X-Tenant-Token` header (rotated during the run).
const TENANT_SECRET: &str = "tenant-token";
/// `Retry-After` of the injected 429s, in seconds.
const RETRY_AFTER_S: u64 = 2;
/// Latency added to every Foundry call.
const LATENCY_MS: u64 = 20;
/// Latency of the slow tail.
const SLOW_MS: u64 = 1500;
/// How long the operator stays down in the kill that outlasts its Lease (15 s).
const LONG_OUTAGE: Duration = Duration::from_secs(24);
/// How long LiteLLM stays down.
const GATEWAY_OUTAGE: Duration = Duration::from_secs(8);
/// Clock slack of the Retry-After check: the log has millisecond times.
const CLOCK_SLACK_MS: u64 = 20;
/// How the operator's calls start their `User-Agent`.
const OPERATOR_USER_AGENT: &str = "foundry-gateway-operator/";
/// An answer logged this soon before its connection was dropped may never have been read.
const DELIVERY_SLACK_MS: u64 = 100;
/// How often the run asks the replicas who leads.
const LEADER_POLL: Duration = Duration::from_millis(500);
/// The operator's resync during the run.
const RESYNC: Duration = Duration::from_secs(5);
/// How long kube-apiserver or etcd stays down when restarted (inside the operator's Lease renew
/// deadline of 10 s together with the apiserver's start).
const CONTROL_PLANE_OUTAGE: Duration = Duration::from_secs(2);
/// How long a restarted kube-apiserver may take to answer `/readyz`.
const CONTROL_PLANE_READY: Duration = Duration::from_secs(90);
/// A window without operator writes that counts as steady before that restart.
const QUIET_WINDOW: Duration = Duration::from_secs(5);
/// How long the run waits for such a window.
const QUIET_WITHIN: Duration = Duration::from_secs(60);
/// How long writes are watched for after the apiserver restart of the steady check.
const STEADY_WATCH: Duration = Duration::from_secs(20);

/// Flags of `cargo xtask faults`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Seed of the fault draws and of the schedule.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// GatewayConnections (and as many PromptAgents).
    #[arg(long, default_value_t = 20)]
    pub n: usize,
    /// Seconds of faults before the run must converge.
    #[arg(long, default_value_t = 120)]
    pub duration: u64,
    /// Seconds the run may take to converge once the faults stop.
    #[arg(long, default_value_t = 180)]
    pub converge: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Copy the operators' logs and the emulator's request log into this directory.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
}

impl Args {
    /// The short run of CI: 5 + 5 objects, one minute of faults.
    pub fn ci() -> Self {
        Self {
            seed: 42,
            n: 5,
            duration: 60,
            converge: 120,
            json: None,
            artifacts: None,
        }
    }
}

/// One thing the schedule does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    KillA,
    RestartA,
    StartB,
    KillB,
    RestartB,
    StopB,
    StopGateway,
    RestartGateway,
    RestartApiserver,
    RestartEtcd,
    WrongKey,
    RightKey,
    RotateTenant,
    ChangeAgent(usize),
    DeletePair(usize),
}

/// The seeded schedule: `(seconds after the apply, action)`, sorted by time.
fn schedule(seed: u64, n: usize, duration: f64) -> Vec<(f64, Action)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_f00d);
    let d = duration;
    let mut events: Vec<(f64, Action)> = Vec::new();
    let (b_start, b_stop) = (0.15 * d, 0.8 * d);
    events.push((b_start, Action::StartB));
    events.push((b_stop, Action::StopB));
    // One kill of A that outlasts the Lease while B stands by: B must take over (it takes a
    // Lease it has seen unchanged for 15 s, so it must have been up since before the kill).
    let long = (0.25 * d, 0.25 * d + LONG_OUTAGE.as_secs_f64());
    let has_long = long.0 >= b_start + 3.0 && long.1 + 5.0 < b_stop;
    if has_long {
        events.push((long.0, Action::KillA));
        events.push((long.1, Action::RestartA));
    }
    // Short kills of A at random moments, each restarted within three seconds.
    let kills = ((d / 30.0) as usize).max(2);
    let mut placed = 0;
    for _ in 0..kills * 20 {
        if placed == kills {
            break;
        }
        let at = rng.random_range(0.03 * d..0.9 * d);
        let back = at + rng.random_range(0.2..3.0);
        let clashes = (has_long && back >= long.0 - 2.0 && at <= long.1 + 2.0)
            || events.iter().any(|(t, a)| {
                matches!(a, Action::KillA | Action::RestartA) && (t - at).abs() < 4.0
            });
        if !clashes {
            events.push((at, Action::KillA));
            events.push((back, Action::RestartA));
            placed += 1;
        }
    }
    // B is killed once while it runs, not while it is taking over, and is back a second later.
    for _ in 0..40 {
        let at = rng.random_range(b_start + 2.0..b_stop - 3.0);
        if !(has_long && at >= long.0 - 1.0 && at <= long.1 + 3.0) {
            events.push((at, Action::KillB));
            events.push((at + 1.0, Action::RestartB));
            break;
        }
    }
    let gateway = rng.random_range(0.4 * d..0.5 * d);
    events.push((gateway, Action::StopGateway));
    events.push((
        gateway + GATEWAY_OUTAGE.as_secs_f64(),
        Action::RestartGateway,
    ));
    events.push((rng.random_range(0.3 * d..0.4 * d), Action::RestartApiserver));
    events.push((rng.random_range(0.55 * d..0.7 * d), Action::RestartEtcd));
    let wrong = rng.random_range(0.1 * d..0.2 * d);
    events.push((wrong, Action::WrongKey));
    events.push((wrong + rng.random_range(6.0..10.0), Action::RightKey));
    for _ in 0..3 {
        events.push((rng.random_range(0.05 * d..0.85 * d), Action::RotateTenant));
    }
    let some = (n / 5).max(1);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in (1..indices.len()).rev() {
        indices.swap(i, rng.random_range(0..=i));
    }
    for &i in indices.iter().take(some) {
        events.push((rng.random_range(0.1 * d..0.7 * d), Action::DeletePair(i)));
    }
    for &i in indices.iter().skip(some).take(some) {
        events.push((rng.random_range(0.1 * d..0.8 * d), Action::ChangeAgent(i)));
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0));
    events
}

/// The fault rules: the first that fires answers, so each probability is conditional on the
/// rules before it not firing (overall: ~10 % 429, ~10 % 5xx, ~3 % dropped, ~5 % slow).
fn fault_rules(seed: u64) -> Value {
    json!({
        "seed": seed,
        "rules": [
            {"status": 429, "retryAfterSeconds": RETRY_AFTER_S, "probability": 0.10, "latencyMs": LATENCY_MS},
            {"status": 503, "probability": 0.05 / 0.90, "latencyMs": LATENCY_MS},
            {"status": 500, "probability": 0.03 / 0.85, "latencyMs": LATENCY_MS},
            {"status": 502, "probability": 0.02 / 0.82, "latencyMs": LATENCY_MS},
            {"dropConnection": true, "probability": 0.03 / 0.80, "latencyMs": LATENCY_MS},
            {"latencyMs": SLOW_MS, "probability": 0.05 / 0.77},
            {"latencyMs": LATENCY_MS},
        ],
    })
}

/// A Foundry call made on an object sooner than the `Retry-After` of a 429 on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EarlyCall {
    path: String,
    operation: String,
    /// Milliseconds after the 429 was answered.
    after_ms: u64,
    /// An operator process started or ended between the 429 and this call.
    after_process_change: bool,
}

/// Calls sent on the same path after a 429 was answered and before its `Retry-After` ran out.
/// A call's send time is its log time minus its duration. A 429 the client never received
/// does not count: its connection was dropped by a fault before the answer could be read, and
/// with HTTP/2 that drop takes every answer in flight on the connection with it.
fn early_calls(requests: &[Value], retry_after_ms: u64, process_changes: &[u64]) -> Vec<EarlyCall> {
    let drops = drops_by_connection(requests);
    // The run's own reads (the final checks) are not the operator's calls.
    let requests: Vec<&Value> = requests.iter().filter(|r| from_operator(r)).collect();
    let mut throttled: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in &requests {
        if r["status"].as_u64() == Some(429)
            && !lost_with_its_connection(r, &drops)
            && let (Some(path), Some(end)) = (r["path"].as_str(), r["timeUnixMs"].as_u64())
        {
            throttled.entry(path).or_default().push(end);
        }
    }
    let mut out = Vec::new();
    for r in &requests {
        let (Some(path), Some(end)) = (r["path"].as_str(), r["timeUnixMs"].as_u64()) else {
            continue;
        };
        let Some(ends) = throttled.get(path) else {
            continue;
        };
        let sent = end.saturating_sub(r["durationMs"].as_u64().unwrap_or(0));
        let hit = ends
            .iter()
            .filter(|t429| sent > **t429 && sent + CLOCK_SLACK_MS < **t429 + retry_after_ms)
            .max();
        if let Some(t429) = hit {
            out.push(EarlyCall {
                path: path.to_owned(),
                operation: r["operation"].as_str().unwrap_or("?").to_owned(),
                after_ms: sent - t429,
                after_process_change: process_changes.iter().any(|c| *c >= *t429 && *c <= sent),
            });
        }
    }
    out
}

/// Whether the operator sent `r` (by its `User-Agent`).
fn from_operator(r: &Value) -> bool {
    r["userAgent"]
        .as_str()
        .is_some_and(|agent| agent.starts_with(OPERATOR_USER_AGENT))
}

/// When each connection was dropped by a fault (log times), by connection id.
fn drops_by_connection(requests: &[Value]) -> BTreeMap<u64, Vec<u64>> {
    let mut drops: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for r in requests {
        if r["dropped"].as_bool() == Some(true)
            && let (Some(connection), Some(at)) =
                (r["connection"].as_u64(), r["timeUnixMs"].as_u64())
        {
            drops.entry(connection).or_default().push(at);
        }
    }
    drops
}

/// Whether the answer of `r` was lost: its connection was dropped before it was logged, or so
/// soon after that the client cannot have read it.
fn lost_with_its_connection(r: &Value, drops: &BTreeMap<u64, Vec<u64>>) -> bool {
    let (Some(connection), Some(end)) = (r["connection"].as_u64(), r["timeUnixMs"].as_u64()) else {
        return false;
    };
    drops
        .get(&connection)
        .is_some_and(|at| at.iter().any(|d| *d <= end + DELIVERY_SLACK_MS))
}

/// 429 answers lost with a dropped connection (the client saw a connection error instead).
fn lost_429s(requests: &[Value]) -> usize {
    let drops = drops_by_connection(requests);
    requests
        .iter()
        .filter(|r| r["status"].as_u64() == Some(429) && lost_with_its_connection(r, &drops))
        .count()
}

/// Versions of one agent that repeat a spec hash already carried by another of its versions.
fn duplicate_versions(versions: &[Value]) -> usize {
    let mut seen = BTreeSet::new();
    versions
        .iter()
        .filter_map(|v| v["metadata"]["gateway.foundry.dev/spec-hash"].as_str())
        .filter(|hash| !seen.insert(hash.to_owned()))
        .count()
}

/// Secret values found in `text`, by what they are (each value counted once per occurrence).
fn leaks(text: &str, secrets: &[(String, String)]) -> BTreeMap<String, usize> {
    secrets
        .iter()
        .filter(|(_, value)| value.len() >= 8)
        .map(|(what, value)| (what.clone(), text.matches(value.as_str()).count()))
        .filter(|(_, count)| *count > 0)
        .collect()
}

/// Substrings that look like a JWT (`eyJ…` header, two dots).
fn jwt_like(text: &str) -> usize {
    text.match_indices("eyJ")
        .filter(|(i, _)| {
            let rest = &text[*i..];
            let token: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            token.len() > 40 && token.matches('.').count() == 2
        })
        .count()
}

#[derive(Debug, Clone, Default, Serialize)]
struct Injected {
    foundry_calls: u64,
    throttled_429: u64,
    /// 429 answers that never reached the client: a fault dropped their connection.
    throttled_429_lost: u64,
    server_errors_5xx: u64,
    dropped: u64,
    operator_sigkills: u64,
    gateway_restarts: u64,
    /// kube-apiserver and etcd restarts while converging.
    control_plane_restarts: u64,
    key_rotations: u64,
    tenant_rotations: u64,
    agent_changes: u64,
    deleted_pairs: u64,
    two_replicas_s: f64,
    replica_b_led_s: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    seed: u64,
    n: usize,
    duration_s: u64,
    injected: Injected,
    timeline: Vec<String>,
    converge_s: f64,
    ready: usize,
    remaining: usize,
    not_ready: Vec<String>,
    deleted_gone: usize,
    deleted: usize,
    duplicate_versions: usize,
    leaked_connections: Vec<String>,
    leaked_agents: Vec<String>,
    early_calls: Vec<EarlyCall>,
    secret_leaks: BTreeMap<String, usize>,
    jwt_like_in_logs: usize,
    steady: SteadyRestart,
    checks: Vec<Check>,
}

/// What the operator did around a kube-apiserver restart once everything had converged.
#[derive(Debug, Clone, Default, Serialize)]
struct SteadyRestart {
    /// Seconds until the restarted apiserver answered `/readyz`.
    ready_after_s: f64,
    /// The operator's writes (any resource) from the restart to [`STEADY_WATCH`] after it.
    writes: BTreeMap<String, u64>,
    /// Its reads in the same window, by verb and resource (the relists show here).
    reads: BTreeMap<String, u64>,
}

/// Restarts `name` of the test bed; returns how long until the apiserver was ready again.
fn restart_control_plane(bed: &mut Bed, name: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    bed.stack
        .kube
        .as_mut()
        .context("the stack runs no Kubernetes")?
        .restart(name, CONTROL_PLANE_OUTAGE, CONTROL_PLANE_READY)
        .with_context(|| format!("failed to restart {name}"))?;
    Ok(started.elapsed())
}

/// Restarts kube-apiserver with everything converged and collects the operator's requests from
/// the restart until [`STEADY_WATCH`] after the apiserver is back.
fn steady_restart(bed: &mut Bed) -> anyhow::Result<SteadyRestart> {
    let audit = AuditLog::new(&bed.audit_log().context("the test bed keeps no audit log")?);
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    // Steady first: the last process change of the run may still be settling (an Event, a
    // status); the restart is measured from a quiet window of the operator's.
    let quiet_by = Instant::now() + QUIET_WITHIN;
    loop {
        let before = audit.offset();
        thread::sleep(QUIET_WINDOW);
        let wrote = audit
            .requests(&user, before, audit.offset())?
            .iter()
            .any(|r| r.is_write());
        if !wrote || Instant::now() >= quiet_by {
            break;
        }
    }
    let from = audit.offset();
    let took = restart_control_plane(bed, "kube-apiserver")?;
    thread::sleep(STEADY_WATCH);
    let requests = audit.requests(&user, from, audit.offset())?;
    let mut steady = SteadyRestart {
        ready_after_s: (took.as_secs_f64() * 10.0).round() / 10.0,
        ..SteadyRestart::default()
    };
    for request in requests {
        let counts = if request.is_write() {
            &mut steady.writes
        } else {
            &mut steady.reads
        };
        *counts.entry(request.label()).or_default() += 1;
    }
    Ok(steady)
}

/// `cargo xtask faults`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.n == 0 || args.duration < 10 {
        bail!("--n must be at least 1 and --duration at least 10");
    }
    let report = chaos(args)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("Wrote {}", path.display());
    }
    let broken: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.violated())
        .map(|c| format!("{} (measured {})", c.name, c.measured))
        .collect();
    if !broken.is_empty() {
        bail!("fault run checks failed: {}", broken.join("; "));
    }
    Ok(())
}

/// The two replicas and what happened to them.
struct Replicas {
    a: RunningOperator,
    b: Option<RunningOperator>,
    b_since: Option<Instant>,
    b_total: Duration,
    /// Unix ms of every start, stop and kill of an operator process.
    changes: Vec<u64>,
    kills: u64,
    last_leader: Option<&'static str>,
    /// How long B said it led.
    b_led: Duration,
}

impl Replicas {
    fn note(&mut self) {
        self.changes.push(unix_ms());
    }

    /// Which replica says it holds the Lease now.
    fn leader(&mut self) -> Option<&'static str> {
        if self.a.is_running() && self.a.is_leader().unwrap_or(false) {
            return Some("A");
        }
        let b = self.b.as_mut().filter(|_| self.b_since.is_some())?;
        (b.is_running() && b.is_leader().unwrap_or(false)).then_some("B")
    }

    /// Sleeps until `until`, asking every half second who leads and noting each change.
    fn watch_until(&mut self, until: Instant, started: Instant, timeline: &mut Vec<String>) {
        loop {
            let polled = Instant::now();
            let leader = self.leader();
            if leader != self.last_leader {
                let line = format!(
                    "{:>6.1} s  {}",
                    started.elapsed().as_secs_f64(),
                    leader.map_or_else(
                        || "no replica leads".to_owned(),
                        |r| format!("replica {r} leads")
                    )
                );
                eprintln!("  {line}");
                timeline.push(line);
                self.last_leader = leader;
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            thread::sleep((until - now).min(LEADER_POLL));
            if leader == Some("B") {
                self.b_led += polled.elapsed();
            }
        }
    }
}

#[allow(clippy::too_many_lines)]
fn chaos(args: &Args) -> anyhow::Result<Report> {
    let n = args.n;
    let mut bed = Bed::start_with("faults", true)?;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut hex = |len: usize| -> String {
        (0..len)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    };
    let real_key = bed.stack.gateway.master_key.expose().to_owned();
    let wrong_key = format!("sk-wrong-{}", hex(24));
    let mut tenant_values = vec![format!("tenant-{}", hex(24))];
    let lease = "foundry-gateway-faults".to_owned();
    let options = |dir: &str, identity: &str| {
        let mut o = bed.operator_options(dir, RESYNC, vec!["--secret-grace".into(), "30s".into()]);
        o.leader_elect = true;
        o.lease_name = Some(lease.clone());
        o.identity = Some(identity.to_owned());
        o
    };
    let b_options = options("operator-b", "faults-b");
    let mut replicas = Replicas {
        a: bed.start_operator(options("operator-a", "faults-a"))?,
        b: None,
        b_since: None,
        b_total: Duration::ZERO,
        changes: Vec::new(),
        kills: 0,
        last_leader: None,
        b_led: Duration::ZERO,
    };
    replicas.note();
    replicas
        .a
        .wait_until_leader(Duration::from_secs(30))
        .context("replica A did not take the Lease")?;
    bed.wait_project_ready(Duration::from_secs(60))?;
    let tenant_header = json!([{"name": "X-Tenant-Token",
        "valueFrom": {"name": TENANT_SECRET, "key": "token"}}]);
    let probe = json!({"interval": "5s", "timeout": "3s", "failureThreshold": 1});
    bed.rt.block_on(async {
        bed.apply_secret(KEY_SECRET, json!({"key": real_key}))
            .await?;
        bed.apply_secret(TENANT_SECRET, json!({"token": tenant_values[0]}))
            .await
    })?;
    bed.stack.emulator.add_faults(&fault_rules(args.seed))?;
    eprintln!(
        "Injecting faults (seed {}) and applying {n} GatewayConnections and {n} PromptAgents",
        args.seed
    );
    let mut objects: Vec<(Kind, String, Value)> = (0..n)
        .map(|i| {
            (
                Kind::Connection,
                connection_name(i),
                bed.connection_spec(probe.clone(), Some(tenant_header.clone())),
            )
        })
        .collect();
    objects.extend((0..n).map(|i| {
        (
            Kind::Agent,
            agent_name(i),
            Bed::agent_spec(i, &format!("You are fault-run agent {i}.")),
        )
    }));
    let started = Instant::now();
    bed.rt.block_on(bed.apply_all(objects, 16))?;

    let mut injected = Injected::default();
    let mut timeline = Vec::new();
    let mut deleted = BTreeSet::new();
    let mut revisions: BTreeMap<usize, u32> = BTreeMap::new();
    let duration = Duration::from_secs(args.duration);
    for (at, action) in schedule(args.seed, n, duration.as_secs_f64()) {
        let when = Duration::from_secs_f64(at);
        if when >= duration {
            break;
        }
        replicas.watch_until(started + when, started, &mut timeline);
        let what = match &action {
            Action::KillA => {
                if !replicas.a.is_running() {
                    continue;
                }
                replicas.a.kill()?;
                replicas.note();
                replicas.kills += 1;
                "SIGKILL replica A".to_owned()
            }
            Action::RestartA => {
                if replicas.a.is_running() {
                    continue;
                }
                replicas.note();
                replicas.a.restart()?;
                replicas.note();
                "restarted replica A".to_owned()
            }
            Action::StartB => {
                replicas.note();
                replicas.b = Some(bed.start_operator(b_options.clone())?);
                replicas.note();
                replicas.b_since = Some(Instant::now());
                "started replica B (same Lease)".to_owned()
            }
            Action::KillB => {
                let Some(b) = replicas.b.as_mut().filter(|_| replicas.b_since.is_some()) else {
                    continue;
                };
                if !b.is_running() {
                    continue;
                }
                b.kill()?;
                replicas.note();
                replicas.kills += 1;
                "SIGKILL replica B".to_owned()
            }
            Action::RestartB => {
                let Some(b) = replicas.b.as_mut().filter(|_| replicas.b_since.is_some()) else {
                    continue;
                };
                if b.is_running() {
                    continue;
                }
                b.restart()?;
                replicas.note();
                "restarted replica B".to_owned()
            }
            Action::StopB => {
                let Some(mut b) = replicas.b.take() else {
                    continue;
                };
                replicas.note();
                b.stop()?;
                replicas.note();
                if let Some(since) = replicas.b_since.take() {
                    replicas.b_total += since.elapsed();
                }
                // Keep its logs for the secret check.
                replicas.b = Some(b);
                "stopped replica B (SIGTERM)".to_owned()
            }
            Action::StopGateway => {
                bed.stack.gateway.stop().context("failed to stop LiteLLM")?;
                "stopped LiteLLM".to_owned()
            }
            Action::RestartGateway => {
                bed.stack
                    .gateway
                    .restart()
                    .context("failed to restart LiteLLM")?;
                injected.gateway_restarts += 1;
                "restarted LiteLLM".to_owned()
            }
            Action::RestartApiserver | Action::RestartEtcd => {
                let name = if action == Action::RestartApiserver {
                    "kube-apiserver"
                } else {
                    "etcd"
                };
                let took = restart_control_plane(&mut bed, name)?;
                injected.control_plane_restarts += 1;
                format!(
                    "restarted {name} ({CONTROL_PLANE_OUTAGE:?} down, ready again after {took:.1?})"
                )
            }
            Action::WrongKey => {
                bed.rt
                    .block_on(bed.apply_secret(KEY_SECRET, json!({"key": wrong_key})))?;
                injected.key_rotations += 1;
                "rotated the gateway key to a wrong value".to_owned()
            }
            Action::RightKey => {
                bed.rt
                    .block_on(bed.apply_secret(KEY_SECRET, json!({"key": real_key})))?;
                injected.key_rotations += 1;
                "rotated the gateway key back".to_owned()
            }
            Action::RotateTenant => {
                let value = format!("tenant-{}", hex(24));
                bed.rt
                    .block_on(bed.apply_secret(TENANT_SECRET, json!({"token": value})))?;
                tenant_values.push(value);
                injected.tenant_rotations += 1;
                "rotated the tenant-token Secret".to_owned()
            }
            Action::ChangeAgent(i) => {
                if deleted.contains(i) {
                    continue;
                }
                let revision = revisions.entry(*i).or_insert(0);
                *revision += 1;
                let spec = Bed::agent_spec(
                    *i,
                    &format!("You are fault-run agent {i}, revision {revision}."),
                );
                bed.rt
                    .block_on(bed.apply(Kind::Agent, &agent_name(*i), spec))?;
                injected.agent_changes += 1;
                format!("changed the instructions of {}", agent_name(*i))
            }
            Action::DeletePair(i) => {
                bed.rt.block_on(async {
                    bed.delete(Kind::Agent, &agent_name(*i)).await?;
                    bed.delete(Kind::Connection, &connection_name(*i)).await
                })?;
                deleted.insert(*i);
                injected.deleted_pairs += 1;
                format!("deleted {} and {}", agent_name(*i), connection_name(*i))
            }
        };
        let line = format!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
        eprintln!("  {line}");
        timeline.push(line);
    }
    replicas.watch_until(started + duration, started, &mut timeline);

    // Calm: no faults, the gateway up, the right key, one replica.
    bed.stack.emulator.clear_faults()?;
    if !bed.stack.gateway.is_running() {
        bed.stack
            .gateway
            .restart()
            .context("failed to restart LiteLLM")?;
    }
    bed.rt
        .block_on(bed.apply_secret(KEY_SECRET, json!({"key": real_key})))?;
    if let Some(b) = replicas.b.as_mut()
        && b.is_running()
    {
        replicas.changes.push(unix_ms());
        b.stop()?;
        replicas.changes.push(unix_ms());
        if let Some(since) = replicas.b_since.take() {
            replicas.b_total += since.elapsed();
        }
    }
    if !replicas.a.is_running() {
        replicas.a.restart()?;
        replicas.changes.push(unix_ms());
    }
    let calm = format!(
        "{:>6.1} s  faults cleared, LiteLLM up, right key, replica A alone",
        started.elapsed().as_secs_f64()
    );
    eprintln!("  {calm}");
    timeline.push(calm);
    replicas
        .a
        .wait_until_leader(Duration::from_secs(30))
        .context("replica A did not take the Lease back")?;

    let calm_at = Instant::now();
    let deadline = calm_at + Duration::from_secs(args.converge);
    let (ready, remaining, gone, not_ready) = loop {
        let state = convergence(&bed, &deleted)?;
        if (state.0 == state.1 && state.2 == deleted.len()) || Instant::now() >= deadline {
            break state;
        }
        thread::sleep(Duration::from_secs(2));
    };
    let converge_s = calm_at.elapsed().as_secs_f64();
    eprintln!(
        "Converged {ready}/{remaining} (deleted gone {gone}/{}) in {converge_s:.1}s",
        deleted.len()
    );
    let steady = steady_restart(&mut bed)?;
    eprintln!(
        "After a kube-apiserver restart with everything converged (ready again in {} s): writes {:?}, reads {:?}",
        steady.ready_after_s, steady.writes, steady.reads
    );
    let steady_writes: u64 = steady.writes.values().sum();

    // What Foundry holds now.
    let mut duplicates = 0;
    for i in 0..n {
        duplicates += duplicate_versions(&bed.agent_versions(&agent_name(i))?);
    }
    let live_agents: BTreeSet<String> = bed
        .rt
        .block_on(bed.list(Kind::Agent))?
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    let leaked_agents: Vec<String> = bed
        .agents()?
        .iter()
        .filter_map(|a| a["name"].as_str())
        .filter(|name| !live_agents.contains(*name))
        .map(str::to_owned)
        .collect();
    let live: BTreeSet<String> = bed
        .rt
        .block_on(bed.list(Kind::Connection))?
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .collect();
    let marker = format!("foundry-gateway-operator:{}/", bed.namespace);
    let leaked_connections: Vec<String> = bed
        .arm_connections()?
        .iter()
        .filter_map(|c| {
            let owner = c["properties"]["metadata"]["managedBy"].as_str()?;
            let object = owner.strip_prefix(&marker)?;
            (!live.contains(object)).then(|| c["name"].as_str().unwrap_or(object).to_owned())
        })
        .collect();

    let requests = bed.requests_since(0)?;
    for r in &requests {
        injected.foundry_calls += 1;
        match r["status"].as_u64() {
            Some(429) => injected.throttled_429 += 1,
            Some(s) if s >= 500 && r["fault"].is_u64() => injected.server_errors_5xx += 1,
            None => injected.dropped += 1,
            _ => {}
        }
    }
    injected.throttled_429_lost = lost_429s(&requests) as u64;
    injected.operator_sigkills = replicas.kills;
    injected.two_replicas_s = (replicas.b_total.as_secs_f64() * 10.0).round() / 10.0;
    injected.replica_b_led_s = (replicas.b_led.as_secs_f64() * 10.0).round() / 10.0;
    if replicas.b_led.is_zero() {
        eprintln!("warning: replica B never led, so this run did not test a takeover");
    }
    let early = early_calls(&requests, RETRY_AFTER_S * 1000, &replicas.changes);
    // The Retry-After check looks at the operator's calls only; it must find them.
    let operator_calls = requests.iter().filter(|r| from_operator(r)).count();

    let mut logs = replicas.a.log_text();
    if let Some(b) = &replicas.b {
        logs.push_str(&b.log_text());
    }
    let mut secrets: Vec<(String, String)> = vec![
        ("gateway key".to_owned(), real_key.clone()),
        ("wrong gateway key".to_owned(), wrong_key.clone()),
    ];
    secrets.extend(
        tenant_values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("tenant-token value {i}"), v.clone())),
    );
    for id in [
        OPERATOR_CLIENT_ID,
        GATEWAY_CLIENT_ID,
        PROJECT_IDENTITY_CLIENT_ID,
    ] {
        if let Some(secret) = bed.stack.client_secret(id) {
            secrets.push((format!("client secret of {id}"), secret.expose().to_owned()));
        }
    }
    let secret_leaks = leaks(&logs, &secrets);
    let jwts = jwt_like(&logs);

    if let Some(dir) = &args.artifacts {
        let mut list = vec![&replicas.a];
        if let Some(b) = &replicas.b {
            list.push(b);
        }
        super::save_artifacts(&bed, &list, dir)?;
    }
    let _ = replicas.a.stop();

    let early_in_process = early.iter().filter(|e| !e.after_process_change).count();
    let early_after_change = early.len() - early_in_process;
    let leaked_secret_count: usize = secret_leaks.values().sum();
    let checks = vec![
        Check::invariant(
            "objects converged (Ready at generation)",
            "all",
            format!("{ready} / {remaining}"),
            ready == remaining,
        ),
        Check::invariant(
            "deleted objects gone",
            "all",
            format!("{gone} / {}", deleted.len()),
            gone == deleted.len(),
        ),
        Check::invariant(
            "duplicate agent versions (same spec hash)",
            "0",
            duplicates.to_string(),
            duplicates == 0,
        ),
        Check::invariant(
            "leaked connections (managedBy ours, no CR)",
            "0",
            leaked_connections.len().to_string(),
            leaked_connections.is_empty(),
        ),
        Check::invariant(
            "leaked agents (in Foundry, no PromptAgent)",
            "0",
            leaked_agents.len().to_string(),
            leaked_agents.is_empty(),
        ),
        Check::invariant(
            "Foundry calls made by the operator (User-Agent)",
            "> 0",
            operator_calls.to_string(),
            operator_calls > 0,
        ),
        Check::invariant(
            "calls before Retry-After expired",
            "0",
            format!(
                "{early_in_process} (and {early_after_change} right after an operator process change, not counted)"
            ),
            early_in_process == 0,
        ),
        Check::invariant(
            "secret values in operator logs",
            "0",
            leaked_secret_count.to_string(),
            leaked_secret_count == 0,
        ),
        Check::invariant(
            "JWT-looking strings in operator logs",
            "0",
            jwts.to_string(),
            jwts == 0,
        ),
        Check::invariant(
            "operator writes after a kube-apiserver restart, converged (audit log)",
            "0",
            steady_writes.to_string(),
            steady_writes == 0,
        ),
    ];
    Ok(Report {
        seed: args.seed,
        n,
        duration_s: args.duration,
        injected,
        timeline,
        converge_s: (converge_s * 10.0).round() / 10.0,
        ready,
        remaining,
        not_ready,
        deleted_gone: gone,
        deleted: deleted.len(),
        duplicate_versions: duplicates,
        leaked_connections,
        leaked_agents,
        early_calls: early,
        secret_leaks,
        jwt_like_in_logs: jwts,
        steady,
        checks,
    })
}

/// `(Ready, remaining, deleted and gone, not Ready with reasons)`.
fn convergence(
    bed: &Bed,
    deleted: &BTreeSet<usize>,
) -> anyhow::Result<(usize, usize, usize, Vec<String>)> {
    let mut ready = 0;
    let mut remaining = 0;
    let mut present = BTreeSet::new();
    let mut not_ready = Vec::new();
    for kind in [Kind::Project, Kind::Connection, Kind::Agent] {
        for o in bed.rt.block_on(bed.list(kind))? {
            let name = o.metadata.name.clone().unwrap_or_default();
            present.insert(name.clone());
            let deleting = o.metadata.deletion_timestamp.is_some();
            if deleting {
                continue;
            }
            remaining += 1;
            if is_ready(&o) {
                ready += 1;
            } else if not_ready.len() < 20 {
                not_ready.push(format!(
                    "{} {name} ({})",
                    kind.name(),
                    super::world::ready_reason(&o)
                ));
            }
        }
    }
    let gone = deleted
        .iter()
        .filter(|i| !present.contains(&agent_name(**i)) && !present.contains(&connection_name(**i)))
        .count();
    Ok((ready, remaining, gone, not_ready))
}

impl Report {
    fn table(&self) -> String {
        let mut t = super::Table::default();
        t.section(&format!(
            "cargo xtask faults: seed {}, N = {} GatewayConnections + {} PromptAgents, {} s of faults",
            self.seed, self.n, self.n, self.duration_s
        ));
        let i = &self.injected;
        let pct = |x: u64| {
            if i.foundry_calls == 0 {
                0.0
            } else {
                100.0 * x as f64 / i.foundry_calls as f64
            }
        };
        t.row("Foundry calls (whole run)", &i.foundry_calls.to_string());
        t.row(
            "answered 429 (Retry-After 2 s)",
            &format!(
                "{} ({:.1} %), {} of them lost with a dropped connection",
                i.throttled_429,
                pct(i.throttled_429),
                i.throttled_429_lost
            ),
        );
        t.row(
            "answered 500/502/503",
            &format!(
                "{} ({:.1} %)",
                i.server_errors_5xx,
                pct(i.server_errors_5xx)
            ),
        );
        t.row(
            "connections dropped",
            &format!("{} ({:.1} %)", i.dropped, pct(i.dropped)),
        );
        t.row(
            "added latency",
            &format!("{LATENCY_MS} ms on every call, {SLOW_MS} ms on ~5 %"),
        );
        t.row("operator SIGKILLs", &i.operator_sigkills.to_string());
        t.row(
            "two replicas on one Lease (B leading)",
            &format!("{:.1} s ({:.1} s)", i.two_replicas_s, i.replica_b_led_s),
        );
        t.row("LiteLLM stop + restart", &i.gateway_restarts.to_string());
        t.row(
            "kube-apiserver / etcd restarts",
            &format!(
                "{} ({CONTROL_PLANE_OUTAGE:?} down each)",
                i.control_plane_restarts
            ),
        );
        t.row(
            "Secret rotations (key / tenant header)",
            &format!("{} / {}", i.key_rotations, i.tenant_rotations),
        );
        t.row("agent instruction changes", &i.agent_changes.to_string());
        t.row(
            "agent + connection pairs deleted",
            &i.deleted_pairs.to_string(),
        );
        t.section("Timeline");
        for line in &self.timeline {
            t.line(line);
        }
        t.section(&format!(
            "After the faults (converged in {:.1} s)",
            self.converge_s
        ));
        for c in &self.checks {
            t.row(
                &c.name,
                &format!("{}  (expected {}): {}", c.measured, c.expected, c.status),
            );
        }
        t.row(
            "kube-apiserver restart, converged",
            &format!(
                "ready again in {:.1} s; in the {} s after: writes {:?}, reads {:?}",
                self.steady.ready_after_s,
                STEADY_WATCH.as_secs(),
                self.steady.writes,
                self.steady.reads
            ),
        );
        if !self.not_ready.is_empty() {
            t.row("not Ready", &self.not_ready.join(", "));
        }
        if !self.leaked_connections.is_empty() {
            t.row("leaked connections", &self.leaked_connections.join(", "));
        }
        if !self.leaked_agents.is_empty() {
            t.row("leaked agents", &self.leaked_agents.join(", "));
        }
        for e in self.early_calls.iter().take(10) {
            t.row(
                "early call",
                &format!(
                    "{} {} {} ms after a 429{}",
                    e.operation,
                    e.path,
                    e.after_ms,
                    if e.after_process_change {
                        " (after a process change)"
                    } else {
                        ""
                    }
                ),
            );
        }
        if !self.secret_leaks.is_empty() {
            t.row("secrets in logs", &format!("{:?}", self.secret_leaks));
        }
        t.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_reproducible_and_keeps_kills_apart() {
        let a = schedule(42, 20, 120.0);
        assert_eq!(a, schedule(42, 20, 120.0));
        assert_ne!(a, schedule(43, 20, 120.0));
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        let kills = a.iter().filter(|(_, x)| *x == Action::KillA).count();
        let restarts = a.iter().filter(|(_, x)| *x == Action::RestartA).count();
        assert!(kills >= 3 && kills == restarts, "{a:?}");
        assert_eq!(
            a.iter()
                .filter(|(_, x)| matches!(x, Action::DeletePair(_)))
                .count(),
            4
        );
        for restart in [Action::RestartApiserver, Action::RestartEtcd] {
            assert_eq!(a.iter().filter(|(_, x)| *x == restart).count(), 1, "{a:?}");
        }
        let short = schedule(42, 5, 60.0);
        assert!(short.iter().any(|(_, x)| *x == Action::StartB));
        assert!(short.iter().any(|(_, x)| *x == Action::RestartEtcd));
        assert!(short.iter().all(|(t, _)| *t < 60.0), "{short:?}");
    }

    #[test]
    fn a_call_inside_the_retry_after_window_is_early() {
        let r = |path: &str, status: Option<u64>, time: u64, duration: u64| json!({"path": path, "operation": "Op", "status": status, "timeUnixMs": time, "durationMs": duration, "userAgent": "foundry-gateway-operator/0.1.0"});
        let log = vec![
            r("/c/a", Some(429), 1_000, 20),
            // In flight when the 429 came back: not early.
            r("/c/a", Some(200), 1_010, 30),
            // Sent 500 ms after the 429: early.
            r("/c/a", Some(200), 1_520, 20),
            // Sent 2 s after: fine.
            r("/c/a", Some(200), 3_030, 20),
            // Another object: fine.
            r("/c/b", Some(200), 1_100, 20),
            // The run's own read, not the operator's: not counted.
            json!({"path": "/c/a", "operation": "Op", "status": 200, "timeUnixMs": 1_700, "durationMs": 2, "userAgent": "ureq/3.1.2"}),
        ];
        let early = early_calls(&log, 2_000, &[]);
        assert_eq!(early.len(), 1, "{early:?}");
        assert_eq!(early[0].after_ms, 500);
        assert!(!early[0].after_process_change);
        let excused = early_calls(&log, 2_000, &[1_200]);
        assert!(excused[0].after_process_change);
    }

    #[test]
    fn a_429_lost_with_its_dropped_connection_does_not_count() {
        let r = |path: &str, status: Option<u64>, time: u64, connection: u64| json!({"path": path, "operation": "Op", "status": status, "timeUnixMs": time, "durationMs": 20, "connection": connection, "dropped": status.is_none(), "userAgent": "foundry-gateway-operator/0.1.0"});
        let log = vec![
            // Connection 7 is dropped by a fault; the 429 answered on it 5 ms later never
            // reaches the client, which retries on a new connection after its own backoff.
            r("/c/b", None, 1_000, 7),
            r("/c/a", Some(429), 1_005, 7),
            r("/c/a", Some(200), 1_400, 8),
            // A 429 on connection 8, which stays up: the call after it is early.
            r("/c/c", Some(429), 2_000, 8),
            r("/c/c", Some(200), 2_400, 8),
            // A 429 long before its connection was dropped was read: early too.
            r("/c/d", Some(429), 3_000, 9),
            r("/c/x", None, 3_500, 9),
            r("/c/d", Some(200), 3_800, 10),
        ];
        let early = early_calls(&log, 2_000, &[]);
        let paths: Vec<&str> = early.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/c/c", "/c/d"], "{early:?}");
        assert_eq!(lost_429s(&log), 1);
    }

    #[test]
    fn repeated_hashes_are_duplicates() {
        let v = |hash: &str| json!({"metadata": {"gateway.foundry.dev/spec-hash": hash}});
        assert_eq!(duplicate_versions(&[v("a"), v("b")]), 0);
        assert_eq!(duplicate_versions(&[v("a"), v("b"), v("a"), v("a")]), 2);
        assert_eq!(duplicate_versions(&[json!({"metadata": {}})]), 0);
    }

    #[test]
    fn secrets_and_jwts_are_found_in_text() {
        let secrets = vec![("key".to_owned(), "sk-0123456789".to_owned())];
        assert!(leaks("nothing here", &secrets).is_empty());
        assert_eq!(leaks("a sk-0123456789 b sk-0123456789", &secrets)["key"], 2);
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        assert_eq!(jwt_like(&format!("token={jwt} end")), 1);
        assert_eq!(jwt_like("eyJ but not a token"), 0);
    }
}
