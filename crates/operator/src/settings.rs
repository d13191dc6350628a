//! Operator settings, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::telemetry::LogFormat;

/// Settings of one operator process.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "foundry-gateway-operator",
    version,
    about = "Kubernetes operator for Microsoft Foundry bring-your-own AI gateway"
)]
pub struct Settings {
    /// Address of the admin server (`/metrics`, `/healthz`, `/readyz`).
    #[arg(
        long,
        env = "FOUNDRY_OPERATOR_ADMIN_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_addr: SocketAddr,

    /// Log line format.
    #[arg(long, env = "FOUNDRY_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// Elect a leader through a Lease so that only one replica writes.
    #[arg(long, env = "FOUNDRY_OPERATOR_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Namespace of the leader Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Name of the leader Lease.
    #[arg(
        long,
        env = "FOUNDRY_OPERATOR_LEASE_NAME",
        default_value = "foundry-gateway-operator"
    )]
    pub lease_name: String,

    /// Identity of this replica in the Lease (default: the pod name, else host name and a
    /// random suffix).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Watch only this namespace (all namespaces when unset). A namespace-scoped operator needs
    /// a Role in that namespace instead of the ClusterRole.
    #[arg(long, env = "FOUNDRY_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Objects reconciled at once per controller.
    #[arg(long, env = "FOUNDRY_OPERATOR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// How often an unchanged object is checked against Foundry (drift detection).
    #[arg(long, env = "FOUNDRY_OPERATOR_RESYNC", value_parser = humantime_duration, default_value = "10m")]
    pub resync: Duration,

    /// PEM file of extra root certificates trusted for Foundry, gateways and token endpoints.
    #[arg(long, env = "FOUNDRY_OPERATOR_EXTRA_CA_FILE")]
    pub extra_ca_file: Option<PathBuf>,

    /// Allow FoundryProjects to use the operator's own identity (`identity.operatorDefault`).
    #[arg(long, env = "FOUNDRY_OPERATOR_ALLOW_OPERATOR_DEFAULT_IDENTITY", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_operator_default_identity: bool,

    /// How long a missing Secret or key is waited for before the object is Stalled.
    #[arg(long, env = "FOUNDRY_OPERATOR_SECRET_GRACE", value_parser = humantime_duration, default_value = "30s")]
    pub secret_grace: Duration,

    /// Timeout of one Foundry REST call.
    #[arg(long, env = "FOUNDRY_OPERATOR_CALL_TIMEOUT", value_parser = humantime_duration, default_value = "30s")]
    pub call_timeout: Duration,
}

/// Parses `500ms`, `30s`, `10m`, `1h` and sums such as `1m30s`.
pub fn humantime_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration such as 30s, 5m or 1h30m"))
}

/// Parses a Go-style duration (`ms`, `s`, `m`, `h` units, decimals allowed), as the CRDs use.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let (factor, unit_len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return None;
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations_parse_like_the_crd_pattern_allows() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5d"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn the_defaults_parse() {
        let s = Settings::try_parse_from(["foundry-gateway-operator"]).expect("defaults parse");
        assert!(s.leader_elect);
        assert_eq!(s.resync, Duration::from_secs(600));
    }
}
