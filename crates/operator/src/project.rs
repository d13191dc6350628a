//! FoundryProject controller and project resolution.
//!
//! Pipeline: resolve (ARM id, endpoints, credential from the identity; Secrets of this
//! namespace only) → an authenticated read (one ARM list page of connections) → status.
//! Nothing is created in Azure. The resolved clients are cached per project so that tokens and
//! HTTP connections are reused by the GatewayConnection and PromptAgent controllers.

use std::sync::Arc;
use std::time::Instant;

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::project::{FoundryProjectSpec, ProjectIdentity};
use foundry_gateway_api::{FoundryProject, FoundryProjectStatus};
use foundry_gateway_client::connections::{
    ConnectionScope as ClientConnectionScope, ConnectionsClientOptions, ProjectResourceId,
};
use foundry_gateway_client::project::ProjectClientOptions;
use foundry_gateway_client::{
    BoxError, ConnectionsClient, CredentialOptions, ProjectClient, TokenCredential, Url,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use crate::context::{Context, REQUESTED_AT_ANNOTATION, same_status};
use crate::controller::{ObjectKey, RefKind, RetryKey};
use crate::failure::Failure;
use crate::status::{Conditions, Outcome};

/// Default ARM endpoint.
pub const DEFAULT_MANAGEMENT_ENDPOINT: &str = "https://management.azure.com";
/// Default ARM api-version of project connections.
pub const DEFAULT_ARM_API_VERSION: &str =
    foundry_gateway_client::connections::DEFAULT_ARM_API_VERSION;
/// Default Entra authority (Azure public cloud).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Audience of workload identity tokens exchanged with Entra.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

pub use crate::clients::{ProjectResolver, ResolvedProject};

/// ARM id and data-plane endpoint of a spec.
pub fn project_identity(spec: &FoundryProjectSpec) -> Result<(ProjectResourceId, String), Failure> {
    let invalid = |m: String| Failure::permanent(reasons::INVALID_SPEC, m);
    let id = match &spec.arm_id {
        Some(arm_id) => ProjectResourceId::parse(arm_id)
            .map_err(|e| invalid(format!("spec.armId is not a project id: {}", e.message())))?,
        None => ProjectResourceId::new(
            spec.subscription_id.clone().unwrap_or_default(),
            spec.resource_group.clone().unwrap_or_default(),
            spec.account.clone().unwrap_or_default(),
            spec.project.clone().unwrap_or_default(),
        )
        .map_err(|e| invalid(format!("the project fields are not valid: {}", e.message())))?,
    };
    let endpoint = spec.endpoint.clone().unwrap_or_else(|| {
        format!(
            "https://{}.services.ai.azure.com/api/projects/{}",
            id.account, id.project
        )
    });
    Ok((id, endpoint))
}

fn spec_fingerprint(project: &FoundryProject) -> String {
    format!(
        "{}:{}",
        project.metadata.uid.as_deref().unwrap_or(""),
        serde_json::to_string(&project.spec).unwrap_or_default()
    )
}

/// Returns the resolved project, building it when the spec changed. `refresh` re-reads the
/// identity's Secret even when the spec did not change (the project controller does this, so a
/// rotated client secret reaches every controller).
pub async fn resolve(
    ctx: &Context,
    project: &FoundryProject,
    refresh: bool,
) -> Result<Arc<ResolvedProject>, Failure> {
    let namespace = project.namespace().unwrap_or_default();
    let key = ObjectKey::new(&namespace, &project.name_any());
    let spec_fp = spec_fingerprint(project);
    if !refresh && let Some(found) = ctx.projects.get_any(&key, &spec_fp) {
        return Ok(found);
    }
    let (resource_id, endpoint) = project_identity(&project.spec)?;
    check_policy(ctx, &namespace, &project.spec, &endpoint)?;
    let secret = match &project.spec.identity.client_secret {
        Some(cs) => Some(
            read_secret_key(
                ctx,
                &namespace,
                &cs.secret_ref.name,
                &cs.secret_ref.key,
                &key,
            )
            .await?,
        ),
        None => None,
    };
    let fingerprint = format!(
        "{spec_fp}#{}",
        secret
            .as_ref()
            .map(|(_, version)| version.as_str())
            .unwrap_or("")
    );
    if let Some(found) = ctx.projects.get(&key, &fingerprint) {
        return Ok(found);
    }
    let options = CredentialOptions {
        authority_host: match &project.spec.authority_host {
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
    };
    let credential = credential(
        ctx,
        &namespace,
        &project.spec.identity,
        secret.map(|(value, _)| value),
        &options,
    )?;
    let management = project
        .spec
        .management_endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_MANAGEMENT_ENDPOINT.to_owned());
    let connections_options = || ConnectionsClientOptions {
        api_version: project
            .spec
            .arm_api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_ARM_API_VERSION.to_owned()),
        client_options: ctx.client_options(),
    };
    let connections = ConnectionsClient::new(
        &management,
        resource_id.clone(),
        Arc::clone(&credential),
        Some(connections_options()),
    )
    .map_err(|e| Failure::from_foundry("set up the ARM client", &e))?;
    let account_connections = ConnectionsClient::with_scope(
        &management,
        resource_id.clone(),
        ClientConnectionScope::Account,
        Arc::clone(&credential),
        Some(connections_options()),
    )
    .map_err(|e| Failure::from_foundry("set up the ARM client", &e))?;
    let data = ProjectClient::new(
        &endpoint,
        Arc::clone(&credential),
        Some(ProjectClientOptions {
            client_options: ctx.client_options(),
            ..ProjectClientOptions::default()
        }),
    )
    .map_err(|e| Failure::from_foundry("set up the project client", &e))?;
    let resolved = Arc::new(ResolvedProject {
        arm_id: resource_id.to_string(),
        resource_id,
        endpoint,
        connections,
        account_connections,
        data,
        credential,
    });
    ctx.projects.put(key, fingerprint, Arc::clone(&resolved));
    Ok(resolved)
}

/// What the installation allows: the hosts that will receive this identity's tokens and the
/// identity itself. Checked before any Secret is read or any token is requested.
fn check_policy(
    ctx: &Context,
    namespace: &str,
    spec: &FoundryProjectSpec,
    endpoint: &str,
) -> Result<(), Failure> {
    let policy = &ctx.policy;
    let host = |e: String| Failure::permanent(reasons::HOST_NOT_ALLOWED, e);
    policy
        .foundry_hosts
        .check("spec.endpoint", endpoint)
        .map_err(host)?;
    policy
        .arm_hosts
        .check(
            "spec.managementEndpoint",
            spec.management_endpoint
                .as_deref()
                .unwrap_or(DEFAULT_MANAGEMENT_ENDPOINT),
        )
        .map_err(host)?;
    policy
        .authority_hosts
        .check(
            "spec.authorityHost",
            spec.authority_host
                .as_deref()
                .unwrap_or(DEFAULT_AUTHORITY_HOST),
        )
        .map_err(host)?;
    if let Some(mi) = &spec.identity.managed_identity {
        policy
            .managed_identities
            .check(namespace, mi.client_id.as_deref())
            .map_err(|e| Failure::permanent(reasons::IDENTITY_NOT_ALLOWED, e))?;
    }
    if spec.identity.operator_default.is_some() && !ctx.settings.allow_operator_default_identity {
        return Err(Failure::permanent(
            reasons::IDENTITY_NOT_ALLOWED,
            "identity.operatorDefault is not allowed by this installation (flag --allow-operator-default-identity, Helm value allowOperatorDefaultIdentity); use workloadIdentity or clientSecret",
        ));
    }
    Ok(())
}

fn credential(
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

/// Reads one key of a Secret of `namespace`; returns the value and the Secret's resourceVersion.
/// A missing Secret or key is transient during the grace period, then permanent.
pub async fn read_secret_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    owner_key: &ObjectKey,
) -> Result<(String, String), Failure> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api.get_opt(name).await?;
    let missing_key = RetryKey::reference(owner_key, RefKind::Secret, name, key);
    let value = secret.as_ref().and_then(|s| {
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
    });
    match value {
        Some(value) => {
            ctx.found(&missing_key);
            let version = secret
                .and_then(|s| s.metadata.resource_version)
                .unwrap_or_default();
            Ok((value, version))
        }
        None => {
            let what = if secret.is_some() {
                format!("Secret {name} has no key {key:?}")
            } else {
                format!("Secret {name} does not exist in namespace {namespace}")
            };
            if ctx.missing_past_grace(&missing_key) {
                Err(Failure::permanent(
                    reasons::SECRET_NOT_FOUND,
                    format!("{what}; create it or fix the reference"),
                ))
            } else {
                Err(Failure::Transient {
                    reason: reasons::SECRET_NOT_FOUND.to_owned(),
                    message: format!("{what}; waiting for it"),
                    retry_after: None,
                })
            }
        }
    }
}

/// Reconciles one FoundryProject.
#[instrument(skip_all, fields(kind = "FoundryProject", namespace = project.namespace().unwrap_or_default(), name = project.name_any()))]
pub async fn reconcile(
    project: Arc<FoundryProject>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    let started = Instant::now();
    let namespace = project.namespace().unwrap_or_default();
    let key = ObjectKey::new(&namespace, &project.name_any());
    if project.meta().deletion_timestamp.is_some() {
        ctx.projects.forget(&key);
        return Ok(Action::await_change());
    }
    if project.spec.suspend == Some(true) {
        return Ok(Action::await_change());
    }
    let generation = project.metadata.generation.unwrap_or(0);
    let live = project.status.clone().unwrap_or_default();
    if live.observed_generation != Some(generation) {
        // A new generation never looks finished: say so before any slow work (DESIGN §3 rule 3).
        let progressing = FoundryProjectStatus {
            observed_generation: Some(generation),
            conditions: Conditions::new_generation(&live.conditions, generation, Timestamp::now()),
            ..live
        };
        crate::apply_status::<FoundryProject>(
            &ctx.client,
            &namespace,
            &project.name_any(),
            &progressing,
        )
        .await?;
    }
    let result = async {
        let resolved = resolve(&ctx, &project, true).await?;
        resolved
            .connections
            .list_page(None, None)
            .await
            .map_err(|e| Failure::from_foundry("read the project's connections", &e))?;
        Ok::<_, Failure>(resolved)
    }
    .await;
    let mut conditions = Conditions::from_live(
        project
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
    );
    let now = Timestamp::now();
    let (arm_id, endpoint) = match project_identity(&project.spec) {
        Ok((id, endpoint)) => (Some(id.to_string()), Some(endpoint)),
        Err(_) => (None, None),
    };
    let action = match &result {
        Ok(resolved) => {
            ctx.reset_backoff(&key);
            conditions.apply_outcome(
                &Outcome::Ready {
                    message: format!("Authenticated to project {}", resolved.resource_id.project),
                },
                generation,
                now,
            );
            Action::requeue(ctx.settings.resync)
        }
        Err(failure) => {
            ctx.metrics
                .observe_failure("FoundryProject", failure.label());
            conditions.apply_outcome(&failure.outcome(), generation, now);
            match failure {
                Failure::Transient { retry_after, .. } => {
                    Action::requeue(ctx.backoff(&key, *retry_after))
                }
                Failure::Permanent { .. } => Action::await_change(),
                Failure::Waiting { .. } => Action::requeue(ctx.settings.resync),
            }
        }
    };
    let status = FoundryProjectStatus {
        observed_generation: Some(generation),
        conditions: conditions.into_vec(),
        arm_id,
        endpoint,
        last_handled_reconcile_at: project.annotations().get(REQUESTED_AT_ANNOTATION).cloned(),
    };
    if !same_status(project.status.as_ref(), &status) {
        crate::apply_status::<FoundryProject>(
            &ctx.client,
            &namespace,
            &project.name_any(),
            &status,
        )
        .await?;
        if let Ok(resolved) = &result {
            info!(project = %resolved.arm_id, "Authenticated to Foundry project");
        }
    }
    ctx.metrics
        .observe_reconcile("FoundryProject", started.elapsed());
    Ok(action)
}

/// Requeue policy for errors that escaped the reconcile (status could not be written).
pub fn error_policy(
    project: Arc<FoundryProject>,
    error: &kube::Error,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(%error, name = %project.name_any(), "Reconcile failed");
    Action::requeue(ctx.backoff(ObjectKey::of(project.as_ref()), None))
}

/// The FoundryProject `name` of `namespace`: from the store, else from the apiserver (the store
/// may not have loaded yet, e.g. right after a leader change). Used where "gone" must be true
/// before acting on it, such as deciding to leave a Foundry resource behind on deletion.
pub async fn find(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<FoundryProject>>, kube::Error> {
    let reference =
        kube::runtime::reflector::ObjectRef::<FoundryProject>::new(name).within(namespace);
    if let Some(project) = ctx.stores.projects.get(&reference) {
        return Ok(Some(project));
    }
    let api: Api<FoundryProject> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}
