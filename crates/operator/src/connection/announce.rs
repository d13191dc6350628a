//! Events and log lines for what changed in status: the gateway turning Active or Inactive, and
//! a new Stalled reason or message.

use foundry_gateway_api::conditions::types;
use foundry_gateway_api::connection::GatewayState;
use foundry_gateway_api::{GatewayConnection, GatewayConnectionStatus};
use kube::runtime::events::EventType;
use tracing::{info, warn};

use crate::context::Context;
use crate::controller::publish;

/// Publishes what changed from the `old` status to the `new` one (just written).
pub async fn announce(
    ctx: &Context,
    gc: &GatewayConnection,
    old: &GatewayConnectionStatus,
    new: &GatewayConnectionStatus,
) {
    if new.gateway_state != old.gateway_state {
        gateway_state(ctx, gc, new).await;
    }
    if let Some((reason, message)) = stalled(new)
        && stalled(old).as_ref().map(|(r, m)| (r, m)) != Some((&reason, &message))
    {
        warn!(%reason, "Stalled");
        publish(ctx, gc, EventType::Warning, &reason, message).await;
    }
}

/// The gateway state changed to the one `new` shows.
async fn gateway_state(ctx: &Context, gc: &GatewayConnection, new: &GatewayConnectionStatus) {
    match new.gateway_state {
        Some(GatewayState::Active) => {
            info!("Gateway became Active");
            publish(
                ctx,
                gc,
                EventType::Normal,
                "GatewayActive",
                "The gateway answers as Foundry calls it".into(),
            )
            .await;
        }
        Some(GatewayState::Inactive) => {
            let condition = new
                .conditions
                .iter()
                .find(|c| c.type_ == types::GATEWAY_ACTIVE);
            let (reason, message) = condition
                .map(|c| (c.reason.clone(), c.message.clone()))
                .unwrap_or_default();
            warn!(cause = %reason, "Gateway became Inactive");
            publish(
                ctx,
                gc,
                EventType::Warning,
                "GatewayInactive",
                format!("{reason}: {message}"),
            )
            .await;
        }
        _ => {}
    }
}

/// The reason and message of a True Stalled condition.
fn stalled(status: &GatewayConnectionStatus) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == types::STALLED && c.status == "True")
        .map(|c| (c.reason.clone(), c.message.clone()))
}
