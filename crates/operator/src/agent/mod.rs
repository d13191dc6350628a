//! PromptAgent controller.
//!
//! Pipeline, one file per step, driven by `apply`: `resolve` (instructions) → `validate` →
//! `resolve` (project, connection, model) → `desired` → `sync` (or `observe`) → `verify` →
//! `report`. Each step returns a typed value (`Resolved`, `Desired`, a `Look` at Foundry, a
//! `Verdict`); `report` is pure and takes only what they returned.
//! - resolve (`resolve.rs`): the instructions (inline, or a ConfigMap key of this namespace,
//!   missing → a grace period, then Stalled `ConfigMapNotFound`); after validation the
//!   FoundryProject, the GatewayConnection (Ready at its generation and serving this project →
//!   `ConnectionResolved`) and the model among its models (`ModelResolved`).
//! - validate (`validate.rs`): right after the instructions are read, so a spec error shows at
//!   once, even while the connection is not Ready, and an unsupported tool never reaches Foundry.
//! - desired (`desired.rs`): [`crate::agent_definition::desired_version`] (build + hash), pure.
//! - sync (`sync.rs`): list the agent's versions (on a new definition, a Flux request, or once per
//!   resync); when they name another PromptAgent (the same agent name in another namespace of the
//!   same Foundry project) that still exists, or cannot be looked up, Stalled `OwnedElsewhere` and
//!   nothing is written (looked at again once per resync); otherwise
//!   [`crate::agent_definition::plan_version`]: serve the newest version when it is this
//!   object's with the same hash, serve it as it is when the operator never wrote the agent and
//!   its content matches, else create a version. The hash and the owner live in the version's
//!   metadata, so a crash between create and status write creates no duplicate, and a version
//!   made by hand is replaced at the next look.
//! - verify (`verify.rs`): a failed version is Stalled; with `spec.verify`, once per version, a
//!   conversation and a response through the gateway, the reply checked, the conversation
//!   deleted; a failure is retried with backoff.
//! - report ([`report::desired_status`], pure): the status computed in full from what the steps
//!   returned, written only when it differs; Events on transitions (`events.rs`).
//!
//! A failed step ends the pass as a [`Failed`] that names the step (logged, and counted by its
//! reason); `pass::settle` turns it into the status outcome and the requeue.
//!
//! One write per pass, and as few passes as possible: a pass that does not end within
//! [`slow::GRACE`] says Reconciling meanwhile (a new object or generation only); a pass that
//! waits for a connection that is missing or still on its way to a verdict keeps the status as
//! it is within that grace of a new generation (`pass::hold`), and the connection's verdict
//! wakes it ([`report::connection_view`]: only what the agent reads of a connection wakes it).
//!
//! `managementPolicy: Observe` (`observe.rs`): resolve, validate and desired as above, then list
//! the versions and check the owner (another live owner is Stalled `OwnedElsewhere`), and report
//! in `Drifted` whether the newest version is this object's with this hash and, when not, what of
//! its content differs ([`crate::agent_definition::observe_versions`]). No version is created, no
//! verification runs (`Verified` Unknown, reason Observing), a missing agent is Ready=False
//! `NotFoundInFoundry`, and deletion leaves the agent in place. Under Full there is no `Drifted`.
//!
//! Deletion (`cleanup.rs`): a finalizer deletes the agent in Foundry (`deletionPolicy: Delete`)
//! when its versions name this object and the newest one was made by the operator; never when
//! they name another object. It leaves it with `Orphan`.

pub mod report;
pub mod tracker;

mod cleanup;
mod desired;
mod events;
mod observe;
mod pass;
mod resolve;
mod sync;
mod validate;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use foundry_gateway_api::agent::ManagementPolicy;
use foundry_gateway_api::{PromptAgent, PromptAgentStatus};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{instrument, warn};

use self::pass::{Pass, Start};
use self::report::Report;
use self::tracker::Tracker;
use crate::context::{Context, same_status};
use crate::controller::{AtStep, Failed, PerObject, Scoped, Step, slow};
use crate::failure::Failure;

const KIND: &str = "PromptAgent";
/// How soon to look again at a version Foundry is still creating.
const CREATING_POLL: Duration = Duration::from_secs(5);

/// Per-agent memory of the controller (with the object's uid: a recreated object starts afresh).
pub type Memory = PerObject<Tracker>;

/// The context the agent controller runs with.
pub type Ctx = Scoped<Memory>;

pub use crate::controller::Error;

/// Reconciles one PromptAgent.
#[instrument(skip_all, fields(kind = KIND, namespace = agent.namespace().unwrap_or_default(), name = agent.name_any()))]
pub async fn reconcile(agent: Arc<PromptAgent>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::controller::with_finalizer(agent, ctx, apply, cleanup::cleanup).await
}

/// Requeue policy for errors that escaped the reconcile (status could not be written, or
/// deletion waits).
pub fn error_policy(agent: Arc<PromptAgent>, error: &Error, ctx: Arc<Ctx>) -> Action {
    crate::controller::error_policy(agent, error, ctx)
}

/// The driver: each step returns its value or a [`Failed`]; what they returned becomes the
/// report, the status and the memory of the object. A pass that does not end within
/// [`slow::GRACE`] says Reconciling meanwhile; a pass that waits for a connection still on its way
/// to a verdict keeps the status as it is for that grace after a new generation.
async fn apply(agent: &PromptAgent, ctx: &Ctx) -> Result<Action, Error> {
    let start = Start::of(ctx, agent);
    let (mut memory, mut found) = (start.memory.clone(), Report::new(observing(agent)));
    let waited = memory.working_for(start.generation, start.began);
    let steps = steps(ctx, agent, &start, &mut memory, &mut found);
    let (end, said) =
        slow::unless_quick(steps, slow::GRACE, say_reconciling(ctx, agent, &start)).await;
    let live = said.flatten().unwrap_or_else(|| start.live.clone());
    let Pass { outcome, next } = pass::settle(ctx, &start.keys, end);
    let held = pass::hold(&found, &outcome, waited);
    if held.is_none() {
        let status = report::desired_status(&live, &found, &outcome, start.stamp());
        write_status(ctx, agent, &live, &status).await?;
    }
    memory.handled_request = start.requested;
    ctx.memory.put(&start.keys.object, &start.keys.uid, memory);
    Ok(pass::action(held.map_or(next, |left| left.min(next))))
}

/// The steps of one pass; what they found goes to `found` and `memory` as they go, so a failed
/// pass still reports what came before it.
async fn steps(
    ctx: &Ctx,
    agent: &PromptAgent,
    start: &Start,
    memory: &mut Tracker,
    found: &mut Report,
) -> Result<Pass, Failed> {
    let instructions = resolve::instructions(ctx, agent, &start.keys)
        .await
        .at(Step::Resolve)?;
    let name = validate::validate(agent, instructions.as_deref()).at(Step::Validate)?;
    let resolved = resolve::resolve(ctx, agent, instructions, name)
        .await
        .at(Step::Resolve)?;
    (found.connection, found.model) = resolved.references.checks();
    found.connection_settling = resolved.references.settling;
    let facts = resolved.references.usable().at(Step::Resolve)?;
    let desired = desired::desired(agent, &resolved, facts).at(Step::Desired)?;
    if observing(agent) {
        let (look, seen) = observe::observe(ctx, agent, &resolved.project, &desired, start)
            .await
            .at(Step::Sync)?;
        memory.remember_observe(&look);
        (found.drifted, found.verified, found.served) = (seen.drifted, seen.verified, seen.served);
        return Ok(seen.pass);
    }
    let synced = sync::sync(ctx, agent, &resolved.project, &desired, start)
        .await
        .at(Step::Sync)?;
    memory.remember_sync(&synced);
    found.served = Some(synced.found.served.clone());
    let verdict = verify::verify(ctx, agent, &resolved.project, &synced.found, start)
        .await
        .at(Step::Verify)?;
    (found.verified, memory.verification) = (verdict.verified, verdict.verification);
    Ok(verdict.pass)
}

/// Says Reconciling when a pass takes long and the status does not describe this generation yet;
/// the status written, if any. A failed write is only logged: the status the pass ends with
/// follows.
async fn say_reconciling(
    ctx: &Context,
    agent: &PromptAgent,
    start: &Start,
) -> Option<PromptAgentStatus> {
    let status = report::reconciling_status(&start.live, start.stamp())?;
    let (namespace, name) = (agent.namespace().unwrap_or_default(), agent.name_any());
    match crate::apply_status::<PromptAgent>(&ctx.client, &namespace, &name, &status).await {
        Ok(()) => Some(status),
        Err(error) => {
            warn!(%error, "Failed to say Reconciling");
            None
        }
    }
}

/// Writes `new` when it differs from `old`, and publishes the Events of the change.
async fn write_status(
    ctx: &Context,
    agent: &PromptAgent,
    old: &PromptAgentStatus,
    new: &PromptAgentStatus,
) -> Result<(), Error> {
    if same_status(Some(old), new) {
        return Ok(());
    }
    let (namespace, name) = (agent.namespace().unwrap_or_default(), agent.name_any());
    crate::apply_status::<PromptAgent>(&ctx.client, &namespace, &name, new).await?;
    events::announce(ctx, agent, old, new).await;
    Ok(())
}

/// Whether the object only observes Foundry (`managementPolicy: Observe`).
fn observing(agent: &PromptAgent) -> bool {
    agent.spec.management_policy.unwrap_or_default() == ManagementPolicy::Observe
}

/// What a failure says, for a person.
fn message_of(failure: &Failure) -> &str {
    match failure {
        Failure::Transient { message, .. }
        | Failure::Permanent { message, .. }
        | Failure::Waiting { message, .. } => message,
    }
}
