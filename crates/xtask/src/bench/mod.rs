//! `cargo xtask bench`: the performance targets (docs/ARCHITECTURE.md, Targets) measured on the
//! test bed.
//!
//! One run: a temporary stack with Kubernetes (kube-apiserver keeping an audit log), the
//! emulator slowed down by a latency rule on every Foundry route, the chart's finalizer
//! MutatingAdmissionPolicy (unless `--no-finalizer-policy`, or when the apiserver does not serve
//! it), the operator with the shipped RBAC; then N GatewayConnections (static model, API key on
//! LiteLLM: one Secret and one probe call for all with `--credentials shared`, a Secret and a
//! call of their own with `distinct`, see [`Credentials`]) and N PromptAgents (one per
//! connection) server-side applied at once, watched until each is Ready at its generation; then
//! an idle period of `--idle` resync intervals; then the floor (one ARM, one data-plane and one
//! gateway round trip, serially).
//!
//! Besides the watch's and the operator's own figures, it counts from the apiserver's side (the
//! [`audit`] log, the requests of the operator's ServiceAccount) the writes per object while
//! converging (first apply to the idle period: main resource and `status` apart) and while idle,
//! and the reads while idle; and, from LiteLLM's access log, the probes that ran per distinct
//! call per probe interval.
//!
//! It exits non-zero when a zero-count invariant breaks (more than one create per object, a
//! Foundry write, a status patch or any operator write to our objects while idle, objects that
//! never become Ready); the time, memory, write, reconcile and probe targets are reported as met
//! or not met, never failed.
//!
//! `cargo xtask faults` (the [`faults`] module) shares the world of [`world`].

mod audit;
mod baseline;
mod curve;
pub mod faults;
mod procfs;
mod restart;
mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use foundry_gateway_testbed::operator::{
    OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, RunningOperator, operator_binary,
};
use futures::StreamExt as _;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::{Value, json};

use self::audit::{AuditLog, Writes};
use self::world::{
    Bed, KEY_SECRET, Kind, agent_name, by_operation, connection_name, is_ready, is_write, max_seq,
    request_object,
};

/// The size the time and memory targets are set at (docs/ARCHITECTURE.md, Targets).
const TARGET_N: usize = 1000;
/// Target: all Ready within this long at [`TARGET_N`].
const TARGET_READY: Duration = Duration::from_secs(30);
/// Target: operator memory under this at [`TARGET_N`].
const TARGET_RSS_MIB: f64 = 64.0;
/// The large size: 5,000 connections and 5,000 agents.
const LARGE_N: usize = 5000;
/// Target: all Ready within this long at [`LARGE_N`].
const LARGE_READY: Duration = Duration::from_secs(120);
/// Target: operator memory under this at [`LARGE_N`].
const LARGE_RSS_MIB: f64 = 96.0;
/// An agent Ready later than this after its connection missed the connection's change.
const LAG: Duration = Duration::from_secs(5);
/// The operator's `--concurrency` default (objects reconciled at once per controller).
const DEFAULT_CONCURRENCY: u16 = 16;
/// Applies in flight at once (what `kubectl apply` of many files or Argo CD's sync does is
/// slower; this keeps the client off the critical path).
const APPLY_PARALLEL: usize = 32;
/// Pause between all-Ready and the idle period, so the last writes of convergence land first.
const SETTLE: Duration = Duration::from_secs(2);
/// Round trips per leg of the floor (after one warm-up), the median is reported.
const FLOOR_SAMPLES: usize = 5;
/// The gateway's access-log line of a chat completion (the probe of a static-model connection).
const CHAT_LOG_LINE: &str = "\"POST /v1/chat/completions";
/// Target: apiserver writes by the operator per object while converging, on average.
const TARGET_WRITES_PER_OBJECT: f64 = 1.5;
/// Target: reconciles per object while converging, on average.
const TARGET_RECONCILES_PER_OBJECT: f64 = 2.5;
/// The custom header that makes each connection's probe a call of its own with
/// `--credentials distinct` (LiteLLM ignores it).
const CALLER_HEADER: &str = "X-Bench-Caller";

/// How the connections authenticate to the gateway (`--credentials`).
///
/// The operator runs one probe for every connection that makes the same call: same gateway,
/// settings, request and credential *value* (`ProbeRequest::identity` hashes the API key and
/// the custom headers, not the Secret's name). So distinct Secrets holding the same key are
/// still one call, and rightly share a probe. The test bed's LiteLLM accepts one key only (its
/// master key), so `distinct` gives each connection its own Secret with that key *and* a custom
/// header [`CALLER_HEADER`] naming the connection: each connection then makes a call of its
/// own, as connections with keys of their own (one per tenant) do, and costs the operator one
/// Secret of its own to read and digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Credentials {
    /// One Secret, one key, the same request for every connection: one probe call for all.
    Shared,
    /// A Secret per connection and a request of its own: one probe call per connection.
    Distinct,
}

impl Credentials {
    fn name(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::Distinct => "distinct",
        }
    }
}

/// Flags of `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// GatewayConnections (and as many PromptAgents).
    #[arg(long, default_value_t = 100)]
    pub n: usize,
    /// Latency the emulator adds to every Foundry call, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub latency_ms: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Length of the idle period, in resync intervals.
    #[arg(long, default_value_t = 3)]
    pub idle: u32,
    /// The operator's `--resync`, in seconds.
    #[arg(long, default_value_t = 10)]
    pub resync: u64,
    /// Every connection's `probe.interval`, in seconds.
    #[arg(long, default_value_t = 10)]
    pub probe_interval: u64,
    /// The operator's `--concurrency` (default: the operator's own default).
    #[arg(long)]
    pub concurrency: Option<u16>,
    /// Seconds all objects may take to become Ready before the run fails.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Build the operator and the emulator with `--release` first and measure those.
    #[arg(long)]
    pub release: bool,
    /// Copy the operator's log and the emulator's request log into this directory.
    #[arg(long)]
    pub artifacts: Option<PathBuf>,
    /// Do not install the chart's finalizer MutatingAdmissionPolicy
    /// (`config/admission/finalizer.yaml`): the operator then adds its finalizer itself.
    #[arg(long)]
    pub no_finalizer_policy: bool,
    /// Whether the connections share one credential (one probe call for all) or each has its
    /// own (one probe call each).
    #[arg(long, value_enum, default_value_t = Credentials::Shared)]
    pub credentials: Credentials,
    /// Once idle, stop the operator and start a new one: Foundry and apiserver requests of the
    /// new process and how long until it has reconciled every object once.
    #[arg(long)]
    pub restart: bool,
    /// Run once per N in this list (e.g. `100,1000,5000`) and print the cost curve: time, CPU-s
    /// by process, writes, reconciles and RSS per object, against the smallest N. `--n` is
    /// ignored.
    #[arg(long, value_delimiter = ',')]
    pub curve: Vec<usize>,
}

impl Args {
    /// The short run of CI: 10 + 10 objects, two idle intervals.
    pub fn ci() -> Self {
        Self {
            n: 10,
            latency_ms: 50,
            json: None,
            idle: 2,
            resync: 10,
            probe_interval: 10,
            concurrency: None,
            timeout: 180,
            release: false,
            artifacts: None,
            no_finalizer_policy: false,
            credentials: Credentials::Shared,
            restart: true,
            curve: Vec::new(),
        }
    }
}

/// `cargo xtask bench`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    if args.release {
        return rerun_with_release_binaries();
    }
    if args.n == 0 || args.idle == 0 || args.resync == 0 || args.probe_interval == 0 {
        bail!("--n, --idle, --resync and --probe-interval must be at least 1");
    }
    if !args.curve.is_empty() {
        return curve::run(args);
    }
    let report = measure(args)?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("Wrote {}", path.display());
    }
    check_invariants(&report.invariants)
}

/// Fails when an invariant is violated, naming each.
fn check_invariants(invariants: &[Check]) -> anyhow::Result<()> {
    let broken: Vec<&Check> = invariants.iter().filter(|c| c.violated()).collect();
    if !broken.is_empty() {
        let list: Vec<String> = broken
            .iter()
            .map(|c| format!("{} (measured {})", c.name, c.measured))
            .collect();
        bail!("bench invariants violated: {}", list.join("; "));
    }
    Ok(())
}

/// Builds the release binaries, then runs this same command again (without `--release`) with
/// `FOUNDRY_OPERATOR_BIN` and `FOUNDRY_EMULATOR_BIN` naming them.
fn rerun_with_release_binaries() -> anyhow::Result<()> {
    let root = foundry_gateway_testbed::paths::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    crate::ci::step("build the release operator and emulator", {
        let mut build = Command::new(cargo);
        build.current_dir(&root).args([
            "build",
            "--release",
            "-p",
            "foundry-gateway-operator",
            "-p",
            "foundry-gateway-emulator",
            "--bins",
        ]);
        build
    })?;
    let release = root.join("target").join("release");
    let exe = std::env::current_exe().context("failed to find the running xtask")?;
    let status = Command::new(exe)
        .args(std::env::args_os().skip(1).filter(|a| a != "--release"))
        .env(
            foundry_gateway_testbed::operator::ENV_OPERATOR_BIN,
            release.join("foundry-gateway-operator"),
        )
        .env(
            foundry_gateway_testbed::emulator::ENV_EMULATOR_BIN,
            release.join("foundry-emulator"),
        )
        .status()
        .context("failed to run the bench with the release binaries")?;
    if !status.success() {
        bail!("the bench with the release binaries failed ({status})");
    }
    Ok(())
}

// ----- what the watchers see ------------------------------------------------------------------

/// What the watchers saw of one object.
#[derive(Debug, Default)]
struct ObjectSeen {
    /// When it was first Ready at its generation.
    first_ready: Option<Instant>,
    /// When each add or change arrived.
    events: Vec<Instant>,
}

#[derive(Debug, Default)]
struct Seen {
    objects: HashMap<(Kind, String), ObjectSeen>,
    synced: usize,
}

type SharedSeen = Arc<Mutex<Seen>>;

fn lock(seen: &SharedSeen) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Records every change of `kind` until aborted.
async fn watch(api: Api<DynamicObject>, kind: Kind, seen: SharedSeen) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let now = Instant::now();
        match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => {
                let ready = is_ready(&object);
                let name = object.metadata.name.clone().unwrap_or_default();
                let mut seen = lock(&seen);
                let entry = seen.objects.entry((kind, name)).or_default();
                entry.events.push(now);
                if ready && entry.first_ready.is_none() {
                    entry.first_ready = Some(now);
                }
            }
            Ok(Event::InitDone) => lock(&seen).synced += 1,
            Ok(Event::Init | Event::Delete(_)) => {}
            Err(err) => eprintln!("warning: the {} watch failed: {err}", kind.name()),
        }
    }
}

// ----- the report -----------------------------------------------------------------------------

/// p50, p95 and max of a set of durations, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
struct Percentiles {
    count: usize,
    p50_s: f64,
    p95_s: f64,
    max_s: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            // Nearest rank.
            let i = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len().max(1)) - 1;
            values.get(i).copied().unwrap_or_default()
        };
        Self {
            count: values.len(),
            p50_s: rank(0.50),
            p95_s: rank(0.95),
            max_s: values.last().copied().unwrap_or_default(),
        }
    }
}

/// A checked rule: an invariant (fails the run) or a target (reported).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) expected: String,
    pub(crate) measured: String,
    /// `ok` or `VIOLATED` (invariants); `met`, `not met` or `n/a` (targets).
    pub(crate) status: &'static str,
}

impl Check {
    /// An invariant: `ok` or `VIOLATED`.
    pub(crate) fn invariant(name: &str, expected: &str, measured: String, ok: bool) -> Self {
        Self {
            name: name.to_owned(),
            expected: expected.to_owned(),
            measured,
            status: if ok { "ok" } else { "VIOLATED" },
        }
    }

    /// A target: `met` or `not met`, or `n/a` when the run cannot tell.
    fn target(name: &str, expected: &str, measured: String, met: Option<bool>) -> Self {
        Self {
            name: name.to_owned(),
            expected: expected.to_owned(),
            measured,
            status: match met {
                Some(true) => "met",
                Some(false) => "not met",
                None => "n/a",
            },
        }
    }

    pub(crate) fn violated(&self) -> bool {
        self.status == "VIOLATED"
    }
}

#[derive(Debug, Clone, Default, Serialize)]
struct Floor {
    arm_ms: f64,
    data_plane_ms: f64,
    probe_ms: f64,
    total_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Convergence {
    /// First apply sent → last object Ready.
    wall_s: f64,
    /// First apply sent → last apply answered.
    apply_s: f64,
    connections: Percentiles,
    agents: Percentiles,
    all: Percentiles,
    /// Foundry calls by operation from the first apply to all-Ready (emulator request log).
    foundry_calls: BTreeMap<String, u64>,
    /// `ProjectConnections_Create` per connection over the whole run: min and max.
    connection_creates_min: u64,
    connection_creates_max: u64,
    /// `Agents_CreateVersion` per agent over the whole run: min and max.
    agent_versions_min: u64,
    agent_versions_max: u64,
    /// Objects that did not get exactly one create, with their count.
    not_one_create: Vec<String>,
    /// Reconciles by kind (operator metrics).
    reconciles: BTreeMap<String, f64>,
    /// Mean reconcile duration by kind, seconds (operator metrics).
    mean_reconcile_s: BTreeMap<String, f64>,
    /// Probes run and their mean latency (operator metrics).
    probes: f64,
    mean_probe_s: f64,
    /// PromptAgent Ready − its GatewayConnection Ready: how long an agent waited once its
    /// connection was usable.
    agent_after_connection: Percentiles,
    /// Agents Ready more than [`LAG`] after their connection (a missed trigger: they waited for
    /// a requeue or a resync).
    agents_lagging: usize,
    /// Adds and changes the watch saw per object until all-Ready (the apply included): the
    /// apiserver writes each object took.
    writes_per_object_mean: f64,
    writes_per_object_max: usize,
}

/// Where the convergence time went: each figure is the time a pool of `concurrency` workers
/// needs for that work if nothing else limits it.
#[derive(Debug, Clone, Default, Serialize)]
struct Profile {
    concurrency: u16,
    /// ARM calls × emulator latency / concurrency (GatewayConnection controller).
    connection_foundry_latency_s: f64,
    /// Data-plane calls × emulator latency / concurrency (PromptAgent controller).
    agent_foundry_latency_s: f64,
    /// Probes × mean probe latency / concurrency.
    probe_s: f64,
    /// Reconciles × mean reconcile duration / concurrency, by kind.
    controller_busy_s: BTreeMap<String, f64>,
    /// CPU seconds of every process of the run / (cores × wall time).
    cpu_saturation: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Idle {
    seconds: f64,
    intervals: u32,
    /// Foundry calls by operation during the idle period.
    foundry_calls: BTreeMap<String, u64>,
    /// Foundry writes during the idle period (must be 0).
    foundry_writes: u64,
    /// Reads per object per resync interval, by operation.
    reads_per_object_per_interval: BTreeMap<String, f64>,
    /// Objects whose resourceVersion changed (must be 0).
    objects_changed: usize,
    /// Watch events (adds or changes) seen while idle (must be 0).
    watch_events: usize,
    /// Reconciles per object per resync interval, by kind (operator metrics).
    reconciles_per_object_per_interval: BTreeMap<String, f64>,
    /// Probes per connection per probe interval, from the operator's
    /// `foundry_gateway_probe_duration_seconds_count`.
    probes_per_connection_per_interval: f64,
    /// Chat completions per connection per probe interval, from LiteLLM's access log.
    gateway_completions_per_connection_per_interval: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
struct Resources {
    operator_peak_rss_mib: f64,
    operator_steady_rss_mib: f64,
    operator_rss_after_convergence_mib: f64,
    operator_cpu_convergence_s: f64,
    operator_cpu_idle_s: f64,
    /// CPU seconds of every process of the run during convergence.
    cpu_convergence_s: BTreeMap<String, f64>,
    /// CPU seconds of every process of the run while idle.
    cpu_idle_s: BTreeMap<String, f64>,
    /// Our objects as JSON (what the operator's caches hold), and the managedFields part.
    objects_json_mib: f64,
    managed_fields_json_mib: f64,
}

/// What the apiserver saw the operator send (its audit log), beside the operator's own count of
/// reconciles: a reconcile is not a request, the apiserver cannot see it.
#[derive(Debug, Clone, Default, Serialize)]
struct Apiserver {
    /// The operator's user (its ServiceAccount).
    user: String,
    /// The finalizer MutatingAdmissionPolicy: installed, off or not served.
    finalizer_policy: String,
    /// Writes from the first apply to the start of the idle period (settling included).
    converging: Writes,
    /// Writes while idle.
    idle: Writes,
    /// Reads (`get`, `list`, `watch` started) while idle, by verb and resource.
    idle_reads: BTreeMap<String, u64>,
    /// Reconciles per object by kind from the first apply to the start of the idle period
    /// (operator metrics), and their mean over connections and agents.
    reconciles_per_object: BTreeMap<String, f64>,
    reconciles_per_object_mean: f64,
}

/// How many probes reached the gateway, against how many distinct calls.
///
/// The operator's `foundry_gateway_probe_duration_seconds_count` counts probe *results* taken
/// by a connection, a result shared with other connections once per connection; the probes
/// that ran are the chat completions LiteLLM served (its access log, the gateway's side).
#[derive(Debug, Clone, Serialize)]
struct ProbeSharing {
    credentials: Credentials,
    /// Distinct (gateway, credential, request) among the connections.
    distinct_calls: usize,
    /// From the first apply to the start of the idle period: probe results (operator metric)
    /// and chat completions LiteLLM served (probes run).
    converging_results: f64,
    converging_completions: u64,
    /// While idle: probe results (operator metric) and chat completions LiteLLM served.
    idle_results: f64,
    idle_completions: u64,
    /// Chat completions while idle per distinct call per probe interval.
    per_distinct_call_per_interval: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    n: usize,
    latency_ms: u64,
    resync_s: u64,
    probe_interval_s: u64,
    concurrency: String,
    operator_binary: String,
    emulator_binary: String,
    cores: usize,
    convergence: Convergence,
    floor: Floor,
    profile: Profile,
    idle: Idle,
    resources: Resources,
    apiserver: Apiserver,
    probes: ProbeSharing,
    /// Creating the objects with no operator (the apiserver's own cost).
    baseline: baseline::Baseline,
    /// The operator restarted once idle (`--restart`).
    restart: Option<restart::Restart>,
    invariants: Vec<Check>,
    targets: Vec<Check>,
}

// ----- the run --------------------------------------------------------------------------------

/// The processes whose CPU the bench reports, by name.
fn processes(bed: &Bed, operator: &RunningOperator) -> Vec<(String, u32)> {
    let mut list = stack_processes(bed);
    if let Some(pid) = operator.pid() {
        list.insert(1, ("operator".to_owned(), pid));
    }
    list
}

/// The processes of the stack and the bench's own, by name.
fn stack_processes(bed: &Bed) -> Vec<(String, u32)> {
    let mut list = vec![("bench client (xtask)".to_owned(), std::process::id())];
    if let Some(p) = bed.stack.emulator.process() {
        list.push(("foundry-emulator".to_owned(), p.pid()));
    }
    if let Some(p) = bed.stack.gateway.process() {
        list.push(("litellm".to_owned(), p.pid()));
    }
    if let Some(p) = bed.stack.token_server.process() {
        list.push(("token-server".to_owned(), p.pid()));
    }
    if let Some(kube) = &bed.stack.kube {
        for p in kube.processes() {
            list.push((p.name().to_owned(), p.pid()));
        }
    }
    list
}

fn cpu_of(list: &[(String, u32)]) -> BTreeMap<String, f64> {
    list.iter()
        .filter_map(|(name, pid)| procfs::sample(*pid).map(|s| (name.clone(), s.cpu_seconds)))
        .collect()
}

fn cpu_delta(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                round2(v - before.get(name).copied().unwrap_or(0.0)),
            )
        })
        .collect()
}

/// The operator's metrics as `series → value` (histogram buckets left out).
fn metrics(operator: &RunningOperator) -> BTreeMap<String, f64> {
    let text = operator.metrics().unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket{"))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn metric(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

fn by_kind(m: &BTreeMap<String, f64>, base: &str) -> BTreeMap<String, f64> {
    [Kind::Project, Kind::Connection, Kind::Agent]
        .into_iter()
        .map(|k| {
            (
                k.name().to_owned(),
                metric(m, &format!("{base}{{kind=\"{}\"}}", k.name())),
            )
        })
        .collect()
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn mib(kib: u64) -> f64 {
    round2(kib as f64 / 1024.0)
}

fn measure(args: &Args) -> anyhow::Result<Report> {
    let n = args.n;
    let resync = Duration::from_secs(args.resync);
    let bed = Bed::start_with("bench", true)?;
    let audit_log = AuditLog::new(&bed.audit_log().context("the test bed keeps no audit log")?);
    let probe = json!({"interval": format!("{}s", args.probe_interval), "timeout": "5s"});
    let mut objects: Vec<(Kind, String, Value)> = (0..n)
        .map(|i| {
            let spec = match args.credentials {
                Credentials::Shared => bed.connection_spec(probe.clone(), None),
                Credentials::Distinct => bed.connection_spec_keyed(
                    probe.clone(),
                    Some(json!([{"name": CALLER_HEADER, "value": connection_name(i)}])),
                    &key_secret(i),
                ),
            };
            (Kind::Connection, connection_name(i), spec)
        })
        .collect();
    objects.extend((0..n).map(|i| {
        (
            Kind::Agent,
            agent_name(i),
            Bed::agent_spec(i, &format!("You are bench agent {i}. Answer briefly.")),
        )
    }));
    // Before the finalizer policy: the baseline's objects go at once when deleted.
    let baseline = baseline::measure(&bed, &objects, &stack_processes(&bed))?;
    let operator_user =
        format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    let finalizer_policy = if args.no_finalizer_policy {
        "off (--no-finalizer-policy)".to_owned()
    } else if let Some(version) = bed.mutating_admission_policy_version() {
        bed.install_finalizer_policy(version)?;
        format!("installed (admissionregistration.k8s.io/{version})")
    } else {
        "not installed: the apiserver serves no MutatingAdmissionPolicy".to_owned()
    };
    eprintln!("Finalizer policy: {finalizer_policy}");
    if args.latency_ms > 0 {
        // A rule without a status only adds latency, on every Foundry route.
        bed.stack
            .emulator
            .add_faults(&json!({"rules": [{"latencyMs": args.latency_ms}]}))?;
    }
    let mut extra = Vec::new();
    if let Some(c) = args.concurrency {
        extra.extend(["--concurrency".to_owned(), c.to_string()]);
    }
    let mut options = bed.operator_options("operator", resync, extra);
    let binary = operator_binary()?;
    options.binary = Some(binary.clone());
    let emulator_binary = bed
        .stack
        .emulator
        .process()
        .and_then(|p| std::fs::read_link(format!("/proc/{}/exe", p.pid())).ok())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut restart_options = options.clone();
    restart_options.dir = bed.stack.state_dir().join("operator-restarted");
    let mut operator = bed.start_operator(options)?;
    let operator_pid = operator.pid().context("the operator has no pid")?;
    bed.wait_project_ready(Duration::from_secs(60))?;
    bed.rt
        .block_on(bed.apply_secret(KEY_SECRET, bed.gateway_key()))?;
    if args.credentials == Credentials::Distinct {
        bed.rt
            .block_on(
                futures::stream::iter(0..n)
                    .map(|i| {
                        let bed = &bed;
                        async move { bed.apply_secret(&key_secret(i), bed.gateway_key()).await }
                    })
                    .buffer_unordered(APPLY_PARALLEL)
                    .collect::<Vec<_>>(),
            )
            .into_iter()
            .collect::<anyhow::Result<Vec<()>>>()?;
    }

    let seen: SharedSeen = Arc::default();
    let watchers: Vec<_> = [Kind::Connection, Kind::Agent]
        .into_iter()
        .map(|kind| bed.rt.spawn(watch(bed.api(kind), kind, Arc::clone(&seen))))
        .collect();
    wait_until(Duration::from_secs(30), "the watches to start", || {
        lock(&seen).synced >= 2
    })?;

    let list = processes(&bed, &operator);
    let seq0 = bed.last_request_seq(0)?;
    let cpu0 = cpu_of(&list);
    let m0 = metrics(&operator);
    let gateway_log = bed.gateway_log();
    let completions0 = world::count_lines(&gateway_log, CHAT_LOG_LINE);
    let audit0 = audit_log.offset();
    eprintln!("Applying {n} GatewayConnections and {n} PromptAgents");
    let t0 = Instant::now();
    let sent = bed.rt.block_on(bed.apply_all(objects, APPLY_PARALLEL))?;
    let apply_s = t0.elapsed().as_secs_f64();
    let total = 2 * n;
    let ready_count = || {
        lock(&seen)
            .objects
            .values()
            .filter(|o| o.first_ready.is_some())
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut last_note = Instant::now();
    while ready_count() < total {
        if Instant::now() >= deadline {
            let missing = not_ready(&bed, &seen);
            bail!(
                "only {} of {total} objects were Ready within {}s; not Ready: {}",
                ready_count(),
                args.timeout,
                missing.join(", ")
            );
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "  {} of {total} Ready after {:.0?}",
                ready_count(),
                t0.elapsed()
            );
            last_note = Instant::now();
        }
        thread::sleep(Duration::from_millis(100));
    }
    let (ready_times, last_ready) = {
        let seen = lock(&seen);
        let mut times: BTreeMap<Kind, Vec<f64>> = BTreeMap::new();
        let mut last = t0;
        for ((kind, name), sent_at) in &sent {
            if let Some(ready) = seen
                .objects
                .get(&(*kind, name.clone()))
                .and_then(|o| o.first_ready)
            {
                times
                    .entry(*kind)
                    .or_default()
                    .push(ready.saturating_duration_since(*sent_at).as_secs_f64());
                last = last.max(ready);
            }
        }
        (times, last)
    };
    let wall_s = last_ready.duration_since(t0).as_secs_f64();
    let lags: Vec<f64> = {
        let seen = lock(&seen);
        let ready =
            |kind: Kind, name: String| seen.objects.get(&(kind, name)).and_then(|o| o.first_ready);
        (0..n)
            .filter_map(|i| {
                let agent = ready(Kind::Agent, agent_name(i))?;
                let connection = ready(Kind::Connection, connection_name(i))?;
                Some(agent.saturating_duration_since(connection).as_secs_f64())
            })
            .collect()
    };
    let lagging = lags.iter().filter(|l| **l > LAG.as_secs_f64()).count();
    let writes: Vec<usize> = lock(&seen)
        .objects
        .values()
        .map(|o| {
            o.events
                .iter()
                .filter(|t| **t >= t0 && **t <= last_ready)
                .count()
        })
        .collect();
    let writes_mean = writes.iter().sum::<usize>() as f64 / writes.len().max(1) as f64;
    let writes_max = writes.iter().copied().max().unwrap_or(0);
    eprintln!("All {total} Ready in {wall_s:.1}s");
    let converge_requests = bed.requests_since(seq0)?;
    let seq1 = max_seq(&converge_requests).max(seq0);
    let cpu1 = cpu_of(&list);
    let m1 = metrics(&operator);
    let after_convergence = procfs::sample(operator_pid).unwrap_or_default();

    thread::sleep(SETTLE);
    let seq2 = bed.last_request_seq(seq1)?;
    let rv_before = resource_versions(&bed)?;
    let m2 = metrics(&operator);
    let cpu2 = cpu_of(&list);
    let completions2 = world::count_lines(&gateway_log, CHAT_LOG_LINE);
    let idle_len = resync * args.idle;
    eprintln!(
        "Idle for {idle_len:?} ({} resync intervals of {resync:?})",
        args.idle
    );
    let audit1 = audit_log.offset();
    let idle_start = Instant::now();
    thread::sleep(idle_len);
    let idle_end = Instant::now();
    let audit2 = audit_log.offset();
    let idle_requests = bed.requests_since(seq2)?;
    let rv_after = resource_versions(&bed)?;
    let m3 = metrics(&operator);
    let cpu3 = cpu_of(&list);
    let completions3 = world::count_lines(&gateway_log, CHAT_LOG_LINE);
    let steady = procfs::sample(operator_pid).unwrap_or_default();
    let idle_events = lock(&seen)
        .objects
        .values()
        .map(|o| {
            o.events
                .iter()
                .filter(|t| **t >= idle_start && **t < idle_end)
                .count()
        })
        .sum::<usize>();
    let all_requests: Vec<&Value> = converge_requests.iter().chain(&idle_requests).collect();
    // Creates between all-Ready and the idle period count too: one per object over the run.
    let settle_requests = bed
        .requests_since(seq1)?
        .into_iter()
        .filter(|r| r["seq"].as_u64().is_some_and(|s| s <= seq2))
        .collect::<Vec<_>>();
    let restarted = if args.restart {
        Some(restart::measure(
            &bed,
            &mut operator,
            restart_options,
            &audit_log,
            &operator_user,
            n,
            Duration::from_secs(args.timeout),
        )?)
    } else {
        None
    };
    let floor = measure_floor(&bed)?;
    let objects: BTreeSet<(String, String)> = (0..n)
        .flat_map(|i| {
            [
                (Kind::Connection.resource().plural, connection_name(i)),
                (Kind::Agent.resource().plural, agent_name(i)),
            ]
        })
        .collect();
    let converging_requests = audit_log.requests(&operator_user, audit0, audit1)?;
    let idle_audit = audit_log.requests(&operator_user, audit1, audit2)?;
    let reconciles_per_object: BTreeMap<String, f64> = {
        let before = by_kind(&m0, "foundry_gateway_reconciles_total");
        by_kind(&m2, "foundry_gateway_reconciles_total")
            .into_iter()
            .filter(|(k, _)| k != Kind::Project.name())
            .map(|(k, v)| {
                let delta = v - before.get(&k).copied().unwrap_or(0.0);
                (k, round2(delta / n as f64))
            })
            .collect()
    };
    let apiserver = Apiserver {
        finalizer_policy,
        converging: Writes::count(&converging_requests, &bed.namespace, &objects),
        idle: Writes::count(&idle_audit, &bed.namespace, &objects),
        idle_reads: audit::reads(&idle_audit),
        reconciles_per_object_mean: round2(
            reconciles_per_object.values().sum::<f64>() / reconciles_per_object.len().max(1) as f64,
        ),
        reconciles_per_object,
        user: operator_user,
    };

    for watcher in &watchers {
        watcher.abort();
    }
    if let Err(err) = operator.stop() {
        eprintln!("warning: the operator did not stop cleanly: {err}");
    }
    let (restart, mut restarted) = restarted.map_or((None, None), |(r, o)| (Some(r), Some(o)));
    if let Some(restarted) = &mut restarted
        && let Err(err) = restarted.stop()
    {
        eprintln!("warning: the restarted operator did not stop cleanly: {err}");
    }
    if let Some(dir) = &args.artifacts {
        let mut operators = vec![&operator];
        operators.extend(restarted.as_ref());
        save_artifacts(&bed, &operators, dir)?;
    }

    let creates = |operation: &str, names: &[String]| {
        let mut per: BTreeMap<String, u64> = names.iter().map(|n| (n.clone(), 0)).collect();
        for r in all_requests.iter().copied().chain(&settle_requests) {
            if r["operation"] == operation
                && let Some(object) = request_object(r)
                && let Some(count) = per.get_mut(&object)
            {
                *count += 1;
            }
        }
        let min = per.values().copied().min().unwrap_or(0);
        let max = per.values().copied().max().unwrap_or(0);
        let off: Vec<String> = per
            .iter()
            .filter(|(_, c)| **c != 1)
            .map(|(name, c)| format!("{name} ({c})"))
            .collect();
        (min, max, off)
    };
    let connection_names: Vec<String> = (0..n).map(connection_name).collect();
    let agent_names: Vec<String> = (0..n).map(agent_name).collect();
    let (cc_min, cc_max, cc_off) = creates("ProjectConnections_Create", &connection_names);
    let (av_min, av_max, av_off) = creates("Agents_CreateVersion", &agent_names);
    let mut not_one_create = cc_off;
    not_one_create.extend(av_off);

    let converge_calls = by_operation(
        converge_requests
            .iter()
            .filter(|r| r["seq"].as_u64().is_some_and(|s| s <= seq1)),
    );
    let idle_calls = by_operation(&idle_requests);
    let idle_writes = idle_requests.iter().filter(|r| is_write(r)).count() as u64;
    let intervals = f64::from(args.idle);
    let reads_per_object = idle_requests
        .iter()
        .filter(|r| !is_write(r))
        .fold(BTreeMap::<String, u64>::new(), |mut acc, r| {
            *acc.entry(r["operation"].as_str().unwrap_or("?").to_owned())
                .or_insert(0) += 1;
            acc
        })
        .into_iter()
        .map(|(op, count)| {
            // Calls about one object are per object; lists of the project are per project.
            let per_object = idle_requests
                .iter()
                .any(|r| r["operation"] == op.as_str() && request_object(r).is_some());
            let (label, per) = if per_object {
                (op, n as f64)
            } else {
                (format!("{op} (per project)"), 1.0)
            };
            (label, round3(count as f64 / per / intervals))
        })
        .collect();
    let changed = rv_before
        .versions
        .iter()
        .filter(|(key, rv)| rv_after.versions.get(*key) != Some(rv))
        .count();
    let idle_seconds = idle_end.duration_since(idle_start).as_secs_f64();
    let probe_intervals = idle_seconds / args.probe_interval as f64;
    let probes_idle = metric(&m3, "foundry_gateway_probe_duration_seconds_count")
        - metric(&m2, "foundry_gateway_probe_duration_seconds_count");
    let reconciles_idle: BTreeMap<String, f64> = {
        let before = by_kind(&m2, "foundry_gateway_reconciles_total");
        by_kind(&m3, "foundry_gateway_reconciles_total")
            .into_iter()
            .map(|(k, v)| {
                let per = if k == Kind::Project.name() {
                    1.0
                } else {
                    n as f64
                };
                let delta = v - before.get(&k).copied().unwrap_or(0.0);
                (k, round3(delta / per / intervals))
            })
            .collect()
    };
    let reconciles_converge: BTreeMap<String, f64> = {
        let before = by_kind(&m0, "foundry_gateway_reconciles_total");
        by_kind(&m1, "foundry_gateway_reconciles_total")
            .into_iter()
            .map(|(k, v)| (k.clone(), v - before.get(&k).copied().unwrap_or(0.0)))
            .collect()
    };
    let mean_reconcile: BTreeMap<String, f64> = {
        let sums0 = by_kind(&m0, "foundry_gateway_reconcile_duration_seconds_sum");
        let counts0 = by_kind(&m0, "foundry_gateway_reconcile_duration_seconds_count");
        let sums1 = by_kind(&m1, "foundry_gateway_reconcile_duration_seconds_sum");
        let counts1 = by_kind(&m1, "foundry_gateway_reconcile_duration_seconds_count");
        sums1
            .iter()
            .map(|(k, s)| {
                let count =
                    counts1.get(k).copied().unwrap_or(0.0) - counts0.get(k).copied().unwrap_or(0.0);
                let sum = s - sums0.get(k).copied().unwrap_or(0.0);
                let mean = if count > 0.0 { sum / count } else { 0.0 };
                (k.clone(), round3(mean))
            })
            .collect()
    };
    let probes_converge = metric(&m1, "foundry_gateway_probe_duration_seconds_count")
        - metric(&m0, "foundry_gateway_probe_duration_seconds_count");
    let distinct_calls = match args.credentials {
        Credentials::Shared => 1,
        Credentials::Distinct => n,
    };
    let probes = ProbeSharing {
        credentials: args.credentials,
        distinct_calls,
        converging_results: metric(&m2, "foundry_gateway_probe_duration_seconds_count")
            - metric(&m0, "foundry_gateway_probe_duration_seconds_count"),
        converging_completions: completions2.saturating_sub(completions0),
        idle_results: probes_idle,
        idle_completions: completions3.saturating_sub(completions2),
        per_distinct_call_per_interval: round3(
            completions3.saturating_sub(completions2) as f64
                / distinct_calls as f64
                / probe_intervals,
        ),
    };
    let probe_sum = metric(&m1, "foundry_gateway_probe_duration_seconds_sum")
        - metric(&m0, "foundry_gateway_probe_duration_seconds_sum");

    let connections = Percentiles::of(
        ready_times
            .get(&Kind::Connection)
            .cloned()
            .unwrap_or_default(),
    );
    let agents = Percentiles::of(ready_times.get(&Kind::Agent).cloned().unwrap_or_default());
    let all = Percentiles::of(ready_times.values().flatten().copied().collect());
    let peak = mib(steady.hwm_kib);
    let steady_rss = mib(steady.rss_kib);
    let convergence = Convergence {
        wall_s: round2(wall_s),
        apply_s: round2(apply_s),
        connections,
        agents,
        all,
        foundry_calls: converge_calls,
        connection_creates_min: cc_min,
        connection_creates_max: cc_max,
        agent_versions_min: av_min,
        agent_versions_max: av_max,
        not_one_create,
        reconciles: reconciles_converge,
        mean_reconcile_s: mean_reconcile,
        probes: probes_converge,
        mean_probe_s: if probes_converge > 0.0 {
            round3(probe_sum / probes_converge)
        } else {
            0.0
        },
        agent_after_connection: Percentiles::of(lags),
        agents_lagging: lagging,
        writes_per_object_mean: round2(writes_mean),
        writes_per_object_max: writes_max,
    };
    let concurrency = args.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    let workers = f64::from(concurrency.max(1));
    let calls_of = |prefix: &str| {
        convergence
            .foundry_calls
            .iter()
            .filter(|(op, _)| op.starts_with(prefix))
            .map(|(_, c)| *c)
            .sum::<u64>() as f64
    };
    let latency_s = args.latency_ms as f64 / 1000.0;
    let cores = thread::available_parallelism().map_or(1, usize::from);
    let profile = Profile {
        concurrency,
        connection_foundry_latency_s: round2(calls_of("ProjectConnections_") * latency_s / workers),
        agent_foundry_latency_s: round2(calls_of("Agents_") * latency_s / workers),
        probe_s: round2(probes_converge * convergence.mean_probe_s / workers),
        controller_busy_s: convergence
            .reconciles
            .iter()
            .map(|(kind, count)| {
                let mean = convergence
                    .mean_reconcile_s
                    .get(kind)
                    .copied()
                    .unwrap_or(0.0);
                (kind.clone(), round2(count * mean / workers))
            })
            .collect(),
        cpu_saturation: round2(
            cpu_delta(&cpu0, &cpu1).values().sum::<f64>() / (cores as f64 * wall_s.max(0.001)),
        ),
    };
    let idle = Idle {
        seconds: round2(idle_seconds),
        intervals: args.idle,
        foundry_calls: idle_calls,
        foundry_writes: idle_writes,
        reads_per_object_per_interval: reads_per_object,
        objects_changed: changed,
        watch_events: idle_events,
        reconciles_per_object_per_interval: reconciles_idle,
        probes_per_connection_per_interval: round3(probes_idle / n as f64 / probe_intervals),
        gateway_completions_per_connection_per_interval: round3(
            completions3.saturating_sub(completions2) as f64 / n as f64 / probe_intervals,
        ),
    };
    let resources = Resources {
        operator_peak_rss_mib: peak,
        operator_steady_rss_mib: steady_rss,
        operator_rss_after_convergence_mib: mib(after_convergence.rss_kib),
        operator_cpu_convergence_s: round2(
            cpu1.get("operator").copied().unwrap_or(0.0)
                - cpu0.get("operator").copied().unwrap_or(0.0),
        ),
        operator_cpu_idle_s: round2(
            cpu3.get("operator").copied().unwrap_or(0.0)
                - cpu2.get("operator").copied().unwrap_or(0.0),
        ),
        cpu_convergence_s: cpu_delta(&cpu0, &cpu1),
        cpu_idle_s: cpu_delta(&cpu2, &cpu3),
        objects_json_mib: mib(rv_after.json_bytes as u64 / 1024),
        managed_fields_json_mib: mib(rv_after.managed_fields_bytes as u64 / 1024),
    };
    let invariants = vec![
        Check::invariant(
            "ProjectConnections_Create per connection",
            "exactly 1",
            format!("min {cc_min}, max {cc_max}"),
            cc_min == 1 && cc_max == 1,
        ),
        Check::invariant(
            "Agents_CreateVersion per agent",
            "exactly 1",
            format!("min {av_min}, max {av_max}"),
            av_min == 1 && av_max == 1,
        ),
        Check::invariant(
            "Foundry writes while idle",
            "0",
            idle_writes.to_string(),
            idle_writes == 0,
        ),
        Check::invariant(
            "objects changed while idle (status patches)",
            "0",
            format!("{changed} objects, {idle_events} watch events"),
            changed == 0 && idle_events == 0,
        ),
        idle_writes_invariant(&apiserver.idle),
    ];
    let mut invariants = invariants;
    invariants.extend(restart.iter().flat_map(restart::Restart::invariants));
    let (ready_target, rss_target, size) = if n >= LARGE_N {
        (LARGE_READY, LARGE_RSS_MIB, Some(LARGE_N))
    } else if n >= TARGET_N {
        (TARGET_READY, TARGET_RSS_MIB, Some(TARGET_N))
    } else {
        (TARGET_READY, TARGET_RSS_MIB, None)
    };
    let at = size.map_or_else(|| format!("N >= {TARGET_N}"), |s| format!("N >= {s}"));
    let mut targets = vec![
        Check::target(
            "all Ready within the time of the size",
            &format!("<= {} s at {at}", ready_target.as_secs()),
            format!("{wall_s:.1} s at N = {n}"),
            size.map(|_| wall_s <= ready_target.as_secs_f64()),
        ),
        Check::target(
            "operator RSS within the memory of the size",
            &format!("peak < {rss_target} MiB at {at}"),
            format!("peak {peak} MiB, steady {steady_rss} MiB at N = {n}"),
            size.map(|_| peak < rss_target),
        ),
        Check::target(
            "at most one probe per connection per interval",
            "<= 1",
            format!("{:.2}", idle.probes_per_connection_per_interval),
            // Probe rounds of connections made together fall in the same instant: a window
            // can hold one round more than it has intervals.
            Some(idle.probes_per_connection_per_interval <= 1.0 + 1.0 / probe_intervals.max(1.0)),
        ),
        Check::target(
            "at most one probe per distinct call per interval (LiteLLM log)",
            "<= 1",
            format!(
                "{:.2} ({} distinct call(s), credentials {})",
                probes.per_distinct_call_per_interval,
                probes.distinct_calls,
                args.credentials.name()
            ),
            // As above: one round more than the window has intervals may fall in it.
            Some(probes.per_distinct_call_per_interval <= 1.0 + 1.0 / probe_intervals.max(1.0)),
        ),
        Check::target(
            "apiserver writes by the operator per object while converging (audit log)",
            "<= 1.5 mean",
            format!(
                "mean {:.2}, max {}",
                apiserver.converging.per_object_mean, apiserver.converging.per_object_max
            ),
            Some(apiserver.converging.per_object_mean <= TARGET_WRITES_PER_OBJECT),
        ),
        Check::target(
            "reconciles per object while converging (operator metrics)",
            "<= 2.5 mean",
            format!("mean {:.2}", apiserver.reconciles_per_object_mean),
            Some(apiserver.reconciles_per_object_mean <= TARGET_RECONCILES_PER_OBJECT),
        ),
    ];
    targets.extend(restart.iter().flat_map(restart::Restart::targets));
    Ok(Report {
        n,
        latency_ms: args.latency_ms,
        resync_s: args.resync,
        probe_interval_s: args.probe_interval,
        concurrency: args.concurrency.map_or_else(
            || format!("operator default ({DEFAULT_CONCURRENCY})"),
            |c| c.to_string(),
        ),
        operator_binary: binary.display().to_string(),
        emulator_binary,
        cores: thread::available_parallelism().map_or(0, usize::from),
        convergence,
        floor,
        profile,
        idle,
        resources,
        apiserver,
        probes,
        baseline,
        restart,
        invariants,
        targets,
    })
}

/// No write of the operator to our objects while idle, from the apiserver's side: a write that
/// changes nothing (no new resourceVersion, no watch event) counts too.
fn idle_writes_invariant(idle: &Writes) -> Check {
    Check::invariant(
        "operator writes to our objects while idle (audit log)",
        "0",
        format!("{} {:?}", idle.total(), idle.by_request),
        idle.total() == 0,
    )
}

/// The Secret of the `i`-th connection's API key with `--credentials distinct`.
fn key_secret(i: usize) -> String {
    format!("{KEY_SECRET}-{i:04}")
}

/// Copies the operators' logs (every run) and the emulator's whole request log to `dir`.
pub(crate) fn save_artifacts(
    bed: &Bed,
    operators: &[&RunningOperator],
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for operator in operators {
        for log in operator.log_paths() {
            let name = format!(
                "{}-{}",
                operator.identity,
                log.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            );
            std::fs::copy(&log, dir.join(name))
                .with_context(|| format!("failed to copy {}", log.display()))?;
        }
    }
    let requests = bed.requests_since(0)?;
    std::fs::write(
        dir.join("emulator-requests.json"),
        serde_json::to_string_pretty(&requests)?,
    )?;
    std::fs::copy(bed.gateway_log(), dir.join("litellm.log"))?;
    eprintln!("Saved the logs to {}", dir.display());
    Ok(())
}

/// Polls `done` every 100 ms until it says yes, for at most `timeout`.
fn wait_until(timeout: Duration, what: &str, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Names and Ready reasons of the objects that are not Ready (at most 20).
fn not_ready(bed: &Bed, seen: &SharedSeen) -> Vec<String> {
    let mut out = Vec::new();
    for kind in [Kind::Connection, Kind::Agent] {
        let Ok(objects) = bed.rt.block_on(bed.list(kind)) else {
            continue;
        };
        for o in objects {
            let name = o.metadata.name.clone().unwrap_or_default();
            let ready = lock(seen)
                .objects
                .get(&(kind, name.clone()))
                .is_some_and(|s| s.first_ready.is_some());
            if !ready && out.len() < 20 {
                out.push(format!(
                    "{} {name} ({})",
                    kind.name(),
                    world::ready_reason(&o)
                ));
            }
        }
    }
    out
}

/// What a list of every object of ours in the namespace says.
#[derive(Debug, Default)]
struct Listing {
    /// `resourceVersion` by kind and name.
    versions: BTreeMap<(Kind, String), String>,
    /// Bytes of the objects as JSON.
    json_bytes: usize,
    /// Bytes of their `managedFields` as JSON.
    managed_fields_bytes: usize,
}

fn resource_versions(bed: &Bed) -> anyhow::Result<Listing> {
    let mut out = Listing::default();
    for kind in [Kind::Project, Kind::Connection, Kind::Agent] {
        for o in bed.rt.block_on(bed.list(kind))? {
            out.json_bytes += serde_json::to_vec(&o).map_or(0, |v| v.len());
            out.managed_fields_bytes +=
                serde_json::to_vec(&o.metadata.managed_fields).map_or(0, |v| v.len());
            out.versions.insert(
                (kind, o.metadata.name.clone().unwrap_or_default()),
                o.metadata.resource_version.clone().unwrap_or_default(),
            );
        }
    }
    Ok(out)
}

/// One ARM round trip, one data-plane round trip and one probe, serially, with the run's
/// latency rule in place: the median of each leg over [`FLOOR_SAMPLES`] after a warm-up.
fn measure_floor(bed: &Bed) -> anyhow::Result<Floor> {
    let arm = bed.stack.arm_token()?;
    let data = bed.stack.data_plane_token()?;
    let connection = connection_name(0);
    let agent = agent_name(0);
    let time = |f: &dyn Fn() -> anyhow::Result<u16>| -> anyhow::Result<f64> {
        let started = Instant::now();
        let status = f()?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if !(200..300).contains(&status) {
            bail!("a floor round trip answered {status}");
        }
        Ok(ms)
    };
    let arm_call = || bed.arm_get_connection(arm.expose(), &connection);
    let data_call = || bed.data_list_versions(data.expose(), &agent);
    let probe_call = || bed.gateway_chat();
    let (mut a, mut d, mut p, mut totals) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for sample in 0..=FLOOR_SAMPLES {
        let (x, y, z) = (time(&arm_call)?, time(&data_call)?, time(&probe_call)?);
        if sample > 0 {
            a.push(x);
            d.push(y);
            p.push(z);
            totals.push(x + y + z);
        }
    }
    let median = |v: Vec<f64>| Percentiles::of(v).p50_s;
    Ok(Floor {
        arm_ms: round2(median(a)),
        data_plane_ms: round2(median(d)),
        probe_ms: round2(median(p)),
        total_ms: round2(median(totals)),
    })
}

impl Report {
    fn table(&self) -> String {
        let mut t = Table::default();
        t.section(&format!(
            "cargo xtask bench: N = {} GatewayConnections + {} PromptAgents, emulator latency {} ms, resync {} s, probe interval {} s, concurrency {}, {} cores",
            self.n, self.n, self.latency_ms, self.resync_s, self.probe_interval_s, self.concurrency, self.cores
        ));
        t.row("operator binary", &self.operator_binary);
        t.row("emulator binary", &self.emulator_binary);
        let c = &self.convergence;
        t.section("Convergence (apply -> Ready at generation, watched)");
        t.row("apply -> all Ready (wall)", &format!("{:.2} s", c.wall_s));
        t.row(
            "apply requests answered after",
            &format!("{:.2} s", c.apply_s),
        );
        for (label, p) in [
            ("GatewayConnection", &c.connections),
            ("PromptAgent", &c.agents),
            ("all objects", &c.all),
        ] {
            t.row(
                &format!("{label} apply -> Ready"),
                &format!(
                    "p50 {:.2} s  p95 {:.2} s  max {:.2} s  ({} objects)",
                    p.p50_s, p.p95_s, p.max_s, p.count
                ),
            );
        }
        let l = &c.agent_after_connection;
        t.row(
            "PromptAgent Ready after its connection",
            &format!(
                "p50 {:.2} s  p95 {:.2} s  max {:.2} s  ({} agents later than {} s)",
                l.p50_s,
                l.p95_s,
                l.max_s,
                c.agents_lagging,
                LAG.as_secs()
            ),
        );
        t.row(
            "Foundry calls by operation",
            &format!("{:?}", c.foundry_calls),
        );
        t.row(
            "ProjectConnections_Create per connection",
            &format!(
                "min {} max {}",
                c.connection_creates_min, c.connection_creates_max
            ),
        );
        t.row(
            "Agents_CreateVersion per agent",
            &format!("min {} max {}", c.agent_versions_min, c.agent_versions_max),
        );
        if !c.not_one_create.is_empty() {
            let shown: Vec<&str> = c
                .not_one_create
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            t.row(
                "objects without exactly one create",
                &format!(
                    "{} ({}{})",
                    c.not_one_create.len(),
                    shown.join(", "),
                    if c.not_one_create.len() > 10 {
                        ", ..."
                    } else {
                        ""
                    }
                ),
            );
        }
        t.row("reconciles", &format!("{:?}", c.reconciles));
        t.row(
            "mean reconcile duration (s)",
            &format!("{:?}", c.mean_reconcile_s),
        );
        t.row(
            "probes (mean latency)",
            &format!("{} ({:.3} s)", c.probes, c.mean_probe_s),
        );
        t.row(
            "apiserver writes per object (watch events)",
            &format!(
                "mean {:.2}, max {}",
                c.writes_per_object_mean, c.writes_per_object_max
            ),
        );
        let a = &self.apiserver;
        t.section(&format!(
            "The apiserver's side (audit log, requests of {}), apply -> idle start",
            a.user
        ));
        t.row("finalizer policy", &a.finalizer_policy);
        let w = &a.converging;
        t.row(
            "apiserver writes per object (audit log)",
            &format!(
                "mean {:.2} (main {:.2} + status {:.2}), max {}, over {} objects (target <= {TARGET_WRITES_PER_OBJECT})",
                w.per_object_mean,
                w.main_per_object_mean,
                w.status_per_object_mean,
                w.per_object_max,
                w.objects
            ),
        );
        t.row(
            "write requests to our objects",
            &format!("{:?} ({} refused)", w.by_request, w.refused),
        );
        t.row(
            "write requests to other resources",
            &format!("{:?}", w.other),
        );
        // A reconcile sends no request of its own: the apiserver cannot count them, so these
        // are the operator's metrics, beside the writes they caused.
        t.row(
            "reconciles per object (operator metrics)",
            &format!(
                "{:?}, mean {:.2} (target <= {TARGET_RECONCILES_PER_OBJECT})",
                a.reconciles_per_object, a.reconciles_per_object_mean
            ),
        );
        let pr = &self.probes;
        t.section(&format!(
            "Probes (credentials {}: {} distinct call(s) for {} connections)",
            pr.credentials.name(),
            pr.distinct_calls,
            self.n
        ));
        t.row(
            "probes run (LiteLLM completions), apply -> idle start",
            &format!(
                "{} ({} probe results taken by connections, operator metric)",
                pr.converging_completions, pr.converging_results
            ),
        );
        t.row(
            "probes run (LiteLLM completions), idle",
            &format!(
                "{} ({} probe results taken by connections, operator metric)",
                pr.idle_completions, pr.idle_results
            ),
        );
        t.row(
            "probes run per distinct call per interval, idle",
            &format!("{:.3} (target <= 1)", pr.per_distinct_call_per_interval),
        );
        let p = &self.profile;
        t.section(&format!(
            "Where the time went (work / {} workers per controller, if nothing else limits it)",
            p.concurrency
        ));
        t.row(
            "GatewayConnection: ARM calls x latency",
            &format!("{:.1} s", p.connection_foundry_latency_s),
        );
        t.row(
            "GatewayConnection: probes x mean probe",
            &format!("{:.1} s", p.probe_s),
        );
        t.row(
            "PromptAgent: data-plane calls x latency",
            &format!("{:.1} s", p.agent_foundry_latency_s),
        );
        t.row(
            "reconciles x mean reconcile duration",
            &format!("{:?}", p.controller_busy_s),
        );
        t.row(
            "CPU used / CPU available during convergence",
            &format!("{:.0} %", p.cpu_saturation * 100.0),
        );
        let f = &self.floor;
        t.section("Floor (serial round trips, same latency, median)");
        t.row("ARM GET connection", &format!("{:.1} ms", f.arm_ms));
        t.row(
            "data-plane list versions",
            &format!("{:.1} ms", f.data_plane_ms),
        );
        t.row(
            "gateway probe (chat completion)",
            &format!("{:.1} ms", f.probe_ms),
        );
        t.row("floor (sum)", &format!("{:.1} ms", f.total_ms));
        let i = &self.idle;
        t.section(&format!(
            "Idle ({:.1} s = {} resync intervals)",
            i.seconds, i.intervals
        ));
        t.row(
            "Foundry calls by operation",
            &format!("{:?}", i.foundry_calls),
        );
        t.row("Foundry writes", &i.foundry_writes.to_string());
        t.row(
            "reads per object per interval",
            &format!("{:?}", i.reads_per_object_per_interval),
        );
        t.row(
            "objects changed (resourceVersion)",
            &i.objects_changed.to_string(),
        );
        t.row("watch events", &i.watch_events.to_string());
        t.row(
            "reconciles per object per interval",
            &format!("{:?}", i.reconciles_per_object_per_interval),
        );
        t.row(
            "probes per connection per interval (operator metric)",
            &format!("{:.3}", i.probes_per_connection_per_interval),
        );
        t.row(
            "chat completions per connection per interval (LiteLLM log)",
            &format!("{:.3}", i.gateway_completions_per_connection_per_interval),
        );
        t.row(
            "operator writes to our objects (audit log)",
            &format!("{:?}", self.apiserver.idle.by_request),
        );
        t.row(
            "operator writes to other resources (audit log)",
            &format!("{:?}", self.apiserver.idle.other),
        );
        t.row(
            "operator reads (audit log)",
            &format!("{:?}", self.apiserver.idle_reads),
        );
        let r = &self.resources;
        t.section("Resources");
        t.row(
            "operator RSS peak (VmHWM) / steady (VmRSS)",
            &format!(
                "{:.1} MiB / {:.1} MiB (after convergence {:.1} MiB)",
                r.operator_peak_rss_mib,
                r.operator_steady_rss_mib,
                r.operator_rss_after_convergence_mib
            ),
        );
        t.row(
            "operator CPU convergence / idle",
            &format!(
                "{:.2} s / {:.2} s",
                r.operator_cpu_convergence_s, r.operator_cpu_idle_s
            ),
        );
        t.row(
            "CPU s by process, convergence",
            &format!("{:?}", r.cpu_convergence_s),
        );
        t.row("CPU s by process, idle", &format!("{:?}", r.cpu_idle_s));
        t.row(
            "our objects as JSON (of which managedFields)",
            &format!(
                "{:.1} MiB ({:.1} MiB)",
                r.objects_json_mib, r.managed_fields_json_mib
            ),
        );
        let b = &self.baseline;
        t.section(&format!(
            "The apiserver alone (the same {} objects applied the same way, no operator)",
            b.objects
        ));
        t.row("apply -> all answered", &format!("{:.2} s", b.wall_s));
        t.row(
            "CPU s by process",
            &format!("{:?} (total {:.2})", b.cpu_s, b.cpu_total()),
        );
        if let Some(r) = &self.restart {
            t.section("Operator restart with every object Ready (new process, idle)");
            for (label, value) in r.rows() {
                t.row(&label, &value);
            }
        }
        t.section("Invariants (a violation fails the run)");
        for c in &self.invariants {
            t.row(
                &c.name,
                &format!("{}  (expected {}): {}", c.measured, c.expected, c.status),
            );
        }
        t.section("Targets (reported)");
        for c in &self.targets {
            t.row(
                &c.name,
                &format!("{}  (target {}): {}", c.measured, c.expected, c.status),
            );
        }
        t.finish()
    }
}

/// A two-column text table with section headers.
#[derive(Debug, Default)]
struct Table {
    rows: Vec<(Option<String>, String)>,
}

impl Table {
    fn section(&mut self, title: &str) {
        self.rows.push((None, title.to_owned()));
    }

    /// A line of its own, indented, outside the columns.
    fn line(&mut self, text: &str) {
        self.rows.push((None, format!("  {text}")));
    }

    fn row(&mut self, label: &str, value: &str) {
        self.rows.push((Some(label.to_owned()), value.to_owned()));
    }

    fn finish(self) -> String {
        let width = self
            .rows
            .iter()
            .filter_map(|(l, _)| l.as_ref().map(|l| l.chars().count()))
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (label, value) in self.rows {
            match label {
                None if value.starts_with("  ") => {
                    out.push_str(&value);
                    out.push('\n');
                }
                None => {
                    out.push('\n');
                    out.push_str(&value);
                    out.push('\n');
                }
                Some(label) => out.push_str(&format!("  {label:<width$}  {value}\n")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.p50_s, p.p95_s, p.max_s, p.count),
            (50.0, 95.0, 100.0, 100)
        );
        let one = Percentiles::of(vec![2.5]);
        assert_eq!((one.p50_s, one.p95_s, one.max_s), (2.5, 2.5, 2.5));
        let none = Percentiles::of(Vec::new());
        assert_eq!((none.count, none.max_s), (0, 0.0));
    }

    #[test]
    fn an_idle_write_seen_in_the_audit_log_fails_the_run() {
        let quiet = Writes::default();
        let invariants = vec![idle_writes_invariant(&quiet)];
        assert!(check_invariants(&invariants).is_ok());
        let written = Writes {
            by_request: BTreeMap::from([("patch promptagents/status".to_owned(), 2)]),
            ..Writes::default()
        };
        let invariants = vec![
            idle_writes_invariant(&quiet),
            idle_writes_invariant(&written),
        ];
        let err = check_invariants(&invariants).unwrap_err().to_string();
        assert_eq!(
            err,
            "bench invariants violated: operator writes to our objects while idle (audit log) \
             (measured 2 {\"patch promptagents/status\": 2})"
        );
    }

    #[test]
    fn the_table_aligns_values() {
        let mut t = Table::default();
        t.section("S");
        t.row("a", "1");
        t.row("longer", "2");
        assert_eq!(t.finish(), "\nS\n  a       1\n  longer  2\n");
    }
}
