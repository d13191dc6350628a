//! The Foundry emulator as a process: the `foundry-emulator` binary of this workspace, over HTTPS
//! with a certificate of the test bed's CA, checking real JWTs against the token server's key set,
//! and getting the project managed identity's tokens from the token server: each project with a
//! client of its own ([`ProjectIdentityClient::project_clients`]), so that a gateway sees which
//! project calls (the `xms_mirid` of its token).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cargo_bin::cargo_binary;
use crate::http::{HttpClient, expect_json};
use crate::install;
use crate::part::{PartProcess, SharedWatchdog};
use crate::pki::Ca;
use crate::probe::Probe;
use crate::process::{Mode, ProcessSpec};
use crate::stack_error::{StackError, StackResult};
use crate::{LogTail, Secret};

/// Names the emulator binary to run instead of the one cargo builds.
pub const ENV_EMULATOR_BIN: &str = "FOUNDRY_EMULATOR_BIN";

/// The line the emulator prints on stdout once it listens.
const LISTEN_LINE: &str = "foundry-emulator listening on ";

/// One project the emulator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorProject {
    /// Subscription id.
    pub subscription: String,
    /// Resource group.
    pub resource_group: String,
    /// Foundry account.
    pub account: String,
    /// Project name.
    pub project: String,
}

impl EmulatorProject {
    /// The project the emulator serves when none is given.
    pub fn default_project() -> Self {
        Self {
            subscription: "00000000-0000-0000-0000-000000000000".to_owned(),
            resource_group: "rg-local".to_owned(),
            account: "local-account".to_owned(),
            project: "local-project".to_owned(),
        }
    }

    /// `SUB/RG/ACCOUNT/PROJECT`, the emulator's `--project` value.
    pub fn flag_value(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.subscription, self.resource_group, self.account, self.project
        )
    }

    /// The ARM id of the project.
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}/projects/{}",
            self.subscription, self.resource_group, self.account, self.project
        )
    }
}

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// The address it listens on (default 127.0.0.1; the node's bridge address makes it
    /// reachable from pods).
    pub listen: Ipv4Addr,
    /// Its own directory (certificate, secret file, log); created if missing.
    pub dir: PathBuf,
    /// Issues its serving certificate; also trusted for its calls to gateways and token servers.
    pub ca: Ca,
    /// Detached or attached.
    pub mode: Mode,
    /// The binary; `None` finds (or builds) the workspace's `foundry-emulator`.
    pub binary: Option<PathBuf>,
    /// The key set incoming bearer JWTs are checked against.
    pub jwks_url: String,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The token endpoint and client of the project managed identity (Entra-authenticated
    /// gateway calls), if any.
    pub project_identity: Option<ProjectIdentityClient>,
    /// The projects it serves (default: [`EmulatorProject::default_project`]).
    pub projects: Vec<EmulatorProject>,
    /// More flags, e.g. `--latency-ms 5`.
    pub extra_args: Vec<OsString>,
    /// How long the start may take.
    pub ready_timeout: Duration,
    /// Set by the stack: one watchdog for all its parts.
    pub(crate) shared_watchdog: Option<SharedWatchdog>,
}

/// The client-credentials client the emulator uses as the project's managed identity.
#[derive(Debug, Clone)]
pub struct ProjectIdentityClient {
    /// The token endpoint.
    pub token_url: String,
    /// The client id of projects without one of their own.
    pub client_id: String,
    /// The client secret of `client_id`.
    pub client_secret: Secret,
    /// Each project's own client, by project name (the emulator's
    /// `--project-identity-clients-file`, written 0600 into the emulator's directory): the
    /// emulator calls a gateway for a project with a token of that project's client, also
    /// through an account connection.
    pub project_clients: BTreeMap<String, IdentityClient>,
}

/// A client id and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityClient {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
}

/// File name of the per-project identity clients in the emulator's directory.
const PROJECT_CLIENTS_FILE: &str = "project-identity-clients.json";

/// `{"<project>": {"clientId", "clientSecret"}}`, the emulator's
/// `--project-identity-clients-file`.
fn project_clients_json(clients: &BTreeMap<String, IdentityClient>) -> String {
    let map: serde_json::Map<String, Value> = clients
        .iter()
        .map(|(project, c)| {
            (
                project.clone(),
                serde_json::json!({
                    "clientId": c.client_id,
                    "clientSecret": c.client_secret.expose(),
                }),
            )
        })
        .collect();
    Value::Object(map).to_string()
}

impl EmulatorOptions {
    /// An emulator checking JWTs against `jwks_url`, attached to this process.
    pub fn new(dir: impl Into<PathBuf>, ca: Ca, jwks_url: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            ca,
            mode: Mode::attached_to_this_process(),
            binary: None,
            jwks_url: jwks_url.into(),
            issuer: None,
            project_identity: None,
            projects: vec![EmulatorProject::default_project()],
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
            shared_watchdog: None,
            listen: Ipv4Addr::LOCALHOST,
        }
    }
}

/// The emulator process. Start it with [`FoundryEmulator::start`].
#[derive(Debug)]
pub struct FoundryEmulator;

impl FoundryEmulator {
    /// Finds or builds the binary, starts it and waits until it answers.
    pub fn start(options: EmulatorOptions) -> StackResult<RunningEmulator> {
        let binary = match &options.binary {
            Some(binary) => binary.clone(),
            None => emulator_binary()?,
        };
        RunningEmulator::start(&binary, options)
    }
}

/// The `foundry-emulator` binary: `$FOUNDRY_EMULATOR_BIN`, else the one cargo built next to the
/// running executable, rebuilt when missing or older than its sources (see
/// [`cargo_binary`](crate::cargo_bin::cargo_binary)).
pub fn emulator_binary() -> StackResult<PathBuf> {
    cargo_binary(
        "foundry-gateway-emulator",
        "foundry-emulator",
        ENV_EMULATOR_BIN,
    )
}

/// A running emulator.
#[derive(Debug)]
pub struct RunningEmulator {
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// The ARM endpoint (the same server): pass it as the management endpoint.
    pub arm_endpoint: String,
    /// The data-plane endpoint of the first project: `{base}/api/projects/{project}`.
    pub project_endpoint: String,
    /// The projects it serves.
    pub projects: Vec<EmulatorProject>,
    http: HttpClient,
    part: PartProcess,
}

impl RunningEmulator {
    fn start(binary: &Path, options: EmulatorOptions) -> StackResult<Self> {
        let dir = options.dir;
        fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
        let dir = fs::canonicalize(&dir).map_err(|source| StackError::read(&dir, source))?;
        let serving = options.ca.issue_server_cert(
            &dir,
            "emulator",
            "foundry-emulator",
            &crate::stack::serving_sans(options.listen),
        )?;
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            format!("{}:0", options.listen).into(),
            "--tls-cert".into(),
            serving.cert.into_os_string(),
            "--tls-key".into(),
            serving.key.into_os_string(),
            "--ca-file".into(),
            options.ca.pair().cert.clone().into_os_string(),
            "--jwks-url".into(),
            options.jwks_url.clone().into(),
        ];
        if let Some(issuer) = &options.issuer {
            args.extend(["--issuer".into(), issuer.into()]);
        }
        if let Some(identity) = &options.project_identity {
            let secret_file = dir.join("project-identity.secret");
            install::write_private(&secret_file, identity.client_secret.expose())?;
            args.extend([
                "--entra-token-url".into(),
                identity.token_url.clone().into(),
                "--entra-client-id".into(),
                identity.client_id.clone().into(),
                "--entra-client-secret-file".into(),
                secret_file.into_os_string(),
            ]);
            if !identity.project_clients.is_empty() {
                let file = dir.join(PROJECT_CLIENTS_FILE);
                install::write_private(&file, &project_clients_json(&identity.project_clients))?;
                args.extend([
                    "--project-identity-clients-file".into(),
                    file.into_os_string(),
                ]);
            }
        }
        let projects = if options.projects.is_empty() {
            vec![EmulatorProject::default_project()]
        } else {
            options.projects
        };
        for project in &projects {
            args.extend(["--project".into(), project.flag_value().into()]);
        }
        args.extend(options.extra_args);
        let spec = ProcessSpec {
            name: "foundry-emulator".to_owned(),
            program: binary.to_path_buf(),
            args,
            log: dir.join("emulator.log"),
            cwd: dir.clone(),
            env: Vec::new(),
        };
        let started = Instant::now();
        let ca_pem = options.ca.cert_pem()?;
        let mut part =
            PartProcess::start(spec, options.mode, &dir, options.shared_watchdog.clone())?;
        let base_url = wait_for_listen_line(&mut part, options.ready_timeout)?;
        let probe = Probe::new(format!("{base_url}/_emulator/health"), Some(&ca_pem), None)?;
        part.wait_ready(&probe, options.ready_timeout)?;
        eprintln!(
            "Started foundry-emulator at {base_url} in {:.1?}",
            started.elapsed()
        );
        let project_endpoint = projects
            .first()
            .map(|p| format!("{base_url}/api/projects/{}", p.project))
            .unwrap_or_default();
        Ok(Self {
            arm_endpoint: base_url.clone(),
            project_endpoint,
            base_url,
            projects,
            http: HttpClient::new(&ca_pem)?,
            part,
        })
    }

    /// The data-plane endpoint of `project`.
    pub fn endpoint_of(&self, project: &EmulatorProject) -> String {
        format!("{}/api/projects/{}", self.base_url, project.project)
    }

    /// The first project.
    pub fn project(&self) -> &EmulatorProject {
        // `start` always serves at least one project.
        &self.projects[0]
    }

    /// `GET /_emulator/requests[?query]`: the recorded Foundry requests.
    pub fn requests(&self, query: &str) -> StackResult<Value> {
        self.control_get("requests", query)
    }

    /// `GET /_emulator/gateway-calls[?query]`: the recorded calls to gateways and token servers.
    pub fn gateway_calls(&self, query: &str) -> StackResult<Value> {
        self.control_get("gateway-calls", query)
    }

    /// `DELETE /_emulator/requests`.
    pub fn clear_requests(&self) -> StackResult<()> {
        self.control_delete("requests")
    }

    /// `DELETE /_emulator/gateway-calls`.
    pub fn clear_gateway_calls(&self) -> StackResult<()> {
        self.control_delete("gateway-calls")
    }

    /// `POST /_emulator/faults` with one rule or `{"rules": [...]}`; returns the installed rules.
    pub fn add_faults(&self, rules: &Value) -> StackResult<Value> {
        let url = format!("{}/_emulator/faults", self.base_url);
        let reply = self.http.post_json(&url, &[], rules)?;
        expect_json("POST", &url, reply)
    }

    /// `DELETE /_emulator/faults`.
    pub fn clear_faults(&self) -> StackResult<()> {
        self.control_delete("faults")
    }

    fn control_get(&self, what: &str, query: &str) -> StackResult<Value> {
        let mut url = format!("{}/_emulator/{what}", self.base_url);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let reply = self.http.get(&url, &[])?;
        expect_json("GET", &url, reply)
    }

    fn control_delete(&self, what: &str) -> StackResult<()> {
        let url = format!("{}/_emulator/{what}", self.base_url);
        let reply = self.http.delete(&url, &[])?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(StackError::Status {
                method: "DELETE",
                url,
                status: reply.status,
                body: reply.text,
            })
        }
    }

    /// The process, while it runs.
    pub fn process(&self) -> Option<&crate::process::ManagedProcess> {
        self.part.process()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        self.part.log()
    }

    /// Whether the process runs now.
    pub fn is_running(&mut self) -> bool {
        self.part.is_running()
    }

    /// Stops the emulator.
    pub fn stop(&mut self) -> StackResult<()> {
        self.part.shutdown()
    }
}

/// Reads the base URL from the emulator's listen line in its log.
fn wait_for_listen_line(part: &mut PartProcess, timeout: Duration) -> StackResult<String> {
    let deadline = Instant::now() + timeout;
    let log = part.log().to_path_buf();
    loop {
        if let Some(url) = fs::read_to_string(&log).ok().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix(LISTEN_LINE).map(|u| u.trim().to_owned()))
        }) {
            return Ok(url);
        }
        let exited = part
            .process_mut()
            .and_then(crate::process::ManagedProcess::exit_status);
        if exited.is_some() || Instant::now() >= deadline {
            return Err(StackError::NoListenLine {
                name: "foundry-emulator".to_owned(),
                timeout,
                log: Box::new(LogTail {
                    tail: install::tail(&log, 30),
                    path: log,
                }),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_clients_are_written_as_the_emulator_reads_them() {
        let clients = BTreeMap::from([(
            "p1".to_owned(),
            IdentityClient {
                client_id: "mi-p1".to_owned(),
                client_secret: Secret::new("s1"),
            },
        )]);
        let v: Value = serde_json::from_str(&project_clients_json(&clients)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"p1": {"clientId": "mi-p1", "clientSecret": "s1"}})
        );
        assert!(!format!("{clients:?}").contains("\"s1\""));
    }

    #[test]
    fn the_default_project_matches_the_emulator_default() {
        let project = EmulatorProject::default_project();
        assert_eq!(
            project.flag_value(),
            "00000000-0000-0000-0000-000000000000/rg-local/local-account/local-project"
        );
        assert!(
            project
                .arm_id()
                .ends_with("/accounts/local-account/projects/local-project")
        );
    }
}
