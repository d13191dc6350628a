//! Dashboards and alerts as shipped in the chart (`charts/foundry-gateway-operator/monitoring/`):
//! the alert rules pass Prometheus's own `promtool check rules` and their unit tests
//! (`promtool test rules alerts_test.yaml`), every dashboard query is valid PromQL, the chart
//! renders the dashboard ConfigMap and the PrometheusRule from those files only when asked, with
//! the thresholds of its values, and every metric the dashboard and the alerts name (and every
//! input series of the rule tests, labels included) is one the running operator exports.
//!
//! promtool is the pinned one of `foundry_gateway_testbed::install::promtool` (Debian's
//! `prometheus` package, unpacked into the cache); Helm the pinned Helm 4 of `cargo xtask chart`.

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../crates/xtask/src/chart.rs"]
mod chart;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use foundry_gateway_tests::world::{World, apply, apply_secret, has_condition, stack, wait_for};
use serde_json::{Value as Json, json};
use serde_yaml::Value as Yaml;

/// Prefix of every metric the operator exports.
const PREFIX: &str = "foundry_gateway_";

fn monitoring_dir() -> PathBuf {
    chart::chart_dir().join("monitoring")
}

fn promtool() -> PathBuf {
    foundry_gateway_testbed::install::promtool().expect("promtool is installed")
}

/// Runs `command` and returns its stdout and stderr; fails the test when it fails.
fn succeed(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("failed to run {command:?}: {err}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{text}",
        output.status
    );
    text
}

fn read_yaml(path: &Path) -> Yaml {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Json {
    let path = monitoring_dir().join("dashboard.json");
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).expect("dashboard.json is JSON")
}

/// Every PromQL expression of the dashboard: the panels' `expr` and the template variables'
/// queries (`label_values(...)` included).
fn dashboard_queries(value: &Json, out: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            for (key, item) in map {
                match (key.as_str(), item) {
                    ("expr" | "definition", Json::String(text)) => out.push(text.clone()),
                    ("query", Json::String(text)) if text.contains(PREFIX) => {
                        out.push(text.clone());
                    }
                    _ => dashboard_queries(item, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|item| dashboard_queries(item, out)),
        _ => {}
    }
}

/// The alert expressions of a rule file's `groups`.
fn alert_exprs(groups: &Yaml) -> Vec<String> {
    groups
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("rules").iter())
        .map(|rule| rule["expr"].as_str().expect("expr").to_owned())
        .collect()
}

/// The metric names (with our prefix) an expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find(PREFIX) {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// A dashboard query as Prometheus sees it once Grafana substituted its variables.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "5m")
        .replace("$namespace", ".*")
}

/// A series as `name{a="b",...}`: its name and label names.
fn parse_series(series: &str) -> (String, BTreeSet<String>) {
    let series = series.trim();
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.rsplit_once('}').map_or(rest, |(l, _)| l)),
        None => (series, ""),
    };
    let mut keys = BTreeSet::new();
    let mut chars = labels.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.trim().is_empty() {
            break;
        }
        keys.insert(key.trim().to_owned());
        assert_eq!(chars.next(), Some('"'), "a quoted value in {series}");
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => break,
                _ => {}
            }
        }
    }
    (name.to_owned(), keys)
}

/// The samples of an OpenMetrics text exposition: name → the label-name sets seen with it. The
/// sample names are the ones PromQL sees (`_total` of counters, `_bucket`/`_sum`/`_count` of
/// histograms), so no suffix rule is needed.
fn scraped_series(text: &str) -> BTreeMap<String, BTreeSet<BTreeSet<String>>> {
    let mut series: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The value follows the last space; exemplars (` # {...}`) are not used by the operator.
        let (sample, _value) = line.rsplit_once(' ').expect("a sample line has a value");
        let (name, keys) = parse_series(sample);
        series.entry(name).or_default().insert(keys);
    }
    series
}

// ---------------------------------------------------------------------------------------------
// promtool

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests_fire_and_stay_quiet() {
    let promtool = promtool();
    let dir = monitoring_dir();
    let checked = succeed(
        Command::new(&promtool)
            .args(["check", "rules", "alerts.yaml"])
            .current_dir(&dir),
    );
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
    let tested = succeed(
        Command::new(&promtool)
            .args(["test", "rules", "alerts_test.yaml"])
            .current_dir(&dir),
    );
    assert!(tested.contains("SUCCESS"), "{tested}");

    // Each alert has a test where it fires and one where it does not.
    let tests = read_yaml(&dir.join("alerts_test.yaml"));
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for case in tests["tests"].as_sequence().expect("tests") {
        for check in case["alert_rule_test"]
            .as_sequence()
            .expect("alert_rule_test")
        {
            let alert = check["alertname"].as_str().unwrap().to_owned();
            if check["exp_alerts"].as_sequence().is_some_and(Vec::is_empty) {
                quiet.insert(alert);
            } else {
                fires.insert(alert);
            }
        }
    }
    let alerts: BTreeSet<String> = read_yaml(&dir.join("alerts.yaml"))["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| r["alert"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fires, alerts, "every alert is tested firing");
    assert_eq!(quiet, alerts, "every alert is tested staying quiet");
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let mut queries = Vec::new();
    dashboard_queries(&dashboard(), &mut queries);
    let exprs: Vec<String> = queries
        .iter()
        .filter(|q| !q.starts_with("label_values("))
        .map(|q| as_promql(q))
        .collect();
    assert!(exprs.len() >= 10, "the dashboard's queries: {queries:?}");
    // promtool parses the expressions of recording rules: one rule per query.
    let rules: Vec<Json> = exprs
        .iter()
        .enumerate()
        .map(|(i, expr)| json!({"record": format!("dashboard:query_{i}"), "expr": expr}))
        .collect();
    let file = json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard-queries.yaml");
    fs::write(&path, serde_yaml::to_string(&file).unwrap()).unwrap();
    let checked = succeed(Command::new(promtool()).args(["check", "rules"]).arg(&path));
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{checked}"
    );
}

// ---------------------------------------------------------------------------------------------
// helm

fn helm_template(values: Option<&str>) -> Result<Vec<Yaml>, String> {
    use serde::Deserialize as _;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(chart::helm_binary().expect("Helm 4 is installed"));
    command
        .args(["template", "foundry-gateway-operator"])
        .arg(chart::chart_dir())
        .args(["--namespace", "foundry-system"]);
    if let Some(values) = values {
        let file = dir.path().join("values.yaml");
        fs::write(&file, values).unwrap();
        command.arg("--values").arg(file);
    }
    let output = command.stdin(Stdio::null()).output().expect("helm runs");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let text = String::from_utf8(output.stdout).unwrap();
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|document| Yaml::deserialize(document).expect("helm printed YAML"))
        .filter(|value| !value.is_null())
        .collect())
}

fn find<'a>(documents: &'a [Yaml], kind: &str, name: &str) -> Option<&'a Yaml> {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
}

const DASHBOARD: &str = "foundry-gateway-operator-dashboard";
const RULE: &str = "foundry-gateway-operator";

#[test]
fn the_chart_renders_the_dashboard_and_the_alerts_only_when_enabled_from_the_plain_files() {
    let defaults = helm_template(None).unwrap();
    assert!(find(&defaults, "ConfigMap", DASHBOARD).is_none());
    assert!(find(&defaults, "PrometheusRule", RULE).is_none());

    let docs = helm_template(Some(
        "monitoring:\n  dashboard:\n    enabled: true\n  prometheusRule:\n    enabled: true\n",
    ))
    .unwrap();
    let config_map = find(&docs, "ConfigMap", DASHBOARD).expect("the dashboard ConfigMap");
    assert_eq!(config_map["metadata"]["namespace"], "foundry-system");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped: Json = serde_json::from_str(
        config_map["data"]["foundry-gateway-operator.json"]
            .as_str()
            .unwrap(),
    )
    .expect("the ConfigMap holds JSON");
    assert_eq!(shipped, dashboard(), "the ConfigMap holds dashboard.json");

    // With default thresholds the PrometheusRule holds alerts.yaml as it is.
    let rule = find(&docs, "PrometheusRule", RULE).expect("the PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    let file = read_yaml(&monitoring_dir().join("alerts.yaml"));
    assert_eq!(rule["spec"]["groups"], file["groups"]);

    // The series keep the object's namespace label that the dashboard and the alerts read.
    let docs = helm_template(Some("serviceMonitor:\n  enabled: true\n")).unwrap();
    let monitor = find(&docs, "ServiceMonitor", RULE).expect("the ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["honorLabels"], true);
}

#[test]
fn the_alert_thresholds_come_from_the_values_and_the_rendered_rules_pass_promtool() {
    let docs = helm_template(Some(
        "monitoring:\n  prometheusRule:\n    enabled: true\n    labels: {release: kube-prometheus}\n    \
         gatewayInactiveFor: 30m\n    agentNotReadyFor: 1h\n    throttlingRatio: 0.25\n    \
         throttlingFor: 20m\n    operatorDownFor: 2m\n",
    ))
    .unwrap();
    let rule = find(&docs, "PrometheusRule", RULE).expect("the PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus");
    let rules: BTreeMap<String, &Yaml> = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| (r["alert"].as_str().unwrap().to_owned(), r))
        .collect();
    for (alert, duration) in [
        ("FoundryGatewayInactive", "30m"),
        ("FoundryPromptAgentNotReady", "1h"),
        ("FoundryThrottling", "20m"),
        ("FoundryGatewayOperatorDown", "2m"),
    ] {
        assert_eq!(rules[alert]["for"], duration, "{alert}");
    }
    let throttling = rules["FoundryThrottling"]["expr"].as_str().unwrap();
    assert!(throttling.trim_end().ends_with("> 0.25"), "{throttling}");
    assert!(!throttling.contains("0.05"), "{throttling}");

    // The rendered rules are still valid Prometheus rules.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rendered.yaml");
    fs::write(&path, serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
    let checked = succeed(Command::new(promtool()).args(["check", "rules"]).arg(&path));
    assert!(checked.contains("SUCCESS: 4 rules found"), "{checked}");
}

#[test]
fn the_values_schema_refuses_unknown_monitoring_keys_and_bad_thresholds() {
    for (values, complaint) in [
        ("monitoring:\n  dashboard:\n    enable: true\n", "enable"),
        ("monitoring:\n  grafana: {}\n", "grafana"),
        (
            "monitoring:\n  prometheusRule:\n    throttlingRatio: 2\n",
            "throttlingRatio",
        ),
        (
            "monitoring:\n  prometheusRule:\n    gatewayInactiveFor: soon\n",
            "gatewayInactiveFor",
        ),
    ] {
        let refused = helm_template(Some(values)).expect_err(values);
        assert!(refused.contains(complaint), "{values}: {refused}");
    }
}

// ---------------------------------------------------------------------------------------------
// the running operator

/// A ModelGateway connection with a static model list and an API key (`gateway-key`/`key`).
fn static_connection(connection: &str) -> Json {
    json!({
        "projectRef": {"name": "local"}, "connectionName": connection, "category": "ModelGateway",
        "target": stack().gateway.openai_target(),
        "probe": {"interval": "30s", "timeout": "5s", "failureThreshold": 1},
        "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                            "header": "Authorization", "format": "Bearer {api_key}"}},
        "models": {"static": [{"name": "gpt-4o"}]},
    })
}

fn agent(agent_name: &str, connection: &str) -> Json {
    json!({
        "projectRef": {"name": "local"}, "agentName": agent_name,
        "model": {"connectionRef": {"name": connection}, "name": "gpt-4o"},
        "instructions": "Be brief.",
    })
}

#[tokio::test]
async fn the_dashboard_and_the_alerts_use_only_metrics_the_running_operator_exports() {
    let w = World::new("monitoring", Duration::from_secs(600)).await;
    let tag = format!("mon{}", w.ns.name().rsplit('-').next().unwrap_or("x"));
    apply_secret(
        &w.ns,
        "gateway-key",
        json!({"key": stack().gateway.master_key.expose()}),
    )
    .await;
    apply(
        &w.ns,
        "GatewayConnection",
        "gw",
        static_connection(&format!("{tag}-gw")),
    )
    .await;
    apply(
        &w.ns,
        "PromptAgent",
        "agent",
        agent(&format!("{tag}-agent"), "gw"),
    )
    .await;
    // An agent on a connection that does not exist: a failed reconcile and a not-Ready object.
    apply(
        &w.ns,
        "PromptAgent",
        "orphan",
        agent(&format!("{tag}-orphan"), "missing"),
    )
    .await;
    let ready = |o: &Json| has_condition(o, "Ready", "True", None);
    wait_for(
        &w.ns,
        "GatewayConnection",
        "gw",
        Duration::from_secs(90),
        "Ready",
        ready,
    )
    .await;
    wait_for(
        &w.ns,
        "PromptAgent",
        "agent",
        Duration::from_secs(90),
        "Ready",
        ready,
    )
    .await;

    let dir = monitoring_dir();
    let mut used: BTreeMap<String, String> = BTreeMap::new();
    let mut queries = Vec::new();
    dashboard_queries(&dashboard(), &mut queries);
    for query in &queries {
        let names = metric_names(query);
        assert!(
            !names.is_empty(),
            "dashboard query without our metrics: {query}"
        );
        for name in names {
            used.entry(name)
                .or_insert_with(|| format!("dashboard.json: {query}"));
        }
    }
    for expr in alert_exprs(&read_yaml(&dir.join("alerts.yaml"))["groups"]) {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "alert without our metrics: {expr}");
        for name in names {
            used.entry(name)
                .or_insert_with(|| format!("alerts.yaml: {expr}"));
        }
    }
    let tests = read_yaml(&dir.join("alerts_test.yaml"));
    let inputs: Vec<(String, BTreeSet<String>)> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["input_series"].as_sequence().unwrap().iter())
        .map(|s| parse_series(s["series"].as_str().unwrap()))
        .collect();

    // Series appear as the operator gets to them (a failure, a probe): scrape until all are in.
    let started = Instant::now();
    let scraped = loop {
        let text = w.operator.metrics().expect("the operator serves /metrics");
        let scraped = scraped_series(&text);
        let missing: Vec<&String> = used.keys().filter(|n| !scraped.contains_key(*n)).collect();
        if missing.is_empty() {
            break scraped;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "metrics used but not exported by the operator: {:?}\nused by: {used:#?}\nscrape:\n{text}",
            missing
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    // The rule tests feed series with the operator's names and label names (Prometheus adds
    // `instance` and `job` to every scraped series).
    for (name, keys) in &inputs {
        let keys: BTreeSet<String> = keys
            .iter()
            .filter(|k| *k != "instance" && *k != "job")
            .cloned()
            .collect();
        let exported = scraped
            .get(name)
            .unwrap_or_else(|| panic!("alerts_test.yaml feeds {name}, which is not exported"));
        assert!(
            exported.contains(&keys),
            "alerts_test.yaml feeds {name} with labels {keys:?}; the operator exports {exported:?}"
        );
    }

    // The readiness gauge says what the objects' status says.
    let text = w.operator.metrics().unwrap();
    let ns = w.ns.name();
    for (kind, name, value) in [
        ("GatewayConnection", "gw", "1"),
        ("PromptAgent", "agent", "1"),
    ] {
        let line = format!(
            "foundry_gateway_object_ready{{kind=\"{kind}\",namespace=\"{ns}\",name=\"{name}\"}} {value}"
        );
        assert!(text.contains(&line), "no `{line}` in\n{text}");
    }
    let orphan = format!(
        "foundry_gateway_object_ready{{kind=\"PromptAgent\",namespace=\"{ns}\",name=\"orphan\"}} "
    );
    let orphan_value = text
        .lines()
        .find_map(|l| l.strip_prefix(orphan.as_str()))
        .unwrap_or_else(|| panic!("no `{orphan}` in\n{text}"));
    assert_ne!(orphan_value.trim(), "1", "the orphan agent is not Ready");
    assert!(
        text.contains(&format!(
            "foundry_gateway_gateway_active{{namespace=\"{ns}\",name=\"gw\"}} 1"
        )),
        "{text}"
    );
}
