//! The Helm chart as users meet it: `helm lint` and `helm template` with default and non-default
//! values, checked by Helm against `values.schema.json`; RBAC without drift from
//! `config/rbac/role.yaml`, and per-namespace RBAC that keeps Secrets out of the ClusterRole; the
//! admission policy and the NetworkPolicy; generated files up to date; the Dockerfile's shape;
//! `helm install` and `helm uninstall` on the test bed, with the RBAC checked by the apiserver's
//! authorizer; and the GitOps health checks judging objects whose status went through the real
//! apiserver, each by the tool's own code: Argo CD's Lua by Argo CD's own runtime (argo-cd
//! v2.14.21's settings manager reads the README's `argocd-cm` from the apiserver, its util/lua and
//! gitops-engine's health package judge), kstatus and Flux's `healthCheckExprs` by cli-utils and
//! Flux's evaluator.
//!
//! Helm is the pinned Helm 4 of `cargo xtask chart helm` (this file includes that module). The Go
//! tools `tests/tools/kstatus` and `tests/tools/argocd-health` are built with the local Go into the
//! cache outside the repository, keyed by the version they pin (cli-utils, Argo CD) and a hash of
//! the module's files.

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../../crates/xtask/src/chart.rs"]
mod chart;

use std::collections::BTreeSet;
use std::fs::{self, File, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use foundry_gateway_testbed::paths;
use foundry_gateway_tests::harness::{TestNamespace, custom_resource, kubectl, testbed};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value as Json, json};
use serde_yaml::Value as Yaml;
use sha2::{Digest as _, Sha256};

// ---------------------------------------------------------------------------------------------
// helm

fn helm() -> Command {
    Command::new(chart::helm_binary().expect("Helm 4 is installed"))
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("failed to run {command:?}: {err}"))
}

fn succeed(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn non_default_values() -> PathBuf {
    chart::chart_dir()
        .join("ci")
        .join("non-default-values.yaml")
}

/// `helm template` of the chart as release `release` in `namespace`, one YAML value per document.
fn template(release: &str, namespace: &str, values: &[&Path], set: &[&str]) -> Vec<Yaml> {
    let mut command = helm();
    command
        .arg("template")
        .arg(release)
        .arg(chart::chart_dir())
        .args(["--namespace", namespace]);
    for file in values {
        command.arg("--values").arg(file);
    }
    for pair in set {
        command.args(["--set", pair]);
    }
    documents(&succeed(&mut command))
}

fn documents(text: &str) -> Vec<Yaml> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(|document| Yaml::deserialize(document).expect("helm printed YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    documents
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn only<'a>(documents: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn kinds(documents: &[Yaml]) -> BTreeSet<String> {
    documents
        .iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_owned))
        .collect()
}

fn strings(value: &Yaml) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_chart_lints_cleanly_with_default_and_non_default_values() {
    let chart = chart::chart_dir();
    succeed(helm().arg("lint").arg("--strict").arg(&chart));
    succeed(
        helm()
            .arg("lint")
            .arg("--strict")
            .arg(&chart)
            .arg("--values")
            .arg(non_default_values()),
    );
}

#[test]
fn default_values_render_a_cluster_wide_operator_with_leader_election_and_a_hardened_pod() {
    let docs = template("foundry-gateway-operator", "foundry-system", &[], &[]);
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(kinds(&docs), expected);

    let deployment = only(&docs, "Deployment");
    assert_eq!(deployment["metadata"]["name"], "foundry-gateway-operator");
    assert_eq!(deployment["metadata"]["namespace"], "foundry-system");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "foundry-gateway-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    for flag in [
        "--admin-addr=0.0.0.0:8080",
        "--log-format=json",
        "--leader-elect=true",
        "--lease-name=foundry-gateway-operator",
        "--concurrency=16",
        "--resync=10m",
        "--allow-operator-default-identity=false",
        "--digest-key-secret=foundry-gateway-operator-digest-key",
        "--allowed-authority-hosts=login.microsoftonline.com",
        "--allowed-arm-hosts=management.azure.com",
        "--allowed-foundry-hosts=*.services.ai.azure.com",
        "--max-response-bytes=1048576",
        "--probe-concurrency=16",
        "--probe-concurrency-per-namespace=4",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    assert!(
        !args.iter().any(
            |a| a.starts_with("--watch-namespace") // and --watch-namespaces
            || a.starts_with("--extra-ca-file")
        ),
        "{args:?}"
    );
    // The Lease namespace and the replica identity come from the downward API.
    for (name, field) in [
        ("POD_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ] {
        let env = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"));
        assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], field);
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);

    let service = only(&docs, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");
    let binding = only(&docs, "ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["namespace"], "foundry-system");
    assert_eq!(binding["subjects"][0]["name"], "foundry-gateway-operator");
}

#[test]
fn non_default_values_render_a_namespaced_operator_with_workload_identity_extra_ca_and_metrics() {
    let docs = template("rel", "ops", &[&non_default_values()], &[]);
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());

    // The operator's Role is in the watched namespace; the leader-election Role in the release's.
    let roles = of_kind(&docs, "Role");
    let namespaces: BTreeSet<&str> = roles
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(namespaces, ["ops", "team-agents"].into());
    let binding = of_kind(&docs, "RoleBinding")
        .into_iter()
        .find(|b| b["metadata"]["namespace"] == "team-agents")
        .expect("a RoleBinding in the watched namespace");
    assert_eq!(binding["subjects"][0]["namespace"], "ops");

    let account = only(&docs, "ServiceAccount");
    let annotations = &account["metadata"]["annotations"];
    assert_eq!(
        annotations["azure.workload.identity/client-id"],
        "11111111-1111-1111-1111-111111111111"
    );
    assert_eq!(
        annotations["azure.workload.identity/tenant-id"],
        "22222222-2222-2222-2222-222222222222"
    );
    assert_eq!(annotations["example.com/owner"], "platform-team");

    let deployment = only(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let template = &deployment["spec"]["template"];
    assert_eq!(
        template["metadata"]["labels"]["azure.workload.identity/use"],
        "true"
    );
    assert_eq!(template["metadata"]["labels"]["team"], "platform");
    let pod = &template["spec"];
    let args = strings(&pod["containers"][0]["args"]);
    for flag in [
        "--watch-namespace=team-agents",
        "--extra-ca-file=/etc/foundry-gateway-operator/extra-ca/bundle.pem",
        "--log-format=plain",
        "--resync=1h30m",
        "--allow-operator-default-identity=true",
        "--lease-name=rel-foundry-gateway-operator",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "extra-ca")
        .expect("the extra CA volume");
    assert_eq!(volume["secret"]["secretName"], "company-ca");
    assert_eq!(volume["secret"]["items"][0]["key"], "bundle.pem");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "extra-ca")
        .expect("the extra CA mount");
    assert_eq!(mount["mountPath"], "/etc/foundry-gateway-operator/extra-ca");
    assert_eq!(mount["readOnly"], true);

    let monitor = only(&docs, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
    assert_eq!(
        only(&docs, "Service")["spec"]["ports"][0]["name"],
        monitor["spec"]["endpoints"][0]["port"]
    );
    assert_eq!(
        only(&docs, "PodDisruptionBudget")["spec"]["maxUnavailable"],
        "34%"
    );

    assert!(of_kind(&docs, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&docs, "ValidatingAdmissionPolicyBinding").is_empty());
    let network = &only(&docs, "NetworkPolicy")["spec"];
    assert_eq!(
        network["ingress"][0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "prometheus"
    );
    let https = &network["egress"][2];
    let ports: Vec<u64> = https["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(ports, [443, 8443]);
}

/// Every flag the chart passes, with default and non-default values, is one the operator
/// binary knows and accepts (clap stops at `--help` only after parsing what comes before it).
#[test]
fn the_operator_accepts_every_flag_the_chart_passes() {
    let binary = foundry_gateway_testbed::operator::operator_binary().expect("operator binary");
    let policy = "identity.managedIdentity.allowed={team-a=11111111-2222-3333-4444-555555555555,*=system},deniedNetworks={169.254.0.0/16,10.0.0.0/8},allowedHosts.foundry={*.services.ai.azure.us,project.example.com}";
    let renders = [
        template("foundry-gateway-operator", "foundry-system", &[], &[]),
        template("rel", "team-a", &[non_default_values().as_path()], &[]),
        template(
            "rel",
            "foundry-system",
            &[],
            &["rbac.namespaces={team-a,team-b}", policy],
        ),
    ];
    for docs in &renders {
        let args =
            strings(&only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
        let output = Command::new(&binary)
            .args(&args)
            .arg("--help")
            .env_clear()
            .output()
            .expect("the operator runs");
        assert!(
            output.status.success(),
            "the operator refused the chart's flags {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let args = strings(
        &only(&renders[2], "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"],
    );
    for flag in [
        "--allowed-managed-identities=team-a=11111111-2222-3333-4444-555555555555,*=system",
        "--denied-networks=169.254.0.0/16,10.0.0.0/8",
        "--allowed-foundry-hosts=*.services.ai.azure.us,project.example.com",
        "--watch-namespaces=team-a,team-b",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
}

#[test]
fn values_that_break_the_schema_or_the_chart_rules_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("logFormat: xml\n", "logFormat"),
        ("replicas: two\n", "replicas"),
        ("resync: 10 minutes\n", "resync"),
        ("extraCA:\n  name: ca\n  kind: Volume\n", "kind"),
        ("watchNamespace: Team_Agents\n", "watchNamespace"),
        ("image:\n  pullPolicy: Sometimes\n", "pullPolicy"),
        ("image:\n  digest: latest\n", "digest"),
        ("image:\n  digest: sha256:ABC\n", "digest"),
        ("serviceMonitor:\n  enabled: yes please\n", "enabled"),
        ("replica: 3\n", "replica"),
        ("podDisruptionBudget:\n  minAvailable: 1\n", "minAvailable"),
        ("rbac:\n  namespaces: [Team_A]\n", "namespaces"),
        ("rbac:\n  namespaces: [a, a]\n", "namespaces"),
        ("admissionPolicy:\n  enabled: always\n", "enabled"),
        (
            "networkPolicy:\n  egressCIDRs: [10.0.0.0/8]\n",
            "egressCIDRs",
        ),
        (
            "networkPolicy:\n  metricsFrom: [{namespace: monitoring}]\n",
            "namespace",
        ),
        ("networkPolicy:\n  egressPorts: [0]\n", "egressPorts"),
    ];
    for (index, (values, field)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{index}.yaml"));
        fs::write(&file, values).unwrap();
        let output = run(helm()
            .arg("template")
            .arg("x")
            .arg(chart::chart_dir())
            .arg("--values")
            .arg(&file));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values:?} was accepted");
        assert!(
            stderr.contains("don't meet the specifications of the schema")
                && stderr.contains(field),
            "{values:?} was refused for another reason: {stderr}"
        );
    }
    // Rules across keys, checked by the templates.
    for (set, message) in [
        (
            &["replicas=3", "leaderElection.enabled=false"][..],
            "needs leaderElection.enabled",
        ),
        (
            &["azureWorkloadIdentity.enabled=true"][..],
            "needs azureWorkloadIdentity.clientId",
        ),
        (
            &["serviceAccount.create=false"][..],
            "serviceAccount.name is required",
        ),
        (
            &["watchNamespace=team-agents", "rbac.namespaces={team-a}"][..],
            "set watchNamespace or rbac.namespaces, not both",
        ),
        (
            &["networkPolicy.enabled=true"][..],
            "networkPolicy.enabled needs networkPolicy.apiServerCIDRs",
        ),
    ] {
        let mut command = helm();
        command.arg("template").arg("x").arg(chart::chart_dir());
        for pair in set {
            command.args(["--set", pair]);
        }
        let output = run(&mut command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{set:?} was accepted");
        assert!(stderr.contains(message), "{set:?}: {stderr}");
    }
}

#[test]
fn an_image_digest_pins_the_pods_to_that_image_and_a_packaged_chart_carries_it() {
    let image = |set: &[&str]| {
        let documents = template("x", "foundry-system", &[], set);
        only(&documents, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let version = chart::workspace_version().unwrap();
    assert_eq!(
        image(&[]),
        format!("ghcr.io/foundry-gateway/foundry-gateway-operator:{version}"),
        "no digest: the tag, by default the appVersion"
    );
    let digest = format!("sha256:{}", "ab".repeat(32));
    assert_eq!(
        image(&[
            "image.repository=mirror.example/op",
            &format!("image.digest={digest}"),
            "image.tag=ignored"
        ]),
        format!("mirror.example/op@{digest}")
    );

    // What a release publishes: the chart at its version, pinned to the released digest.
    let out = tempfile::tempdir().unwrap();
    let archive = chart::package(&chart::Package {
        version: "9.8.7-test.1",
        image_repository: Some("127.0.0.1:5000/foundry-gateway-operator"),
        image_digest: Some(&digest),
        out: out.path(),
    })
    .unwrap();
    assert!(archive.ends_with("foundry-gateway-operator-9.8.7-test.1.tgz"));
    let shown: Yaml =
        serde_yaml::from_str(&succeed(helm().args(["show", "chart"]).arg(&archive))).unwrap();
    assert_eq!(shown["version"], Yaml::from("9.8.7-test.1"), "{shown:?}");
    assert_eq!(shown["appVersion"], Yaml::from("9.8.7-test.1"), "{shown:?}");
    let rendered = documents(&succeed(helm().args(["template", "x"]).arg(&archive)));
    assert_eq!(
        only(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
        Yaml::from(format!("127.0.0.1:5000/foundry-gateway-operator@{digest}"))
    );
    let refused = chart::package(&chart::Package {
        version: "9.8.7",
        image_repository: None,
        image_digest: Some("sha256:short"),
        out: out.path(),
    });
    assert!(
        refused.is_err(),
        "a malformed digest is refused before packaging"
    );
}

/// The documents of `config/rbac/role.yaml`.
fn shipped_rbac() -> Vec<Yaml> {
    let path = paths::repo_root()
        .join("config")
        .join("rbac")
        .join("role.yaml");
    documents(&fs::read_to_string(path).unwrap())
}

#[test]
fn the_rendered_rbac_has_exactly_the_rules_of_config_rbac() {
    let shipped = shipped_rbac();
    let cluster_rules = &only(&shipped, "ClusterRole")["rules"];
    let lease_rules = &only(&shipped, "Role")["rules"];
    assert!(cluster_rules.as_sequence().is_some_and(|r| !r.is_empty()));

    let cluster_wide = template("foundry-gateway-operator", "foundry-system", &[], &[]);
    assert_eq!(&only(&cluster_wide, "ClusterRole")["rules"], cluster_rules);
    assert_eq!(&only(&cluster_wide, "Role")["rules"], lease_rules);

    // The default release renders the same names and subjects as the shipped files.
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        let ours = only(&cluster_wide, kind);
        let theirs = only(&shipped, kind);
        assert_eq!(
            ours["metadata"]["name"], theirs["metadata"]["name"],
            "{kind}"
        );
        assert_eq!(ours["roleRef"], theirs["roleRef"], "{kind}");
        assert_eq!(ours["subjects"], theirs["subjects"], "{kind}");
    }

    let namespaced = template(
        "foundry-gateway-operator",
        "foundry-system",
        &[],
        &["watchNamespace=team-agents"],
    );
    let operator_role = of_kind(&namespaced, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "team-agents")
        .expect("the operator's Role in the watched namespace");
    assert_eq!(&operator_role["rules"], cluster_rules);
    // The operator's own namespace Role is the same in every mode.
    let own = of_kind(&namespaced, "Role")
        .into_iter()
        .find(|r| r["metadata"]["namespace"] == "foundry-system")
        .expect("the Role in the release namespace");
    assert_eq!(&own["rules"], lease_rules);
}

/// Whether a rule grants anything on Secrets, ConfigMaps or ServiceAccount tokens.
fn touches_references(rule: &Yaml) -> bool {
    strings(&rule["resources"]).iter().any(|r| {
        matches!(
            r.as_str(),
            "secrets" | "configmaps" | "serviceaccounts/token"
        )
    })
}

#[test]
fn per_namespace_rbac_reads_secrets_only_in_the_listed_namespaces_and_watches_only_those() {
    let shipped = shipped_rbac();
    let all_rules = strings_of_rules(&only(&shipped, "ClusterRole")["rules"]);
    let docs = template(
        "foundry-gateway-operator",
        "foundry-system",
        &[],
        &["rbac.namespaces={team-a,team-b}"],
    );

    // The ClusterRole keeps the three kinds and events, and nothing that reads a reference.
    let cluster_rules = only(&docs, "ClusterRole")["rules"].as_sequence().unwrap();
    assert!(!cluster_rules.is_empty());
    assert!(
        !cluster_rules.iter().any(touches_references),
        "{cluster_rules:?}"
    );

    // One Role per listed namespace with exactly the reference rules, bound to the operator.
    let fullname = "foundry-gateway-operator";
    for namespace in ["team-a", "team-b"] {
        let role = of_kind(&docs, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no Role in {namespace}"));
        assert_eq!(role["metadata"]["name"], fullname);
        let rules = role["rules"].as_sequence().unwrap();
        assert!(rules.iter().all(touches_references), "{rules:?}");
        let mut together = strings_of_rules(&Yaml::Sequence(cluster_rules.clone()));
        together.extend(strings_of_rules(&role["rules"]));
        together.sort();
        let mut expected = all_rules.clone();
        expected.sort();
        assert_eq!(
            together, expected,
            "the ClusterRole and the Role of {namespace} split config/rbac"
        );
        let binding = of_kind(&docs, "RoleBinding")
            .into_iter()
            .find(|b| b["metadata"]["namespace"] == namespace)
            .unwrap_or_else(|| panic!("no RoleBinding in {namespace}"));
        assert_eq!(binding["roleRef"]["name"], fullname);
        assert_eq!(binding["subjects"][0]["name"], fullname);
        assert_eq!(binding["subjects"][0]["namespace"], "foundry-system");
    }
    let namespaces: BTreeSet<&str> = of_kind(&docs, "Role")
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(namespaces, ["foundry-system", "team-a", "team-b"].into());

    let args =
        strings(&only(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(
        args.iter().any(|a| a == "--watch-namespaces=team-a,team-b"),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--watch-namespace=")),
        "{args:?}"
    );
}

/// Each rule as one comparable line.
fn strings_of_rules(rules: &Yaml) -> Vec<String> {
    rules
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|rule| serde_json::to_string(&serde_json::to_value(rule).unwrap()).unwrap())
        .collect()
}

#[test]
fn the_operator_namespace_role_reads_only_its_own_digest_key_secret() {
    for (set, name) in [
        (&[][..], "foundry-gateway-operator-digest-key"),
        (
            &[
                "fullnameOverride=fgo",
                "leaderElection.enabled=false",
                "replicas=1",
            ][..],
            "fgo-digest-key",
        ),
    ] {
        let docs = template("foundry-gateway-operator", "foundry-system", &[], set);
        let role = of_kind(&docs, "Role")
            .into_iter()
            .find(|r| r["metadata"]["namespace"] == "foundry-system")
            .unwrap_or_else(|| panic!("{set:?}: no Role in the release namespace"));
        let rules = role["rules"].as_sequence().unwrap();
        let secret_rules: Vec<&Yaml> = rules
            .iter()
            .filter(|r| strings(&r["resources"]) == ["secrets"])
            .collect();
        assert_eq!(secret_rules.len(), 2, "{set:?}: {rules:?}");
        let get = secret_rules
            .iter()
            .find(|r| strings(&r["verbs"]) == ["get"])
            .expect("a get rule");
        assert_eq!(strings(&get["resourceNames"]), [name], "{set:?}");
        let create = secret_rules
            .iter()
            .find(|r| strings(&r["verbs"]) == ["create"])
            .expect("a create rule");
        assert!(create["resourceNames"].is_null(), "{set:?}");
        let leases = rules.iter().any(|r| strings(&r["resources"]) == ["leases"]);
        assert_eq!(
            leases,
            set.is_empty(),
            "{set:?}: the Lease rule follows leaderElection.enabled"
        );
        let args = strings(
            &only(&docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"],
        );
        let flag = format!("--digest-key-secret={name}");
        assert!(args.contains(&flag), "{set:?}: {args:?}");
    }
}

#[test]
fn the_admission_policy_renders_by_default_denies_and_can_be_turned_off() {
    let docs = template("rel", "ops", &[], &[]);
    let policy = only(&docs, "ValidatingAdmissionPolicy");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(
        policy["metadata"]["name"],
        "rel-foundry-gateway-operator-reference-access"
    );
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let rule = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(strings(&rule["apiGroups"]), ["gateway.foundry.dev"]);
    assert_eq!(strings(&rule["operations"]), ["CREATE", "UPDATE"]);
    // The main resources only: the operator's status writes are not matched.
    assert_eq!(
        strings(&rule["resources"]),
        ["foundryprojects", "gatewayconnections", "promptagents"]
    );
    // Every reference field of the three kinds is checked, each with its own message.
    let messages: Vec<String> = policy["spec"]["validations"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["messageExpression"].as_str().map(str::to_owned))
        .collect();
    for field in [
        "spec.auth.apiKey.secretRef",
        "spec.auth.oauth2.clientSecretRef",
        "].valueFrom",
        "spec.identity.clientSecret.secretRef",
        "spec.identity.workloadIdentity.serviceAccountName",
        "spec.instructionsFrom",
    ] {
        assert!(
            messages.iter().any(|m| m.contains(field)),
            "no message names {field}: {messages:?}"
        );
    }
    let binding = only(&docs, "ValidatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(strings(&binding["spec"]["validationActions"]), ["Deny"]);

    let off = template("rel", "ops", &[], &["admissionPolicy.enabled=false"]);
    assert!(of_kind(&off, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&off, "ValidatingAdmissionPolicyBinding").is_empty());
}

#[test]
fn the_finalizer_policy_renders_by_default_for_connections_and_agents_and_can_be_turned_off() {
    let docs = template("rel", "ops", &[], &[]);
    let policy = only(&docs, "MutatingAdmissionPolicy");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    assert_eq!(
        policy["metadata"]["name"],
        "rel-foundry-gateway-operator-finalizer"
    );
    // Never blocks a create: without the policy the operator adds the finalizer itself.
    assert_eq!(policy["spec"]["failurePolicy"], "Ignore");
    let rule = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(strings(&rule["operations"]), ["CREATE"]);
    assert_eq!(
        strings(&rule["resources"]),
        ["gatewayconnections", "promptagents"]
    );
    let expression = policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]
        .as_str()
        .unwrap();
    assert!(
        expression.contains("gateway.foundry.dev/finalizer"),
        "{expression}"
    );
    let binding = only(&docs, "MutatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);

    let off = template("rel", "ops", &[], &["admissionPolicy.finalizer=false"]);
    assert!(of_kind(&off, "MutatingAdmissionPolicy").is_empty());
    assert!(of_kind(&off, "MutatingAdmissionPolicyBinding").is_empty());
    // The reference policy does not depend on it.
    assert_eq!(of_kind(&off, "ValidatingAdmissionPolicy").len(), 1);
}

#[test]
fn the_network_policy_admits_only_the_metrics_scraper_and_keeps_the_metadata_address_out() {
    let default = template("rel", "ops", &[], &[]);
    assert!(
        of_kind(&default, "NetworkPolicy").is_empty(),
        "off by default"
    );

    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("network.yaml");
    fs::write(
        &values,
        "networkPolicy:\n  enabled: true\n  apiServerCIDRs: [10.0.0.1/32]\n  metricsFrom:\n    \
         - namespaceSelector:\n        matchLabels:\n          kubernetes.io/metadata.name: monitoring\n",
    )
    .unwrap();
    let docs = template("rel", "ops", &[&values], &[]);
    let policy = only(&docs, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(
        spec["podSelector"]["matchLabels"],
        only(&docs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(strings(&spec["policyTypes"]), ["Ingress", "Egress"]);

    // Ingress: the admin port, from the monitoring namespace only.
    let ingress = spec["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(ingress[0]["ports"][0]["port"], "admin");
    assert_eq!(ingress[0]["ports"].as_sequence().unwrap().len(), 1);

    // Egress: DNS, the API server, and HTTPS anywhere but link-local.
    let egress = spec["egress"].as_sequence().unwrap();
    let ports = |rule: &Yaml| -> Vec<(u64, String)> {
        rule["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["port"].as_u64().unwrap(),
                    p["protocol"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(egress.len(), 3, "{egress:?}");
    assert_eq!(
        ports(&egress[0]),
        [(53, "UDP".to_owned()), (53, "TCP".to_owned())]
    );
    assert_eq!(
        egress[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"],
        "kube-dns"
    );
    assert_eq!(egress[1]["to"][0]["ipBlock"]["cidr"], "10.0.0.1/32");
    assert!(ports(&egress[1]).contains(&(443, "TCP".to_owned())));
    assert_eq!(ports(&egress[2]), [(443, "TCP".to_owned())]);
    let block = &egress[2]["to"][0]["ipBlock"];
    assert_eq!(block["cidr"], "0.0.0.0/0");
    assert_eq!(strings(&block["except"]), ["169.254.0.0/16"]);
    // 169.254.169.254 is the cloud metadata address.
    assert_eq!(egress[2]["to"].as_sequence().unwrap().len(), 1);

    // Without metricsFrom nothing may connect.
    let closed = template(
        "rel",
        "ops",
        &[],
        &[
            "networkPolicy.enabled=true",
            "networkPolicy.apiServerCIDRs={10.0.0.1/32}",
        ],
    );
    let closed = only(&closed, "NetworkPolicy");
    assert_eq!(closed["spec"]["ingress"], Yaml::Sequence(Vec::new()));
}

#[test]
fn the_checked_in_deploy_manifest_and_chart_readme_are_up_to_date() {
    for (relative, expected) in chart::generated_files().unwrap() {
        let current = fs::read_to_string(paths::repo_root().join(&relative)).unwrap_or_default();
        assert!(
            current == expected,
            "{relative} is out of date: run `cargo xtask chart render` and commit the result"
        );
    }
    // Plain `kubectl apply` users get the namespace, the CRDs and the default release.
    let text = fs::read_to_string(paths::repo_root().join(chart::DEPLOY_MANIFEST)).unwrap();
    let docs = documents(&text);
    assert_eq!(
        only(&docs, "Namespace")["metadata"]["name"],
        "foundry-system"
    );
    assert_eq!(of_kind(&docs, "CustomResourceDefinition").len(), 3);
    assert_eq!(
        only(&docs, "Deployment")["metadata"]["namespace"],
        "foundry-system"
    );
}

/// Plain scalars that YAML 1.2 (serde_yaml, the generators) reads as strings but YAML 1.1 (the
/// Go YAML of kubectl and Helm) reads as booleans.
const YAML_1_1_BOOLEANS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// `file:line: text` of every plain scalar, key or value, that YAML 1.1 reads as a boolean.
fn yaml_1_1_booleans(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start();
        if content.starts_with('#') {
            continue;
        }
        let item = content.strip_prefix("- ").unwrap_or(content);
        let (key, value) = match item.split_once(": ") {
            Some((key, value)) => (Some(key), value),
            None => match item.strip_suffix(':') {
                Some(key) => (Some(key), ""),
                None => (None, item),
            },
        };
        let ambiguous = |word: &str| YAML_1_1_BOOLEANS.contains(&word.trim());
        if key.is_some_and(ambiguous) || ambiguous(value) {
            found.push(format!("{}:{}: {}", path.display(), number + 1, content));
        }
    }
    found
}

#[test]
fn the_manifests_users_apply_mean_the_same_to_kubectl_and_helm_as_to_our_generators() {
    let root = paths::repo_root();
    let mut files = vec![root.join(chart::DEPLOY_MANIFEST)];
    for dir in [
        "config/admission",
        "config/crd",
        "config/samples",
        "charts/foundry-gateway-operator/crds",
    ] {
        let mut yaml: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        yaml.sort();
        files.extend(yaml);
    }
    let found: Vec<String> = files.iter().flat_map(|f| yaml_1_1_booleans(f)).collect();
    // kubectl and Helm would apply such an enum value or field as `false`/`true`: a CRD enum
    // `[..., Off]` becomes `[..., false]` and the value can never be set.
    assert!(
        found.is_empty(),
        "unquoted YAML 1.1 booleans (quote them in the generator):\n{}",
        found.join("\n")
    );
}

/// The fenced YAML block of a generated README section.
fn readme_block(name: &str) -> Yaml {
    let readme = fs::read_to_string(chart::chart_dir().join("README.md")).unwrap();
    let begin = format!("<!-- generated:{name}:begin -->");
    let section = &readme[readme.find(&begin).expect("the section") + begin.len()..];
    let body = section
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(yaml, _)| yaml)
        .expect("a fenced YAML block");
    serde_yaml::from_str(body).unwrap()
}

#[test]
fn the_readme_snippets_hold_the_health_check_files_verbatim() {
    let config_map = readme_block("argocd");
    assert_eq!(config_map["metadata"]["name"], "argocd-cm");
    let data = config_map["data"].as_mapping().unwrap();
    let scripts = chart::argocd_scripts(&chart::chart_dir()).unwrap();
    let kinds: Vec<&str> = scripts.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["FoundryProject", "GatewayConnection", "PromptAgent"]
    );
    assert_eq!(data.len(), scripts.len());
    for (kind, script) in &scripts {
        let key = format!("resource.customizations.health.gateway.foundry.dev_{kind}");
        assert_eq!(data[key.as_str()].as_str(), Some(script.as_str()), "{key}");
    }

    let kustomization = readme_block("flux");
    assert_eq!(
        kustomization["apiVersion"],
        "kustomize.toolkit.fluxcd.io/v1"
    );
    let file: Yaml = serde_yaml::from_str(
        &fs::read_to_string(chart::chart_dir().join(chart::FLUX_EXPRS)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        kustomization["spec"]["healthCheckExprs"],
        file["healthCheckExprs"]
    );
    assert_eq!(kustomization["spec"]["wait"], true);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// The Dockerfile's instructions: continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = fs::read_to_string(paths::repo_root().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part.trim());
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
                pending.clear();
            }
        }
    }
    instructions
}

/// The `[[bin]]` names of a crate.
fn binary_names(crate_dir: &str) -> Vec<String> {
    let text = fs::read_to_string(paths::repo_root().join(crate_dir).join("Cargo.toml")).unwrap();
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name = ") {
            names.push(value.trim_matches('"').to_owned());
        }
    }
    names
}

#[test]
fn the_dockerfile_builds_both_binaries_once_and_runs_each_as_non_root() {
    const BUILD: &str =
        "cargo build --release --locked -p foundry-gateway-operator -p foundry-gateway-emulator";
    let instructions = dockerfile_instructions();
    // Stages in order; the last one is the default target.
    let stages: Vec<(usize, String)> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (keyword, _))| keyword == "FROM")
        .map(|(index, (_, rest))| {
            let name = rest
                .rsplit_once(" AS ")
                .map(|(_, name)| name.trim().to_owned())
                .expect("every stage is named");
            (index, name)
        })
        .collect();
    let names: Vec<&str> = stages.iter().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["builder", "emulator", "operator"]);
    let stage = |name: &str| -> &[(String, String)] {
        let position = stages.iter().position(|(_, n)| n == name).unwrap();
        let start = stages[position].0;
        let end = stages
            .get(position + 1)
            .map_or(instructions.len(), |(index, _)| *index);
        &instructions[start..end]
    };

    // The builder uses the pinned toolchain and runs the documented release build.
    let toolchain = fs::read_to_string(paths::repo_root().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| l.strip_prefix("channel = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap();
    assert!(
        instructions
            .iter()
            .any(|(k, rest)| k == "ARG" && *rest == format!("RUST_VERSION={channel}")),
        "the Dockerfile's RUST_VERSION is not the toolchain channel {channel}"
    );
    let builds: Vec<&String> = stage("builder")
        .iter()
        .filter(|(k, rest)| k == "RUN" && rest.contains("cargo build"))
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(builds.len(), 1, "one release build");
    assert!(builds[0].contains(BUILD), "{}", builds[0]);
    let readme = fs::read_to_string(chart::chart_dir().join("README.md")).unwrap();
    assert!(
        readme.contains(BUILD),
        "the chart README documents the image build"
    );
    assert!(
        fs::read_to_string(paths::repo_root().join("crates/operator/Cargo.toml"))
            .unwrap()
            .contains("name = \"foundry-gateway-operator\"")
    );
    assert!(
        fs::read_to_string(paths::repo_root().join("crates/emulator/Cargo.toml"))
            .unwrap()
            .contains("name = \"foundry-gateway-emulator\"")
    );

    let admin_port = {
        let values: Yaml = serde_yaml::from_str(
            &fs::read_to_string(chart::chart_dir().join("values.yaml")).unwrap(),
        )
        .unwrap();
        values["adminPort"].as_u64().unwrap().to_string()
    };
    for (name, crate_dir, port) in [
        ("operator", "crates/operator", admin_port.as_str()),
        ("emulator", "crates/emulator", "8443"),
    ] {
        let binary = binary_names(crate_dir).pop().expect("a [[bin]]");
        let instructions = stage(name);
        let has = |keyword: &str, predicate: &dyn Fn(&str) -> bool| {
            instructions
                .iter()
                .any(|(k, rest)| k == keyword && predicate(rest))
        };
        assert!(
            has("FROM", &|rest| rest.contains("distroless")
                && rest.contains("nonroot")),
            "{name}: a minimal non-root base"
        );
        assert!(
            has("COPY", &|rest| rest.starts_with("--from=builder")
                && rest.contains(&format!("/out/{binary} "))),
            "{name}: copies {binary} from the builder"
        );
        assert!(
            has("USER", &|rest| rest == "65532:65532"),
            "{name}: USER 65532:65532"
        );
        assert!(
            has("ENTRYPOINT", &|rest| rest
                .contains(&format!("/usr/local/bin/{binary}\""))),
            "{name}: runs {binary}"
        );
        assert!(has("EXPOSE", &|rest| rest == port), "{name}: EXPOSE {port}");
        for label in ["title", "source", "licenses", "version", "description"] {
            assert!(
                has("LABEL", &|rest| rest
                    .contains(&format!("org.opencontainers.image.{label}="))),
                "{name}: OCI label {label}"
            );
        }
        // USER comes after the last instruction that could need root.
        let user = instructions.iter().rposition(|(k, _)| k == "USER").unwrap();
        assert!(
            !instructions[user..]
                .iter()
                .any(|(k, _)| k == "RUN" || k == "COPY"),
            "{name}: nothing runs as root after USER"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// helm install on the test bed

fn helm_on_testbed() -> Command {
    let mut command = helm();
    command.arg("--kubeconfig").arg(testbed().kubeconfig_path());
    command
}

/// A short release name unique on the test bed (cluster-scoped objects carry it).
fn release_for(ns: &TestNamespace) -> String {
    let suffix = ns.name().rsplit('-').next().unwrap();
    format!("fgo-{suffix}")
}

fn can_i(verb: &str, resource: &str, namespace: Option<&str>, account: &str) -> bool {
    let mut command = kubectl();
    command.args(["auth", "can-i", verb, resource, "--as", account]);
    match namespace {
        Some(ns) => command.args(["--namespace", ns]),
        None => command.arg("--all-namespaces"),
    };
    let output = run(&mut command);
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

#[tokio::test]
async fn helm_installs_and_uninstalls_the_cluster_wide_operator_on_the_test_bed() {
    let ns = TestNamespace::new("helm-install").await;
    let client = ns.client().clone();
    let release = release_for(&ns);
    let fullname = format!("{release}-foundry-gateway-operator");

    // No kubelet runs here: the release installs, its pods never start, and Helm does not wait.
    let notes = succeed(
        helm_on_testbed()
            .args(["install", &release])
            .arg(chart::chart_dir())
            .args(["--namespace", ns.name()]),
    );
    assert!(notes.contains("kubectl get foundry -A"), "{notes}");
    let status = succeed(helm_on_testbed().args(["status", &release, "--namespace", ns.name()]));
    assert!(status.contains("STATUS: deployed"), "{status}");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for plural in ["foundryprojects", "gatewayconnections", "promptagents"] {
        let crd = crds
            .get(&format!("{plural}.gateway.foundry.dev"))
            .await
            .unwrap();
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{plural} is not Established");
    }
    Api::<ServiceAccount>::namespaced(client.clone(), ns.name())
        .get(&fullname)
        .await
        .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns.name())
        .get(&fullname)
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), ns.name())
        .get(&format!("{fullname}-metrics"))
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns.name())
        .get(&fullname)
        .await
        .unwrap();
    let role = Api::<ClusterRole>::all(client.clone())
        .get(&fullname)
        .await
        .unwrap();
    assert_eq!(
        serde_yaml::to_value(role.rules.unwrap()).unwrap(),
        only(&shipped_rbac(), "ClusterRole")["rules"]
    );
    let binding = Api::<ClusterRoleBinding>::all(client.clone())
        .get(&fullname)
        .await
        .unwrap();
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.namespace.as_deref(), Some(ns.name()));
    Api::<Role>::namespaced(client.clone(), ns.name())
        .get(&format!("{fullname}-leader-election"))
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns.name())
        .get(&format!("{fullname}-leader-election"))
        .await
        .unwrap();
    let policy_name = format!("{fullname}-reference-access");
    Api::<ValidatingAdmissionPolicy>::all(client.clone())
        .get(&policy_name)
        .await
        .unwrap();
    let policy_binding = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
        .get(&policy_name)
        .await
        .unwrap();
    assert_eq!(policy_binding.spec.policy_name, policy_name);
    assert_eq!(policy_binding.spec.validation_actions, ["Deny"]);

    // The real RBAC of the release: the operator's account may do its job everywhere, and no more.
    let account = format!("system:serviceaccount:{}:{fullname}", ns.name());
    assert!(can_i(
        "watch",
        "gatewayconnections.gateway.foundry.dev",
        None,
        &account
    ));
    assert!(can_i(
        "patch",
        "promptagents.gateway.foundry.dev/status",
        None,
        &account
    ));
    assert!(can_i(
        "create",
        "leases.coordination.k8s.io",
        Some(ns.name()),
        &account
    ));
    assert!(!can_i(
        "create",
        "leases.coordination.k8s.io",
        Some("default"),
        &account
    ));
    assert!(!can_i("delete", "secrets", None, &account));
    assert!(!can_i(
        "create",
        "gatewayconnections.gateway.foundry.dev",
        None,
        &account
    ));

    succeed(helm_on_testbed().args(["uninstall", &release, "--namespace", ns.name()]));
    let gone = Api::<ClusterRole>::all(client.clone())
        .get_opt(&fullname)
        .await
        .unwrap();
    assert!(gone.is_none(), "the ClusterRole outlived the release");
    assert!(
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .get_opt(&policy_name)
            .await
            .unwrap()
            .is_none(),
        "the admission policy outlived the release"
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), ns.name())
            .get_opt(&fullname)
            .await
            .unwrap()
            .is_none()
    );
    // The CRDs stay: Helm never deletes them, and the users' objects with them.
    crds.get("gatewayconnections.gateway.foundry.dev")
        .await
        .unwrap();
}

#[tokio::test]
async fn helm_installs_a_namespaced_operator_that_may_act_only_in_its_namespace() {
    let ns = TestNamespace::new("helm-namespaced").await;
    let watched = TestNamespace::new("helm-watched").await;
    let client = ns.client().clone();
    let release = release_for(&ns);
    let fullname = format!("{release}-foundry-gateway-operator");

    succeed(
        helm_on_testbed()
            .args(["install", &release])
            .arg(chart::chart_dir())
            .args(["--namespace", ns.name()])
            .args(["--set", &format!("watchNamespace={}", watched.name())]),
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&fullname)
            .await
            .unwrap()
            .is_none()
    );
    let role = Api::<Role>::namespaced(client.clone(), watched.name())
        .get(&fullname)
        .await
        .unwrap();
    assert_eq!(
        serde_yaml::to_value(role.rules.unwrap()).unwrap(),
        only(&shipped_rbac(), "ClusterRole")["rules"]
    );
    let account = format!("system:serviceaccount:{}:{fullname}", ns.name());
    let resource = "gatewayconnections.gateway.foundry.dev";
    assert!(can_i("watch", resource, Some(watched.name()), &account));
    assert!(can_i("get", "secrets", Some(watched.name()), &account));
    assert!(!can_i("watch", resource, Some("default"), &account));
    assert!(!can_i("get", "secrets", Some("default"), &account));

    succeed(helm_on_testbed().args(["uninstall", &release, "--namespace", ns.name()]));
    assert!(
        Api::<Role>::namespaced(client.clone(), watched.name())
            .get_opt(&fullname)
            .await
            .unwrap()
            .is_none()
    );
}

/// `kubectl auth can-i <args> --as <account>`: whether the apiserver's authorizer says yes.
fn account_may(account: &str, args: &[&str]) -> bool {
    let output = run(kubectl()
        .args(["auth", "can-i"])
        .args(args)
        .args(["--as", account]));
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

#[tokio::test]
async fn helm_installs_a_per_namespace_operator_that_reads_secrets_only_in_the_listed_namespaces() {
    let ns = TestNamespace::new("helm-per-namespace").await;
    let team_a = TestNamespace::new("helm-team-a").await;
    let team_b = TestNamespace::new("helm-team-b").await;
    let other = TestNamespace::new("helm-not-listed").await;
    let client = ns.client().clone();
    let release = release_for(&ns);
    let fullname = format!("{release}-foundry-gateway-operator");

    succeed(
        helm_on_testbed()
            .args(["install", &release])
            .arg(chart::chart_dir())
            .args(["--namespace", ns.name()])
            .args([
                "--set",
                &format!("rbac.namespaces={{{},{}}}", team_a.name(), team_b.name()),
            ]),
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns.name())
        .get(&fullname)
        .await
        .unwrap();
    let args = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default();
    let flag = format!("--watch-namespaces={},{}", team_a.name(), team_b.name());
    assert!(args.contains(&flag), "{args:?}");

    let account = format!("system:serviceaccount:{}:{fullname}", ns.name());
    let may = |args: &[&str]| account_may(&account, args);
    for listed in [team_a.name(), team_b.name()] {
        assert!(
            may(&["get", "secrets", "-n", listed]),
            "get secrets in {listed}"
        );
        assert!(
            may(&["watch", "configmaps", "-n", listed]),
            "watch configmaps in {listed}"
        );
        assert!(
            may(&[
                "create",
                "serviceaccounts",
                "--subresource=token",
                "-n",
                listed
            ]),
            "create tokens in {listed}"
        );
    }
    for unlisted in [other.name(), "default"] {
        assert!(
            !may(&["get", "secrets", "-n", unlisted]),
            "get secrets in {unlisted}"
        );
        assert!(
            !may(&["list", "configmaps", "-n", unlisted]),
            "list configmaps in {unlisted}"
        );
        assert!(
            !may(&[
                "create",
                "serviceaccounts",
                "--subresource=token",
                "-n",
                unlisted
            ]),
            "create tokens in {unlisted}"
        );
    }
    assert!(!may(&["get", "secrets", "--all-namespaces"]));
    // The three kinds and events stay cluster-wide.
    assert!(may(&[
        "watch",
        "gatewayconnections.gateway.foundry.dev",
        "--all-namespaces"
    ]));
    assert!(may(&[
        "patch",
        "promptagents.gateway.foundry.dev",
        "--subresource=status",
        "-n",
        other.name()
    ]));
    assert!(may(&["create", "events.events.k8s.io", "-n", other.name()]));
    // In its own namespace: the digest key Secret by name, and creating it.
    let digest = format!("secrets/{fullname}-digest-key");
    assert!(may(&["get", &digest, "-n", ns.name()]));
    assert!(!may(&["get", "secrets/some-other-secret", "-n", ns.name()]));
    assert!(may(&["create", "secrets", "-n", ns.name()]));
    assert!(!may(&["update", &digest, "-n", ns.name()]));

    succeed(helm_on_testbed().args(["uninstall", &release, "--namespace", ns.name()]));
    for listed in [team_a.name(), team_b.name()] {
        assert!(
            Api::<Role>::namespaced(client.clone(), listed)
                .get_opt(&fullname)
                .await
                .unwrap()
                .is_none(),
            "the Role in {listed} outlived the release"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Health checks against objects from the apiserver

/// One object in one state, as the apiserver returned it.
#[derive(Debug)]
struct Captured {
    kind: &'static str,
    state: State,
    object: Json,
}

/// The states a user sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Created; the operator has not written a status yet.
    New,
    /// Reconciling=True.
    Reconciling,
    /// Ready=True at the current generation.
    Ready,
    /// Ready=True, but the spec changed since.
    ReadyAtAnOlderGeneration,
    /// Stalled=True.
    Stalled,
    /// GatewayConnection: the gateway is Inactive.
    GatewayInactive,
    /// PromptAgent: its GatewayConnection is not Ready (neither Reconciling nor Stalled).
    ConnectionNotReady,
    /// spec.suspend is true.
    Suspended,
}

const KINDS: [&str; 3] = ["FoundryProject", "GatewayConnection", "PromptAgent"];

fn states(kind: &str) -> Vec<State> {
    let mut states = vec![
        State::New,
        State::Reconciling,
        State::Ready,
        State::ReadyAtAnOlderGeneration,
        State::Stalled,
        State::Suspended,
    ];
    match kind {
        "GatewayConnection" => states.push(State::GatewayInactive),
        "PromptAgent" => states.push(State::ConnectionNotReady),
        _ => {}
    }
    states
}

/// The spec of the kind's sample in `config/samples/`.
fn sample_spec(kind: &str) -> Json {
    let file = match kind {
        "FoundryProject" => "foundryproject.yaml",
        "GatewayConnection" => "gatewayconnection-modelgateway-static.yaml",
        "PromptAgent" => "promptagent-minimal.yaml",
        other => panic!("no sample for {other}"),
    };
    let text = fs::read_to_string(paths::repo_root().join("config/samples").join(file)).unwrap();
    let document = documents(&text)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("{file} has no {kind}"));
    serde_json::to_value(&document["spec"]).unwrap()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Json {
    json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    })
}

/// The status the operator writes in `state` for generation `g`.
fn status_for(kind: &str, state: State, g: i64) -> Json {
    let ready = |status, reason, message| condition("Ready", status, reason, message, g);
    let mut conditions = match state {
        State::New => unreachable!("a new object has no status"),
        State::Reconciling => vec![
            condition(
                "Reconciling",
                "True",
                "Progressing",
                "Creating the Foundry connection",
                g,
            ),
            ready("False", "Progressing", "Creating the Foundry connection"),
        ],
        State::Ready | State::ReadyAtAnOlderGeneration => {
            vec![ready("True", "Reconciled", "Reconciled")]
        }
        State::Stalled => vec![
            condition(
                "Stalled",
                "True",
                "AlreadyExists",
                "A connection named litellm exists; set adopt",
                g,
            ),
            ready(
                "False",
                "AlreadyExists",
                "A connection named litellm exists; set adopt",
            ),
        ],
        State::GatewayInactive => vec![
            condition(
                "GatewayActive",
                "False",
                "Unreachable",
                "Connection refused",
                g,
            ),
            ready(
                "False",
                "GatewayInactive",
                "The gateway failed 3 probes in a row",
            ),
        ],
        State::ConnectionNotReady => vec![
            condition(
                "ConnectionResolved",
                "False",
                "ConnectionNotReady",
                "GatewayConnection litellm is not Ready",
                g,
            ),
            ready(
                "False",
                "ConnectionNotReady",
                "GatewayConnection litellm is not Ready",
            ),
        ],
        State::Suspended => vec![ready(
            "False",
            "Suspended",
            "Suspended: spec.suspend is true; nothing is read or written",
        )],
    };
    let mut status = json!({ "observedGeneration": g });
    match (kind, state) {
        ("GatewayConnection", State::Ready | State::ReadyAtAnOlderGeneration) => {
            conditions.push(condition(
                "GatewayActive",
                "True",
                "Active",
                "The gateway answered",
                g,
            ));
            status["gatewayState"] = json!("Active");
        }
        ("GatewayConnection", State::GatewayInactive) => status["gatewayState"] = json!("Inactive"),
        ("PromptAgent", State::Ready | State::ReadyAtAnOlderGeneration) => {
            conditions.push(condition(
                "ConnectionResolved",
                "True",
                "Reconciled",
                "Ready",
                g,
            ));
            conditions.push(condition(
                "ModelResolved",
                "True",
                "Reconciled",
                "gpt-4o",
                g,
            ));
        }
        _ => {}
    }
    status["conditions"] = Json::Array(conditions);
    status
}

/// Creates one object per kind and state in `ns`, writes its status through the status
/// subresource as the operator would, and reads it back.
async fn capture(client: &Client, namespace: &str) -> Vec<Captured> {
    let mut captured = Vec::new();
    for kind in KINDS {
        let resource = custom_resource(kind);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for state in states(kind) {
            let name = format!(
                "{}-{}",
                kind.to_ascii_lowercase(),
                format!("{state:?}").to_ascii_lowercase()
            );
            let mut spec = sample_spec(kind);
            if state == State::Suspended {
                spec["suspend"] = json!(true);
            }
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": format!("{}/{}", resource.group, resource.version),
                "kind": kind,
                "metadata": { "name": name, "namespace": namespace },
                "spec": spec,
            }))
            .unwrap();
            let created = api.create(&PostParams::default(), &object).await.unwrap();
            let generation = created.metadata.generation.unwrap();
            if state != State::New {
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status_for(kind, state, generation) })),
                )
                .await
                .unwrap_or_else(|err| panic!("{kind} {state:?}: the status was refused: {err}"));
            }
            if state == State::ReadyAtAnOlderGeneration {
                // A spec change the operator has not seen yet.
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "spec": { "suspend": false } })),
                )
                .await
                .unwrap();
            }
            let mut read = api.get(&name).await.unwrap();
            read.metadata.managed_fields = None;
            let mut object = serde_json::to_value(&read).unwrap();
            object["apiVersion"] = json!(format!("{}/{}", resource.group, resource.version));
            object["kind"] = json!(kind);
            if state == State::ReadyAtAnOlderGeneration {
                assert_ne!(
                    object["metadata"]["generation"], object["status"]["observedGeneration"],
                    "the spec change moved the generation"
                );
            }
            captured.push(Captured {
                kind,
                state,
                object,
            });
        }
    }
    captured
}

/// Argo CD's verdict on one object, as the argocd-health tool printed it.
#[derive(Debug, serde::Deserialize)]
struct Health {
    status: String,
    message: String,
    #[serde(default)]
    error: String,
}

/// The health Argo CD gives each of `objects`, with the resource overrides read from the
/// `argocd-cm` ConfigMap in `namespace` of the test bed by Argo CD's settings manager.
fn argocd_health(namespace: &str, objects: &[&Json]) -> Vec<Health> {
    let mut child = Command::new(argocd_health_tool())
        .arg("--kubeconfig")
        .arg(testbed().kubeconfig_path())
        .args(["--namespace", namespace, "--timeout", "60s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(objects).unwrap().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the argocd-health tool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let judged: Vec<Health> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(judged.len(), objects.len(), "one verdict per object");
    judged
}

#[tokio::test]
async fn argocd_health_checks_judge_objects_from_the_apiserver_as_the_status_contract_says() {
    let ns = TestNamespace::new("argocd-health").await;
    // The README's argocd-cm, where Argo CD reads it (its namespace is this test's).
    let mut config_map: ConfigMap = serde_yaml::from_value(readme_block("argocd")).unwrap();
    config_map.metadata.namespace = Some(ns.name().to_owned());
    Api::<ConfigMap>::namespaced(ns.client().clone(), ns.name())
        .create(&PostParams::default(), &config_map)
        .await
        .unwrap();
    let objects = capture(ns.client(), ns.name()).await;
    let judged = argocd_health(
        ns.name(),
        &objects.iter().map(|c| &c.object).collect::<Vec<_>>(),
    );
    for (captured, health) in objects.iter().zip(&judged) {
        let (expected, in_message) = match captured.state {
            State::New => ("Progressing", "report a status"),
            State::Reconciling => ("Progressing", "Progressing"),
            State::Ready => ("Healthy", "Reconciled"),
            State::ReadyAtAnOlderGeneration => ("Progressing", "observe generation 2"),
            State::Stalled => ("Degraded", "AlreadyExists"),
            State::GatewayInactive => ("Degraded", "Gateway Inactive: Unreachable"),
            State::ConnectionNotReady => ("Degraded", "ConnectionNotReady"),
            State::Suspended => ("Suspended", "spec.suspend"),
        };
        let Health {
            status,
            message,
            error,
        } = health;
        assert!(
            error.is_empty(),
            "{} {:?}: the health check failed: {error}",
            captured.kind,
            captured.state
        );
        assert_eq!(
            status, expected,
            "{} {:?}: {message}\n{:#}",
            captured.kind, captured.state, captured.object
        );
        assert!(
            message.contains(in_message),
            "{} {:?}: message {message:?} lacks {in_message:?}",
            captured.kind,
            captured.state
        );
    }
}

/// What the kstatus tool printed for one object.
#[derive(Debug, serde::Deserialize)]
struct Judged {
    kstatus: Verdict,
    flux: Verdict,
}

#[derive(Debug, serde::Deserialize)]
struct Verdict {
    status: String,
    #[serde(default)]
    error: String,
}

fn judge(object: &Json) -> Judged {
    let flux = chart::chart_dir().join(chart::FLUX_EXPRS);
    let mut child = Command::new(kstatus_tool())
        .arg("-flux-exprs")
        .arg(&flux)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(object.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the kstatus tool failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn kstatus_and_the_flux_health_check_exprs_judge_objects_from_the_apiserver() {
    let ns = TestNamespace::new("kstatus-health").await;
    let objects = capture(ns.client(), ns.name()).await;
    for captured in &objects {
        let judged = judge(&captured.object);
        let what = format!("{} {:?}: {judged:?}", captured.kind, captured.state);
        // kstatus of a kind it does not know: the observed generation, then Reconciling and
        // Stalled, then Ready (False is InProgress), and Current without any of them. The Flux
        // expressions fail fast where kstatus would wait, and let a suspended object pass.
        let (kstatus, flux) = match captured.state {
            State::New => ("Current", "Unknown"),
            State::Reconciling => ("InProgress", "InProgress"),
            State::Ready => ("Current", "Current"),
            State::ReadyAtAnOlderGeneration => ("InProgress", "InProgress"),
            State::Stalled => ("Failed", "Failed"),
            State::GatewayInactive | State::ConnectionNotReady => ("InProgress", "Failed"),
            State::Suspended => ("InProgress", "Current"),
        };
        assert_eq!(judged.kstatus.status, kstatus, "kstatus of {what}");
        assert_eq!(judged.flux.status, flux, "Flux of {what}");
        if captured.state == State::New {
            // No `status` to evaluate yet: Flux polls again instead of deciding.
            assert!(judged.flux.error.contains("status"), "{what}");
        } else {
            assert!(judged.flux.error.is_empty(), "{what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Go tools

/// The cli-utils version the kstatus tool is built with (`tests/tools/kstatus/go.mod`).
const CLI_UTILS_VERSION: &str = "v0.37.2";

/// The Argo CD version the argocd-health tool is built with (`tests/tools/argocd-health/go.mod`).
const ARGO_CD_VERSION: &str = "v2.14.21";

/// The kstatus tool (`tests/tools/kstatus`), built once per test binary when missing.
fn kstatus_tool() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        build_go_tool(&GoTool {
            name: "kstatus",
            requires: "sigs.k8s.io/cli-utils",
            short: "cli-utils",
            version: CLI_UTILS_VERSION,
        })
    })
    .clone()
}

/// The argocd-health tool (`tests/tools/argocd-health`), built once per test binary when missing.
fn argocd_health_tool() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        build_go_tool(&GoTool {
            name: "argocd-health",
            requires: "github.com/argoproj/argo-cd/v2",
            short: "argo-cd",
            version: ARGO_CD_VERSION,
        })
    })
    .clone()
}

/// A Go module `tests/tools/<name>` whose main package is a tool of these tests.
struct GoTool {
    /// The folder, and the name of the binary.
    name: &'static str,
    /// The module whose version keys the cache: go.mod must require it at `version`.
    requires: &'static str,
    /// Its name in the cache folder's name.
    short: &'static str,
    version: &'static str,
}

/// The files below `dir`, as paths relative to `module`.
fn module_files(module: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            module_files(module, &path, files);
        } else {
            let relative = path.strip_prefix(module).unwrap();
            let parts: Vec<_> = relative.iter().map(|p| p.to_str().unwrap()).collect();
            files.push(parts.join("/"));
        }
    }
}

/// Builds the tool with `go build -trimpath` into
/// `<cache>/<name>-<pinned module>-<version>-<hash of the module's files>/<name>` unless it is
/// there; a lock file lets one test binary build while the others wait.
fn build_go_tool(tool: &GoTool) -> PathBuf {
    let GoTool {
        name,
        requires,
        short,
        version,
    } = *tool;
    let module = paths::repo_root().join("tests").join("tools").join(name);
    let go_mod = fs::read_to_string(module.join("go.mod")).unwrap();
    assert!(
        go_mod
            .lines()
            .any(|line| line.trim() == format!("{requires} {version}")),
        "tests/tools/{name}/go.mod does not require {requires} {version}"
    );
    let mut files = Vec::new();
    module_files(&module, &module, &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        let bytes = fs::read(module.join(file)).unwrap();
        hasher.update(file.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let hash: String = hasher.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = paths::cache_root().unwrap();
    let dir = root.join(format!("{name}-{short}-{version}-{hash}"));
    let binary = dir.join(name);
    if binary.is_file() {
        return binary;
    }
    fs::create_dir_all(&dir).unwrap();
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".build.lock"))
        .unwrap();
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => lock.lock().unwrap(),
        Err(TryLockError::Error(err)) => panic!("failed to lock the {name} cache: {err}"),
    }
    if binary.is_file() {
        return binary;
    }
    eprintln!("Building the {name} tool into {}", dir.display());
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let output = run(Command::new("go")
        .current_dir(&module)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .args(["build", "-mod=readonly", "-trimpath", "-o"])
        .arg(&temp)
        .arg("."));
    assert!(
        output.status.success(),
        "go build of tests/tools/{name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs::rename(&temp, &binary).unwrap();
    binary
}
