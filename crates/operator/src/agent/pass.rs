//! One pass of the reconcile: the object's keys, what the controller remembers of it, the
//! reconcile request it answers, the status it starts from, and when it looks again.

use std::time::{Duration, Instant};

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::{PromptAgent, PromptAgentStatus};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::debug;

use super::report::{Report, StatusStamp};
use super::tracker::Tracker;
use super::{Ctx, KIND};
use crate::context::REQUESTED_AT_ANNOTATION;
use crate::controller::{Failed, ObjectKey, RefKind, RetryKey, slow};
use crate::failure::Failure;
use crate::status::Outcome;

/// Shortest wait for a project that is not there yet.
const MIN_WAIT: Duration = Duration::from_secs(5);
/// How soon an agent waiting for its connection looks again.
const CONNECTION_RECHECK: Duration = Duration::from_secs(3);

/// Keys of the per-object state of one agent.
pub(super) struct Keys {
    /// The object: memory, backoff and missing references.
    pub object: ObjectKey,
    /// Its uid (memory of a recreated object starts afresh).
    pub uid: String,
}

impl Keys {
    pub fn of(agent: &PromptAgent) -> Self {
        Self {
            object: ObjectKey::of(agent),
            uid: agent.metadata.uid.clone().unwrap_or_default(),
        }
    }

    /// Backoff of failed verifications, apart from the object's.
    pub fn verify(&self) -> RetryKey {
        RetryKey::Verify(self.object.clone())
    }

    /// The missing `key` of the ConfigMap `name`.
    pub fn config_map(&self, name: &str, key: &str) -> RetryKey {
        RetryKey::reference(&self.object, RefKind::ConfigMap, name, key)
    }
}

/// How a pipeline that ran to its end left the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pass {
    /// The generic conditions.
    pub outcome: Outcome,
    /// When to look again (`Duration::MAX`: at the next change).
    pub next: Duration,
}

/// What one pass starts from.
pub(super) struct Start {
    /// The object's keys.
    pub keys: Keys,
    /// `metadata.generation`.
    pub generation: i64,
    /// The `reconcile.fluxcd.io/requestedAt` value.
    pub requested: Option<String>,
    /// Whether that request is new: Foundry is read and the verification runs whatever is due.
    pub forced: bool,
    /// The status before the pass (empty when the object has none yet).
    pub live: PromptAgentStatus,
    /// What the controller remembered of the object.
    pub memory: Tracker,
    /// When the pass began.
    pub began: Instant,
}

impl Start {
    /// The start of a pass.
    pub fn of(ctx: &Ctx, agent: &PromptAgent) -> Self {
        let keys = Keys::of(agent);
        let generation = agent.metadata.generation.unwrap_or(0);
        let memory = ctx.memory.get(&keys.object, &keys.uid);
        let requested = agent.annotations().get(REQUESTED_AT_ANNOTATION).cloned();
        let forced = requested.is_some() && requested != memory.handled_request;
        Self {
            keys,
            generation,
            requested,
            forced,
            live: agent.status.clone().unwrap_or_default(),
            memory,
            began: Instant::now(),
        }
    }

    /// Generation, request and time of the status this pass writes.
    pub fn stamp(&self) -> StatusStamp {
        StatusStamp {
            generation: self.generation,
            requested: self.requested.clone(),
            now: Timestamp::now(),
        }
    }
}

/// When a failed pass looks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Retry {
    /// The object's backoff, never before the server's hint.
    Backoff(Option<Duration>),
    /// The object's backoff, at least [`MIN_WAIT`].
    BackoffAtLeastMinWait,
    /// Once per resync.
    Resync,
    /// Soon (at most once per resync): store reads only.
    Soon,
    /// At the next change.
    OnChange,
}

/// When a pass that failed with `failure` looks again. Pure.
pub(super) fn retry_of(failure: &Failure) -> Retry {
    match failure {
        Failure::Transient { retry_after, .. } => Retry::Backoff(*retry_after),
        // Another object owns the agent: a person acts by deleting that object, which may live
        // in a namespace this controller does not watch, so look again once per resync (listing
        // the versions and one lookup, no write while it lives).
        Failure::Permanent { reason, .. } if reason == reasons::OWNED_ELSEWHERE => Retry::Resync,
        Failure::Permanent { .. } => Retry::OnChange,
        // A connection or model that is missing heals when the connection changes, which
        // triggers this agent; but that trigger can arrive before the connection store has the
        // change, so look again soon (store reads only, no Foundry call).
        Failure::Waiting { reason, .. }
            if reason == reasons::CONNECTION_NOT_READY || reason == reasons::MODEL_NOT_FOUND =>
        {
            Retry::Soon
        }
        Failure::Waiting { .. } => Retry::BackoffAtLeastMinWait,
    }
}

/// The outcome of the pass and when to look again: a pass that ran to its end resets the
/// backoff; a failure is counted, logged with its step, and backs off by its kind.
pub(super) fn settle(ctx: &Ctx, keys: &Keys, end: Result<Pass, Failed>) -> Pass {
    match end {
        Ok(pass) => {
            ctx.reset_backoff(&keys.object);
            pass
        }
        Err(Failed { step, failure }) => {
            ctx.metrics.observe_failure(KIND, failure.label());
            debug!(%step, reason = failure.label(), "Stopped at a step");
            let next = match retry_of(&failure) {
                Retry::Backoff(hint) => ctx.backoff(&keys.object, hint),
                Retry::BackoffAtLeastMinWait => ctx.backoff(&keys.object, None).max(MIN_WAIT),
                Retry::Resync => ctx.settings.resync,
                Retry::Soon => ctx.settings.resync.min(CONNECTION_RECHECK),
                Retry::OnChange => Duration::MAX,
            };
            Pass {
                outcome: failure.outcome(),
                next,
            }
        }
    }
}

/// How much longer the agent keeps its live status as it is: while the pass waits for a
/// connection that is missing or still works toward a verdict, and `waited` (since the first pass
/// of this generation) is within [`slow::GRACE`]. The connection's verdict wakes the agent, which
/// then writes once; None: the status is written now. Pure.
pub(super) fn hold(found: &Report, outcome: &Outcome, waited: Duration) -> Option<Duration> {
    let for_connection = matches!(
        outcome,
        Outcome::NotReady { reason, .. } if reason == reasons::CONNECTION_NOT_READY
    );
    if !for_connection || !found.connection_settling {
        return None;
    }
    slow::left(slow::GRACE, waited)
}

/// The controller's action for a pass that looks again after `next`.
pub(super) fn action(next: Duration) -> Action {
    if next == Duration::MAX {
        Action::await_change()
    } else {
        Action::requeue(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_waiting_for_a_connection_on_its_way_keeps_the_status_within_the_grace() {
        let waiting = Outcome::NotReady {
            reason: reasons::CONNECTION_NOT_READY.into(),
            message: "GatewayConnection gw is still reconciling".into(),
        };
        let settling = Report {
            connection_settling: true,
            ..Report::default()
        };
        let second = Duration::from_secs(1);
        assert_eq!(
            hold(&settling, &waiting, second),
            Some(slow::GRACE - second)
        );
        assert_eq!(hold(&settling, &waiting, slow::GRACE), None, "grace over");
        let inactive = Report::default();
        assert_eq!(
            hold(&inactive, &waiting, second),
            None,
            "a connection with a verdict: said at once"
        );
        let stalled = Outcome::Stalled {
            reason: reasons::INVALID_SPEC.into(),
            message: "bad".into(),
        };
        assert_eq!(hold(&settling, &stalled, second), None, "failures at once");
        let ready = Outcome::Ready {
            message: "ok".into(),
        };
        assert_eq!(hold(&settling, &ready, second), None);
    }

    #[test]
    fn each_kind_of_failure_looks_again_when_it_can_heal() {
        let hint = Some(Duration::from_secs(7));
        let cases = [
            (
                Failure::Transient {
                    reason: "Throttled".into(),
                    message: "m".into(),
                    retry_after: hint,
                },
                Retry::Backoff(hint),
            ),
            (
                Failure::transient(reasons::PROGRESSING, "m"),
                Retry::Backoff(None),
            ),
            (
                Failure::permanent(reasons::OWNED_ELSEWHERE, "m"),
                Retry::Resync,
            ),
            (
                Failure::permanent(reasons::INVALID_SPEC, "m"),
                Retry::OnChange,
            ),
            (
                Failure::Waiting {
                    reason: reasons::CONNECTION_NOT_READY.into(),
                    message: "m".into(),
                },
                Retry::Soon,
            ),
            (
                Failure::Waiting {
                    reason: reasons::MODEL_NOT_FOUND.into(),
                    message: "m".into(),
                },
                Retry::Soon,
            ),
            (
                Failure::Waiting {
                    reason: reasons::PROJECT_NOT_READY.into(),
                    message: "m".into(),
                },
                Retry::BackoffAtLeastMinWait,
            ),
        ];
        for (failure, want) in cases {
            assert_eq!(retry_of(&failure), want, "{failure:?}");
        }
    }
}
