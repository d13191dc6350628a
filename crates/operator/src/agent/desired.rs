//! Step "desired": the version the spec asks for ([`agent_definition::desired_version`]: build and
//! hash), and where it lives: the project's endpoint and the Foundry agent name. Pure.

use foundry_gateway_api::PromptAgent;

use super::report::ConnectionFacts;
use super::resolve::Resolved;
use super::validate::invalid;
use crate::agent_definition::{self, DesiredVersion};
use crate::failure::Failure;
use crate::ownership::ObjectId;

/// What Foundry should serve for the spec.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Desired {
    /// The Foundry agent name.
    pub agent_name: String,
    /// Project endpoint and agent name: a look at Foundry is made against it.
    pub target: String,
    /// The version's request, model and hash.
    pub version: DesiredVersion,
}

/// The version of a validated spec, through the resolved `connection`.
pub(super) fn desired(
    agent: &PromptAgent,
    resolved: &Resolved,
    connection: &ConnectionFacts,
) -> Result<Desired, Failure> {
    let version = agent_definition::desired_version(
        &agent.spec,
        &connection.connection_name,
        resolved.instructions.as_deref(),
        &ObjectId::of(agent),
    )
    .map_err(invalid)?;
    Ok(Desired {
        agent_name: resolved.agent_name.clone(),
        target: target(&resolved.project.endpoint, &resolved.agent_name),
        version,
    })
}

/// What a look at Foundry is made against: the project endpoint and the agent name.
pub(super) fn target(endpoint: &str, agent_name: &str) -> String {
    format!("{endpoint}#{agent_name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_is_made_against_the_project_and_the_agent_name() {
        let cases = [
            (
                "https://a/api/projects/p",
                "weather",
                "https://a/api/projects/p#weather",
            ),
            (
                "https://a/api/projects/q",
                "weather",
                "https://a/api/projects/q#weather",
            ),
            (
                "https://a/api/projects/p",
                "news",
                "https://a/api/projects/p#news",
            ),
        ];
        for (endpoint, agent_name, want) in cases {
            assert_eq!(target(endpoint, agent_name), want);
        }
    }
}
