//! Whose the live Foundry connection is, as the sync step needs to know before it writes (or,
//! under Observe, before it reports): the marker ([`crate::ownership`]) and, for a foreign one,
//! whether its owner still lives.

use foundry_gateway_api::GatewayConnection;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::connections::ConnectionProperties;
use kube::{Resource, ResourceExt};
use tracing::info;

use super::KIND;
use super::build;
use super::start::scope_of;
use super::write_plan::Claim;
use crate::context::Context;
use crate::failure::Failure;
use crate::ownership::{
    ObjectId, Ownership, Taken, owned_elsewhere_message, owner_state, ownership,
};

/// [`claim`] for `managementPolicy: Observe`: nothing is written, so nothing needs adopting;
/// only another live owner refuses (`OwnedElsewhere`, as in Full). `Ok(true)` when the marker
/// names this object.
pub async fn observe_claim(
    ctx: &Context,
    gc: &GatewayConnection,
    connection: &str,
    project: &str,
    live: &ConnectionProperties,
) -> Result<bool, Failure> {
    let me = ObjectId::of(gc);
    match ownership(build::marker(live).as_ref(), &me) {
        Ownership::Ours => Ok(true),
        Ownership::Foreign(owner) => {
            let what = format!("Foundry connection \"{connection}\" of project {project}");
            refuse_a_live_owner(ctx, gc, &owner, &what).await?;
            Ok(false)
        }
        Ownership::Unmarked | Ownership::Legacy => Ok(false),
    }
}

/// Whether this object may write the live connection of that name, and whose it is
/// ([`Claim`]): ours when its marker names this object; else it may be adopted (`adopt: true`,
/// and no marker, or a recorded owner that is confirmed gone). Refused with `OwnedElsewhere`
/// while another object that owns it exists or cannot be looked up, even with `adopt: true`;
/// with `AlreadyExists` otherwise without `adopt`.
pub async fn claim(
    ctx: &Context,
    gc: &GatewayConnection,
    connection: &str,
    project: &str,
    live: &ConnectionProperties,
) -> Result<Claim, Failure> {
    let me = ObjectId::of(gc);
    let adopt = gc.spec.adopt == Some(true);
    let previous = match ownership(build::marker(live).as_ref(), &me) {
        Ownership::Ours => return Ok(Claim::Ours),
        Ownership::Foreign(owner) => {
            let what = format!("Foundry connection \"{connection}\"");
            refuse_a_live_owner(ctx, gc, &owner, &what).await?;
            Some(owner)
        }
        Ownership::Unmarked | Ownership::Legacy => None,
    };
    if adopt {
        if let Some(owner) = &previous {
            info!(%connection, previous_owner = %owner, "Adopting a Foundry connection whose owner is gone");
        }
        let legacy = build::marker(live).is_some();
        return Ok(if legacy || previous.is_some() {
            Claim::OwnerGone
        } else {
            Claim::Unmarked
        });
    }
    let why = match previous {
        Some(owner) => format!("was managed by {KIND} {owner}, which no longer exists"),
        None => "is not managed by this object".to_owned(),
    };
    Err(Failure::permanent(
        reasons::ALREADY_EXISTS,
        format!(
            "A connection named {connection} already exists in project {project} and {why}; set spec.adopt: true to take it over, or choose another spec.connectionName"
        ),
    ))
}

/// Refuses with `OwnedElsewhere` while the object that the marker names exists or cannot be
/// looked up (`what` names the Foundry connection in the message).
async fn refuse_a_live_owner(
    ctx: &Context,
    gc: &GatewayConnection,
    owner: &ObjectId,
    what: &str,
) -> Result<(), Failure> {
    let state = owner_state(&ctx.client, &ctx.stores.connections, owner).await;
    if !state.blocks() {
        return Ok(());
    }
    Err(Failure::permanent(
        reasons::OWNED_ELSEWHERE,
        owned_elsewhere_message(
            &Taken {
                what,
                kind: KIND,
                fix: "spec.connectionName",
                adopt: gc.spec.adopt == Some(true),
            },
            owner,
            &state,
        ),
    ))
}

/// Whether another GatewayConnection of the installation names the same Foundry connection
/// (same FoundryProject name, scope and connection name; over-approximated across namespaces).
pub fn named_elsewhere(ctx: &Context, gc: &GatewayConnection, connection: &str) -> bool {
    let me = (gc.namespace(), gc.name_any());
    ctx.stores.connections.state().iter().any(|other| {
        (other.namespace(), other.name_any()) != me
            && other.spec.scope.unwrap_or_default() == scope_of(gc)
            && other.spec.project_ref.name == gc.spec.project_ref.name
            && other
                .status
                .as_ref()
                .and_then(|s| s.connection_name.as_deref())
                .or(other.spec.connection_name.as_deref())
                .unwrap_or(other.meta().name.as_deref().unwrap_or_default())
                == connection
    })
}
