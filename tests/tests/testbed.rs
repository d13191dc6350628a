//! The test bed is a real Kubernetes: the version we build, RBAC that is enforced, and namespaces
//! made by the harness that a cleanup can find.

use std::time::{Duration, Instant};

use foundry_gateway_testbed::KUBERNETES_VERSION;
use foundry_gateway_tests::harness::{
    TEST_LABEL, TestNamespace, admin_client, client_from_kubeconfig, custom_resource,
    dump_namespace, kubectl, testbed, with_temp_ns,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{Api, DynamicObject, ListParams, ObjectMeta, PostParams};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn is_forbidden(result: &Result<impl Sized, kube::Error>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 403)
}

#[tokio::test]
async fn the_apiserver_reports_the_kubernetes_version_the_test_bed_is_built_for() {
    let info = admin_client().await.apiserver_version().await.unwrap();
    assert_eq!(info.git_version, format!("v{KUBERNETES_VERSION}"));
    assert_eq!(info.major, "1");
    assert_eq!(
        Some(info.minor.as_str()),
        KUBERNETES_VERSION.split('.').nth(1)
    );
}

#[tokio::test]
async fn a_service_account_may_list_secrets_only_after_a_role_binding_grants_it() {
    let ns = TestNamespace::new("rbac").await;
    let client = ns.client().clone();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns.name());
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("reader"),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap();
    let token = accounts
        .create_token_request(
            "reader",
            &PostParams::default(),
            &TokenRequest {
                metadata: meta("reader"),
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|status| status.token)
        .expect("a token request answers with a token");
    let kubeconfig = testbed()
        .kubeconfig_for_token(&format!("{}-reader", ns.name()), &token)
        .unwrap();
    let reader = client_from_kubeconfig(&kubeconfig).await;
    let secrets: Api<Secret> = Api::namespaced(reader.clone(), ns.name());

    let before = secrets.list(&ListParams::default()).await;
    assert!(
        is_forbidden(&before),
        "without a binding: {:?}",
        before.map(|l| l.items.len())
    );

    Api::<Role>::namespaced(client.clone(), ns.name())
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta("list-secrets"),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["secrets".to_owned()]),
                    verbs: vec!["list".to_owned()],
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns.name())
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta("reader-lists-secrets"),
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".to_owned()),
                    kind: "Role".to_owned(),
                    name: "list-secrets".to_owned(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: "reader".to_owned(),
                    namespace: Some(ns.name().to_owned()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();

    // The RBAC authorizer reads bindings from an informer: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let result = secrets.list(&ListParams::default()).await;
        if !is_forbidden(&result) || Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(after.is_ok(), "with a binding: {:?}", after.err());

    let elsewhere = Api::<Secret>::namespaced(reader, "kube-system")
        .list(&ListParams::default())
        .await;
    assert!(
        is_forbidden(&elsewhere),
        "the binding grants nothing outside its namespace"
    );
}

#[tokio::test]
async fn a_test_namespace_is_labelled_as_a_test_and_named_after_its_hint() {
    let ns = TestNamespace::new("labels").await;
    let namespace = Api::<Namespace>::all(ns.client().clone())
        .get(ns.name())
        .await
        .unwrap();
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get(TEST_LABEL).map(String::as_str), Some("true"));
    assert!(ns.name().starts_with("t-labels-"), "{}", ns.name());
}

#[tokio::test]
async fn with_temp_ns_names_the_namespace_after_the_running_test() {
    with_temp_ns(|client, name| async move {
        assert!(
            name.starts_with("t-with-temp-ns-names-the-namespace-after"),
            "{name}"
        );
        let namespace = Api::<Namespace>::all(client).get(&name).await.unwrap();
        assert_eq!(
            namespace
                .metadata
                .labels
                .unwrap_or_default()
                .get(TEST_LABEL),
            Some(&"true".to_owned())
        );
    })
    .await;
}

#[tokio::test]
async fn the_failure_dump_shows_the_custom_objects_of_the_namespace() {
    let ns = TestNamespace::new("dump").await;
    let sample: DynamicObject = serde_yaml::from_str(
        &std::fs::read_to_string(
            foundry_gateway_testbed::paths::repo_root().join("config/samples/foundryproject.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        ns.client().clone(),
        ns.name(),
        &custom_resource("FoundryProject"),
    )
    .create(&PostParams::default(), &sample)
    .await
    .unwrap();

    let dump = dump_namespace(ns.client(), ns.name()).await;
    assert!(dump.contains("kind: FoundryProject"), "{dump}");
    assert!(dump.contains("name: contoso"), "{dump}");
    assert!(dump.contains("# no PromptAgent"), "{dump}");
    assert!(!dump.contains("managedFields"), "{dump}");
}

#[test]
fn kubectl_reaches_the_test_bed_as_admin() {
    let output = kubectl()
        .args(["auth", "can-i", "*", "*", "--all-namespaces"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "yes",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
