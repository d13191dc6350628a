#![warn(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

//! Clients for Microsoft Foundry "bring your own AI gateway", shaped like the Azure SDK for
//! Rust clients (`XClient::new(endpoint, credential, options)`, one async method per REST
//! operation, `Default` options):
//!
//! - [`ConnectionsClient`]: ARM connections of a project (`ProjectConnections_*`) or of its
//!   account (`AccountConnections_*`, [`ConnectionScope`]), token scope [`ARM_SCOPE`],
//!   api-version `2026-09-01` by default (`2025-12-01` selectable).
//! - [`ProjectClient`]: the project data plane: agent versions (`api-version=v1`),
//!   conversations and responses (`/openai/v1`), scope [`DATA_PLANE_SCOPE`].
//! - [`probe::Prober`]: calls a gateway the way Foundry does (discovery, chat completion,
//!   OAuth2 token) and returns [`probe::ProbeOutcome`] `Active` or `Inactive { cause, message }`.
//! - [`credentials`]: `azure_identity` credentials (client secret, workload identity from a
//!   file or a callback, managed identity) wired to our [`Transport`] and a configurable
//!   authority host, and [`StaticTokenCredential`] for the local emulator.
//!
//! Every call returns [`Error`], which carries the HTTP status, the service error code and
//! message, and the server's retry hint; [`Error::is_retryable`] and [`Error::label`] drive the
//! controllers' backoff and metrics. Idempotent calls (GET, PUT, DELETE) are retried a little
//! in-process ([`RetryOptions`]), never sooner than the server's hint; POSTs are sent once.
//! Nothing here logs or formats a key, secret or token.
//!
//! Every byte read from the network is hostile input (tenants choose gateway and token URLs):
//! each body is read through one capped reader ([`TransportOptions::max_body_bytes`], 1 MiB
//! by default), numbers from the wire are clamped (token lifetimes, retry hints), model lists
//! are bounded ([`probe::MAX_MODELS`]), every request has a timeout, addresses in
//! [`TransportOptions::denied_networks`] (link-local and cloud metadata addresses by default)
//! are never contacted, and probe messages are in our words only. Arithmetic, indexing and
//! panics are linted in this crate (`clippy::arithmetic_side_effects`,
//! `clippy::indexing_slicing`, `clippy::panic`).
//!
//! # Wiring it to the local emulator, a real gateway and a test token server
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use foundry_gateway_client::probe::{GatewayAuth, GatewaySettings, ProbeMode, ProbeRequest, Prober};
//! use foundry_gateway_client::*;
//!
//! # async fn demo(ca_pem: Vec<u8>) -> Result<()> {
//! // One transport per process; the extra CA (a test CA, a corporate CA) applies to every
//! // client, the credentials and the probe.
//! let transport = Transport::new(TransportOptions {
//!     extra_root_ca_pem: Some(ca_pem),
//!     ..Default::default()
//! })?;
//!
//! // The emulator accepts a static token; loopback endpoints may be plain http.
//! let credential = StaticTokenCredential::new("emulator-token");
//! // Or a real identity against a (test) authority host:
//! let _sp = credentials::client_secret_credential(
//!     "tenant", "client-id", "client-secret",
//!     &CredentialOptions {
//!         // Token requests go to {authority_host}/{tenant}/oauth2/v2.0/token.
//!         authority_host: Some(Url::parse("https://127.0.0.1:8443").map_err(|_| Error::invalid_input("demo", "url"))?),
//!         transport: Some(transport.clone()),
//!         ..Default::default()
//!     },
//! )?;
//!
//! let client_options = ClientOptions { transport: Some(transport.clone()), ..Default::default() };
//! let project = ProjectResourceId::new("sub", "rg", "account", "project")?;
//! let connections = ConnectionsClient::new(
//!     "http://127.0.0.1:7070",
//!     project,
//!     credential.clone(),
//!     Some(ConnectionsClientOptions { client_options: client_options.clone(), ..Default::default() }),
//! )?;
//! let _existing = connections.get("litellm").await?; // Ok(None) when absent
//!
//! let agents = ProjectClient::new(
//!     "http://127.0.0.1:7070/api/projects/project",
//!     credential,
//!     Some(ProjectClientOptions { client_options, ..Default::default() }),
//! )?;
//! let versions = agents.list_versions("my-agent", &ListOptions::default()).await?;
//! # let _ = versions;
//!
//! // Probe a LiteLLM gateway the way Foundry would call it.
//! let prober = Prober::new(transport);
//! let outcome = prober
//!     .probe(&ProbeRequest {
//!         settings: GatewaySettings {
//!             target: "http://127.0.0.1:4000".into(),
//!             category: ConnectionCategory::ModelGateway,
//!             deployment_in_path: false,
//!             inference_api_version: None,
//!             deployment_api_version: None,
//!             discovery: None,
//!             static_models: vec!["gpt-4o".into()],
//!             model_formats: Default::default(),
//!             custom_headers: Default::default(),
//!             auth: GatewayAuth::ApiKey {
//!                 key: SecretString::new("sk-master"),
//!                 auth_config: Some(AuthConfig::new("Authorization", "Bearer {api_key}")),
//!             },
//!         },
//!         mode: ProbeMode::Inference,
//!         model: Some("gpt-4o".into()),
//!         timeout: Duration::from_secs(10),
//!     })
//!     .await?;
//! assert!(outcome.is_active());
//! # Ok(()) }
//! ```
//!
//! Conventions: `get`-style calls return `Ok(None)` on 404; deletes treat 404 (and 204) as
//! done; list calls come as a page call and a collect-all helper. The metrics hook
//! ([`Observer`]) receives one [`CallRecord`] per HTTP attempt (operation, status, outcome
//! label, duration, attempt) and nothing else.

pub mod connections;
pub mod credentials;
mod error;
mod netpolicy;
mod pipeline;
pub mod probe;
pub mod project;
mod transport;
mod types;
mod urls;

pub use azure_core::credentials::{AccessToken, Secret, TokenCredential};
pub use connections::{
    AuthConfig, ConnectionAuth, ConnectionCategory, ConnectionProperties, ConnectionResource,
    ConnectionScope, ConnectionsClient, ConnectionsClientOptions, ConnectionsPage,
    DeploymentProvider, DiscoveryOverrides, GatewayMetadata, ListConnectionsOptions,
    ModelDiscovery, ModelFormat, ProjectResourceId, StaticModel,
};
pub use credentials::{
    ARM_SCOPE, COGNITIVE_SERVICES_AUDIENCE, CredentialOptions, DATA_PLANE_SCOPE,
    StaticTokenCredential,
};
pub use error::{BoxError, Error, ErrorKind, MAX_RETRY_AFTER, Result, retry_after_from_headers};
pub use netpolicy::{DEFAULT_DENIED_NETWORKS, IpNetwork};
pub use pipeline::{CallRecord, ClientOptions, Observer, RetryOptions};
pub use project::{
    AgentDefinition, AgentObject, AgentReference, AgentResponse, AgentVersionObject, Conversation,
    CreateAgentVersionRequest, CreateConversationRequest, CreateResponseRequest, ListOptions,
    ListPage, ProjectClient, ProjectClientOptions, PromptAgentDefinition, Tool,
};
pub use transport::{DEFAULT_MAX_BODY_BYTES, Transport, TransportOptions};
pub use types::SecretString;
pub use url::Url;
