//! Which probe a GatewayConnection gets, and how the answers of a probe that only Foundry can
//! make truthfully are read. Pure, so the choices are tables of unit tests.
//!
//! - `Foundry` (probe mode): the operator asks Foundry for one minimal response with model
//!   `<connectionName>/<model>`; Foundry calls the gateway with its own identity (for Entra ID,
//!   the project's managed identity, whose token the gateway may check by its `xms_mirid`).
//!   The probe scheduler reads the answer (`crate::probes::verdict`).
//! - A direct probe (`Discovery`, `Inference`) of an Entra ID connection uses the operator's
//!   identity, which is not the project's: a 401/403 it gets proves nothing about the gateway as
//!   Foundry sees it, so it is reported as Unknown (`ProbeIdentityMismatch`), never Inactive.

use foundry_gateway_api::connection::ProbeMode as SpecProbeMode;
use foundry_gateway_client::probe::{InactiveCause, ProbeMode, ProbeOutcome};

/// The probe to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The operator calls the gateway itself.
    Direct(ProbeMode),
    /// The operator asks Foundry, which calls the gateway.
    Foundry,
}

/// What the probe of a connection knows about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `auth.entraId` is set.
    pub entra: bool,
    /// A model to ask for is known (`probe.model` or a static model).
    pub has_model: bool,
    /// Models are discovered (explicitly or by the APIM defaults).
    pub discovers: bool,
    /// The model probed has `format: Anthropic`.
    pub anthropic: bool,
}

/// The plan for a spec'd mode (`None`: probing is off).
pub fn plan(mode: SpecProbeMode, facts: Facts) -> Option<Plan> {
    match mode {
        SpecProbeMode::Off => None,
        SpecProbeMode::Foundry => Some(Plan::Foundry),
        SpecProbeMode::Discovery => Some(Plan::Direct(ProbeMode::Discovery)),
        SpecProbeMode::Inference => Some(Plan::Direct(ProbeMode::Inference)),
        SpecProbeMode::Auto => Some(if (facts.entra || facts.anthropic) && facts.has_model {
            Plan::Foundry
        } else if facts.discovers {
            Plan::Direct(ProbeMode::Discovery)
        } else {
            Plan::Direct(ProbeMode::Inference)
        }),
    }
}

/// The condition reason of a direct Entra ID probe refused by the gateway.
pub const IDENTITY_MISMATCH: &str = "ProbeIdentityMismatch";

/// Whether a direct probe's outcome says nothing about the gateway as Foundry sees it: an Entra
/// ID connection refused with 401/403 the operator's own token, not the project's.
pub fn inconclusive(plan: Plan, entra: bool, outcome: &ProbeOutcome) -> bool {
    matches!(plan, Plan::Direct(_))
        && entra
        && matches!(
            outcome,
            ProbeOutcome::Inactive {
                cause: InactiveCause::Unauthorized,
                ..
            }
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRA_WITH_MODEL: Facts = Facts {
        entra: true,
        has_model: true,
        discovers: false,
        anthropic: false,
    };

    #[test]
    fn auto_asks_foundry_only_where_a_direct_call_cannot_tell_the_truth() {
        let cases = [
            (ENTRA_WITH_MODEL, Plan::Foundry),
            (
                Facts {
                    discovers: true,
                    has_model: false,
                    ..ENTRA_WITH_MODEL
                },
                Plan::Direct(ProbeMode::Discovery),
            ),
            (
                Facts {
                    entra: false,
                    anthropic: true,
                    ..ENTRA_WITH_MODEL
                },
                Plan::Foundry,
            ),
            (
                Facts {
                    entra: false,
                    ..ENTRA_WITH_MODEL
                },
                Plan::Direct(ProbeMode::Inference),
            ),
            (
                Facts {
                    entra: false,
                    discovers: true,
                    ..ENTRA_WITH_MODEL
                },
                Plan::Direct(ProbeMode::Discovery),
            ),
        ];
        for (facts, want) in cases {
            assert_eq!(plan(SpecProbeMode::Auto, facts), Some(want), "{facts:?}");
        }
    }

    #[test]
    fn a_mode_other_than_auto_is_followed_whatever_the_facts() {
        assert_eq!(plan(SpecProbeMode::Off, ENTRA_WITH_MODEL), None);
        assert_eq!(
            plan(SpecProbeMode::Inference, ENTRA_WITH_MODEL),
            Some(Plan::Direct(ProbeMode::Inference))
        );
        assert_eq!(
            plan(
                SpecProbeMode::Foundry,
                Facts {
                    entra: false,
                    ..ENTRA_WITH_MODEL
                }
            ),
            Some(Plan::Foundry)
        );
    }

    #[test]
    fn a_direct_entra_probe_refused_by_the_gateway_proves_nothing() {
        let refused = ProbeOutcome::Inactive {
            cause: InactiveCause::Unauthorized,
            message: "401".into(),
        };
        let down = ProbeOutcome::Inactive {
            cause: InactiveCause::Unreachable,
            message: "down".into(),
        };
        let direct = Plan::Direct(ProbeMode::Discovery);
        assert!(inconclusive(direct, true, &refused));
        assert!(!inconclusive(direct, true, &down), "unreachable is a fact");
        assert!(
            !inconclusive(direct, false, &refused),
            "api keys are ours to test"
        );
        assert!(
            !inconclusive(Plan::Foundry, true, &refused),
            "Foundry used its identity"
        );
    }
}
