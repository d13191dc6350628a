//! Deletion, under the finalizer: `deletionPolicy: Delete` deletes the agent in Foundry (404
//! counts as done; every version when Foundry refuses to delete the agent) when its versions name
//! this object and the newest one was made by the operator ([`agent_definition::deletion`]); never
//! when they name another object. `Orphan`, and `managementPolicy: Observe`, leave it. It needs
//! only the project, not the connection.

use foundry_gateway_api::PromptAgent;
use foundry_gateway_api::common::DeletionPolicy;
use foundry_gateway_client::project::AgentVersionObject;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::pass::Keys;
use super::sync::list_options;
use super::{Ctx, Error, observing};
use crate::agent_definition::{self, Deletion};
use crate::context::Context;
use crate::controller::ObjectKey;
use crate::ownership::ObjectId;
use crate::project::{self, ResolvedProject};

/// Deletes (or leaves) the agent in Foundry, then forgets the object.
pub(super) async fn cleanup(agent: &PromptAgent, ctx: &Ctx) -> Result<Action, Error> {
    let keys = Keys::of(agent);
    if observing(agent) {
        info!("Left agent in Foundry: managementPolicy is Observe");
    } else if agent.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Delete {
        delete(ctx, agent, &keys).await?;
    }
    if let Some(from) = &agent.spec.instructions_from {
        ctx.found(&keys.config_map(&from.name, &from.key));
    }
    ctx.memory.forget(&keys.object);
    ctx.reset_backoff(&keys.object);
    ctx.reset_backoff(keys.verify());
    Ok(Action::await_change())
}

/// Deletes the agent through its project; a project that is gone leaves it in Foundry.
async fn delete(ctx: &Context, agent: &PromptAgent, keys: &Keys) -> Result<(), Error> {
    let namespace = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    // A name Foundry cannot hold was never created there.
    let Ok(agent_name) = agent_definition::agent_name(&agent.spec, &name) else {
        return Ok(());
    };
    let Some(project) = project::find(ctx, &namespace, &agent.spec.project_ref.name).await? else {
        warn!(
            agent = %agent_name,
            "FoundryProject is gone; left the agent in Foundry"
        );
        return Ok(());
    };
    let resolved = project::resolve(ctx, &project, false)
        .await
        .map_err(|failure| Error::DeletionPending {
            message: format!(
                "cannot reach the project to delete the agent ({})",
                failure.label()
            ),
            retry_after: ctx.backoff(&keys.object, None),
        })?;
    delete_agent(
        ctx,
        &keys.object,
        &resolved,
        agent_name,
        &ObjectId::of(agent),
    )
    .await
}

/// Deletes the agent when its versions are this object's ([`agent_definition::deletion`]); every
/// version when Foundry refuses to delete the agent itself. Never an agent another object owns.
async fn delete_agent(
    ctx: &Context,
    key: &ObjectKey,
    project: &ResolvedProject,
    agent_name: &str,
    me: &ObjectId,
) -> Result<(), Error> {
    let pending = |what: &str, error: &foundry_gateway_client::Error| {
        warn!(agent = %agent_name, step = what, error = %error.label(), "Failed to delete agent");
        Error::DeletionPending {
            message: format!("failed to {what} ({})", error.label()),
            retry_after: ctx.backoff(key, error.retry_after()),
        }
    };
    let versions = project
        .data
        .list_versions(agent_name, &list_options())
        .await
        .map_err(|e| pending("list the agent's versions", &e))?;
    match agent_definition::deletion(&versions, me) {
        Deletion::Nothing => return Ok(()),
        Deletion::OwnedElsewhere(owner) => {
            info!(agent = %agent_name, %owner, "Left agent in place: another object manages it");
            return Ok(());
        }
        Deletion::MadeElsewhere => {
            info!(agent = %agent_name, "Left agent in place: its newest version was not made by the operator");
            return Ok(());
        }
        Deletion::Delete => {}
    }
    match project.data.delete(agent_name).await {
        Ok(()) => {
            info!(agent = %agent_name, "Deleted agent");
            Ok(())
        }
        Err(error) if refused(&error) => {
            delete_versions(project, agent_name, &versions, pending).await
        }
        Err(error) => Err(pending("delete the agent", &error)),
    }
}

/// Deletes every live version, when Foundry refuses to delete the agent itself; `pending` says
/// why deletion must wait.
async fn delete_versions(
    project: &ResolvedProject,
    agent_name: &str,
    versions: &[AgentVersionObject],
    pending: impl Fn(&str, &foundry_gateway_client::Error) -> Error,
) -> Result<(), Error> {
    let live = versions
        .iter()
        .filter(|v| !matches!(v.status.as_deref(), Some("deleting" | "deleted")));
    let mut deleted = 0_usize;
    for version in live {
        project
            .data
            .delete_version(agent_name, &version.version)
            .await
            .map_err(|e| pending("delete an agent version", &e))?;
        deleted = deleted.saturating_add(1);
    }
    info!(agent = %agent_name, versions = deleted, "Deleted agent versions");
    Ok(())
}

/// Whether Foundry refused the request itself (not the identity, not a passing failure).
fn refused(error: &foundry_gateway_client::Error) -> bool {
    matches!(error.status(), Some(s) if (400..500).contains(&s) && !matches!(s, 401 | 403 | 404 | 408 | 429))
}
