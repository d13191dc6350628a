//! The operator binary on the test bed's Kubernetes with exactly the shipped RBAC: its
//! ServiceAccount may do what the operator needs and nothing an admin may; the process answers
//! `/readyz` and `/metrics`, takes its Lease, survives SIGKILL and restarts with the same flags.
//!
//! One Kubernetes serves the whole test binary: the running test bed (`$FOUNDRY_TESTBED_DIR` or
//! `cargo xtask testbed up`) if there is one, else one attached to this process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::http::HttpClient;
use foundry_gateway_testbed::operator::{
    self, LogFormat, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, Operator, OperatorOptions,
    RunningOperator, can_i, kubectl,
};
use foundry_gateway_testbed::stack::{Stack, StackOptions};
use foundry_gateway_testbed::{Options, Testbed, paths};

/// The test bed with the CRDs and the RBAC installed, and the operator's kubeconfig.
fn setup() -> &'static (Testbed, PathBuf) {
    static SETUP: OnceLock<(Testbed, PathBuf)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let testbed = Testbed::find_running(&paths::default_state_dir())
            .map_or_else(|| Testbed::start(Options::default()), Ok)
            .unwrap_or_else(|err| panic!("failed to start the test bed: {err}"));
        operator::install_crds(&testbed).unwrap();
        operator::install_rbac(&testbed).unwrap();
        // Applying again changes nothing and does not fail.
        operator::install_rbac(&testbed).unwrap();
        let kubeconfig = operator::operator_kubeconfig(&testbed).unwrap();
        (testbed, kubeconfig)
    })
}

fn admin_kubeconfig() -> PathBuf {
    setup().0.kubeconfig_path().to_path_buf()
}

fn lease_holder(name: &str) -> String {
    kubectl(
        &admin_kubeconfig(),
        &[
            "get",
            "lease",
            name,
            "--namespace",
            OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    )
    .unwrap()
}

fn start(dir: &tempfile::TempDir, adjust: impl FnOnce(&mut OperatorOptions)) -> RunningOperator {
    let mut options = OperatorOptions::new(dir.path(), &setup().1);
    adjust(&mut options);
    let started = Instant::now();
    let operator = Operator::start(options).unwrap();
    eprintln!(
        "The operator answered /readyz {:.1?} after its start",
        started.elapsed()
    );
    operator
}

fn get(operator: &RunningOperator, path: &str) -> u16 {
    HttpClient::plain(Duration::from_secs(5))
        .get(&format!("{}{path}", operator.admin_url), &[])
        .map_or(0, |reply| reply.status)
}

#[test]
fn the_service_account_has_the_shipped_rules_and_no_admin_powers() {
    let kubeconfig = &setup().1;
    let whoami = kubectl(
        kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .unwrap();
    assert_eq!(
        whoami,
        format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}")
    );
    let lease_ns = format!("--namespace={OPERATOR_NAMESPACE}");
    for allowed in [
        &[
            "watch",
            "foundryprojects.gateway.foundry.dev",
            "--all-namespaces",
        ][..],
        &[
            "patch",
            "promptagents.gateway.foundry.dev",
            "--subresource=status",
            "-n",
            "x",
        ],
        &[
            "update",
            "gatewayconnections.gateway.foundry.dev",
            "--subresource=finalizers",
            "-n",
            "x",
        ],
        &["list", "secrets", "--all-namespaces"],
        &[
            "create",
            "serviceaccounts",
            "--subresource=token",
            "-n",
            "x",
        ],
        &["create", "events.events.k8s.io", "-n", "x"],
        &["update", "leases.coordination.k8s.io", &lease_ns],
    ] {
        assert!(can_i(kubeconfig, allowed).unwrap(), "may {allowed:?}");
    }
    for denied in [
        &["delete", "namespaces"][..],
        &["*", "*"],
        &["create", "clusterrolebindings"],
        &["create", "secrets", "-n", "x"],
        &[
            "delete",
            "gatewayconnections.gateway.foundry.dev",
            "-n",
            "x",
        ],
        &["create", "pods", "-n", OPERATOR_NAMESPACE],
        &["update", "leases.coordination.k8s.io", "-n", "default"],
        &["delete", "leases.coordination.k8s.io", &lease_ns],
    ] {
        assert!(!can_i(kubeconfig, denied).unwrap(), "may not {denied:?}");
    }
    // The admin may, so the answers above come from the rules and not from a broken setup.
    assert!(can_i(&admin_kubeconfig(), &["delete", "namespaces"]).unwrap());
}

#[test]
fn the_operator_serves_its_admin_endpoints_and_takes_its_lease_as_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = start(&dir, |_| {});
    assert_eq!(get(&operator, "/readyz"), 200);
    assert_eq!(get(&operator, "/healthz"), 200);
    let metrics = operator.metrics().unwrap();
    assert!(metrics.contains("foundry_gateway_"), "{metrics}");

    let started = Instant::now();
    operator.wait_until_leader(Duration::from_secs(30)).unwrap();
    eprintln!("It held its Lease {:.1?} later", started.elapsed());
    assert_eq!(lease_holder(&operator.lease_name), operator.identity);
    operator
        .wait_for_log("Controllers started", Duration::from_secs(10))
        .unwrap();
    // Give the watches a moment: none of them may be refused.
    std::thread::sleep(Duration::from_secs(2));
    let log = operator.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the shipped RBAC refused something:\n{log}"
    );
    assert!(
        operator
            .log_path()
            .starts_with(dir.path().canonicalize().unwrap())
    );
}

#[test]
fn a_killed_operator_restarts_with_the_same_flags_and_takes_its_lease_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = start(&dir, |o| o.resync = Duration::from_secs(5));
    operator.wait_until_leader(Duration::from_secs(30)).unwrap();
    let first = operator.pid().unwrap();
    let args = operator.args().to_vec();

    operator.kill().unwrap();
    assert!(!operator.is_running());
    assert_eq!(operator.pid(), None);
    assert_eq!(
        get(&operator, "/readyz"),
        0,
        "nothing answers after SIGKILL"
    );
    // Killed, it could not release the Lease.
    assert_eq!(lease_holder(&operator.lease_name), operator.identity);

    let started = Instant::now();
    operator.restart().unwrap();
    let second = operator.pid().unwrap();
    assert_ne!(first, second);
    assert_eq!(operator.args(), &args[..]);
    // The same identity takes its own Lease back without waiting for it to expire.
    operator.wait_until_leader(Duration::from_secs(10)).unwrap();
    eprintln!("Restarted and leading again in {:.1?}", started.elapsed());
    assert_eq!(operator.log_paths().len(), 2);
    assert_eq!(
        operator
            .log_text()
            .matches("Admin server listening")
            .count(),
        2,
        "both runs' logs are kept"
    );

    operator.stop().unwrap();
    assert!(!operator.is_running());
    assert!(operator.log_text().contains("Shutdown requested"));
}

#[test]
fn a_stopped_operator_exits_by_itself_and_releases_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = start(&dir, |_| {});
    operator.wait_until_leader(Duration::from_secs(30)).unwrap();
    let started = Instant::now();
    operator.stop().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "SIGTERM took {took:?}:\n{}",
        operator.log_text()
    );
    assert_eq!(
        lease_holder(&operator.lease_name),
        "",
        "a graceful stop gives up the Lease"
    );
}

#[test]
fn json_logs_namespace_scoping_and_no_leader_election_reach_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut operator = start(&dir, |o| {
        o.log_format = LogFormat::Json;
        o.leader_elect = false;
        o.watch_namespace = Some(OPERATOR_NAMESPACE.to_owned());
        o.rust_log = Some("info".to_owned());
        o.extra_args = vec!["--concurrency".to_owned(), "2".to_owned()];
    });
    let args: Vec<String> = operator
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let joined = args.join(" ");
    assert!(joined.contains("--leader-elect false"), "{joined}");
    assert!(
        joined.contains(&format!("--watch-namespace {OPERATOR_NAMESPACE}")),
        "{joined}"
    );
    assert!(joined.contains("--concurrency 2"), "{joined}");
    operator
        .wait_for_log("Controllers started", Duration::from_secs(10))
        .unwrap();
    // Without leader election the only replica leads (the chart's operator-down alert reads it).
    assert_eq!(
        operator.metric("foundry_gateway_leader").unwrap(),
        Some(1.0)
    );
    let log = operator.log_text();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
        assert!(value.get("level").is_some(), "{line}");
    }
}

#[test]
fn an_operator_for_a_stack_trusts_its_ca_and_runs_as_the_service_account() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(StackOptions {
        kubernetes: true,
        ..StackOptions::default()
    })
    .unwrap();
    let options = OperatorOptions::for_stack(&stack, dir.path().join("operator")).unwrap();
    assert_eq!(options.extra_ca_file.as_deref(), Some(stack.ca_file()));
    assert_ne!(
        options.kubeconfig,
        stack.kube.as_ref().unwrap().kubeconfig_path(),
        "never the admin kubeconfig"
    );
    assert!(!can_i(&options.kubeconfig, &["delete", "namespaces"]).unwrap());
    let mut operator = Operator::start(options).unwrap();
    operator.wait_until_leader(Duration::from_secs(30)).unwrap();
    let args: Vec<String> = operator
        .args()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--extra-ca-file" && w[1] == stack.ca_file().display().to_string()),
        "{args:?}"
    );
}
