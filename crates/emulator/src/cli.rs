//! Command-line flags of the `foundry-emulator` binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{AuthMode, EmulatorConfig, IdentityClient, ProjectId, ProjectIdentity, TlsPem};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// A local, offline Microsoft Foundry for the "bring your own AI gateway" feature: ARM project
/// connections and the project data plane on one loopback server.
#[derive(Debug, Parser)]
#[command(name = "foundry-emulator", version, about)]
pub struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0", env = "FOUNDRY_EMULATOR_LISTEN")]
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (local use only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_http: bool,
    /// Extra root CA (PEM) trusted for calls to gateways, token servers and the JWKS URL.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// A project to serve, SUBSCRIPTION/RESOURCE_GROUP/ACCOUNT/PROJECT (repeatable).
    #[arg(long = "project", value_name = "SUB/RG/ACCOUNT/PROJECT")]
    pub projects: Vec<ProjectId>,
    /// Accept this bearer token on both planes.
    #[arg(
        long,
        env = "FOUNDRY_EMULATOR_STATIC_TOKEN",
        hide_env_values = true,
        conflicts_with = "jwks_url"
    )]
    pub static_token: Option<String>,
    /// Validate RS256 JWTs against this JWKS (audience per plane).
    #[arg(long, value_name = "URL")]
    pub jwks_url: Option<String>,
    /// Required issuer (`iss`) of JWTs.
    #[arg(long, requires = "jwks_url")]
    pub issuer: Option<String>,
    /// Client-credentials token endpoint for the project managed identity (Entra-authenticated
    /// gateways); the scope sent is `{audience}/.default`.
    #[arg(long, value_name = "URL")]
    pub entra_token_url: Option<String>,
    /// Client id sent to --entra-token-url.
    #[arg(long, default_value = "foundry-emulator-project-identity")]
    pub entra_client_id: String,
    /// Client secret sent to --entra-token-url.
    #[arg(
        long,
        env = "FOUNDRY_EMULATOR_ENTRA_CLIENT_SECRET",
        hide_env_values = true,
        default_value = ""
    )]
    pub entra_client_secret: String,
    /// File holding the client secret sent to --entra-token-url (kept off the command line).
    #[arg(long, value_name = "FILE", conflicts_with = "entra_client_secret")]
    pub entra_client_secret_file: Option<PathBuf>,
    /// JSON file giving each project its own client at --entra-token-url, so that gateways get
    /// a token of the calling project's identity: `{"<project>": {"clientId": "…",
    /// "clientSecret": "…"}}`. Projects not in it use --entra-client-id.
    #[arg(long, value_name = "FILE", requires = "entra_token_url")]
    pub project_identity_clients_file: Option<PathBuf>,
    /// Fixed project managed-identity token, used when --entra-token-url is not given.
    #[arg(
        long,
        env = "FOUNDRY_EMULATOR_PROJECT_IDENTITY_TOKEN",
        hide_env_values = true,
        conflicts_with = "entra_token_url"
    )]
    pub project_identity_token: Option<String>,
    /// Latency added to every Foundry call, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Seed of probabilistic fault rules.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Timeout of one call to a gateway or token server, in seconds.
    #[arg(long, default_value_t = 60)]
    pub gateway_timeout_seconds: u64,
    /// Page size of ARM connection lists.
    #[arg(long, default_value_t = 100)]
    pub arm_page_size: usize,
    /// Log format.
    #[arg(long, value_enum, default_value = "plain")]
    pub log_format: LogFormat,
}

/// Why the flags do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read.
    #[error("reading {what} {path} failed: {source}")]
    Read {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Flags that do not fit together.
    #[error("{0}")]
    Usage(String),
}

impl Cli {
    /// Installs the tracing subscriber (logs go to stderr; stdout carries only the listen line).
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Plain => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// Reads the files the flags name and builds the configuration.
    pub fn into_config(self) -> Result<EmulatorConfig, CliError> {
        let read = |what: &'static str, path: &PathBuf| {
            std::fs::read(path).map_err(|source| CliError::Read {
                what,
                path: path.clone(),
                source,
            })
        };
        let auth = match (self.static_token, self.jwks_url) {
            (Some(t), None) if !t.is_empty() => AuthMode::StaticToken(t),
            (None, Some(url)) => AuthMode::Jwks {
                url,
                issuer: self.issuer,
            },
            _ => {
                return Err(CliError::Usage(
                    "choose how bearer tokens are checked: --static-token TOKEN or --jwks-url URL"
                        .into(),
                ));
            }
        };
        let tls = match (&self.tls_cert, &self.tls_key, self.insecure_http) {
            (Some(c), Some(k), false) => Some(TlsPem {
                cert_chain_pem: read("certificate", c)?,
                key_pem: read("key", k)?,
            }),
            (None, None, true) => None,
            _ => {
                return Err(CliError::Usage(
                    "give --tls-cert and --tls-key, or --insecure-http for plain HTTP".into(),
                ));
            }
        };
        let extra_ca_pem = self
            .ca_file
            .as_ref()
            .map(|p| read("CA file", p))
            .transpose()?;
        let entra_client_secret = match &self.entra_client_secret_file {
            Some(path) => String::from_utf8_lossy(&read("client secret file", path)?)
                .trim()
                .to_string(),
            None => self.entra_client_secret,
        };
        let projects = if self.projects.is_empty() {
            vec![ProjectId::default_project()]
        } else {
            self.projects
        };
        let project_clients = match &self.project_identity_clients_file {
            Some(path) => {
                parse_project_clients(&read("project identity clients file", path)?, &projects)?
            }
            None => BTreeMap::new(),
        };
        let project_identity = match (self.entra_token_url, self.project_identity_token) {
            (Some(token_url), _) => ProjectIdentity::ClientCredentials {
                token_url,
                client_id: self.entra_client_id,
                client_secret: entra_client_secret,
                project_clients,
            },
            (None, Some(t)) => ProjectIdentity::StaticToken(t),
            (None, None) => ProjectIdentity::None,
        };
        let mut config = EmulatorConfig::new(auth);
        config.listen = self.listen;
        config.tls = tls;
        config.extra_ca_pem = extra_ca_pem;
        config.projects = projects;
        config.project_identity = project_identity;
        config.latency = Duration::from_millis(self.latency_ms);
        config.seed = self.seed;
        config.gateway_timeout = Duration::from_secs(self.gateway_timeout_seconds.max(1));
        config.arm_page_size = self.arm_page_size.max(1);
        Ok(config)
    }
}

/// One entry of `--project-identity-clients-file`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientEntry {
    client_id: String,
    client_secret: String,
}

/// Reads `{"<project>": {"clientId", "clientSecret"}}`; every project must be served.
fn parse_project_clients(
    text: &[u8],
    projects: &[ProjectId],
) -> Result<BTreeMap<String, IdentityClient>, CliError> {
    let entries: BTreeMap<String, ClientEntry> = serde_json::from_slice(text).map_err(|e| {
        CliError::Usage(format!(
            "the project identity clients file is not {{\"<project>\": {{\"clientId\", \"clientSecret\"}}}}: {e}"
        ))
    })?;
    let mut out = BTreeMap::new();
    for (project, entry) in entries {
        if !projects
            .iter()
            .any(|p| p.project.eq_ignore_ascii_case(&project))
        {
            return Err(CliError::Usage(format!(
                "the project identity clients file names project '{project}', which is not served (--project)"
            )));
        }
        if entry.client_id.is_empty() {
            return Err(CliError::Usage(format!(
                "the project identity client of '{project}' has an empty clientId"
            )));
        }
        out.insert(
            project,
            IdentityClient::new(entry.client_id, entry.client_secret),
        );
    }
    Ok(out)
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_need_an_auth_mode_and_a_transport() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("foundry-emulator").chain(args.iter().copied()))
                .unwrap()
                .into_config()
        };
        assert!(parse(&["--insecure-http"]).is_err());
        assert!(parse(&["--static-token", "t"]).is_err());
        let c = parse(&[
            "--static-token",
            "t",
            "--insecure-http",
            "--project",
            "s/rg/a/p",
            "--project",
            "s/rg/a/q",
            "--latency-ms",
            "5",
        ])
        .unwrap();
        assert_eq!(c.projects.len(), 2);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert!(c.tls.is_none());
        let c = parse(&["--jwks-url", "https://127.0.0.1:1/jwks", "--insecure-http"]).unwrap();
        assert!(matches!(c.auth, AuthMode::Jwks { .. }));
        assert_eq!(c.projects, vec![ProjectId::default_project()]);
        assert!(
            Cli::try_parse_from(["foundry-emulator", "--static-token", "t", "--jwks-url", "u"])
                .is_err()
        );
    }

    #[test]
    fn the_project_identity_secret_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s3cret\n").unwrap();
        let file = file.to_str().unwrap();
        let c = Cli::try_parse_from([
            "foundry-emulator",
            "--static-token",
            "t",
            "--insecure-http",
            "--entra-token-url",
            "https://127.0.0.1:1/tenant/oauth2/v2.0/token",
            "--entra-client-secret-file",
            file,
        ])
        .unwrap()
        .into_config()
        .unwrap();
        match c.project_identity {
            ProjectIdentity::ClientCredentials { client_secret, .. } => {
                assert_eq!(client_secret, "s3cret");
            }
            other => panic!("unexpected identity {other:?}"),
        }
        assert!(
            Cli::try_parse_from([
                "foundry-emulator",
                "--entra-client-secret",
                "a",
                "--entra-client-secret-file",
                file,
            ])
            .is_err()
        );
    }

    #[test]
    fn each_project_can_have_its_own_identity_client() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clients.json");
        std::fs::write(
            &file,
            r#"{"p1": {"clientId": "mi-p1", "clientSecret": "s1"}, "P2": {"clientId": "mi-p2", "clientSecret": "s2"}}"#,
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "foundry-emulator",
                "--static-token",
                "t",
                "--insecure-http",
                "--project",
                "s/rg/a/p1",
                "--project",
                "s/rg/a/p2",
            ];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).map(Cli::into_config)
        };
        let c = parse(&[
            "--entra-token-url",
            "https://127.0.0.1:1/t/oauth2/v2.0/token",
            "--project-identity-clients-file",
            file,
        ])
        .unwrap()
        .unwrap();
        match c.project_identity {
            ProjectIdentity::ClientCredentials {
                project_clients, ..
            } => {
                assert_eq!(project_clients["p1"], IdentityClient::new("mi-p1", "s1"));
                assert_eq!(project_clients["P2"].client_id, "mi-p2");
            }
            other => panic!("unexpected identity {other:?}"),
        }
        // The file needs a token URL, and may name served projects only.
        assert!(parse(&["--project-identity-clients-file", file]).is_err());
        std::fs::write(
            dir.path().join("other.json"),
            r#"{"p3": {"clientId": "x", "clientSecret": "y"}}"#,
        )
        .unwrap();
        let other = dir.path().join("other.json");
        let e = parse(&[
            "--entra-token-url",
            "https://127.0.0.1:1/t",
            "--project-identity-clients-file",
            other.to_str().unwrap(),
        ])
        .unwrap()
        .unwrap_err();
        assert!(e.to_string().contains("'p3'"), "{e}");
    }
}
