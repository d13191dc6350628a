//! The controller-level layer: a controller's pipeline run in-process (not the operator
//! binary) against the test bed's real apiserver and the emulator started for this binary, with
//! fixtures built fluently (`FoundryProject::test("p").with_endpoint(…)`), asserting the status
//! it writes and the exact Foundry calls from the emulator's request log.
//!
//! FoundryProject: Ready after exactly one authenticated ARM read; an endpoint outside the
//! installation's allow-list is Stalled `HostNotAllowed` before any Secret is read or token
//! requested (not one call reaches the emulator); a missing identity Secret is Reconciling
//! `SecretNotFound`, then Stalled once the grace period has passed.
//!
//! GatewayConnection: the driver run in-process creates the Foundry connection with exactly one
//! PUT, writes its status, and a second pass (a resync) writes nothing to Foundry.
//!
//! The tests of this binary share one emulator and count its calls, so they run one at a time.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use foundry_gateway_api::FoundryProject;
use foundry_gateway_operator::context::{Context, Stores};
use foundry_gateway_operator::metrics::Metrics;
use foundry_gateway_operator::project;
use foundry_gateway_operator::settings::Settings;
use foundry_gateway_operator::stores::Filled;
use foundry_gateway_testbed::stack::OPERATOR_CLIENT_ID;
use foundry_gateway_tests::fixtures::{Fixture, ProjectFixture};
use foundry_gateway_tests::harness::{FIELD_MANAGER, TestNamespace};
use foundry_gateway_tests::world::{apply_secret, condition, has_condition, stack};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// One test at a time: they count the emulator's calls.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// The infrastructure a controller runs with, as the binary builds it, for the test bed.
fn context(ns: &TestNamespace) -> Arc<Context> {
    context_with(ns, empty_stores())
}

fn empty_stores() -> Stores {
    Stores {
        projects: reflector::store().0,
        connections: reflector::store().0,
        agents: reflector::store().0,
        filled: Filled::already(),
    }
}

/// The infrastructure with these reflector stores.
fn context_with(ns: &TestNamespace, stores: Stores) -> Arc<Context> {
    let ca = stack().ca_file().display().to_string();
    let local = "127.0.0.1,localhost";
    let settings = Settings::try_parse_from([
        "operator",
        "--extra-ca-file",
        &ca,
        "--secret-grace",
        "2s",
        "--allowed-authority-hosts",
        local,
        "--allowed-arm-hosts",
        local,
        "--allowed-foundry-hosts",
        local,
    ])
    .expect("settings");
    Arc::new(Context::new(ns.client().clone(), settings, Metrics::new(), stores).expect("context"))
}

/// Creates the project in the apiserver and returns it as stored.
async fn create(ns: &TestNamespace, project: FoundryProject) -> Arc<FoundryProject> {
    let api: Api<FoundryProject> = Api::namespaced(ns.client().clone(), ns.name());
    let name = project.metadata.name.clone().expect("a name");
    let stored = api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(project.in_namespace(ns.name())),
        )
        .await
        .expect("the apiserver accepts the fixture");
    Arc::new(stored)
}

async fn reconcile_and_read(ctx: &Arc<Context>, project: Arc<FoundryProject>) -> Value {
    let (ns, name) = (
        project.metadata.namespace.clone().unwrap(),
        project.metadata.name.clone().unwrap(),
    );
    project::reconcile(project, Arc::clone(ctx))
        .await
        .expect("the reconcile writes status");
    let api: Api<FoundryProject> = Api::namespaced(ctx.client.clone(), &ns);
    serde_json::to_value(api.get(&name).await.expect("the project")).unwrap()
}

/// Calls the emulator has recorded, of every operation.
fn emulator_calls() -> usize {
    stack()
        .emulator
        .requests("")
        .expect("request log")
        .as_array()
        .map_or(0, Vec::len)
}

fn arm_reads() -> usize {
    stack()
        .emulator
        .requests("operation=ProjectConnections_List")
        .expect("request log")
        .as_array()
        .map_or(0, Vec::len)
}

async fn identity_secret(ns: &TestNamespace) {
    let secret = stack()
        .client_secret(OPERATOR_CLIENT_ID)
        .expect("the operator's client secret")
        .expose()
        .to_owned();
    apply_secret(ns, "project-identity", json!({"clientSecret": secret})).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_is_ready_after_exactly_one_authenticated_arm_read() {
    let _serial = SERIAL.lock().await;
    let ns = TestNamespace::new("ctl-project").await;
    identity_secret(&ns).await;
    let ctx = context(&ns);
    let project = create(&ns, FoundryProject::test("local")).await;
    let before = arm_reads();
    let status = reconcile_and_read(&ctx, project).await;
    assert!(
        has_condition(&status, "Ready", "True", Some("Reconciled")),
        "{status:#}"
    );
    assert_eq!(
        condition(&status, "Ready").unwrap()["message"],
        "Authenticated to project local-project"
    );
    assert_eq!(arm_reads() - before, 1, "exactly one ARM read");
    assert_eq!(
        status["status"]["armId"],
        json!(foundry_gateway_testbed::emulator::EmulatorProject::default_project().arm_id())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_outside_the_allow_list_is_stalled_before_any_call() {
    let _serial = SERIAL.lock().await;
    let ns = TestNamespace::new("ctl-host").await;
    identity_secret(&ns).await;
    let ctx = context(&ns);
    let project = FoundryProject::test("elsewhere")
        .with_endpoint("https://attacker.example.com/api/projects/local-project");
    let project = create(&ns, project).await;
    let before = emulator_calls();
    let status = reconcile_and_read(&ctx, project).await;
    assert!(
        has_condition(&status, "Stalled", "True", Some("HostNotAllowed")),
        "{status:#}"
    );
    let message = condition(&status, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("spec.endpoint") && message.contains("attacker.example.com"),
        "{message}"
    );
    assert_eq!(emulator_calls(), before, "a call reached Foundry");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_identity_secret_is_reconciling_then_stalled_after_the_grace_period() {
    let _serial = SERIAL.lock().await;
    let ns = TestNamespace::new("ctl-secret").await;
    let ctx = context(&ns);
    let project = create(&ns, FoundryProject::test("nosecret").with_secret("absent")).await;
    let first = reconcile_and_read(&ctx, Arc::clone(&project)).await;
    assert!(
        has_condition(&first, "Reconciling", "True", Some("Retrying"))
            && has_condition(&first, "Ready", "False", Some("SecretNotFound")),
        "{first:#}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let api: Api<FoundryProject> = Api::namespaced(ns.client().clone(), ns.name());
    let live = Arc::new(api.get("nosecret").await.unwrap());
    let second = reconcile_and_read(&ctx, live).await;
    assert!(
        has_condition(&second, "Stalled", "True", Some("SecretNotFound")),
        "{second:#}"
    );
    let message = condition(&second, "Stalled").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("Secret absent"), "{message}");
}

/// Calls of one operation whose path names `name`.
fn calls_naming(operation: &str, name: &str) -> usize {
    stack()
        .emulator
        .requests(&format!("operation={operation}"))
        .expect("request log")
        .as_array()
        .map_or(0, |all| {
            all.iter()
                .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with(name)))
                .count()
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_created_with_one_put_and_a_resync_writes_nothing() {
    use foundry_gateway_api::GatewayConnection;
    use foundry_gateway_operator::connection;
    use foundry_gateway_operator::controller::Scoped;
    use foundry_gateway_tests::fixtures::ConnectionFixture;
    use kube::runtime::watcher;

    let _serial = SERIAL.lock().await;
    let ns = TestNamespace::new("ctl-connection").await;
    identity_secret(&ns).await;
    apply_secret(
        &ns,
        "gateway-key",
        json!({"key": stack().gateway.master_key.expose()}),
    )
    .await;
    let project = create(&ns, FoundryProject::test("local")).await;
    let (projects, mut writer) = reflector::store();
    // A store as a watch fills it: the initial list, then ready.
    writer.apply_watcher_event(&watcher::Event::Init);
    writer.apply_watcher_event(&watcher::Event::InitApply((*project).clone()));
    writer.apply_watcher_event(&watcher::Event::InitDone);
    let ctx = Arc::new(Scoped::<connection::Memory>::new(context_with(
        &ns,
        Stores {
            projects,
            ..empty_stores()
        },
    )));
    let name = format!("ctl-{}", &ns.name()[ns.name().len() - 5..]);
    let mut gc = GatewayConnection::test("gw")
        .with_api_key("gateway-key")
        .in_namespace(ns.name());
    gc.spec.connection_name = Some(name.clone());
    let api: Api<GatewayConnection> = Api::namespaced(ns.client().clone(), ns.name());
    api.patch(
        "gw",
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&gc),
    )
    .await
    .expect("the apiserver accepts the fixture");
    // A pass: the finalizer (unless admission set it), then the pipeline; each reads the object
    // as stored.
    let pass = || async {
        let live = Arc::new(api.get("gw").await.unwrap());
        connection::reconcile(live, Arc::clone(&ctx))
            .await
            .expect("the reconcile ends without an error");
    };
    pass().await;
    pass().await;
    // No probe scheduler runs here, so the first probe never ends: within the grace the status
    // stays as it is (a fast gateway's verdict would be the one write), then it says the probe
    // runs.
    tokio::time::sleep(foundry_gateway_operator::controller::slow::GRACE).await;
    pass().await;
    assert_eq!(
        calls_naming("ProjectConnections_Create", &name),
        1,
        "one PUT creates it"
    );
    let live = serde_json::to_value(api.get("gw").await.unwrap()).unwrap();
    assert!(
        live["status"]["connectionId"]
            .as_str()
            .is_some_and(|id| id.ends_with(&format!("/connections/{name}"))),
        "{live:#}"
    );
    assert_eq!(live["status"]["observedGeneration"], 1, "{live:#}");
    // A resync: nothing differs, nothing is written.
    pass().await;
    assert_eq!(calls_naming("ProjectConnections_Create", &name), 1);
    assert_eq!(calls_naming("ProjectConnections_Delete", &name), 0);
}
