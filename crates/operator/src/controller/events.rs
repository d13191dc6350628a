//! Kubernetes Events, published the same way by every controller.

use kube::Resource;
use kube::runtime::events::{Event, EventType};
use tracing::warn;

use crate::context::Context;

/// Publishes an Event about `object`; a failure to publish is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(%error, "Failed to publish an event");
    }
}
