//! Events for what a user should see, only on transitions of status, so a quiet resync publishes
//! nothing: Stalled, and the verdict of a verification. [`announcements`] is pure.

use foundry_gateway_api::conditions::types;
use foundry_gateway_api::{PromptAgent, PromptAgentStatus};
use kube::runtime::events::EventType;
use tracing::warn;

use crate::context::Context;
use crate::controller::publish;

/// One Event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Announcement {
    /// Normal or Warning.
    pub type_: EventType,
    /// Its reason.
    pub reason: String,
    /// Its note.
    pub note: String,
    /// It says the object is Stalled (also logged).
    pub stalled: bool,
}

/// Publishes the Events of the change from `old` to `new`.
pub(super) async fn announce(
    ctx: &Context,
    agent: &PromptAgent,
    old: &PromptAgentStatus,
    new: &PromptAgentStatus,
) {
    for announcement in announcements(old, new) {
        if announcement.stalled {
            warn!(reason = %announcement.reason, "Stalled");
        }
        let Announcement {
            type_,
            reason,
            note,
            ..
        } = announcement;
        publish(ctx, agent, type_, &reason, note).await;
    }
}

/// The Events of the change from `old` to `new`: Stalled with a new reason or message, and a
/// verdict of `Verified` that is new or is about another version. Pure.
pub(super) fn announcements(old: &PromptAgentStatus, new: &PromptAgentStatus) -> Vec<Announcement> {
    let mut out = Vec::new();
    let stalled = |s: &PromptAgentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::STALLED && c.status == "True")
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = stalled(new)
        && stalled(old) != Some((reason.clone(), message.clone()))
    {
        out.push(Announcement {
            type_: EventType::Warning,
            reason,
            note: message,
            stalled: true,
        });
    }
    out.extend(verified(old, new));
    out
}

/// The Event of a new `Verified` verdict.
fn verified(old: &PromptAgentStatus, new: &PromptAgentStatus) -> Option<Announcement> {
    let verdict = |s: &PromptAgentStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == types::VERIFIED)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let version_changed = old.agent != new.agent;
    let event = |type_, reason: String, note| Announcement {
        type_,
        reason,
        note,
        stalled: false,
    };
    match (verdict(old), verdict(new)) {
        (old_verdict, Some((status, _, message)))
            if status == "True"
                && (version_changed
                    || old_verdict.as_ref().is_none_or(|(s, _, _)| s != "True")) =>
        {
            Some(event(EventType::Normal, "Verified".to_owned(), message))
        }
        (old_verdict, Some((status, reason, message)))
            if status == "False"
                && (version_changed
                    || old_verdict
                        .as_ref()
                        .is_none_or(|(s, r, _)| s != "False" || *r != reason)) =>
        {
            Some(event(EventType::Warning, reason, message))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::agent::AgentVersionRef;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    /// A status serving `version` with these (type, status, reason, message) conditions.
    fn status(version: &str, conditions: &[(&str, &str, &str, &str)]) -> PromptAgentStatus {
        PromptAgentStatus {
            agent: Some(AgentVersionRef {
                name: "weather".into(),
                version: version.into(),
            }),
            conditions: conditions
                .iter()
                .map(|(type_, status, reason, message)| Condition {
                    type_: (*type_).into(),
                    status: (*status).into(),
                    reason: (*reason).into(),
                    message: (*message).into(),
                    observed_generation: Some(1),
                    last_transition_time: Time(Timestamp::UNIX_EPOCH),
                })
                .collect(),
            ..PromptAgentStatus::default()
        }
    }

    /// A condition: type, status, reason, message.
    type Cond = (&'static str, &'static str, &'static str, &'static str);
    /// A status: the version served and its conditions.
    type Status = (&'static str, &'static [Cond]);

    const STALLED: Cond = (types::STALLED, "True", "InvalidSpec", "bad");
    const STALLED_OTHER: Cond = (types::STALLED, "True", "InvalidSpec", "worse");
    const PASSED: Cond = (types::VERIFIED, "True", "ReplyMatched", "replied");
    const FAILED: Cond = (types::VERIFIED, "False", "UnexpectedReply", "wrong");
    const FAILED_OTHER: Cond = (types::VERIFIED, "False", "VerificationFailed", "down");

    /// The events from `old` to `new`, as "type reason, …".
    fn events(old: Status, new: Status) -> String {
        announcements(&status(old.0, old.1), &status(new.0, new.1))
            .iter()
            .map(|a| format!("{:?} {}", a.type_, a.reason))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn events_are_published_on_transitions_only() {
        // (case, old, new, events)
        let cases: [(&str, Status, Status, &str); 10] = [
            ("quiet", ("1", &[PASSED]), ("1", &[PASSED]), ""),
            (
                "stalled",
                ("1", &[]),
                ("1", &[STALLED]),
                "Warning InvalidSpec",
            ),
            ("still stalled", ("1", &[STALLED]), ("1", &[STALLED]), ""),
            (
                "stalled anew",
                ("1", &[STALLED]),
                ("1", &[STALLED_OTHER]),
                "Warning InvalidSpec",
            ),
            ("verified", ("1", &[]), ("1", &[PASSED]), "Normal Verified"),
            (
                "new version verified",
                ("1", &[PASSED]),
                ("2", &[PASSED]),
                "Normal Verified",
            ),
            (
                "failed",
                ("1", &[PASSED]),
                ("1", &[FAILED]),
                "Warning UnexpectedReply",
            ),
            ("still failed", ("1", &[FAILED]), ("1", &[FAILED]), ""),
            (
                "failed otherwise",
                ("1", &[FAILED]),
                ("1", &[FAILED_OTHER]),
                "Warning VerificationFailed",
            ),
            (
                "both",
                ("1", &[]),
                ("1", &[STALLED, FAILED]),
                "Warning InvalidSpec, Warning UnexpectedReply",
            ),
        ];
        for (case, old, new, want) in cases {
            assert_eq!(events(old, new), want, "{case}");
        }
    }
}
