//! Credentials: `azure_identity` credentials wired to our [`Transport`] (so an extra root CA
//! applies to token calls too) and to a configurable authority host, plus a
//! [`StaticTokenCredential`] for the local emulator.
//!
//! The token endpoint `azure_identity` calls is `{authority_host}/{tenant_id}/oauth2/v2.0/token`;
//! it replaces any path of the authority host (it joins an absolute path), and it insists on
//! `https`. Tokens are cached by the credential per scope set and refreshed 5 minutes before
//! they expire.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{
    ClientMethodOptions, ClientOptions as AzClientOptions, ExponentialRetryOptions,
    RetryOptions as AzRetryOptions, Transport as AzTransport,
};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use url::Url;

use crate::error::{BoxError, Error, Result};
use crate::transport::Transport;

/// Scope of Azure Resource Manager (project connections).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// Scope of the Foundry project data plane (agents, conversations, responses).
pub const DATA_PLANE_SCOPE: &str = "https://ai.azure.com/.default";
/// Audience Foundry uses for Entra ID auth to an APIM gateway.
pub const COGNITIVE_SERVICES_AUDIENCE: &str = "https://cognitiveservices.azure.com";

/// The `.default` scope of an audience: `https://x` and `https://x/` give `https://x/.default`.
pub fn scope_for_audience(audience: &str) -> String {
    if audience.ends_with("/.default") {
        audience.to_owned()
    } else {
        format!("{}/.default", audience.trim_end_matches('/'))
    }
}

/// Options of the credential constructors.
#[derive(Clone, Debug)]
pub struct CredentialOptions {
    /// Authority host, e.g. `https://login.microsoftonline.com` (default), a sovereign cloud's
    /// host, or a local test token server. Must be `https`; its path is ignored.
    pub authority_host: Option<Url>,
    /// Transport for the token calls (carries the extra root CA). `None` builds a default one.
    pub transport: Option<Transport>,
    /// Timeout of one token request (default 30 s).
    pub timeout: Duration,
    /// Retries of the token request inside `azure_core` (default 2, at most 10 s in total).
    pub max_retries: u32,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        Self {
            authority_host: None,
            transport: None,
            timeout: Duration::from_secs(30),
            max_retries: 2,
        }
    }
}

impl CredentialOptions {
    /// The `azure_core` client options these options stand for.
    pub fn azure_client_options(&self) -> Result<AzClientOptions> {
        let transport = match &self.transport {
            Some(t) => t.clone(),
            None => Transport::default_transport()?,
        };
        let mut options = AzClientOptions {
            transport: Some(AzTransport::new(transport.azure_http_client(self.timeout))),
            retry: AzRetryOptions::exponential(ExponentialRetryOptions {
                initial_delay: azure_core::time::Duration::milliseconds(250),
                max_retries: self.max_retries,
                max_total_elapsed: azure_core::time::Duration::seconds(10),
                max_delay: azure_core::time::Duration::seconds(4),
            }),
            ..Default::default()
        };
        if let Some(host) = &self.authority_host {
            if host.scheme() != "https" {
                return Err(Error::invalid_input(
                    "Credential_New",
                    "the authority host must be an https URL",
                ));
            }
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.as_str().trim_end_matches('/').to_owned();
            options.cloud = Some(Arc::new(CloudConfiguration::Custom(custom)));
        }
        Ok(options)
    }
}

fn config_error(err: azure_core::Error) -> Error {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("").to_owned();
    Error::invalid_input("Credential_New", first).with_source(err)
}

/// A service principal with a client secret (`ClientSecretCredential`).
pub fn client_secret_credential(
    tenant_id: &str,
    client_id: &str,
    client_secret: &str,
    options: &CredentialOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let cred = ClientSecretCredential::new(
        tenant_id,
        client_id.to_owned(),
        Secret::new(client_secret.to_owned()),
        Some(ClientSecretCredentialOptions {
            client_options: options.azure_client_options()?,
        }),
    )
    .map_err(config_error)?;
    Ok(cred)
}

/// Workload identity with a projected ServiceAccount token file (`WorkloadIdentityCredential`;
/// the file is re-read every 10 minutes, so a kubelet-rotated token is picked up).
pub fn workload_identity_credential_from_file(
    tenant_id: &str,
    client_id: &str,
    token_file: impl Into<PathBuf>,
    options: &CredentialOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let cred = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: options.azure_client_options()?,
        },
        client_id: Some(client_id.to_owned()),
        tenant_id: Some(tenant_id.to_owned()),
        token_file_path: Some(token_file.into()),
    }))
    .map_err(config_error)?;
    Ok(cred)
}

/// A boxed future yielding a client assertion.
pub type AssertionFuture =
    Pin<Box<dyn Future<Output = std::result::Result<String, BoxError>> + Send + 'static>>;

/// Workload identity whose assertion comes from a callback, e.g. a ServiceAccount token the
/// operator requests through the Kubernetes TokenRequest API (audience
/// `api://AzureADTokenExchange`). The callback runs each time Entra ID must be asked for a new
/// token (the access token is cached until 5 minutes before it expires), so it may return a
/// different assertion every time. This is `azure_identity::ClientAssertionCredential`.
pub fn workload_identity_credential<F, Fut>(
    tenant_id: &str,
    client_id: &str,
    assertion: F,
    options: &CredentialOptions,
) -> Result<Arc<dyn TokenCredential>>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<String, BoxError>> + Send + 'static,
{
    let source = CallbackAssertion {
        callback: Arc::new(move || -> AssertionFuture { Box::pin(assertion()) }),
    };
    let cred = ClientAssertionCredential::new(
        tenant_id.to_owned(),
        client_id.to_owned(),
        source,
        Some(ClientAssertionCredentialOptions {
            client_options: options.azure_client_options()?,
        }),
    )
    .map_err(config_error)?;
    Ok(cred)
}

type AssertionCallback = Arc<dyn Fn() -> AssertionFuture + Send + Sync>;

struct CallbackAssertion {
    callback: AssertionCallback,
}

impl fmt::Debug for CallbackAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackAssertion").finish_non_exhaustive()
    }
}

#[async_trait]
impl ClientAssertion for CallbackAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        (self.callback)().await.map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!("could not obtain the workload identity assertion: {e}"),
            )
        })
    }
}

/// A managed identity (system-assigned, or user-assigned by client id).
pub fn managed_identity_credential(
    client_id: Option<&str>,
    options: &CredentialOptions,
) -> Result<Arc<dyn TokenCredential>> {
    let cred = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        user_assigned_id: client_id.map(|c| UserAssignedId::ClientId(c.to_owned())),
        client_options: options.azure_client_options()?,
    }))
    .map_err(config_error)?;
    Ok(cred)
}

/// A fixed bearer token, for the local Foundry emulator (which accepts a configured static
/// token). Its `Debug` does not print the token.
pub struct StaticTokenCredential {
    token: Secret,
    lifetime: Duration,
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenCredential")
            .field("token", &"***")
            .finish()
    }
}

impl StaticTokenCredential {
    /// A credential that always returns `token`, whatever the scope.
    pub fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            token: Secret::new(token.into()),
            lifetime: Duration::from_secs(3600),
        })
    }
}

#[async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let now = OffsetDateTime::now_utc();
        let lifetime = azure_core::time::Duration::try_from(self.lifetime)
            .unwrap_or(azure_core::time::Duration::HOUR);
        Ok(AccessToken::new(
            self.token.secret().to_owned(),
            now.checked_add(lifetime).unwrap_or(now),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_audiences() {
        assert_eq!(
            scope_for_audience(COGNITIVE_SERVICES_AUDIENCE),
            "https://cognitiveservices.azure.com/.default"
        );
        assert_eq!(
            scope_for_audience("https://search.azure.com/"),
            "https://search.azure.com/.default"
        );
        assert_eq!(scope_for_audience(ARM_SCOPE), ARM_SCOPE);
    }

    #[test]
    fn static_token_debug_is_redacted() {
        let c = StaticTokenCredential::new("sekret-token");
        assert!(!format!("{c:?}").contains("sekret"));
    }

    #[test]
    fn plain_http_authority_is_refused() {
        let options = CredentialOptions {
            authority_host: Some(Url::parse("http://127.0.0.1:1").unwrap()),
            ..Default::default()
        };
        let err = client_secret_credential("t", "c", "s", &options).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn static_token_is_returned() {
        let c = StaticTokenCredential::new("abc");
        let t = c.get_token(&[ARM_SCOPE], None).await.unwrap();
        assert_eq!(t.token.secret(), "abc");
    }
}
