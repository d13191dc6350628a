//! Condition types and reasons (the status contract of docs/ARCHITECTURE.md). One vocabulary for all kinds, so that `kubectl wait`,
//! kstatus (Flux), Helm `--wait` and the Argo CD health check read every object the same way.

/// Condition types.
pub mod types {
    /// The object is reconciled and healthy. Present on every object after its first reconcile.
    pub const READY: &str = "Ready";
    /// Work is in flight; the object may converge by itself. Never together with `Stalled`.
    pub const RECONCILING: &str = "Reconciling";
    /// A person must act: the controller will not make progress until the spec or the world changes.
    pub const STALLED: &str = "Stalled";
    /// GatewayConnection: the last probes found the gateway serving (True) or not (False).
    pub const GATEWAY_ACTIVE: &str = "GatewayActive";
    /// PromptAgent: the referenced GatewayConnection exists and is Ready.
    pub const CONNECTION_RESOLVED: &str = "ConnectionResolved";
    /// PromptAgent: the model is among the models of the referenced connection.
    pub const MODEL_RESOLVED: &str = "ModelResolved";
    /// PromptAgent: the verification prompt got the expected reply through the gateway.
    pub const VERIFIED: &str = "Verified";
    /// `managementPolicy: Observe` only: whether what Foundry holds differs from the spec (True,
    /// the message names the fields) or not (False, reason InSync). Information, not health: it
    /// never makes an object not Ready. Absent under `managementPolicy: Full`, which corrects
    /// drift instead of reporting it.
    pub const DRIFTED: &str = "Drifted";
}

/// Condition reasons (PascalCase, stable: alerts and runbooks match on them).
pub mod reasons {
    /// Everything is reconciled and healthy.
    pub const RECONCILED: &str = "Reconciled";
    /// The controller is working on the current generation.
    pub const PROGRESSING: &str = "Progressing";
    /// A transient error: the controller retries with backoff.
    pub const RETRYING: &str = "Retrying";
    /// `spec.suspend` is true: nothing is read or written.
    pub const SUSPENDED: &str = "Suspended";
    /// The spec cannot work as written; the message says what to change.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// Foundry refused the request as invalid (HTTP 400).
    pub const REJECTED_BY_FOUNDRY: &str = "RejectedByFoundry";
    /// Foundry refused the identity (HTTP 401/403 after a token refresh).
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// A connection of that name exists in Foundry and `adopt` is false.
    pub const ALREADY_EXISTS: &str = "AlreadyExists";
    /// A referenced Secret, key or ConfigMap does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A referenced ConfigMap or key does not exist.
    pub const CONFIG_MAP_NOT_FOUND: &str = "ConfigMapNotFound";
    /// The referenced FoundryProject does not exist or is not Ready.
    pub const PROJECT_NOT_READY: &str = "ProjectNotReady";
    /// The referenced GatewayConnection does not exist or is not Ready.
    pub const CONNECTION_NOT_READY: &str = "ConnectionNotReady";
    /// The gateway probe failed `failureThreshold` times in a row.
    pub const GATEWAY_INACTIVE: &str = "GatewayInactive";
    /// The gateway answered as Foundry expects.
    pub const ACTIVE: &str = "Active";
    /// The probe could not connect to the gateway.
    pub const UNREACHABLE: &str = "Unreachable";
    /// The gateway did not answer within the probe timeout.
    pub const TIMEOUT: &str = "Timeout";
    /// The model is not served by the gateway or not listed by the connection.
    pub const MODEL_NOT_FOUND: &str = "ModelNotFound";
    /// The gateway answered with something Foundry cannot use.
    pub const BAD_RESPONSE: &str = "BadResponse";
    /// The TLS handshake with the gateway failed.
    pub const TLS_ERROR: &str = "TLSError";
    /// The first probe of the current spec and credentials is running.
    pub const PROBING: &str = "Probing";
    /// Probing is off (`probe.mode: Off`) or has not run yet.
    pub const NOT_PROBED: &str = "NotProbed";
    /// The tool kind is not one of those Foundry supports with gateway models.
    pub const UNSUPPORTED_TOOL: &str = "UnsupportedTool";
    /// The verification reply did not contain the expected text.
    pub const UNEXPECTED_REPLY: &str = "UnexpectedReply";
    /// The verification request failed.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    /// The object is being deleted and is waiting for what still uses it.
    pub const IN_USE: &str = "InUse";
    /// The Foundry connection or agent is managed by another live object (the message names
    /// it); `adopt` does not take it over.
    pub const OWNED_ELSEWHERE: &str = "OwnedElsewhere";
    /// The identity (managed identity, the operator's own) is not allowed for this namespace by
    /// the installation.
    pub const IDENTITY_NOT_ALLOWED: &str = "IdentityNotAllowed";
    /// A host that would receive a credential (authority, ARM, Foundry) is not on the
    /// installation's allow-list.
    pub const HOST_NOT_ALLOWED: &str = "HostNotAllowed";
    /// `managementPolicy: Observe`: the Foundry connection or agent does not exist (Ready=False,
    /// Drifted=True). Create it in Foundry, or switch to `Full` to let the operator create it.
    pub const NOT_FOUND_IN_FOUNDRY: &str = "NotFoundInFoundry";
    /// `Drifted=True`: Foundry holds something other than the spec; the message names what.
    pub const DRIFTED: &str = "Drifted";
    /// `Drifted=False`: Foundry holds what the spec asks for.
    pub const IN_SYNC: &str = "InSync";
    /// `managementPolicy: Observe`: a step that would write to Foundry (verification) is skipped.
    pub const OBSERVING: &str = "Observing";
}
