//! PromptAgent controller (being written: until then PromptAgents are watched, so that
//! GatewayConnections know which agents use them, but not reconciled).

use std::sync::Arc;

use foundry_gateway_api::PromptAgent;
use kube::runtime::controller::Action;

use crate::context::Context;

/// Reconciles one PromptAgent.
pub async fn reconcile(
    _agent: Arc<PromptAgent>,
    _ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    Ok(Action::await_change())
}

/// Requeue policy for errors that escaped the reconcile.
pub fn error_policy(_agent: Arc<PromptAgent>, _error: &kube::Error, _ctx: Arc<Context>) -> Action {
    Action::await_change()
}
