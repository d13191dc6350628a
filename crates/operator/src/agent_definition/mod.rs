//! The pure middle of the PromptAgent pipeline (docs/ARCHITECTURE.md, Pipelines): validate → build → hash → request,
//! and the rule that decides whether Foundry needs a new agent version. No IO, no async: every
//! function here is a plain function of its arguments, unit-tested next to the code.
//!
//! ```text
//! resolve (IO: project, connection, ConfigMap)
//!   → validate(spec, instructions)                     everything the CRD schema cannot check
//!   → build_definition(spec, connection, instructions) the Foundry wire definition
//!   → definition_hash(definition, description, meta)   what is sent, canonically hashed
//!   → agent_marker(listed versions)                    whose agent it is (crate::ownership)
//!   → plan_version(listed versions, desired, owner)    serve, adopt as it is, or …
//!   → version_request(spec, definition, hash, owner)   … POST /agents/{name}/versions
//!   → verify (IO) → reply_matches(reply, expect)
//! ```
//!
//! [`desired_version`] runs validate, build, hash and request in one call.
//!
//! Crash safety: the hash travels in the version's own metadata ([`SPEC_HASH_KEY`]), so the
//! decision to create a version is taken from what Foundry holds, never from our status. A crash
//! between the create and the status write is followed by a reconcile that lists the versions,
//! finds ours on top with the same hash, and creates nothing.
//!
//! Ownership: every version also names the PromptAgent that made it (namespace, name, uid), so
//! that the same agent name in another namespace of the same Foundry project is refused instead
//! of writing versions on top ([`agent_marker`], [`crate::ownership`]).

mod build;
mod error;
mod hash;
mod observe;
mod plan;
mod validate;
mod versions;

use foundry_gateway_api::PromptAgentSpec;
use foundry_gateway_client::project::CreateAgentVersionRequest;

use crate::ownership::ObjectId;

pub use build::{build_definition, model_string};
pub use error::ValidationError;
pub use hash::{canonical_json, definition_hash, version_request};
pub use observe::{AgentObservation, content_drift, drifted_condition, observe_versions};
pub use plan::{VersionPlan, plan_version};
pub use validate::{agent_name, validate};
pub use versions::{
    Deletion, agent_marker, deletion, is_managed, latest_managed_version, needs_new_version,
    newest_version, version_marker, version_matches,
};

/// Metadata key of every version the operator creates: the [`definition_hash`] of what was sent.
/// The CRD reserves the `gateway.foundry.dev/` prefix, so a user cannot set it.
pub const SPEC_HASH_KEY: &str = "gateway.foundry.dev/spec-hash";

/// Metadata key that names the PromptAgent that created the version:
/// `foundry-gateway-operator:<namespace>/<name>` ([`crate::ownership::ObjectId::marker_value`]).
/// Versions of earlier releases carry [`LEGACY_MANAGED_BY_VALUE`] here. When the user's
/// metadata leaves no room for it (see [`version_request`]), the owner travels in the
/// [`SPEC_HASH_KEY`] value instead.
pub const MANAGED_BY_KEY: &str = "gateway.foundry.dev/managed-by";

/// Metadata key beside [`MANAGED_BY_KEY`]: the uid of the PromptAgent that created the version.
pub const MANAGED_BY_UID_KEY: &str = "gateway.foundry.dev/managed-by-uid";

/// The value of [`MANAGED_BY_KEY`] written by releases before ownership per object.
pub const LEGACY_MANAGED_BY_VALUE: &str = crate::ownership::LEGACY_MARKER;

/// Most metadata keys Foundry accepts on an agent version.
pub const MAX_METADATA_KEYS: usize = 16;

/// Most metadata keys a user may set (the CRD's `maxProperties`): one slot always stays free for
/// [`SPEC_HASH_KEY`].
pub const MAX_USER_METADATA_KEYS: usize = MAX_METADATA_KEYS - 1;

/// Slots the operator's keys take when they all fit: [`SPEC_HASH_KEY`], [`MANAGED_BY_KEY`] and
/// [`MANAGED_BY_UID_KEY`].
pub const RESERVED_METADATA_KEYS: usize = 3;

/// The tool kinds of `spec.tools[].type`, as the user writes them (the nine kinds Foundry
/// supports with gateway models).
pub const SUPPORTED_TOOL_KINDS: [&str; 9] = foundry_gateway_api::agent::ToolType::SUPPORTED;

/// What the controller sends for a spec, and the facts it reports in status.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredVersion {
    /// The model string Foundry sees: `<connection>/<model>`.
    pub model: String,
    /// [`definition_hash`] of the request, also in its metadata under [`SPEC_HASH_KEY`] (alone,
    /// or followed by the owner when the owner's keys do not fit).
    pub spec_hash: String,
    /// The body of `POST /agents/{name}/versions`.
    pub request: CreateAgentVersionRequest,
}

/// Validate, build, hash and wrap in one call: the version the spec asks for.
///
/// `connection_name` is the Foundry connection name (the GatewayConnection's `connectionName`,
/// default its `metadata.name`); `instructions` the resolved text (inline or from the ConfigMap);
/// `owner` the PromptAgent, recorded in the version's metadata.
pub fn desired_version(
    spec: &PromptAgentSpec,
    connection_name: &str,
    instructions: Option<&str>,
    owner: &ObjectId,
) -> Result<DesiredVersion, ValidationError> {
    validate(spec, instructions)?;
    let definition = build_definition(spec, connection_name, instructions);
    let model = definition.model.clone();
    let spec_hash = definition_hash(&definition, spec.description.as_deref(), &spec.metadata);
    let request = version_request(spec, definition, &spec_hash, owner);
    Ok(DesiredVersion {
        model,
        spec_hash,
        request,
    })
}

/// Whether a verification reply passes: it must not be empty (or only whitespace), and when
/// `expect` is set it must contain it, case-sensitively.
pub fn reply_matches(reply: &str, expect: Option<&str>) -> bool {
    !reply.trim().is_empty() && expect.is_none_or(|e| reply.contains(e))
}

#[cfg(test)]
pub(crate) mod tests;
