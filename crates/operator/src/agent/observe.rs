//! Step "sync" under `managementPolicy: Observe`: list the versions (when due), check the owner
//! (another live owner is Stalled `OwnedElsewhere`), and compare
//! ([`agent_definition::observe_versions`]). Writes nothing to Foundry; [`seen`], what status
//! says of an observation, is pure.

use std::time::Duration;

use foundry_gateway_api::PromptAgent;
use foundry_gateway_api::agent::AgentVersionRef;
use foundry_gateway_api::conditions::reasons;
use tracing::info;

use super::CREATING_POLL;
use super::desired::Desired;
use super::pass::{Pass, Start};
use super::report::{DriftedCondition, Served, VerifiedCondition};
use super::sync::{check_owner, list_versions, remembered};
use super::tracker::{Look, Observed};
use crate::agent_definition::{self, newest_version};
use crate::context::Context;
use crate::failure::Failure;
use crate::ownership::ObjectId;
use crate::project::ResolvedProject;
use crate::status::Outcome;

/// What Foundry holds for the spec (read when a look is due, else the last look), and what
/// status says of it.
pub(super) async fn observe(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    desired: &Desired,
    start: &Start,
) -> Result<(Look<Observed>, Seen), Failure> {
    let (target, hash) = (&desired.target, &desired.version.spec_hash);
    let due = start
        .memory
        .observe_check_due(target, hash, ctx.settings.resync);
    let look = if start.forced || due {
        Look::fresh(read(ctx, agent, project, desired, start).await?)
    } else {
        remembered(start.memory.observed.as_ref())?
    };
    let seen = seen(agent, &desired.agent_name, &look.found, ctx.settings.resync);
    Ok((look, seen))
}

/// Lists the versions, checks the owner, and compares.
async fn read(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    desired: &Desired,
    start: &Start,
) -> Result<Observed, Failure> {
    let (target, hash) = (&desired.target, &desired.version.spec_hash);
    let agent_name = &desired.agent_name;
    let versions = list_versions(project, agent_name).await?;
    check_owner(ctx, agent, agent_name, &versions).await?;
    let me = ObjectId::of(agent);
    let observation = agent_definition::observe_versions(&versions, &desired.version, &me);
    let newest = newest_version(&versions);
    let served = newest.map(|v| Served {
        agent: AgentVersionRef {
            name: agent_name.clone(),
            version: v.version.clone(),
        },
        model: v
            .definition
            .as_prompt()
            .map_or_else(|| desired.version.model.clone(), |p| p.model.clone()),
        spec_hash: hash.clone(),
    });
    if start.memory.observed.as_ref().map(|o| &o.observation) != Some(&observation) {
        info!(agent = %agent_name, ?observation, "Observed agent");
    }
    Ok(Observed {
        target: target.clone(),
        spec_hash: hash.clone(),
        observation,
        served,
        state: newest.and_then(|v| v.status.clone()),
    })
}

/// What status says of an observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Seen {
    /// `Drifted`.
    pub drifted: DriftedCondition,
    /// `Verified`: Unknown (Observing) with `spec.verify`, else none.
    pub verified: VerifiedCondition,
    /// The newest version (`None`: the agent does not exist).
    pub served: Option<Served>,
    /// Ready when the newest version is active; Ready=False `NotFoundInFoundry` without one.
    pub pass: Pass,
}

/// What status says of `observed`, the last look at the agent `agent_name`. Pure.
pub(super) fn seen(
    agent: &PromptAgent,
    agent_name: &str,
    observed: &Observed,
    resync: Duration,
) -> Seen {
    let (drifted, reason, message) =
        agent_definition::drifted_condition(&observed.observation, agent_name);
    let verified = if agent.spec.verify.is_some() {
        VerifiedCondition::Observing
    } else {
        VerifiedCondition::Remove
    };
    Seen {
        drifted: DriftedCondition::Set(drifted, reason.to_owned(), message),
        verified,
        served: observed.served.clone(),
        pass: observed_pass(agent_name, observed, resync),
    }
}

fn observed_pass(agent_name: &str, observed: &Observed, resync: Duration) -> Pass {
    let Some(served) = &observed.served else {
        return Pass {
            outcome: Outcome::NotReady {
                reason: reasons::NOT_FOUND_IN_FOUNDRY.to_owned(),
                message: format!(
                    "Foundry agent {agent_name} does not exist in Foundry and managementPolicy is Observe: create it in Foundry, or set managementPolicy: Full to let the operator create it"
                ),
            },
            next: resync,
        };
    };
    let who = format!(
        "Agent {} version {}",
        served.agent.name, served.agent.version
    );
    match observed.state.as_deref() {
        Some("failed") => Pass {
            outcome: Outcome::NotReady {
                reason: reasons::REJECTED_BY_FOUNDRY.to_owned(),
                message: format!("{who} failed in Foundry"),
            },
            next: resync,
        },
        Some("creating") => Pass {
            outcome: Outcome::Progressing {
                message: format!("{who} is being created in Foundry"),
            },
            next: CREATING_POLL,
        },
        _ => Pass {
            outcome: Outcome::Ready {
                message: format!(
                    "{who} runs on {} (observed: managementPolicy is Observe, nothing is written)",
                    served.model
                ),
            },
            next: resync,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::agent_definition::AgentObservation;

    const RESYNC: Duration = Duration::from_secs(600);

    fn agent(verify: bool) -> PromptAgent {
        let mut spec = json!({
            "projectRef": {"name": "proj"},
            "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
        });
        if verify && let Some(spec) = spec.as_object_mut() {
            spec.insert("verify".into(), json!({"input": "hi"}));
        }
        serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "PromptAgent",
            "metadata": {"name": "weather", "namespace": "team"},
            "spec": spec,
        }))
        .expect("test agent")
    }

    fn observed(state: Option<&str>, exists: bool) -> Observed {
        Observed {
            target: "p#weather".into(),
            spec_hash: "h".into(),
            observation: if exists {
                AgentObservation::Present {
                    version: "3".into(),
                    ours_with_hash: true,
                    drift: None,
                    older_match: None,
                }
            } else {
                AgentObservation::Missing
            },
            served: exists.then(|| Served {
                agent: AgentVersionRef {
                    name: "weather".into(),
                    version: "3".into(),
                },
                model: "gw/gpt-4o".into(),
                spec_hash: "h".into(),
            }),
            state: state.map(str::to_owned),
        }
    }

    #[test]
    fn an_observation_is_ready_unless_the_agent_is_missing_failed_or_being_created() {
        // (case, Foundry state, exists, Ready status, reason, next)
        let cases = [
            ("active", Some("active"), true, "True", None, RESYNC),
            ("no state", None, true, "True", None, RESYNC),
            (
                "failed",
                Some("failed"),
                true,
                "False",
                Some(reasons::REJECTED_BY_FOUNDRY),
                RESYNC,
            ),
            (
                "creating",
                Some("creating"),
                true,
                "False",
                None,
                CREATING_POLL,
            ),
            (
                "missing",
                None,
                false,
                "False",
                Some(reasons::NOT_FOUND_IN_FOUNDRY),
                RESYNC,
            ),
        ];
        for (case, state, exists, ready, reason, next) in cases {
            let seen = seen(&agent(false), "weather", &observed(state, exists), RESYNC);
            let (status, got_reason) = match &seen.pass.outcome {
                Outcome::Ready { .. } => ("True", None),
                Outcome::NotReady { reason, .. } => ("False", Some(reason.as_str())),
                Outcome::Progressing { .. } => ("False", None),
                other => panic!("{case}: {other:?}"),
            };
            assert_eq!((status, got_reason), (ready, reason), "{case}");
            assert_eq!(seen.pass.next, next, "{case}");
            assert_eq!(seen.served.is_some(), exists, "{case}");
            assert!(matches!(seen.drifted, DriftedCondition::Set(..)), "{case}");
            assert_eq!(seen.verified, VerifiedCondition::Remove, "{case}");
        }
        let with_verify = seen(&agent(true), "weather", &observed(None, true), RESYNC);
        assert_eq!(with_verify.verified, VerifiedCondition::Observing);
    }
}
