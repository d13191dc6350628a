//! Step "resolve" of the FoundryProject controller, also used by the other controllers to reach
//! a project: the identity's Secret, the credential and the Foundry clients, cached per project
//! and rebuilt only when the spec or the Secret changed.

use std::sync::Arc;

use foundry_gateway_api::FoundryProject;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::project::FoundryProjectSpec;
use foundry_gateway_client::connections::{
    ConnectionScope as ClientConnectionScope, ConnectionsClientOptions, ProjectResourceId,
};
use foundry_gateway_client::project::ProjectClientOptions;
use foundry_gateway_client::{ConnectionsClient, ProjectClient, TokenCredential};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::identity::{check_policy, project_identity, spec_fingerprint};
use super::{DEFAULT_ARM_API_VERSION, DEFAULT_MANAGEMENT_ENDPOINT, ResolvedProject, credentials};
use crate::context::Context;
use crate::controller::{ObjectKey, read_secret_key};
use crate::failure::Failure;

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
        secret.as_ref().map_or("", |(_, version)| version.as_str())
    );
    if let Some(found) = ctx.projects.get(&key, &fingerprint) {
        return Ok(found);
    }
    let options = credentials::options(ctx, &project.spec)?;
    let secret = secret.map(|(value, _)| value);
    let credential =
        credentials::credential(ctx, &namespace, &project.spec.identity, secret, &options)?;
    let resolved = Arc::new(clients(
        ctx,
        &project.spec,
        resource_id,
        endpoint,
        credential,
    )?);
    ctx.projects.put(key, fingerprint, Arc::clone(&resolved));
    Ok(resolved)
}

/// The ARM (project and account connections) and data-plane clients of a project.
fn clients(
    ctx: &Context,
    spec: &FoundryProjectSpec,
    resource_id: ProjectResourceId,
    endpoint: String,
    credential: Arc<dyn TokenCredential>,
) -> Result<ResolvedProject, Failure> {
    let management = spec
        .management_endpoint
        .clone()
        .unwrap_or_else(|| DEFAULT_MANAGEMENT_ENDPOINT.to_owned());
    let connections_options = || ConnectionsClientOptions {
        api_version: spec
            .arm_api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_ARM_API_VERSION.to_owned()),
        client_options: ctx.client_options(),
    };
    let arm = |e: foundry_gateway_client::Error| Failure::from_foundry("set up the ARM client", &e);
    let connections = ConnectionsClient::new(
        &management,
        resource_id.clone(),
        Arc::clone(&credential),
        Some(connections_options()),
    )
    .map_err(arm)?;
    let account_connections = ConnectionsClient::with_scope(
        &management,
        resource_id.clone(),
        ClientConnectionScope::Account,
        Arc::clone(&credential),
        Some(connections_options()),
    )
    .map_err(arm)?;
    let data = ProjectClient::new(
        &endpoint,
        Arc::clone(&credential),
        Some(ProjectClientOptions {
            client_options: ctx.client_options(),
            ..ProjectClientOptions::default()
        }),
    )
    .map_err(|e| Failure::from_foundry("set up the project client", &e))?;
    Ok(ResolvedProject {
        arm_id: resource_id.to_string(),
        resource_id,
        endpoint,
        connections,
        account_connections,
        data,
        credential,
    })
}

/// The FoundryProject `name` of `namespace` as another object uses it: from the store, resolved;
/// Waiting `ProjectNotReady` while it is missing or not usable, whatever the project's own
/// failure (the project reports that itself).
pub async fn usable(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Arc<ResolvedProject>, Failure> {
    let project_ref = ObjectRef::<FoundryProject>::new(name).within(namespace);
    let Some(project) = ctx.stores.projects.get(&project_ref) else {
        return Err(Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!("FoundryProject {name} does not exist in namespace {namespace}"),
        });
    };
    resolve(ctx, &project, false).await.map_err(|f| {
        let (Failure::Permanent { message, .. }
        | Failure::Transient { message, .. }
        | Failure::Waiting { message, .. }) = f;
        Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!("FoundryProject {name} is not usable: {message}"),
        }
    })
}
