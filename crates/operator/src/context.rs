//! The state every controller shares, built once at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foundry_gateway_client::probe::Prober;
use foundry_gateway_client::{ClientOptions, Observer, Transport, TransportOptions};
use kube::runtime::events::{Recorder, Reporter};
use serde::Serialize;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::clients::ProjectResolver;
use crate::keys::RetryKey;
use crate::metrics::Metrics;
use crate::policy::InstallPolicy;
use crate::probes::{Limits, ProbeEvents, ProbeScheduler};
use crate::settings::Settings;
pub use crate::stores::Stores;

/// Name under which the operator writes objects, status and events.
pub const MANAGER: &str = "foundry-gateway-operator";

/// Annotation Flux sets to ask for an immediate reconcile.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// Finalizer guarding the Foundry resources of an object.
pub const FINALIZER: &str = "gateway.foundry.dev/finalizer";

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
    pub prober: Arc<Prober>,
    /// Runs probes outside the reconciles, fairly across namespaces.
    pub probes: Arc<ProbeScheduler>,
    /// Objects whose probe ended; taken once by the GatewayConnection controller.
    probe_events: Mutex<Option<ProbeEvents>>,
    /// Identities and hosts the installation allows.
    pub policy: InstallPolicy,
    /// Resolved projects and their Foundry clients.
    pub projects: ProjectResolver,
    /// Per-object backoff.
    pub backoff: Mutex<Backoff<RetryKey>>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Stores of the three kinds.
    pub stores: Stores,
    /// Per-connection memory of the GatewayConnection controller.
    /// Key of the credentials digest (`status.credentialsHash`): random in [`Context::new`],
    /// replaced by the key from the operator's Secret ([`Context::with_digest_key`]) at start.
    pub digest_key: crate::digest::DigestKey,
    /// Per object key: no Foundry call before this instant (a server's Retry-After), even when
    /// the object's own status write triggers a reconcile sooner.
    not_before: Mutex<HashMap<RetryKey, Instant>>,
    /// When a referenced Secret or key was first found missing, per object key.
    missing_since: Mutex<HashMap<RetryKey, Instant>>,
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
        let policy = settings.install_policy().map_err(anyhow::Error::msg)?;
        let denied_networks = settings
            .denied_networks
            .as_ref()
            .map(|list| list.iter().flatten().cloned().collect::<Vec<_>>());
        let transport = Transport::new(TransportOptions {
            extra_root_ca_pem,
            user_agent: Some(format!("{MANAGER}/{}", env!("CARGO_PKG_VERSION"))),
            max_body_bytes: Some(settings.max_response_bytes),
            denied_networks,
            ..TransportOptions::default()
        })?;
        let observer = call_observer(&metrics);
        let prober = Arc::new(Prober::new(transport.clone()).with_observer(observer));
        let (probes, probe_events) = ProbeScheduler::new(
            Arc::clone(&prober),
            Limits {
                global: settings.probe_concurrency,
                per_namespace: settings.probe_concurrency_per_namespace,
            },
        );
        let recorder = Recorder::new(client.clone(), Reporter::from(MANAGER));
        Ok(Self {
            client,
            settings,
            metrics,
            transport,
            prober,
            probes: Arc::new(probes),
            probe_events: Mutex::new(Some(probe_events)),
            policy,
            projects: ProjectResolver::default(),
            backoff: Mutex::new(Backoff::new(BackoffPolicy::default())),
            recorder,
            stores,
            not_before: Mutex::new(HashMap::new()),
            missing_since: Mutex::new(HashMap::new()),
            digest_key: crate::digest::DigestKey::random(),
        })
    }

    /// The context with the digest key loaded from the operator's Secret, so that digests stay
    /// the same across restarts and replicas.
    #[must_use]
    pub fn with_digest_key(mut self, key: crate::digest::DigestKey) -> Self {
        self.digest_key = key;
        self
    }

    /// The objects whose probe ended (once: the GatewayConnection controller takes them).
    pub fn take_probe_events(&self) -> Option<ProbeEvents> {
        self.probe_events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
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
    pub fn missing_past_grace(&self, key: &RetryKey) -> bool {
        let mut map = self.missing_since.lock().unwrap_or_else(|e| e.into_inner());
        let since = *map.entry(key.clone()).or_insert_with(Instant::now);
        since.elapsed() >= self.settings.secret_grace
    }

    /// Forgets a missing reference once it is found.
    pub fn found(&self, key: &RetryKey) {
        self.missing_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// The delay before retrying `key` after a transient failure (never shorter than the hint).
    /// With a server hint, no reconcile of `key` calls Foundry before it has passed.
    pub fn backoff(&self, key: impl Into<RetryKey>, retry_after: Option<Duration>) -> Duration {
        let key = key.into();
        let delay = self
            .backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_delay(&key, retry_after);
        if retry_after.is_some() {
            self.not_before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, deadline(delay));
        }
        delay
    }

    /// How long `key` must still wait for a server's retry hint, if it must.
    pub fn deferred(&self, key: impl Into<RetryKey>) -> Option<Duration> {
        let key = key.into();
        let mut map = self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        let until = *map.get(&key)?;
        let now = Instant::now();
        if until > now {
            Some(until.saturating_duration_since(now))
        } else {
            map.remove(&key);
            None
        }
    }

    /// Resets the backoff of `key` after a success.
    pub fn reset_backoff(&self, key: impl Into<RetryKey>) {
        let key = key.into();
        self.backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset(&key);
        self.not_before
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

fn call_observer(metrics: &Arc<Metrics>) -> Observer {
    let metrics = Arc::clone(metrics);
    Arc::new(move |record| metrics.observe_call(record.operation, record.status))
}

/// Now plus `delay`, or far in the future when that does not fit in an `Instant`.
fn deadline(delay: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(delay)
        .or_else(|| now.checked_add(Duration::from_secs(86_400 * 365)))
        .unwrap_or(now)
}

/// Whether two status values serialise the same (a resync that changes nothing writes nothing).
pub fn same_status<T: Serialize>(live: Option<&T>, desired: &T) -> bool {
    match live {
        Some(live) => serde_json::to_value(live).ok() == serde_json::to_value(desired).ok(),
        None => false,
    }
}

impl AsRef<Context> for Context {
    fn as_ref(&self) -> &Context {
        self
    }
}
