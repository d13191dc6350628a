//! Step "sync" under `managementPolicy: Full`: list the agent's versions (on a new definition, a
//! Flux request, or once per resync), refuse an agent another live object owns, and follow
//! [`agent_definition::plan_version`]: serve the newest version, serve it as it is, or create one.

use foundry_gateway_api::PromptAgent;
use foundry_gateway_api::agent::AgentVersionRef;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::project::{AgentVersionObject, ListOptions};
use kube::runtime::events::EventType;
use tracing::info;

use super::KIND;
use super::desired::Desired;
use super::pass::Start;
use super::report::{self, Served};
use super::tracker::{Look, Synced};
use crate::agent_definition::{self, VersionPlan, agent_marker};
use crate::context::Context;
use crate::controller::publish;
use crate::failure::Failure;
use crate::ownership::{
    ObjectId, Ownership, Taken, owned_elsewhere_message, owner_state, ownership,
};
use crate::project::ResolvedProject;

/// Page size of version listings (Foundry's maximum).
const LIST_PAGE: u32 = 100;

/// What Foundry serves for the spec after writing what differs, when a look is due; else the
/// last look.
pub(super) async fn sync(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    desired: &Desired,
    start: &Start,
) -> Result<Look<Synced>, Failure> {
    let (target, hash) = (&desired.target, &desired.version.spec_hash);
    let due = start
        .memory
        .foundry_check_due(target, hash, ctx.settings.resync);
    if !(start.forced || due) {
        return remembered(start.memory.synced.as_ref());
    }
    let agent_name = &desired.agent_name;
    let versions = list_versions(project, agent_name).await?;
    check_owner(ctx, agent, agent_name, &versions).await?;
    let plan = agent_definition::plan_version(&versions, &desired.version, &ObjectId::of(agent));
    let served = plan
        .served()
        .and_then(|v| versions.iter().find(|live| live.version == v));
    let (version, state) = match served {
        Some(newest) => {
            let announced = start
                .memory
                .synced
                .as_ref()
                .is_some_and(|s| s.served.agent.version == newest.version);
            if matches!(plan, VersionPlan::AdoptAsIs(_)) && !announced {
                announce_adopted(ctx, agent, agent_name, &newest.version).await;
            }
            (newest.version.clone(), newest.status.clone())
        }
        None => create(ctx, agent, project, desired, &versions).await?,
    };
    Ok(Look::fresh(Synced {
        target: target.clone(),
        served: Served {
            agent: AgentVersionRef {
                name: agent_name.clone(),
                version,
            },
            model: desired.version.model.clone(),
            spec_hash: hash.clone(),
        },
        state,
    }))
}

/// Creates a version; returns its number and Foundry state.
async fn create(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    desired: &Desired,
    versions: &[AgentVersionObject],
) -> Result<(String, Option<String>), Failure> {
    let agent_name = &desired.agent_name;
    let why = report::why_new_version(versions, &ObjectId::of(agent));
    let created = project
        .data
        .create_version(agent_name, &desired.version.request)
        .await
        .map_err(|e| Failure::from_foundry("create an agent version", &e))?;
    info!(agent = %agent_name, version = %created.version, change = why, "Created agent version");
    publish(
        ctx,
        agent,
        EventType::Normal,
        "VersionCreated",
        format!(
            "Created agent version {agent_name}:{} ({why})",
            created.version
        ),
    )
    .await;
    Ok((created.version, created.status))
}

async fn announce_adopted(ctx: &Context, agent: &PromptAgent, agent_name: &str, version: &str) {
    info!(agent = %agent_name, version = %version, "Adopted agent as it is: its newest version holds what the spec would send");
    publish(
        ctx,
        agent,
        EventType::Normal,
        "VersionAdopted",
        format!(
            "Serving agent version {agent_name}:{version} as it is: it holds what the spec would send, so no version was created"
        ),
    )
    .await;
}

/// The agent's versions (one page of Foundry's maximum size).
pub(super) async fn list_versions(
    project: &ResolvedProject,
    agent_name: &str,
) -> Result<Vec<AgentVersionObject>, Failure> {
    project
        .data
        .list_versions(agent_name, &list_options())
        .await
        .map_err(|e| Failure::from_foundry("list the agent's versions", &e))
}

/// Options of a version listing.
pub(super) fn list_options() -> ListOptions {
    ListOptions {
        limit: Some(LIST_PAGE),
        ..ListOptions::default()
    }
}

/// Refuses an agent whose versions name another PromptAgent that still exists (or cannot be
/// looked up): Stalled `OwnedElsewhere`.
pub(super) async fn check_owner(
    ctx: &Context,
    agent: &PromptAgent,
    agent_name: &str,
    versions: &[AgentVersionObject],
) -> Result<(), Failure> {
    let me = ObjectId::of(agent);
    // An agent without a marker, or with the constant marker of earlier releases, is treated as
    // ours, so that agents made before ownership was recorded per object keep working after an
    // upgrade (the next version records this object).
    if let Ownership::Foreign(owner) = ownership(agent_marker(versions).as_ref(), &me) {
        let state = owner_state(&ctx.client, &ctx.stores.agents, &owner).await;
        if state.blocks() {
            return Err(Failure::permanent(
                reasons::OWNED_ELSEWHERE,
                owned_elsewhere_message(
                    &Taken {
                        what: &format!("Foundry agent \"{agent_name}\""),
                        kind: KIND,
                        fix: "spec.agentName",
                        adopt: false,
                    },
                    &owner,
                    &state,
                ),
            ));
        }
        info!(agent = %agent_name, previous_owner = %owner, "Taking over an agent whose owner is gone");
    }
    Ok(())
}

/// The last look at Foundry, or a transient failure when none was made.
pub(super) fn remembered<T: Clone>(last: Option<&T>) -> Result<Look<T>, Failure> {
    let found = last.cloned().ok_or_else(|| {
        Failure::transient(reasons::PROGRESSING, "The agent's versions were not read")
    })?;
    Ok(Look {
        found,
        fresh: false,
    })
}
