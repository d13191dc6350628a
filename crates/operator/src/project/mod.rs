//! FoundryProject controller and project resolution.
//!
//! Pipeline ([`reconcile`]): validate (ARM id, endpoints, what the installation allows:
//! [`identity`]) → resolve (the identity's Secret of this namespace only, the credential
//! ([`credentials`]), the Foundry clients, cached: [`resolve`]) → sync (one authenticated ARM
//! read: a list page of connections) → report (pure: [`report`]). Nothing is created in Azure.
//! The resolved clients are cached per project so that tokens and HTTP connections are reused by
//! the GatewayConnection and PromptAgent controllers.

mod credentials;
mod identity;
pub mod report;
mod resolve;

use std::sync::Arc;
use std::time::Instant;

use foundry_gateway_api::{FoundryProject, FoundryProjectStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument};

use crate::context::{Context, same_status};
use crate::controller::{AtStep, Failed, ObjectKey, Step};
use crate::failure::Failure;
use crate::status::Conditions;

pub use self::identity::project_identity;
pub use self::resolve::{resolve, usable};
pub use crate::clients::{ProjectResolver, ResolvedProject};
pub use crate::controller::read_secret_key;

const KIND: &str = "FoundryProject";

/// Default ARM endpoint.
pub const DEFAULT_MANAGEMENT_ENDPOINT: &str = "https://management.azure.com";
/// Default ARM api-version of project connections.
pub const DEFAULT_ARM_API_VERSION: &str =
    foundry_gateway_client::connections::DEFAULT_ARM_API_VERSION;
/// Default Entra authority (Azure public cloud).
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Audience of workload identity tokens exchanged with Entra.
pub const WORKLOAD_IDENTITY_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Reconciles one FoundryProject.
#[instrument(skip_all, fields(kind = KIND, namespace = project.namespace().unwrap_or_default(), name = project.name_any()))]
pub async fn reconcile(
    project: Arc<FoundryProject>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    let started = Instant::now();
    let key = ObjectKey::of(project.as_ref());
    if project.meta().deletion_timestamp.is_some() {
        ctx.projects.forget(&key);
        return Ok(Action::await_change());
    }
    if project.spec.suspend == Some(true) {
        return Ok(Action::await_change());
    }
    announce_generation(&ctx, &project).await?;
    let result = authenticate(&ctx, &project).await;
    let action = requeue(&ctx, &key, &result);
    let status = report::status(&project, &result, Timestamp::now());
    if !same_status(project.status.as_ref(), &status) {
        crate::apply_status::<FoundryProject>(&ctx.client, &key.namespace, &key.name, &status)
            .await?;
        if let Ok(resolved) = &result {
            info!(project = %resolved.arm_id, "Authenticated to Foundry project");
        }
    }
    ctx.metrics.observe_reconcile(KIND, started.elapsed());
    Ok(action)
}

/// A new generation never looks finished: say so before any slow work (the status contract in
/// docs/ARCHITECTURE.md).
async fn announce_generation(ctx: &Context, project: &FoundryProject) -> Result<(), kube::Error> {
    let generation = project.metadata.generation.unwrap_or(0);
    let live = project.status.clone().unwrap_or_default();
    if live.observed_generation == Some(generation) {
        return Ok(());
    }
    let progressing = FoundryProjectStatus {
        observed_generation: Some(generation),
        conditions: Conditions::new_generation(&live.conditions, generation, Timestamp::now()),
        ..live
    };
    let (namespace, name) = (project.namespace().unwrap_or_default(), project.name_any());
    crate::apply_status::<FoundryProject>(&ctx.client, &namespace, &name, &progressing).await
}

/// Steps resolve and sync: the project's clients, proven by one authenticated ARM read.
async fn authenticate(
    ctx: &Context,
    project: &FoundryProject,
) -> Result<Arc<ResolvedProject>, Failed> {
    let resolved = resolve(ctx, project, true).await.at(Step::Resolve)?;
    resolved
        .connections
        .list_page(None, None)
        .await
        .map_err(|e| Failure::from_foundry("read the project's connections", &e))
        .at(Step::Sync)?;
    Ok(resolved)
}

/// When to look again: at the resync when authenticated, with backoff after a transient failure,
/// never by itself after a permanent one.
fn requeue(
    ctx: &Context,
    key: &ObjectKey,
    result: &Result<Arc<ResolvedProject>, Failed>,
) -> Action {
    match result {
        Ok(_) => {
            ctx.reset_backoff(key);
            Action::requeue(ctx.settings.resync)
        }
        Err(Failed { step, failure }) => {
            ctx.metrics.observe_failure(KIND, failure.label());
            tracing::debug!(%step, reason = failure.label(), "FoundryProject step failed");
            match failure {
                Failure::Transient { retry_after, .. } => {
                    Action::requeue(ctx.backoff(key, *retry_after))
                }
                Failure::Permanent { .. } => Action::await_change(),
                Failure::Waiting { .. } => Action::requeue(ctx.settings.resync),
            }
        }
    }
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
