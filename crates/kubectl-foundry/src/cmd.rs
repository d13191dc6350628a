//! The command line and the IO around the pure modules.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use foundry_gateway_api::connection::ConnectionScope as SpecScope;
use foundry_gateway_api::{FoundryProjectSpec, GatewayConnectionSpec, PromptAgentSpec};
use foundry_gateway_client::connections::{
    ConnectionScope, ConnectionsClient, ConnectionsClientOptions, DEFAULT_MANAGEMENT_ENDPOINT,
    ProjectResourceId,
};
use foundry_gateway_client::project::{
    ListOptions, ProjectClient, ProjectClientOptions, default_project_endpoint,
};
use foundry_gateway_client::{
    ClientOptions, SecretString, StaticTokenCredential, Transport, TransportOptions,
};
use foundry_gateway_operator::agent_definition;
use foundry_gateway_operator::connection::build::{self, ResolvedSecrets};
use foundry_gateway_operator::digest::DigestKey;
use foundry_gateway_operator::ownership::ObjectId;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::bicep::{self, ImportOptions, Parameters};
use crate::live;
use crate::manifest::{Document, render, secret_placeholder};
use crate::plan::{AgentPlan, ConnectionPlan, plan_agent, plan_connection};
use crate::status::{self, KINDS, Row};

/// `kubectl foundry`.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-foundry",
    bin_name = "kubectl foundry",
    version,
    about = "Import, status and plan for the Foundry gateway operator"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print manifests that describe existing Foundry connections and agents (adopt: true).
    #[command(subcommand)]
    Import(ImportCommand),
    /// One table of FoundryProjects, GatewayConnections and PromptAgents, with fixes.
    Status {
        /// Namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// What the operator would write to Foundry for these objects, without writing.
    Plan {
        /// A manifest file (multi-document YAML); default: the objects of the namespace.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Namespace (default: the kubeconfig's).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Foundry access.
        #[command(flatten)]
        foundry: FoundryArgs,
    },
}

/// `import` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// The Foundry samples' connection parameter files (parameters-*.json).
    Bicep {
        /// Parameter files of the APIM or ModelGateway connection templates.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// FoundryProject name for projectRef; also prints a FoundryProject skeleton.
        #[arg(long)]
        project: Option<String>,
        /// Namespace written into the manifests.
        #[arg(short, long)]
        namespace: Option<String>,
        /// `spec.managementPolicy` of the manifests: Observe (read and report, write nothing) until
        /// you have checked `kubectl foundry plan` and the status, then Full.
        #[arg(long, value_enum, default_value_t = Policy::Observe)]
        management_policy: Policy,
    },
    /// The gateway connections (project and account) and agents of a live project.
    Project {
        /// Namespace written into the manifests (and where --project-ref is looked up).
        #[arg(short, long)]
        namespace: Option<String>,
        /// The FoundryProject (in the cluster) to read; or give --arm-id.
        #[arg(long)]
        project_ref: Option<String>,
        /// Agents to import (default: every agent of the project).
        #[arg(long = "agent")]
        agents: Vec<String>,
        /// `spec.managementPolicy` of the manifests: Observe (read and report, write nothing) until
        /// you have checked `kubectl foundry plan` and the status, then Full.
        #[arg(long, value_enum, default_value_t = Policy::Observe)]
        management_policy: Policy,
        /// Foundry access.
        #[command(flatten)]
        foundry: FoundryArgs,
    },
}

/// `spec.managementPolicy` of imported objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Read, probe and report drift; write nothing to Foundry (the safe first step).
    #[value(name = "Observe")]
    Observe,
    /// Write the spec to Foundry (only what differs).
    #[value(name = "Full")]
    Full,
}

impl Policy {
    fn as_str(self) -> &'static str {
        match self {
            Self::Observe => "Observe",
            Self::Full => "Full",
        }
    }
}

/// Sets `spec.managementPolicy` on the imported GatewayConnections and PromptAgents.
fn with_policy(docs: &mut [Document], policy: Policy) {
    for doc in docs {
        let kind = doc.object["kind"].as_str().unwrap_or_default();
        if matches!(kind, "GatewayConnection" | "PromptAgent")
            && let Some(spec) = doc.object.get_mut("spec").and_then(Value::as_object_mut)
        {
            spec.insert("managementPolicy".into(), json!(policy.as_str()));
            if policy == Policy::Observe {
                doc.comments.push(
                    "managementPolicy: Observe: the operator reads, probes and reports drift, and writes nothing; set Full once `kubectl foundry plan` shows what you expect (only what differs is written).".into(),
                );
            }
        }
    }
}

/// Where Foundry is and how to reach it (overrides what a FoundryProject says).
#[derive(Debug, Clone, Default, Args)]
pub struct FoundryArgs {
    /// ARM id of the project.
    #[arg(long)]
    pub arm_id: Option<String>,
    /// Project data-plane endpoint.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// ARM endpoint.
    #[arg(long)]
    pub management_endpoint: Option<String>,
    /// Extra CA certificate (PEM) to trust, e.g. a local emulator's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
}

/// What the commands need from outside: the cluster (when one is needed) and tokens.
#[derive(Clone, Default)]
pub struct Env {
    /// Kubernetes client.
    pub kube: Option<kube::Client>,
    /// Data-plane token (`FOUNDRY_TOKEN`).
    pub foundry_token: Option<String>,
    /// ARM token (`FOUNDRY_ARM_TOKEN`, default the data-plane token).
    pub arm_token: Option<String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("kube", &self.kube.is_some())
            .field("foundry_token", &self.foundry_token.as_ref().map(|_| "***"))
            .field("arm_token", &self.arm_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Env {
    /// From the process: tokens from the environment, the kubeconfig when the command needs a
    /// cluster.
    pub async fn from_process(cli: &Cli) -> anyhow::Result<Self> {
        let needs_cluster = match &cli.command {
            Command::Import(ImportCommand::Bicep { .. }) => false,
            Command::Import(ImportCommand::Project {
                project_ref,
                foundry,
                ..
            }) => project_ref.is_some() || foundry.arm_id.is_none(),
            Command::Status { .. } => true,
            Command::Plan { .. } => true,
        };
        let kube = if needs_cluster {
            Some(
                kube::Client::try_default()
                    .await
                    .context("no Kubernetes cluster (KUBECONFIG)")?,
            )
        } else {
            None
        };
        let token = |name: &str| std::env::var(name).ok().filter(|t| !t.is_empty());
        let foundry_token = token("FOUNDRY_TOKEN");
        Ok(Self {
            kube,
            arm_token: token("FOUNDRY_ARM_TOKEN").or_else(|| foundry_token.clone()),
            foundry_token,
        })
    }

    fn kube(&self) -> anyhow::Result<&kube::Client> {
        self.kube
            .as_ref()
            .ok_or_else(|| anyhow!("this command needs a Kubernetes cluster"))
    }

    fn namespace(&self, given: Option<&String>) -> anyhow::Result<String> {
        Ok(match given {
            Some(ns) => ns.clone(),
            None => self.kube()?.default_namespace().to_owned(),
        })
    }
}

/// Runs a command and returns what it prints.
pub async fn execute(cli: Cli, env: Env) -> anyhow::Result<String> {
    match cli.command {
        Command::Import(ImportCommand::Bicep {
            files,
            project,
            namespace,
            management_policy,
        }) => import_bicep(&files, project, namespace, management_policy),
        Command::Import(ImportCommand::Project {
            namespace,
            project_ref,
            agents,
            management_policy,
            foundry,
        }) => {
            let request = ImportRequest {
                namespace,
                project_ref,
                agents,
                policy: management_policy,
            };
            import_project(&env, request, &foundry).await
        }
        Command::Status {
            namespace,
            all_namespaces,
        } => {
            let rows = status_rows(&env, namespace.as_ref(), all_namespaces).await?;
            Ok(status::render(&rows, all_namespaces))
        }
        Command::Plan {
            file,
            namespace,
            foundry,
        } => run_plan(&env, file, namespace, &foundry).await,
    }
}

fn import_bicep(
    files: &[PathBuf],
    project: Option<String>,
    namespace: Option<String>,
    policy: Policy,
) -> anyhow::Result<String> {
    let options = ImportOptions {
        project: project.clone(),
        namespace,
    };
    let mut imported = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read {}", file.display()))?;
        let name = file.display().to_string();
        let params = Parameters::parse(&name, &text)?;
        imported.push((name, bicep::import(params, &options)));
    }
    let mut docs = bicep::manifests(&mut imported, &options, project.is_some());
    with_policy(&mut docs, policy);
    Ok(render(&docs))
}

fn resource(kind: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(
        foundry_gateway_api::GROUP,
        foundry_gateway_api::VERSION,
        kind,
    );
    let plural = format!("{}s", kind.to_ascii_lowercase());
    ApiResource::from_gvk_with_plural(&gvk, &plural)
}

async fn list_kind(
    client: &kube::Client,
    namespace: Option<&str>,
    kind: &str,
) -> anyhow::Result<Vec<Value>> {
    let ar = resource(kind);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .with_context(|| format!("failed to list {kind}s"))?;
    list.items
        .into_iter()
        .map(|o| serde_json::to_value(o).map_err(Into::into))
        .collect()
}

async fn status_rows(env: &Env, namespace: Option<&String>, all: bool) -> anyhow::Result<Vec<Row>> {
    let client = env.kube()?;
    let ns = if all {
        None
    } else {
        Some(env.namespace(namespace)?)
    };
    let mut rows = Vec::new();
    for kind in KINDS {
        for object in list_kind(client, ns.as_deref(), kind).await? {
            rows.push(Row::from_object(kind, &object));
        }
    }
    Ok(rows)
}

/// Where one project is.
#[derive(Debug, Clone)]
struct ProjectTarget {
    id: ProjectResourceId,
    endpoint: String,
    management_endpoint: String,
}

fn project_target(
    spec: Option<&FoundryProjectSpec>,
    args: &FoundryArgs,
) -> anyhow::Result<ProjectTarget> {
    let arm_id = match (&args.arm_id, spec) {
        (Some(id), _) => id.clone(),
        (None, Some(spec)) => match &spec.arm_id {
            Some(id) => id.clone(),
            None => format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}/projects/{}",
                spec.subscription_id.as_deref().unwrap_or_default(),
                spec.resource_group.as_deref().unwrap_or_default(),
                spec.account.as_deref().unwrap_or_default(),
                spec.project.as_deref().unwrap_or_default()
            ),
        },
        (None, None) => bail!("give --arm-id, or --project-ref naming a FoundryProject"),
    };
    let id = ProjectResourceId::parse(&arm_id).with_context(|| format!("bad ARM id {arm_id}"))?;
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| spec.and_then(|s| s.endpoint.clone()))
        .unwrap_or_else(|| default_project_endpoint(&id.account, &id.project));
    let management_endpoint = args
        .management_endpoint
        .clone()
        .or_else(|| spec.and_then(|s| s.management_endpoint.clone()))
        .unwrap_or_else(|| DEFAULT_MANAGEMENT_ENDPOINT.to_owned());
    Ok(ProjectTarget {
        id,
        endpoint,
        management_endpoint,
    })
}

fn client_options(args: &FoundryArgs) -> anyhow::Result<ClientOptions> {
    let extra_root_ca_pem = match &args.ca_file {
        Some(path) => Some(
            std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?,
        ),
        None => None,
    };
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem,
        ..Default::default()
    })?;
    Ok(ClientOptions {
        transport: Some(transport),
        ..Default::default()
    })
}

fn connections_client(
    env: &Env,
    target: &ProjectTarget,
    scope: ConnectionScope,
    options: &ClientOptions,
) -> anyhow::Result<ConnectionsClient> {
    let token = env
        .arm_token
        .clone()
        .ok_or_else(|| anyhow!("set FOUNDRY_ARM_TOKEN (or FOUNDRY_TOKEN) to an ARM access token, e.g. az account get-access-token --query accessToken -o tsv"))?;
    Ok(ConnectionsClient::with_scope(
        &target.management_endpoint,
        target.id.clone(),
        scope,
        StaticTokenCredential::new(token),
        Some(ConnectionsClientOptions {
            client_options: options.clone(),
            ..Default::default()
        }),
    )?)
}

fn project_client(
    env: &Env,
    target: &ProjectTarget,
    options: &ClientOptions,
) -> anyhow::Result<ProjectClient> {
    let token = env
        .foundry_token
        .clone()
        .ok_or_else(|| anyhow!("set FOUNDRY_TOKEN to a token for https://ai.azure.com, e.g. az account get-access-token --resource https://ai.azure.com --query accessToken -o tsv"))?;
    Ok(ProjectClient::new(
        &target.endpoint,
        StaticTokenCredential::new(token),
        Some(ProjectClientOptions {
            client_options: options.clone(),
            ..Default::default()
        }),
    )?)
}

async fn get_project(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<FoundryProjectSpec>> {
    let api: Api<foundry_gateway_api::FoundryProject> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .get_opt(name)
        .await
        .with_context(|| format!("failed to read FoundryProject {namespace}/{name}"))?
        .map(|p| p.spec))
}

fn api_version() -> String {
    format!(
        "{}/{}",
        foundry_gateway_api::GROUP,
        foundry_gateway_api::VERSION
    )
}

fn document(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    spec: Value,
    comments: Vec<String>,
) -> Document {
    let mut metadata = json!({"name": name});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    Document {
        comments,
        object: json!({"apiVersion": api_version(), "kind": kind, "metadata": metadata, "spec": spec}),
        trailing_comments: Vec::new(),
    }
}

/// What `import project` was asked for.
struct ImportRequest {
    namespace: Option<String>,
    project_ref: Option<String>,
    agents: Vec<String>,
    policy: Policy,
}

async fn import_project(
    env: &Env,
    request: ImportRequest,
    args: &FoundryArgs,
) -> anyhow::Result<String> {
    let ImportRequest {
        namespace,
        project_ref,
        agents,
        policy,
    } = request;
    let agents = agents.as_slice();
    let namespace = match (&namespace, &env.kube) {
        (Some(ns), _) => Some(ns.clone()),
        (None, Some(k)) => Some(k.default_namespace().to_owned()),
        (None, None) => None,
    };
    let project_spec = match (&project_ref, &env.kube, &namespace) {
        (Some(name), Some(client), Some(ns)) => Some(
            get_project(client, ns, name)
                .await?
                .ok_or_else(|| anyhow!("FoundryProject {ns}/{name} not found"))?,
        ),
        (Some(_), _, _) => bail!("--project-ref needs a Kubernetes cluster"),
        _ => None,
    };
    let target = project_target(project_spec.as_ref(), args)?;
    let options = client_options(args)?;
    let project_name = project_ref
        .clone()
        .unwrap_or_else(|| crate::manifest::object_name(&target.id.project));
    let mut docs = Vec::new();
    if project_spec.is_none() {
        docs.push(document(
            "FoundryProject",
            &project_name,
            namespace.as_deref(),
            json!({
                "armId": target.id.to_string(),
                "endpoint": target.endpoint,
                "managementEndpoint": target.management_endpoint,
                "identity": {"workloadIdentity": {"clientId": "00000000-0000-0000-0000-000000000000", "tenantId": "00000000-0000-0000-0000-000000000000", "serviceAccountName": "foundry-project"}},
            }),
            vec!["FoundryProject skeleton: choose one identity (workloadIdentity shown) and fill in its ids; the project identity is not readable from Foundry.".into()],
        ));
    }
    let mut imported_connections = Vec::new();
    for (scope, spec_scope) in [
        (ConnectionScope::Project, SpecScope::Project),
        (ConnectionScope::Account, SpecScope::Account),
    ] {
        let client = connections_client(env, &target, scope, &options)?;
        let listed = client
            .list(None)
            .await
            .with_context(|| format!("failed to list the {scope:?} connections"))?;
        for resource in listed.iter().filter(|r| live::is_gateway(r)) {
            let imp = live::connection_spec(resource, spec_scope, &project_name);
            for (secret, key, what) in &imp.secrets {
                docs.push(secret_placeholder(namespace.as_deref(), secret, key, what));
            }
            let mut comments = vec![format!(
                "Imported from the {} connection {:?} (adopt: true takes it over).",
                if spec_scope == SpecScope::Account {
                    "account"
                } else {
                    "project"
                },
                imp.spec.connection_name.as_deref().unwrap_or_default()
            )];
            comments.extend(imp.comments.iter().cloned());
            imported_connections.push((
                imp.spec.connection_name.clone().unwrap_or_default(),
                imp.name.clone(),
            ));
            docs.push(document(
                "GatewayConnection",
                &imp.name,
                namespace.as_deref(),
                serde_json::to_value(&imp.spec)?,
                comments,
            ));
        }
    }
    let mut notes = String::new();
    {
        let client = project_client(env, &target, &options)?;
        // Every agent of the project unless some are named.
        let agents: Vec<String> = if agents.is_empty() {
            client
                .list_agents(&ListOptions::default())
                .await
                .context("failed to list the project's agents")?
                .into_iter()
                .map(|a| a.name)
                .collect()
        } else {
            agents.to_vec()
        };
        for agent in &agents {
            let versions = client
                .list_versions(agent, &ListOptions::default())
                .await
                .with_context(|| format!("failed to list the versions of agent {agent}"))?;
            let Some(newest) = agent_definition::newest_version(&versions) else {
                let _ = writeln!(notes, "# Agent {agent:?}: no live version; not imported.");
                continue;
            };
            match live::agent_spec(agent, newest, &project_name, &imported_connections) {
                Some(imp) => docs.push(document(
                    "PromptAgent",
                    &imp.name,
                    namespace.as_deref(),
                    serde_json::to_value(&imp.spec)?,
                    imp.comments,
                )),
                None => {
                    let _ = writeln!(
                        notes,
                        "# Agent {agent:?}: not a prompt agent; not imported."
                    );
                }
            }
        }
    }
    with_policy(&mut docs, policy);
    Ok(format!("{notes}{}", render(&docs)))
}

/// The objects `plan` works on, with what it needs to resolve them.
#[derive(Default)]
struct PlanInput {
    projects: BTreeMap<String, FoundryProjectSpec>,
    connections: Vec<(String, Option<String>, GatewayConnectionSpec)>,
    agents: Vec<(String, Option<String>, PromptAgentSpec)>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

fn parse_file(text: &str, input: &mut PlanInput) -> anyhow::Result<()> {
    use serde::Deserialize as _;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap_or_default();
        let name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let uid = value["metadata"]["uid"].as_str().map(str::to_owned);
        let spec = value["spec"].clone();
        match kind {
            "FoundryProject" => {
                input.projects.insert(name, serde_json::from_value(spec)?);
            }
            "GatewayConnection" => {
                input
                    .connections
                    .push((name, uid, serde_json::from_value(spec)?))
            }
            "PromptAgent" => input
                .agents
                .push((name, uid, serde_json::from_value(spec)?)),
            "Secret" => {
                let mut data: BTreeMap<String, String> = BTreeMap::new();
                if let Some(map) = value["stringData"].as_object() {
                    for (k, v) in map {
                        data.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                    }
                }
                input.secrets.insert(name, data);
            }
            "ConfigMap" => {
                let data = serde_json::from_value(value["data"].clone()).unwrap_or_default();
                input.config_maps.insert(name, data);
            }
            _ => {}
        }
    }
    Ok(())
}

async fn secret_value(
    env: &Env,
    namespace: &str,
    input: &PlanInput,
    name: &str,
    key: &str,
) -> Option<SecretString> {
    if let Some(v) = input.secrets.get(name).and_then(|d| d.get(key)) {
        return Some(SecretString::new(v.clone()));
    }
    let client = env.kube.as_ref()?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.ok()??;
    let bytes = secret.data?.get(key)?.0.clone();
    String::from_utf8(bytes).ok().map(SecretString::new)
}

async fn run_plan(
    env: &Env,
    file: Option<PathBuf>,
    namespace: Option<String>,
    args: &FoundryArgs,
) -> anyhow::Result<String> {
    let mut input = PlanInput::default();
    let namespace = match (&namespace, &env.kube) {
        (Some(ns), _) => ns.clone(),
        (None, Some(k)) => k.default_namespace().to_owned(),
        (None, None) => "default".to_owned(),
    };
    match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            parse_file(&text, &mut input)?;
        }
        None => {
            let client = env.kube()?;
            for object in list_kind(client, Some(&namespace), "GatewayConnection").await? {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let uid = object["metadata"]["uid"].as_str().map(str::to_owned);
                input.connections.push((
                    name,
                    uid,
                    serde_json::from_value(object["spec"].clone())?,
                ));
            }
            for object in list_kind(client, Some(&namespace), "PromptAgent").await? {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let uid = object["metadata"]["uid"].as_str().map(str::to_owned);
                input
                    .agents
                    .push((name, uid, serde_json::from_value(object["spec"].clone())?));
            }
        }
    }
    let options = client_options(args)?;
    let mut out = String::new();
    let mut notes = Vec::new();
    let key = DigestKey::random();
    let mut project_cache: BTreeMap<String, ProjectTarget> = BTreeMap::new();
    let mut connection_names: BTreeMap<String, String> = BTreeMap::new();
    for (name, _, spec) in &input.connections {
        connection_names.insert(name.clone(), build::connection_name(spec, name));
    }
    for (name, uid, spec) in &input.connections {
        let target = resolve_target(
            env,
            &namespace,
            &input,
            &spec.project_ref.name,
            args,
            &mut project_cache,
        )
        .await?;
        let mut secrets = ResolvedSecrets::default();
        let mut placeholders = Vec::new();
        if let Some(k) = &spec.auth.api_key {
            secrets.api_key = Some(
                match secret_value(
                    env,
                    &namespace,
                    &input,
                    &k.secret_ref.name,
                    &k.secret_ref.key,
                )
                .await
                {
                    Some(v) => v,
                    None => {
                        placeholders.push(format!("{}/{}", k.secret_ref.name, k.secret_ref.key));
                        SecretString::new("placeholder")
                    }
                },
            );
        }
        if let Some(o) = &spec.auth.oauth2 {
            secrets.oauth_client_secret = Some(
                match secret_value(
                    env,
                    &namespace,
                    &input,
                    &o.client_secret_ref.name,
                    &o.client_secret_ref.key,
                )
                .await
                {
                    Some(v) => v,
                    None => {
                        placeholders.push(format!(
                            "{}/{}",
                            o.client_secret_ref.name, o.client_secret_ref.key
                        ));
                        SecretString::new("placeholder")
                    }
                },
            );
        }
        for header in &spec.custom_headers {
            if let Some(from) = &header.value_from {
                let value = match secret_value(env, &namespace, &input, &from.name, &from.key).await
                {
                    Some(v) => v,
                    None => {
                        placeholders.push(format!("{}/{}", from.name, from.key));
                        SecretString::new("placeholder")
                    }
                };
                secrets.header_values.insert(header.name.clone(), value);
            }
        }
        let desired = match build::build_for(
            spec,
            &ObjectId::new(&namespace, name, Some(uid.as_deref().unwrap_or_default())),
            &secrets,
            &key,
        ) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "GatewayConnection {namespace}/{name}: invalid spec, nothing would be written: {e}"
                );
                continue;
            }
        };
        let scope = match spec.scope.unwrap_or_default() {
            SpecScope::Project => ConnectionScope::Project,
            SpecScope::Account => ConnectionScope::Account,
        };
        let client = connections_client(env, &target, scope, &options)?;
        let live = client
            .get(&desired.name)
            .await
            .with_context(|| format!("failed to read connection {}", desired.name))?;
        let scope_text = if scope == ConnectionScope::Account {
            "account"
        } else {
            "project"
        };
        let plan = plan_connection(
            &desired.properties,
            live.as_ref().map(|r| &r.properties),
            spec.adopt == Some(true),
        );
        match plan {
            ConnectionPlan::Create => {
                let _ = writeln!(
                    out,
                    "GatewayConnection {namespace}/{name} -> {scope_text} connection {:?}: create",
                    desired.name
                );
            }
            ConnectionPlan::Update(lines) => {
                let _ = writeln!(
                    out,
                    "GatewayConnection {namespace}/{name} -> {scope_text} connection {:?}: update",
                    desired.name
                );
                for l in lines {
                    let _ = writeln!(out, "    {l}");
                }
            }
            ConnectionPlan::Nothing => {
                let _ = writeln!(
                    out,
                    "GatewayConnection {namespace}/{name} -> {scope_text} connection {:?}: nothing to do",
                    desired.name
                );
            }
        }
        if !placeholders.is_empty() {
            notes.push(format!(
                "GatewayConnection {name}: Secret(s) {} not readable; planned with placeholder values",
                placeholders.join(", ")
            ));
        }
    }
    for (name, uid, spec) in &input.agents {
        let target = resolve_target(
            env,
            &namespace,
            &input,
            &spec.project_ref.name,
            args,
            &mut project_cache,
        )
        .await?;
        let instructions = match (&spec.instructions, &spec.instructions_from) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(from)) => {
                config_map_value(env, &namespace, &input, &from.name, &from.key).await
            }
            (None, None) => None,
        };
        let connection = match connection_names.get(&spec.model.connection_ref.name) {
            Some(c) => c.clone(),
            None => {
                connection_name_in_cluster(env, &namespace, &spec.model.connection_ref.name).await
            }
        };
        let me = ObjectId::new(&namespace, name, uid.as_deref());
        let desired = match agent_definition::desired_version(
            spec,
            &connection,
            instructions.as_deref(),
            &me,
        ) {
            Ok(d) => d,
            Err(e) => {
                let _ = writeln!(
                    out,
                    "PromptAgent {namespace}/{name}: invalid spec, nothing would be written: {e}"
                );
                continue;
            }
        };
        let agent = agent_definition::agent_name(spec, name)
            .map_err(|e| anyhow!("{e}"))?
            .to_owned();
        let client = project_client(env, &target, &options)?;
        let versions = client
            .list_versions(&agent, &ListOptions::default())
            .await
            .with_context(|| format!("failed to list the versions of agent {agent}"))?;
        match plan_agent(&desired, &versions, &me) {
            AgentPlan::NewVersion(lines) => {
                let _ = writeln!(
                    out,
                    "PromptAgent {namespace}/{name} -> agent {agent:?}: new version"
                );
                for l in lines {
                    let _ = writeln!(out, "    {l}");
                }
            }
            AgentPlan::Nothing { version } => {
                let _ = writeln!(
                    out,
                    "PromptAgent {namespace}/{name} -> agent {agent:?}: nothing to do (version {version})"
                );
            }
        }
        if uid.is_none() {
            notes.push(format!(
                "PromptAgent {name}: not in the cluster yet; compared by definition hash only"
            ));
        }
    }
    if input.connections.is_empty() && input.agents.is_empty() {
        out.push_str("No GatewayConnections or PromptAgents to plan.\n");
    }
    notes.push("Credentials are never compared: ARM does not return them (the operator tracks them by hash).".into());
    for n in notes {
        let _ = writeln!(out, "note: {n}");
    }
    Ok(out)
}

async fn connection_name_in_cluster(env: &Env, namespace: &str, object: &str) -> String {
    if let Some(client) = &env.kube {
        let api: Api<foundry_gateway_api::GatewayConnection> =
            Api::namespaced(client.clone(), namespace);
        if let Ok(Some(c)) = api.get_opt(object).await {
            return build::connection_name(&c.spec, object);
        }
    }
    object.to_owned()
}

async fn config_map_value(
    env: &Env,
    namespace: &str,
    input: &PlanInput,
    name: &str,
    key: &str,
) -> Option<String> {
    if let Some(v) = input.config_maps.get(name).and_then(|d| d.get(key)) {
        return Some(v.clone());
    }
    let client = env.kube.as_ref()?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.ok()??.data?.get(key).cloned()
}

async fn resolve_target(
    env: &Env,
    namespace: &str,
    input: &PlanInput,
    project: &str,
    args: &FoundryArgs,
    cache: &mut BTreeMap<String, ProjectTarget>,
) -> anyhow::Result<ProjectTarget> {
    if let Some(t) = cache.get(project) {
        return Ok(t.clone());
    }
    let spec = match input.projects.get(project) {
        Some(s) => Some(s.clone()),
        None => match &env.kube {
            Some(client) => get_project(client, namespace, project).await?,
            None => None,
        },
    };
    let target = project_target(spec.as_ref(), args)
        .with_context(|| format!("FoundryProject {namespace}/{project}"))?;
    cache.insert(project.to_owned(), target.clone());
    Ok(target)
}
