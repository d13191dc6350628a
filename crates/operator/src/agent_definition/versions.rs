//! Step "compare": does Foundry already serve the version the spec asks for?
//!
//! The rule ([`needs_new_version`]): the newest live version of the agent must be ours and carry
//! the spec's hash. Everything else (no version yet, our latest has another hash, or someone
//! made a newer version by hand, even one with our hash copied into it) creates a new version with
//! our definition, so hand-made drift is corrected on the next resync.

use std::cmp::Ordering;

use foundry_gateway_client::project::AgentVersionObject;

use super::{MANAGED_BY_KEY, MANAGED_BY_VALUE, SPEC_HASH_KEY};

/// Whether the operator created this version: its metadata carries [`MANAGED_BY_KEY`] =
/// [`MANAGED_BY_VALUE`], or (when the user's metadata left no slot for the marker, see
/// [`super::version_request`]) a [`SPEC_HASH_KEY`] and no managed-by key at all. A managed-by key
/// with another value marks a version of someone else.
pub fn is_managed(version: &AgentVersionObject) -> bool {
    match version.metadata.get(MANAGED_BY_KEY) {
        Some(value) => value == MANAGED_BY_VALUE,
        None => version.metadata.contains_key(SPEC_HASH_KEY),
    }
}

/// Whether the version is ours and was created from a spec with this hash.
pub fn version_matches(version: &AgentVersionObject, hash: &str) -> bool {
    is_managed(version) && version.metadata.get(SPEC_HASH_KEY).map(String::as_str) == Some(hash)
}

/// The newest live version, ours or not: highest numeric version, then latest `created_at`;
/// versions being deleted do not count.
pub fn newest_version(versions: &[AgentVersionObject]) -> Option<&AgentVersionObject> {
    versions
        .iter()
        .filter(|v| is_live(v))
        .max_by(|a, b| newest_order(a, b))
}

/// The newest live version the operator created, if any.
pub fn latest_managed_version(versions: &[AgentVersionObject]) -> Option<&AgentVersionObject> {
    versions
        .iter()
        .filter(|v| is_live(v) && is_managed(v))
        .max_by(|a, b| newest_order(a, b))
}

/// Whether the controller must create a version: true unless the newest live version overall is
/// ours with this hash. `versions` may come in any order (all pages of `list_versions`).
pub fn needs_new_version(versions: &[AgentVersionObject], hash: &str) -> bool {
    !newest_version(versions).is_some_and(|v| version_matches(v, hash))
}

/// A version that is being deleted or is deleted does not count: it is on its way out. A failed
/// version does count, so that a definition Foundry cannot run is not recreated in a loop (the
/// controller reports it instead).
fn is_live(version: &AgentVersionObject) -> bool {
    !matches!(version.status.as_deref(), Some("deleting" | "deleted"))
}

/// Order of versions, oldest first: by numeric version (Foundry numbers versions 1, 2, 3, …; a
/// non-numeric version sorts before every numeric one), then by `created_at` (whole seconds, so it
/// can tie), then by the version string, so the order is total and independent of list order.
fn newest_order(a: &AgentVersionObject, b: &AgentVersionObject) -> Ordering {
    let number = |v: &AgentVersionObject| v.version.parse::<u64>().ok();
    number(a)
        .cmp(&number(b))
        .then(a.created_at.cmp(&b.created_at))
        .then_with(|| a.version.cmp(&b.version))
}
