//! What every controller's reconcile shares: suspension, the finalizer, metrics, and the
//! requeue policy for errors that escape the pipeline (everything else is written to status).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_gateway_api::{GatewayConnection, PromptAgent};
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::context::{Context, FINALIZER};
use crate::keys::{ObjectKey, RetryKey};

/// Errors that end a reconcile early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing status or the finalizer failed.
    #[error("kubernetes API call failed")]
    Kube(#[from] kube::Error),
    /// The finalizer helper failed.
    #[error("finalizer step failed")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Deletion must wait (objects still use this one, or Foundry failed); the finalizer stays.
    #[error("deletion waits: {message}")]
    DeletionPending {
        /// Why.
        message: String,
        /// When to look again.
        retry_after: Duration,
    },
}

impl Error {
    /// Stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubernetesApiError",
            Self::Finalizer(_) => "FinalizerError",
            Self::DeletionPending { .. } => "DeletionPending",
        }
    }
}

/// A kind whose objects the operator reconciles behind its finalizer.
pub trait Managed:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
{
    /// The kind, in metrics and logs.
    const KIND: &'static str;

    /// `spec.suspend: true`: the controller reads and writes nothing (deletion still works).
    fn suspended(&self) -> bool;
}

impl Managed for GatewayConnection {
    const KIND: &'static str = "GatewayConnection";

    fn suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }
}

impl Managed for PromptAgent {
    const KIND: &'static str = "PromptAgent";

    fn suspended(&self) -> bool {
        self.spec.suspend == Some(true)
    }
}

/// Runs `apply` or, for an object being deleted, `cleanup` under the finalizer. A suspended
/// object that is not being deleted is left alone: nothing read, nothing written.
pub async fn with_finalizer<K, C>(
    object: Arc<K>,
    ctx: Arc<C>,
    apply: impl AsyncFn(&K, &C) -> Result<Action, Error>,
    cleanup: impl AsyncFn(&K, &C) -> Result<Action, Error>,
) -> Result<Action, Error>
where
    K: Managed,
    C: AsRef<Context>,
{
    let infra: &Context = (*ctx).as_ref();
    // Reconciles read the other kinds from their stores: not before those are filled. Stopping
    // first, nothing is done: what a half-filled store says is not to be written.
    if !infra.stores.wait_until_ready().await {
        return Ok(Action::await_change());
    }
    let (kind, suspended) = (K::KIND, object.suspended());
    let started = Instant::now();
    if suspended && object.meta().deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let key = RetryKey::Object(ObjectKey::of(object.as_ref()));
    if let Some(wait) = infra.deferred(key) {
        // Woken early (typically by our own status write): Foundry asked us to wait.
        return Ok(Action::requeue(wait));
    }
    let api: Api<K> = Api::namespaced(
        infra.client.clone(),
        &object.namespace().unwrap_or_default(),
    );
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&object, ctx.as_ref()).await,
            Finalizer::Cleanup(object) => cleanup(&object, ctx.as_ref()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    infra.metrics.observe_reconcile(kind, started.elapsed());
    if let Err(error) = &result {
        infra.metrics.observe_failure(kind, error.label());
    }
    result
}

/// Requeue policy for errors that escaped the reconcile: a pending deletion is looked at again
/// when it said; anything else backs off per object.
pub fn error_policy<K: ResourceExt, C: AsRef<Context>>(
    object: Arc<K>,
    error: &Error,
    ctx: Arc<C>,
) -> Action {
    if let Error::Finalizer(inner) = error
        && let kube::runtime::finalizer::Error::CleanupFailed(Error::DeletionPending {
            retry_after,
            ..
        }) = inner.as_ref()
    {
        return Action::requeue(*retry_after);
    }
    warn!(error = %chain(error), name = %object.name_any(), "Reconcile failed");
    let key = RetryKey::Object(ObjectKey::of(object.as_ref()));
    Action::requeue((*ctx).as_ref().backoff(key, None))
}

/// An error with its causes, `outer: inner: innermost`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
