//! GatewayConnection controller.
//!
//! Pipeline: resolve (FoundryProject, Secrets of this namespace) → validate → build the ARM body
//! → read the live connection (on change, rotated credentials, a Flux request, or every resync)
//! → PUT only on drift or new credentials → probe the gateway the way Foundry calls it (every
//! `probe.interval`, damped by `probe.failureThreshold`) → status, written only when it differs.
//! Deletion: a finalizer waits for the PromptAgents that use the connection, then deletes it in
//! Foundry (`deletionPolicy: Delete`, 404 counts as done) or leaves it (`Orphan`).
//!
//! `managementPolicy: Observe` ([`observe`]): the read, the owner check (another live owner is
//! Stalled `OwnedElsewhere`; an unmarked connection is simply observed) and the probe run as
//! above, but nothing is written: the difference goes to the `Drifted` condition, a missing
//! connection is Ready=False `NotFoundInFoundry`, and deletion leaves the connection in place.
//! Under `Full` there is no `Drifted` condition.

pub mod build;
pub mod observe;
pub mod probe_plan;
pub mod tracker;
pub mod write_plan;

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_gateway_api::common::DeletionPolicy;
use foundry_gateway_api::conditions::{reasons, types};
use foundry_gateway_api::connection::{
    ConnectionScope, GatewayState, ManagementPolicy, ModelFormat, ProbeMode as SpecProbeMode,
};
use foundry_gateway_api::{FoundryProject, GatewayConnection, GatewayConnectionStatus};
use foundry_gateway_client::SecretString;
use foundry_gateway_client::connections::ConnectionResource;
use foundry_gateway_client::probe::{
    GatewayAuth, GatewaySettings, MAX_PROBE_TIMEOUT, ProbeRequest,
};

use self::probe_plan::{Facts, Plan};
use crate::probes::{ProbeJob, ProbeKind, ProbeStamp};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tracing::{info, instrument, warn};

use self::build::{Desired, ResolvedSecrets};
use self::tracker::Tracker;
use self::write_plan::{Claim, WritePlan};
use crate::context::{Context, REQUESTED_AT_ANNOTATION, same_status};
use crate::controller::{ObjectKey, PerObject, Scoped};
use crate::failure::Failure;
use crate::project::{self, ResolvedProject};
use crate::settings::parse_duration;
use crate::status::{Conditions, Outcome, Stamp};

const KIND: &str = "GatewayConnection";
/// Default probe interval.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Default probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default failure threshold.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Per-connection memory of the controller.
pub type Memory = PerObject<Tracker>;

/// The context the connection controller runs with.
pub type Ctx = Scoped<Memory>;

pub use crate::controller::Error;

fn probe_settings(gc: &GatewayConnection) -> (SpecProbeMode, Option<Duration>, Duration, u32) {
    let probe = gc.spec.probe.clone().unwrap_or_default();
    let interval = probe
        .interval
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_PROBE_INTERVAL);
    let timeout = probe
        .timeout
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_PROBE_TIMEOUT);
    let threshold = probe
        .failure_threshold
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(DEFAULT_FAILURE_THRESHOLD);
    let mode = probe.mode.unwrap_or_default();
    let interval = (mode != SpecProbeMode::Off).then_some(interval);
    (mode, interval, timeout, threshold)
}

/// Whether the object only observes Foundry (`managementPolicy: Observe`).
fn observing(gc: &GatewayConnection) -> bool {
    gc.spec.management_policy.unwrap_or_default() == ManagementPolicy::Observe
}

/// Whether another GatewayConnection of the installation names the same Foundry connection
/// (same FoundryProject name, scope and connection name; over-approximated across namespaces).
fn named_elsewhere(ctx: &Context, gc: &GatewayConnection, connection: &str) -> bool {
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

/// Where the Foundry connection lives.
fn scope_of(gc: &GatewayConnection) -> ConnectionScope {
    gc.spec.scope.unwrap_or_default()
}

/// The model a probe asks for: `probe.model`, else the first static model.
fn probe_model(gc: &GatewayConnection, desired: &Desired) -> Option<String> {
    gc.spec
        .probe
        .as_ref()
        .and_then(|p| p.model.clone())
        .or_else(|| desired.static_models.first().cloned())
}

/// Which probe the connection gets (see [`probe_plan`]), and the model it asks for.
fn probe_plan_of(
    gc: &GatewayConnection,
    desired: &Desired,
    mode: SpecProbeMode,
) -> (Option<Plan>, Option<String>) {
    let model = probe_model(gc, desired);
    let anthropic = gc
        .spec
        .models
        .as_ref()
        .into_iter()
        .flat_map(|m| m.static_models.iter().flatten())
        .any(|m| Some(&m.name) == model.as_ref() && m.format == Some(ModelFormat::Anthropic));
    let facts = Facts {
        entra: gc.spec.auth.entra_id.is_some(),
        has_model: model.is_some(),
        discovers: desired.discovery.is_some(),
        anthropic,
    };
    (probe_plan::plan(mode, facts), model)
}

/// The probe to submit for the connection.
fn probe_job(
    gc: &GatewayConnection,
    desired: &Desired,
    secrets: &ResolvedSecrets,
    project: &Arc<ResolvedProject>,
    (mode, timeout): (SpecProbeMode, Duration),
) -> Option<ProbeKind> {
    match probe_plan_of(gc, desired, mode) {
        (Some(Plan::Foundry), Some(model)) => Some(ProbeKind::Foundry {
            project: Arc::clone(project),
            model: format!("{}/{model}", desired.name),
            timeout: timeout.min(MAX_PROBE_TIMEOUT),
        }),
        (Some(Plan::Direct(direct)), model) => Some(ProbeKind::Gateway(Box::new(ProbeRequest {
            settings: gateway_settings(gc, desired, secrets, project),
            mode: direct,
            model,
            timeout,
        }))),
        // Off; or mode Foundry without a model, which the CRD refuses and Auto never plans.
        (None, _) | (Some(Plan::Foundry), None) => None,
    }
}

/// Reads every Secret value the spec refers to.
async fn resolve_secrets(
    ctx: &Context,
    gc: &GatewayConnection,
    key: &ObjectKey,
) -> Result<ResolvedSecrets, Failure> {
    let namespace = gc.namespace().unwrap_or_default();
    let mut secrets = ResolvedSecrets::default();
    if let Some(api_key) = &gc.spec.auth.api_key {
        let r = &api_key.secret_ref;
        secrets.api_key = Some(
            project::read_secret_key(ctx, &namespace, &r.name, &r.key, key)
                .await?
                .0
                .into(),
        );
    }
    if let Some(oauth) = &gc.spec.auth.oauth2 {
        let r = &oauth.client_secret_ref;
        secrets.oauth_client_secret = Some(
            project::read_secret_key(ctx, &namespace, &r.name, &r.key, key)
                .await?
                .0
                .into(),
        );
    }
    for header in &gc.spec.custom_headers {
        if let Some(r) = &header.value_from {
            let value = project::read_secret_key(ctx, &namespace, &r.name, &r.key, key)
                .await?
                .0;
            secrets
                .header_values
                .insert(header.name.clone(), value.into());
        }
    }
    Ok(secrets)
}

fn gateway_settings(
    gc: &GatewayConnection,
    desired: &Desired,
    secrets: &ResolvedSecrets,
    project: &ResolvedProject,
) -> GatewaySettings {
    let auth = if gc.spec.auth.api_key.is_some() {
        GatewayAuth::ApiKey {
            key: secrets
                .api_key
                .clone()
                .unwrap_or_else(|| SecretString::new("")),
            auth_config: build::auth_config(&gc.spec),
        }
    } else if let Some(oauth) = &gc.spec.auth.oauth2 {
        GatewayAuth::OAuth2 {
            token_url: oauth.token_url.clone(),
            scopes: oauth.scopes.clone(),
            client_id: oauth.client_id.clone(),
            client_secret: secrets
                .oauth_client_secret
                .clone()
                .unwrap_or_else(|| SecretString::new("")),
        }
    } else if let Some(entra) = &gc.spec.auth.entra_id {
        GatewayAuth::Entra {
            credential: Arc::clone(&project.credential),
            audience: entra
                .audience
                .clone()
                .unwrap_or_else(|| build::DEFAULT_ENTRA_AUDIENCE.to_owned()),
        }
    } else {
        GatewayAuth::None
    };
    let custom_headers = build::header_values(&gc.spec, secrets);
    GatewaySettings {
        target: gc.spec.target.clone(),
        category: desired.properties.category.clone(),
        deployment_in_path: build::deployment_in_path(&gc.spec),
        inference_api_version: gc.spec.inference_api_version.clone(),
        deployment_api_version: gc.spec.deployment_api_version.clone(),
        discovery: desired.discovery.clone(),
        static_models: desired.static_models.clone(),
        model_formats: gc
            .spec
            .models
            .iter()
            .flat_map(|m| m.static_models.iter().flatten())
            .map(|m| (m.name.clone(), build::model_format(m.format)))
            .collect(),
        custom_headers,
        auth,
    }
}

/// The PromptAgents of this namespace that use the connection, sorted.
fn used_by(ctx: &Context, gc: &GatewayConnection) -> Vec<String> {
    let namespace = gc.namespace();
    let name = gc.name_any();
    let mut agents: Vec<String> = ctx
        .stores
        .agents
        .state()
        .iter()
        .filter(|a| a.namespace() == namespace && a.spec.model.connection_ref.name == name)
        .map(|a| a.name_any())
        .collect();
    agents.sort();
    agents
}

async fn publish(
    ctx: &Context,
    gc: &GatewayConnection,
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
    if let Err(error) = ctx.recorder.publish(&event, &gc.object_ref(&())).await {
        warn!(%error, "Failed to publish an event");
    }
}

/// Reconciles one GatewayConnection.
#[instrument(skip_all, fields(kind = KIND, namespace = gc.namespace().unwrap_or_default(), name = gc.name_any()))]
pub async fn reconcile(gc: Arc<GatewayConnection>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    crate::controller::with_finalizer(gc, ctx, apply, cleanup).await
}

/// Requeue policy for errors that escaped the reconcile (status could not be written).
pub fn error_policy(gc: Arc<GatewayConnection>, error: &Error, ctx: Arc<Ctx>) -> Action {
    crate::controller::error_policy(gc, error, ctx)
}

async fn apply(gc: &GatewayConnection, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = gc.namespace().unwrap_or_default();
    let name = gc.name_any();
    let key = ObjectKey::new(&namespace, &name);
    let generation = gc.metadata.generation.unwrap_or(0);
    let uid = gc.metadata.uid.clone().unwrap_or_default();
    let mut tracker = ctx.memory.get(&key, &uid);
    let requested = gc.annotations().get(REQUESTED_AT_ANNOTATION).cloned();
    let forced = requested.is_some() && requested != tracker.handled_request;
    let status = gc.status.clone().unwrap_or_default();
    let (mode, interval, timeout, threshold) = probe_settings(gc);

    let now = Timestamp::now();
    if status.observed_generation != Some(generation) {
        // A new generation never looks finished: say so before any slow work (the status contract).
        let progressing = GatewayConnectionStatus {
            observed_generation: Some(generation),
            conditions: Conditions::new_generation(&status.conditions, generation, now),
            ..status.clone()
        };
        crate::apply_status::<GatewayConnection>(&ctx.client, &namespace, &name, &progressing)
            .await?;
    }
    let mut conditions = Conditions::from_live(&status.conditions);
    let mut next = ctx.settings.resync;
    let mut new_status = GatewayConnectionStatus {
        observed_generation: Some(generation),
        connection_name: Some(build::connection_name(&gc.spec, &name)),
        used_by: used_by(ctx, gc),
        last_handled_reconcile_at: requested.clone(),
        ..status.clone()
    };

    let step = sync_and_probe(
        gc,
        ctx,
        &mut tracker,
        &mut new_status,
        forced,
        mode,
        interval,
        timeout,
        threshold,
    )
    .await;
    let outcome_is_ok = step.is_ok();
    let observe = observing(gc);
    if !observe {
        conditions.remove(types::DRIFTED);
    }
    // Observe: a connection missing in Foundry rules Ready out whatever the probe says.
    let missing = tracker.observed.as_ref().filter(|_| observe).and_then(|o| {
        observe::not_ready(o, new_status.connection_name.as_deref().unwrap_or_default())
    });
    let outcome = match step {
        Ok(_) if let Some((reason, message)) = missing => {
            ctx.reset_backoff(&key);
            Outcome::NotReady {
                reason: reason.into(),
                message,
            }
        }
        Ok(Probing {
            running: probing,
            credentials,
        }) if probing && !tracker.probed_at(generation, &credentials) => {
            // The first probe of these inputs is running: say so rather than guess.
            ctx.reset_backoff(&key);
            if tracker.verdict.state == GatewayState::Unknown {
                conditions.set_unknown(
                    types::GATEWAY_ACTIVE,
                    (
                        reasons::PROBING,
                        "The first probe of the gateway is running",
                    ),
                    Stamp { generation, now },
                );
            }
            Outcome::Progressing {
                message: "Probing the gateway".into(),
            }
        }
        Ok(Probing {
            running: probing, ..
        }) => {
            ctx.reset_backoff(&key);
            let verdict = &tracker.verdict;
            match verdict.state {
                GatewayState::Active => conditions.set(
                    types::GATEWAY_ACTIVE,
                    true,
                    (reasons::ACTIVE, &verdict.message),
                    Stamp { generation, now },
                ),
                GatewayState::Inactive => conditions.set(
                    types::GATEWAY_ACTIVE,
                    false,
                    (&verdict.reason, &verdict.message),
                    Stamp { generation, now },
                ),
                GatewayState::Unknown => conditions.set_unknown(
                    types::GATEWAY_ACTIVE,
                    (&verdict.reason, &verdict.message),
                    Stamp { generation, now },
                ),
            }
            new_status.gateway_state = Some(verdict.state);
            // Inactive keeps the models last seen, so a person still sees what was offered.
            if verdict.state != GatewayState::Inactive && !verdict.models.is_empty() {
                new_status.models = verdict.models.clone();
                new_status.models_omitted = (verdict.omitted > 0)
                    .then(|| i64::try_from(verdict.omitted).unwrap_or(i64::MAX));
            }
            if let Some(interval) = interval
                && !probing
            {
                next = next.min(
                    tracker
                        .until_next_probe(interval)
                        .max(Duration::from_secs(1)),
                );
            }
            match verdict.state {
                GatewayState::Inactive => Outcome::NotReady {
                    reason: reasons::GATEWAY_INACTIVE.into(),
                    message: format!(
                        "Gateway is Inactive ({}): {}",
                        verdict.reason, verdict.message
                    ),
                },
                _ if observe => Outcome::Ready {
                    message: format!(
                        "Foundry connection {} is in place (observed: managementPolicy is Observe, nothing is written)",
                        new_status.connection_name.as_deref().unwrap_or_default()
                    ),
                },
                _ => Outcome::Ready {
                    message: format!(
                        "Foundry connection {} is in place",
                        new_status.connection_name.as_deref().unwrap_or_default()
                    ),
                },
            }
        }
        Err(failure) => {
            ctx.metrics.observe_failure(KIND, failure.label());
            match &failure {
                Failure::Transient { retry_after, .. } => next = ctx.backoff(&key, *retry_after),
                // The owner may go away by itself: look again at each resync.
                Failure::Permanent { reason, .. } if reason == reasons::OWNED_ELSEWHERE => {
                    next = ctx.settings.resync;
                }
                Failure::Permanent { .. } => next = Duration::MAX,
                Failure::Waiting { .. } => {
                    next = ctx.backoff(&key, None).max(Duration::from_secs(5))
                }
            }
            failure.outcome()
        }
    };
    if observe
        && outcome_is_ok
        && let Some(observation) = &tracker.observed
    {
        let (drifted, reason, message) = observe::drifted_condition(
            observation,
            new_status.connection_name.as_deref().unwrap_or_default(),
        );
        conditions.set(
            types::DRIFTED,
            drifted,
            (reason, &message),
            Stamp { generation, now },
        );
    }
    conditions.apply_outcome(&outcome, generation, now);
    new_status.conditions = conditions.into_vec();
    tracker.handled_request = requested;

    if !same_status(gc.status.as_ref(), &new_status) {
        let old_state = status.gateway_state;
        crate::apply_status::<GatewayConnection>(&ctx.client, &namespace, &name, &new_status)
            .await?;
        announce(ctx, gc, &status, &new_status, old_state).await;
    }
    ctx.memory.put(&key, &uid, tracker);
    Ok(if next == Duration::MAX {
        Action::await_change()
    } else {
        Action::requeue(next)
    })
}

/// What the probe step left: whether a probe is running, and the credentials hash it is stamped
/// with.
struct Probing {
    running: bool,
    credentials: String,
}

async fn announce(
    ctx: &Context,
    gc: &GatewayConnection,
    old: &GatewayConnectionStatus,
    new: &GatewayConnectionStatus,
    old_state: Option<GatewayState>,
) {
    if new.gateway_state != old_state {
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
    let stalled = |s: &GatewayConnectionStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::STALLED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = stalled(new)
        && stalled(old).as_ref().map(|(r, m)| (r, m)) != Some((&reason, &message))
    {
        warn!(%reason, "Stalled");
        publish(ctx, gc, EventType::Warning, &reason, message).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_and_probe(
    gc: &GatewayConnection,
    ctx: &Context,
    tracker: &mut Tracker,
    status: &mut GatewayConnectionStatus,
    forced: bool,
    mode: SpecProbeMode,
    interval: Option<Duration>,
    timeout: Duration,
    threshold: u32,
) -> Result<Probing, Failure> {
    let namespace = gc.namespace().unwrap_or_default();
    let name = gc.name_any();
    let key = ObjectKey::new(&namespace, &name);
    let generation = gc.metadata.generation.unwrap_or(0);

    // resolve
    let project_ref =
        ObjectRef::<FoundryProject>::new(&gc.spec.project_ref.name).within(&namespace);
    let Some(project) = ctx.stores.projects.get(&project_ref) else {
        return Err(Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: format!(
                "FoundryProject {} does not exist in namespace {namespace}",
                gc.spec.project_ref.name
            ),
        });
    };
    let project = project::resolve(ctx, &project, false)
        .await
        .map_err(|f| match f {
            Failure::Permanent { message, .. }
            | Failure::Transient { message, .. }
            | Failure::Waiting { message, .. } => Failure::Waiting {
                reason: reasons::PROJECT_NOT_READY.into(),
                message: format!(
                    "FoundryProject {} is not usable: {message}",
                    gc.spec.project_ref.name
                ),
            },
        })?;
    let secrets = resolve_secrets(ctx, gc, &key).await?;

    // validate + build
    let uid = gc.metadata.uid.clone().unwrap_or_default();
    let desired = build::build(&gc.spec, &namespace, &name, &uid, &secrets, &ctx.digest_key)
        .map_err(|e| Failure::permanent(reasons::INVALID_SPEC, e.0))?;
    status.connection_name = Some(desired.name.clone());

    // read live → compare → PUT on drift or new credentials
    // The tracker, not the (possibly stale) cached status, says what was last written: a
    // reconcile that sees its own previous status write late must not write again.
    let observe = observing(gc);
    if observe
        && (forced
            || tracker.foundry_check_due(
                generation,
                &desired.credentials_hash,
                ctx.settings.resync,
            ))
    {
        // Observe: read, check the owner, compare; write nothing. status.credentialsHash keeps
        // what was last applied (nothing is applied here), so Full later knows whether to write.
        let connections = project.connections_in(scope_of(gc));
        let live = connections
            .get(&desired.name)
            .await
            .map_err(|e| Failure::from_foundry("read the Foundry connection", &e))?;
        let ours = match &live {
            Some(live) => {
                observe_claim(
                    ctx,
                    gc,
                    &desired.name,
                    &project.resource_id.project,
                    &live.properties,
                )
                .await?
            }
            None => false,
        };
        let observation = observe::observe(
            &desired.properties,
            live.as_ref().map(|l| &l.properties),
            ours,
        );
        if tracker.observed.as_ref() != Some(&observation) {
            info!(connection = %desired.name, ?observation, "Observed Foundry connection");
        }
        status.connection_id = live
            .and_then(|l| l.id)
            .or_else(|| Some(project.connection_id(scope_of(gc), &desired.name)));
        tracker.observed = Some(observation);
        tracker.synced_generation = Some(generation);
        tracker.synced_credentials = Some(desired.credentials_hash.clone());
        tracker.connection_id.clone_from(&status.connection_id);
        tracker.last_foundry_check = Some(Instant::now());
    } else if observe {
        status.connection_id = tracker
            .connection_id
            .clone()
            .or_else(|| Some(project.connection_id(scope_of(gc), &desired.name)));
    } else if forced
        || tracker.foundry_check_due(generation, &desired.credentials_hash, ctx.settings.resync)
    {
        let connections = project.connections_in(scope_of(gc));
        let live = connections
            .get(&desired.name)
            .await
            .map_err(|e| Failure::from_foundry("read the Foundry connection", &e))?;
        let found = match &live {
            None => None,
            Some(live) => {
                let claim = claim(
                    ctx,
                    gc,
                    &desired.name,
                    &project.resource_id.project,
                    &live.properties,
                )
                .await?;
                // An unmarked connection lacks the marker the desired body carries.
                let drift = if claim == Claim::Unmarked {
                    observe::content_drift(&desired.properties, &live.properties)
                } else {
                    build::drift(&desired.properties, &live.properties)
                };
                Some(write_plan::Live { claim, drift })
            }
        };
        // After a read under Observe, the tracker holds what was read with, not what was
        // written: only status says what was last applied.
        let applied = if tracker.observed.is_some() {
            status.credentials_hash.as_deref()
        } else {
            tracker
                .synced_credentials
                .as_deref()
                .or(status.credentials_hash.as_deref())
        };
        let plan = write_plan::plan_write(
            found.as_ref(),
            applied,
            &desired.credentials_hash,
            named_elsewhere(ctx, gc, &desired.name),
        );
        if plan == WritePlan::AdoptAsIs && applied.is_none() {
            info!(connection = %desired.name, "Adopted Foundry connection as it is: nothing readable differs");
            publish(
                ctx,
                gc,
                EventType::Normal,
                "ConnectionAdopted",
                format!(
                    "Adopted Foundry connection {} as it is: nothing readable differs, so nothing was written (its credentials are taken as the Secret's until the Secret changes)",
                    desired.name
                ),
            )
            .await;
        }
        let reason_to_write = plan.reason();
        let resource = match reason_to_write {
            Some(what) => {
                let written = connections
                    .create_or_update(
                        &desired.name,
                        &ConnectionResource::new(desired.properties.clone()),
                    )
                    .await
                    .map_err(|e| Failure::from_foundry("write the Foundry connection", &e))?;
                info!(connection = %desired.name, change = %what, "Wrote Foundry connection");
                publish(
                    ctx,
                    gc,
                    EventType::Normal,
                    "ConnectionWritten",
                    format!("{what} Foundry connection {}", desired.name),
                )
                .await;
                written
            }
            None => live.unwrap_or_else(|| ConnectionResource::new(desired.properties.clone())),
        };
        status.connection_id = resource
            .id
            .or_else(|| Some(project.connection_id(scope_of(gc), &desired.name)));
        status.credentials_hash = Some(desired.credentials_hash.clone());
        tracker.synced_generation = Some(generation);
        tracker.synced_credentials = Some(desired.credentials_hash.clone());
        tracker.connection_id.clone_from(&status.connection_id);
        tracker.last_foundry_check = Some(Instant::now());
        tracker.observed = None;
    } else {
        // Not re-read this time: status says what the last check found.
        status.connection_id = tracker
            .connection_id
            .clone()
            .or_else(|| Some(project.connection_id(scope_of(gc), &desired.name)));
        status.credentials_hash = Some(desired.credentials_hash.clone());
    }

    // probe: the scheduler runs it outside this reconcile and wakes the object with the result.
    let stamp = ProbeStamp {
        generation,
        credentials: desired.credentials_hash.clone(),
    };
    let mut probing = false;
    match interval {
        None => {
            ctx.probes.forget(&key);
            tracker.not_probed();
            tracker.verdict.models = desired.static_models.clone();
        }
        Some(interval) => {
            if let Some(result) = ctx.probes.take_result(&key)
                && result.stamp == stamp
            {
                let outcome = result.outcome?;
                ctx.metrics
                    .probe_duration
                    .observe(result.elapsed.as_secs_f64());
                let (plan, _) = probe_plan_of(gc, &desired, mode);
                if plan.is_some_and(|plan| {
                    probe_plan::inconclusive(plan, gc.spec.auth.entra_id.is_some(), &outcome)
                }) {
                    tracker.record_inconclusive(&stamp, result.started);
                } else {
                    tracker.record(&outcome, threshold, &stamp, result.started);
                }
                if desired.discovery.is_none() && tracker.verdict.state == GatewayState::Active {
                    tracker.verdict.models = desired.static_models.clone();
                }
            }
            if (forced || tracker.probe_due(generation, &desired.credentials_hash, interval))
                && let Some(kind) = probe_job(gc, &desired, &secrets, &project, (mode, timeout))
            {
                ctx.probes.submit(ProbeJob {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    kind,
                    stamp: stamp.clone(),
                    reuse_within: interval,
                });
            }
            probing = ctx.probes.pending(&key);
        }
    }
    let credentials = desired.credentials_hash;
    let gauge = match tracker.verdict.state {
        GatewayState::Active => 1,
        GatewayState::Inactive => 0,
        GatewayState::Unknown => -1,
    };
    ctx.metrics
        .gateway_active
        .get_or_create(&crate::metrics::GatewayLabels { namespace, name })
        .set(gauge);
    Ok(Probing {
        running: probing,
        credentials,
    })
}

/// [`claim`] for `managementPolicy: Observe`: nothing is written, so nothing needs adopting;
/// only another live owner refuses (`OwnedElsewhere`, as in Full). `Ok(true)` when the marker
/// names this object.
async fn observe_claim(
    ctx: &Context,
    gc: &GatewayConnection,
    connection: &str,
    project: &str,
    live: &foundry_gateway_client::connections::ConnectionProperties,
) -> Result<bool, Failure> {
    use crate::ownership::{Ownership, Taken, owned_elsewhere_message, owner_state, ownership};
    let me = crate::ownership::ObjectId::of(gc);
    match ownership(build::marker(live).as_ref(), &me) {
        Ownership::Ours => Ok(true),
        Ownership::Foreign(owner) => {
            let state = owner_state(&ctx.client, &ctx.stores.connections, &owner).await;
            if state.blocks() {
                return Err(Failure::permanent(
                    reasons::OWNED_ELSEWHERE,
                    owned_elsewhere_message(
                        &Taken {
                            what: &format!(
                                "Foundry connection \"{connection}\" of project {project}"
                            ),
                            kind: KIND,
                            fix: "spec.connectionName",
                            adopt: gc.spec.adopt == Some(true),
                        },
                        &owner,
                        &state,
                    ),
                ));
            }
            Ok(false)
        }
        Ownership::Unmarked | Ownership::Legacy => Ok(false),
    }
}

/// Whether this object may write the live connection of that name, and whose it is
/// ([`Claim`]): ours when its marker names this object; else it may be adopted (`adopt: true`,
/// and no marker, or a recorded owner that is confirmed gone). Refused with `OwnedElsewhere` while another object
/// that owns it exists or cannot be looked up, even with `adopt: true`; with `AlreadyExists`
/// otherwise without `adopt`.
async fn claim(
    ctx: &Context,
    gc: &GatewayConnection,
    connection: &str,
    project: &str,
    live: &foundry_gateway_client::connections::ConnectionProperties,
) -> Result<Claim, Failure> {
    use crate::ownership::{Ownership, Taken, owned_elsewhere_message, owner_state, ownership};
    let me = crate::ownership::ObjectId::of(gc);
    let adopt = gc.spec.adopt == Some(true);
    let previous = match ownership(build::marker(live).as_ref(), &me) {
        Ownership::Ours => return Ok(Claim::Ours),
        Ownership::Foreign(owner) => {
            let state = owner_state(&ctx.client, &ctx.stores.connections, &owner).await;
            if state.blocks() {
                return Err(Failure::permanent(
                    reasons::OWNED_ELSEWHERE,
                    owned_elsewhere_message(
                        &Taken {
                            what: &format!("Foundry connection \"{connection}\""),
                            kind: KIND,
                            fix: "spec.connectionName",
                            adopt,
                        },
                        &owner,
                        &state,
                    ),
                ));
            }
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

async fn cleanup(gc: &GatewayConnection, ctx: &Ctx) -> Result<Action, Error> {
    let namespace = gc.namespace().unwrap_or_default();
    let name = gc.name_any();
    let key = ObjectKey::new(&namespace, &name);
    let users = used_by(ctx, gc);
    if !users.is_empty() {
        let generation = gc.metadata.generation.unwrap_or(0);
        let mut status = gc.status.clone().unwrap_or_default();
        let mut conditions = Conditions::from_live(&status.conditions);
        let message = format!(
            "Deletion waits for the PromptAgents that use this connection: {}",
            users.join(", ")
        );
        conditions.apply_outcome(
            &Outcome::NotReady {
                reason: reasons::IN_USE.into(),
                message,
            },
            generation,
            Timestamp::now(),
        );
        status.conditions = conditions.into_vec();
        status.used_by = users;
        if !same_status(gc.status.as_ref(), &status) {
            crate::apply_status::<GatewayConnection>(&ctx.client, &namespace, &name, &status)
                .await?;
        }
        return Err(Error::DeletionPending {
            message: "PromptAgents still use the connection".into(),
            retry_after: Duration::from_secs(10),
        });
    }
    if observing(gc) {
        info!("Left Foundry connection in place: managementPolicy is Observe");
    } else if gc.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Delete {
        let connection_name = build::connection_name(&gc.spec, &name);
        match project::find(ctx, &namespace, &gc.spec.project_ref.name).await? {
            Some(project) => {
                let resolved = match project::resolve(ctx, &project, false).await {
                    Ok(resolved) => resolved,
                    Err(failure) => {
                        return Err(Error::DeletionPending {
                            message: format!(
                                "cannot reach the project to delete the connection ({})",
                                failure.label()
                            ),
                            retry_after: ctx.backoff(&key, None),
                        });
                    }
                };
                // Only delete what this object owns: never a connection whose marker names
                // another object, even one that no longer exists.
                let me = crate::ownership::ObjectId::of(gc);
                let connections = resolved.connections_in(scope_of(gc));
                match connections.get(&connection_name).await {
                    Ok(Some(live))
                        if build::may_delete(
                            &live.properties,
                            &me,
                            gc.spec.adopt == Some(true),
                        ) =>
                    {
                        if let Err(error) = connections.delete(&connection_name).await {
                            return Err(Error::DeletionPending {
                                message: format!(
                                    "failed to delete the Foundry connection ({})",
                                    error.label()
                                ),
                                retry_after: ctx.backoff(&key, error.retry_after()),
                            });
                        }
                        info!(connection = %connection_name, "Deleted Foundry connection");
                    }
                    Ok(Some(live)) => match build::marker(&live.properties) {
                        Some(crate::ownership::Marker::Object(owner))
                            if !owner.same_object(&me) =>
                        {
                            info!(connection = %connection_name, owner = %owner, "Left Foundry connection in place: another object manages it");
                        }
                        _ => {
                            info!(connection = %connection_name, "Left Foundry connection in place: this object does not manage it");
                        }
                    },
                    Ok(None) => {}
                    Err(error) => {
                        return Err(Error::DeletionPending {
                            message: format!(
                                "failed to read the Foundry connection before deleting it ({})",
                                error.label()
                            ),
                            retry_after: ctx.backoff(&key, error.retry_after()),
                        });
                    }
                }
            }
            None => warn!(
                "FoundryProject is gone; the Foundry connection cannot be deleted and is left in place"
            ),
        }
    }
    ctx.memory.forget(&key);
    ctx.probes.forget(&key);
    ctx.reset_backoff(&key);
    Ok(Action::await_change())
}
