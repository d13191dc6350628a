//! The OAuth2 token server of the test bed: npm `oauth2-mock-server` (pinned in
//! `tests/tools/token-server/package.json` and its lock file), installed with `npm ci` into the
//! cache, started by our `tests/tools/token-server/server.mjs` over HTTPS.
//!
//! It serves `POST /token`, `GET /jwks`, `GET /.well-known/openid-configuration` and the
//! Microsoft Entra form `POST /{tenant}/oauth2/v2.0/token`; a token's `aud` is its scope without
//! `/.default`, its `sub` and `appid` the client id. Only the clients it was started with get
//! tokens: a wrong secret gets 401 `invalid_client`.
//!
//! Per-client claims ([`TokenServerOptions::claims`], [`TokenServerOptions::with_claim`]) go into
//! every token of that client, on both token endpoints: a client standing for a Foundry
//! project's managed identity carries `xms_mirid` (see [`managed_identity_mirid`]), as Entra
//! puts it into managed-identity tokens and as the APIM setup guide's policy checks it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::http::{HttpClient, expect_json};
use crate::install::{self, ensure_installed, fingerprint, run_logged};
use crate::part::{PartProcess, SharedWatchdog};
use crate::pki::Ca;
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Mode, ProcessSpec};
use crate::stack_error::{StackError, StackResult};
use crate::{Secret, paths};

/// The oauth2-mock-server version; `tests/tools/token-server/package.json` must say the same.
pub const OAUTH2_MOCK_SERVER_VERSION: &str = "9.3.0";

/// The tenant used in Entra-form URLs when a caller has none of its own.
pub const DEFAULT_TENANT: &str = "00000000-0000-0000-0000-00000000feed";

/// The `xms_mirid` Entra writes into a managed identity's tokens for the resource with ARM id
/// `arm_id`: the id with its `resourceGroups` segment in lower case
/// (`/subscriptions/{s}/resourcegroups/{rg}/providers/…`), the form the APIM setup guide's
/// policy value uses. The resource group name keeps its case.
pub fn managed_identity_mirid(arm_id: &str) -> String {
    let mut segments: Vec<String> = arm_id.split('/').map(str::to_owned).collect();
    if let Some(segment) = segments
        .iter_mut()
        .find(|s| s.eq_ignore_ascii_case("resourcegroups"))
    {
        "resourcegroups".clone_into(segment);
    }
    segments.join("/")
}

/// `tests/tools/token-server`.
pub fn token_server_tool_dir() -> PathBuf {
    paths::repo_root()
        .join("tests")
        .join("tools")
        .join("token-server")
}

/// How to start a token server.
#[derive(Debug, Clone)]
pub struct TokenServerOptions {
    /// The address it listens on (default 127.0.0.1; the node's bridge address makes it
    /// reachable from pods).
    pub listen: Ipv4Addr,
    /// Its own directory (config, certificate, log); created if missing.
    pub dir: PathBuf,
    /// Issues its serving certificate.
    pub ca: Ca,
    /// Detached or attached.
    pub mode: Mode,
    /// The only clients that get tokens: client id → secret.
    pub clients: BTreeMap<String, Secret>,
    /// Extra claims of every token issued to a client: client id → claim → value, added after
    /// (and so over) the standard ones. E.g. `xms_mirid` for a project's managed identity.
    pub claims: BTreeMap<String, BTreeMap<String, String>>,
    /// The port; `None` picks a free one.
    pub port: Option<u16>,
    /// Lifetime of the tokens it issues.
    pub token_lifetime: Duration,
    /// How long the start may take.
    pub ready_timeout: Duration,
    /// Set by the stack: one watchdog for all its parts.
    pub(crate) shared_watchdog: Option<SharedWatchdog>,
}

impl TokenServerOptions {
    /// A token server for `clients`, attached to this process.
    pub fn new(dir: impl Into<PathBuf>, ca: Ca, clients: BTreeMap<String, Secret>) -> Self {
        Self {
            dir: dir.into(),
            ca,
            mode: Mode::attached_to_this_process(),
            clients,
            claims: BTreeMap::new(),
            port: None,
            token_lifetime: Duration::from_secs(3600),
            ready_timeout: Duration::from_secs(30),
            shared_watchdog: None,
            listen: Ipv4Addr::LOCALHOST,
        }
    }

    /// Every token of `client_id` also carries `claim` = `value`.
    pub fn with_claim(mut self, client_id: &str, claim: &str, value: &str) -> Self {
        self.claims
            .entry(client_id.to_owned())
            .or_default()
            .insert(claim.to_owned(), value.to_owned());
        self
    }
}

/// The token server. Start it with [`TokenServer::start`].
#[derive(Debug)]
pub struct TokenServer;

impl TokenServer {
    /// Installs oauth2-mock-server if needed, starts the server and waits until it answers.
    pub fn start(options: TokenServerOptions) -> StackResult<RunningTokenServer> {
        let modules = ensure_token_server()?;
        RunningTokenServer::start(&modules, options)
    }
}

/// Returns the cached `node_modules` folder of the token server
/// (`<cache>/token-server-oauth2-mock-server-<version>/node_modules`), installing it with
/// `npm ci` first when missing or when the package files changed.
pub fn ensure_token_server() -> StackResult<PathBuf> {
    let tools = token_server_tool_dir();
    let package = tools.join("package.json");
    let lock = tools.join("package-lock.json");
    let npmrc = tools.join(".npmrc");
    let text = fs::read_to_string(&package).map_err(|source| StackError::read(&package, source))?;
    let pinned = format!("\"oauth2-mock-server\": \"{OAUTH2_MOCK_SERVER_VERSION}\"");
    if !text.contains(&pinned) {
        return Err(StackError::Pin {
            what: "oauth2-mock-server at the version of OAUTH2_MOCK_SERVER_VERSION",
            path: package,
        });
    }
    let print = fingerprint(&[&package, &lock, &npmrc], &[])?;
    let name = format!("token-server-oauth2-mock-server-{OAUTH2_MOCK_SERVER_VERSION}");
    let dir = ensure_installed(
        &name,
        &format!("oauth2-mock-server {OAUTH2_MOCK_SERVER_VERSION}"),
        &print,
        |dir| {
            for file in [&package, &lock, &npmrc] {
                let target = dir.join(file.file_name().unwrap_or_default());
                fs::copy(file, &target).map_err(|source| StackError::write(&target, source))?;
            }
            run_logged(
                "oauth2-mock-server",
                Command::new("npm")
                    .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                    .current_dir(dir),
                &dir.join("install.log"),
            )
        },
    )?;
    Ok(dir.join("node_modules"))
}

/// A running token server.
#[derive(Debug)]
pub struct RunningTokenServer {
    /// `https://127.0.0.1:PORT`; also the issuer (`iss`) of its tokens.
    pub base_url: String,
    clients: BTreeMap<String, Secret>,
    claims: BTreeMap<String, BTreeMap<String, String>>,
    http: HttpClient,
    part: PartProcess,
}

impl RunningTokenServer {
    fn start(node_modules: &Path, options: TokenServerOptions) -> StackResult<Self> {
        let dir = options.dir;
        fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
        let dir = fs::canonicalize(&dir).map_err(|source| StackError::read(&dir, source))?;
        let serving = options.ca.issue_server_cert(
            &dir,
            "token-server",
            "token-server",
            &crate::stack::serving_sans(options.listen),
        )?;
        let clients: BTreeMap<&str, &str> = options
            .clients
            .iter()
            .map(|(id, secret)| (id.as_str(), secret.expose()))
            .collect();
        let config = dir.join("clients.json");
        install::write_private(
            &config,
            &json!({
                "clients": clients,
                "claims": options.claims,
                "tokenLifetimeSeconds": options.token_lifetime.as_secs().max(60),
            })
            .to_string(),
        )?;
        let port = match options.port {
            Some(port) => port,
            None => free_loopback_ports(1)?
                .first()
                .copied()
                .ok_or(StackError::NotRunning {
                    what: "a free port",
                })?,
        };
        let args: Vec<OsString> = vec![
            token_server_tool_dir().join("server.mjs").into_os_string(),
            "--config".into(),
            config.into_os_string(),
            "--port".into(),
            port.to_string().into(),
            "--host".into(),
            options.listen.to_string().into(),
            "--cert".into(),
            serving.cert.into_os_string(),
            "--key".into(),
            serving.key.into_os_string(),
            "--node-modules".into(),
            node_modules.as_os_str().to_owned(),
        ];
        let spec = ProcessSpec {
            name: "token-server".to_owned(),
            program: install::node(),
            args,
            log: dir.join("token-server.log"),
            cwd: dir.clone(),
            env: Vec::new(),
        };
        let started = Instant::now();
        let ca_pem = options.ca.cert_pem()?;
        let mut part =
            PartProcess::start(spec, options.mode, &dir, options.shared_watchdog.clone())?;
        let base_url = format!("https://{}:{port}", options.listen);
        let probe = Probe::new(
            format!("{base_url}/.well-known/openid-configuration"),
            Some(&ca_pem),
            None,
        )?;
        part.wait_ready(&probe, options.ready_timeout)?;
        eprintln!(
            "Started the token server (oauth2-mock-server {OAUTH2_MOCK_SERVER_VERSION}) at {base_url} in {:.1?}",
            started.elapsed()
        );
        Ok(Self {
            base_url,
            clients: options.clients,
            claims: options.claims,
            http: HttpClient::new(&ca_pem)?,
            part,
        })
    }

    /// The plain OAuth2 token endpoint: `{base}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url)
    }

    /// The authority host for Entra clients (`azure_identity` with a custom authority host
    /// calls `{authority host}/{tenant}/oauth2/v2.0/token`).
    pub fn entra_authority_host(&self) -> String {
        self.base_url.clone()
    }

    /// The Entra-form token endpoint of `tenant`.
    pub fn entra_token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url)
    }

    /// The key set: `{base}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base_url)
    }

    /// The `iss` of its tokens.
    pub fn issuer(&self) -> &str {
        &self.base_url
    }

    /// The clients it accepts.
    pub fn clients(&self) -> &BTreeMap<String, Secret> {
        &self.clients
    }

    /// The extra claims of `client_id`'s tokens (empty when it has none).
    pub fn claims_of(&self, client_id: &str) -> BTreeMap<String, String> {
        self.claims.get(client_id).cloned().unwrap_or_default()
    }

    /// A token for `client_id` (with its registered secret) and `scope`, e.g.
    /// `https://ai.azure.com/.default`.
    pub fn mint(&self, client_id: &str, scope: &str) -> StackResult<Secret> {
        let secret = self
            .clients
            .get(client_id)
            .ok_or(StackError::NotRunning {
                what: "a client of that id on the token server",
            })?
            .clone();
        self.request_token(client_id, &secret, scope)
    }

    /// A token request with any credentials (the server refuses unknown ones).
    pub fn request_token(
        &self,
        client_id: &str,
        client_secret: &Secret,
        scope: &str,
    ) -> StackResult<Secret> {
        let url = self.token_url();
        let reply = self.http.post_form(
            &url,
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret.expose()),
                ("scope", scope),
            ],
        )?;
        let body = expect_json("POST", &url, reply)?;
        body["access_token"]
            .as_str()
            .map(Secret::new)
            .ok_or(StackError::Status {
                method: "POST",
                url,
                status: 200,
                body: "no access_token in the answer".to_owned(),
            })
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

    /// Stops the server.
    pub fn stop(&mut self) -> StackResult<()> {
        self.part.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_pins_the_version_of_the_constant_exactly() {
        let dir = token_server_tool_dir();
        let package: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("package.json")).unwrap()).unwrap();
        assert_eq!(
            package["dependencies"]["oauth2-mock-server"],
            OAUTH2_MOCK_SERVER_VERSION
        );
        let lock: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.join("package-lock.json")).unwrap())
                .unwrap();
        assert_eq!(
            lock["packages"]["node_modules/oauth2-mock-server"]["version"],
            OAUTH2_MOCK_SERVER_VERSION
        );
    }

    #[test]
    fn the_mirid_of_a_project_is_its_arm_id_as_entra_writes_it() {
        assert_eq!(
            managed_identity_mirid(
                "/subscriptions/0000/resourceGroups/RG-Local/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj"
            ),
            "/subscriptions/0000/resourcegroups/RG-Local/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj"
        );
        let already = "/subscriptions/0000/resourcegroups/rg/providers/X/y/z";
        assert_eq!(managed_identity_mirid(already), already);
    }

    #[test]
    fn claims_accumulate_per_client() {
        let ca_dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(ca_dir.path(), "ca", "claims-test-ca").unwrap();
        let options = TokenServerOptions::new(ca_dir.path(), ca, BTreeMap::new())
            .with_claim("project", "xms_mirid", "/subscriptions/s/resourcegroups/rg")
            .with_claim("project", "xms_az_rid", "r")
            .with_claim("other", "xms_mirid", "/x");
        assert_eq!(options.claims["project"].len(), 2);
        assert_eq!(options.claims["other"]["xms_mirid"], "/x");
    }

    #[test]
    fn the_lock_file_names_no_registry() {
        let text = fs::read_to_string(token_server_tool_dir().join("package-lock.json")).unwrap();
        assert!(
            !text.contains("\"resolved\""),
            "the lock must not carry resolved URLs"
        );
    }
}
