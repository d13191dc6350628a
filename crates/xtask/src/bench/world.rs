//! The world `cargo xtask bench` and `cargo xtask faults` run in: a temporary stack with
//! Kubernetes (attached, so it ends with this process), the shipped CRDs and RBAC, one namespace
//! with a FoundryProject on the emulator, and the helpers both commands need to apply objects,
//! watch them and ask the emulator what Foundry saw.
//!
//! Everything is on loopback. The orchestration is synchronous (the test bed's API is); the
//! Kubernetes calls run on a small tokio runtime owned here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use foundry_gateway_testbed::http::HttpClient;
use foundry_gateway_testbed::operator::{Operator, OperatorOptions, RunningOperator};
use foundry_gateway_testbed::stack::{OPERATOR_CLIENT_ID, Stack, StackOptions};
use foundry_gateway_testbed::token_server::DEFAULT_TENANT;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Client, Config};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Field manager of everything the bench applies.
pub const FIELD_MANAGER: &str = "foundry-gateway-bench";
/// `apiVersion` of our kinds.
pub const API_VERSION: &str = "gateway.foundry.dev/v1alpha1";
/// The FoundryProject of the namespace.
pub const PROJECT: &str = "local";
/// The Secret with the project identity's client secret.
pub const PROJECT_SECRET: &str = "project-identity";
/// The Secret with the gateway's API key (key `key`).
pub const KEY_SECRET: &str = "gateway-key";
/// ARM api-version of the bench's own reads.
pub const ARM_API_VERSION: &str = "2025-12-01";
/// Data-plane api-version of the bench's own reads.
pub const DATA_API_VERSION: &str = "v1";
/// The model every agent uses.
pub const MODEL: &str = "gpt-4o";
/// Longest a page walk over Foundry lists may go (a bound, far above any run's size).
const MAX_PAGES: usize = 200;
/// The API group of admission policies.
const ADMISSION_GROUP: &str = "admissionregistration.k8s.io";
/// The operator's finalizer on GatewayConnections and PromptAgents.
pub const FINALIZER: &str = "gateway.foundry.dev/finalizer";
/// How long the apiserver may take to enforce a new admission policy.
const POLICY_TIMEOUT: Duration = Duration::from_secs(30);

/// One of our kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `FoundryProject`.
    Project,
    /// `GatewayConnection`.
    Connection,
    /// `PromptAgent`.
    Agent,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::Project => "FoundryProject",
            Self::Connection => "GatewayConnection",
            Self::Agent => "PromptAgent",
        }
    }

    /// The API resource (group, version, plural).
    pub fn resource(self) -> ApiResource {
        match self {
            Self::Project => ApiResource::erase::<FoundryProject>(&()),
            Self::Connection => ApiResource::erase::<GatewayConnection>(&()),
            Self::Agent => ApiResource::erase::<PromptAgent>(&()),
        }
    }
}

/// Name of the `i`-th GatewayConnection (also its Foundry connection name).
pub fn connection_name(i: usize) -> String {
    format!("gw-{i:04}")
}

/// Name of the `i`-th PromptAgent (also its Foundry agent name).
pub fn agent_name(i: usize) -> String {
    format!("agent-{i:04}")
}

/// Milliseconds since the Unix epoch, the clock of the emulator's request log.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Whether an object says `Ready=True` at its current generation (the status contract of docs/ARCHITECTURE.md: every condition
/// at the current generation).
pub fn is_ready(object: &DynamicObject) -> bool {
    let generation = object.metadata.generation;
    let Some(conditions) = object.data["status"]["conditions"].as_array() else {
        return false;
    };
    let ready = conditions.iter().any(|c| {
        c["type"] == "Ready"
            && c["status"] == "True"
            && c["observedGeneration"].as_i64() == generation
    });
    ready
        && conditions
            .iter()
            .all(|c| c["observedGeneration"].as_i64() == generation)
}

/// The `Ready` condition's reason, for reports of what did not converge.
pub fn ready_reason(object: &DynamicObject) -> String {
    object.data["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| {
            format!(
                "{}/{}",
                c["status"].as_str().unwrap_or("?"),
                c["reason"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "no Ready condition".to_owned())
}

/// The stack, the namespace and the clients.
pub struct Bed {
    /// The stack (Kubernetes included). Attached: it stops when dropped.
    pub stack: Stack,
    /// The runtime of every Kubernetes call.
    pub rt: Runtime,
    /// An admin client.
    pub client: Client,
    /// The namespace of the run.
    pub namespace: String,
    /// A client trusting the stack's CA.
    pub http: HttpClient,
    operator_template: OperatorOptions,
}

impl std::fmt::Debug for Bed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bed")
            .field("namespace", &self.namespace)
            .field("state_dir", &self.stack.state_dir())
            .finish_non_exhaustive()
    }
}

impl Bed {
    /// Starts a temporary stack with Kubernetes, installs the CRDs and the shipped RBAC, and
    /// creates `namespace` with the project Secret and the FoundryProject (no operator yet); the
    /// apiserver keeps an audit log when `audit_log` ([`Bed::audit_log`]).
    pub fn start_with(namespace: &str, audit_log: bool) -> anyhow::Result<Self> {
        let started = Instant::now();
        let stack = Stack::start(StackOptions {
            kubernetes: true,
            audit_log,
            ..StackOptions::default()
        })
        .context("failed to start the stack")?;
        let operator_template = OperatorOptions::for_stack(&stack, stack.state_dir().join("op"))
            .context("failed to install the CRDs and the operator RBAC")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("failed to start a tokio runtime")?;
        let kube = stack.kube.as_ref().context("the stack has no Kubernetes")?;
        let kubeconfig = kube.kubeconfig_path().to_path_buf();
        let client = rt.block_on(async {
            let file = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            let config =
                Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                    .await?;
            anyhow::Ok(Client::try_from(config)?)
        })?;
        let http = stack.http()?;
        let bed = Self {
            stack,
            rt,
            client,
            namespace: namespace.to_owned(),
            http,
            operator_template,
        };
        bed.create_namespace_and_project()?;
        eprintln!(
            "Prepared namespace {namespace} with FoundryProject {PROJECT} in {:.1?}",
            started.elapsed()
        );
        Ok(bed)
    }

    fn create_namespace_and_project(&self) -> anyhow::Result<()> {
        let secret = self
            .stack
            .client_secret(OPERATOR_CLIENT_ID)
            .context("the token server has no operator client")?
            .expose()
            .to_owned();
        let project = self.stack.emulator.project().clone();
        let spec = json!({
            "armId": project.arm_id(),
            "endpoint": self.stack.emulator.project_endpoint,
            "managementEndpoint": self.stack.emulator.arm_endpoint,
            "authorityHost": self.stack.token_server.entra_authority_host(),
            "identity": {"clientSecret": {"clientId": OPERATOR_CLIENT_ID, "tenantId": DEFAULT_TENANT,
                "secretRef": {"name": PROJECT_SECRET, "key": "clientSecret"}}},
        });
        self.rt.block_on(async {
            self.create_namespace(&self.namespace).await?;
            self.apply_secret(PROJECT_SECRET, json!({"clientSecret": secret}))
                .await?;
            self.apply(Kind::Project, PROJECT, spec).await
        })
    }

    /// Creates (or keeps) the namespace `name`.
    pub async fn create_namespace(&self, name: &str) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name}})),
            )
            .await
            .with_context(|| format!("failed to create the namespace {name}"))?;
        Ok(())
    }

    /// Deletes every object of `kind` in `namespace` and waits until none is left (objects
    /// without finalizers: no operator watches that namespace).
    pub async fn delete_all_in(&self, namespace: &str, kind: Kind) -> anyhow::Result<()> {
        let api =
            Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &kind.resource());
        api.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .with_context(|| format!("failed to delete the {}s of {namespace}", kind.name()))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !api
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty()
        {
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "the {}s of {namespace} were not deleted in 120 s",
                    kind.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Operator options for this stack (shipped RBAC, the stack's CA), logging to
    /// `<state dir>/<dir_name>`, with the given resync and extra flags.
    pub fn operator_options(
        &self,
        dir_name: &str,
        resync: Duration,
        extra_args: Vec<String>,
    ) -> OperatorOptions {
        let mut options = self.operator_template.clone();
        options.dir = self.stack.state_dir().join(dir_name);
        options.resync = resync;
        options.extra_args = extra_args;
        options
    }

    /// Starts an operator.
    pub fn start_operator(&self, options: OperatorOptions) -> anyhow::Result<RunningOperator> {
        Operator::start(options).context("failed to start the operator")
    }

    /// The API of one of our kinds in the namespace.
    pub fn api(&self, kind: Kind) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.namespace, &kind.resource())
    }

    /// Server-side applies an object of one of our kinds.
    pub async fn apply(&self, kind: Kind, name: &str, spec: Value) -> anyhow::Result<()> {
        self.apply_in(&self.namespace, kind, name, spec).await
    }

    /// Server-side applies an object of one of our kinds in `namespace`.
    pub async fn apply_in(
        &self,
        namespace: &str,
        kind: Kind,
        name: &str,
        spec: Value,
    ) -> anyhow::Result<()> {
        let object = json!({
            "apiVersion": API_VERSION,
            "kind": kind.name(),
            "metadata": {"name": name},
            "spec": spec,
        });
        Api::<DynamicObject>::namespaced_with(self.client.clone(), namespace, &kind.resource())
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(object),
            )
            .await
            .with_context(|| format!("{} {name} was rejected", kind.name()))?;
        Ok(())
    }

    /// Server-side applies a Secret with string data.
    pub async fn apply_secret(&self, name: &str, data: Value) -> anyhow::Result<()> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name}, "stringData": data})),
        )
        .await
        .with_context(|| format!("Secret {name} was rejected"))?;
        Ok(())
    }

    /// Deletes an object of one of our kinds (its finalizer holds it until the operator is done).
    pub async fn delete(&self, kind: Kind, name: &str) -> anyhow::Result<()> {
        match self.api(kind).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(err) => {
                Err(err).with_context(|| format!("failed to delete {} {name}", kind.name()))
            }
        }
    }

    /// Every object of `kind` in the namespace.
    pub async fn list(&self, kind: Kind) -> anyhow::Result<Vec<DynamicObject>> {
        Ok(self
            .api(kind)
            .list(&ListParams::default())
            .await
            .with_context(|| format!("failed to list {}s", kind.name()))?
            .items)
    }

    /// Applies `objects` with at most `parallel` requests in flight; returns when each apply
    /// was sent (by kind and name).
    pub async fn apply_all(
        &self,
        objects: Vec<(Kind, String, Value)>,
        parallel: usize,
    ) -> anyhow::Result<BTreeMap<(Kind, String), Instant>> {
        self.apply_all_in(&self.namespace, objects, parallel).await
    }

    /// [`Bed::apply_all`] in `namespace`.
    pub async fn apply_all_in(
        &self,
        namespace: &str,
        objects: Vec<(Kind, String, Value)>,
        parallel: usize,
    ) -> anyhow::Result<BTreeMap<(Kind, String), Instant>> {
        futures::stream::iter(objects)
            .map(|(kind, name, spec)| async move {
                let sent = Instant::now();
                self.apply_in(namespace, kind, &name, spec).await?;
                anyhow::Ok(((kind, name), sent))
            })
            .buffer_unordered(parallel.max(1))
            .try_collect()
            .await
    }

    /// Waits until the FoundryProject is Ready (the operator resolved it).
    pub fn wait_project_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let project = self.rt.block_on(self.api(Kind::Project).get_opt(PROJECT))?;
            if project.as_ref().is_some_and(is_ready) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "FoundryProject {PROJECT} is not Ready within {timeout:?}: {}",
                    project.as_ref().map(ready_reason).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The API key Secret's data for the gateway's real key.
    pub fn gateway_key(&self) -> Value {
        json!({"key": self.stack.gateway.master_key.expose()})
    }

    /// A ModelGateway connection on LiteLLM with a static model, an API key from
    /// [`KEY_SECRET`] and the given probe and custom headers.
    pub fn connection_spec(&self, probe: Value, custom_headers: Option<Value>) -> Value {
        self.connection_spec_keyed(probe, custom_headers, KEY_SECRET)
    }

    /// [`Bed::connection_spec`] with the API key from the Secret `key_secret` (key `key`).
    pub fn connection_spec_keyed(
        &self,
        probe: Value,
        custom_headers: Option<Value>,
        key_secret: &str,
    ) -> Value {
        let mut spec = json!({
            "projectRef": {"name": PROJECT},
            "category": "ModelGateway",
            "target": self.stack.gateway.openai_target(),
            "auth": {"apiKey": {"secretRef": {"name": key_secret, "key": "key"},
                                "header": "Authorization", "format": "Bearer {api_key}"}},
            "models": {"static": [{"name": MODEL}]},
            "probe": probe,
        });
        if let (Some(headers), Value::Object(map)) = (custom_headers, &mut spec) {
            map.insert("customHeaders".to_owned(), headers);
        }
        spec
    }

    /// A PromptAgent on the `i`-th connection.
    pub fn agent_spec(i: usize, instructions: &str) -> Value {
        json!({
            "projectRef": {"name": PROJECT},
            "model": {"connectionRef": {"name": connection_name(i)}, "name": MODEL},
            "instructions": instructions,
        })
    }

    /// The emulator's request log after sequence number `since`.
    pub fn requests_since(&self, since: u64) -> anyhow::Result<Vec<Value>> {
        let log = self
            .stack
            .emulator
            .requests(&format!("since={since}"))
            .context("failed to read the emulator's request log")?;
        Ok(log.as_array().cloned().unwrap_or_default())
    }

    /// The highest sequence number in the emulator's request log (0 when empty).
    pub fn last_request_seq(&self, since: u64) -> anyhow::Result<u64> {
        Ok(max_seq(&self.requests_since(since)?).max(since))
    }

    fn arm_project_url(&self) -> String {
        format!(
            "{}{}",
            self.stack.emulator.arm_endpoint,
            self.stack.emulator.project().arm_id()
        )
    }

    /// `GET .../connections/{name}` as the operator's identity: the status.
    pub fn arm_get_connection(&self, token: &str, name: &str) -> anyhow::Result<u16> {
        let url = format!(
            "{}/connections/{name}?api-version={ARM_API_VERSION}",
            self.arm_project_url()
        );
        let bearer = format!("Bearer {token}");
        Ok(self.http.get(&url, &[("Authorization", &bearer)])?.status)
    }

    /// `GET /agents/{name}/versions` (first page) as the operator's identity: the status.
    pub fn data_list_versions(&self, token: &str, agent: &str) -> anyhow::Result<u16> {
        let url = format!(
            "{}/agents/{agent}/versions?api-version={DATA_API_VERSION}&limit=100",
            self.stack.emulator.project_endpoint
        );
        let bearer = format!("Bearer {token}");
        Ok(self.http.get(&url, &[("Authorization", &bearer)])?.status)
    }

    /// A one-token chat completion on the gateway, as the probe sends it: the status.
    pub fn gateway_chat(&self) -> anyhow::Result<u16> {
        let url = format!("{}/chat/completions", self.stack.gateway.openai_target());
        let bearer = format!("Bearer {}", self.stack.gateway.master_key.expose());
        let body = json!({"model": MODEL, "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}]});
        Ok(self
            .http
            .post_json(&url, &[("Authorization", &bearer)], &body)?
            .status)
    }

    /// Every project connection in Foundry (ARM list, following `nextLink`).
    pub fn arm_connections(&self) -> anyhow::Result<Vec<Value>> {
        let token = self.stack.arm_token()?;
        let bearer = format!("Bearer {}", token.expose());
        let mut url = Some(format!(
            "{}/connections?api-version={ARM_API_VERSION}",
            self.arm_project_url()
        ));
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(next) = url.take() else {
                return Ok(all);
            };
            let reply = self.http.get(&next, &[("Authorization", &bearer)])?;
            if !reply.is_success() {
                bail!(
                    "listing connections answered {}: {}",
                    reply.status,
                    reply.text
                );
            }
            let page = reply.json();
            all.extend(page["value"].as_array().cloned().unwrap_or_default());
            url = page["nextLink"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
        }
        bail!("listing connections did not end within {MAX_PAGES} pages")
    }

    /// Every item of a data-plane list (cursor paging with `after=<last_id>`).
    fn data_list(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let token = self.stack.data_plane_token()?;
        let bearer = format!("Bearer {}", token.expose());
        let base = format!(
            "{}{path}?api-version={DATA_API_VERSION}&limit=100&order=asc",
            self.stack.emulator.project_endpoint
        );
        let mut after: Option<String> = None;
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let url = match &after {
                Some(cursor) => format!("{base}&after={cursor}"),
                None => base.clone(),
            };
            let reply = self.http.get(&url, &[("Authorization", &bearer)])?;
            if reply.status == 404 {
                return Ok(all);
            }
            if !reply.is_success() {
                bail!("GET {path} answered {}: {}", reply.status, reply.text);
            }
            let page = reply.json();
            let items = page["data"].as_array().cloned().unwrap_or_default();
            let more = page["has_more"].as_bool().unwrap_or(false);
            all.extend(items);
            match page["last_id"].as_str() {
                Some(last) if more => after = Some(last.to_owned()),
                _ => return Ok(all),
            }
        }
        bail!("GET {path} did not end within {MAX_PAGES} pages")
    }

    /// Every version of an agent in Foundry (none when the agent does not exist).
    pub fn agent_versions(&self, agent: &str) -> anyhow::Result<Vec<Value>> {
        self.data_list(&format!("/agents/{agent}/versions"))
    }

    /// Every agent in Foundry.
    pub fn agents(&self) -> anyhow::Result<Vec<Value>> {
        self.data_list("/agents")
    }

    /// Where the gateway logs (its access log counts the probes it served).
    pub fn gateway_log(&self) -> PathBuf {
        self.stack.gateway.log().to_path_buf()
    }

    /// The apiserver's audit log, when the bed was started with one.
    pub fn audit_log(&self) -> Option<PathBuf> {
        self.stack
            .kube
            .as_ref()
            .and_then(|k| k.audit_log_path())
            .map(std::path::Path::to_path_buf)
    }

    /// The version of `admissionregistration.k8s.io` that serves MutatingAdmissionPolicies
    /// (`v1`, else `v1beta1`), if any.
    pub fn mutating_admission_policy_version(&self) -> Option<&'static str> {
        ["v1", "v1beta1"].into_iter().find(|version| {
            self.rt
                .block_on(
                    self.client
                        .list_api_group_resources(&format!("{ADMISSION_GROUP}/{version}")),
                )
                .is_ok_and(|list| {
                    list.resources
                        .iter()
                        .any(|r| r.name == "mutatingadmissionpolicies")
                })
        })
    }

    /// Installs the chart's finalizer MutatingAdmissionPolicy and its binding
    /// (`config/admission/finalizer.yaml`, rendered from the chart) at `version` of
    /// `admissionregistration.k8s.io`, and waits until a GatewayConnection created in the
    /// namespace (a dry run: nothing is stored) comes back with the operator's finalizer.
    pub fn install_finalizer_policy(&self, version: &str) -> anyhow::Result<()> {
        let source = foundry_gateway_testbed::paths::repo_root()
            .join("config")
            .join("admission")
            .join("finalizer.yaml");
        let text = std::fs::read_to_string(&source)
            .with_context(|| format!("failed to read {}", source.display()))?;
        let text = text.replace(
            &format!("apiVersion: {ADMISSION_GROUP}/v1\n"),
            &format!("apiVersion: {ADMISSION_GROUP}/{version}\n"),
        );
        let file = self.stack.state_dir().join("finalizer-policy.yaml");
        std::fs::write(&file, text)
            .with_context(|| format!("failed to write {}", file.display()))?;
        let kube = self
            .stack
            .kube
            .as_ref()
            .context("the stack has no Kubernetes")?;
        let file_arg = file.display().to_string();
        foundry_gateway_testbed::operator::kubectl(
            kube.kubeconfig_path(),
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                &format!("--field-manager={FIELD_MANAGER}"),
                "-f",
                &file_arg,
            ],
        )
        .context("failed to apply the finalizer policy")?;
        // The apiserver loads policies asynchronously.
        let probe: DynamicObject = serde_json::from_value(json!({
            "apiVersion": API_VERSION,
            "kind": Kind::Connection.name(),
            "metadata": {"name": "finalizer-policy-probe"},
            "spec": self.connection_spec(json!({}), None),
        }))?;
        let params = PostParams {
            dry_run: true,
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let deadline = Instant::now() + POLICY_TIMEOUT;
        loop {
            let created = self
                .rt
                .block_on(self.api(Kind::Connection).create(&params, &probe))
                .context("a dry-run create of a GatewayConnection failed")?;
            if created
                .metadata
                .finalizers
                .unwrap_or_default()
                .iter()
                .any(|f| f == FINALIZER)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the finalizer policy was not in effect within {POLICY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The highest `seq` of request log entries.
pub fn max_seq(requests: &[Value]) -> u64 {
    requests
        .iter()
        .filter_map(|r| r["seq"].as_u64())
        .max()
        .unwrap_or(0)
}

/// Whether a request log entry is a write (anything but GET/HEAD).
pub fn is_write(request: &Value) -> bool {
    !matches!(request["method"].as_str(), Some("GET" | "HEAD"))
}

/// Counts of request log entries by operation.
pub fn by_operation<'a>(requests: impl IntoIterator<Item = &'a Value>) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts
            .entry(r["operation"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// The object a request is about: the last path segment after `/connections/` or the agent
/// name after `/agents/`.
pub fn request_object(request: &Value) -> Option<String> {
    let path = request["path"].as_str()?;
    if let Some((_, rest)) = path.split_once("/connections/") {
        return rest.split('/').next().map(str::to_owned);
    }
    if let Some((_, rest)) = path.split_once("/agents/") {
        return rest.split('/').next().map(str::to_owned);
    }
    None
}

/// Lines of a log file that contain `needle` (0 when it cannot be read).
pub fn count_lines(path: &std::path::Path, needle: &str) -> u64 {
    std::fs::read(path)
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| l.contains(needle))
                .count() as u64
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(generation: i64, conditions: Value) -> DynamicObject {
        let mut o = DynamicObject::new("x", &Kind::Connection.resource());
        o.metadata.generation = Some(generation);
        o.data = json!({"status": {"conditions": conditions}});
        o
    }

    #[test]
    fn ready_needs_every_condition_at_the_current_generation() {
        let ready = json!([{"type": "Ready", "status": "True", "observedGeneration": 2},
                           {"type": "GatewayActive", "status": "True", "observedGeneration": 2}]);
        assert!(is_ready(&object(2, ready.clone())));
        assert!(!is_ready(&object(3, ready)));
        let stale = json!([{"type": "Ready", "status": "True", "observedGeneration": 2},
                           {"type": "GatewayActive", "status": "True", "observedGeneration": 1}]);
        assert!(!is_ready(&object(2, stale)));
        assert!(!is_ready(&object(
            1,
            json!([{"type": "Ready", "status": "False", "observedGeneration": 1}])
        )));
    }

    #[test]
    fn requests_name_their_object() {
        let arm = json!({"path": "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/a/projects/p/connections/gw-0001"});
        assert_eq!(request_object(&arm).as_deref(), Some("gw-0001"));
        let data = json!({"path": "/api/projects/p/agents/agent-0001/versions"});
        assert_eq!(request_object(&data).as_deref(), Some("agent-0001"));
        assert_eq!(
            request_object(&json!({"path": "/api/projects/p/agents"})),
            None
        );
        assert!(is_write(&json!({"method": "PUT"})));
        assert!(!is_write(&json!({"method": "GET"})));
    }
}
