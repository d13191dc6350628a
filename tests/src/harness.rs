//! One test bed per test binary, the CRDs installed once, a fresh namespace per test.
//!
//! The first call of [`testbed`] (or anything that needs it) picks the test bed: the one named by
//! `$FOUNDRY_TESTBED_DIR`, else `<repo>/.testbed` (`cargo xtask testbed up`), if it answers; else it
//! starts a new one attached to this test process, which a watchdog ends when the process exits
//! (Rust tests have no global teardown). Then it server-side applies every `config/crd/*.yaml` and
//! waits until each CRD is Established and its schema is published.
//!
//! Under cargo-nextest, which runs each test in its own process, start a test bed first with
//! `cargo xtask testbed up`, or every test starts its own.
//!
//! Everything here panics on failure: it is test support, and a panic is how a test fails.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use foundry_gateway_testbed::probe::Probe;
use foundry_gateway_testbed::{Options, Testbed, paths};
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use rand::Rng as _;
use serde::Deserialize as _;

/// Field manager of everything the harness applies.
pub const FIELD_MANAGER: &str = "foundry-gateway-tests";

/// Label on every namespace made by [`TestNamespace`].
pub const TEST_LABEL: &str = "foundry-gateway.dev/test";

/// API group of the operator's custom resources.
pub const GROUP: &str = "gateway.foundry.dev";

/// API version of the operator's custom resources.
pub const VERSION: &str = "v1alpha1";

/// Kinds (and plurals) whose objects are dumped when a test fails.
pub const DUMPED_KINDS: &[(&str, &str)] = &[
    ("FoundryProject", "foundryprojects"),
    ("GatewayConnection", "gatewayconnections"),
    ("PromptAgent", "promptagents"),
];

/// How long the CRDs may take to become Established and published.
const CRD_TIMEOUT: Duration = Duration::from_secs(60);

static TESTBED: OnceLock<Result<Testbed, String>> = OnceLock::new();

/// The test bed of this test binary, with the CRDs installed. Blocks the first caller while a new
/// test bed starts (seconds; minutes if its binaries must be built first). If that fails, every
/// test of the binary fails with the same message instead of trying again.
pub fn testbed() -> &'static Testbed {
    match TESTBED.get_or_init(prepare_testbed) {
        Ok(testbed) => testbed,
        Err(err) => panic!("{err}"),
    }
}

fn prepare_testbed() -> Result<Testbed, String> {
    let testbed = match Testbed::find_running(&paths::default_state_dir()) {
        Some(running) => {
            eprintln!(
                "Using the running test bed at {} ({})",
                running.server_url(),
                running.state_dir().display()
            );
            running
        }
        None => Testbed::start(Options::default())
            .map_err(|err| format!("failed to start the test bed: {}", report(&err)))?,
    };
    let crd_dir = paths::repo_root().join("config").join("crd");
    let kubeconfig = testbed.kubeconfig_path().to_path_buf();
    // The CRDs are installed on a runtime of their own: this may run inside any test's runtime,
    // which must not be blocked on itself, and a client must not outlive its runtime.
    let installed = std::thread::spawn(move || {
        block_on(async move {
            let client = client_from_kubeconfig(&kubeconfig).await;
            install_crds(client, &crd_dir).await
        })
    })
    .join();
    match installed {
        Ok(Ok(served)) => wait_for_published_schemas(&testbed, &served)?,
        Ok(Err(err)) => return Err(format!("failed to install the CRDs: {err}")),
        Err(_) => return Err("failed to install the CRDs: the installer panicked".to_owned()),
    }
    Ok(testbed)
}

/// A client with the admin identity of the test bed (`system:masters`).
pub async fn admin_client() -> Client {
    client_from_kubeconfig(testbed().kubeconfig_path()).await
}

/// A client for the identity of a kubeconfig, such as one from [`Testbed::kubeconfig_for_token`].
pub async fn client_from_kubeconfig(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|err| panic!("failed to read kubeconfig {}: {err}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|err| panic!("failed to load kubeconfig {}: {err}", path.display()));
    Client::try_from(config).unwrap_or_else(|err| panic!("failed to build a client: {err}"))
}

/// `kubectl` pointed at the test bed as admin (kubectl must be on PATH).
pub fn kubectl() -> Command {
    let mut command = Command::new("kubectl");
    command.env("KUBECONFIG", testbed().kubeconfig_path());
    command
}

/// The dynamic API resource of one of the operator's kinds, e.g. `custom_resource("PromptAgent")`.
pub fn custom_resource(kind: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, kind);
    match DUMPED_KINDS.iter().find(|(k, _)| *k == kind) {
        Some((_, plural)) => ApiResource::from_gvk_with_plural(&gvk, plural),
        None => ApiResource::from_gvk(&gvk),
    }
}

/// A fresh namespace `t-<hint>-<random>` labelled `foundry-gateway.dev/test=true`, with an admin
/// client. When dropped it is deleted (it stays Terminating: there is no controller manager), and
/// if the test is panicking, the namespace's custom objects and events are printed to stderr first.
pub struct TestNamespace {
    name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    /// Creates the namespace; `hint` names the test in a few words (`crd-samples`).
    pub async fn new(hint: &str) -> Self {
        let client = admin_client().await;
        let name = namespace_name(hint, &random_suffix());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("failed to create namespace {name}: {err}"));
        Self { name, client }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An admin client (bound to the runtime of the test that made this namespace).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The YAML of every FoundryProject, GatewayConnection and PromptAgent in the namespace, and
    /// its events, as printed when a test fails.
    pub async fn dump(&self) -> String {
        dump_namespace(&self.client, &self.name).await
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        let name = self.name.clone();
        let kubeconfig = testbed().kubeconfig_path().to_path_buf();
        // Drop cannot await, and this thread's runtime is busy running the test: use a thread with
        // a runtime and a client of its own.
        let cleaned = std::thread::spawn(move || {
            block_on(async move {
                let client = client_from_kubeconfig(&kubeconfig).await;
                if failed {
                    eprintln!("{}", dump_namespace(&client, &name).await);
                }
                let deleted = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::default())
                    .await;
                if let Err(err) = deleted {
                    eprintln!("Failed to delete namespace {name}: {err}");
                }
            });
        })
        .join();
        if cleaned.is_err() {
            eprintln!("Failed to clean up namespace {}", self.name);
        }
    }
}

/// Runs `test` with a fresh [`TestNamespace`] named after the running test (linkerd2's
/// `with_temp_ns`); a panic in `test` dumps the namespace and fails the test.
pub async fn with_temp_ns<F, Fut>(test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let ns = TestNamespace::new(&current_test_name()).await;
    let outcome = tokio::spawn(test(ns.client().clone(), ns.name().to_owned())).await;
    if let Err(err) = outcome {
        // Re-raised while `ns` is alive, so its Drop sees the panic and dumps the namespace.
        if err.is_panic() {
            std::panic::resume_unwind(err.into_panic());
        }
        panic!("the test task did not finish: {err}");
    }
}

/// The running test's function name, from the thread libtest names after it.
pub fn current_test_name() -> String {
    std::thread::current()
        .name()
        .and_then(|name| name.rsplit("::").next())
        .filter(|name| *name != "main")
        .unwrap_or("test")
        .to_owned()
}

/// `t-<hint>-<suffix>`, a DNS label of at most 63 characters.
pub fn namespace_name(hint: &str, suffix: &str) -> String {
    let mut short = String::new();
    for c in hint.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_alphanumeric() {
            short.push(c);
        } else if !short.is_empty() && !short.ends_with('-') {
            short.push('-');
        }
    }
    short.truncate(63 - "t--".len() - suffix.len());
    let short = short.trim_end_matches('-');
    if short.is_empty() {
        format!("t-{suffix}")
    } else {
        format!("t-{short}-{suffix}")
    }
}

/// Renders the custom objects and events of `namespace`.
pub async fn dump_namespace(client: &Client, namespace: &str) -> String {
    let mut out = format!("----- state of namespace {namespace} -----\n");
    for (kind, _) in DUMPED_KINDS {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &custom_resource(kind));
        match api.list(&ListParams::default()).await {
            Ok(list) if list.items.is_empty() => out.push_str(&format!("# no {kind}\n")),
            Ok(list) => {
                for mut object in list.items {
                    object.metadata.managed_fields = None;
                    object.types.get_or_insert_with(|| kube::core::TypeMeta {
                        api_version: format!("{GROUP}/{VERSION}"),
                        kind: (*kind).to_owned(),
                    });
                    match serde_yaml::to_string(&object) {
                        Ok(yaml) => out.push_str(&format!("---\n{yaml}")),
                        Err(err) => out.push_str(&format!("# unprintable {kind}: {err}\n")),
                    }
                }
            }
            Err(err) => out.push_str(&format!("# failed to list {kind}: {err}\n")),
        }
    }
    match Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            out.push_str(&format!("--- {} events\n", list.items.len()));
            for event in list.items {
                let object = &event.involved_object;
                out.push_str(&format!(
                    "{} {} {}/{}: {}\n",
                    event.type_.as_deref().unwrap_or("-"),
                    event.reason.as_deref().unwrap_or("-"),
                    object.kind.as_deref().unwrap_or("-"),
                    object.name.as_deref().unwrap_or("-"),
                    event.message.as_deref().unwrap_or("").trim(),
                ));
            }
        }
        Err(err) => out.push_str(&format!("# failed to list events: {err}\n")),
    }
    out.push_str(&format!("----- end of namespace {namespace} -----"));
    out
}

/// Server-side applies every CRD in `dir/*.yaml` and waits until each is Established; returns the
/// group/version pairs they serve.
async fn install_crds(client: Client, dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|err| format!("cannot read {}: {err}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("no CRD files in {}", dir.display()));
    }
    let api = Api::<CustomResourceDefinition>::all(client);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    let mut served = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|err| format!("cannot read {}: {err}", file.display()))?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(document)
                .map_err(|err| format!("{} is not YAML: {err}", file.display()))?;
            if value.is_null() {
                continue;
            }
            let crd: CustomResourceDefinition = serde_yaml::from_value(value)
                .map_err(|err| format!("{} is not a CRD: {err}", file.display()))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(&name, &params, &Patch::Apply(&crd))
                .await
                .map_err(|err| format!("failed to apply CRD {name}: {err}"))?;
            for version in crd.spec.versions.iter().filter(|v| v.served) {
                served.push((crd.spec.group.clone(), version.name.clone()));
            }
            names.push(name);
        }
    }
    for name in &names {
        let established = await_condition(api.clone(), name, conditions::is_crd_established());
        match tokio::time::timeout(CRD_TIMEOUT, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(format!("failed to watch CRD {name}: {err}")),
            Err(_) => return Err(format!("CRD {name} not Established within {CRD_TIMEOUT:?}")),
        }
    }
    served.sort();
    served.dedup();
    Ok(served)
}

/// Waits until the OpenAPI v3 document of every group/version is served: it follows
/// Establishment by a moment, and `kubectl explain` and client-side validation need it.
fn wait_for_published_schemas(
    testbed: &Testbed,
    served: &[(String, String)],
) -> Result<(), String> {
    let deadline = Instant::now() + CRD_TIMEOUT;
    for (group, version) in served {
        let url = format!("{}/openapi/v3/apis/{group}/{version}", testbed.server_url());
        let probe = Probe::new(
            url.as_str(),
            Some(testbed.ca_pem()),
            Some(testbed.admin_token()),
        )
        .map_err(|err| format!("failed to probe {url}: {err}"))?;
        while let Err(answer) = probe.check() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "the schema of {group}/{version} was not published within {CRD_TIMEOUT:?}: {answer}"
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("failed to build a tokio runtime: {err}"))
        .block_on(future)
}

/// An error with its chain of causes, one per line.
fn report(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::namespace_name;

    #[test]
    fn namespace_names_are_dns_labels_with_the_hint_and_suffix() {
        assert_eq!(
            namespace_name("crd-samples", "ab12c"),
            "t-crd-samples-ab12c"
        );
        assert_eq!(
            namespace_name("RBAC is_enforced!", "x"),
            "t-rbac-is-enforced-x"
        );
        assert_eq!(namespace_name("", "x"), "t-x");
        let long = namespace_name(&"a_very_long_test_name".repeat(10), "abcde");
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-abcde") && !long.contains("--"), "{long}");
    }
}
