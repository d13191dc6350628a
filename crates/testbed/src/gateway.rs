//! The AI gateway of the test bed: LiteLLM's proxy in mock-response mode, over HTTPS on a free
//! loopback port, installed from `tests/tools/litellm/requirements.txt` into a cached virtual
//! environment and started through `tests/tools/litellm/launcher.py`.
//!
//! It serves both connection categories for real:
//! - `ModelGateway` (OpenAI style), target [`RunningGateway::openai_target`]:
//!   `POST /v1/chat/completions` with `"model"` in the body, discovery `GET /v1/models`;
//! - `ApiManagement` (Azure style), target [`RunningGateway::azure_target`]:
//!   `POST /openai/deployments/{deployment}/chat/completions?api-version=…` and the APIM default
//!   discovery `GET /openai/deployments[/{name}]` in the AzureOpenAI shape (added by the launcher).
//!
//! Every route accepts the master key as `api-key: <key>` or `Authorization: Bearer <key>`, and
//! `Authorization: Bearer <JWT>` from the token server for one of the configured audiences
//! (`tests/tools/litellm/foundry_gateway_auth.py`), carrying the claims [`JwtAuth::required_claims`]
//! asks of its audience (the APIM guide's `xms_mirid` check); anything else gets 401.
//!
//! A model made with [`GatewayModel::refusing_max_tokens`] (the default [`REASONING_MODEL`])
//! behaves like a gpt-5 or o-series deployment: a chat completion carrying `max_tokens` gets
//! HTTP 400 [`MAX_TOKENS_REFUSAL`] (the launcher's check, after auth); without it, the mock reply.

use std::ffi::OsString;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::install::{self, ensure_installed, fingerprint, install_venv, requirement_pin};
use crate::part::{PartProcess, SharedWatchdog};
use crate::pki::Ca;
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{ManagedProcess, Mode, ProcessSpec};
use crate::stack_error::{StackError, StackResult};
use crate::{Secret, paths, random_hex};

/// The LiteLLM version the test bed pins; `tests/tools/litellm/requirements.txt` must say the same.
pub const LITELLM_VERSION: &str = "1.102.4";

/// Audience of the JWTs a ModelGateway connection's OAuth2 client asks for (`api://gateway/.default`).
pub const GATEWAY_AUDIENCE: &str = "api://gateway";

/// Audience of the project managed identity's tokens for Entra-authenticated APIM connections.
pub const COGNITIVE_SERVICES_AUDIENCE: &str = "https://cognitiveservices.azure.com";

/// The reasoning-style model of [`GatewayModel::defaults`]: it refuses `max_tokens`.
pub const REASONING_MODEL: &str = "gpt-5-mini";

/// The body a reasoning-style model answers (HTTP 400) to a chat completion with `max_tokens`,
/// as gpt-5 and o-series deployments do.
pub const MAX_TOKENS_REFUSAL: &str = r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}}"#;

/// The claim the APIM setup guide's policy requires of Foundry's Entra tokens: the ARM id of
/// the managed identity (the project) the token was issued to.
pub const MIRID_CLAIM: &str = "xms_mirid";

/// `tests/tools/litellm`.
pub fn litellm_tool_dir() -> PathBuf {
    paths::repo_root()
        .join("tests")
        .join("tools")
        .join("litellm")
}

/// One model the gateway serves, with its canned reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayModel {
    /// The deployment (and OpenAI model id) callers use: `gpt-4o`.
    pub name: String,
    /// The model behind it, as discovery reports it: `gpt-4o`.
    pub model: String,
    /// The model version discovery reports (may be empty).
    pub version: String,
    /// What every chat completion of this model answers.
    pub reply: String,
    /// Latency before the reply, for timeout tests.
    pub delay: Option<Duration>,
    /// Refuse chat completions that carry `max_tokens` (HTTP 400 [`MAX_TOKENS_REFUSAL`]), as
    /// gpt-5 and o-series deployments do.
    pub refuses_max_tokens: bool,
}

impl GatewayModel {
    /// A model named `name` that answers "Hello from the gateway (`name`)".
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            model: name.to_owned(),
            version: String::new(),
            reply: format!("Hello from the gateway ({name})"),
            delay: None,
            refuses_max_tokens: false,
        }
    }

    /// The same model refusing `max_tokens` like a reasoning deployment.
    pub fn refusing_max_tokens(mut self) -> Self {
        self.refuses_max_tokens = true;
        self
    }

    /// The same model with a version for discovery.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// The same model answering `reply`.
    pub fn with_reply(mut self, reply: &str) -> Self {
        self.reply = reply.to_owned();
        self
    }

    /// The same model answering only after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The models of the default gateway: `gpt-4o`, `gpt-4o-mini` and the reasoning-style
    /// [`REASONING_MODEL`] (`gpt-5-mini`, refusing `max_tokens`).
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new("gpt-4o").with_version("2024-11-20"),
            Self::new("gpt-4o-mini").with_version("2024-07-18"),
            Self::new(REASONING_MODEL)
                .with_version("2025-08-07")
                .refusing_max_tokens(),
        ]
    }
}

/// Which bearer JWTs the gateway accepts besides its master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuth {
    /// The token server's key set.
    pub jwks_url: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Claims a token of an audience must carry (none: any valid token of an accepted audience).
    /// Change them on a running gateway with [`RunningGateway::set_required_claims`].
    pub required_claims: Vec<RequiredClaim>,
}

/// A claim every JWT for `audience` must carry with one of `values`, compared exactly: the
/// APIM setup guide's `<required-claims><claim name="xms_mirid" match="any">` of its
/// `validate-azure-ad-token` policy. A token without it, or with another value, gets 401
/// "Unauthorized. Valid Entra token is required.".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RequiredClaim {
    /// The `aud` the requirement applies to.
    pub audience: String,
    /// The claim, e.g. [`MIRID_CLAIM`].
    pub claim: String,
    /// Accepted values (any one).
    pub values: Vec<String>,
}

impl RequiredClaim {
    /// Tokens for `audience` must carry `xms_mirid` = `mirid` (see
    /// [`crate::token_server::managed_identity_mirid`] for the form Entra writes).
    pub fn mirid(audience: &str, mirid: &str) -> Self {
        Self {
            audience: audience.to_owned(),
            claim: MIRID_CLAIM.to_owned(),
            values: vec![mirid.to_owned()],
        }
    }
}

/// File name of the required claims in the gateway's directory.
const REQUIRED_CLAIMS_FILE: &str = "jwt-required-claims.json";

/// How to start a gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// The address it listens on (default 127.0.0.1; the node's bridge address makes it
    /// reachable from pods).
    pub listen: Ipv4Addr,
    /// Its own directory (config, certificate, key file, log); created if missing.
    pub dir: PathBuf,
    /// Issues its serving certificate; callers trust this CA.
    pub ca: Ca,
    /// Detached or attached.
    pub mode: Mode,
    /// The models it serves.
    pub models: Vec<GatewayModel>,
    /// JWT auth, if any.
    pub jwt: Option<JwtAuth>,
    /// The port; `None` picks a free one.
    pub port: Option<u16>,
    /// How long the start may take.
    pub ready_timeout: Duration,
    /// Set by the stack: one watchdog for all its parts.
    pub(crate) shared_watchdog: Option<SharedWatchdog>,
}

impl GatewayOptions {
    /// The default gateway (two models, no JWT auth) attached to this process.
    pub fn new(dir: impl Into<PathBuf>, ca: Ca) -> Self {
        Self {
            dir: dir.into(),
            ca,
            mode: Mode::attached_to_this_process(),
            models: GatewayModel::defaults(),
            jwt: None,
            port: None,
            ready_timeout: Duration::from_secs(90),
            shared_watchdog: None,
            listen: Ipv4Addr::LOCALHOST,
        }
    }

    /// Adds a model named `name` whose replies take `delay`.
    pub fn with_slow_model(mut self, name: &str, delay: Duration) -> Self {
        self.models.push(GatewayModel::new(name).with_delay(delay));
        self
    }
}

/// The LiteLLM gateway. Start it with [`Gateway::start`].
#[derive(Debug)]
pub struct Gateway;

impl Gateway {
    /// Installs LiteLLM if needed, starts it and waits until `/health/liveliness` answers.
    pub fn start(options: GatewayOptions) -> StackResult<RunningGateway> {
        let venv = ensure_litellm()?;
        RunningGateway::start(&venv, options)
    }
}

/// Returns the cached LiteLLM installation (`<cache>/litellm-<version>-py<minor>`), installing it
/// first when missing or when its pins changed.
pub fn ensure_litellm() -> StackResult<PathBuf> {
    let tools = litellm_tool_dir();
    let requirements = tools.join("requirements.txt");
    let constraints = tools.join("constraints.txt");
    let pinned = requirement_pin(&requirements, "litellm")?;
    if pinned != LITELLM_VERSION {
        return Err(StackError::Pin {
            what: "litellm at the version of LITELLM_VERSION",
            path: requirements,
        });
    }
    let python = install::python()?;
    let mut inputs = vec![requirements.as_path()];
    if constraints.is_file() {
        inputs.push(constraints.as_path());
    }
    let print = fingerprint(&inputs, &[&python.identity])?;
    let name = format!("litellm-{LITELLM_VERSION}-py{}", python.minor);
    ensure_installed(
        &name,
        &format!("LiteLLM {LITELLM_VERSION}"),
        &print,
        |dir| {
            install_venv(
                dir,
                "LiteLLM",
                &[&requirements],
                constraints.is_file().then_some(constraints.as_path()),
            )
        },
    )
}

/// A running LiteLLM gateway.
#[derive(Debug)]
pub struct RunningGateway {
    /// `https://127.0.0.1:PORT`.
    pub base_url: String,
    /// The master key (random per gateway). Pass it on; do not log it.
    pub master_key: Secret,
    /// The models it serves.
    pub models: Vec<GatewayModel>,
    port: u16,
    ca_pem: String,
    ready_timeout: Duration,
    required_claims_file: Option<PathBuf>,
    part: PartProcess,
}

impl RunningGateway {
    fn start(install_dir: &Path, options: GatewayOptions) -> StackResult<Self> {
        let dir = options.dir;
        fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
        let dir = fs::canonicalize(&dir).map_err(|source| StackError::read(&dir, source))?;
        let serving = options.ca.issue_server_cert(
            &dir,
            "litellm",
            "litellm",
            &crate::stack::serving_sans(options.listen),
        )?;
        let master_key = Secret::new(format!("sk-{}", random_hex(24)));
        let key_file = dir.join("master.key");
        install::write_private(&key_file, master_key.expose())?;
        let config_file = dir.join("litellm-config.yaml");
        // JSON is YAML: LiteLLM reads the file with a YAML loader.
        fs::write(&config_file, render_config(&options.models).to_string())
            .map_err(|source| StackError::write(&config_file, source))?;
        let port = match options.port {
            Some(port) => port,
            None => free_loopback_ports(1)?
                .first()
                .copied()
                .ok_or(StackError::NotRunning {
                    what: "a free port",
                })?,
        };
        let launcher = litellm_tool_dir().join("launcher.py");
        let mut args: Vec<OsString> = vec![
            launcher.into_os_string(),
            "--config".into(),
            config_file.into_os_string(),
            "--host".into(),
            options.listen.to_string().into(),
            "--port".into(),
            port.to_string().into(),
            "--ssl-certfile".into(),
            serving.cert.into_os_string(),
            "--ssl-keyfile".into(),
            serving.key.into_os_string(),
            "--master-key-file".into(),
            key_file.into_os_string(),
            "--ca-file".into(),
            options.ca.pair().cert.clone().into_os_string(),
        ];
        let mut required_claims_file = None;
        if let Some(jwt) = &options.jwt {
            let file = dir.join(REQUIRED_CLAIMS_FILE);
            write_required_claims(&file, &jwt.required_claims)?;
            args.push("--jwt-required-claims-file".into());
            args.push(file.clone().into_os_string());
            required_claims_file = Some(file);
            args.push("--jwks-url".into());
            args.push(jwt.jwks_url.clone().into());
            for audience in &jwt.audiences {
                args.push("--jwt-audience".into());
                args.push(audience.into());
            }
            if let Some(issuer) = &jwt.issuer {
                args.push("--jwt-issuer".into());
                args.push(issuer.into());
            }
        }
        let spec = ProcessSpec {
            name: "litellm".to_owned(),
            program: install::venv_python(install_dir),
            args,
            log: dir.join("litellm.log"),
            cwd: dir.clone(),
            env: Vec::new(),
        };
        let started = Instant::now();
        let part = PartProcess::start(spec, options.mode, &dir, options.shared_watchdog.clone())?;
        let mut gateway = Self {
            base_url: format!("https://{}:{port}", options.listen),
            master_key,
            models: options.models,
            port,
            ca_pem: options.ca.cert_pem()?,
            ready_timeout: options.ready_timeout,
            required_claims_file,
            part,
        };
        gateway.wait_ready()?;
        eprintln!(
            "Started LiteLLM {LITELLM_VERSION} at {} in {:.1?}",
            gateway.base_url,
            started.elapsed()
        );
        Ok(gateway)
    }

    fn wait_ready(&mut self) -> StackResult<()> {
        let probe = Probe::new(
            format!("{}/health/liveliness", self.base_url),
            Some(&self.ca_pem),
            None,
        )?;
        self.part.wait_ready(&probe, self.ready_timeout)
    }

    /// The target of a `ModelGateway` connection (OpenAI style): `https://127.0.0.1:PORT/v1`.
    pub fn openai_target(&self) -> String {
        format!("{}/v1", self.base_url)
    }

    /// The target of an `ApiManagement` connection (Azure style): `https://127.0.0.1:PORT/openai`.
    pub fn azure_target(&self) -> String {
        format!("{}/openai", self.base_url)
    }

    /// Replaces the claims JWTs must carry, effective for the next request (the auth hook reads
    /// them on every check). Fails when the gateway was started without JWT auth.
    pub fn set_required_claims(&self, claims: &[RequiredClaim]) -> StackResult<()> {
        let file = self
            .required_claims_file
            .as_ref()
            .ok_or(StackError::NotRunning {
                what: "JWT auth on this gateway",
            })?;
        write_required_claims(file, claims)
    }

    /// The port it listens on (the same after [`RunningGateway::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The names of the models it serves.
    pub fn model_names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }

    /// The model named `name`, if served.
    pub fn model(&self, name: &str) -> Option<&GatewayModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// The LiteLLM process, while it runs.
    pub fn process(&self) -> Option<&ManagedProcess> {
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

    /// Stops LiteLLM; callers then see connection refused on its port.
    pub fn stop(&mut self) -> StackResult<()> {
        self.part.stop()
    }

    /// Starts LiteLLM again on the same port with the same key and models, and waits until it
    /// is ready. Works whether or not it was stopped first.
    pub fn restart(&mut self) -> StackResult<()> {
        self.part.restart()?;
        self.wait_ready()
    }

    /// Stops LiteLLM and its watchdog for good.
    pub fn shutdown(mut self) -> StackResult<()> {
        self.end()
    }

    pub(crate) fn end(&mut self) -> StackResult<()> {
        self.part.shutdown()
    }
}

/// Writes `claims` to `file` in one step (a reader sees the old or the new list, never half).
fn write_required_claims(file: &Path, claims: &[RequiredClaim]) -> StackResult<()> {
    let text = serde_json::to_string(claims).map_err(|source| StackError::Parse {
        url: file.display().to_string(),
        source,
    })?;
    let partial = file.with_extension("json.partial");
    fs::write(&partial, text).map_err(|source| StackError::write(&partial, source))?;
    fs::rename(&partial, file).map_err(|source| StackError::write(file, source))
}

/// The LiteLLM config: one mock-response model per [`GatewayModel`], our auth hook.
fn render_config(models: &[GatewayModel]) -> Value {
    let model_list: Vec<Value> = models
        .iter()
        .map(|m| {
            let mut params = json!({
                "model": format!("openai/{}", m.model),
                // Never used: mock responses make no upstream call.
                "api_key": "unused-mock-key",
                "mock_response": m.reply,
            });
            if let (Some(delay), Value::Object(map)) = (m.delay, &mut params) {
                map.insert("mock_delay".to_owned(), json!(delay.as_secs_f64()));
            }
            json!({
                "model_name": m.name,
                "litellm_params": params,
                "model_info": {
                    "foundry_model_name": m.model,
                    "foundry_model_version": m.version,
                    "foundry_refuses_max_tokens": m.refuses_max_tokens,
                },
            })
        })
        .collect();
    json!({
        "model_list": model_list,
        "general_settings": {
            "custom_auth": "foundry_gateway_auth.user_api_key_auth",
        },
        "litellm_settings": {
            "telemetry": false,
            "drop_params": true,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirements_pin_the_litellm_version_of_the_constant() {
        let file = litellm_tool_dir().join("requirements.txt");
        assert_eq!(requirement_pin(&file, "litellm").unwrap(), LITELLM_VERSION);
        requirement_pin(&file, "prisma").unwrap();
    }

    #[test]
    fn the_config_has_one_mock_model_per_gateway_model_and_a_delay_only_where_asked() {
        let models = vec![
            GatewayModel::new("gpt-4o").with_version("2024-11-20"),
            GatewayModel::new("slow").with_delay(Duration::from_millis(1500)),
        ];
        let config = render_config(&models);
        let list = config["model_list"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["model_name"], "gpt-4o");
        assert_eq!(
            list[0]["litellm_params"]["mock_response"],
            "Hello from the gateway (gpt-4o)"
        );
        assert!(list[0]["litellm_params"].get("mock_delay").is_none());
        assert_eq!(list[0]["model_info"]["foundry_model_version"], "2024-11-20");
        assert_eq!(list[0]["model_info"]["foundry_refuses_max_tokens"], false);
        assert_eq!(list[1]["litellm_params"]["mock_delay"], 1.5);
        assert_eq!(
            config["general_settings"]["custom_auth"],
            "foundry_gateway_auth.user_api_key_auth"
        );
    }

    #[test]
    fn the_default_models_include_a_reasoning_model_that_refuses_max_tokens() {
        let models = GatewayModel::defaults();
        let reasoning: Vec<&str> = models
            .iter()
            .filter(|m| m.refuses_max_tokens)
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(reasoning, [REASONING_MODEL]);
        let config = render_config(&models);
        let entry = config["model_list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["model_name"] == REASONING_MODEL)
            .unwrap();
        assert_eq!(entry["model_info"]["foundry_refuses_max_tokens"], true);
        let refusal: Value = serde_json::from_str(MAX_TOKENS_REFUSAL).unwrap();
        assert_eq!(refusal["error"]["code"], "unsupported_parameter");
        assert_eq!(refusal["error"]["param"], "max_tokens");
    }

    #[test]
    fn required_claims_are_written_as_the_auth_hook_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(REQUIRED_CLAIMS_FILE);
        write_required_claims(
            &file,
            &[RequiredClaim::mirid(COGNITIVE_SERVICES_AUDIENCE, "/subscriptions/s/resourcegroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p")],
        )
        .unwrap();
        let written: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            written,
            json!([{"audience": "https://cognitiveservices.azure.com", "claim": "xms_mirid",
                    "values": ["/subscriptions/s/resourcegroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p"]}])
        );
        write_required_claims(&file, &[]).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "[]");
        assert!(!file.with_extension("json.partial").exists());
    }
}
