//! Prometheus metrics of the operator, served on the admin server's `/metrics`.

use std::sync::Arc;
use std::time::Duration;

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
        Arc::new(Self {
            reconciles,
            failures,
            reconcile_duration,
            foundry_calls,
            probe_duration,
            gateway_active,
            leader,
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

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
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
}
