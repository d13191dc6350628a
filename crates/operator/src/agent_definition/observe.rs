//! Step "compare" for `managementPolicy: Observe`: what the newest live version is, whether it is
//! this object's with this spec hash ([`needs_new_version`]'s rule), and, when it is not, which
//! parts of what Foundry serves differ from what the spec would send. Pure.
//!
//! Drifted is about content: a version made by hand (or by the SDK) that says exactly what the
//! spec says is in sync; that it carries no marker of this object is said in the message, since
//! switching to `Full` then creates one version to record the owner.

use std::collections::BTreeMap;

use foundry_gateway_api::agent::RESERVED_METADATA_PREFIX;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::project::{AgentDefinition, AgentVersionObject};
use serde_json::Value;

use super::{DesiredVersion, canonical_json, needs_new_version, newest_version, version_matches};
use crate::ownership::ObjectId;

/// What an Observe-mode listing of the agent's versions found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentObservation {
    /// No live version: the agent does not exist in Foundry.
    Missing,
    /// The newest live version.
    Present {
        /// Its version.
        version: String,
        /// It names this object and carries the spec's hash: what `Full` would leave alone.
        ours_with_hash: bool,
        /// The parts of its content that differ from the spec (None when equal).
        drift: Option<String>,
        /// An older live version that is this object's with this hash, if any.
        older_match: Option<String>,
    },
}

/// Observes the versions against the desired version of the object `me`.
pub fn observe_versions(
    versions: &[AgentVersionObject],
    desired: &DesiredVersion,
    me: &ObjectId,
) -> AgentObservation {
    let Some(newest) = newest_version(versions) else {
        return AgentObservation::Missing;
    };
    let ours_with_hash = !needs_new_version(versions, &desired.spec_hash, me);
    let drift = if ours_with_hash {
        None
    } else {
        content_drift(desired, newest)
    };
    let older_match = versions
        .iter()
        .filter(|v| v.version != newest.version && version_matches(v, &desired.spec_hash, me))
        .map(|v| v.version.clone())
        .max_by_key(|v| v.parse::<u64>().ok());
    AgentObservation::Present {
        version: newest.version.clone(),
        ours_with_hash,
        drift,
        older_match,
    }
}

/// The parts of a live version that differ from what the spec would send: the top-level fields
/// of the definition (`instructions`, `model`, `tools`, …), `description`, and the user's
/// `metadata` (the operator's reserved keys left out). None when equal.
pub fn content_drift(desired: &DesiredVersion, live: &AgentVersionObject) -> Option<String> {
    let mut fields: Vec<String> = Vec::new();
    match &live.definition {
        AgentDefinition::Prompt(_) => {
            let object = |d: &AgentDefinition| match serde_json::to_value(d) {
                Ok(Value::Object(map)) => map,
                _ => serde_json::Map::new(),
            };
            let want = object(&desired.request.definition);
            let have = object(&live.definition);
            let mut keys: Vec<&String> = want.keys().chain(have.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let canon = |v: Option<&Value>| v.map(canonical_json);
                if canon(want.get(key)) != canon(have.get(key)) {
                    fields.push(key.clone());
                }
            }
        }
        _ => fields.push("definition (not a prompt agent)".to_owned()),
    }
    if desired.request.description != live.description {
        fields.push("description".to_owned());
    }
    let user = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(k, _)| !k.starts_with(RESERVED_METADATA_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    if user(&desired.request.metadata) != user(&live.metadata) {
        fields.push("metadata".to_owned());
    }
    (!fields.is_empty()).then(|| fields.join(", "))
}

/// The `Drifted` condition of an observation: (status, reason, message).
pub fn drifted_condition(
    observation: &AgentObservation,
    agent: &str,
) -> (bool, &'static str, String) {
    match observation {
        AgentObservation::Missing => (
            true,
            reasons::NOT_FOUND_IN_FOUNDRY,
            format!("Foundry agent {agent} does not exist in Foundry"),
        ),
        AgentObservation::Present {
            version,
            ours_with_hash: true,
            ..
        } => (
            false,
            reasons::IN_SYNC,
            format!("Agent {agent} version {version} is this object's, with this spec hash"),
        ),
        AgentObservation::Present {
            version,
            drift: None,
            ..
        } => (
            false,
            reasons::IN_SYNC,
            format!(
                "Agent {agent} version {version} matches the spec but was not made by this object; managementPolicy: Full creates one version to record this object as its owner"
            ),
        ),
        AgentObservation::Present {
            version,
            drift: Some(fields),
            older_match,
            ..
        } => {
            let older = older_match
                .as_ref()
                .map(|v| format!("; version {v} has it but is not the newest"))
                .unwrap_or_default();
            (
                true,
                reasons::DRIFTED,
                format!(
                    "Agent {agent} version {version} differs from the spec in: {fields}; no version with this spec hash (newest: version {version}){older}; managementPolicy: Full would create a version"
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::agent_definition::desired_version;
    use crate::agent_definition::tests::spec_with;

    fn me() -> ObjectId {
        ObjectId::new("team", "weather", Some("uid-1"))
    }

    fn desired(instructions: &str) -> DesiredVersion {
        desired_version(
            &spec_with(json!({"instructions": instructions})),
            "litellm-gw",
            Some(instructions),
            &me(),
        )
        .expect("valid spec")
    }

    /// A live version as Foundry returns it, with the request's definition, description and
    /// metadata (`keep_marks: false` drops the operator's keys, as a hand-made version has none).
    fn live(version: &str, from: &DesiredVersion, keep_marks: bool) -> AgentVersionObject {
        let metadata: BTreeMap<String, String> = from
            .request
            .metadata
            .iter()
            .filter(|(k, _)| keep_marks || !k.starts_with(RESERVED_METADATA_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(json!({
            "object": "agent.version", "id": format!("weather:{version}"), "name": "weather",
            "version": version, "created_at": 1_700_000_000_i64 + version.parse::<i64>().unwrap_or(0),
            "definition": serde_json::to_value(&from.request.definition).expect("definition"),
            "description": from.request.description, "metadata": metadata,
        }))
        .expect("a version")
    }

    #[test]
    fn observations_of_versions_give_the_drifted_condition() {
        let spec = desired("Be brief.");
        let other = desired("Be verbose.");
        // (case, versions, Drifted status, reason, message contains)
        let cases: Vec<(&str, Vec<AgentVersionObject>, bool, &str, &str)> = vec![
            (
                "no version",
                vec![],
                true,
                reasons::NOT_FOUND_IN_FOUNDRY,
                "does not exist in Foundry",
            ),
            (
                "ours with this hash",
                vec![live("1", &spec, true)],
                false,
                reasons::IN_SYNC,
                "is this object's",
            ),
            (
                "made by hand, same content",
                vec![live("1", &spec, false)],
                false,
                reasons::IN_SYNC,
                "not made by this object",
            ),
            (
                "made by hand, other instructions",
                vec![live("1", &other, false)],
                true,
                reasons::DRIFTED,
                "differs from the spec in: instructions; no version with this spec hash (newest: version 1)",
            ),
            (
                "ours, then a newer hand edit",
                vec![live("1", &spec, true), live("2", &other, false)],
                true,
                reasons::DRIFTED,
                "(newest: version 2); version 1 has it but is not the newest",
            ),
            (
                "ours with an older spec",
                vec![live("1", &other, true)],
                true,
                reasons::DRIFTED,
                "in: instructions;",
            ),
        ];
        for (case, versions, status, reason, text) in cases {
            let observation = observe_versions(&versions, &spec, &me());
            let (s, r, m) = drifted_condition(&observation, "weather");
            assert_eq!((s, r), (status, reason), "{case}: {m}");
            assert!(m.contains(text), "{case}: {m}");
        }
    }

    #[test]
    fn content_drift_names_description_and_user_metadata_but_not_the_operator_keys() {
        let spec = desired("Be brief.");
        let mut version = live("1", &spec, true);
        assert_eq!(content_drift(&spec, &version), None);
        version.description = Some("edited".into());
        version.metadata.insert("team".into(), "other".into());
        version
            .metadata
            .insert(format!("{RESERVED_METADATA_PREFIX}spec-hash"), "x".into());
        assert_eq!(
            content_drift(&spec, &version).as_deref(),
            Some("description, metadata")
        );
    }
}
