//! `managementPolicy: Observe` for connections: what a read of Foundry found, and the `Drifted`
//! condition and Ready outcome that follow. Pure; the controller does the read.
//!
//! Drifted compares what Foundry serves with what the spec describes ([`super::build::drift`]),
//! leaving out the ownership marker: a connection made by hand (or by the Bicep samples) that
//! says exactly what the spec says is in sync. That it carries no marker of this object is
//! said in the InSync message: switching to `Full` (with `adopt: true`) takes an unmarked
//! connection as it is, without a write ([`super::write_plan`]); one marked by an object that is
//! gone gets one PUT to record the new owner.
//! Credentials cannot be compared (ARM does not return them).

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::connections::ConnectionProperties;

use super::build::{MANAGED_BY_KEY, MANAGED_BY_UID_KEY, drift};

/// What an Observe-mode read of the Foundry connection found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// No connection of that name in Foundry.
    Missing,
    /// The connection exists.
    Present {
        /// The fields that differ from the spec (marker left out), None when equal.
        drift: Option<String>,
        /// Whether its marker names this object.
        ours: bool,
    },
}

/// What differs between the desired and the live connection, leaving out the ownership marker
/// (`managedBy`, `managedByUid`) on both sides. None when equal.
pub fn content_drift(
    desired: &ConnectionProperties,
    live: &ConnectionProperties,
) -> Option<String> {
    let unmarked = |p: &ConnectionProperties| {
        let mut p = p.clone();
        p.metadata.remove(MANAGED_BY_KEY);
        p.metadata.remove(MANAGED_BY_UID_KEY);
        p
    };
    drift(&unmarked(desired), &unmarked(live))
}

/// The observation of a live connection (None when Foundry has none of that name).
pub fn observe(
    desired: &ConnectionProperties,
    live: Option<&ConnectionProperties>,
    ours: bool,
) -> Observation {
    match live {
        None => Observation::Missing,
        Some(live) => Observation::Present {
            drift: content_drift(desired, live),
            ours,
        },
    }
}

/// The `Drifted` condition of an observation: (status, reason, message).
pub fn drifted_condition(
    observation: &Observation,
    connection: &str,
) -> (bool, &'static str, String) {
    match observation {
        Observation::Missing => (
            true,
            reasons::NOT_FOUND_IN_FOUNDRY,
            format!("Foundry connection {connection} does not exist in Foundry"),
        ),
        Observation::Present {
            drift: Some(fields),
            ..
        } => (
            true,
            reasons::DRIFTED,
            format!(
                "Foundry connection {connection} differs from the spec in: {fields}; managementPolicy: Full would write the spec"
            ),
        ),
        Observation::Present { drift: None, ours } => {
            let owner = if *ours {
                ""
            } else {
                "; it is not marked as managed by this object: managementPolicy: Full (with adopt: true) takes it over as it is, and writes only when something differs, the Secret changes, or another object's marker must be replaced"
            };
            (
                false,
                reasons::IN_SYNC,
                format!(
                    "Foundry connection {connection} matches the spec (credentials cannot be compared: ARM does not return them){owner}"
                ),
            )
        }
    }
}

/// Ready=False reason and message when the observation rules Ready out (the connection is
/// missing); None when Ready follows the gateway verdict as in `Full`. Drift does not block
/// Ready: it is information.
pub fn not_ready(observation: &Observation, connection: &str) -> Option<(&'static str, String)> {
    match observation {
        Observation::Missing => Some((
            reasons::NOT_FOUND_IN_FOUNDRY,
            format!(
                "Foundry connection {connection} does not exist in Foundry and managementPolicy is Observe: create it in Foundry, or set managementPolicy: Full to let the operator create it"
            ),
        )),
        Observation::Present { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use foundry_gateway_client::connections::{ConnectionAuth, ConnectionCategory};

    use super::*;

    fn props(target: &str, marker: Option<&str>) -> ConnectionProperties {
        let mut p = ConnectionProperties::new(
            ConnectionCategory::ModelGateway,
            target.to_owned(),
            ConnectionAuth::ApiKey { key: None },
        );
        p.metadata.insert("deploymentInPath".into(), "false".into());
        if let Some(marker) = marker {
            p.metadata.insert(MANAGED_BY_KEY.into(), marker.into());
            p.metadata.insert(MANAGED_BY_UID_KEY.into(), "uid".into());
        }
        p
    }

    const DESIRED_MARKER: Option<&str> = Some("foundry-gateway-operator:ns/gw");

    /// (case, live, ours, Drifted status, reason, message contains, Ready blocked)
    type Case = (
        &'static str,
        Option<ConnectionProperties>,
        bool,
        bool,
        &'static str,
        &'static str,
        bool,
    );

    /// Live connections against the desired `props("https://gw.example.com", DESIRED_MARKER)`.
    fn cases() -> Vec<Case> {
        let desired = props("https://gw.example.com", DESIRED_MARKER);
        let same_unmarked = props("https://gw.example.com", None);
        let moved = props("https://elsewhere.example.com", None);
        let mut edited_metadata = props("https://gw.example.com", DESIRED_MARKER);
        edited_metadata
            .metadata
            .insert("deploymentInPath".into(), "true".into());
        vec![
            (
                "missing",
                None,
                false,
                true,
                reasons::NOT_FOUND_IN_FOUNDRY,
                "does not exist in Foundry",
                true,
            ),
            (
                "equal and ours",
                Some(desired),
                true,
                false,
                reasons::IN_SYNC,
                "matches the spec",
                false,
            ),
            (
                "equal but unmarked",
                Some(same_unmarked),
                false,
                false,
                reasons::IN_SYNC,
                "not marked as managed by this object",
                false,
            ),
            (
                "target edited by hand",
                Some(moved),
                false,
                true,
                reasons::DRIFTED,
                "differs from the spec in: target;",
                false,
            ),
            (
                "metadata edited by hand",
                Some(edited_metadata),
                true,
                true,
                reasons::DRIFTED,
                "in: metadata;",
                false,
            ),
        ]
    }

    #[test]
    fn observations_give_the_drifted_condition_and_ready_rule() {
        let desired = props("https://gw.example.com", DESIRED_MARKER);
        for (case, live, ours, status, reason, text, blocked) in cases() {
            let observation = observe(&desired, live.as_ref(), ours);
            let (s, r, m) = drifted_condition(&observation, "conn");
            assert_eq!((s, r), (status, reason), "{case}: {m}");
            assert!(m.contains(text), "{case}: {m}");
            assert_eq!(not_ready(&observation, "conn").is_some(), blocked, "{case}");
        }
    }

    #[test]
    fn the_marker_alone_is_not_drift_but_full_drift_still_sees_it() {
        let desired = props("https://gw.example.com", DESIRED_MARKER);
        let unmarked = props("https://gw.example.com", None);
        assert_eq!(content_drift(&desired, &unmarked), None);
        assert_eq!(drift(&desired, &unmarked).as_deref(), Some("metadata"));
    }
}
