//! Issue 11, "Done when": a hostile gateway of the tests' own (tests/src/hostile.rs: loopback
//! HTTPS with the stack's CA) serves an oversized body, millions of models, an overflowing
//! `expires_in`, a slow drip and a redirect to a second loopback address. One operator process
//! (shipped RBAC) watches the hostile namespace and a healthy one. It must never exit, its peak
//! RSS must stay under 96 MiB, the healthy namespace's connection must keep its probe interval
//! within 10 %, nothing may follow the redirect, and no status, event or log line may echo what
//! the hostile server answered.
//!
//! Every check is made and reported before the test fails, so one run shows every way the
//! operator falls short. Run with `--nocapture` to see the figures.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::emulator::EmulatorProject;
use foundry_gateway_testbed::http::HttpClient;
use foundry_gateway_testbed::operator::{self, Operator, OperatorOptions, RunningOperator};
use foundry_gateway_testbed::stack::OPERATOR_CLIENT_ID;
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use foundry_gateway_tests::harness::{TestNamespace, testbed};
use foundry_gateway_tests::hostile::{HostileGateway, MARKER};
use foundry_gateway_tests::world::{
    PROJECT, PROJECT_SECRET, apply, apply_secret, condition, get, has_condition, stack,
};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

const GWC: &str = "GatewayConnection";
/// Slow-drip connections: more than the operator's 16 probe (and reconcile) slots.
const DRIP_CONNECTIONS: usize = 20;
/// The healthy connection's probe interval, and how far a gap may stray from it.
const HEALTHY_INTERVAL: Duration = Duration::from_secs(10);
const TOLERANCE: Duration = Duration::from_secs(1);
/// How long the operator is watched after the healthy connection is applied.
const OBSERVE: Duration = Duration::from_secs(65);
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
const RSS_LIMIT_MIB: f64 = 96.0;
/// How long after the connections are applied the fast hostile ones may take to be reported.
const VERDICT_DEADLINE: Duration = Duration::from_secs(150);
/// A probe of a drip connection times out after 30 s; its status may take this much longer.
const DRIP_VERDICT: Duration = Duration::from_secs(30 + 20);
/// Hits closer together than this belong to one probe (a list and a get).
const SAME_PROBE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_gateway_neither_crashes_the_operator_nor_delays_another_namespace() {
    let s = stack();
    let hostile_ns = TestNamespace::new("hostile").await;
    let healthy_ns = TestNamespace::new("healthy").await;
    let dir = std::env::temp_dir().join(format!("fgo-{}", hostile_ns.name()));
    let gateway = HostileGateway::start(s.ca(), &dir.join("hostile-gateway"));
    println!(
        "hostile gateway at {}, trap at {}",
        gateway.base_url(),
        gateway.trap_url()
    );
    let mut operator = start_operator(dir, &[&hostile_ns, &healthy_ns]).await;
    let pid = operator.pid().expect("the operator's pid");

    // The hostile namespace: the fast hostile answers first, then the drips.
    let tag = suffix(&hostile_ns);
    apply_secret(
        &hostile_ns,
        "gateway-key",
        json!({"key": "hostile-test-key"}),
    )
    .await;
    apply_secret(
        &hostile_ns,
        "oauth-client",
        json!({"secret": "hostile-client-secret"}),
    )
    .await;
    let quick =
        json!({"mode": "Discovery", "interval": "15s", "timeout": "10s", "failureThreshold": 1});
    let applied = Instant::now();
    for (name, path) in [
        ("huge", "/huge/h"),
        ("many", "/many/m"),
        ("redirect", "/redirect/r"),
    ] {
        let spec = discovery_spec(&format!("{tag}-{name}"), &gateway.url(path), &quick);
        apply(&hostile_ns, GWC, name, spec).await;
    }
    let mut oauth = discovery_spec(
        &format!("{tag}-oauth"),
        &gateway.url("/healthy/oauth"),
        &quick,
    );
    oauth["auth"] = json!({"oauth2": {
        "tokenUrl": gateway.url("/oauth/token"), "scopes": ["api://hostile/.default"],
        "clientId": "hostile-client", "clientSecretRef": {"name": "oauth-client", "key": "secret"},
    }});
    apply(&hostile_ns, GWC, "oauth", oauth).await;
    // The CRD wants timeout < interval: 31 s keeps each drip probe in its slot 30 s of every 31.
    let slow =
        json!({"mode": "Discovery", "interval": "31s", "timeout": "30s", "failureThreshold": 1});
    for i in 0..DRIP_CONNECTIONS {
        let spec = discovery_spec(
            &format!("{tag}-drip-{i:02}"),
            &gateway.url(&format!("/drip/{i:02}")),
            &slow,
        );
        apply(&hostile_ns, GWC, &format!("drip-{i:02}"), spec).await;
    }

    // The healthy namespace: one connection probed every 10 s.
    apply_secret(
        &healthy_ns,
        "gateway-key",
        json!({"key": "healthy-test-key"}),
    )
    .await;
    let every_10s = json!({"mode": "Discovery", "interval": "10s", "timeout": "5s"});
    let healthy_path = "/healthy/other/";
    let healthy_spec = discovery_spec(
        &format!("{}-healthy", suffix(&healthy_ns)),
        &gateway.url("/healthy/other"),
        &every_10s,
    );
    apply(&healthy_ns, GWC, "healthy", healthy_spec).await;
    let observed_from = Instant::now();

    // Watch the process: alive, /healthz, resident memory.
    let mut failures: Vec<String> = Vec::new();
    let mut watch = ProcessWatch::new(pid);
    while observed_from.elapsed() < OBSERVE {
        tokio::task::block_in_place(|| watch.sample(&mut operator, applied));
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
    tokio::task::block_in_place(|| watch.sample(&mut operator, applied));
    let observed_until = Instant::now();
    let hwm = proc_status_kib(pid, "VmHWM");
    let peak_kib = watch.peak_rss_kib.max(hwm.unwrap_or(0));
    let peak_mib = peak_kib as f64 / 1024.0;
    let alive = watch.exited_after.is_none() && operator.is_running();

    // The verdicts on the hostile connections.
    for (name, reason) in [
        ("huge", "BadResponse"),
        ("many", "BadResponse"),
        ("redirect", "BadResponse"),
    ] {
        let o = settle(&hostile_ns, name, applied + VERDICT_DEADLINE, &mut operator).await;
        if !has_condition(&o, "GatewayActive", "False", Some(reason)) {
            failures.push(format!(
                "{name}: expected GatewayActive=False with reason {reason}, got {}",
                describe_active(&o)
            ));
        }
    }
    let mut drips_probed = 0;
    for i in 0..DRIP_CONNECTIONS {
        let name = format!("drip-{i:02}");
        let Some(first) = gateway
            .hit_times(&format!("/drip/{i:02}/"))
            .first()
            .copied()
        else {
            continue;
        };
        drips_probed += 1;
        let o = settle(&hostile_ns, &name, first + DRIP_VERDICT, &mut operator).await;
        if !has_condition(&o, "GatewayActive", "False", Some("Timeout")) {
            failures.push(format!(
                "{name} (probed {:.1?} after apply): expected GatewayActive=False with reason Timeout within {DRIP_VERDICT:?} of its probe, got {}",
                first - applied,
                describe_active(&o)
            ));
        }
    }
    if drips_probed == 0 {
        failures.push("no drip connection was probed at all".to_owned());
    }
    let oauth = get(&hostile_ns, GWC, "oauth").await.unwrap_or_default();

    // The healthy namespace's probe rhythm, from the hostile server's own clock.
    let probes = probe_starts(&gateway.hit_times(healthy_path));
    let gaps: Vec<Duration> = probes.windows(2).map(|w| w[1] - w[0]).collect();
    let open_gap = probes.last().map(|last| observed_until - *last);
    let expected = OBSERVE.as_secs() / HEALTHY_INTERVAL.as_secs() - 1;
    if (probes.len() as u64) < expected {
        failures.push(format!(
            "the healthy connection was probed {} times in {OBSERVE:?} with interval {HEALTHY_INTERVAL:?} (expected at least {expected}); gaps {gaps:.1?}",
            probes.len()
        ));
    }
    let (low, high) = (HEALTHY_INTERVAL - TOLERANCE, HEALTHY_INTERVAL + TOLERANCE);
    for (i, gap) in gaps.iter().enumerate() {
        if *gap < low || *gap > high {
            failures.push(format!(
                "the healthy connection's probes {i} and {} were {gap:.1?} apart, not {HEALTHY_INTERVAL:?} ± 10 %",
                i + 1
            ));
        }
    }
    if let Some(open) = open_gap.filter(|open| *open > high) {
        failures.push(format!(
            "the healthy connection was not probed in the last {open:.1?} of the observation"
        ));
    }
    let healthy = get(&healthy_ns, GWC, "healthy").await.unwrap_or_default();
    if !has_condition(&healthy, "GatewayActive", "True", Some("Active")) {
        failures.push(format!(
            "the healthy connection is not Active: {}",
            describe_active(&healthy)
        ));
    }

    // Nothing followed the redirect; nothing echoes a hostile body.
    let trap_hits = gateway.trap_hits();
    if trap_hits > 0 {
        failures.push(format!(
            "the redirect was followed: the trap at {} received {trap_hits} connection(s)",
            gateway.trap_url()
        ));
    }
    for ns in [&hostile_ns, &healthy_ns] {
        for (what, text) in texts_shown_to_users(ns).await {
            if let Some(excerpt) = excerpt_around(&text, MARKER) {
                failures.push(format!(
                    "{what} in {} echoes the hostile body: …{excerpt}…",
                    ns.name()
                ));
            }
        }
    }
    if let Some(excerpt) = excerpt_around(&operator.log_text(), MARKER) {
        failures.push(format!(
            "the operator's log echoes the hostile body: …{excerpt}…"
        ));
    }

    // The process itself, reported first: an exit explains every other finding.
    let mut process_failures = Vec::new();
    if let Some(after) = watch.exited_after {
        process_failures.push(format!(
            "the operator exited {after:.1?} after the connections were applied:\n{}",
            exit_report(&operator)
        ));
    } else if !alive {
        process_failures.push(format!(
            "the operator exited after the observation:\n{}",
            exit_report(&operator)
        ));
    }
    if watch.healthz_failures > 0 {
        process_failures.push(format!(
            "/healthz failed {} of {} times while the operator ran",
            watch.healthz_failures, watch.healthz_checks
        ));
    }
    if peak_mib >= RSS_LIMIT_MIB {
        process_failures.push(format!(
            "the operator's peak RSS was {peak_mib:.1} MiB, not under {RSS_LIMIT_MIB} MiB"
        ));
    }
    failures.splice(0..0, process_failures);

    println!(
        "operator peak RSS: {peak_mib:.1} MiB (VmHWM {hwm:?} KiB, {} samples)",
        watch.samples
    );
    println!(
        "operator alive: {alive}; /healthz failures: {}/{}",
        watch.healthz_failures, watch.healthz_checks
    );
    println!(
        "healthy probes: {}, first {:.1?} after apply; gaps min {:.1?} max {:.1?}; all {gaps:.1?}; open gap at the end {open_gap:.1?}",
        probes.len(),
        probes.first().map(|first| *first - observed_from),
        gaps.iter().min(),
        gaps.iter().max(),
    );
    println!("drip connections probed: {drips_probed}/{DRIP_CONNECTIONS}");
    println!(
        "oauth2 connection (overflowing expires_in): {}",
        describe_active(&oauth)
    );
    println!("trap hits: {trap_hits}");
    println!("hits per path:");
    for (path, count) in gateway.hits_per_path() {
        println!("  {count:>4} {path}");
    }
    assert!(
        failures.is_empty(),
        "the operator did not withstand the hostile gateway ({} finding(s)):\n- {}",
        failures.len(),
        failures.join("\n- ")
    );
}

/// Installs the shipped cluster-wide RBAC (one ServiceAccount for two namespaces; `World::new`
/// runs its single-namespace operator under a Role instead), gives both namespaces a
/// FoundryProject pointing at the emulator as `World::new` does, and starts one operator that
/// watches exactly these namespaces. `OperatorOptions` allows the stack's loopback hosts.
async fn start_operator(dir: PathBuf, namespaces: &[&TestNamespace]) -> RunningOperator {
    let s = stack();
    let tb = testbed();
    operator::install_rbac(tb).expect("the operator RBAC applies");
    let kubeconfig = operator::operator_kubeconfig(tb).expect("a ServiceAccount kubeconfig");
    let secret = s
        .client_secret(OPERATOR_CLIENT_ID)
        .expect("operator client secret")
        .expose()
        .to_owned();
    let project = EmulatorProject::default_project();
    for ns in namespaces {
        apply_secret(ns, PROJECT_SECRET, json!({"clientSecret": secret})).await;
        apply(ns, "FoundryProject", PROJECT, json!({
            "armId": project.arm_id(),
            "endpoint": s.emulator.project_endpoint,
            "managementEndpoint": s.emulator.arm_endpoint,
            "authorityHost": s.token_server.entra_authority_host(),
            "identity": {"clientSecret": {"clientId": OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
                "secretRef": {"name": PROJECT_SECRET, "key": "clientSecret"}}},
        }))
        .await;
    }
    let watched: Vec<&str> = namespaces.iter().map(|ns| ns.name()).collect();
    // One process for both namespaces, but not for every namespace of the shared test bed: an
    // all-namespace operator would also reconcile (and finalize) other tests' objects, whose
    // projects point at other stacks.
    let extra_args = [
        "--watch-namespaces",
        &watched.join(","),
        "--secret-grace",
        "3s",
    ];
    let operator = Operator::start(OperatorOptions {
        watch_namespace: None,
        resync: Duration::from_secs(600),
        leader_elect: false,
        extra_ca_file: Some(s.ca_file().to_path_buf()),
        extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        ..OperatorOptions::new(dir.join("operator"), kubeconfig)
    })
    .expect("the operator starts");
    for ns in namespaces {
        let started = Instant::now();
        loop {
            let o = get(ns, "FoundryProject", PROJECT).await.unwrap_or_default();
            if has_condition(&o, "Ready", "True", None) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "FoundryProject {PROJECT} in {} is not Ready within 60 s: {}",
                ns.name(),
                o["status"]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    operator
}

/// A ModelGateway connection with an API key and OpenAI-style discovery.
fn discovery_spec(connection_name: &str, target: &str, probe: &Value) -> Value {
    json!({
        "projectRef": {"name": PROJECT}, "connectionName": connection_name,
        "category": "ModelGateway", "target": target,
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"}}},
        "models": {"discovery": {"listModelsEndpoint": "/models",
            "getModelEndpoint": "/models/{deploymentName}", "provider": "OpenAI"}},
        "probe": probe,
    })
}

/// The random suffix of a test namespace: connection names are unique per Foundry project,
/// which both namespaces share.
fn suffix(ns: &TestNamespace) -> &str {
    ns.name().rsplit('-').next().unwrap_or("x")
}

/// What the operator process did while it was watched.
struct ProcessWatch {
    pid: u32,
    samples: usize,
    peak_rss_kib: u64,
    healthz_checks: usize,
    healthz_failures: usize,
    exited_after: Option<Duration>,
    http: HttpClient,
}

impl ProcessWatch {
    fn new(pid: u32) -> Self {
        Self {
            pid,
            samples: 0,
            peak_rss_kib: 0,
            healthz_checks: 0,
            healthz_failures: 0,
            exited_after: None,
            http: HttpClient::plain(Duration::from_secs(2)),
        }
    }

    /// One sample: alive, VmRSS, and every tenth time /healthz.
    fn sample(&mut self, operator: &mut RunningOperator, since: Instant) {
        if self.exited_after.is_some() {
            return;
        }
        if !operator.is_running() {
            self.exited_after = Some(since.elapsed());
            return;
        }
        if let Some(rss) = proc_status_kib(self.pid, "VmRSS") {
            self.peak_rss_kib = self.peak_rss_kib.max(rss);
        }
        if self.samples.is_multiple_of(10) {
            self.healthz_checks += 1;
            let url = format!("{}/healthz", operator.admin_url);
            if !self.http.get(&url, &[]).is_ok_and(|r| r.is_success()) {
                self.healthz_failures += 1;
            }
        }
        self.samples += 1;
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// Polls a connection until GatewayActive is False or `deadline` passes (at once when the
/// operator is gone: nothing will change); returns the last object seen.
async fn settle(
    ns: &TestNamespace,
    name: &str,
    deadline: Instant,
    operator: &mut RunningOperator,
) -> Value {
    loop {
        let o = get(ns, GWC, name).await.unwrap_or_default();
        let decided = has_condition(&o, "GatewayActive", "False", None);
        if decided || Instant::now() >= deadline || !operator.is_running() {
            return o;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `GatewayActive=<status> (<reason>): <message>` of a connection, or what it lacks.
fn describe_active(o: &Value) -> String {
    match condition(o, "GatewayActive") {
        Some(c) => format!(
            "GatewayActive={} ({}): {}",
            c["status"].as_str().unwrap_or("?"),
            c["reason"].as_str().unwrap_or("?"),
            c["message"].as_str().unwrap_or("")
        ),
        None if o.is_null() => "no such object".to_owned(),
        None => match condition(o, "Ready") {
            Some(c) => format!(
                "no GatewayActive condition (Ready={} {}: {})",
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("?"),
                c["message"].as_str().unwrap_or("")
            ),
            None => "no status conditions".to_owned(),
        },
    }
}

/// The first instant of each probe: hits closer than [`SAME_PROBE`] belong to one probe.
fn probe_starts(hits: &[Instant]) -> Vec<Instant> {
    let mut starts: Vec<Instant> = Vec::new();
    let mut last: Option<Instant> = None;
    for hit in hits {
        if last.is_none_or(|last| *hit - last > SAME_PROBE) {
            starts.push(*hit);
        }
        last = Some(*hit);
    }
    starts
}

/// Every condition message of every GatewayConnection and every event message of a
/// namespace, each with a label saying where it is.
async fn texts_shown_to_users(ns: &TestNamespace) -> Vec<(String, String)> {
    let mut texts = Vec::new();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        ns.client().clone(),
        ns.name(),
        &foundry_gateway_tests::harness::custom_resource(GWC),
    );
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list connections");
    for object in list.items {
        let name = object.metadata.name.clone().unwrap_or_default();
        let value = serde_json::to_value(&object).expect("JSON");
        for c in value["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            texts.push((
                format!("condition {} of {GWC} {name}", c["type"]),
                c["message"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let events = Api::<Event>::namespaced(ns.client().clone(), ns.name())
        .list(&ListParams::default())
        .await
        .expect("list events");
    for event in events.items {
        texts.push((
            format!(
                "event {} of {}",
                event.reason.unwrap_or_default(),
                event.involved_object.name.unwrap_or_default()
            ),
            event.message.unwrap_or_default(),
        ));
    }
    texts
}

/// Up to 80 characters either side of the first `needle` in `text`.
fn excerpt_around(text: &str, needle: &str) -> Option<String> {
    let at = text.find(needle)?;
    let start = text.floor_char_boundary(at.saturating_sub(80));
    let end = text.ceil_char_boundary((at + needle.len() + 80).min(text.len()));
    Some(text[start..end].replace('\n', " "))
}

/// Why the operator exited, from its log: each panic with its message and the first frame in
/// this workspace's crates, else the last lines of the log.
fn exit_report(operator: &RunningOperator) -> String {
    let text = operator.log_text();
    let lines: Vec<&str> = text.lines().collect();
    let mut report = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.contains(" panicked at ") {
            continue;
        }
        report.push(format!("  {}", line.trim()));
        let after = &lines[i + 1..];
        if let Some(message) = after.first() {
            report.push(format!("    {}", message.trim()));
        }
        let frame = after
            .iter()
            .take_while(|l| !l.contains(" panicked at "))
            .find(|l| l.contains("/crates/"));
        if let Some(frame) = frame {
            report.push(format!("    first frame of ours: {}", frame.trim()));
        }
    }
    if report.is_empty() {
        report = lines[lines.len().saturating_sub(15)..]
            .iter()
            .map(|l| format!("  {l}"))
            .collect();
    }
    report.join("\n")
}
