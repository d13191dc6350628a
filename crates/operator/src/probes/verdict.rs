//! How Foundry's answer to a probe response is read: success is Active with that model; a
//! failure is mapped to the cause the gateway gave Foundry, in words of ours (no text of the
//! answer). Pure.

use foundry_gateway_client::probe::{InactiveCause, ProbeOutcome};

use crate::failure::Failure;

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
    match cause_of(status, &code) {
        Some((cause, what)) => inactive(cause, what),
        // Foundry's own refusal or failure (its identity, throttling, a connection it does not
        // know yet): classified like every other Foundry call.
        None => Err(foundry(error)),
    }
}

/// The cause the gateway gave Foundry, from the status and error code of Foundry's answer; None
/// when the answer is Foundry's own. The codes are the emulator's (foundry-api.md leaves
/// Foundry's open): `gateway_*` says the gateway failed Foundry's call.
fn cause_of(status: Option<u16>, code: &str) -> Option<(InactiveCause, &'static str)> {
    Some(match (status, code) {
        (_, "model_not_found" | "deploymentnotfound" | "deployment_not_found")
        | (Some(404), "") => (
            InactiveCause::ModelNotFound,
            "the gateway does not serve the model",
        ),
        (_, "gateway_unauthorized") => (
            InactiveCause::Unauthorized,
            "the gateway refused the credentials Foundry sent",
        ),
        (_, "gateway_unreachable") => (
            InactiveCause::Unreachable,
            "Foundry could not connect to the gateway",
        ),
        (_, "gateway_tls_error") => (
            InactiveCause::TlsError,
            "TLS between Foundry and the gateway failed",
        ),
        (_, "gateway_timeout") => (
            InactiveCause::Timeout,
            "the gateway did not answer Foundry in time",
        ),
        (_, "gateway_rate_limited") => (
            InactiveCause::BadResponse,
            "the gateway is throttling Foundry's calls",
        ),
        (_, c) if c.starts_with("gateway_") => (
            InactiveCause::BadResponse,
            "the gateway's answer could not be used",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
