//! Step "plan the version": serve the newest live version, take a version made outside the
//! operator as it is, or create one. Pure: a function of the listed versions and the desired
//! version ([`plan_version`]).
//!
//! The rule of [`needs_new_version`] holds for every agent the operator has written: the newest
//! live version must be this object's, with this spec's hash. An agent the operator never wrote
//! (no version names an object, the newest carries no marker of an earlier release: made with the
//! SDK or the portal, then imported with `kubectl foundry import`) whose newest version already
//! holds what the spec would send ([`content_drift`] finds nothing) is served as it is: switching
//! such an agent from `managementPolicy: Observe` to `Full` creates no version. The next change of
//! the spec creates one, with the marker.

use foundry_gateway_client::project::AgentVersionObject;

use super::{DesiredVersion, agent_marker, content_drift, needs_new_version, newest_version};
use crate::ownership::ObjectId;

/// What the controller does about the agent's versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionPlan {
    /// The newest live version is this object's with this spec's hash: serve it.
    Serve(String),
    /// The agent was never written by the operator and its newest version holds what the spec
    /// would send: serve it as it is, without a version of our own.
    AdoptAsIs(String),
    /// Create a version.
    Create,
}

impl VersionPlan {
    /// The version served without a write, if any.
    pub fn served(&self) -> Option<&str> {
        match self {
            Self::Serve(version) | Self::AdoptAsIs(version) => Some(version),
            Self::Create => None,
        }
    }
}

/// The plan for the versions of the agent `me` asks for `desired`. Whether the object may write
/// at all (another owner) is [`agent_marker`]'s question, asked before.
pub fn plan_version(
    versions: &[AgentVersionObject],
    desired: &DesiredVersion,
    me: &ObjectId,
) -> VersionPlan {
    let Some(newest) = newest_version(versions) else {
        return VersionPlan::Create;
    };
    if !needs_new_version(versions, &desired.spec_hash, me) {
        return VersionPlan::Serve(newest.version.clone());
    }
    if agent_marker(versions).is_none() && content_drift(desired, newest).is_none() {
        return VersionPlan::AdoptAsIs(newest.version.clone());
    }
    VersionPlan::Create
}
