//! Step "resolve": the FoundryProject the connection belongs to, and the Secret values its spec
//! refers to (all in the object's namespace).

use std::sync::Arc;

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::{FoundryProject, GatewayConnection};
use kube::runtime::reflector::ObjectRef;

use super::build::ResolvedSecrets;
use super::start::Start;
use crate::context::Context;
use crate::controller::{AtStep, Failed, ObjectKey, Step};
use crate::failure::Failure;
use crate::project::{self, ResolvedProject};

/// What the object refers to, read.
#[derive(Debug)]
pub struct Resolved {
    /// The project, with its clients.
    pub project: Arc<ResolvedProject>,
    /// The Secret values of the spec.
    pub secrets: ResolvedSecrets,
}

/// Resolves the project (a project that is missing or not usable is waited for) and reads the
/// Secrets.
pub async fn resolve(ctx: &Context, start: &Start<'_>) -> Result<Resolved, Failed> {
    let project = usable_project(ctx, start.gc, &start.key.namespace)
        .await
        .at(Step::Resolve)?;
    let secrets = secrets(ctx, start.gc, &start.key).await.at(Step::Resolve)?;
    Ok(Resolved { project, secrets })
}

/// The FoundryProject of `spec.projectRef`, resolved; Waiting `ProjectNotReady` while it is
/// missing or not usable.
async fn usable_project(
    ctx: &Context,
    gc: &GatewayConnection,
    namespace: &str,
) -> Result<Arc<ResolvedProject>, Failure> {
    let name = &gc.spec.project_ref.name;
    let project_ref = ObjectRef::<FoundryProject>::new(name).within(namespace);
    let Some(project) = ctx.stores.projects.get(&project_ref) else {
        return Err(Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!("FoundryProject {name} does not exist in namespace {namespace}"),
        });
    };
    project::resolve(ctx, &project, false)
        .await
        .map_err(|f| match f {
            Failure::Permanent { message, .. }
            | Failure::Transient { message, .. }
            | Failure::Waiting { message, .. } => Failure::Waiting {
                reason: reasons::PROJECT_NOT_READY.into(),
                message: format!("FoundryProject {name} is not usable: {message}"),
            },
        })
}

/// Reads every Secret value the spec refers to.
async fn secrets(
    ctx: &Context,
    gc: &GatewayConnection,
    key: &ObjectKey,
) -> Result<ResolvedSecrets, Failure> {
    let namespace = &key.namespace;
    let mut secrets = ResolvedSecrets::default();
    if let Some(api_key) = &gc.spec.auth.api_key {
        let r = &api_key.secret_ref;
        secrets.api_key = Some(
            project::read_secret_key(ctx, namespace, &r.name, &r.key, key)
                .await?
                .0
                .into(),
        );
    }
    if let Some(oauth) = &gc.spec.auth.oauth2 {
        let r = &oauth.client_secret_ref;
        secrets.oauth_client_secret = Some(
            project::read_secret_key(ctx, namespace, &r.name, &r.key, key)
                .await?
                .0
                .into(),
        );
    }
    for header in &gc.spec.custom_headers {
        if let Some(r) = &header.value_from {
            let value = project::read_secret_key(ctx, namespace, &r.name, &r.key, key)
                .await?
                .0;
            secrets
                .header_values
                .insert(header.name.clone(), value.into());
        }
    }
    Ok(secrets)
}
