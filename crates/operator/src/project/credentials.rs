//! The project identity's credential: workload identity (a TokenRequest for a ServiceAccount of
//! the project's own namespace), client secret, managed identity, or the operator's own.

use std::sync::Arc;

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::project::{FoundryProjectSpec, ProjectIdentity};
use foundry_gateway_client::{BoxError, CredentialOptions, TokenCredential, Url};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

use super::WORKLOAD_IDENTITY_AUDIENCE;
use crate::context::Context;
use crate::failure::Failure;

/// The credential options of a spec: its authority host, the operator's transport.
pub(super) fn options(
    ctx: &Context,
    spec: &FoundryProjectSpec,
) -> Result<CredentialOptions, Failure> {
    Ok(CredentialOptions {
        authority_host: match &spec.authority_host {
            Some(host) => Some(Url::parse(host).map_err(|e| {
                Failure::permanent(
                    reasons::INVALID_SPEC,
                    format!("spec.authorityHost is not a URL: {e}"),
                )
            })?),
            None => None,
        },
        transport: Some(ctx.transport.clone()),
        ..CredentialOptions::default()
    })
}

pub(super) fn credential(
    ctx: &Context,
    namespace: &str,
    identity: &ProjectIdentity,
    client_secret: Option<String>,
    options: &CredentialOptions,
) -> Result<Arc<dyn TokenCredential>, Failure> {
    let built = if let Some(wi) = &identity.workload_identity {
        let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), namespace);
        let service_account = wi.service_account_name.clone();
        foundry_gateway_client::credentials::workload_identity_credential(
            &wi.tenant_id,
            &wi.client_id,
            move || {
                let api = api.clone();
                let service_account = service_account.clone();
                async move { service_account_token(&api, &service_account).await }
            },
            options,
        )
    } else if let Some(cs) = &identity.client_secret {
        foundry_gateway_client::credentials::client_secret_credential(
            &cs.tenant_id,
            &cs.client_id,
            client_secret.as_deref().unwrap_or_default(),
            options,
        )
    } else if let Some(mi) = &identity.managed_identity {
        foundry_gateway_client::credentials::managed_identity_credential(
            mi.client_id.as_deref(),
            options,
        )
    } else if identity.operator_default.is_some() {
        if !ctx.settings.allow_operator_default_identity {
            return Err(Failure::permanent(
                reasons::INVALID_SPEC,
                "identity.operatorDefault is not allowed by this installation (Helm value allowOperatorDefaultIdentity); use workloadIdentity, clientSecret or managedIdentity",
            ));
        }
        operator_identity(options)
    } else {
        return Err(Failure::permanent(
            reasons::INVALID_SPEC,
            "spec.identity sets no identity",
        ));
    };
    built.map_err(|e| Failure::from_foundry("set up the project credential", &e))
}

/// The operator's own identity: its workload identity when the pod has one, else managed identity.
fn operator_identity(
    options: &CredentialOptions,
) -> foundry_gateway_client::Result<Arc<dyn TokenCredential>> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        env("AZURE_TENANT_ID"),
        env("AZURE_CLIENT_ID"),
        env("AZURE_FEDERATED_TOKEN_FILE"),
    ) {
        (Some(tenant), Some(client), Some(file)) => {
            foundry_gateway_client::credentials::workload_identity_credential_from_file(
                &tenant, &client, file, options,
            )
        }
        (_, client, _) => foundry_gateway_client::credentials::managed_identity_credential(
            client.as_deref(),
            options,
        ),
    }
}

/// A token of a ServiceAccount of the project's own namespace, for Entra workload identity.
async fn service_account_token(api: &Api<ServiceAccount>, name: &str) -> Result<String, BoxError> {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![WORKLOAD_IDENTITY_AUDIENCE.to_owned()]),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let response = api
        .create_token_request(name, &PostParams::default(), &request)
        .await?;
    response.status.and_then(|s| s.token).ok_or_else(|| {
        format!("the TokenRequest for ServiceAccount {name} returned no token").into()
    })
}
