//! `ConnectionsClient`: ARM connections of a Foundry project or of its account (reference §1;
//! the 2026-09-01 spec's `ProjectConnections_*` and `AccountConnections_*`).

mod metadata;
mod models;

use std::fmt;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use http::Method;
use url::Url;

pub use metadata::*;
pub use models::*;

use crate::credentials::ARM_SCOPE;
use crate::error::{Error, Result};
use crate::pipeline::{ClientOptions, Pipeline};
use crate::urls::{check_segment, join_segments, parse_endpoint, same_origin};

/// ARM api-version 2026-09-01, the newest GA (the spec readme's default tag), which has both
/// `ProjectConnections_*` and `AccountConnections_*`.
///
/// Its connection contract is the one we send: `ConnectionPropertiesV2` (discriminator
/// `authType`, only `authType` required; `category`, `target`, `metadata` as
/// `map<string,string>`, `isSharedToAll`, `expiryTime`, ...), `ConnectionApiKey` `{ key }`,
/// `ConnectionOAuth2` `{ clientId, clientSecret, ... }`, and an extensible `category`
/// (`ApiManagement`, `ModelGateway`) and `authType` (now listing `ProjectManagedIdentity`, which
/// 2025-12-01 did not). The bodies are the same as under 2025-12-01, so it is the default.
///
/// What it does not declare, although the Foundry samples send it and the service accepts it
/// (reference §1.4): a top-level `audience` beside `authType: ProjectManagedIdentity` (APIM
/// Entra ID; `ProjectManagedIdentity` has no subtype there, so no `audience` and no
/// `credentials` shape), and the top-level `tokenUrl` and `scopes` of an OAuth2 ModelGateway
/// connection (the samples' Bicep wraps `properties` in `any()`). Its OAuth2 `clientId` is an
/// `Azure.Core.uuid` (format `uuid`; 2025-12-01's deployment schema had a UUID pattern), while the
/// samples use non-UUID placeholders. We send these fields as the samples do and leave it to the
/// service to accept them.
pub const ARM_API_VERSION_2026_09_01: &str = "2026-09-01";
/// ARM api-version 2025-12-01, the previous default, still selectable through
/// [`ConnectionsClientOptions::api_version`].
pub const ARM_API_VERSION_2025_12_01: &str = "2025-12-01";
/// Default ARM api-version of connections: [`ARM_API_VERSION_2026_09_01`].
pub const DEFAULT_ARM_API_VERSION: &str = ARM_API_VERSION_2026_09_01;
/// Default management endpoint.
pub const DEFAULT_MANAGEMENT_ENDPOINT: &str = "https://management.azure.com";

/// Most pages a list call follows before it gives up (a loop guard).
const MAX_PAGES: usize = 1000;

/// Identity of a Foundry project in ARM.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProjectResourceId {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Foundry (Cognitive Services) account.
    pub account: String,
    /// Project.
    pub project: String,
}

impl ProjectResourceId {
    /// Build from parts, checking each is a plausible path segment.
    pub fn new(
        subscription_id: impl Into<String>,
        resource_group: impl Into<String>,
        account: impl Into<String>,
        project: impl Into<String>,
    ) -> Result<Self> {
        let id = Self {
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            account: account.into(),
            project: project.into(),
        };
        const OP: &str = "ProjectResourceId_New";
        for (what, v) in [
            ("subscription id", &id.subscription_id),
            ("resource group", &id.resource_group),
            ("account", &id.account),
            ("project", &id.project),
        ] {
            check_segment(OP, what, v)?;
            if v.contains('/') {
                return Err(Error::invalid_input(
                    OP,
                    format!("{what} must not contain '/'"),
                ));
            }
        }
        Ok(id)
    }

    /// Parse `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{a}/projects/{p}`
    /// (case-insensitive keywords, trailing slash allowed).
    pub fn parse(arm_id: &str) -> Result<Self> {
        let parts: Vec<&str> = arm_id.trim().trim_matches('/').split('/').collect();
        match parts.as_slice() {
            [
                subs,
                sub,
                rgs,
                rg,
                providers,
                namespace,
                accounts,
                account,
                projects,
                project,
            ] if subs.eq_ignore_ascii_case("subscriptions")
                && rgs.eq_ignore_ascii_case("resourceGroups")
                && providers.eq_ignore_ascii_case("providers")
                && namespace.eq_ignore_ascii_case("Microsoft.CognitiveServices")
                && accounts.eq_ignore_ascii_case("accounts")
                && projects.eq_ignore_ascii_case("projects") =>
            {
                Self::new(*sub, *rg, *account, *project)
            }
            _ => Err(Error::invalid_input(
                "ProjectResourceId_Parse",
                format!(
                    "{arm_id:?} is not a Foundry project ARM id (/subscriptions/…/resourceGroups/…/providers/Microsoft.CognitiveServices/accounts/…/projects/…)"
                ),
            )),
        }
    }

    /// The path segments of the project; the first [`ACCOUNT_SEGMENTS`] name its account.
    fn segments(&self) -> [&str; 10] {
        [
            "subscriptions",
            &self.subscription_id,
            "resourceGroups",
            &self.resource_group,
            "providers",
            "Microsoft.CognitiveServices",
            "accounts",
            &self.account,
            "projects",
            &self.project,
        ]
    }

    /// The ARM id of a connection of this project.
    pub fn connection_id(&self, connection_name: &str) -> String {
        format!("{self}/connections/{connection_name}")
    }

    /// The ARM id of the project's Foundry account:
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{a}`.
    pub fn account_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            self.subscription_id, self.resource_group, self.account
        )
    }

    /// The ARM id of a connection of the project's account (`accounts/{a}/connections/{c}`),
    /// which every project of the account can use.
    pub fn account_connection_id(&self, connection_name: &str) -> String {
        format!("{}/connections/{connection_name}", self.account_id())
    }

    /// The ARM id of a connection in `scope`.
    pub fn scoped_connection_id(&self, scope: ConnectionScope, connection_name: &str) -> String {
        match scope {
            ConnectionScope::Project => self.connection_id(connection_name),
            ConnectionScope::Account => self.account_connection_id(connection_name),
        }
    }

    /// The path segments of the parent of connections in `scope`.
    fn scope_segments(&self, scope: ConnectionScope) -> Vec<&str> {
        let n = match scope {
            ConnectionScope::Project => 10,
            ConnectionScope::Account => ACCOUNT_SEGMENTS,
        };
        self.segments().into_iter().take(n).collect()
    }
}

/// How many leading segments of a project's path name its account.
const ACCOUNT_SEGMENTS: usize = 8;

/// Where a connection lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConnectionScope {
    /// `accounts/{a}/projects/{p}/connections/{c}` (`ProjectConnections_*`): the project's own.
    #[default]
    Project,
    /// `accounts/{a}/connections/{c}` (`AccountConnections_*`): on the Foundry account, usable by
    /// every project of it.
    Account,
}

impl ConnectionScope {
    /// The ARM resource type of connections in this scope.
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Project => "Microsoft.CognitiveServices/accounts/projects/connections",
            Self::Account => "Microsoft.CognitiveServices/accounts/connections",
        }
    }

    /// The operation id (for errors and metrics) of `op` in this scope, as the 2026-09-01 spec
    /// names it.
    fn operation(self, op: Op) -> &'static str {
        match (self, op) {
            (Self::Project, Op::Create) => "ProjectConnections_Create",
            (Self::Project, Op::Get) => "ProjectConnections_Get",
            (Self::Project, Op::Delete) => "ProjectConnections_Delete",
            (Self::Project, Op::List) => "ProjectConnections_List",
            (Self::Account, Op::Create) => "AccountConnections_Create",
            (Self::Account, Op::Get) => "AccountConnections_Get",
            (Self::Account, Op::Delete) => "AccountConnections_Delete",
            (Self::Account, Op::List) => "AccountConnections_List",
        }
    }
}

/// The connection operations of [`ConnectionsClient`].
#[derive(Clone, Copy, Debug)]
enum Op {
    Create,
    Get,
    Delete,
    List,
}

impl fmt::Display for ProjectResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}/projects/{}",
            self.subscription_id, self.resource_group, self.account, self.project
        )
    }
}

/// True when `name` matches the connection name pattern `^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$`.
pub fn is_valid_connection_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=33).contains(&b.len())
        && b.split_first().is_some_and(|(first, rest)| {
            first.is_ascii_alphanumeric()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        })
}

/// Options of [`ConnectionsClient`].
#[derive(Clone, Debug)]
pub struct ConnectionsClientOptions {
    /// ARM api-version (default [`DEFAULT_ARM_API_VERSION`]).
    pub api_version: String,
    /// Transport, timeout, retries, observer.
    pub client_options: ClientOptions,
}

impl Default for ConnectionsClientOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_ARM_API_VERSION.into(),
            client_options: ClientOptions::default(),
        }
    }
}

/// Filters of `ProjectConnections_List` and `AccountConnections_List`.
#[derive(Clone, Debug, Default)]
pub struct ListConnectionsOptions {
    /// Only connections of this category.
    pub category: Option<ConnectionCategory>,
    /// Only connections with this target.
    pub target: Option<String>,
    /// `includeAll`.
    pub include_all: Option<bool>,
}

/// Client of the connections of one Foundry project, or of its account (ARM, token scope
/// [`ARM_SCOPE`]). `get` returns `Ok(None)` on 404; `delete` treats 404 as done.
pub struct ConnectionsClient {
    endpoint: Url,
    project: ProjectResourceId,
    scope: ConnectionScope,
    api_version: String,
    pipeline: Arc<Pipeline>,
}

impl fmt::Debug for ConnectionsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionsClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("project", &self.project)
            .field("scope", &self.scope)
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

impl ConnectionsClient {
    /// A client for the connections of `project` at the management `endpoint` (e.g.
    /// [`DEFAULT_MANAGEMENT_ENDPOINT`], or the emulator's `http://127.0.0.1:port`).
    pub fn new(
        endpoint: &str,
        project: ProjectResourceId,
        credential: Arc<dyn TokenCredential>,
        options: Option<ConnectionsClientOptions>,
    ) -> Result<Self> {
        Self::with_scope(
            endpoint,
            project,
            ConnectionScope::Project,
            credential,
            options,
        )
    }

    /// A client for the connections in `scope` of `resource_id`: the project's own
    /// ([`ConnectionScope::Project`], like [`ConnectionsClient::new`]) or those of its account
    /// ([`ConnectionScope::Account`]; the project part of `resource_id` is then not used in
    /// URLs).
    pub fn with_scope(
        endpoint: &str,
        resource_id: ProjectResourceId,
        scope: ConnectionScope,
        credential: Arc<dyn TokenCredential>,
        options: Option<ConnectionsClientOptions>,
    ) -> Result<Self> {
        let project = resource_id;
        let options = options.unwrap_or_default();
        let endpoint = parse_endpoint("ConnectionsClient_New", endpoint)?;
        if options.api_version.trim().is_empty() {
            return Err(Error::invalid_input(
                "ConnectionsClient_New",
                "api_version is empty",
            ));
        }
        let pipeline = Pipeline::new(
            "ConnectionsClient",
            credential,
            ARM_SCOPE,
            options.client_options,
        )?;
        Ok(Self {
            endpoint,
            project,
            scope,
            api_version: options.api_version,
            pipeline: Arc::new(pipeline),
        })
    }

    /// The project this client was made for (with [`ConnectionScope::Account`], the project whose
    /// account it manages).
    pub fn project(&self) -> &ProjectResourceId {
        &self.project
    }

    /// Where the connections of this client live.
    pub fn scope(&self) -> ConnectionScope {
        self.scope
    }

    /// The api-version this client sends.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    /// The ARM id of a connection of this client's scope.
    pub fn connection_id(&self, name: &str) -> String {
        self.project.scoped_connection_id(self.scope, name)
    }

    /// URL of one connection (pure; exposed for tests and logs).
    pub fn connection_url(&self, name: &str) -> Url {
        let mut segs = self.project.scope_segments(self.scope);
        segs.extend(["connections", name]);
        let mut url = join_segments(&self.endpoint, &segs);
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        url
    }

    fn list_url(&self, options: Option<&ListConnectionsOptions>) -> Url {
        let mut segs = self.project.scope_segments(self.scope);
        segs.push("connections");
        let mut url = join_segments(&self.endpoint, &segs);
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", &self.api_version);
            if let Some(o) = options {
                if let Some(c) = &o.category {
                    q.append_pair("category", c.as_str());
                }
                if let Some(t) = &o.target {
                    q.append_pair("target", t);
                }
                if let Some(i) = o.include_all {
                    q.append_pair("includeAll", if i { "true" } else { "false" });
                }
            }
        }
        url
    }

    /// `ProjectConnections_Create` (or `AccountConnections_Create`): PUT the connection (create
    /// or replace). ARM answers 200 with the stored resource (without credentials).
    pub async fn create_or_update(
        &self,
        name: &str,
        connection: &ConnectionResource,
    ) -> Result<ConnectionResource> {
        let op = self.scope.operation(Op::Create);
        if !is_valid_connection_name(name) {
            return Err(Error::invalid_input(
                op,
                format!("connection name {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]{{2,32}}$"),
            ));
        }
        let body = serde_json::to_vec(connection).map_err(|e| {
            Error::invalid_input(op, format!("could not serialise the connection: {e}"))
        })?;
        let rsp = self
            .pipeline
            .send(op, Method::PUT, self.connection_url(name), Some(body))
            .await?;
        rsp.json(op)
    }

    /// `ProjectConnections_Get` (or `AccountConnections_Get`): `Ok(None)` when the connection
    /// does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<ConnectionResource>> {
        let op = self.scope.operation(Op::Get);
        check_segment(op, "connection name", name)?;
        match self
            .pipeline
            .send(op, Method::GET, self.connection_url(name), None)
            .await
        {
            Ok(rsp) => rsp.json(op).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ProjectConnections_Delete` (or `AccountConnections_Delete`): 200, 204 and 404 all mean
    /// "gone".
    pub async fn delete(&self, name: &str) -> Result<()> {
        let op = self.scope.operation(Op::Delete);
        check_segment(op, "connection name", name)?;
        match self
            .pipeline
            .send(op, Method::DELETE, self.connection_url(name), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One page of `ProjectConnections_List` (or `AccountConnections_List`): the first page when
    /// `next_link` is `None`, else the page at `next_link` (which must be on the endpoint's
    /// origin).
    pub async fn list_page(
        &self,
        options: Option<&ListConnectionsOptions>,
        next_link: Option<&str>,
    ) -> Result<ConnectionsPage> {
        let op = self.scope.operation(Op::List);
        let url = match next_link {
            None => self.list_url(options),
            Some(link) => checked_next_link(op, &self.endpoint, link, &self.api_version)?,
        };
        let rsp = self.pipeline.send(op, Method::GET, url, None).await?;
        rsp.json(op)
    }

    /// `ProjectConnections_List` (or `AccountConnections_List`), following `nextLink` to the
    /// end.
    pub async fn list(
        &self,
        options: Option<&ListConnectionsOptions>,
    ) -> Result<Vec<ConnectionResource>> {
        let mut all = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let page = self.list_page(options, next.as_deref()).await?;
            all.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(link) if seen.insert(link.clone()) => next = Some(link),
                _ => return Ok(all),
            }
        }
        Err(Error::new(
            crate::ErrorKind::InvalidResponse,
            self.scope.operation(Op::List),
            format!("more than {MAX_PAGES} pages; giving up"),
        ))
    }
}

/// Validate a `nextLink`: absolute, same origin as the endpoint (the bearer token must not leak
/// elsewhere); `api-version` added when the link lacks it.
pub fn next_link_url(endpoint: &Url, next_link: &str, api_version: &str) -> Result<Url> {
    checked_next_link("ProjectConnections_List", endpoint, next_link, api_version)
}

fn checked_next_link(
    op: &'static str,
    endpoint: &Url,
    next_link: &str,
    api_version: &str,
) -> Result<Url> {
    let url = Url::parse(next_link).map_err(|e| {
        Error::new(
            crate::ErrorKind::InvalidResponse,
            op,
            format!("nextLink is not a URL: {e}"),
        )
    })?;
    if !same_origin(endpoint, &url) {
        return Err(Error::new(
            crate::ErrorKind::InvalidResponse,
            op,
            format!(
                "nextLink points to another origin ({}); refusing to send the token there",
                url.origin().ascii_serialization()
            ),
        ));
    }
    let mut url = url;
    if !url.query_pairs().any(|(k, _)| k == "api-version") {
        url.query_pairs_mut()
            .append_pair("api-version", api_version);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::StaticTokenCredential;
    use crate::types::SecretString;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn project() -> ProjectResourceId {
        ProjectResourceId::new("sub1", "rg1", "acct", "proj").unwrap()
    }

    #[test]
    fn arm_ids_round_trip() {
        let id = project();
        let s = id.to_string();
        assert_eq!(
            s,
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj"
        );
        assert_eq!(ProjectResourceId::parse(&s).unwrap(), id);
        assert_eq!(ProjectResourceId::parse(&format!("{s}/")).unwrap(), id);
        assert!(ProjectResourceId::parse("/subscriptions/x").is_err());
        assert!(ProjectResourceId::parse(&s.replace("projects", "workspaces")).is_err());
        assert_eq!(id.connection_id("c1"), format!("{s}/connections/c1"));
        assert_eq!(
            id.account_connection_id("c1"),
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/connections/c1"
        );
        assert_eq!(
            id.scoped_connection_id(ConnectionScope::Account, "c1"),
            id.account_connection_id("c1")
        );
        assert_eq!(
            id.scoped_connection_id(ConnectionScope::Project, "c1"),
            id.connection_id("c1")
        );
    }

    #[test]
    fn connection_names() {
        assert!(is_valid_connection_name("my-gw_1"));
        assert!(is_valid_connection_name("abc"));
        assert!(!is_valid_connection_name("ab"));
        assert!(!is_valid_connection_name("-abc"));
        assert!(!is_valid_connection_name("a.bc"));
        assert!(!is_valid_connection_name(&"a".repeat(34)));
        assert!(is_valid_connection_name(&"a".repeat(33)));
    }

    #[test]
    fn project_urls_are_exact() {
        let c = ConnectionsClient::new(
            DEFAULT_MANAGEMENT_ENDPOINT,
            project(),
            StaticTokenCredential::new("t"),
            None,
        )
        .unwrap();
        assert_eq!(c.scope(), ConnectionScope::Project);
        assert_eq!(c.api_version(), "2026-09-01");
        assert_eq!(
            c.connection_url("gw1").as_str(),
            "https://management.azure.com/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj/connections/gw1?api-version=2026-09-01"
        );
        let l = c.list_url(Some(&ListConnectionsOptions {
            category: Some(ConnectionCategory::ModelGateway),
            ..Default::default()
        }));
        assert_eq!(
            l.as_str(),
            "https://management.azure.com/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj/connections?api-version=2026-09-01&category=ModelGateway"
        );
        assert_eq!(c.connection_id("gw1"), project().connection_id("gw1"));
    }

    #[test]
    fn account_urls_are_exact_and_leave_out_the_project() {
        let c = ConnectionsClient::with_scope(
            "http://127.0.0.1:8080/",
            project(),
            ConnectionScope::Account,
            StaticTokenCredential::new("t"),
            None,
        )
        .unwrap();
        assert_eq!(c.scope(), ConnectionScope::Account);
        assert_eq!(
            c.connection_url("gw1").as_str(),
            "http://127.0.0.1:8080/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/connections/gw1?api-version=2026-09-01"
        );
        let l = c.list_url(Some(&ListConnectionsOptions {
            category: Some(ConnectionCategory::ApiManagement),
            target: Some("https://gw.example.com/a b".into()),
            include_all: Some(true),
        }));
        assert_eq!(
            l.as_str(),
            "http://127.0.0.1:8080/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/connections?api-version=2026-09-01&category=ApiManagement&target=https%3A%2F%2Fgw.example.com%2Fa+b&includeAll=true"
        );
        assert_eq!(
            c.connection_id("gw1"),
            "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/connections/gw1"
        );
        assert_eq!(
            ConnectionScope::Account.resource_type(),
            "Microsoft.CognitiveServices/accounts/connections"
        );
    }

    #[test]
    fn operation_names_follow_the_scope() {
        for (op, project, account) in [
            (
                Op::Create,
                "ProjectConnections_Create",
                "AccountConnections_Create",
            ),
            (Op::Get, "ProjectConnections_Get", "AccountConnections_Get"),
            (
                Op::Delete,
                "ProjectConnections_Delete",
                "AccountConnections_Delete",
            ),
            (
                Op::List,
                "ProjectConnections_List",
                "AccountConnections_List",
            ),
        ] {
            assert_eq!(ConnectionScope::Project.operation(op), project);
            assert_eq!(ConnectionScope::Account.operation(op), account);
        }
    }

    #[test]
    fn the_previous_ga_api_version_stays_selectable() {
        let c = ConnectionsClient::new(
            DEFAULT_MANAGEMENT_ENDPOINT,
            project(),
            StaticTokenCredential::new("t"),
            Some(ConnectionsClientOptions {
                api_version: ARM_API_VERSION_2025_12_01.into(),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(
            c.connection_url("gw1").as_str(),
            "https://management.azure.com/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct/projects/proj/connections/gw1?api-version=2025-12-01"
        );
        assert_eq!(DEFAULT_ARM_API_VERSION, ARM_API_VERSION_2026_09_01);
    }

    #[test]
    fn next_links_are_checked() {
        let ep = Url::parse("https://management.azure.com").unwrap();
        let u = next_link_url(
            &ep,
            "https://management.azure.com/x?api-version=1&$skipToken=abc",
            "2",
        )
        .unwrap();
        assert_eq!(
            u.query_pairs().filter(|(k, _)| k == "api-version").count(),
            1
        );
        let u = next_link_url(&ep, "https://management.azure.com/x?$skipToken=abc", "2").unwrap();
        assert!(u.as_str().ends_with("api-version=2"));
        assert!(next_link_url(&ep, "https://evil.example/x", "2").is_err());
        assert!(next_link_url(&ep, "/relative", "2").is_err());
    }

    fn wire(p: ConnectionProperties) -> serde_json::Value {
        serde_json::to_value(ConnectionResource::new(p)).unwrap()
    }

    #[test]
    fn apim_api_key_body_matches_reference() {
        let md = GatewayMetadata {
            deployment_in_path: Some(true),
            inference_api_version: Some("2024-02-01".into()),
            models: Some(vec![StaticModel::new(
                "gpt-4o",
                "gpt-4o",
                "2024-11-20",
                ModelFormat::OpenAI,
            )]),
            ..Default::default()
        };
        let mut p = ConnectionProperties::new(
            ConnectionCategory::ApiManagement,
            "https://contoso.azure-api.net/foundry/models",
            ConnectionAuth::ApiKey {
                key: Some(SecretString::new("<subscription-key>")),
            },
        );
        p.metadata = md.to_map();
        let expected: serde_json::Value = serde_json::from_str(
            r#"{ "properties": { "category": "ApiManagement", "target": "https://contoso.azure-api.net/foundry/models",
  "authType": "ApiKey", "isSharedToAll": false, "credentials": { "key": "<subscription-key>" },
  "metadata": { "deploymentInPath": "true", "inferenceAPIVersion": "2024-02-01",
    "models": "[{\"name\":\"gpt-4o\",\"properties\":{\"model\":{\"name\":\"gpt-4o\",\"version\":\"2024-11-20\",\"format\":\"OpenAI\"}}}]" } } }"#,
        )
        .unwrap();
        assert_eq!(wire(p), expected);
    }

    #[test]
    fn apim_entra_body_matches_reference() {
        let md = GatewayMetadata {
            deployment_in_path: Some(true),
            model_discovery: Some(ModelDiscovery::apim_defaults()),
            ..Default::default()
        };
        let mut p = ConnectionProperties::new(
            ConnectionCategory::ApiManagement,
            "https://contoso.azure-api.net/aoai",
            ConnectionAuth::ProjectManagedIdentity {
                audience: Some("https://cognitiveservices.azure.com".into()),
            },
        );
        p.metadata = md.to_map();
        let expected: serde_json::Value = serde_json::from_str(
            r#"{ "properties": { "category": "ApiManagement", "target": "https://contoso.azure-api.net/aoai",
  "authType": "ProjectManagedIdentity", "audience": "https://cognitiveservices.azure.com", "credentials": {},
  "isSharedToAll": false, "metadata": { "deploymentInPath": "true",
    "modelDiscovery": "{\"listModelsEndpoint\":\"/deployments\",\"getModelEndpoint\":\"/deployments/{deploymentName}\",\"deploymentProvider\":\"AzureOpenAI\"}" } } }"#,
        )
        .unwrap();
        assert_eq!(wire(p), expected);
    }

    #[test]
    fn model_gateway_oauth2_body_matches_reference() {
        let models = vec![StaticModel::new(
            "gpt-4o",
            "gpt-4o",
            "",
            ModelFormat::OpenAI,
        )];
        let md = GatewayMetadata {
            deployment_in_path: Some(false),
            inference_api_version: Some(String::new()),
            models: Some(models),
            custom_headers: Some(BTreeMap::from([(
                "X-Client-App".into(),
                "foundry-agents".into(),
            )])),
            ..Default::default()
        };
        let mut p = ConnectionProperties::new(
            ConnectionCategory::ModelGateway,
            "https://gw.example.com/llm",
            ConnectionAuth::OAuth2 {
                token_url: Some("https://login.example.com/oauth2/token".into()),
                scopes: vec!["api://gw/.default".into()],
                client_id: Some("<id>".into()),
                client_secret: Some(SecretString::new("<secret>")),
            },
        );
        p.metadata = md.to_map();
        let expected = json!({ "properties": { "category": "ModelGateway", "target": "https://gw.example.com/llm", "authType": "OAuth2",
          "credentials": { "clientId": "<id>", "clientSecret": "<secret>" },
          "tokenUrl": "https://login.example.com/oauth2/token", "scopes": ["api://gw/.default"],
          "isSharedToAll": false, "metadata": { "deploymentInPath": "false", "inferenceAPIVersion": "",
            "models": "[{\"name\":\"gpt-4o\",\"properties\":{\"model\":{\"name\":\"gpt-4o\",\"version\":\"\",\"format\":\"OpenAI\"}}}]",
            "customHeaders": "{\"X-Client-App\":\"foundry-agents\"}" } } });
        assert_eq!(wire(p.clone()), expected);
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("<secret>") && !debug.contains("foundry-agents"),
            "{debug}"
        );
    }

    #[test]
    fn responses_are_read_tolerantly() {
        let body = json!({
            "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/a/projects/p1/connections/c1",
            "name": "c1", "type": "Microsoft.CognitiveServices/accounts/projects/connections",
            "systemData": {"createdBy": "x"},
            "properties": { "category": "ModelGateway", "target": "https://gw.example.com", "authType": "ApiKey",
                "isSharedToAll": false, "metadata": { "deploymentInPath": "false", "weird": 3 },
                "peRequirement": "NotRequired", "somethingNew": {"a": 1}, "group": "x" } });
        let r: ConnectionResource = serde_json::from_value(body).unwrap();
        assert_eq!(r.name.as_deref(), Some("c1"));
        assert_eq!(r.properties.category, ConnectionCategory::ModelGateway);
        assert_eq!(r.properties.auth, ConnectionAuth::ApiKey { key: None });
        assert_eq!(r.properties.metadata["weird"], "3");

        let odd = json!({"properties": {"category": "CustomKeys", "authType": "CustomKeys",
            "credentials": {"keys": {"a": "b"}}, "target": "_"}});
        let r: ConnectionResource = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(
            r.properties.category,
            ConnectionCategory::Other("CustomKeys".into())
        );
        assert!(
            matches!(&r.properties.auth, ConnectionAuth::Other { auth_type, .. } if auth_type == "CustomKeys")
        );
        assert!(!format!("{r:?}").contains("\"b\""));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(
            back["properties"]["credentials"],
            odd["properties"]["credentials"]
        );

        let aad = json!({"properties": {"category": "ApiManagement", "authType": "AAD", "target": "https://x"}});
        let r: ConnectionResource = serde_json::from_value(aad).unwrap();
        assert_eq!(r.properties.auth, ConnectionAuth::Aad { audience: None });
    }

    #[test]
    fn reference_examples_parse() {
        for text in [
            include_str!("../../tests/data/ProjectConnection_list_2025-09-01.json"),
            include_str!("../../tests/data/ProjectConnection_create_2025-09-01.json"),
            include_str!("../../tests/data/AccountConnection_list_2025-04-01-preview.json"),
            include_str!("../../tests/data/AccountConnection_get_2026-01-15-preview.json"),
            include_str!("../../tests/data/AccountConnection_create_2026-05-01.json"),
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let responses = &v["responses"]["200"]["body"];
            if let Some(items) = responses.get("value") {
                let page: ConnectionsPage = serde_json::from_value(responses.clone()).unwrap();
                assert_eq!(page.value.len(), items.as_array().unwrap().len());
            } else {
                let _: ConnectionResource = serde_json::from_value(responses.clone()).unwrap();
            }
        }
    }
}
