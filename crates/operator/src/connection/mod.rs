//! GatewayConnection controller.
//!
//! Pipeline (`apply`, one step per file, each returning a typed value), from what the reconcile
//! starts with ([`start::Start`]: the object, the controller's memory of it, its settings):
//! [`resolve`] (FoundryProject, Secrets of this namespace → [`resolve::Resolved`]) →
//! [`desired`] (validate, build the ARM body: [`build`], pure → [`build::Desired`]) →
//! [`sync`] (read the live connection on change, rotated credentials, a Flux request, or every
//! resync; whose it is: [`claim`]; PUT only on drift or new credentials: [`write_plan`], pure →
//! [`sync::Synced`]) → [`probe`] (the gateway probed the way Foundry calls it, every
//! `probe.interval`, damped by `probe.failureThreshold`: [`probe_plan`], [`tracker`] →
//! [`probe::Probed`]) → [`report`] (pure: status, requeue, memory) → status, written only when
//! it differs, and events ([`announce`]). A failed step names itself ([`crate::controller::Step`]).
//! One write per new generation when the work is quick: steps that take longer than
//! [`slow::GRACE`] say Reconciling meanwhile, and the first probe of new inputs is waited for
//! that long before the status says Progressing (a fast gateway's verdict is the only write).
//! Deletion ([`cleanup`]): a finalizer waits for the PromptAgents that use the connection, then
//! deletes it in Foundry (`deletionPolicy: Delete`, 404 counts as done) or leaves it (`Orphan`).
//!
//! `managementPolicy: Observe` ([`observe`]): the read, the owner check (another live owner is
//! Stalled `OwnedElsewhere`; an unmarked connection is simply observed) and the probe run as
//! above, but nothing is written: the difference goes to the `Drifted` condition, a missing
//! connection is Ready=False `NotFoundInFoundry`, and deletion leaves the connection in place.
//! Under `Full` there is no `Drifted` condition.

pub mod announce;
pub mod build;
pub mod claim;
pub mod cleanup;
pub mod desired;
pub mod observe;
pub mod probe;
pub mod probe_plan;
pub mod report;
pub mod resolve;
pub mod start;
pub mod sync;
pub mod tracker;
pub mod write_plan;

use std::sync::Arc;
use std::time::Duration;

use foundry_gateway_api::{GatewayConnection, GatewayConnectionStatus};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, instrument, warn};

use self::report::{Ran, Requeue};
use self::start::Start;
use self::tracker::Tracker;
use crate::context::{Context, same_status};
use crate::controller::{Failed, ObjectKey, PerObject, Scoped, slow};

pub use self::start::{DEFAULT_FAILURE_THRESHOLD, DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT};
pub use crate::controller::Error;

const KIND: &str = "GatewayConnection";

/// Per-connection memory of the controller.
pub type Memory = PerObject<Tracker>;

/// The context the connection controller runs with.
pub type Ctx = Scoped<Memory>;

/// Reconciles one GatewayConnection.
#[instrument(skip_all, fields(kind = KIND, namespace = gc.namespace().unwrap_or_default(), name = gc.name_any()))]
pub async fn reconcile(gc: Arc<GatewayConnection>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::controller::with_finalizer(gc, ctx, apply, cleanup::cleanup).await
}

/// Requeue policy for errors that escaped the reconcile (status could not be written).
pub fn error_policy(gc: Arc<GatewayConnection>, error: &Error, ctx: Arc<Ctx>) -> Action {
    crate::controller::error_policy(gc, error, ctx)
}

/// The pipeline: resolve → validate + desired → sync → probe → report → status. Steps that do
/// not end within [`slow::GRACE`] write Reconciling for a new generation meanwhile.
async fn apply(gc: &GatewayConnection, ctx: &Ctx) -> Result<Action, Error> {
    let start = Start::read(gc, ctx);
    let steps = async {
        let resolved = resolve::resolve(ctx, &start).await?;
        let desired = desired::desired(&start, &resolved, &ctx.digest_key)?;
        let synced = sync::sync(ctx, &start, &resolved.project, &desired).await?;
        let probed = probe::probe(ctx, &start, &resolved, &desired, &synced.memory).await;
        Ok(Ran {
            desired,
            synced,
            probed,
        })
    };
    let (ran, said): (Result<Ran, Failed>, _) =
        slow::unless_quick(steps, slow::GRACE, say_reconciling(ctx, &start)).await;
    let live = said.flatten().or_else(|| gc.status.clone());
    match report::failure(&ran) {
        Some(Failed { step, failure }) => {
            info!(%step, reason = failure.label(), "Reconcile step failed");
            ctx.metrics.observe_failure(KIND, failure.label());
        }
        None => ctx.reset_backoff(&start.key),
    }
    let report = report::report(&start, ran);
    let next = delay(ctx, &start.key, report.requeue);
    if !report.keep && !same_status(live.as_ref(), &report.status) {
        write_status(ctx, &start.key, &report.status).await?;
        announce::announce(ctx, gc, &start.status, &report.status).await;
    }
    ctx.memory.put(&start.key, &start.uid, report.memory);
    Ok(if next == Duration::MAX {
        Action::await_change()
    } else {
        Action::requeue(next)
    })
}

/// Says Reconciling when a new generation's steps take long; the status written, if any. A
/// failed write is only logged: the status the reconcile ends with follows.
async fn say_reconciling(ctx: &Context, start: &Start<'_>) -> Option<GatewayConnectionStatus> {
    let progressing = report::new_generation(start)?;
    match write_status(ctx, &start.key, &progressing).await {
        Ok(()) => Some(progressing),
        Err(error) => {
            warn!(%error, "Failed to say Reconciling");
            None
        }
    }
}

async fn write_status(
    ctx: &Context,
    key: &ObjectKey,
    status: &GatewayConnectionStatus,
) -> Result<(), Error> {
    crate::apply_status::<GatewayConnection>(&ctx.client, &key.namespace, &key.name, status)
        .await?;
    Ok(())
}

/// The delay `report` asked for, with the object's backoff where it asked for one
/// (`Duration::MAX`: only on a change).
fn delay(ctx: &Context, key: &ObjectKey, requeue: Requeue) -> Duration {
    match requeue {
        Requeue::After(delay) => delay,
        Requeue::Backoff {
            retry_after,
            at_least,
        } => ctx.backoff(key, retry_after).max(at_least),
        Requeue::OnChange => Duration::MAX,
    }
}
