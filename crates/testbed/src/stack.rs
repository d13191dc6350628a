//! The whole test bed around the operator: the token server, the LiteLLM gateway and the Foundry
//! emulator (and Kubernetes when asked), started in parallel, with one throwaway CA, and an env
//! file that tells a script everything it needs.
//!
//! Layout of the state directory:
//! `pki/` (the CA), `token-server/`, `gateway/`, `emulator/` (each: certificate, config, log),
//! `kube/` (the Kubernetes test bed, when asked, unless the stack is temporary: then Kubernetes
//! has a temporary directory of its own), `stack.env` (0600, holds the throwaway test secrets),
//! `stack.json` (no secrets: URLs and processes, to stop a detached stack).
//!
//! Attached, one watchdog ends every part of the stack when the owner process ends and then
//! removes a temporary directory; Kubernetes has its own (helper-made) watchdog.
//!
//! Entra ID as the APIM setup guide configures it: every project the emulator serves has a
//! managed identity of its own, a token-server client ([`project_identity_client_id`]; the first
//! project's is [`PROJECT_IDENTITY_CLIENT_ID`]) whose tokens carry `xms_mirid` = that project's
//! ARM id in Entra's form ([`Stack::project_mirid_of`]); the emulator calls a gateway for a
//! project with that project's token, and the gateway accepts a token for
//! `https://cognitiveservices.azure.com` only with the `xms_mirid` of a served project.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::emulator::{
    EmulatorOptions, EmulatorProject, FoundryEmulator, IdentityClient, ProjectIdentityClient,
    RunningEmulator,
};
use crate::gateway::{
    COGNITIVE_SERVICES_AUDIENCE, GATEWAY_AUDIENCE, Gateway, GatewayModel, GatewayOptions, JwtAuth,
    MIRID_CLAIM, RequiredClaim, RunningGateway,
};
use crate::http::HttpClient;
use crate::install::write_private;
use crate::part::STOP_GRACE;
use crate::pki::{Ca, San};
use crate::ports::free_loopback_ports;
use crate::process::{ManagedProcess, Mode, Watchdog};
use crate::stack_error::{StackError, StackResult};
use crate::state::ProcessRecord;
use crate::token_server::{
    DEFAULT_TENANT, RunningTokenServer, TokenServer, TokenServerOptions, managed_identity_mirid,
};
use crate::{Options, Secret, Testbed, random_hex};

/// The operator's own identity at the token server (ARM and data-plane tokens).
pub const OPERATOR_CLIENT_ID: &str = "foundry-operator";
/// The OAuth2 client of `ModelGateway` connections (scope `api://gateway/.default`).
pub const GATEWAY_CLIENT_ID: &str = "foundry-gateway-client";
/// The managed identity of the emulator's first project (Entra-authenticated APIM connections).
pub const PROJECT_IDENTITY_CLIENT_ID: &str = "foundry-project-identity";

/// The token-server client standing for the managed identity of the stack's `index`-th project
/// (`project`): [`PROJECT_IDENTITY_CLIENT_ID`] for the first, `foundry-project-identity-<name>`
/// for the others.
pub fn project_identity_client_id(index: usize, project: &EmulatorProject) -> String {
    if index == 0 {
        PROJECT_IDENTITY_CLIENT_ID.to_owned()
    } else {
        format!(
            "{PROJECT_IDENTITY_CLIENT_ID}-{}",
            project.project.to_ascii_lowercase()
        )
    }
}

/// Scope of data-plane tokens.
pub const DATA_PLANE_SCOPE: &str = "https://ai.azure.com/.default";
/// Scope of ARM tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// Scope a `ModelGateway` connection's OAuth2 client asks for.
pub const GATEWAY_SCOPE: &str = "api://gateway/.default";

/// File name of the state of a stack inside its directory.
pub const STACK_STATE_FILE: &str = "stack.json";
/// File name of the env file inside the stack's directory.
pub const STACK_ENV_FILE: &str = "stack.env";

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The state directory (must be empty or absent); `None` makes a temporary one that is
    /// deleted when the stack stops.
    pub state_dir: Option<PathBuf>,
    /// Detached or attached.
    pub mode: Mode,
    /// Also start Kubernetes (kube-apiserver and etcd) in `<state dir>/kube`.
    pub kubernetes: bool,
    /// Run Kubernetes with an audit log ([`crate::Options::audit_log`]).
    pub audit_log: bool,
    /// The gateway's models.
    pub models: Vec<GatewayModel>,
    /// The Foundry projects the emulator serves, the first one the default of the env file
    /// (default: [`EmulatorProject::default_project`] alone). Projects of one account share its
    /// account connections; each project has its own managed identity
    /// ([`project_identity_client_id`]).
    pub projects: Vec<EmulatorProject>,
    /// How long each part may take to become ready (installs not counted).
    pub ready_timeout: Duration,
    /// The address the token server, the gateway and the emulator listen on (default
    /// 127.0.0.1; a test bed node's bridge address, [`crate::node::NODE_IP`], makes them
    /// reachable from its pods).
    pub listen: Ipv4Addr,
}

/// The subject alternative names of a part's serving certificate: loopback, and `listen` when it
/// is another address.
pub(crate) fn serving_sans(listen: Ipv4Addr) -> Vec<San> {
    let mut sans = vec![
        San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        San::Dns("localhost".to_owned()),
    ];
    if listen != Ipv4Addr::LOCALHOST {
        sans.push(San::Ip(IpAddr::V4(listen)));
    }
    sans
}

impl Default for StackOptions {
    /// A temporary stack without Kubernetes, attached to this process.
    fn default() -> Self {
        Self {
            state_dir: None,
            mode: Mode::attached_to_this_process(),
            kubernetes: false,
            audit_log: false,
            models: GatewayModel::defaults(),
            projects: vec![EmulatorProject::default_project()],
            ready_timeout: Duration::from_secs(120),
            listen: Ipv4Addr::LOCALHOST,
        }
    }
}

/// What `stack.json` keeps: where things are and which processes to stop. No secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackState {
    /// `None` for a detached stack, else the pid whose end ends it.
    pub owner: Option<u32>,
    /// Whether the directory is deleted when the stack stops.
    pub temporary: bool,
    /// The CA certificate every part's serving certificate chains to.
    pub ca_file: PathBuf,
    /// The env file.
    pub env_file: PathBuf,
    /// The emulator's URL.
    pub emulator_url: String,
    /// The gateway's URL.
    pub gateway_url: String,
    /// The token server's URL.
    pub token_server_url: String,
    /// The state directory of the Kubernetes test bed, when there is one.
    pub kube_dir: Option<PathBuf>,
    /// The processes of the stack (not those of Kubernetes).
    pub processes: Vec<ProcessRecord>,
}

/// Whether one part of a stack answers, as [`Stack::check_detached`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHealth {
    /// The part (`token-server`, `litellm`, `foundry-emulator`, `kubernetes`).
    pub name: String,
    /// What was asked.
    pub url: String,
    /// `Ok` on 2xx, else what came back.
    pub answer: Result<(), String>,
}

/// A running stack. In attached mode it stops when dropped.
#[derive(Debug)]
pub struct Stack {
    /// The OAuth2 token server.
    pub token_server: RunningTokenServer,
    /// The LiteLLM gateway.
    pub gateway: RunningGateway,
    /// The Foundry emulator.
    pub emulator: RunningEmulator,
    /// Kubernetes, when asked for.
    pub kube: Option<Testbed>,
    state_dir: PathBuf,
    temporary: bool,
    mode: Mode,
    ca: Ca,
    ca_pem: String,
    watchdog: Option<Arc<Watchdog>>,
    stopped: bool,
}

impl Stack {
    /// Installs what is missing and starts every part, in parallel where the parts allow.
    pub fn start(options: StackOptions) -> StackResult<Self> {
        let started = Instant::now();
        let (state_dir, temporary) = match &options.state_dir {
            Some(dir) => (prepare_dir(dir)?, false),
            None => (temp_dir()?, true),
        };
        let result = Self::start_in(&state_dir, temporary, &options, started);
        if result.is_err() && temporary {
            let _ = fs::remove_dir_all(&state_dir);
        }
        result
    }

    fn start_in(
        dir: &Path,
        temporary: bool,
        options: &StackOptions,
        started: Instant,
    ) -> StackResult<Self> {
        let watchdog = match options.mode {
            Mode::Attached { owner } => Some(Arc::new(Watchdog::start(owner, dir, temporary)?)),
            Mode::Detached => None,
        };
        let result = Self::start_parts(dir, temporary, options, watchdog.clone());
        match result {
            Ok(mut stack) => {
                stack.watchdog = watchdog;
                if let Err(err) = stack.write_files() {
                    let _ = stack.stop();
                    return Err(err);
                }
                eprintln!(
                    "Started the stack in {:.1?} (state in {})",
                    started.elapsed(),
                    dir.display()
                );
                Ok(stack)
            }
            Err(err) => {
                disarm(watchdog);
                Err(err)
            }
        }
    }

    fn start_parts(
        dir: &Path,
        temporary: bool,
        options: &StackOptions,
        watchdog: Option<Arc<Watchdog>>,
    ) -> StackResult<Self> {
        let pki = dir.join("pki");
        fs::create_dir_all(&pki).map_err(|source| StackError::create_dir(&pki, source))?;
        let ca = Ca::create(&pki, "ca", "foundry-stack-ca")?;
        let ca_pem = ca.cert_pem()?;
        let projects = if options.projects.is_empty() {
            vec![EmulatorProject::default_project()]
        } else {
            options.projects.clone()
        };
        // (project, its identity's client id, the `xms_mirid` of that identity's tokens)
        let identities: Vec<(String, String, String)> = projects
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.project.clone(),
                    project_identity_client_id(i, p),
                    managed_identity_mirid(&p.arm_id()),
                )
            })
            .collect();
        let clients: BTreeMap<String, Secret> = [OPERATOR_CLIENT_ID, GATEWAY_CLIENT_ID]
            .into_iter()
            .map(str::to_owned)
            .chain(identities.iter().map(|(_, id, _)| id.clone()))
            .map(|id| (id, Secret::new(random_hex(24))))
            .collect();
        let [token_port, gateway_port] = match free_loopback_ports(2)?[..] {
            [a, b] => [a, b],
            _ => return Err(StackError::NotRunning { what: "free ports" }),
        };
        // The token server's URL is known before it runs: the emulator and the gateway fetch its
        // key set only when the first token arrives, so all parts start at once.
        let token_base = format!("https://{}:{token_port}", options.listen);
        let mut emulator_options = EmulatorOptions::new(
            dir.join("emulator"),
            ca.clone(),
            format!("{token_base}/jwks"),
        );
        emulator_options.projects = projects;
        let mut token_options =
            TokenServerOptions::new(dir.join("token-server"), ca.clone(), clients.clone());
        for (_, client_id, mirid) in &identities {
            token_options = token_options.with_claim(client_id, MIRID_CLAIM, mirid);
        }
        token_options.mode = options.mode;
        token_options.listen = options.listen;
        token_options.port = Some(token_port);
        token_options.ready_timeout = options.ready_timeout;
        token_options.shared_watchdog = watchdog.clone();
        let mut gateway_options = GatewayOptions::new(dir.join("gateway"), ca.clone());
        gateway_options.mode = options.mode;
        gateway_options.listen = options.listen;
        gateway_options.port = Some(gateway_port);
        gateway_options.models = options.models.clone();
        gateway_options.ready_timeout = options.ready_timeout;
        gateway_options.shared_watchdog = watchdog.clone();
        gateway_options.jwt = Some(JwtAuth {
            jwks_url: format!("{token_base}/jwks"),
            audiences: vec![
                GATEWAY_AUDIENCE.to_owned(),
                COGNITIVE_SERVICES_AUDIENCE.to_owned(),
            ],
            issuer: Some(token_base.clone()),
            // The APIM guide's policy lists the project ARM ids allowed to call.
            required_claims: vec![RequiredClaim {
                audience: COGNITIVE_SERVICES_AUDIENCE.to_owned(),
                claim: MIRID_CLAIM.to_owned(),
                values: identities.iter().map(|(_, _, m)| m.clone()).collect(),
            }],
        });
        emulator_options.mode = options.mode;
        emulator_options.listen = options.listen;
        emulator_options.issuer = Some(token_base.clone());
        emulator_options.ready_timeout = options.ready_timeout;
        emulator_options.shared_watchdog = watchdog;
        let secret_of = |id: &str| clients.get(id).cloned().unwrap_or_else(|| Secret::new(""));
        emulator_options.project_identity = Some(ProjectIdentityClient {
            token_url: format!("{token_base}/{DEFAULT_TENANT}/oauth2/v2.0/token"),
            client_id: PROJECT_IDENTITY_CLIENT_ID.to_owned(),
            client_secret: secret_of(PROJECT_IDENTITY_CLIENT_ID),
            project_clients: identities
                .iter()
                .map(|(project, client_id, _)| {
                    (
                        project.clone(),
                        IdentityClient {
                            client_id: client_id.clone(),
                            client_secret: secret_of(client_id),
                        },
                    )
                })
                .collect(),
        });
        // Kubernetes's own watchdog reads its pid list from its directory: a temporary stack's
        // watchdog removes the stack's directory, so that list must live elsewhere.
        let kube_options = options.kubernetes.then(|| Options {
            state_dir: (!temporary).then(|| dir.join("kube")),
            mode: options.mode,
            ready_timeout: options.ready_timeout,
            binaries: None,
            node: false,
            audit_log: options.audit_log,
        });

        let (token_server, gateway, emulator, kube) = thread::scope(|scope| {
            let token = scope.spawn(|| TokenServer::start(token_options));
            let gateway = scope.spawn(|| Gateway::start(gateway_options));
            let emulator = scope.spawn(|| FoundryEmulator::start(emulator_options));
            let kube = scope.spawn(|| {
                kube_options
                    .map(|o| Testbed::start(o).map_err(StackError::from))
                    .transpose()
            });
            (join(token), join(gateway), join(emulator), join(kube))
        });
        let (token_server, gateway, emulator, kube) = match (token_server, gateway, emulator, kube)
        {
            (Ok(t), Ok(g), Ok(e), Ok(k)) => (t, g, e, k),
            (t, g, e, k) => {
                // Stop whatever did start (a detached part would not stop on drop).
                let mut first = None;
                if let Err(err) = t.map(|mut t| t.stop()) {
                    first.get_or_insert(err);
                }
                if let Err(err) = g.map(|mut g| g.end()) {
                    first.get_or_insert(err);
                }
                if let Err(err) = e.map(|mut e| e.stop()) {
                    first.get_or_insert(err);
                }
                if let Err(err) = k.map(|k| k.map(|mut k| k.stop())) {
                    first.get_or_insert(err);
                }
                return Err(first.unwrap_or(StackError::NotRunning { what: "the stack" }));
            }
        };
        Ok(Self {
            token_server,
            gateway,
            emulator,
            kube,
            state_dir: dir.to_path_buf(),
            temporary,
            mode: options.mode,
            ca,
            ca_pem,
            watchdog: None,
            stopped: false,
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// `<state dir>/stack.env`: `export` lines for a shell (0600; holds test secrets).
    pub fn env_file(&self) -> PathBuf {
        self.state_dir.join(STACK_ENV_FILE)
    }

    /// The CA every part's certificate chains to (PEM file).
    pub fn ca_file(&self) -> &Path {
        &self.ca.pair().cert
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The CA, to issue more certificates.
    pub fn ca(&self) -> &Ca {
        &self.ca
    }

    /// Detached or attached.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// A client that trusts the stack's CA.
    pub fn http(&self) -> StackResult<HttpClient> {
        HttpClient::new(&self.ca_pem)
    }

    /// The secret of a token-server client of the stack.
    pub fn client_secret(&self, client_id: &str) -> Option<&Secret> {
        self.token_server.clients().get(client_id)
    }

    /// A data-plane token (audience `https://ai.azure.com`) of the operator's client.
    pub fn data_plane_token(&self) -> StackResult<Secret> {
        self.token_server.mint(OPERATOR_CLIENT_ID, DATA_PLANE_SCOPE)
    }

    /// The `xms_mirid` of the project managed identity's tokens, which the gateway requires of
    /// tokens for `https://cognitiveservices.azure.com`: the emulator project's ARM id as Entra
    /// writes it (`…/resourcegroups/…`).
    pub fn project_mirid(&self) -> String {
        self.project_mirid_of(self.emulator.project())
    }

    /// The `xms_mirid` of `project`'s managed identity (any project of the stack).
    pub fn project_mirid_of(&self, project: &EmulatorProject) -> String {
        managed_identity_mirid(&project.arm_id())
    }

    /// The token-server client of `project`'s managed identity, if the stack serves it.
    pub fn project_identity_client(&self, project: &str) -> Option<String> {
        self.emulator
            .projects
            .iter()
            .enumerate()
            .find(|(_, p)| p.project.eq_ignore_ascii_case(project))
            .map(|(i, p)| project_identity_client_id(i, p))
    }

    /// An ARM token (audience `https://management.azure.com`) of the operator's client.
    pub fn arm_token(&self) -> StackResult<Secret> {
        self.token_server.mint(OPERATOR_CLIENT_ID, ARM_SCOPE)
    }

    /// Stops every part. A temporary state directory is deleted; a given one keeps its logs.
    pub fn stop(&mut self) -> StackResult<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut first = None;
        for result in [
            self.emulator.stop(),
            self.gateway.end(),
            self.token_server.stop(),
            self.kube
                .as_mut()
                .map_or(Ok(()), |k| k.stop().map_err(StackError::from)),
        ] {
            if let Err(err) = result {
                first.get_or_insert(err);
            }
        }
        disarm(self.watchdog.take());
        if let Some(err) = first {
            return Err(err);
        }
        if self.temporary {
            fs::remove_dir_all(&self.state_dir).map_err(|source| {
                StackError::Testbed(crate::Error::RemoveDir {
                    path: self.state_dir.clone(),
                    source,
                })
            })?;
        } else {
            let _ = fs::remove_file(self.state_dir.join(STACK_STATE_FILE));
        }
        Ok(())
    }

    /// What `<dir>/stack.json` says of the stack started there.
    pub fn read_state(dir: &Path) -> StackResult<StackState> {
        let path = dir.join(STACK_STATE_FILE);
        let text = fs::read_to_string(&path).map_err(|source| StackError::read(&path, source))?;
        serde_json::from_str(&text).map_err(|source| StackError::Parse {
            url: path.display().to_string(),
            source,
        })
    }

    /// Asks every part of the stack described by `<dir>/stack.json` whether it answers now: the
    /// token server's key set, the gateway's liveliness, the emulator's health and, when there is
    /// one, the apiserver's `/readyz`.
    pub fn check_detached(dir: &Path) -> StackResult<Vec<PartHealth>> {
        let state = Self::read_state(dir)?;
        let ca_pem = fs::read_to_string(&state.ca_file)
            .map_err(|source| StackError::read(&state.ca_file, source))?;
        let http = HttpClient::with_timeout(&ca_pem, Duration::from_secs(5))?;
        let mut parts: Vec<PartHealth> = [
            ("token-server", format!("{}/jwks", state.token_server_url)),
            (
                "litellm",
                format!("{}/health/liveliness", state.gateway_url),
            ),
            (
                "foundry-emulator",
                format!("{}/_emulator/health", state.emulator_url),
            ),
        ]
        .into_iter()
        .map(|(name, url)| {
            let answer = match http.get(&url, &[]) {
                Ok(reply) if reply.is_success() => Ok(()),
                Ok(reply) => Err(format!("HTTP {}", reply.status)),
                Err(err) => Err(err.to_string()),
            };
            PartHealth {
                name: name.to_owned(),
                url,
                answer,
            }
        })
        .collect();
        if let Some(kube_dir) = &state.kube_dir {
            let (url, answer) = match Testbed::open(kube_dir) {
                Ok(kube) => (
                    format!("{}/readyz", kube.server_url()),
                    if kube.is_healthy() {
                        Ok(())
                    } else {
                        Err("no answer".to_owned())
                    },
                ),
                Err(err) => (kube_dir.display().to_string(), Err(err.to_string())),
            };
            parts.push(PartHealth {
                name: "kubernetes".to_owned(),
                url,
                answer,
            });
        }
        Ok(parts)
    }

    /// Stops the detached stack described by `<dir>/stack.json` (and its Kubernetes).
    pub fn stop_detached(dir: &Path) -> StackResult<()> {
        let path = dir.join(STACK_STATE_FILE);
        let state = Self::read_state(dir)?;
        let mut first = None;
        for record in state.processes.iter().rev() {
            if let Err(err) = ManagedProcess::from_record(record).terminate(STOP_GRACE) {
                first.get_or_insert(StackError::from(err));
            }
        }
        if let Some(kube_dir) = &state.kube_dir
            && let Ok(mut kube) = Testbed::open(kube_dir)
            && let Err(err) = kube.stop()
        {
            first.get_or_insert(err.into());
        }
        let _ = fs::remove_file(&path);
        first.map_or(Ok(()), Err)
    }

    fn write_files(&self) -> StackResult<()> {
        let project = self.emulator.project();
        let secret = |id: &str| {
            self.client_secret(id)
                .map(|s| s.expose().to_owned())
                .unwrap_or_default()
        };
        let ts = &self.token_server;
        let mut vars: Vec<(&str, String)> = vec![
            ("FOUNDRY_STACK_DIR", self.state_dir.display().to_string()),
            (
                "FOUNDRY_STACK_CA_FILE",
                self.ca_file().display().to_string(),
            ),
            ("FOUNDRY_EMULATOR_URL", self.emulator.base_url.clone()),
            ("FOUNDRY_ARM_ENDPOINT", self.emulator.arm_endpoint.clone()),
            (
                "FOUNDRY_PROJECT_ENDPOINT",
                self.emulator.project_endpoint.clone(),
            ),
            ("FOUNDRY_SUBSCRIPTION_ID", project.subscription.clone()),
            ("FOUNDRY_RESOURCE_GROUP", project.resource_group.clone()),
            ("FOUNDRY_ACCOUNT", project.account.clone()),
            ("FOUNDRY_PROJECT", project.project.clone()),
            ("FOUNDRY_PROJECT_ARM_ID", project.arm_id()),
            ("FOUNDRY_PROJECT_MIRID", self.project_mirid()),
            ("FOUNDRY_TOKEN_SERVER_URL", ts.base_url.clone()),
            ("FOUNDRY_TOKEN_URL", ts.token_url()),
            ("FOUNDRY_AUTHORITY_HOST", ts.entra_authority_host()),
            ("FOUNDRY_TENANT_ID", DEFAULT_TENANT.to_owned()),
            ("FOUNDRY_JWKS_URL", ts.jwks_url()),
            ("FOUNDRY_CLIENT_ID", OPERATOR_CLIENT_ID.to_owned()),
            ("FOUNDRY_CLIENT_SECRET", secret(OPERATOR_CLIENT_ID)),
            ("FOUNDRY_GATEWAY_CLIENT_ID", GATEWAY_CLIENT_ID.to_owned()),
            ("FOUNDRY_GATEWAY_CLIENT_SECRET", secret(GATEWAY_CLIENT_ID)),
            ("FOUNDRY_GATEWAY_SCOPE", GATEWAY_SCOPE.to_owned()),
            ("LITELLM_URL", self.gateway.base_url.clone()),
            ("LITELLM_OPENAI_TARGET", self.gateway.openai_target()),
            ("LITELLM_AZURE_TARGET", self.gateway.azure_target()),
            (
                "LITELLM_MASTER_KEY",
                self.gateway.master_key.expose().to_owned(),
            ),
            ("LITELLM_MODELS", self.gateway.model_names().join(",")),
        ];
        if let Some(kube) = &self.kube {
            vars.push(("KUBECONFIG", kube.kubeconfig_path().display().to_string()));
        }
        let env_file = self.env_file();
        let mut text = format!(
            "# The Foundry gateway test bed (throwaway test secrets; do not share). Load it with: . {}\n",
            shell_quote(&env_file.display().to_string())
        );
        for (name, value) in vars {
            text.push_str(&format!("export {name}={}\n", shell_quote(&value)));
        }
        write_private(&env_file, &text)?;

        let processes = [
            self.token_server_record(),
            self.gateway.process().map(ManagedProcess::record),
            self.emulator_record(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let state = StackState {
            owner: match self.mode {
                Mode::Detached => None,
                Mode::Attached { owner } => Some(owner),
            },
            temporary: self.temporary,
            ca_file: self.ca_file().to_path_buf(),
            env_file,
            emulator_url: self.emulator.base_url.clone(),
            gateway_url: self.gateway.base_url.clone(),
            token_server_url: self.token_server.base_url.clone(),
            kube_dir: self.kube.as_ref().map(|k| k.state_dir().to_path_buf()),
            processes,
        };
        let path = self.state_dir.join(STACK_STATE_FILE);
        let text = serde_json::to_string_pretty(&state).map_err(|source| StackError::Parse {
            url: path.display().to_string(),
            source,
        })?;
        fs::write(&path, text + "\n").map_err(|source| StackError::write(&path, source))
    }

    fn token_server_record(&self) -> Option<ProcessRecord> {
        self.token_server.process().map(ManagedProcess::record)
    }

    fn emulator_record(&self) -> Option<ProcessRecord> {
        self.emulator.process().map(ManagedProcess::record)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if matches!(self.mode, Mode::Attached { .. }) {
            let _ = self.stop();
        }
    }
}

/// Stops the shared watchdog once no part holds it any more.
fn disarm(watchdog: Option<Arc<Watchdog>>) {
    if let Some(watchdog) = watchdog.and_then(|w| Arc::try_unwrap(w).ok()) {
        watchdog.disarm();
    }
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, StackResult<T>>) -> StackResult<T> {
    handle.join().unwrap_or_else(|_| {
        Err(StackError::NotRunning {
            what: "a start thread (it panicked)",
        })
    })
}

fn prepare_dir(dir: &Path) -> StackResult<PathBuf> {
    fs::create_dir_all(dir).map_err(|source| StackError::create_dir(dir, source))?;
    let mut entries = fs::read_dir(dir).map_err(|source| StackError::read(dir, source))?;
    if entries.next().is_some() {
        return Err(crate::Error::StateDirNotEmpty {
            path: dir.to_path_buf(),
        }
        .into());
    }
    private_dir(dir)?;
    fs::canonicalize(dir).map_err(|source| StackError::read(dir, source))
}

fn temp_dir() -> StackResult<PathBuf> {
    let base = std::env::temp_dir();
    loop {
        let dir = base.join(format!("foundry-stack-{}", random_hex(6)));
        match fs::create_dir(&dir) {
            Ok(()) => {
                private_dir(&dir)?;
                return fs::canonicalize(&dir).map_err(|source| StackError::read(&dir, source));
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(StackError::create_dir(&dir, source)),
        }
    }
}

fn private_dir(dir: &Path) -> StackResult<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|source| StackError::create_dir(dir, source))
}

/// Single-quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_project_has_its_own_identity_client_and_the_first_keeps_the_old_name() {
        let first = EmulatorProject::default_project();
        let second = EmulatorProject {
            project: "Second-Project".to_owned(),
            ..first.clone()
        };
        assert_eq!(
            project_identity_client_id(0, &first),
            PROJECT_IDENTITY_CLIENT_ID
        );
        assert_eq!(
            project_identity_client_id(1, &second),
            "foundry-project-identity-second-project"
        );
        assert_eq!(StackOptions::default().projects, vec![first]);
    }
}
