//! Deletion: the finalizer waits for the PromptAgents that use the connection, then deletes it
//! in Foundry (`deletionPolicy: Delete`; 404 counts as done) only when this object owns it, or
//! leaves it (`Orphan`, or `managementPolicy: Observe`).

use std::time::Duration;

use foundry_gateway_api::GatewayConnection;
use foundry_gateway_api::common::DeletionPolicy;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::connections::{ConnectionProperties, ConnectionsClient};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use tracing::{info, warn};

use super::build;
use super::start::{observing, scope_of, used_by};
use super::{Ctx, Error};
use crate::context::{Context, same_status};
use crate::controller::ObjectKey;
use crate::ownership::{Marker, ObjectId};
use crate::project;
use crate::status::{Conditions, Outcome};

/// Runs when the object is being deleted; the finalizer is removed when this returns `Ok`.
pub async fn cleanup(gc: &GatewayConnection, ctx: &Ctx) -> Result<Action, Error> {
    let key = ObjectKey::of(gc);
    let users = used_by(ctx, gc);
    if !users.is_empty() {
        return Err(wait_for_agents(ctx, gc, &key, users).await);
    }
    if observing(gc) {
        info!("Left Foundry connection in place: managementPolicy is Observe");
    } else if gc.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Delete {
        delete(ctx, gc, &key).await?;
    }
    ctx.memory.forget(&key);
    ctx.probes.forget(&key);
    ctx.reset_backoff(&key);
    Ok(Action::await_change())
}

/// Says in status which PromptAgents deletion waits for; the error keeps the finalizer.
async fn wait_for_agents(
    ctx: &Context,
    gc: &GatewayConnection,
    key: &ObjectKey,
    users: Vec<String>,
) -> Error {
    let generation = gc.metadata.generation.unwrap_or(0);
    let mut status = gc.status.clone().unwrap_or_default();
    let mut conditions = Conditions::from_live(&status.conditions);
    let message = format!(
        "Deletion waits for the PromptAgents that use this connection: {}",
        users.join(", ")
    );
    conditions.apply_outcome(
        &Outcome::NotReady {
            reason: reasons::IN_USE.into(),
            message,
        },
        generation,
        Timestamp::now(),
    );
    status.conditions = conditions.into_vec();
    status.used_by = users;
    if !same_status(gc.status.as_ref(), &status)
        && let Err(error) = crate::apply_status::<GatewayConnection>(
            &ctx.client,
            &key.namespace,
            &key.name,
            &status,
        )
        .await
    {
        return error.into();
    }
    Error::DeletionPending {
        message: "PromptAgents still use the connection".into(),
        retry_after: Duration::from_secs(10),
    }
}

/// Deletes the Foundry connection if this object owns it.
async fn delete(ctx: &Context, gc: &GatewayConnection, key: &ObjectKey) -> Result<(), Error> {
    let connection_name = build::connection_name(&gc.spec, &key.name);
    let Some(project) = project::find(ctx, &key.namespace, &gc.spec.project_ref.name).await? else {
        warn!(
            "FoundryProject is gone; the Foundry connection cannot be deleted and is left in place"
        );
        return Ok(());
    };
    let resolved = project::resolve(ctx, &project, false)
        .await
        .map_err(|failure| Error::DeletionPending {
            message: format!(
                "cannot reach the project to delete the connection ({})",
                failure.label()
            ),
            retry_after: ctx.backoff(key, None),
        })?;
    // Only delete what this object owns: never a connection whose marker names another
    // object, even one that no longer exists.
    let me = ObjectId::of(gc);
    let connections = resolved.connections_in(scope_of(gc));
    match connections.get(&connection_name).await {
        Ok(Some(live)) if build::may_delete(&live.properties, &me, gc.spec.adopt == Some(true)) => {
            delete_owned(ctx, key, connections, &connection_name).await
        }
        Ok(Some(live)) => {
            left_in_place(&connection_name, &live.properties, &me);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => Err(Error::DeletionPending {
            message: format!(
                "failed to read the Foundry connection before deleting it ({})",
                error.label()
            ),
            retry_after: ctx.backoff(key, error.retry_after()),
        }),
    }
}

async fn delete_owned(
    ctx: &Context,
    key: &ObjectKey,
    connections: &ConnectionsClient,
    connection_name: &str,
) -> Result<(), Error> {
    if let Err(error) = connections.delete(connection_name).await {
        return Err(Error::DeletionPending {
            message: format!(
                "failed to delete the Foundry connection ({})",
                error.label()
            ),
            retry_after: ctx.backoff(key, error.retry_after()),
        });
    }
    info!(connection = %connection_name, "Deleted Foundry connection");
    Ok(())
}

fn left_in_place(connection_name: &str, live: &ConnectionProperties, me: &ObjectId) {
    match build::marker(live) {
        Some(Marker::Object(owner)) if !owner.same_object(me) => {
            info!(connection = %connection_name, owner = %owner, "Left Foundry connection in place: another object manages it");
        }
        _ => {
            info!(connection = %connection_name, "Left Foundry connection in place: this object does not manage it");
        }
    }
}
