//! Step "verify": the version Foundry serves must be usable (a failed version is Stalled, one
//! being created is looked at again soon), and with `spec.verify`, once per version, a
//! conversation and a response through the gateway, the reply checked, the conversation
//! deleted; a failure is retried with backoff. [`serving`] and [`verdict`] are pure.

use std::time::{Duration, Instant};

use foundry_gateway_api::PromptAgent;
use foundry_gateway_api::agent::{AgentVersionRef, VerifySpec};
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::project::{
    AgentReference, CreateConversationRequest, CreateResponseRequest,
};
use tracing::{info, warn};

use super::pass::{Pass, Start};
use super::report::{self, Check, VerifiedCondition};
use super::tracker::{Subject, Synced, Tracker, Verification};
use super::{CREATING_POLL, KIND, message_of};
use crate::context::Context;
use crate::failure::Failure;
use crate::project::ResolvedProject;
use crate::status::Outcome;

/// Shortest wait before a failed verification runs again (each one spends tokens).
const VERIFY_RETRY_MIN: Duration = Duration::from_secs(30);

/// The verdict on the version served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Verdict {
    /// `Verified`.
    pub verified: VerifiedCondition,
    /// The last verification, to remember.
    pub verification: Option<Verification>,
    /// How the pass ends.
    pub pass: Pass,
}

/// The verdict on the version `synced` serves; runs the verification when it is due.
pub(super) async fn verify(
    ctx: &Context,
    agent: &PromptAgent,
    project: &ResolvedProject,
    synced: &Synced,
    start: &Start,
) -> Result<Verdict, Failure> {
    let resync = ctx.settings.resync;
    let unchanged = |verified, pass| Verdict {
        verified,
        verification: start.memory.verification.clone(),
        pass,
    };
    let ready = match serving(synced)? {
        Serving::Creating(pass) => return Ok(unchanged(VerifiedCondition::Keep, pass)),
        Serving::Ready(outcome) => outcome,
    };
    let Some(spec) = &agent.spec.verify else {
        let pass = Pass {
            outcome: ready,
            next: resync,
        };
        return Ok(unchanged(VerifiedCondition::Remove, pass));
    };
    let subject = Subject {
        agent: synced.served.agent.clone(),
        verify: spec.clone(),
    };
    let mut memory = Tracker {
        verification: remembered(start, &subject),
        ..Tracker::default()
    };
    if start.forced || memory.verification_due(&subject, start.generation) {
        memory.verification = Some(run(ctx, project, &subject, start).await);
    }
    Ok(verdict(&memory, &subject, ready, resync))
}

/// What Foundry's state of the served version means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Serving {
    /// Still being created: no verification yet, look again soon.
    Creating(Pass),
    /// Usable: Ready unless a verification says otherwise.
    Ready(Outcome),
}

/// Whether the version `synced` serves is usable. A failed version is Stalled: only a change of
/// the spec creates another. Pure.
pub(super) fn serving(synced: &Synced) -> Result<Serving, Failure> {
    let served = &synced.served;
    let who = format!(
        "Agent {} version {}",
        served.agent.name, served.agent.version
    );
    match synced.state.as_deref() {
        Some("failed") => Err(Failure::permanent(
            reasons::REJECTED_BY_FOUNDRY,
            format!("{who} failed in Foundry; change the spec to create a new version"),
        )),
        Some("creating") => Ok(Serving::Creating(Pass {
            outcome: Outcome::Progressing {
                message: format!("{who} is being created in Foundry"),
            },
            next: CREATING_POLL,
        })),
        _ => Ok(Serving::Ready(Outcome::Ready {
            message: format!("{who} runs on {}", served.model),
        })),
    }
}

/// The remembered verification; after a restart, the one status records for this version at
/// this generation (a verified version is not verified again).
fn remembered(start: &Start, subject: &Subject) -> Option<Verification> {
    if start.memory.verdict(subject).is_some() {
        return start.memory.verification.clone();
    }
    match report::verified_in_status(&start.live, start.generation, &subject.agent) {
        Some(check) => Some(Verification {
            subject: subject.clone(),
            check,
            at: None,
            retry_in: Duration::ZERO,
            generation: start.generation,
        }),
        None => start.memory.verification.clone(),
    }
}

/// Runs the verification of `subject` and remembers when it may run again.
async fn run(
    ctx: &Context,
    project: &ResolvedProject,
    subject: &Subject,
    start: &Start,
) -> Verification {
    let agent = &subject.agent;
    let (check, retry_after) = run_verification(project, agent, &subject.verify).await;
    let retry_in = if check.ok {
        info!(agent = %agent.name, version = %agent.version, "Verified agent");
        ctx.reset_backoff(start.keys.verify());
        Duration::ZERO
    } else {
        warn!(agent = %agent.name, version = %agent.version, reason = %check.reason, "Verification failed");
        ctx.metrics.observe_failure(KIND, &check.reason);
        ctx.backoff(start.keys.verify(), retry_after)
            .max(VERIFY_RETRY_MIN)
    };
    Verification {
        subject: subject.clone(),
        check,
        at: Some(Instant::now()),
        retry_in,
        generation: start.generation,
    }
}

/// The verdict on `subject` from what `memory` knows: Ready when it passed, else Ready=False with
/// its reason until the retry. Pure.
pub(super) fn verdict(
    memory: &Tracker,
    subject: &Subject,
    ready: Outcome,
    resync: Duration,
) -> Verdict {
    let check = memory
        .verdict(subject)
        .cloned()
        .unwrap_or_else(|| Check::fail(reasons::VERIFICATION_FAILED, "Not verified yet"));
    let pass = if check.ok {
        Pass {
            outcome: ready,
            next: resync,
        }
    } else {
        let retry = memory
            .until_verification_retry()
            .unwrap_or(resync)
            .max(Duration::from_secs(1));
        Pass {
            outcome: Outcome::NotReady {
                reason: check.reason.clone(),
                message: check.message.clone(),
            },
            next: retry.min(resync),
        }
    };
    Verdict {
        verified: VerifiedCondition::Set(check),
        verification: memory.verification.clone(),
        pass,
    }
}

/// Asks the version `input` in a fresh conversation, checks the reply, and deletes the
/// conversation whatever happened. Returns the verdict and the server's retry hint.
async fn run_verification(
    project: &ResolvedProject,
    agent: &AgentVersionRef,
    verify: &VerifySpec,
) -> (Check, Option<Duration>) {
    let expect = verify.expect.as_deref();
    let conversation = match project
        .data
        .conversations_create(&CreateConversationRequest::default())
        .await
    {
        Ok(conversation) => conversation,
        Err(error) => {
            let why =
                message_of(&Failure::from_foundry("create a conversation", &error)).to_owned();
            return (
                report::verification_check(agent, Err(why), expect),
                error.retry_after(),
            );
        }
    };
    let mut request = CreateResponseRequest::new(
        AgentReference::new(&agent.name, Some(agent.version.clone())),
        &verify.input,
    );
    request.conversation = Some(conversation.id.clone());
    let reply = project.data.responses_create(&request).await;
    if let Err(error) = project.data.conversations_delete(&conversation.id).await {
        warn!(conversation = %conversation.id, error = %error.label(), "Failed to delete verification conversation");
    }
    match reply {
        Ok(response) => (
            report::verification_check(agent, Ok(&response.output_text), expect),
            None,
        ),
        Err(error) => {
            let why = message_of(&Failure::from_foundry("get a reply", &error)).to_owned();
            (
                report::verification_check(agent, Err(why), expect),
                error.retry_after(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::report::{REPLY_MATCHED, Served};

    const RESYNC: Duration = Duration::from_secs(600);

    fn synced(state: Option<&str>) -> Synced {
        Synced {
            target: "p#weather".into(),
            served: Served {
                agent: AgentVersionRef {
                    name: "weather".into(),
                    version: "2".into(),
                },
                model: "gw/gpt-4o".into(),
                spec_hash: "h".into(),
            },
            state: state.map(str::to_owned),
        }
    }

    fn subject() -> Subject {
        Subject {
            agent: synced(None).served.agent,
            verify: VerifySpec {
                input: "hi".into(),
                expect: None,
            },
        }
    }

    fn ready() -> Outcome {
        Outcome::Ready {
            message: "ok".into(),
        }
    }

    #[test]
    fn a_failed_version_stalls_and_one_being_created_waits() {
        let failed = serving(&synced(Some("failed"))).expect_err("failed");
        assert_eq!(failed.label(), reasons::REJECTED_BY_FOUNDRY);
        assert!(matches!(failed, Failure::Permanent { .. }));
        let cases = [
            (Some("creating"), false),
            (Some("active"), true),
            (None, true),
        ];
        for (state, usable) in cases {
            let got = serving(&synced(state)).expect("not failed");
            assert_eq!(matches!(got, Serving::Ready(_)), usable, "{state:?}");
        }
    }

    /// A memory of `subject()`: passed or failed, and when it may run again.
    fn memory(verification: Option<(bool, u64)>) -> Tracker {
        Tracker {
            verification: verification.map(|(ok, retry_in)| Verification {
                subject: subject(),
                check: if ok {
                    Check::pass(REPLY_MATCHED, "replied")
                } else {
                    Check::fail(reasons::UNEXPECTED_REPLY, "replied wrong")
                },
                at: Some(Instant::now()),
                retry_in: Duration::from_secs(retry_in),
                generation: 1,
            }),
            ..Tracker::default()
        }
    }

    #[test]
    fn the_verdict_is_ready_when_passed_and_waits_for_the_retry_when_failed() {
        // (case, remembered (passed, retry in seconds), reason, seconds until the next look)
        let cases = [
            ("passed", Some((true, 0)), REPLY_MATCHED, 600..=600),
            (
                "failed",
                Some((false, 60)),
                reasons::UNEXPECTED_REPLY,
                50..=60,
            ),
            (
                "retry due",
                Some((false, 0)),
                reasons::UNEXPECTED_REPLY,
                1..=1,
            ),
            (
                "retry past resync",
                Some((false, 1200)),
                reasons::UNEXPECTED_REPLY,
                600..=600,
            ),
            ("never ran", None, reasons::VERIFICATION_FAILED, 600..=600),
        ];
        for (case, remembered, reason, next) in cases {
            let memory = memory(remembered);
            let got = verdict(&memory, &subject(), ready(), RESYNC);
            let VerifiedCondition::Set(check) = &got.verified else {
                panic!("{case}: {:?}", got.verified);
            };
            assert_eq!(check.reason, reason, "{case}");
            let ok = reason == REPLY_MATCHED;
            assert_eq!(check.ok, ok, "{case}");
            assert_eq!(
                matches!(got.pass.outcome, Outcome::Ready { .. }),
                ok,
                "{case}"
            );
            assert!(
                next.contains(&got.pass.next.as_secs()),
                "{case}: {:?}",
                got.pass.next
            );
            assert_eq!(got.verification, memory.verification, "{case}");
        }
    }
}
