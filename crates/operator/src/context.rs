//! The state every controller shares, built once at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use foundry_gateway_client::probe::Prober;
use foundry_gateway_client::{ClientOptions, Observer, Transport, TransportOptions};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use serde::Serialize;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::metrics::Metrics;
use crate::project::ProjectResolver;
use crate::settings::Settings;

/// Name under which the operator writes objects, status and events.
pub const MANAGER: &str = "foundry-gateway-operator";

/// Annotation Flux sets to ask for an immediate reconcile.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// Finalizer guarding the Foundry resources of an object.
pub const FINALIZER: &str = "gateway.foundry.dev/finalizer";

/// Reflector stores of the three kinds, for lookups across kinds without extra GETs.
#[derive(Clone)]
pub struct Stores {
    /// FoundryProjects.
    pub projects: Store<FoundryProject>,
    /// GatewayConnections.
    pub connections: Store<GatewayConnection>,
    /// PromptAgents.
    pub agents: Store<PromptAgent>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// Settings of the process.
    pub settings: Settings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// HTTP transport for Foundry, gateways and token endpoints (carries the extra CA).
    pub transport: Transport,
    /// Gateway prober (pools connections, caches OAuth2 tokens).
    pub prober: Prober,
    /// Resolved projects and their Foundry clients.
    pub projects: ProjectResolver,
    /// Per-object backoff.
    pub backoff: Mutex<Backoff>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Stores of the three kinds.
    pub stores: Stores,
    /// Per-connection memory of the GatewayConnection controller.
    pub trackers: crate::connection::Trackers,
    /// Per object key: no Foundry call before this instant (a server's Retry-After), even when
    /// the object's own status write triggers a reconcile sooner.
    not_before: Mutex<HashMap<String, Instant>>,
    /// When a referenced Secret or key was first found missing, per object key.
    missing_since: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Builds the context; fails when the extra CA file cannot be read.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        stores: Stores,
    ) -> anyhow::Result<Self> {
        let extra_root_ca_pem = match &settings.extra_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read the extra CA file {}: {e}", path.display())
            })?),
            None => None,
        };
        let transport = Transport::new(TransportOptions {
            extra_root_ca_pem,
            user_agent: Some(format!("{MANAGER}/{}", env!("CARGO_PKG_VERSION"))),
            ..TransportOptions::default()
        })?;
        let observer = call_observer(&metrics);
        let prober = Prober::new(transport.clone()).with_observer(observer);
        let recorder = Recorder::new(client.clone(), Reporter::from(MANAGER));
        Ok(Self {
            client,
            settings,
            metrics,
            transport,
            prober,
            projects: ProjectResolver::default(),
            backoff: Mutex::new(Backoff::new(BackoffPolicy::default())),
            recorder,
            stores,
            trackers: crate::connection::Trackers::default(),
            not_before: Mutex::new(HashMap::new()),
            missing_since: Mutex::new(HashMap::new()),
        })
    }

    /// Client options for Foundry clients: our transport, timeout and the metrics observer.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            transport: Some(self.transport.clone()),
            timeout: self.settings.call_timeout,
            observer: Some(call_observer(&self.metrics)),
            ..ClientOptions::default()
        }
    }

    /// Whether a missing reference of `key` has been missing for longer than the grace period.
    /// The first call starts the clock.
    pub fn missing_past_grace(&self, key: &str) -> bool {
        let mut map = self.missing_since.lock().unwrap_or_else(|e| e.into_inner());
        let since = *map.entry(key.to_owned()).or_insert_with(Instant::now);
        since.elapsed() >= self.settings.secret_grace
    }

    /// Forgets a missing reference once it is found.
    pub fn found(&self, key: &str) {
        self.missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The delay before retrying `key` after a transient failure (never shorter than the hint).
    /// With a server hint, no reconcile of `key` calls Foundry before it has passed.
    pub fn backoff(&self, key: &str, retry_after: Option<Duration>) -> Duration {
        let delay = self
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_delay(key, retry_after);
        if retry_after.is_some() {
            self.not_before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.to_owned(), Instant::now() + delay);
        }
        delay
    }

    /// How long `key` must still wait for a server's retry hint, if it must.
    pub fn deferred(&self, key: &str) -> Option<Duration> {
        let mut map = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        let until = *map.get(key)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            map.remove(key);
            None
        }
    }

    /// Resets the backoff of `key` after a success.
    pub fn reset_backoff(&self, key: &str) {
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset(key);
        self.not_before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

fn call_observer(metrics: &Arc<Metrics>) -> Observer {
    let metrics = Arc::clone(metrics);
    Arc::new(move |record| metrics.observe_call(record.operation, record.status))
}

/// `namespace/name` of an object, the key of per-object state.
pub fn object_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Whether two status values serialise the same (a resync that changes nothing writes nothing).
pub fn same_status<T: Serialize>(live: Option<&T>, desired: &T) -> bool {
    match live {
        Some(live) => serde_json::to_value(live).ok() == serde_json::to_value(desired).ok(),
        None => false,
    }
}
