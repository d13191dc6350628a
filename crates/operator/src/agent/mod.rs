//! PromptAgent controller.
//!
//! Pipeline: resolve → validate → build → hash → apply → verify → status.
//! - resolve: the instructions (inline, or a ConfigMap key of this namespace, missing → a grace
//!   period, then Stalled `ConfigMapNotFound`), the FoundryProject, the GatewayConnection (Ready at
//!   its generation → `ConnectionResolved`) and the model among its models (`ModelResolved`).
//!   The spec is validated right after the instructions are read, so a spec error shows at once,
//!   even while the connection is not Ready, and an unsupported tool never reaches Foundry.
//! - validate → build → hash: [`crate::agent_definition::desired_version`], pure.
//! - apply: list the agent's versions (on a new definition, a Flux request, or once per resync);
//!   when they name another PromptAgent (the same agent name in another namespace of the same
//!   Foundry project) that still exists, or cannot be looked up, Stalled `OwnedElsewhere` and
//!   nothing is written (looked at again once per resync); otherwise create a version only when
//!   the newest one is not this object's with the same hash. The hash and the owner live in the
//!   version's metadata, so a crash between create and status write creates no duplicate, and a
//!   version made by hand is replaced at the next look.
//! - verify (`spec.verify`): once per version, a conversation and a response through the gateway,
//!   the reply checked, the conversation deleted; a failure is retried with backoff.
//! - status: computed in full ([`report::desired_status`]) and written only when it differs.
//!
//! `managementPolicy: Observe`: resolve, validate, build and hash as above, then list the
//! versions and check the owner (another live owner is Stalled `OwnedElsewhere`), and report in
//! `Drifted` whether the newest version is this object's with this hash and, when not, what of
//! its content differs ([`agent_definition::observe_versions`]). No version is created, no
//! verification runs (`Verified` Unknown, reason Observing), a missing agent is Ready=False
//! `NotFoundInFoundry`, and deletion leaves the agent in place. Under Full there is no `Drifted`.
//!
//! Deletion: a finalizer deletes the agent in Foundry (`deletionPolicy: Delete`, 404 counts as
//! done; every version when Foundry refuses to delete the agent) when its versions name this
//! object and the newest one was made by the operator; never when they name another object. It
//! leaves it with `Orphan`. It needs only the project, not the connection.

pub mod report;
pub mod tracker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_gateway_api::agent::{AgentVersionRef, ManagementPolicy, VerifySpec};
use foundry_gateway_api::common::DeletionPolicy;
use foundry_gateway_api::conditions::{reasons, types};
use foundry_gateway_api::connection::ConnectionScope;
use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent, PromptAgentStatus};
use foundry_gateway_client::project::{
    AgentReference, CreateConversationRequest, CreateResponseRequest, ListOptions,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use self::report::{Check, DriftedCondition, Report, Served, VerifiedCondition};
use self::tracker::{Observed, Subject, Synced, Tracker, Verification};
use crate::agent_definition::{
    self, Deletion, DesiredVersion, ValidationError, VersionPlan, agent_marker, newest_version,
};
use crate::context::{Context, REQUESTED_AT_ANNOTATION, same_status};
use crate::controller::{ObjectKey, PerObject, RefKind, RetryKey, Scoped};
use crate::failure::Failure;
use crate::ownership::{
    ObjectId, Ownership, Taken, owned_elsewhere_message, owner_state, ownership,
};
use crate::project::{self, ResolvedProject};
use crate::status::Outcome;

const KIND: &str = "PromptAgent";
/// How soon to look again at a version Foundry is still creating.
const CREATING_POLL: Duration = Duration::from_secs(5);
/// Shortest wait for a project that is not there yet.
const MIN_WAIT: Duration = Duration::from_secs(5);
/// Page size of version listings (Foundry's maximum).
const LIST_PAGE: u32 = 100;
/// How soon an agent waiting for its connection looks again.
const CONNECTION_RECHECK: Duration = Duration::from_secs(3);
/// Shortest wait before a failed verification runs again (each one spends tokens).
const VERIFY_RETRY_MIN: Duration = Duration::from_secs(30);

/// Per-agent memory of the controller (with the object's uid: a recreated object starts afresh).
pub type Memory = PerObject<Tracker>;

/// The context the agent controller runs with.
pub type Ctx = Scoped<Memory>;

pub use crate::controller::Error;

/// Reconciles one PromptAgent.
#[instrument(skip_all, fields(kind = KIND, namespace = agent.namespace().unwrap_or_default(), name = agent.name_any()))]
pub async fn reconcile(agent: Arc<PromptAgent>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::controller::with_finalizer(agent, ctx, apply, cleanup).await
}

/// Requeue policy for errors that escaped the reconcile (status could not be written, or
/// deletion waits).
pub fn error_policy(agent: Arc<PromptAgent>, error: &Error, ctx: Arc<Ctx>) -> Action {
    crate::controller::error_policy(agent, error, ctx)
}

/// Keys of the per-object state of one agent.
struct Keys {
    /// The object: memory, backoff and missing references.
    object: ObjectKey,
    /// Its uid (memory of a recreated object starts afresh).
    uid: String,
}

impl Keys {
    fn of(agent: &PromptAgent) -> Self {
        Self {
            object: ObjectKey::of(agent),
            uid: agent.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Backoff of failed verifications, apart from the object's.
    fn verify(&self) -> RetryKey {
        RetryKey::Verify(self.object.clone())
    }

    fn config_map(&self, name: &str, key: &str) -> RetryKey {
        RetryKey::reference(&self.object, RefKind::ConfigMap, name, key)
    }
}

/// How a pipeline that ran to its end left the agent.
struct Pass {
    outcome: Outcome,
    next: Duration,
}

async fn apply(agent: &PromptAgent, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let keys = Keys::of(agent);
    let generation = agent.metadata.generation.unwrap_or(0);
    let mut tracker = ctx.memory.get(&keys.object, &keys.uid);
    let requested = agent.annotations().get(REQUESTED_AT_ANNOTATION).cloned();
    let forced = requested.is_some() && requested != tracker.handled_request;

    let mut live = agent.status.clone().unwrap_or_default();
    if live.conditions.is_empty() {
        let first = report::first_status(generation, requested.clone(), Timestamp::now());
        crate::apply_status::<PromptAgent>(&ctx.client, &namespace, &name, &first).await?;
        live = first;
    }

    let mut report = Report::default();
    let step = pipeline(agent, ctx, &keys, &mut tracker, &mut report, &live, forced).await;
    let (outcome, next) = match step {
        Ok(Pass { outcome, next }) => {
            ctx.reset_backoff(&keys.object);
            (outcome, next)
        }
        Err(failure) => {
            ctx.metrics.observe_failure(KIND, failure.label());
            let next = match &failure {
                Failure::Transient { retry_after, .. } => ctx.backoff(&keys.object, *retry_after),
                // Another object owns the agent: a person acts by deleting that object, which may
                // live in a namespace this controller does not watch, so look again once per
                // resync (listing the versions and one lookup, no write while it lives).
                Failure::Permanent { reason, .. } if reason == reasons::OWNED_ELSEWHERE => {
                    ctx.settings.resync
                }
                Failure::Permanent { .. } => Duration::MAX,
                // A connection or model that is missing heals when the connection changes, which
                // triggers this agent; but that trigger can arrive before the connection store
                // has the change, so look again soon (store reads only, no Foundry call).
                Failure::Waiting { reason, .. }
                    if reason == reasons::CONNECTION_NOT_READY
                        || reason == reasons::MODEL_NOT_FOUND =>
                {
                    ctx.settings.resync.min(CONNECTION_RECHECK)
                }
                Failure::Waiting { .. } => ctx.backoff(&keys.object, None).max(MIN_WAIT),
            };
            (failure.outcome(), next)
        }
    };
    let new_status = report::desired_status(
        &live,
        &report,
        &outcome,
        generation,
        requested.clone(),
        Timestamp::now(),
    );
    if !same_status(Some(&live), &new_status) {
        crate::apply_status::<PromptAgent>(&ctx.client, &namespace, &name, &new_status).await?;
        announce(ctx, agent, &live, &new_status).await;
    }
    tracker.handled_request = requested;
    ctx.memory.put(&keys.object, &keys.uid, tracker);
    Ok(if next == Duration::MAX {
        Action::await_change()
    } else {
        Action::requeue(next)
    })
}

async fn pipeline(
    agent: &PromptAgent,
    ctx: &Context,
    keys: &Keys,
    tracker: &mut Tracker,
    report: &mut Report,
    live: &PromptAgentStatus,
    forced: bool,
) -> Result<Pass, Failure> {
    let namespace = agent.namespace().unwrap_or_default();
    let generation = agent.metadata.generation.unwrap_or(0);
    let observe = observing(agent);
    if !observe {
        report.drifted = DriftedCondition::Remove;
    }

    // resolve: instructions; validate
    let instructions = resolve_instructions(ctx, agent, keys).await?;
    let agent_name = agent_definition::agent_name(&agent.spec, &agent.name_any())
        .map_err(invalid)?
        .to_owned();
    agent_definition::validate(&agent.spec, instructions.as_deref()).map_err(invalid)?;

    // resolve: project, connection, model
    let project = resolve_project(ctx, agent, &namespace).await?;
    let connection = &agent.spec.model.connection_ref.name;
    let gc = ctx
        .stores
        .connections
        .get(&ObjectRef::<GatewayConnection>::new(connection).within(&namespace));
    let facts = match report::check_connection(gc.as_deref(), connection) {
        Ok((facts, check)) => {
            report.connection = Some(check);
            facts
        }
        Err(check) => {
            let failure = Failure::Waiting {
                reason: check.reason.clone(),
                message: check.message.clone(),
            };
            report.connection = Some(check);
            return Err(failure);
        }
    };
    if let Some(gc) = gc.as_deref()
        && let Err(message) = connection_reachable(ctx, agent, gc, &namespace, &project)
    {
        let check = Check {
            ok: false,
            reason: reasons::CONNECTION_NOT_READY.to_owned(),
            message,
        };
        report.connection = Some(check.clone());
        return Err(Failure::Waiting {
            reason: check.reason,
            message: check.message,
        });
    }
    let model = report::check_model(&facts, connection, &agent.spec.model.name);
    report.model = Some(model.clone());
    if !model.ok {
        return Err(Failure::Waiting {
            reason: model.reason,
            message: model.message,
        });
    }

    // build + hash
    let desired = agent_definition::desired_version(
        &agent.spec,
        &facts.connection_name,
        instructions.as_deref(),
        &ObjectId::of(agent),
    )
    .map_err(invalid)?;

    let target = format!("{}#{agent_name}", project.endpoint);
    if observe {
        return observe_pass(
            ctx,
            agent,
            &project,
            &agent_name,
            &desired,
            &target,
            tracker,
            report,
            forced,
        )
        .await;
    }

    // apply
    if forced || tracker.foundry_check_due(&target, &desired.spec_hash, ctx.settings.resync) {
        sync(
            ctx,
            agent,
            &project,
            &agent_name,
            &desired,
            &target,
            tracker,
        )
        .await?;
    }
    let Some(synced) = tracker.synced.clone() else {
        return Err(Failure::transient(
            reasons::PROGRESSING,
            "The agent's versions were not read",
        ));
    };
    let served = synced.served;
    report.served = Some(served.clone());
    let who = format!(
        "Agent {} version {}",
        served.agent.name, served.agent.version
    );
    match synced.state.as_deref() {
        Some("failed") => {
            return Err(Failure::permanent(
                reasons::REJECTED_BY_FOUNDRY,
                format!("{who} failed in Foundry; change the spec to create a new version"),
            ));
        }
        Some("creating") => {
            return Ok(Pass {
                outcome: Outcome::Progressing {
                    message: format!("{who} is being created in Foundry"),
                },
                next: CREATING_POLL,
            });
        }
        _ => {}
    }
    let ready = Outcome::Ready {
        message: format!("{who} runs on {}", served.model),
    };

    // verify
    let Some(verify) = &agent.spec.verify else {
        report.verified = VerifiedCondition::Remove;
        return Ok(Pass {
            outcome: ready,
            next: ctx.settings.resync,
        });
    };
    let subject = Subject {
        agent: served.agent.clone(),
        verify: verify.clone(),
    };
    if tracker.verdict(&subject).is_none()
        && let Some(check) = report::verified_in_status(live, generation, &served.agent)
    {
        tracker.verification = Some(Verification {
            subject: subject.clone(),
            check,
            at: None,
            retry_in: Duration::ZERO,
            generation,
        });
    }
    if forced || tracker.verification_due(&subject, generation) {
        let (check, retry_after) = run_verification(&project, &served.agent, verify).await;
        let retry_in = if check.ok {
            info!(agent = %served.agent.name, version = %served.agent.version, "Verified agent");
            ctx.reset_backoff(keys.verify());
            Duration::ZERO
        } else {
            warn!(agent = %served.agent.name, version = %served.agent.version, reason = %check.reason, "Verification failed");
            ctx.metrics.observe_failure(KIND, &check.reason);
            ctx.backoff(keys.verify(), retry_after)
                .max(VERIFY_RETRY_MIN)
        };
        tracker.verification = Some(Verification {
            subject: subject.clone(),
            check,
            at: Some(Instant::now()),
            retry_in,
            generation,
        });
    }
    let check = tracker
        .verdict(&subject)
        .cloned()
        .unwrap_or_else(|| Check::fail(reasons::VERIFICATION_FAILED, "Not verified yet"));
    report.verified = VerifiedCondition::Set(check.clone());
    if check.ok {
        Ok(Pass {
            outcome: ready,
            next: ctx.settings.resync,
        })
    } else {
        let retry = tracker
            .until_verification_retry()
            .unwrap_or(ctx.settings.resync)
            .max(Duration::from_secs(1));
        Ok(Pass {
            outcome: Outcome::NotReady {
                reason: check.reason,
                message: check.message,
            },
            next: retry.min(ctx.settings.resync),
        })
    }
}

/// Whether the object only observes Foundry (`managementPolicy: Observe`).
fn observing(agent: &PromptAgent) -> bool {
    agent.spec.management_policy.unwrap_or_default() == ManagementPolicy::Observe
}

/// The rest of the pipeline under `managementPolicy: Observe`: list the versions (when due),
/// compare, report. Writes nothing to Foundry.
#[allow(clippy::too_many_arguments)]
async fn observe_pass(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    agent_name: &str,
    desired: &DesiredVersion,
    target: &str,
    tracker: &mut Tracker,
    report: &mut Report,
    forced: bool,
) -> Result<Pass, Failure> {
    if forced || tracker.observe_check_due(target, &desired.spec_hash, ctx.settings.resync) {
        let versions = project
            .data
            .list_versions(agent_name, &list_options())
            .await
            .map_err(|e| Failure::from_foundry("list the agent's versions", &e))?;
        check_owner(ctx, agent, agent_name, &versions).await?;
        let me = ObjectId::of(agent);
        let observation = agent_definition::observe_versions(&versions, desired, &me);
        let newest = newest_version(&versions);
        let served = newest.map(|v| Served {
            agent: AgentVersionRef {
                name: agent_name.to_owned(),
                version: v.version.clone(),
            },
            model: v
                .definition
                .as_prompt()
                .map_or_else(|| desired.model.clone(), |p| p.model.clone()),
            spec_hash: desired.spec_hash.clone(),
        });
        if tracker.observed.as_ref().map(|o| &o.observation) != Some(&observation) {
            info!(agent = %agent_name, ?observation, "Observed agent");
        }
        let creating = newest.and_then(|v| v.status.as_deref()) == Some("creating");
        tracker.observed = Some(Observed {
            target: target.to_owned(),
            spec_hash: desired.spec_hash.clone(),
            observation,
            served,
            state: newest.and_then(|v| v.status.clone()),
        });
        tracker.synced = None;
        tracker.last_foundry_check = (!creating).then(Instant::now);
    }
    let Some(observed) = tracker.observed.clone() else {
        return Err(Failure::transient(
            reasons::PROGRESSING,
            "The agent's versions were not read",
        ));
    };
    let (drifted, reason, message) =
        agent_definition::drifted_condition(&observed.observation, agent_name);
    report.drifted = DriftedCondition::Set(drifted, reason.to_owned(), message);
    report.verified = if agent.spec.verify.is_some() {
        VerifiedCondition::Observing
    } else {
        VerifiedCondition::Remove
    };
    let Some(served) = observed.served else {
        return Ok(Pass {
            outcome: Outcome::NotReady {
                reason: reasons::NOT_FOUND_IN_FOUNDRY.to_owned(),
                message: format!(
                    "Foundry agent {agent_name} does not exist in Foundry and managementPolicy is Observe: create it in Foundry, or set managementPolicy: Full to let the operator create it"
                ),
            },
            next: ctx.settings.resync,
        });
    };
    report.served = Some(served.clone());
    let who = format!(
        "Agent {} version {}",
        served.agent.name, served.agent.version
    );
    let pass = match observed.state.as_deref() {
        Some("failed") => Pass {
            outcome: Outcome::NotReady {
                reason: reasons::REJECTED_BY_FOUNDRY.to_owned(),
                message: format!("{who} failed in Foundry"),
            },
            next: ctx.settings.resync,
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
            next: ctx.settings.resync,
        },
    };
    Ok(pass)
}

/// Refuses an agent whose versions name another PromptAgent that still exists (or cannot be
/// looked up): Stalled `OwnedElsewhere`.
async fn check_owner(
    ctx: &Context,
    agent: &PromptAgent,
    agent_name: &str,
    versions: &[foundry_gateway_client::project::AgentVersionObject],
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

fn invalid(error: ValidationError) -> Failure {
    Failure::permanent(error.reason(), error.to_string())
}

/// The instructions: inline, or the value of the `instructionsFrom` ConfigMap key. A missing
/// ConfigMap or key is transient during the grace period (it may be applied right after the
/// agent), then permanent.
async fn resolve_instructions(
    ctx: &Context,
    agent: &PromptAgent,
    keys: &Keys,
) -> Result<Option<String>, Failure> {
    // Both set is refused by validate; the inline text is enough to get there.
    if let Some(text) = &agent.spec.instructions {
        return Ok(Some(text.clone()));
    }
    let Some(from) = &agent.spec.instructions_from else {
        return Ok(None);
    };
    let namespace = agent.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_map = api.get_opt(&from.name).await?;
    let missing = keys.config_map(&from.name, &from.key);
    let value = config_map.as_ref().and_then(|cm| {
        cm.data
            .as_ref()
            .and_then(|d| d.get(&from.key).cloned())
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(&from.key))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            })
    });
    if let Some(value) = value {
        ctx.found(&missing);
        return Ok(Some(value));
    }
    let what = if config_map.is_some() {
        format!(
            "spec.instructionsFrom: ConfigMap {} has no text key {:?}",
            from.name, from.key
        )
    } else {
        format!(
            "spec.instructionsFrom: ConfigMap {} does not exist in namespace {namespace}",
            from.name
        )
    };
    if ctx.missing_past_grace(&missing) {
        Err(Failure::permanent(
            reasons::CONFIG_MAP_NOT_FOUND,
            format!("{what}; create it or fix the reference"),
        ))
    } else {
        Err(Failure::Transient {
            reason: reasons::CONFIG_MAP_NOT_FOUND.to_owned(),
            message: format!("{what}; waiting for it"),
            retry_after: None,
        })
    }
}

/// Whether the agent's project can use the connection: a project-scope connection serves its
/// own project only; an account-scope one every project of the same Foundry account.
fn connection_reachable(
    ctx: &Context,
    agent: &PromptAgent,
    gc: &GatewayConnection,
    namespace: &str,
    project: &ResolvedProject,
) -> Result<(), String> {
    let theirs = &gc.spec.project_ref.name;
    let ours = &agent.spec.project_ref.name;
    let connection = gc.name_any();
    match gc.spec.scope.unwrap_or_default() {
        ConnectionScope::Project if theirs == ours => Ok(()),
        ConnectionScope::Project => Err(format!(
            "GatewayConnection {connection} is a connection of FoundryProject {theirs}, not of {ours}; give it scope: Account (same Foundry account) or use a connection of {ours}"
        )),
        ConnectionScope::Account => {
            let their_project = ctx
                .stores
                .projects
                .get(&ObjectRef::<FoundryProject>::new(theirs).within(namespace))
                .ok_or_else(|| {
                    format!(
                        "FoundryProject {theirs} of GatewayConnection {connection} does not exist"
                    )
                })?;
            let (their_id, _) = project::project_identity(&their_project.spec).map_err(|f| {
                format!("FoundryProject {theirs} is not usable: {}", message_of(&f))
            })?;
            let mine = &project.resource_id;
            let same_account = their_id
                .subscription_id
                .eq_ignore_ascii_case(&mine.subscription_id)
                && their_id
                    .resource_group
                    .eq_ignore_ascii_case(&mine.resource_group)
                && their_id.account.eq_ignore_ascii_case(&mine.account);
            if same_account {
                Ok(())
            } else {
                Err(format!(
                    "GatewayConnection {connection} lives on Foundry account {} and FoundryProject {ours} on account {}; an account-scope connection serves only the projects of its own account",
                    their_id.account, mine.account
                ))
            }
        }
    }
}

async fn resolve_project(
    ctx: &Context,
    agent: &PromptAgent,
    namespace: &str,
) -> Result<Arc<ResolvedProject>, Failure> {
    let name = &agent.spec.project_ref.name;
    let project_ref = ObjectRef::<FoundryProject>::new(name).within(namespace);
    let Some(project) = ctx.stores.projects.get(&project_ref) else {
        return Err(Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!("FoundryProject {name} does not exist in namespace {namespace}"),
        });
    };
    project::resolve(ctx, &project, false)
        .await
        .map_err(|f| Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!("FoundryProject {name} is not usable: {}", message_of(&f)),
        })
}

/// Lists the agent's versions, refuses an agent another live object owns, and creates a version
/// when the newest is not this object's with this hash.
async fn sync(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    agent_name: &str,
    desired: &DesiredVersion,
    target: &str,
    tracker: &mut Tracker,
) -> Result<(), Failure> {
    let versions = project
        .data
        .list_versions(agent_name, &list_options())
        .await
        .map_err(|e| Failure::from_foundry("list the agent's versions", &e))?;
    let me = ObjectId::of(agent);
    check_owner(ctx, agent, agent_name, &versions).await?;
    let plan = agent_definition::plan_version(&versions, desired, &me);
    let served = plan
        .served()
        .and_then(|v| versions.iter().find(|live| live.version == v));
    let (version, state) = match served {
        Some(newest) => {
            let announced = tracker
                .synced
                .as_ref()
                .is_some_and(|s| s.served.agent.version == newest.version);
            if matches!(plan, VersionPlan::AdoptAsIs(_)) && !announced {
                info!(agent = %agent_name, version = %newest.version, "Adopted agent as it is: its newest version holds what the spec would send");
                publish(
                    ctx,
                    agent,
                    EventType::Normal,
                    "VersionAdopted",
                    format!(
                        "Serving agent version {agent_name}:{} as it is: it holds what the spec would send, so no version was created",
                        newest.version
                    ),
                )
                .await;
            }
            (newest.version.clone(), newest.status.clone())
        }
        None => {
            let why = report::why_new_version(&versions, &me);
            let created = project
                .data
                .create_version(agent_name, &desired.request)
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
            (created.version, created.status)
        }
    };
    let creating = state.as_deref() == Some("creating");
    tracker.observed = None;
    tracker.synced = Some(Synced {
        target: target.to_owned(),
        served: Served {
            agent: AgentVersionRef {
                name: agent_name.to_owned(),
                version,
            },
            model: desired.model.clone(),
            spec_hash: desired.spec_hash.clone(),
        },
        state,
    });
    // A version still being created is looked at again at the next reconcile.
    tracker.last_foundry_check = (!creating).then(Instant::now);
    Ok(())
}

/// Asks the version `input` in a fresh conversation, checks the reply, and deletes the
/// conversation whatever happened. Returns the verdict and the server's retry hint.
async fn run_verification(
    project: &ResolvedProject,
    agent: &AgentVersionRef,
    verify: &VerifySpec,
) -> (Check, Option<Duration>) {
    let expect = verify.expect.as_deref();
    let conversation = match project
        .data
        .conversations_create(&CreateConversationRequest::default())
        .await
    {
        Ok(conversation) => conversation,
        Err(error) => {
            let why =
                message_of(&Failure::from_foundry("create a conversation", &error)).to_owned();
            return (
                report::verification_check(agent, Err(why), expect),
                error.retry_after(),
            );
        }
    };
    let mut request = CreateResponseRequest::new(
        AgentReference::new(&agent.name, Some(agent.version.clone())),
        &verify.input,
    );
    request.conversation = Some(conversation.id.clone());
    let reply = project.data.responses_create(&request).await;
    if let Err(error) = project.data.conversations_delete(&conversation.id).await {
        warn!(conversation = %conversation.id, error = %error.label(), "Failed to delete verification conversation");
    }
    match reply {
        Ok(response) => (
            report::verification_check(agent, Ok(&response.output_text), expect),
            None,
        ),
        Err(error) => {
            let why = message_of(&Failure::from_foundry("get a reply", &error)).to_owned();
            (
                report::verification_check(agent, Err(why), expect),
                error.retry_after(),
            )
        }
    }
}

fn message_of(failure: &Failure) -> &str {
    match failure {
        Failure::Transient { message, .. }
        | Failure::Permanent { message, .. }
        | Failure::Waiting { message, .. } => message,
    }
}

fn list_options() -> ListOptions {
    ListOptions {
        limit: Some(LIST_PAGE),
        ..ListOptions::default()
    }
}

async fn publish(ctx: &Context, agent: &PromptAgent, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &agent.object_ref(&())).await {
        warn!(%error, "Failed to publish an event");
    }
}

/// Events for what a user should see: only on transitions, so a quiet resync publishes nothing.
async fn announce(
    ctx: &Context,
    agent: &PromptAgent,
    old: &PromptAgentStatus,
    new: &PromptAgentStatus,
) {
    let stalled = |s: &PromptAgentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::STALLED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = stalled(new)
        && stalled(old) != Some((reason.clone(), message.clone()))
    {
        warn!(%reason, "Stalled");
        publish(ctx, agent, EventType::Warning, &reason, message).await;
    }
    let verified = |s: &PromptAgentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::VERIFIED)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let version_changed = old.agent != new.agent;
    match (verified(old), verified(new)) {
        (old_verdict, Some((status, _, message)))
            if status == "True"
                && (version_changed
                    || old_verdict.as_ref().is_none_or(|(s, _, _)| s != "True")) =>
        {
            publish(ctx, agent, EventType::Normal, "Verified", message).await;
        }
        (old_verdict, Some((status, reason, message)))
            if status == "False"
                && (version_changed
                    || old_verdict
                        .as_ref()
                        .is_none_or(|(s, r, _)| s != "False" || *r != reason)) =>
        {
            publish(ctx, agent, EventType::Warning, &reason, message).await;
        }
        _ => {}
    }
}

async fn cleanup(agent: &PromptAgent, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = agent.namespace().unwrap_or_default();
    let name = agent.name_any();
    let keys = Keys::of(agent);
    if observing(agent) {
        info!("Left agent in Foundry: managementPolicy is Observe");
    } else if agent.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Delete {
        // A name Foundry cannot hold was never created there.
        if let Ok(agent_name) = agent_definition::agent_name(&agent.spec, &name) {
            match project::find(ctx, &namespace, &agent.spec.project_ref.name).await? {
                Some(project) => {
                    let resolved =
                        project::resolve(ctx, &project, false)
                            .await
                            .map_err(|failure| Error::DeletionPending {
                                message: format!(
                                    "cannot reach the project to delete the agent ({})",
                                    failure.label()
                                ),
                                retry_after: ctx.backoff(&keys.object, None),
                            })?;
                    delete_agent(
                        ctx,
                        &keys.object,
                        &resolved,
                        agent_name,
                        &ObjectId::of(agent),
                    )
                    .await?;
                }
                None => warn!(
                    agent = %agent_name,
                    "FoundryProject is gone; left the agent in Foundry"
                ),
            }
        }
    }
    if let Some(from) = &agent.spec.instructions_from {
        ctx.found(&keys.config_map(&from.name, &from.key));
    }
    ctx.memory.forget(&keys.object);
    ctx.reset_backoff(&keys.object);
    ctx.reset_backoff(keys.verify());
    Ok(Action::await_change())
}

/// Deletes the agent when its versions are this object's ([`agent_definition::deletion`]); every
/// version when Foundry refuses to delete the agent itself. Never an agent another object owns.
async fn delete_agent(
    ctx: &Context,
    key: &ObjectKey,
    project: &ResolvedProject,
    agent_name: &str,
    me: &ObjectId,
) -> Result<(), Error> {
    let pending = |what: &str, error: &foundry_gateway_client::Error| {
        warn!(agent = %agent_name, step = what, error = %error.label(), "Failed to delete agent");
        Error::DeletionPending {
            message: format!("failed to {what} ({})", error.label()),
            retry_after: ctx.backoff(key, error.retry_after()),
        }
    };
    let versions = project
        .data
        .list_versions(agent_name, &list_options())
        .await
        .map_err(|e| pending("list the agent's versions", &e))?;
    match agent_definition::deletion(&versions, me) {
        Deletion::Nothing => return Ok(()),
        Deletion::OwnedElsewhere(owner) => {
            info!(agent = %agent_name, %owner, "Left agent in place: another object manages it");
            return Ok(());
        }
        Deletion::MadeElsewhere => {
            info!(agent = %agent_name, "Left agent in place: its newest version was not made by the operator");
            return Ok(());
        }
        Deletion::Delete => {}
    }
    match project.data.delete(agent_name).await {
        Ok(()) => {
            info!(agent = %agent_name, "Deleted agent");
            Ok(())
        }
        Err(error) if refused(&error) => {
            let live = versions
                .iter()
                .filter(|v| !matches!(v.status.as_deref(), Some("deleting" | "deleted")));
            let mut deleted = 0_usize;
            for version in live {
                project
                    .data
                    .delete_version(agent_name, &version.version)
                    .await
                    .map_err(|e| pending("delete an agent version", &e))?;
                deleted = deleted.saturating_add(1);
            }
            info!(agent = %agent_name, versions = deleted, "Deleted agent versions");
            Ok(())
        }
        Err(error) => Err(pending("delete the agent", &error)),
    }
}

/// Whether Foundry refused the request itself (not the identity, not a passing failure).
fn refused(error: &foundry_gateway_client::Error) -> bool {
    matches!(error.status(), Some(s) if (400..500).contains(&s) && !matches!(s, 401 | 403 | 404 | 408 | 429))
}
