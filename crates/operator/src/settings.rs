//! Operator settings, from flags or environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use foundry_gateway_client::IpNetwork;

use crate::policy::{HostAllowList, InstallPolicy, ManagedIdentityPolicy};
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

    /// Secret in the operator's namespace (`--lease-namespace`) holding the key of the
    /// credentials digest (data key `key`); created with a random key when missing.
    #[arg(
        long,
        env = "FOUNDRY_OPERATOR_DIGEST_KEY_SECRET",
        default_value = "foundry-gateway-operator-digest-key"
    )]
    pub digest_key_secret: String,

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

    /// Watch only these namespaces (comma-separated): objects elsewhere are ignored, and
    /// Secrets, ConfigMaps and ServiceAccount tokens are read only here, so the operator needs a
    /// Role with those rights in each listed namespace and no cluster-wide Secret access.
    #[arg(long, env = "FOUNDRY_OPERATOR_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,

    /// Managed identities of the nodes that FoundryProjects may use, as `NAMESPACE=CLIENT_ID`
    /// (comma-separated; `*` on either side for any, client id `system` for the system-assigned
    /// identity). Empty (the default): no namespace may use a managed identity.
    #[arg(long, env = "FOUNDRY_OPERATOR_ALLOWED_MANAGED_IDENTITIES", value_delimiter = ',', value_parser = identity_grant)]
    pub allowed_managed_identities: Vec<String>,

    /// Hosts that may receive a FoundryProject's identity as its Entra authority
    /// (`spec.authorityHost`; exact names or `*.suffix`). Sovereign clouds:
    /// `login.microsoftonline.us`, `login.chinacloudapi.cn`.
    #[arg(long, env = "FOUNDRY_OPERATOR_ALLOWED_AUTHORITY_HOSTS", value_delimiter = ',', value_parser = host_pattern, default_value = crate::policy::PUBLIC_AUTHORITY_HOST)]
    pub allowed_authority_hosts: Vec<String>,

    /// Hosts that may receive ARM tokens (`spec.managementEndpoint`). Sovereign clouds:
    /// `management.usgovcloudapi.net`, `management.chinacloudapi.cn`.
    #[arg(long, env = "FOUNDRY_OPERATOR_ALLOWED_ARM_HOSTS", value_delimiter = ',', value_parser = host_pattern, default_value = crate::policy::PUBLIC_ARM_HOST)]
    pub allowed_arm_hosts: Vec<String>,

    /// Hosts that may receive data-plane tokens (`spec.endpoint`). Sovereign clouds: the
    /// cloud's `*.services.ai.azure.us` or `*.services.ai.azure.cn`.
    #[arg(long, env = "FOUNDRY_OPERATOR_ALLOWED_FOUNDRY_HOSTS", value_delimiter = ',', value_parser = host_pattern, default_value = crate::policy::PUBLIC_FOUNDRY_HOSTS)]
    pub allowed_foundry_hosts: Vec<String>,

    /// Largest response body read from Foundry, a gateway or a token endpoint, in bytes.
    #[arg(
        long,
        env = "FOUNDRY_OPERATOR_MAX_RESPONSE_BYTES",
        default_value_t = 1_048_576
    )]
    pub max_response_bytes: usize,

    /// Address ranges never connected to, checked after DNS resolution (comma-separated CIDRs;
    /// default: link-local, which holds the cloud metadata address, and the Azure wire server).
    /// An empty value turns the check off.
    #[arg(long, env = "FOUNDRY_OPERATOR_DENIED_NETWORKS", value_delimiter = ',', value_parser = network)]
    pub denied_networks: Option<Vec<Option<IpNetwork>>>,

    /// Gateway probes run at once, across all namespaces.
    #[arg(long, env = "FOUNDRY_OPERATOR_PROBE_CONCURRENCY", default_value_t = 16)]
    pub probe_concurrency: usize,

    /// Gateway probes of one namespace run at once, so one namespace's slow gateways cannot
    /// take every probe slot.
    #[arg(
        long,
        env = "FOUNDRY_OPERATOR_PROBE_CONCURRENCY_PER_NAMESPACE",
        default_value_t = 4
    )]
    pub probe_concurrency_per_namespace: usize,

    /// Timeout of one Foundry REST call.
    #[arg(long, env = "FOUNDRY_OPERATOR_CALL_TIMEOUT", value_parser = humantime_duration, default_value = "30s")]
    pub call_timeout: Duration,
}

/// A CIDR of `--denied-networks`; an empty item (`--denied-networks=`) turns the list off.
fn network(text: &str) -> Result<Option<IpNetwork>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim().parse().map(Some).map_err(|e| format!("{e}"))
}

/// A host pattern of the `--allowed-*-hosts` flags, checked at start.
fn host_pattern(text: &str) -> Result<String, String> {
    text.parse::<crate::policy::HostPattern>()?;
    Ok(text.trim().to_owned())
}

/// A `NAMESPACE=CLIENT_ID` entry of `--allowed-managed-identities`, checked at start.
fn identity_grant(text: &str) -> Result<String, String> {
    text.parse::<crate::policy::IdentityGrant>()?;
    Ok(text.trim().to_owned())
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

impl Settings {
    /// The installation's policy (issue 11) from the flags; an error names the flag and the bad
    /// value.
    pub fn install_policy(&self) -> Result<InstallPolicy, String> {
        Ok(InstallPolicy {
            managed_identities: ManagedIdentityPolicy::parse(&self.allowed_managed_identities)?,
            authority_hosts: HostAllowList::parse(
                "authority",
                "--allowed-authority-hosts",
                &self.allowed_authority_hosts,
            )?,
            arm_hosts: HostAllowList::parse("ARM", "--allowed-arm-hosts", &self.allowed_arm_hosts)?,
            foundry_hosts: HostAllowList::parse(
                "Foundry",
                "--allowed-foundry-hosts",
                &self.allowed_foundry_hosts,
            )?,
        })
    }
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
    fn policy_flags_are_checked_when_the_process_starts() {
        let parse = |args: &[&str]| {
            Settings::try_parse_from(std::iter::once("op").chain(args.iter().copied()))
        };
        let s = parse(&["--denied-networks=169.254.0.0/16,10.0.0.0/8"]).expect("valid CIDRs");
        assert_eq!(s.denied_networks.map(|n| n.len()), Some(2));
        assert!(parse(&["--denied-networks=169.254.0.0/99"]).is_err());
        let off = parse(&["--denied-networks="]).expect("empty turns it off");
        assert_eq!(off.denied_networks, Some(vec![None]));
        assert!(parse(&["--allowed-arm-hosts=https://management.azure.com"]).is_err());
        assert!(parse(&["--allowed-foundry-hosts=*.a.com,b.com"]).is_ok());
        assert!(parse(&["--allowed-managed-identities=team-a"]).is_err());
        assert!(parse(&["--allowed-managed-identities=team-a=x,*=system"]).is_ok());
    }

    #[test]
    fn the_defaults_parse() {
        let s = Settings::try_parse_from(["foundry-gateway-operator"]).expect("defaults parse");
        assert!(s.leader_elect);
        assert_eq!(s.resync, Duration::from_secs(600));
    }
}
