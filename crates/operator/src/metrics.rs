//! Prometheus metrics of the operator, served on the admin server's `/metrics`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use foundry_gateway_api::conditions::types;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt as _;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind of the object.
    pub kind: String,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Kind of the object.
    pub kind: String,
    /// Stable PascalCase label of the error.
    pub error: String,
}

/// Labels of a Foundry call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// REST operation, e.g. `ProjectConnections_Create`.
    pub operation: String,
    /// HTTP status code, or `error` when no response arrived.
    pub status: String,
}

/// Labels of a gateway.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GatewayLabels {
    /// Namespace of the GatewayConnection.
    pub namespace: String,
    /// Name of the GatewayConnection.
    pub name: String,
}

/// Labels of one object of the three kinds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// Kind of the object.
    pub kind: String,
    /// Namespace of the object.
    pub namespace: String,
    /// Name of the object.
    pub name: String,
}

/// Every metric family, registered once at start.
#[derive(Debug)]
pub struct Metrics {
    /// Reconciles started, by kind.
    pub reconciles: Family<KindLabels, Counter>,
    /// Reconciles that failed, by kind and error label.
    pub failures: Family<ErrorLabels, Counter>,
    /// Reconcile durations in seconds, by kind.
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// Foundry calls by operation and status.
    pub foundry_calls: Family<CallLabels, Counter>,
    /// Gateway probe latency in seconds.
    pub probe_duration: Histogram,
    /// Gateway state per connection: 1 Active, 0 Inactive, -1 Unknown.
    pub gateway_active: Family<GatewayLabels, Gauge>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    /// Ready condition per object: 1 True, 0 False, -1 Unknown or not reported yet. Computed from
    /// the controllers' caches at each scrape, so deleted objects leave no series behind.
    pub object_ready: Family<ObjectLabels, Gauge>,
    /// The caches the per-object gauges are read from, set once the controllers run (a standby
    /// replica has none and exports no per-object series).
    stores: OnceLock<crate::stores::Stores>,
    /// Connections seen at the previous scrape, to drop the gauges of deleted ones.
    scraped: Mutex<HashSet<GatewayLabels>>,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("foundry_gateway");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.005, 2.0, 14))) as fn() -> Histogram,
        );
        let foundry_calls = Family::<CallLabels, Counter>::default();
        let probe_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let gateway_active = Family::<GatewayLabels, Gauge>::default();
        let leader = Gauge::default();
        let object_ready = Family::<ObjectLabels, Gauge>::default();
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration",
            reconcile_duration.clone(),
        );
        registry.register(
            "foundry_calls",
            "Foundry REST calls by operation and status",
            foundry_calls.clone(),
        );
        registry.register(
            "probe_duration_seconds",
            "Gateway probe latency",
            probe_duration.clone(),
        );
        registry.register(
            "gateway_active",
            "Gateway state: 1 Active, 0 Inactive, -1 Unknown",
            gateway_active.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "object_ready",
            "Ready condition per object: 1 True, 0 False, -1 Unknown or not reported",
            object_ready.clone(),
        );
        Arc::new(Self {
            reconciles,
            failures,
            reconcile_duration,
            foundry_calls,
            probe_duration,
            gateway_active,
            leader,
            object_ready,
            stores: OnceLock::new(),
            scraped: Mutex::new(HashSet::new()),
            registry,
        })
    }

    /// Counts a reconcile of `kind` that took `elapsed`.
    pub fn observe_reconcile(&self, kind: &str, elapsed: Duration) {
        let labels = KindLabels {
            kind: kind.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed reconcile.
    pub fn observe_failure(&self, kind: &str, error: &str) {
        let labels = ErrorLabels {
            kind: kind.to_owned(),
            error: error.to_owned(),
        };
        self.failures.get_or_create(&labels).inc();
    }

    /// Counts a Foundry call.
    pub fn observe_call(&self, operation: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        let labels = CallLabels {
            operation: operation.to_owned(),
            status,
        };
        self.foundry_calls.get_or_create(&labels).inc();
    }

    /// Reads the per-object gauges from these caches at every scrape from now on.
    pub fn read_objects_from(&self, stores: crate::stores::Stores) {
        let _ = self.stores.set(stores);
    }

    /// Sets `object_ready` from the caches and drops the gateway gauges of deleted connections.
    fn refresh_objects(&self, scraped: &mut HashSet<GatewayLabels>) {
        let Some(stores) = self.stores.get() else {
            return;
        };
        let mut objects = Vec::new();
        for project in stores.projects.state() {
            let conditions = project.status.as_ref().map(|s| s.conditions.as_slice());
            objects.push(object("FoundryProject", &*project, conditions));
        }
        for connection in stores.connections.state() {
            let conditions = connection.status.as_ref().map(|s| s.conditions.as_slice());
            objects.push(object("GatewayConnection", &*connection, conditions));
        }
        for agent in stores.agents.state() {
            let conditions = agent.status.as_ref().map(|s| s.conditions.as_slice());
            objects.push(object("PromptAgent", &*agent, conditions));
        }
        let connections: HashSet<GatewayLabels> = objects
            .iter()
            .filter(|(labels, _)| labels.kind == "GatewayConnection")
            .map(|(labels, _)| GatewayLabels {
                namespace: labels.namespace.clone(),
                name: labels.name.clone(),
            })
            .collect();
        for gone in scraped.difference(&connections) {
            self.gateway_active.remove(gone);
        }
        *scraped = connections;
        self.object_ready.clear();
        for (labels, ready) in objects {
            self.object_ready.get_or_create(&labels).set(ready);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        // One scrape at a time: the per-object gauges are cleared and refilled for each.
        let mut scraped = self.scraped.lock().unwrap_or_else(PoisonError::into_inner);
        self.refresh_objects(&mut scraped);
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The labels and Ready gauge value of one object.
fn object(
    kind: &str,
    object: &impl kube::Resource,
    conditions: Option<&[Condition]>,
) -> (ObjectLabels, i64) {
    let labels = ObjectLabels {
        kind: kind.to_owned(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    };
    (labels, ready_value(conditions.unwrap_or_default()))
}

/// 1 when Ready is True, 0 when False, -1 when Unknown or absent.
fn ready_value(conditions: &[Condition]) -> i64 {
    match conditions
        .iter()
        .find(|c| c.type_ == types::READY)
        .map(|c| c.status.as_str())
    {
        Some("True") => 1,
        Some("False") => 0,
        _ => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_the_prefix_and_labels() {
        let m = Metrics::new();
        m.observe_reconcile("GatewayConnection", Duration::from_millis(20));
        m.observe_failure("GatewayConnection", "Throttled");
        m.observe_call("ProjectConnections_Create", Some(200));
        let text = m.render();
        assert!(
            text.contains(r#"foundry_gateway_reconciles_total{kind="GatewayConnection"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"foundry_gateway_reconcile_failures_total{kind="GatewayConnection",error="Throttled"} 1"#), "{text}");
        assert!(text.contains(r#"foundry_gateway_foundry_calls_total{operation="ProjectConnections_Create",status="200"} 1"#), "{text}");
    }

    #[test]
    fn the_ready_gauge_is_one_zero_or_minus_one_by_the_ready_condition() {
        let condition = |type_: &str, status: &str| Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "Test".to_owned(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        assert_eq!(ready_value(&[condition("Ready", "True")]), 1);
        assert_eq!(
            ready_value(&[
                condition("Reconciling", "True"),
                condition("Ready", "False")
            ]),
            0
        );
        assert_eq!(ready_value(&[condition("Ready", "Unknown")]), -1);
        assert_eq!(ready_value(&[condition("Reconciling", "True")]), -1);
        assert_eq!(ready_value(&[]), -1);
    }

    #[test]
    fn without_caches_no_object_series_are_exported() {
        let m = Metrics::new();
        let text = m.render();
        assert!(!text.contains("foundry_gateway_object_ready"), "{text}");
    }
}
