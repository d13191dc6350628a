//! What an emulator instance serves and how it checks callers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Everything [`crate::Emulator::start`] needs. Built by the CLI or directly by tests.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Server certificate and key; `None` serves plain HTTP (local use only).
    pub tls: Option<TlsPem>,
    /// Extra root CA certificates (PEM) trusted for outgoing calls to gateways, token servers
    /// and the JWKS endpoint, in addition to the built-in web PKI roots.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Projects served; every other parent resource is "not found".
    pub projects: Vec<ProjectId>,
    /// How bearer tokens of incoming requests are checked.
    pub auth: AuthMode,
    /// Where the project's managed-identity token for Entra-authenticated gateways comes from.
    pub project_identity: ProjectIdentity,
    /// Latency added to every Foundry call (not to `/_emulator/`), for benchmarks.
    pub latency: Duration,
    /// Seed of the random source used by probabilistic fault rules.
    pub seed: u64,
    /// Timeout of one outgoing call to a gateway or token server.
    pub gateway_timeout: Duration,
    /// Page size of ARM connection lists (`nextLink` paging).
    pub arm_page_size: usize,
    /// How many requests `/_emulator/requests` keeps (oldest dropped first).
    pub max_recorded: usize,
}

impl EmulatorConfig {
    /// A config with the defaults of the CLI and the given auth mode.
    pub fn new(auth: AuthMode) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            extra_ca_pem: None,
            projects: vec![ProjectId::default_project()],
            auth,
            project_identity: ProjectIdentity::None,
            latency: Duration::ZERO,
            seed: 0,
            gateway_timeout: Duration::from_secs(60),
            arm_page_size: 100,
            max_recorded: 100_000,
        }
    }
}

/// PEM text of the server certificate chain and its private key.
#[derive(Clone)]
pub struct TlsPem {
    /// Certificate chain, leaf first.
    pub cert_chain_pem: Vec<u8>,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem")
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// How incoming bearer tokens are validated.
#[derive(Clone)]
pub enum AuthMode {
    /// One opaque token accepted on both planes.
    StaticToken(String),
    /// RS256 JWTs checked against a JWKS; audience per plane, issuer when given.
    Jwks {
        /// URL of the JSON Web Key Set.
        url: String,
        /// Required `iss` claim, if any.
        issuer: Option<String>,
    },
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StaticToken(_) => f.write_str("StaticToken(<redacted>)"),
            Self::Jwks { url, issuer } => f
                .debug_struct("Jwks")
                .field("url", url)
                .field("issuer", issuer)
                .finish(),
        }
    }
}

/// Source of the bearer token sent to gateways whose connection uses Entra ID
/// (`ProjectManagedIdentity` or `AAD`).
#[derive(Clone, Default)]
pub enum ProjectIdentity {
    /// None configured: such gateway calls fail with a clear message.
    #[default]
    None,
    /// A fixed token.
    StaticToken(String),
    /// A client-credentials token endpoint; the scope is `{audience}/.default`.
    ClientCredentials {
        /// Token endpoint URL.
        token_url: String,
        /// Client id sent to it for projects without their own client.
        client_id: String,
        /// Client secret sent with `client_id`.
        client_secret: String,
        /// Each project's own client, by project name (case-insensitive). In Foundry every
        /// project has its own managed identity, and a gateway may check which one calls (the
        /// APIM guide's `xms_mirid` check against the project's ARM id, reference §3.1): give
        /// each project a client whose tokens carry its identity. A gateway call for a project
        /// uses that project's client, also through an account connection.
        project_clients: BTreeMap<String, IdentityClient>,
    },
}

impl ProjectIdentity {
    /// Client credentials at `token_url`, the same client for every project.
    pub fn client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self::ClientCredentials {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            project_clients: BTreeMap::new(),
        }
    }
}

/// A client of a client-credentials token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityClient {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl IdentityClient {
    /// A client with this id and secret.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

impl fmt::Debug for IdentityClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ProjectIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::StaticToken(_) => f.write_str("StaticToken(<redacted>)"),
            Self::ClientCredentials {
                token_url,
                client_id,
                project_clients,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("project_clients", project_clients)
                .finish_non_exhaustive(),
        }
    }
}

/// One Foundry project: `SUBSCRIPTION/RESOURCE_GROUP/ACCOUNT/PROJECT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectId {
    /// Subscription id.
    pub subscription: String,
    /// Resource group name.
    pub resource_group: String,
    /// Foundry (Cognitive Services) account name.
    pub account: String,
    /// Project name; also the data-plane path segment `/api/projects/{project}`.
    pub project: String,
}

impl ProjectId {
    /// The project served when none is configured.
    pub fn default_project() -> Self {
        Self {
            subscription: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg-local".into(),
            account: "local-account".into(),
            project: "local-project".into(),
        }
    }

    /// The ARM id of the project.
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}/projects/{}",
            self.subscription, self.resource_group, self.account, self.project
        )
    }

    /// The ARM id of the project's Foundry account.
    pub fn account_arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            self.subscription, self.resource_group, self.account
        )
    }

    /// Whether the ARM path segments name this project's account.
    pub(crate) fn matches_account(&self, sub: &str, rg: &str, account: &str) -> bool {
        self.subscription.eq_ignore_ascii_case(sub)
            && self.resource_group.eq_ignore_ascii_case(rg)
            && self.account.eq_ignore_ascii_case(account)
    }

    /// Whether both projects belong to the same account.
    pub(crate) fn same_account(&self, other: &ProjectId) -> bool {
        self.matches_account(&other.subscription, &other.resource_group, &other.account)
    }

    /// Whether the ARM path segments name this project (ARM names are case-insensitive).
    pub(crate) fn matches(&self, sub: &str, rg: &str, account: &str, project: &str) -> bool {
        self.subscription.eq_ignore_ascii_case(sub)
            && self.resource_group.eq_ignore_ascii_case(rg)
            && self.account.eq_ignore_ascii_case(account)
            && self.project.eq_ignore_ascii_case(project)
    }
}

impl FromStr for ProjectId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        let [sub, rg, account, project] = parts.as_slice() else {
            return Err(format!(
                "expected SUBSCRIPTION/RESOURCE_GROUP/ACCOUNT/PROJECT, got '{s}'"
            ));
        };
        let segment_ok = |v: &str| {
            let mut chars = v.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        for (what, v) in [("subscription", sub), ("resource group", rg)] {
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(format!("{what} in '{s}' is empty or has spaces"));
            }
        }
        for (what, v) in [("account", account), ("project", project)] {
            if !segment_ok(v) {
                return Err(format!(
                    "{what} '{v}' must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
                ));
            }
        }
        Ok(Self {
            subscription: (*sub).to_string(),
            resource_group: (*rg).to_string(),
            account: (*account).to_string(),
            project: (*project).to_string(),
        })
    }
}

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.subscription, self.resource_group, self.account, self.project
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_parse_from_four_segments() {
        let p: ProjectId = "sub/rg/acct/proj".parse().unwrap();
        assert_eq!(p.project, "proj");
        assert_eq!(
            p.arm_id(),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj"
        );
        assert!("sub/rg/acct".parse::<ProjectId>().is_err());
        assert!("sub/rg/-acct/proj".parse::<ProjectId>().is_err());
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let a = AuthMode::StaticToken("hunter2".into());
        assert!(!format!("{a:?}").contains("hunter2"));
        let mut p = ProjectIdentity::client_credentials("https://t", "c", "hunter2");
        if let ProjectIdentity::ClientCredentials {
            project_clients, ..
        } = &mut p
        {
            project_clients.insert("p1".into(), IdentityClient::new("p1-client", "hunter3"));
        }
        let text = format!("{p:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("hunter3"),
            "{text}"
        );
        assert!(text.contains("p1-client"), "{text}");
    }
}
