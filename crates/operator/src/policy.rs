//! What the installation allows a tenant to use: identities and the hosts that receive a
//! credential. A namespace user who may create our objects chooses neither; the administrator
//! does, through flags (Helm values). Pure, so every rule is a unit test.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// Azure public cloud authority host (Entra ID).
pub const PUBLIC_AUTHORITY_HOST: &str = "login.microsoftonline.com";
/// Azure public cloud ARM host.
pub const PUBLIC_ARM_HOST: &str = "management.azure.com";
/// Azure public cloud Foundry project endpoints.
pub const PUBLIC_FOUNDRY_HOSTS: &str = "*.services.ai.azure.com";

/// One allowed host: an exact name (`management.azure.com`, `127.0.0.1`) or a wildcard that
/// matches one or more leading labels (`*.services.ai.azure.com`). Ports are not part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    /// This host only.
    Exact(String),
    /// Any host ending in `.<suffix>` (not the suffix itself).
    Suffix(String),
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() || text.contains(['/', ':', ' ']) && !text.starts_with('[') {
            return Err(format!(
                "{text:?} is not a host name (write management.azure.com or *.services.ai.azure.com, without scheme or port)"
            ));
        }
        match text.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() && !suffix.contains('*') => {
                Ok(Self::Suffix(suffix.to_owned()))
            }
            Some(_) => Err(format!("{text:?} is not a valid wildcard host")),
            None if text.contains('*') => Err(format!(
                "{text:?}: a wildcard is only allowed as the first label (*.example.com)"
            )),
            None => Ok(Self::Exact(text)),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(host) => f.write_str(host),
            Self::Suffix(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl HostPattern {
    /// Whether `host` (lower case, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(exact) => host == exact,
            Self::Suffix(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// A list of allowed hosts for one kind of endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostAllowList {
    /// What the hosts are for, e.g. `authority`.
    pub what: &'static str,
    /// The flag that sets the list, named in messages.
    pub flag: &'static str,
    /// The patterns.
    pub patterns: Vec<HostPattern>,
}

impl HostAllowList {
    /// Parses comma-separated patterns.
    pub fn parse(what: &'static str, flag: &'static str, items: &[String]) -> Result<Self, String> {
        let patterns = items
            .iter()
            .flat_map(|item| item.split(','))
            .filter(|item| !item.trim().is_empty())
            .map(HostPattern::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            what,
            flag,
            patterns,
        })
    }

    /// Checks the host of `url` (a spec field named `field`); the error says what to change.
    pub fn check(&self, field: &str, url: &str) -> Result<(), String> {
        let parsed = Url::parse(url).map_err(|e| format!("{field} {url:?} is not a URL: {e}"))?;
        let host = parsed
            .host_str()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        if self.patterns.iter().any(|p| p.matches(&host)) {
            return Ok(());
        }
        let allowed = if self.patterns.is_empty() {
            "none".to_owned()
        } else {
            self.patterns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(format!(
            "{field} host {host:?} is not an allowed {} host of this installation (allowed: {allowed}); use an allowed host, or ask an administrator to add it with {} (Helm value allowedHosts)",
            self.what, self.flag
        ))
    }
}

/// One entry of the managed identity allow-list: `namespace=clientId`, where either side may be
/// `*`, and the client id `system` names the system-assigned identity (no client id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityGrant {
    /// Namespace, or `None` for every namespace.
    pub namespace: Option<String>,
    /// Client id (lower case), `Some("system")` for system-assigned, `None` for any.
    pub client_id: Option<String>,
}

impl FromStr for IdentityGrant {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (namespace, client_id) = text.trim().split_once('=').ok_or_else(|| {
            format!("{text:?} is not NAMESPACE=CLIENT_ID (either side may be *, the client id may be system)")
        })?;
        let side = |s: &str| {
            let s = s.trim().to_ascii_lowercase();
            (s != "*").then_some(s)
        };
        if namespace.trim().is_empty() || client_id.trim().is_empty() {
            return Err(format!("{text:?} has an empty side; write * for any"));
        }
        Ok(Self {
            namespace: side(namespace),
            client_id: side(client_id),
        })
    }
}

/// Which namespaces may use which managed identities of the nodes. Empty: none (the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedIdentityPolicy {
    /// The grants.
    pub grants: Vec<IdentityGrant>,
}

/// The flag behind [`ManagedIdentityPolicy`], named in messages.
pub const MANAGED_IDENTITY_FLAG: &str = "--allowed-managed-identities";

impl ManagedIdentityPolicy {
    /// Parses comma-separated grants.
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let grants = items
            .iter()
            .flat_map(|item| item.split(','))
            .filter(|item| !item.trim().is_empty())
            .map(IdentityGrant::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { grants })
    }

    /// Whether `namespace` may use the managed identity `client_id` (`None`: system-assigned).
    pub fn check(&self, namespace: &str, client_id: Option<&str>) -> Result<(), String> {
        let wanted = client_id.map_or_else(|| "system".to_owned(), str::to_ascii_lowercase);
        let allowed = self.grants.iter().any(|g| {
            g.namespace.as_deref().is_none_or(|n| n == namespace)
                && g.client_id.as_deref().is_none_or(|c| c == wanted)
        });
        if allowed {
            return Ok(());
        }
        let which = match client_id {
            Some(id) => format!("the managed identity with client id {id}"),
            None => "the system-assigned managed identity".to_owned(),
        };
        Err(format!(
            "identity.managedIdentity: {which} is not allowed for namespace {namespace} by this installation; use workloadIdentity or clientSecret, or ask an administrator to allow it with {MANAGED_IDENTITY_FLAG} {namespace}={} (Helm value identity.managedIdentity.allowed)",
            client_id.unwrap_or("system")
        ))
    }
}

/// Everything the installation decides, parsed once at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallPolicy {
    /// Managed identities per namespace.
    pub managed_identities: ManagedIdentityPolicy,
    /// Entra authority hosts.
    pub authority_hosts: HostAllowList,
    /// ARM hosts.
    pub arm_hosts: HostAllowList,
    /// Foundry data-plane hosts.
    pub foundry_hosts: HostAllowList,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> HostAllowList {
        let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
        HostAllowList::parse("Foundry", "--allowed-foundry-hosts", &items).expect("parses")
    }

    #[test]
    fn hosts_match_exactly_or_below_a_wildcard() {
        let l = list(&["management.azure.com", "*.services.ai.azure.com"]);
        assert!(l.check("f", "https://management.azure.com/x").is_ok());
        assert!(l.check("f", "https://MANAGEMENT.azure.com.").is_ok());
        assert!(
            l.check("f", "https://acct.services.ai.azure.com/api")
                .is_ok()
        );
        assert!(l.check("f", "https://a.b.services.ai.azure.com").is_ok());
        assert!(l.check("f", "https://services.ai.azure.com").is_err());
        assert!(l.check("f", "https://evilservices.ai.azure.com").is_err());
        assert!(
            l.check("f", "https://management.azure.com.evil.io")
                .is_err()
        );
        assert!(l.check("f", "https://attacker.example").is_err());
    }

    #[test]
    fn a_refusal_names_the_field_the_host_and_the_flag() {
        let l = list(&["127.0.0.1"]);
        let err = l
            .check("spec.endpoint", "https://10.0.0.1:8443/api")
            .expect_err("refused");
        assert!(err.contains("spec.endpoint"), "{err}");
        assert!(err.contains("\"10.0.0.1\""), "{err}");
        assert!(err.contains("--allowed-foundry-hosts"), "{err}");
        assert!(err.contains("allowed: 127.0.0.1"), "{err}");
        assert!(l.check("spec.endpoint", "https://127.0.0.1:9999/x").is_ok());
    }

    #[test]
    fn bad_patterns_are_refused_at_start() {
        for bad in ["https://x.com", "x.com:443", "a.*.com", "*.", "**.x.com"] {
            assert!(
                HostAllowList::parse("x", "--x", &[bad.to_owned()]).is_err(),
                "{bad}"
            );
        }
        assert_eq!(list(&["a.com, *.b.com", ""]).patterns.len(), 2);
    }

    #[test]
    fn managed_identity_is_off_until_granted() {
        let none = ManagedIdentityPolicy::default();
        let err = none
            .check("team-a", Some("abc"))
            .expect_err("off by default");
        assert!(
            err.contains("--allowed-managed-identities team-a=abc"),
            "{err}"
        );
        assert!(none.check("team-a", None).is_err());

        let items = ["team-a=ABC".to_owned(), "*=shared,team-b=system".to_owned()];
        let p = ManagedIdentityPolicy::parse(&items).expect("parses");
        assert!(p.check("team-a", Some("abc")).is_ok());
        assert!(p.check("team-b", Some("abc")).is_err());
        assert!(p.check("team-z", Some("shared")).is_ok());
        assert!(p.check("team-b", None).is_ok());
        assert!(p.check("team-a", None).is_err());

        let any = ManagedIdentityPolicy::parse(&["team-c=*".to_owned()]).expect("parses");
        assert!(any.check("team-c", Some("x")).is_ok());
        assert!(any.check("team-c", None).is_ok());
        assert!(ManagedIdentityPolicy::parse(&["noequals".to_owned()]).is_err());
        assert!(ManagedIdentityPolicy::parse(&["=x".to_owned()]).is_err());
    }

    #[test]
    fn the_defaults_allow_only_the_public_cloud() {
        use clap::Parser as _;
        let settings = crate::settings::Settings::try_parse_from(["op"]).expect("defaults");
        let p = settings.install_policy().expect("defaults parse");
        assert!(p.managed_identities.grants.is_empty());
        assert!(
            p.authority_hosts
                .check("a", "https://login.microsoftonline.com")
                .is_ok()
        );
        assert!(p.authority_hosts.check("a", "https://127.0.0.1:1").is_err());
        assert!(
            p.arm_hosts
                .check("a", "https://management.azure.com")
                .is_ok()
        );
        assert!(
            p.foundry_hosts
                .check("a", "https://x.services.ai.azure.com/api/projects/p")
                .is_ok()
        );
        assert!(
            p.foundry_hosts
                .check("a", "https://management.azure.com")
                .is_err()
        );
    }
}
