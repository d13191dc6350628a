//! Step "validate": what the CRD schema cannot check, right after the instructions are read, so
//! that a spec error shows at once (even while the connection is not Ready) and an unsupported
//! tool never reaches Foundry. Pure.

use foundry_gateway_api::PromptAgent;
use kube::ResourceExt;

use crate::agent_definition::{self, ValidationError};
use crate::failure::Failure;

/// The Foundry agent name of a valid spec, or the first problem (Stalled, its reason).
pub(super) fn validate(agent: &PromptAgent, instructions: Option<&str>) -> Result<String, Failure> {
    let name = agent_definition::agent_name(&agent.spec, &agent.name_any())
        .map_err(invalid)?
        .to_owned();
    agent_definition::validate(&agent.spec, instructions).map_err(invalid)?;
    Ok(name)
}

/// A spec error: permanent, with the error's reason.
pub(super) fn invalid(error: ValidationError) -> Failure {
    Failure::permanent(error.reason(), error.to_string())
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::conditions::reasons;
    use serde_json::{Value, json};

    use super::*;

    fn agent(name: &str, spec: Value) -> PromptAgent {
        let mut base = json!({
            "projectRef": {"name": "proj"},
            "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
        });
        if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), spec) {
            base.extend(extra);
        }
        serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "PromptAgent",
            "metadata": {"name": name, "namespace": "team"},
            "spec": base,
        }))
        .expect("test agent")
    }

    #[test]
    fn a_valid_spec_gives_its_foundry_agent_name_and_an_invalid_one_stalls() {
        // (case, object name, spec, instructions, the name or the failure's reason)
        let cases = [
            ("object name", "weather", json!({}), None, Ok("weather")),
            (
                "agentName",
                "my.agent",
                json!({"agentName": "weather"}),
                None,
                Ok("weather"),
            ),
            (
                "dotted object name",
                "my.agent",
                json!({}),
                None,
                Err(reasons::INVALID_SPEC),
            ),
            (
                "unsupported tool",
                "weather",
                json!({"tools": [{"type": "webSearch"}]}),
                None,
                Err(reasons::UNSUPPORTED_TOOL),
            ),
            (
                "empty instructions",
                "weather",
                json!({"instructions": " "}),
                Some(" "),
                Err(reasons::INVALID_SPEC),
            ),
        ];
        for (case, name, spec, instructions, want) in cases {
            let got = validate(&agent(name, spec), instructions);
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{case}"),
                (Err(failure), Err(reason)) => {
                    assert_eq!(failure.label(), reason, "{case}");
                    assert!(matches!(failure, Failure::Permanent { .. }), "{case}");
                }
                (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
            }
        }
    }
}
