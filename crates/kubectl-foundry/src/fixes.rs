//! Reason → what to do: the README's Troubleshooting table as one Rust table, so `status` says
//! the same thing as the documentation. A test checks that every reason of
//! `foundry_gateway_api::conditions::reasons` has an entry.

use foundry_gateway_api::conditions::{reasons as r, types};

/// One row: the reason, the condition type it is specific to (None: any), what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fix {
    /// The condition reason.
    pub reason: &'static str,
    /// The condition type the row is about, when the same reason means different things.
    pub condition: Option<&'static str>,
    /// What to do (the README's "What to do" column).
    pub fix: &'static str,
}

const fn fix(reason: &'static str, condition: Option<&'static str>, fix: &'static str) -> Fix {
    Fix {
        reason,
        condition,
        fix,
    }
}

/// Every reason with its fix, in the README's order.
pub const FIXES: &[Fix] = &[
    fix(r::RECONCILED, None, "nothing"),
    fix(
        r::PROGRESSING,
        None,
        "wait; if it stays, check that the operator runs and holds its Lease (kubectl -n foundry-system get lease)",
    ),
    fix(
        r::RETRYING,
        None,
        "usually nothing; if it persists, read the message (which call, which status) and check Foundry's health, egress and proxies",
    ),
    fix(
        r::SUSPENDED,
        None,
        "kubectl patch <kind> <name> --type merge -p '{\"spec\":{\"suspend\":false}}'",
    ),
    fix(r::INVALID_SPEC, None, "fix the field the message names"),
    fix(
        r::REJECTED_BY_FOUNDRY,
        None,
        "fix the spec (target, api-versions, models, tool settings) as the message says",
    ),
    fix(
        r::UNAUTHORIZED,
        Some(types::GATEWAY_ACTIVE),
        "fix the key Secret, auth.apiKey.header/format, the OAuth2 client, or the Entra audience the gateway expects; a rotated Secret is picked up within seconds",
    ),
    fix(
        r::UNAUTHORIZED,
        None,
        "check the project identity: client id, tenant, secret or federated credential, and its roles on the project",
    ),
    fix(
        r::IDENTITY_NOT_ALLOWED,
        None,
        "use workloadIdentity or clientSecret, or ask the administrator for the grant the message names",
    ),
    fix(
        r::HOST_NOT_ALLOWED,
        None,
        "use your cloud's hosts; an administrator adds sovereign or private hosts with allowedHosts.*",
    ),
    fix(
        r::OWNED_ELSEWHERE,
        None,
        "choose another connectionName/agentName, or delete the owning object; adopt never takes over what another live object owns",
    ),
    fix(
        r::ALREADY_EXISTS,
        None,
        "set spec.adopt: true to take it over, or choose another spec.connectionName",
    ),
    fix(
        r::SECRET_NOT_FOUND,
        None,
        "create the Secret with that key in the same namespace (cross-namespace references are not allowed)",
    ),
    fix(
        r::CONFIG_MAP_NOT_FOUND,
        None,
        "create it, or fix instructionsFrom",
    ),
    fix(
        r::PROJECT_NOT_READY,
        None,
        "fix the FoundryProject first (see its own reason)",
    ),
    fix(
        r::CONNECTION_NOT_READY,
        None,
        "fix the connection (see its reason); the agent follows on its own",
    ),
    fix("ConnectionReady", None, "nothing"),
    fix(
        r::GATEWAY_INACTIVE,
        None,
        "fix the cause on GatewayActive; it turns Active again by itself",
    ),
    fix(r::ACTIVE, None, "nothing"),
    fix(
        r::UNREACHABLE,
        None,
        "check spec.target, DNS, firewalls and network policies from the operator's pod and from Foundry's network (private endpoints)",
    ),
    fix(
        r::TIMEOUT,
        None,
        "fix the gateway's latency, or raise probe.timeout",
    ),
    fix(
        r::MODEL_NOT_FOUND,
        Some(types::MODEL_RESOLVED),
        "fix spec.model.name or the connection's models",
    ),
    fix(
        r::MODEL_NOT_FOUND,
        None,
        "fix the model names (models.static, probe.model) or the gateway's deployments",
    ),
    fix("ModelFound", None, "nothing"),
    fix(
        r::BAD_RESPONSE,
        None,
        "check listModelsEndpoint/getModelEndpoint, provider, deploymentInPath and inferenceApiVersion against the gateway",
    ),
    fix(
        r::TLS_ERROR,
        None,
        "fix the certificate, or trust the company CA with the chart's extraCA",
    ),
    fix(
        r::PROBING,
        None,
        "wait; at most probe.timeout (<= 30 s) plus a queue turn",
    ),
    fix(
        "ProbeIdentityMismatch",
        None,
        "set probe.mode: Foundry (with probe.model or static models), or leave Auto with a model",
    ),
    fix(r::NOT_PROBED, None, "nothing, or turn probing on"),
    fix(
        r::UNSUPPORTED_TOOL,
        None,
        "remove the tool; supported: code interpreter, function, file search, OpenAPI, Foundry IQ, SharePoint grounding, Fabric data agent, MCP, browser automation",
    ),
    fix(
        r::UNEXPECTED_REPLY,
        None,
        "fix verify.expect, or the instructions or model if the reply is really wrong",
    ),
    fix(
        r::VERIFICATION_FAILED,
        None,
        "check the connection and the gateway (the agent's call goes through them)",
    ),
    fix("ReplyMatched", None, "nothing"),
    fix(
        r::IN_USE,
        None,
        "delete those agents or point them at another connection; the deletion then finishes",
    ),
    fix(
        r::NOT_FOUND_IN_FOUNDRY,
        None,
        "create it in Foundry, fix connectionName/agentName, or set managementPolicy: Full to let the operator create it",
    ),
    fix(
        r::DRIFTED,
        None,
        "change the spec to match Foundry, or set managementPolicy: Full to write the spec (one PUT, or one new version)",
    ),
    fix(
        r::IN_SYNC,
        None,
        "nothing; if the message says the object is not marked as its owner, switching to Full takes it over as it is (adopt: true for a connection) and writes only what differs",
    ),
    fix(
        r::OBSERVING,
        None,
        "nothing; it runs after switching to Full",
    ),
];

/// The transient error labels `Ready=False` may carry while the operator retries.
pub const TRANSIENT_LABELS: &[&str] = &[
    "Throttled",
    "ServerError",
    "RequestTimeout",
    "Timeout",
    "ConnectionFailed",
    "TlsError",
    "TransportError",
    "CredentialError",
    "InvalidResponse",
    "Conflict",
    "PreconditionFailed",
    "NotFound",
    "ClientError",
    "UnexpectedStatus",
    "KubernetesApiError",
];

/// What to do for a reason seen on a condition of this type.
pub fn fix_for(reason: &str, condition: &str) -> Option<&'static str> {
    FIXES
        .iter()
        .find(|f| f.reason == reason && f.condition == Some(condition))
        .or_else(|| {
            FIXES
                .iter()
                .find(|f| f.reason == reason && f.condition.is_none())
        })
        .map(|f| f.fix)
        .or_else(|| {
            TRANSIENT_LABELS.contains(&reason).then_some(
                "a transient failure the operator retries; if it persists, the message names the Foundry call that failed",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason constants, read from the source of `conditions.rs` so that a new constant
    /// without a row fails here.
    fn reason_constants() -> Vec<String> {
        let source = include_str!("../../api/src/conditions.rs");
        let reasons = source
            .split("pub mod reasons")
            .nth(1)
            .expect("conditions.rs has a reasons module");
        reasons
            .lines()
            .filter_map(|line| line.trim().strip_prefix("pub const "))
            .filter_map(|rest| rest.split('"').nth(1))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_reason_constant_has_a_fix() {
        let reasons = reason_constants();
        assert!(reasons.len() >= 25, "read {reasons:?}");
        let missing: Vec<_> = reasons
            .iter()
            .filter(|r| !FIXES.iter().any(|f| f.reason == r.as_str()))
            .collect();
        assert!(missing.is_empty(), "reasons without a fix: {missing:?}");
    }

    #[test]
    fn every_readme_troubleshooting_reason_has_a_fix() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("## Troubleshooting")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Troubleshooting section");
        for line in table.lines().filter(|l| l.starts_with("| `")) {
            let reason = line.split('`').nth(1).expect("a reason");
            assert!(
                FIXES.iter().any(|f| f.reason == reason),
                "README reason {reason} has no fix"
            );
        }
    }

    #[test]
    fn the_same_reason_on_another_condition_has_its_own_fix() {
        assert!(
            fix_for("Unauthorized", "GatewayActive")
                .unwrap()
                .starts_with("fix the key Secret")
        );
        assert!(
            fix_for("Unauthorized", "Ready")
                .unwrap()
                .starts_with("check the project identity")
        );
        assert!(
            fix_for("ModelNotFound", "ModelResolved")
                .unwrap()
                .contains("spec.model.name")
        );
        assert!(fix_for("Throttled", "Ready").is_some());
        assert_eq!(fix_for("NoSuchReason", "Ready"), None);
    }
}
