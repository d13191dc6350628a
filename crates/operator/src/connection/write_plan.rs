//! Step "plan the write": whether the live connection gets a PUT, and why.
//!
//! A pure function of what the earlier steps found ([`plan_write`]): the live connection (or
//! none), whose it is ([`Claim`]), which readable fields differ ([`super::build::drift`]), and
//! which credentials this object last applied (`status.credentialsHash`).
//!
//! Adopting a connection made outside the operator (no marker, `adopt: true`) writes nothing when
//! nothing readable differs (the marker left out) and the Secrets are those this object first
//! saw: ARM does not return the credentials, so the Secret's value is taken as what Foundry
//! holds, and its next change is written (with the marker). Later checks find the same and stay
//! quiet. This is the migration path `kubectl foundry import` → Observe →
//! Full: switching to Full writes only what differs. A connection that another object of the
//! installation also names is written at once, so that its marker settles who owns it.

use foundry_gateway_client::connections::ConnectionProperties;

/// Whose the live connection is, as far as writing goes (refusals are decided before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Its marker names this object.
    Ours,
    /// No marker (made by hand, the portal, Bicep); `adopt: true`.
    Unmarked,
    /// Marked by an object that is confirmed gone, or by an earlier release; `adopt: true`.
    OwnerGone,
}

/// The live connection as the plan sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// Whose it is.
    pub claim: Claim,
    /// The readable fields that differ from the desired body (None when equal); the ownership
    /// marker is left out of an unmarked connection's comparison.
    pub drift: Option<String>,
}

impl Live {
    /// The live connection `live` with this claim, compared with `desired`: an unmarked
    /// connection lacks the marker the desired body carries, so the marker is left out of its
    /// comparison ([`super::observe::content_drift`]).
    pub fn compare(
        claim: Claim,
        desired: &ConnectionProperties,
        live: &ConnectionProperties,
    ) -> Self {
        let drift = if claim == Claim::Unmarked {
            super::observe::content_drift(desired, live)
        } else {
            super::build::drift(desired, live)
        };
        Self { claim, drift }
    }
}

/// What the controller does to the Foundry connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WritePlan {
    /// No live connection: create it.
    Create,
    /// Take it over with a PUT that records the marker (and writes what differs).
    Adopt,
    /// Take it over as it is: nothing readable differs, nothing is written.
    AdoptAsIs,
    /// Ours, and these fields differ.
    Update(String),
    /// Ours, the fields match, the Secret changed since the last write.
    UpdateCredentials,
    /// Ours and in sync.
    Nothing,
}

impl WritePlan {
    /// Why a PUT is sent, for the log and the `ConnectionWritten` event; None when none is.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Create => Some("Created".to_owned()),
            Self::Adopt => Some("Adopted".to_owned()),
            Self::Update(fields) => Some(format!("Updated ({fields} differed)")),
            Self::UpdateCredentials => Some("Updated (credentials changed)".to_owned()),
            Self::AdoptAsIs | Self::Nothing => None,
        }
    }
}

/// The plan for one check of the live connection.
///
/// - `applied`: the credentials digest this object last wrote (or took as written), if any;
/// - `desired_credentials`: the digest of the Secrets now;
/// - `named_elsewhere`: another object of the installation names the same Foundry connection.
pub fn plan_write(
    live: Option<&Live>,
    applied: Option<&str>,
    desired_credentials: &str,
    named_elsewhere: bool,
) -> WritePlan {
    let Some(live) = live else {
        return WritePlan::Create;
    };
    match (live.claim, &live.drift) {
        (Claim::Unmarked, None)
            if applied.is_none_or(|a| a == desired_credentials) && !named_elsewhere =>
        {
            WritePlan::AdoptAsIs
        }
        (Claim::Unmarked | Claim::OwnerGone, _) => WritePlan::Adopt,
        (Claim::Ours, Some(fields)) => WritePlan::Update(fields.clone()),
        (Claim::Ours, None) if applied != Some(desired_credentials) => WritePlan::UpdateCredentials,
        (Claim::Ours, None) => WritePlan::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(claim: Claim, drift: Option<&str>) -> Live {
        Live {
            claim,
            drift: drift.map(str::to_owned),
        }
    }

    #[test]
    fn every_case_of_the_write_plan() {
        use WritePlan::*;
        let fields = Some("metadata");
        // (live, applied, named elsewhere) → plan; the desired credentials are "c".
        let cases: Vec<(Option<Live>, Option<&str>, bool, WritePlan)> = vec![
            (None, None, false, Create),
            (None, Some("c"), true, Create),
            // Made outside the operator, nothing differs, never applied: taken as it is.
            (Some(live(Claim::Unmarked, None)), None, false, AdoptAsIs),
            // ... unless another object names it too: the marker must settle it.
            (Some(live(Claim::Unmarked, None)), None, true, Adopt),
            // ... or something differs, or the Secret changed since it was taken.
            (Some(live(Claim::Unmarked, fields)), None, false, Adopt),
            (Some(live(Claim::Unmarked, None)), Some("old"), false, Adopt),
            // ... and later checks of one taken as it is stay quiet.
            (
                Some(live(Claim::Unmarked, None)),
                Some("c"),
                false,
                AdoptAsIs,
            ),
            // An owner that is gone: always one PUT to record the new owner.
            (Some(live(Claim::OwnerGone, None)), None, false, Adopt),
            (
                Some(live(Claim::Ours, fields)),
                Some("c"),
                false,
                Update("metadata".into()),
            ),
            (
                Some(live(Claim::Ours, None)),
                Some("old"),
                false,
                UpdateCredentials,
            ),
            (
                Some(live(Claim::Ours, None)),
                None,
                false,
                UpdateCredentials,
            ),
            (Some(live(Claim::Ours, None)), Some("c"), false, Nothing),
            (Some(live(Claim::Ours, None)), Some("c"), true, Nothing),
        ];
        for (live, applied, elsewhere, expected) in cases {
            assert_eq!(
                plan_write(live.as_ref(), applied, "c", elsewhere),
                expected,
                "{live:?} applied={applied:?} elsewhere={elsewhere}"
            );
        }
    }

    #[test]
    fn an_unmarked_connection_is_compared_without_the_marker() {
        use super::super::build::{MANAGED_BY_KEY, MANAGED_BY_UID_KEY};
        use foundry_gateway_client::connections::{ConnectionAuth, ConnectionCategory};
        let unmarked = ConnectionProperties::new(
            ConnectionCategory::ModelGateway,
            "https://gw.example.com",
            ConnectionAuth::ApiKey { key: None },
        );
        let mut desired = unmarked.clone();
        let marker = "foundry-gateway-operator:ns/gw";
        desired
            .metadata
            .insert(MANAGED_BY_KEY.into(), marker.into());
        desired
            .metadata
            .insert(MANAGED_BY_UID_KEY.into(), "uid".into());
        // (claim, live, drift)
        let cases = [
            (Claim::Unmarked, &unmarked, None),
            (Claim::OwnerGone, &unmarked, Some("metadata")),
            (Claim::Ours, &unmarked, Some("metadata")),
            (Claim::Ours, &desired, None),
        ];
        for (claim, found, drift) in cases {
            assert_eq!(
                Live::compare(claim, &desired, found),
                live(claim, drift),
                "{claim:?}"
            );
        }
    }

    #[test]
    fn only_plans_that_write_have_a_reason() {
        assert_eq!(WritePlan::AdoptAsIs.reason(), None);
        assert_eq!(WritePlan::Nothing.reason(), None);
        assert_eq!(
            WritePlan::Update("target".into()).reason().as_deref(),
            Some("Updated (target differed)")
        );
        assert_eq!(WritePlan::Create.reason().as_deref(), Some("Created"));
    }
}
