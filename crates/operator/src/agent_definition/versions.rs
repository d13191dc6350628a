//! Steps "owner" and "compare": whose agent is it, and does Foundry already serve the version the
//! spec asks for?
//!
//! The owner ([`agent_marker`]): the PromptAgent named by the newest live version that names one.
//! A version made by hand on top does not change the owner. Without any such version, the newest
//! live version decides: the constant marker of earlier releases (or their hash alone) is the
//! legacy marker, anything else is no marker. What follows from it is in [`crate::ownership`].
//!
//! The rule ([`needs_new_version`]): the newest live version of the agent must name this object
//! (namespace, name and uid) and carry the spec's hash. Everything else (no version yet, our
//! latest has another hash, someone made a newer version by hand, even one with our hash copied
//! into it, a version of an earlier release, or one of this object before it was deleted with
//! `Orphan` and created again) creates a new version with our definition and marker, so
//! hand-made drift is corrected on the next resync and the owner recorded is always current.

use std::cmp::Ordering;

use foundry_gateway_client::project::AgentVersionObject;

use super::{MANAGED_BY_KEY, MANAGED_BY_UID_KEY, SPEC_HASH_KEY};
use crate::ownership::{Marker, ObjectId, Ownership, ownership, parse_marker};

/// What the operator's keys of one version say.
struct Marks<'a> {
    /// The definition hash.
    hash: Option<&'a str>,
    /// Who made it.
    marker: Option<Marker>,
}

fn marks(version: &AgentVersionObject) -> Marks<'_> {
    let metadata = &version.metadata;
    let mut hash_value = metadata.get(SPEC_HASH_KEY).map(|v| v.splitn(3, ' '));
    let hash = hash_value.as_mut().and_then(Iterator::next);
    let marker = match metadata.get(MANAGED_BY_KEY) {
        Some(value) => parse_marker(value, metadata.get(MANAGED_BY_UID_KEY).map(String::as_str)),
        None => match hash_value.as_mut().and_then(Iterator::next) {
            // `<hash> <marker> <uid>`: the owner had no room for keys of its own.
            Some(value) => parse_marker(value, hash_value.as_mut().and_then(Iterator::next)),
            // A hash alone: what earlier releases wrote when the user's metadata left no room for
            // their constant marker.
            None if hash.is_some() => Some(Marker::Legacy),
            None => None,
        },
    };
    Marks { hash, marker }
}

/// The ownership marker of one version: the object that made it, the legacy marker of an
/// earlier release, or none (made by hand, or by another tool).
pub fn version_marker(version: &AgentVersionObject) -> Option<Marker> {
    marks(version).marker
}

/// Whether the operator created this version, for any object or in an earlier release. A
/// managed-by key with a value that is not ours marks a version of someone else.
pub fn is_managed(version: &AgentVersionObject) -> bool {
    version_marker(version).is_some()
}

/// Whether the version was created for the object `me` (same namespace, name and uid) from a
/// spec with this hash.
pub fn version_matches(version: &AgentVersionObject, hash: &str, me: &ObjectId) -> bool {
    let marks = marks(version);
    marks.hash == Some(hash) && matches!(&marks.marker, Some(Marker::Object(owner)) if owner == me)
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

/// The marker that says whose agent this is: that of the newest live version naming an object,
/// else that of the newest live version (the legacy marker, or none).
pub fn agent_marker(versions: &[AgentVersionObject]) -> Option<Marker> {
    versions
        .iter()
        .filter(|v| is_live(v))
        .filter_map(|v| match version_marker(v) {
            Some(Marker::Object(owner)) => Some((v, owner)),
            _ => None,
        })
        .max_by(|(a, _), (b, _)| newest_order(a, b))
        .map(|(_, owner)| Marker::Object(owner))
        .or_else(|| newest_version(versions).and_then(version_marker))
}

/// Whether the controller must create a version: true unless the newest live version overall
/// names `me` and carries this hash. `versions` may come in any order (all pages of
/// `list_versions`). Whether it may create one is [`agent_marker`]'s question, asked first.
pub fn needs_new_version(versions: &[AgentVersionObject], hash: &str, me: &ObjectId) -> bool {
    !newest_version(versions).is_some_and(|v| version_matches(v, hash, me))
}

/// What deleting a PromptAgent with `deletionPolicy: Delete` does to the agent in Foundry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// No live version: nothing to delete.
    Nothing,
    /// Delete it: the versions name this object (or come from an earlier release, which did not
    /// record objects: treated as this object's so that upgrades keep working).
    Delete,
    /// Leave it: another object manages it (whether or not that object still exists).
    OwnedElsewhere(ObjectId),
    /// Leave it: its newest version was made outside the operator.
    MadeElsewhere,
}

/// What deleting the PromptAgent `me` does to an agent with these versions.
pub fn deletion(versions: &[AgentVersionObject], me: &ObjectId) -> Deletion {
    let Some(newest) = newest_version(versions) else {
        return Deletion::Nothing;
    };
    match ownership(agent_marker(versions).as_ref(), me) {
        Ownership::Foreign(owner) => Deletion::OwnedElsewhere(owner),
        Ownership::Ours | Ownership::Legacy if is_managed(newest) => Deletion::Delete,
        Ownership::Ours | Ownership::Legacy | Ownership::Unmarked => Deletion::MadeElsewhere,
    }
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
