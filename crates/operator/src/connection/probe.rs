//! Step "probe": the scheduler ([`crate::probes`]) runs probes outside the reconcile and wakes
//! the object with the result. This step folds a finished probe of the current inputs into the
//! damped verdict ([`super::tracker`]), submits the next one when it is due (which probe:
//! [`super::probe_plan`], pure), and says whether one is running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foundry_gateway_api::GatewayConnection;
use foundry_gateway_api::connection::{GatewayState, ModelFormat};
use foundry_gateway_client::SecretString;
use foundry_gateway_client::probe::{
    GatewayAuth, GatewaySettings, MAX_PROBE_TIMEOUT, ProbeOutcome, ProbeRequest,
};

use super::build::{self, Desired, ResolvedSecrets};
use super::probe_plan::{self, Facts, Plan};
use super::resolve::Resolved;
use super::start::{ProbeSettings, Start};
use super::tracker::Tracker;
use crate::context::Context;
use crate::controller::{AtStep, Failed, Step};
use crate::probes::{ProbeJob, ProbeKind, ProbeStamp, Submitted};
use crate::project::ResolvedProject;

/// What the probe step leaves.
#[derive(Clone, Debug)]
pub struct Probed {
    /// The memory after the step: a finished probe folded into the damped verdict.
    pub memory: Tracker,
    /// Whether a probe of the object is queued or running.
    pub running: bool,
    /// When the next probe falls due (at least a second); None while one runs or probing is off.
    pub next_probe: Option<Duration>,
    /// How long this process has worked toward a verdict on the current inputs.
    pub waiting: Duration,
}

/// Takes a finished probe, submits the next when due. A probe that could give no verdict
/// (settings that cannot be probed, Foundry failing) fails the step.
pub async fn probe(
    ctx: &Context,
    start: &Start<'_>,
    resolved: &Resolved,
    desired: &Desired,
    memory: &Tracker,
) -> Result<Probed, Failed> {
    let mut memory = memory.clone();
    let Some(interval) = start.probe.interval else {
        ctx.probes.forget(&start.key);
        memory.not_probed();
        memory.verdict.models = desired.static_models.clone();
        set_gauge(ctx, start, &memory);
        return Ok(Probed {
            memory,
            running: false,
            next_probe: None,
            waiting: Duration::ZERO,
        });
    };
    let stamp = ProbeStamp {
        generation: start.generation,
        credentials: desired.credentials_hash.clone(),
    };
    take_finished(ctx, start, desired, &mut memory, &stamp)?;
    if (start.forced || memory.probe_due(start.generation, &desired.credentials_hash, interval))
        && let Some(kind) = probe_job(start.gc, desired, resolved, start.probe)
    {
        let answered = ctx.probes.submit(ProbeJob {
            namespace: start.key.namespace.clone(),
            name: start.key.name.clone(),
            kind,
            stamp: stamp.clone(),
            reuse_within: interval,
        }) == Submitted::Answered;
        // A recent probe of the same call answered at once: this reconcile reports it.
        if answered {
            take_finished(ctx, start, desired, &mut memory, &stamp)?;
        }
    }
    let running = ctx.probes.pending(&start.key);
    let waiting = memory.working_for(start.generation, &desired.credentials_hash, start.began);
    set_gauge(ctx, start, &memory);
    let next_probe = (!running).then(|| {
        memory
            .until_next_probe(interval)
            .max(Duration::from_secs(1))
    });
    Ok(Probed {
        memory,
        running,
        next_probe,
        waiting,
    })
}

/// Takes the finished probe of the object, if any, and folds it into the memory when it ran with
/// the current inputs (`stamp`); a probe that could give no verdict fails the step.
fn take_finished(
    ctx: &Context,
    start: &Start<'_>,
    desired: &Desired,
    memory: &mut Tracker,
    stamp: &ProbeStamp,
) -> Result<(), Failed> {
    if let Some(result) = ctx.probes.take_result(&start.key)
        && result.stamp == *stamp
    {
        let outcome = result.outcome.at(Step::Probe)?;
        ctx.metrics
            .probe_duration
            .observe(result.elapsed.as_secs_f64());
        record(memory, start, desired, &outcome, result.started);
    }
    Ok(())
}

/// Folds a finished probe of the current inputs into the memory: damped, except that a direct
/// probe of an Entra ID connection refused by the gateway is inconclusive.
fn record(
    memory: &mut Tracker,
    start: &Start<'_>,
    desired: &Desired,
    outcome: &ProbeOutcome,
    started: Instant,
) {
    let stamp = ProbeStamp {
        generation: start.generation,
        credentials: desired.credentials_hash.clone(),
    };
    let entra = start.gc.spec.auth.entra_id.is_some();
    let (plan, _) = probe_plan_of(start.gc, desired, start.probe);
    if plan.is_some_and(|plan| probe_plan::inconclusive(plan, entra, outcome)) {
        memory.record_inconclusive(&stamp, started);
    } else {
        memory.record(outcome, start.probe.threshold, &stamp, started);
    }
    if desired.discovery.is_none() && memory.verdict.state == GatewayState::Active {
        memory.verdict.models = desired.static_models.clone();
    }
}

/// `foundry_gateway_gateway_active`: 1 Active, 0 Inactive, -1 Unknown.
fn set_gauge(ctx: &Context, start: &Start<'_>, memory: &Tracker) {
    let gauge = match memory.verdict.state {
        GatewayState::Active => 1,
        GatewayState::Inactive => 0,
        GatewayState::Unknown => -1,
    };
    ctx.metrics
        .gateway_active
        .get_or_create(&crate::metrics::GatewayLabels {
            namespace: start.key.namespace.clone(),
            name: start.key.name.clone(),
        })
        .set(gauge);
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
    settings: ProbeSettings,
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
    (probe_plan::plan(settings.mode, facts), model)
}

/// The probe to submit for the connection.
fn probe_job(
    gc: &GatewayConnection,
    desired: &Desired,
    resolved: &Resolved,
    settings: ProbeSettings,
) -> Option<ProbeKind> {
    match probe_plan_of(gc, desired, settings) {
        (Some(Plan::Foundry), Some(model)) => Some(ProbeKind::Foundry {
            project: Arc::clone(&resolved.project),
            model: format!("{}/{model}", desired.name),
            timeout: settings.timeout.min(MAX_PROBE_TIMEOUT),
        }),
        (Some(Plan::Direct(direct)), model) => Some(ProbeKind::Gateway(Box::new(ProbeRequest {
            settings: gateway_settings(gc, desired, &resolved.secrets, &resolved.project),
            mode: direct,
            model,
            timeout: settings.timeout,
        }))),
        // Off; or mode Foundry without a model, which the CRD refuses and Auto never plans.
        (None, _) | (Some(Plan::Foundry), None) => None,
    }
}

/// How a direct probe calls the gateway: as Foundry would, with the same settings.
fn gateway_settings(
    gc: &GatewayConnection,
    desired: &Desired,
    secrets: &ResolvedSecrets,
    project: &ResolvedProject,
) -> GatewaySettings {
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
        custom_headers: build::header_values(&gc.spec, secrets),
        auth: gateway_auth(gc, secrets, project),
    }
}

/// How a direct probe authenticates: the Secret values, or the operator's own Entra ID token.
fn gateway_auth(
    gc: &GatewayConnection,
    secrets: &ResolvedSecrets,
    project: &ResolvedProject,
) -> GatewayAuth {
    if gc.spec.auth.api_key.is_some() {
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
    }
}
