//! The pure side of the PromptAgent status: what the steps of one reconcile found (the referenced
//! connection, the model, the version Foundry serves, the verification), and the status that
//! follows from it. No IO; everything here is unit-tested.

use foundry_gateway_api::agent::AgentVersionRef;
use foundry_gateway_api::conditions::{reasons, types};
use foundry_gateway_api::connection::ConnectionScope;
use foundry_gateway_api::{GatewayConnection, PromptAgentStatus};
use foundry_gateway_client::project::AgentVersionObject;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::agent_definition::{is_managed, newest_version, version_marker};
use crate::ownership::{Marker, ObjectId};
use crate::status::{Conditions, Outcome, Stamp};

/// `ConnectionResolved=True`: the GatewayConnection exists and is Ready.
pub const CONNECTION_READY: &str = "ConnectionReady";
/// `ModelResolved=True`: the connection offers the model.
pub const MODEL_FOUND: &str = "ModelFound";
/// `Verified=True`: the verification reply passed.
pub const REPLY_MATCHED: &str = "ReplyMatched";

/// Most characters of a reply quoted in a condition message or event.
const REPLY_QUOTE_CHARS: usize = 120;

/// The verdict behind one domain condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    /// Condition status.
    pub ok: bool,
    /// Condition reason.
    pub reason: String,
    /// Condition message.
    pub message: String,
}

impl Check {
    /// A passed check.
    pub fn pass(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: true,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// A failed check.
    pub fn fail(reason: &str, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// What happens to the `Verified` condition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum VerifiedCondition {
    /// The verification step did not run: the condition stays as it is.
    #[default]
    Keep,
    /// `spec.verify` is not set: no condition.
    Remove,
    /// The verdict for the version in status.
    Set(Check),
    /// `managementPolicy: Observe`: verification writes a conversation, so it does not run
    /// (Unknown, reason Observing).
    Observing,
}

/// What happens to the `Drifted` condition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DriftedCondition {
    /// The compare step did not run: the condition stays as it is.
    #[default]
    Keep,
    /// `managementPolicy: Full`: no condition.
    Remove,
    /// `managementPolicy: Observe`: status, reason, message.
    Set(bool, String, String),
}

/// The version Foundry serves for the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Agent name and version.
    pub agent: AgentVersionRef,
    /// `<connection>/<model>`.
    pub model: String,
    /// Hash of the definition, as in the version's metadata.
    pub spec_hash: String,
}

/// What one reconcile found; a step that did not run leaves its part empty and the status keeps
/// what it last said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `ConnectionResolved`.
    pub connection: Option<Check>,
    /// `ModelResolved`.
    pub model: Option<Check>,
    /// `Verified`.
    pub verified: VerifiedCondition,
    /// The version in place.
    pub served: Option<Served>,
    /// `Drifted`.
    pub drifted: DriftedCondition,
    /// The connection is missing or still works toward a verdict ([`connection_settling`]):
    /// what `ConnectionResolved` says may change within moments.
    pub connection_settling: bool,
}

impl Report {
    /// The report before any step ran: under `managementPolicy: Full` there is no `Drifted`
    /// condition, whatever the steps find; under Observe it stays until the compare step runs.
    pub fn new(observe: bool) -> Self {
        Self {
            drifted: if observe {
                DriftedCondition::Keep
            } else {
                DriftedCondition::Remove
            },
            ..Self::default()
        }
    }
}

/// Generation, reconcile request and time of a status write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusStamp {
    /// `metadata.generation` the status is for.
    pub generation: i64,
    /// The `reconcile.fluxcd.io/requestedAt` value handled.
    pub requested: Option<String>,
    /// Now (a condition's transition time when it changes).
    pub now: Timestamp,
}

/// The status after a reconcile: the live status with the report's conditions and facts, and the
/// generic conditions of `outcome`. Equal inputs give an equal status, so a quiet resync writes
/// nothing.
pub fn desired_status(
    live: &PromptAgentStatus,
    report: &Report,
    outcome: &Outcome,
    stamp: StatusStamp,
) -> PromptAgentStatus {
    let StatusStamp {
        generation,
        requested,
        now,
    } = stamp;
    let mut conditions = Conditions::from_live(&live.conditions);
    set_domain_conditions(&mut conditions, report, generation, now);
    conditions.apply_outcome(outcome, generation, now);
    let mut status = PromptAgentStatus {
        observed_generation: Some(generation),
        conditions: conditions.into_vec(),
        last_handled_reconcile_at: requested,
        ..live.clone()
    };
    if let Some(served) = &report.served {
        status.agent = Some(served.agent.clone());
        status.model = Some(served.model.clone());
        status.spec_hash = Some(served.spec_hash.clone());
    }
    status
}

/// The report's conditions: `ConnectionResolved`, `ModelResolved`, `Verified` and `Drifted`,
/// each set, removed or kept as the report says.
fn set_domain_conditions(
    conditions: &mut Conditions,
    report: &Report,
    generation: i64,
    now: Timestamp,
) {
    let domain = [
        (types::CONNECTION_RESOLVED, &report.connection),
        (types::MODEL_RESOLVED, &report.model),
    ];
    for (type_, check) in domain {
        if let Some(check) = check {
            conditions.set(
                type_,
                check.ok,
                (&check.reason, &check.message),
                Stamp { generation, now },
            );
        }
    }
    match &report.verified {
        VerifiedCondition::Keep => {}
        VerifiedCondition::Remove => conditions.remove(types::VERIFIED),
        VerifiedCondition::Set(check) => conditions.set(types::VERIFIED, check.ok, (&check.reason, &check.message), Stamp { generation, now }),
        VerifiedCondition::Observing => conditions.set_unknown(types::VERIFIED, (reasons::OBSERVING, "Verification is skipped: managementPolicy is Observe and a verification writes a conversation to Foundry"), Stamp { generation, now }),
    }
    match &report.drifted {
        DriftedCondition::Keep => {}
        DriftedCondition::Remove => conditions.remove(types::DRIFTED),
        DriftedCondition::Set(drifted, reason, message) => {
            conditions.set(
                types::DRIFTED,
                *drifted,
                (reason, message),
                Stamp { generation, now },
            );
        }
    }
}

/// The status a pass that takes long writes meanwhile, so that a new object or spec still being
/// worked on says so (the status contract, docs/ARCHITECTURE.md): Reconciling for the first time,
/// or for the new spec. None when `live` already describes this generation.
pub fn reconciling_status(
    live: &PromptAgentStatus,
    stamp: StatusStamp,
) -> Option<PromptAgentStatus> {
    let StatusStamp {
        generation,
        requested,
        now,
    } = stamp;
    let conditions = if live.conditions.is_empty() {
        let mut conditions = Conditions::default();
        conditions.apply_outcome(
            &Outcome::Progressing {
                message: "Reconciling the agent for the first time".into(),
            },
            generation,
            now,
        );
        conditions.into_vec()
    } else if live.observed_generation != Some(generation) {
        Conditions::new_generation(&live.conditions, generation, now)
    } else {
        return None;
    };
    Some(PromptAgentStatus {
        observed_generation: Some(generation),
        conditions,
        last_handled_reconcile_at: requested,
        ..live.clone()
    })
}

/// What the agent needs from a Ready GatewayConnection.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionFacts {
    /// The Foundry connection name (`status.connectionName`, else `spec.connectionName`, else
    /// `metadata.name`).
    pub connection_name: String,
    /// The models the connection offers.
    pub models: Vec<String>,
}

/// The facts of the referenced GatewayConnection when it is Ready at its current generation, or
/// the failed `ConnectionResolved` check.
pub fn check_connection(
    gc: Option<&GatewayConnection>,
    name: &str,
) -> Result<(ConnectionFacts, Check), Check> {
    let not_ready = |message: String| Check::fail(reasons::CONNECTION_NOT_READY, message);
    let Some(gc) = gc else {
        return Err(not_ready(format!(
            "GatewayConnection {name} does not exist in this namespace"
        )));
    };
    // While the connection works toward a verdict (no status yet, an older generation, the
    // first probe running) the agent says one thing: each step of the connection's would
    // otherwise be one more status write of every agent on it.
    let reconciling = || not_ready(format!("GatewayConnection {name} is still reconciling"));
    if connection_settling(Some(gc)) {
        return Err(reconciling());
    }
    let status = gc.status.clone().unwrap_or_default();
    let Some(ready) = status.conditions.iter().find(|c| c.type_ == types::READY) else {
        return Err(reconciling());
    };
    if ready.status != "True" {
        return Err(not_ready(format!(
            "GatewayConnection {name} is not Ready ({}: {})",
            ready.reason, ready.message
        )));
    }
    let connection_name = status
        .connection_name
        .clone()
        .or_else(|| gc.spec.connection_name.clone())
        .unwrap_or_else(|| gc.name_any());
    let check = Check::pass(
        CONNECTION_READY,
        format!("GatewayConnection {name} is Ready (Foundry connection {connection_name})"),
    );
    Ok((
        ConnectionFacts {
            connection_name,
            models: status.models,
        },
        check,
    ))
}

/// What an agent reads of a GatewayConnection, as a digest ([`crate::triggers`]): the verdict of
/// [`check_connection`] (Ready at its generation, the Foundry connection name, the models) and
/// the scope and project it serves. A change of anything else (`status.usedBy`, a probe's
/// intermediate status while the agent already says the connection is on its way) wakes no
/// agent.
pub fn connection_view(gc: &GatewayConnection) -> u64 {
    let name = gc.name_any();
    crate::triggers::digest(&(
        check_connection(Some(gc), &name),
        gc.spec.scope == Some(ConnectionScope::Account),
        &gc.spec.project_ref.name,
    ))
}

/// Whether the connection is missing or still works toward a verdict: no status yet, a status of
/// an older generation, Reconciling, or Ready=False while its first probe runs.
pub fn connection_settling(gc: Option<&GatewayConnection>) -> bool {
    let Some(gc) = gc else {
        return true;
    };
    let generation = gc.metadata.generation;
    let Some(status) = gc.status.as_ref() else {
        return true;
    };
    let Some(ready) = status.conditions.iter().find(|c| c.type_ == types::READY) else {
        return true;
    };
    let working = status
        .conditions
        .iter()
        .any(|c| c.type_ == types::RECONCILING && c.status == "True")
        || ready.reason == reasons::PROGRESSING;
    status.observed_generation != generation
        || ready.observed_generation != generation
        || (ready.status != "True" && working)
}

/// `ModelResolved`: whether the connection offers `model`; the failure names what it offers.
pub fn check_model(facts: &ConnectionFacts, connection: &str, model: &str) -> Check {
    if facts.models.iter().any(|m| m == model) {
        return Check::pass(
            MODEL_FOUND,
            format!("GatewayConnection {connection} offers model {model}"),
        );
    }
    let offered = if facts.models.is_empty() {
        "it lists no models yet".to_owned()
    } else {
        format!("it offers {}", facts.models.join(", "))
    };
    Check::fail(
        reasons::MODEL_NOT_FOUND,
        format!(
            "GatewayConnection {connection} does not offer model {model}; {offered}; fix spec.model.name or the connection's models"
        ),
    )
}

/// Why a new version is needed for the object `me`, for the log and the event (only called when
/// [`crate::agent_definition::needs_new_version`] says one is, and the owner check let it).
pub fn why_new_version(versions: &[AgentVersionObject], me: &ObjectId) -> &'static str {
    let Some(newest) = newest_version(versions) else {
        return "first version";
    };
    match version_marker(newest) {
        _ if !is_managed(newest) => "a newer version was made outside the operator",
        Some(Marker::Legacy) => "recorded this object as the agent's owner",
        Some(Marker::Object(owner)) if !owner.same_object(me) => {
            "took over the agent from an object that no longer exists"
        }
        Some(Marker::Object(owner)) if owner.uid != me.uid => "this object was created again",
        _ => "the definition changed",
    }
}

/// The `Verified` verdict of one verification: `reply` is the reply text, or why no reply came.
pub fn verification_check(
    agent: &AgentVersionRef,
    reply: Result<&str, String>,
    expect: Option<&str>,
) -> Check {
    let who = format!("Agent {} version {}", agent.name, agent.version);
    match reply {
        Ok(text) if crate::agent_definition::reply_matches(text, expect) => Check::pass(
            REPLY_MATCHED,
            format!("{who} replied: {}", quote_reply(text)),
        ),
        Ok(text) if text.trim().is_empty() => Check::fail(
            reasons::UNEXPECTED_REPLY,
            format!("{who} replied with no text"),
        ),
        Ok(text) => Check::fail(
            reasons::UNEXPECTED_REPLY,
            format!(
                "{who} replied {}, which does not contain {:?}",
                quote_reply(text),
                expect.unwrap_or_default()
            ),
        ),
        Err(why) => Check::fail(
            reasons::VERIFICATION_FAILED,
            format!("{who} could not be verified: {why}"),
        ),
    }
}

/// The `Verified=True` check the live status already holds for this version at this generation:
/// after a restart, a version that was verified is not verified again.
pub fn verified_in_status(
    live: &PromptAgentStatus,
    generation: i64,
    agent: &AgentVersionRef,
) -> Option<Check> {
    if live.agent.as_ref() != Some(agent) {
        return None;
    }
    live.conditions
        .iter()
        .find(|c| {
            c.type_ == types::VERIFIED
                && c.status == "True"
                && c.observed_generation == Some(generation)
        })
        .map(|c| Check::pass(&c.reason, c.message.clone()))
}

/// A reply on one line, cut to a few words, quoted.
fn quote_reply(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut quoted: String = line.chars().take(REPLY_QUOTE_CHARS).collect();
    if line.chars().count() > REPLY_QUOTE_CHARS {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use foundry_gateway_api::GatewayConnectionStatus;
    use foundry_gateway_client::project::{AgentDefinition, PromptAgentDefinition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use serde_json::json;

    use super::*;
    use crate::agent_definition::{
        LEGACY_MANAGED_BY_VALUE, MANAGED_BY_KEY, MANAGED_BY_UID_KEY, SPEC_HASH_KEY,
    };

    fn stamp(generation: i64, requested: Option<String>, now: Timestamp) -> StatusStamp {
        StatusStamp {
            generation,
            requested,
            now,
        }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
    }

    fn agent_ref(version: &str) -> AgentVersionRef {
        AgentVersionRef {
            name: "weather".into(),
            version: version.into(),
        }
    }

    fn served(version: &str) -> Served {
        Served {
            agent: agent_ref(version),
            model: "litellm-gw/gpt-4o".into(),
            spec_hash: "h1".into(),
        }
    }

    fn ready(message: &str) -> Outcome {
        Outcome::Ready {
            message: message.into(),
        }
    }

    fn healthy_report(version: &str) -> Report {
        Report {
            connection: Some(Check::pass(CONNECTION_READY, "conn ok")),
            model: Some(Check::pass(MODEL_FOUND, "model ok")),
            verified: VerifiedCondition::Set(Check::pass(REPLY_MATCHED, "replied")),
            served: Some(served(version)),
            drifted: DriftedCondition::Keep,
            connection_settling: false,
        }
    }

    #[test]
    fn observe_reports_drift_and_skipped_verification_without_blocking_ready_and_full_drops_drift()
    {
        let live = PromptAgentStatus::default();
        let drifted = DriftedCondition::Set(true, reasons::DRIFTED.into(), "differs".into());
        let in_sync = DriftedCondition::Set(false, reasons::IN_SYNC.into(), "same".into());
        // (case, drifted, verified, Drifted status, Verified status, Ready)
        let cases = [
            (
                "observe, drifted",
                drifted.clone(),
                VerifiedCondition::Observing,
                Some("True"),
                Some("Unknown"),
                "True",
            ),
            (
                "observe, in sync",
                in_sync,
                VerifiedCondition::Remove,
                Some("False"),
                None,
                "True",
            ),
            (
                "full",
                DriftedCondition::Remove,
                VerifiedCondition::Remove,
                None,
                None,
                "True",
            ),
        ];
        for (case, drifted_condition, verified, want_drifted, want_verified, want_ready) in cases {
            // Start from a status that has both conditions, as after an earlier Observe pass.
            let before = desired_status(
                &live,
                &Report {
                    drifted: drifted.clone(),
                    verified: VerifiedCondition::Observing,
                    ..healthy_report("1")
                },
                &ready("ok"),
                stamp(1, None, t(0)),
            );
            let report = Report {
                drifted: drifted_condition,
                verified,
                ..healthy_report("1")
            };
            let status = desired_status(&before, &report, &ready("ok"), stamp(2, None, t(1)));
            let status_of = |type_: &str| condition(&status, type_).map(|c| c.status.as_str());
            assert_eq!(status_of(types::DRIFTED), want_drifted, "{case}");
            assert_eq!(status_of(types::VERIFIED), want_verified, "{case}");
            assert_eq!(status_of(types::READY), Some(want_ready), "{case}");
        }
    }

    fn condition<'a>(status: &'a PromptAgentStatus, type_: &str) -> Option<&'a Condition> {
        status.conditions.iter().find(|c| c.type_ == type_)
    }

    /// A connection at generation 1 whose first probe runs (Ready=False `Progressing`).
    fn probing_connection() -> GatewayConnection {
        let mut probing = connection(1, Some(("False", 1)), &[]);
        if let Some(ready) = probing
            .status
            .as_mut()
            .and_then(|s| s.conditions.first_mut())
        {
            ready.reason = reasons::PROGRESSING.into();
            ready.message = "Probing the gateway".into();
        }
        probing
    }

    fn connection(
        generation: i64,
        ready: Option<(&str, i64)>,
        models: &[&str],
    ) -> GatewayConnection {
        let mut gc: GatewayConnection = serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "GatewayConnection",
            "metadata": {"name": "litellm-gw", "namespace": "team", "generation": generation},
            "spec": {
                "projectRef": {"name": "proj"},
                "category": "ModelGateway",
                "target": "https://gw.example.com",
                "auth": {"apiKey": {"secretRef": {"name": "s", "key": "k"}}},
            },
        }))
        .expect("test connection");
        gc.status = Some(GatewayConnectionStatus {
            observed_generation: Some(generation),
            conditions: ready
                .map(|(status, observed)| Condition {
                    type_: types::READY.into(),
                    status: status.into(),
                    reason: if status == "True" {
                        "Reconciled"
                    } else {
                        "GatewayInactive"
                    }
                    .into(),
                    message: "gateway says so".into(),
                    observed_generation: Some(observed),
                    last_transition_time: Time(t(0)),
                })
                .into_iter()
                .collect(),
            connection_name: Some("litellm-conn".into()),
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..GatewayConnectionStatus::default()
        });
        gc
    }

    fn version(number: &str, metadata: &[(&str, &str)]) -> AgentVersionObject {
        AgentVersionObject {
            object: "agent.version".into(),
            id: format!("weather:{number}"),
            name: "weather".into(),
            version: number.into(),
            description: None,
            metadata: metadata
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            created_at: 1_700_000_000,
            definition: AgentDefinition::from(PromptAgentDefinition::new("litellm-gw/gpt-4o")),
            status: None,
        }
    }

    #[test]
    fn a_resync_that_finds_the_same_writes_the_same_status() {
        let first = desired_status(
            &PromptAgentStatus::default(),
            &healthy_report("1"),
            &ready("Agent weather version 1 runs"),
            stamp(1, None, t(0)),
        );
        let again = desired_status(
            &first,
            &healthy_report("1"),
            &ready("Agent weather version 1 runs"),
            stamp(1, None, t(600)),
        );
        assert_eq!(again, first);
        assert_eq!(
            condition(&first, types::READY).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(first.agent, Some(agent_ref("1")));
        assert_eq!(first.model.as_deref(), Some("litellm-gw/gpt-4o"));
        assert_eq!(first.spec_hash.as_deref(), Some("h1"));
    }

    #[test]
    fn a_long_pass_says_reconciling_for_a_new_object_or_spec_and_nothing_otherwise() {
        let first = reconciling_status(
            &PromptAgentStatus::default(),
            stamp(1, Some("2024-01-01".into()), t(0)),
        )
        .expect("a new object");
        assert_eq!(
            condition(&first, types::RECONCILING).map(|c| c.status.as_str()),
            Some("True")
        );
        assert_eq!(
            condition(&first, types::READY).map(|c| c.status.as_str()),
            Some("False")
        );
        assert!(condition(&first, types::STALLED).is_none());
        assert_eq!(first.observed_generation, Some(1));
        assert_eq!(
            first.last_handled_reconcile_at.as_deref(),
            Some("2024-01-01")
        );

        let ready = desired_status(
            &PromptAgentStatus::default(),
            &healthy_report("3"),
            &Outcome::Ready {
                message: "ok".into(),
            },
            stamp(1, None, t(0)),
        );
        assert_eq!(reconciling_status(&ready, stamp(1, None, t(5))), None);
        let new_spec = reconciling_status(&ready, stamp(2, None, t(5))).expect("a new spec");
        assert_eq!(new_spec.observed_generation, Some(2));
        assert_eq!(
            condition(&new_spec, types::READY).map(|c| (c.status.as_str(), c.reason.as_str())),
            Some(("False", reasons::PROGRESSING))
        );
        assert_eq!(
            new_spec.agent, ready.agent,
            "the version served so far stays"
        );
    }

    #[test]
    fn a_step_that_did_not_run_keeps_what_the_status_said() {
        let before = desired_status(
            &PromptAgentStatus::default(),
            &healthy_report("3"),
            &ready("ok"),
            stamp(1, None, t(0)),
        );
        let after = desired_status(
            &before,
            &Report::default(),
            &Outcome::NotReady {
                reason: reasons::PROJECT_NOT_READY.into(),
                message: "FoundryProject proj does not exist".into(),
            },
            stamp(1, None, t(10)),
        );
        assert_eq!(after.agent, Some(agent_ref("3")));
        assert_eq!(after.spec_hash.as_deref(), Some("h1"));
        assert_eq!(
            condition(&after, types::VERIFIED).map(|c| c.status.as_str()),
            Some("True")
        );
        let ready = condition(&after, types::READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::PROJECT_NOT_READY)
        );
    }

    #[test]
    fn an_agent_without_verify_has_no_verified_condition() {
        let verified = desired_status(
            &PromptAgentStatus::default(),
            &healthy_report("1"),
            &ready("ok"),
            stamp(1, None, t(0)),
        );
        let report = Report {
            verified: VerifiedCondition::Remove,
            ..healthy_report("1")
        };
        let status = desired_status(&verified, &report, &ready("ok"), stamp(2, None, t(1)));
        assert!(condition(&status, types::VERIFIED).is_none());
        assert_eq!(
            condition(&status, types::READY).map(|c| c.status.as_str()),
            Some("True")
        );
    }

    #[test]
    fn a_failed_verification_is_not_ready_but_neither_reconciling_nor_stalled() {
        let check = Check::fail(
            reasons::UNEXPECTED_REPLY,
            "Agent weather version 1 replied \"hi\"",
        );
        let report = Report {
            verified: VerifiedCondition::Set(check.clone()),
            ..healthy_report("1")
        };
        let status = desired_status(
            &PromptAgentStatus::default(),
            &report,
            &Outcome::NotReady {
                reason: check.reason.clone(),
                message: check.message.clone(),
            },
            stamp(1, None, t(0)),
        );
        let ready = condition(&status, types::READY).expect("Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::UNEXPECTED_REPLY)
        );
        let verified = condition(&status, types::VERIFIED).expect("Verified");
        assert_eq!(verified.status, "False");
        assert!(condition(&status, types::RECONCILING).is_none());
        assert!(condition(&status, types::STALLED).is_none());
    }

    #[test]
    fn a_connection_that_is_ready_gives_its_foundry_name_and_models() {
        let gc = connection(2, Some(("True", 2)), &["gpt-4o", "gpt-4o-mini"]);
        let (facts, check) = check_connection(Some(&gc), "litellm-gw").expect("ready");
        assert_eq!(facts.connection_name, "litellm-conn");
        assert_eq!(facts.models, ["gpt-4o", "gpt-4o-mini"]);
        assert!(check.ok);
        assert_eq!(check.reason, CONNECTION_READY);
    }

    #[test]
    fn a_connection_falls_back_to_its_spec_name_and_then_its_object_name() {
        let mut gc = connection(1, Some(("True", 1)), &["gpt-4o"]);
        if let Some(status) = gc.status.as_mut() {
            status.connection_name = None;
        }
        let name = |gc: &GatewayConnection| {
            check_connection(Some(gc), "litellm-gw").map(|(f, _)| f.connection_name)
        };
        assert_eq!(name(&gc), Ok("litellm-gw".to_owned()));
        gc.spec.connection_name = Some("from-spec".into());
        assert_eq!(name(&gc), Ok("from-spec".to_owned()));
    }

    #[test]
    fn a_missing_unready_or_stale_connection_is_not_resolved() {
        let missing = check_connection(None, "litellm-gw").expect_err("missing");
        assert_eq!(missing.reason, reasons::CONNECTION_NOT_READY);
        assert!(missing.message.contains("does not exist"));

        let never = connection(1, None, &[]);
        let never = check_connection(Some(&never), "litellm-gw").expect_err("not reconciled");
        assert!(never.message.contains("still reconciling"));

        // The first probe running: the same message, whatever the connection's own says.
        let probing =
            check_connection(Some(&probing_connection()), "litellm-gw").expect_err("probing");
        assert_eq!(probing.message, never.message);

        let inactive = connection(1, Some(("False", 1)), &["gpt-4o"]);
        let inactive = check_connection(Some(&inactive), "litellm-gw").expect_err("inactive");
        assert!(
            inactive.message.contains("GatewayInactive"),
            "{}",
            inactive.message
        );

        let stale = connection(3, Some(("True", 2)), &["gpt-4o"]);
        let stale = check_connection(Some(&stale), "litellm-gw").expect_err("stale");
        assert_eq!(stale.reason, reasons::CONNECTION_NOT_READY);
        assert_eq!(stale.message, never.message);
    }

    #[test]
    fn only_what_an_agent_reads_of_its_connection_changes_its_view() {
        let ready = connection(1, Some(("True", 1)), &["gpt-4o"]);
        let mut used = ready.clone();
        if let Some(status) = used.status.as_mut() {
            status.used_by = vec!["weather".into()];
            status.credentials_hash = Some("h".into());
        }
        assert_eq!(connection_view(&used), connection_view(&ready), "usedBy");

        // On its way (no status, then the first probe running): one view, so no agent wakes.
        let never = connection(1, None, &[]);
        assert_eq!(
            connection_view(&never),
            connection_view(&probing_connection())
        );

        let others = [
            connection(1, Some(("False", 1)), &["gpt-4o"]),
            connection(1, Some(("True", 1)), &["gpt-4o-mini"]),
            connection(2, Some(("True", 1)), &["gpt-4o"]),
            never,
        ];
        for other in &others {
            assert_ne!(connection_view(other), connection_view(&ready), "{other:?}");
        }
        let mut account = ready.clone();
        account.spec.scope = Some(ConnectionScope::Account);
        assert_ne!(connection_view(&account), connection_view(&ready), "scope");
    }

    #[test]
    fn a_model_the_connection_does_not_offer_is_reported_with_the_models_it_has() {
        let facts = ConnectionFacts {
            connection_name: "litellm-conn".into(),
            models: vec!["gpt-4o".into(), "gpt-4o-mini".into()],
        };
        assert!(check_model(&facts, "litellm-gw", "gpt-4o").ok);
        let missing = check_model(&facts, "litellm-gw", "gpt-5");
        assert!(!missing.ok);
        assert_eq!(missing.reason, reasons::MODEL_NOT_FOUND);
        assert!(
            missing.message.contains("it offers gpt-4o, gpt-4o-mini"),
            "{}",
            missing.message
        );
        let empty = ConnectionFacts {
            models: Vec::new(),
            ..facts
        };
        assert!(
            check_model(&empty, "litellm-gw", "gpt-4o")
                .message
                .contains("lists no models")
        );
    }

    #[test]
    fn the_verification_verdict_names_the_version_and_quotes_a_short_reply() {
        let agent = agent_ref("4");
        let passed = verification_check(&agent, Ok("Hello there!"), Some("Hello"));
        assert!(passed.ok);
        assert_eq!(passed.reason, REPLY_MATCHED);
        assert_eq!(
            passed.message,
            "Agent weather version 4 replied: \"Hello there!\""
        );

        let long = "word ".repeat(100);
        let cut = verification_check(&agent, Ok(&long), None);
        assert!(cut.ok);
        assert!(cut.message.chars().count() < 200, "{}", cut.message);
        assert!(cut.message.contains('…'));

        let unexpected = verification_check(&agent, Ok("Goodbye"), Some("Hello"));
        assert_eq!(
            (unexpected.ok, unexpected.reason.as_str()),
            (false, reasons::UNEXPECTED_REPLY)
        );
        assert!(unexpected.message.contains("does not contain \"Hello\""));

        let empty = verification_check(&agent, Ok("  "), None);
        assert_eq!(empty.reason, reasons::UNEXPECTED_REPLY);

        let failed = verification_check(&agent, Err("HTTP 500: boom".into()), None);
        assert_eq!(
            (failed.ok, failed.reason.as_str()),
            (false, reasons::VERIFICATION_FAILED)
        );
        assert!(failed.message.ends_with("HTTP 500: boom"));
    }

    #[test]
    fn a_verified_version_in_status_is_not_verified_again_after_a_restart() {
        let status = desired_status(
            &PromptAgentStatus::default(),
            &healthy_report("2"),
            &ready("ok"),
            stamp(5, None, t(0)),
        );
        assert!(verified_in_status(&status, 5, &agent_ref("2")).is_some());
        assert!(
            verified_in_status(&status, 6, &agent_ref("2")).is_none(),
            "new generation"
        );
        assert!(
            verified_in_status(&status, 5, &agent_ref("3")).is_none(),
            "new version"
        );
    }

    #[test]
    fn the_reason_for_a_new_version_says_what_changed() {
        let me = ObjectId::new("team-a", "pa", Some("uid-a"));
        let made_for = |owner: &ObjectId, hash: &str| {
            version(
                "1",
                &[
                    (MANAGED_BY_KEY, owner.marker_value().as_str()),
                    (MANAGED_BY_UID_KEY, owner.uid.as_deref().unwrap_or_default()),
                    (SPEC_HASH_KEY, hash),
                ],
            )
        };
        assert_eq!(why_new_version(&[], &me), "first version");
        assert_eq!(
            why_new_version(&[made_for(&me, "old")], &me),
            "the definition changed"
        );
        let mut by_hand = version("2", &[]);
        by_hand.created_at += 10;
        assert_eq!(
            why_new_version(&[made_for(&me, "h"), by_hand], &me),
            "a newer version was made outside the operator"
        );
        assert_eq!(
            why_new_version(
                &[version(
                    "1",
                    &[
                        (MANAGED_BY_KEY, LEGACY_MANAGED_BY_VALUE),
                        (SPEC_HASH_KEY, "h")
                    ]
                )],
                &me
            ),
            "recorded this object as the agent's owner"
        );
        assert_eq!(
            why_new_version(
                &[made_for(&ObjectId::new("team-b", "pa", Some("uid-b")), "h")],
                &me
            ),
            "took over the agent from an object that no longer exists"
        );
        assert_eq!(
            why_new_version(
                &[made_for(
                    &ObjectId::new("team-a", "pa", Some("uid-old")),
                    "h"
                )],
                &me
            ),
            "this object was created again"
        );
    }
}
