//! Which probe a GatewayConnection gets, and how the answers of a probe that only Foundry can
//! make truthfully are read. Pure, so the choices are tables of unit tests.
//!
//! - `Foundry` (probe mode): the operator asks Foundry for one minimal response with model
//!   `<connectionName>/<model>`; Foundry calls the gateway with its own identity (for Entra ID,
//!   the project's managed identity, whose token the gateway may check by its `xms_mirid`).
//! - A direct probe (`Discovery`, `Inference`) of an Entra ID connection uses the operator's
//!   identity, which is not the project's: a 401/403 it gets proves nothing about the gateway as
//!   Foundry sees it, so it is reported as Unknown (`ProbeIdentityMismatch`), never Inactive.

use foundry_gateway_api::connection::ProbeMode as SpecProbeMode;
use foundry_gateway_client::probe::{InactiveCause, ProbeMode, ProbeOutcome};

use crate::failure::Failure;

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

/// Reads Foundry's answer to a model response: success is Active with that model; a failure is
/// mapped to the cause the gateway gave Foundry, in words of ours (no text of the answer).
pub fn foundry_verdict(
    model: &str,
    result: Result<(), &foundry_gateway_client::Error>,
) -> Result<ProbeOutcome, Failure> {
    let foundry = |error: &foundry_gateway_client::Error| {
        Failure::from_foundry("ask Foundry for a response through the gateway", error)
    };
    let error = match result {
        Ok(()) => {
            // `<connection>/<deployment>`: the connection offers the deployment.
            let deployment = model.split_once('/').map_or(model, |(_, d)| d);
            return Ok(ProbeOutcome::Active {
                models: vec![deployment.to_owned()],
                omitted: 0,
                latency: std::time::Duration::ZERO,
            });
        }
        Err(error) => error,
    };
    let code = error.code().unwrap_or_default().to_ascii_lowercase();
    let status = error.status();
    let inactive = |cause: InactiveCause, what: &str| {
        Ok(ProbeOutcome::Inactive {
            cause,
            message: format!(
                "Foundry could not use the gateway for model {model:?}: {what} (HTTP {}{})",
                status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                if code.is_empty() {
                    String::new()
                } else {
                    format!(", {code}")
                }
            ),
        })
    };
    // The codes are the emulator's (foundry-api.md leaves Foundry's open): `gateway_*` says the
    // gateway failed Foundry's call; anything else is Foundry's own answer to the operator.
    match (status, code.as_str()) {
        (_, "model_not_found" | "deploymentnotfound" | "deployment_not_found")
        | (Some(404), "") => inactive(
            InactiveCause::ModelNotFound,
            "the gateway does not serve the model",
        ),
        (_, "gateway_unauthorized") => inactive(
            InactiveCause::Unauthorized,
            "the gateway refused the credentials Foundry sent",
        ),
        (_, "gateway_unreachable") => inactive(
            InactiveCause::Unreachable,
            "Foundry could not connect to the gateway",
        ),
        (_, "gateway_tls_error") => inactive(
            InactiveCause::TlsError,
            "TLS between Foundry and the gateway failed",
        ),
        (_, "gateway_timeout") => inactive(
            InactiveCause::Timeout,
            "the gateway did not answer Foundry in time",
        ),
        (_, "gateway_rate_limited") => inactive(
            InactiveCause::BadResponse,
            "the gateway is throttling Foundry's calls",
        ),
        (_, c) if c.starts_with("gateway_") => inactive(
            InactiveCause::BadResponse,
            "the gateway's answer could not be used",
        ),
        // Foundry's own refusal or failure (its identity, throttling, a connection it does not
        // know yet): classified like every other Foundry call.
        _ => Err(foundry(error)),
    }
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
    fn foundrys_answers_become_our_causes_or_a_foundry_failure() {
        use foundry_gateway_client::Error;
        let answer = |status: u16, code: &str| {
            let error = Error::http(
                "Responses_Create",
                status,
                Some(code.to_owned()),
                "text of the answer",
            );
            match foundry_verdict("gw/gpt-4o", Err(&error)) {
                Ok(ProbeOutcome::Inactive { cause, message }) => {
                    assert!(!message.contains("text of the answer"), "{message}");
                    Ok(cause)
                }
                Ok(other) => panic!("{other:?}"),
                Err(failure) => Err(failure.label().to_owned()),
            }
        };
        assert_eq!(
            answer(404, "model_not_found"),
            Ok(InactiveCause::ModelNotFound)
        );
        assert_eq!(
            answer(502, "gateway_unauthorized"),
            Ok(InactiveCause::Unauthorized)
        );
        assert_eq!(
            answer(502, "gateway_unreachable"),
            Ok(InactiveCause::Unreachable)
        );
        assert_eq!(
            answer(502, "gateway_tls_error"),
            Ok(InactiveCause::TlsError)
        );
        assert_eq!(answer(504, "gateway_timeout"), Ok(InactiveCause::Timeout));
        assert_eq!(
            answer(502, "gateway_bad_response"),
            Ok(InactiveCause::BadResponse)
        );
        assert_eq!(
            answer(429, "gateway_rate_limited"),
            Ok(InactiveCause::BadResponse)
        );
        assert_eq!(answer(401, "invalid_token"), Err("Unauthorized".to_owned()));
        assert!(
            answer(429, "too_many_requests").is_err(),
            "Foundry's own throttling is retried"
        );
        assert!(answer(404, "connection_not_found").is_err());
        assert!(matches!(
            foundry_verdict("gw/gpt-4o", Ok(())),
            Ok(ProbeOutcome::Active { ref models, .. }) if models == &["gpt-4o".to_owned()]
        ));
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
