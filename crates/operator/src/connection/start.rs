//! What one reconcile of a GatewayConnection starts from: the object, what the controller
//! remembers of it, and the settings every later step reads. Read once, before any step.

use std::time::{Duration, Instant};

use foundry_gateway_api::GatewayConnection;
use foundry_gateway_api::GatewayConnectionStatus;
use foundry_gateway_api::PromptAgent;
use foundry_gateway_api::connection::{ConnectionScope, ManagementPolicy, ProbeMode};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::tracker::Tracker;
use super::{Ctx, build};
use crate::context::{Context, REQUESTED_AT_ANNOTATION};
use crate::controller::ObjectKey;
use crate::settings::parse_duration;

/// Default probe interval.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(60);
/// Default probe timeout.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default failure threshold.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// How the gateway is probed (`spec.probe`, with the defaults filled in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// The probe mode.
    pub mode: ProbeMode,
    /// How often; None when probing is off.
    pub interval: Option<Duration>,
    /// The budget of one probe.
    pub timeout: Duration,
    /// Failures in a row before an Active gateway turns Inactive.
    pub threshold: u32,
}

impl ProbeSettings {
    /// The settings of `spec.probe`; unreadable values fall back to the defaults.
    pub fn of(gc: &GatewayConnection) -> Self {
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
        Self {
            mode,
            interval: (mode != ProbeMode::Off).then_some(interval),
            timeout,
            threshold,
        }
    }
}

/// The object and what this reconcile starts from.
#[derive(Clone, Debug)]
pub struct Start<'a> {
    /// The object.
    pub gc: &'a GatewayConnection,
    /// Its namespace and name.
    pub key: ObjectKey,
    /// Its uid (empty when unknown).
    pub uid: String,
    /// `metadata.generation`.
    pub generation: i64,
    /// The status as read.
    pub status: GatewayConnectionStatus,
    /// What the controller remembers of the object.
    pub memory: Tracker,
    /// The `reconcile.fluxcd.io/requestedAt` value, if any.
    pub requested: Option<String>,
    /// A request not handled yet: read Foundry and probe now, whatever the schedule says.
    pub forced: bool,
    /// `managementPolicy: Observe`.
    pub observe: bool,
    /// Where the Foundry connection lives.
    pub scope: ConnectionScope,
    /// How the gateway is probed.
    pub probe: ProbeSettings,
    /// The name of the Foundry connection.
    pub connection_name: String,
    /// The PromptAgents of this namespace that use the connection, sorted.
    pub used_by: Vec<String>,
    /// How often Foundry is read again when nothing changed.
    pub resync: Duration,
    /// The time conditions are stamped with.
    pub now: Timestamp,
    /// When the reconcile began (the grace before "Probing" is said counts from the first one
    /// that saw the current inputs).
    pub began: Instant,
}

impl<'a> Start<'a> {
    /// Reads the object, the controller's memory of it and the stores.
    pub fn read(gc: &'a GatewayConnection, ctx: &Ctx) -> Self {
        let key = ObjectKey::of(gc);
        let uid = gc.metadata.uid.clone().unwrap_or_default();
        let memory = ctx.memory.get(&key, &uid);
        let requested = gc.annotations().get(REQUESTED_AT_ANNOTATION).cloned();
        let forced = requested.is_some() && requested != memory.handled_request;
        Self {
            gc,
            generation: gc.metadata.generation.unwrap_or(0),
            status: gc.status.clone().unwrap_or_default(),
            connection_name: build::connection_name(&gc.spec, &key.name),
            used_by: used_by(ctx, gc),
            key,
            uid,
            memory,
            requested,
            forced,
            observe: observing(gc),
            scope: scope_of(gc),
            probe: ProbeSettings::of(gc),
            resync: ctx.settings.resync,
            now: Timestamp::now(),
            began: Instant::now(),
        }
    }
}

/// Whether the object only observes Foundry (`managementPolicy: Observe`).
pub fn observing(gc: &GatewayConnection) -> bool {
    gc.spec.management_policy.unwrap_or_default() == ManagementPolicy::Observe
}

/// Where the Foundry connection lives.
pub fn scope_of(gc: &GatewayConnection) -> ConnectionScope {
    gc.spec.scope.unwrap_or_default()
}

/// The PromptAgents of this namespace that use the connection, sorted.
pub fn used_by(ctx: &Context, gc: &GatewayConnection) -> Vec<String> {
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

/// What a connection reads of a PromptAgent, as a digest ([`crate::triggers`]): which connection
/// it uses (`status.usedBy`) and whether it is being deleted (deletion waits for it). A change
/// of its status wakes no connection.
pub fn agent_view(agent: &PromptAgent) -> u64 {
    crate::triggers::digest(&(
        &agent.spec.model.connection_ref.name,
        agent.metadata.deletion_timestamp.is_some(),
    ))
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::connection::ProbeSpec;

    use super::*;

    #[test]
    fn a_connection_reads_of_an_agent_which_connection_it_uses_and_its_deletion() {
        let agent = |connection: &str| -> PromptAgent {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "gateway.foundry.dev/v1alpha1",
                "kind": "PromptAgent",
                "metadata": {"name": "weather", "namespace": "team", "generation": 1},
                "spec": {
                    "projectRef": {"name": "proj"},
                    "model": {"connectionRef": {"name": connection}, "name": "gpt-4o"},
                    "instructions": "Be brief.",
                },
            }))
            .expect("test agent")
        };
        let before = agent("gw");
        let mut written = before.clone();
        written.status = Some(Default::default());
        written.metadata.generation = Some(2);
        assert_eq!(
            agent_view(&written),
            agent_view(&before),
            "status, other spec"
        );
        assert_ne!(agent_view(&agent("other")), agent_view(&before));
        let mut deleted = before.clone();
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
        );
        assert_ne!(agent_view(&deleted), agent_view(&before));
    }

    #[test]
    fn probe_settings_fill_in_the_defaults_and_off_has_no_interval() {
        let secs = Duration::from_secs;
        // (spec.probe, settings)
        let cases = [
            (
                None,
                ProbeSettings {
                    mode: ProbeMode::Auto,
                    interval: Some(DEFAULT_PROBE_INTERVAL),
                    timeout: DEFAULT_PROBE_TIMEOUT,
                    threshold: DEFAULT_FAILURE_THRESHOLD,
                },
            ),
            (
                Some(ProbeSpec {
                    mode: Some(ProbeMode::Inference),
                    interval: Some("5m".into()),
                    timeout: Some("3s".into()),
                    failure_threshold: Some(1),
                    ..ProbeSpec::default()
                }),
                ProbeSettings {
                    mode: ProbeMode::Inference,
                    interval: Some(secs(300)),
                    timeout: secs(3),
                    threshold: 1,
                },
            ),
            (
                Some(ProbeSpec {
                    mode: Some(ProbeMode::Off),
                    interval: Some("5m".into()),
                    failure_threshold: Some(-1),
                    ..ProbeSpec::default()
                }),
                ProbeSettings {
                    mode: ProbeMode::Off,
                    interval: None,
                    timeout: DEFAULT_PROBE_TIMEOUT,
                    threshold: DEFAULT_FAILURE_THRESHOLD,
                },
            ),
        ];
        for (probe, want) in cases {
            let mut gc = GatewayConnection::new("gw", Default::default());
            gc.spec.probe = probe;
            assert_eq!(ProbeSettings::of(&gc), want, "{:?}", gc.spec.probe);
        }
    }
}
