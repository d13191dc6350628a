//! Step "report": the status, the requeue and the memory that follow from what the earlier steps
//! produced. Pure: the driver writes the status, applies the backoff and keeps the memory.
//!
//! Ready follows the gateway verdict: Active or Unknown is Ready, Inactive is Ready=False
//! `GatewayInactive`; while the first probe of new inputs runs, the status stays as it is for
//! [`crate::controller::slow::GRACE`] (a fast gateway gives one write, its verdict), then says
//! Progressing. Under
//! `managementPolicy: Observe` a connection missing in Foundry is Ready=False
//! `NotFoundInFoundry` whatever the probe says, and `Drifted` says what differs. A failed step
//! ends in its failure's outcome ([`crate::failure`]); a failed probe keeps what sync found.

use std::time::Duration;

use foundry_gateway_api::GatewayConnectionStatus;
use foundry_gateway_api::conditions::{reasons, types};
use foundry_gateway_api::connection::GatewayState;

use super::build::Desired;
use super::observe;
use super::probe::Probed;
use super::start::Start;
use super::sync::Synced;
use super::tracker::{Tracker, Verdict};
use crate::controller::{Failed, slow};
use crate::failure::Failure;
use crate::status::{Conditions, Outcome, Stamp};

/// What the steps produced when they got past sync (a failed probe keeps what sync did).
#[derive(Clone, Debug)]
pub struct Ran {
    /// The connection as it should be.
    pub desired: Desired,
    /// What sync found or wrote.
    pub synced: Synced,
    /// The probe step.
    pub probed: Result<Probed, Failed>,
}

/// When to reconcile the object again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requeue {
    /// After this long (`Duration::MAX`: only on a change).
    After(Duration),
    /// After the object's exponential backoff, never before the server's hint, nor before
    /// `at_least`.
    Backoff {
        /// The server's `Retry-After`.
        retry_after: Option<Duration>,
        /// The shortest delay.
        at_least: Duration,
    },
    /// Only when the object (or something it references) changes.
    OnChange,
}

/// What the reconcile ends with.
#[derive(Clone, Debug)]
pub struct Report {
    /// The whole status (written only when it differs from the live one).
    pub status: GatewayConnectionStatus,
    /// When to look again.
    pub requeue: Requeue,
    /// What to remember of the object.
    pub memory: Tracker,
    /// The live status stays as it is (within the grace of a first probe): nothing is written.
    pub keep: bool,
}

/// The failure the steps ended with, if any.
pub fn failure(ran: &Result<Ran, Failed>) -> Option<&Failed> {
    match ran {
        Err(failed)
        | Ok(Ran {
            probed: Err(failed),
            ..
        }) => Some(failed),
        Ok(_) => None,
    }
}

/// The status to write when the steps of a new generation take long ([`slow::unless_quick`]): a
/// new object or spec that is still being worked on says so (the status contract,
/// docs/ARCHITECTURE.md). None when status already describes the generation.
pub fn new_generation(start: &Start<'_>) -> Option<GatewayConnectionStatus> {
    (start.status.observed_generation != Some(start.generation)).then(|| GatewayConnectionStatus {
        observed_generation: Some(start.generation),
        conditions: Conditions::new_generation(
            &start.status.conditions,
            start.generation,
            start.now,
        ),
        ..start.status.clone()
    })
}

/// The status, requeue and memory that follow from the steps.
pub fn report(start: &Start<'_>, ran: Result<Ran, Failed>) -> Report {
    if let Some(held) = hold(start, &ran) {
        return held;
    }
    let mut status = GatewayConnectionStatus {
        observed_generation: Some(start.generation),
        connection_name: Some(start.connection_name.clone()),
        used_by: start.used_by.clone(),
        last_handled_reconcile_at: start.requested.clone(),
        ..start.status.clone()
    };
    let mut conditions = Conditions::from_live(&start.status.conditions);
    if !start.observe {
        conditions.remove(types::DRIFTED);
    }
    let (outcome, requeue, mut memory) = match ran {
        Err(failed) => failed_at(&failed, start, start.memory.clone()),
        Ok(Ran {
            desired,
            synced,
            probed,
        }) => {
            status.connection_id = Some(synced.connection_id);
            if let Some(applied) = synced.credentials_hash {
                status.credentials_hash = Some(applied);
            }
            match probed {
                Err(failed) => failed_at(&failed, start, synced.memory),
                Ok(probed) => {
                    let (outcome, requeue) =
                        gateway(start, &desired, &probed, &mut status, &mut conditions);
                    drifted(start, &probed.memory, &mut conditions);
                    (outcome, requeue, probed.memory)
                }
            }
        }
    };
    conditions.apply_outcome(&outcome, start.generation, start.now);
    status.conditions = conditions.into_vec();
    memory.handled_request = start.requested.clone();
    Report {
        status,
        requeue,
        memory,
        keep: false,
    }
}

/// While the first probe of the current inputs runs and the grace is not over, the live status
/// stays as it is and the object is looked at again when the grace ends (the probe's end wakes
/// it sooner). None when the report has something to say: a verdict, an earlier verdict that
/// stands, a connection missing under Observe, a failure, or the grace is over.
fn hold(start: &Start<'_>, ran: &Result<Ran, Failed>) -> Option<Report> {
    let Ok(Ran {
        desired,
        probed: Ok(probed),
        ..
    }) = ran
    else {
        return None;
    };
    let first = probed.running
        && !probed
            .memory
            .probed_at(start.generation, &desired.credentials_hash);
    let missing = start.observe
        && probed
            .memory
            .observed
            .as_ref()
            .and_then(|o| observe::not_ready(o, &start.connection_name))
            .is_some();
    if !first || missing || judged_before(start, desired).is_some() {
        return None;
    }
    let left = slow::left(slow::GRACE, probed.waiting)?;
    let mut memory = probed.memory.clone();
    memory.handled_request = start.requested.clone();
    Some(Report {
        status: start.status.clone(),
        requeue: Requeue::After(left),
        memory,
        keep: true,
    })
}

/// When a failure is looked at again: transient ones back off (never before the server's
/// hint), a project that is not ready is waited for at least 5s, another owner may go away by
/// itself (looked at each resync), anything else waits for a change.
pub fn retry(failure: &Failure, resync: Duration) -> Requeue {
    match failure {
        Failure::Transient { retry_after, .. } => Requeue::Backoff {
            retry_after: *retry_after,
            at_least: Duration::ZERO,
        },
        Failure::Permanent { reason, .. } if reason == reasons::OWNED_ELSEWHERE => {
            Requeue::After(resync)
        }
        Failure::Permanent { .. } => Requeue::OnChange,
        Failure::Waiting { .. } => Requeue::Backoff {
            retry_after: None,
            at_least: Duration::from_secs(5),
        },
    }
}

fn failed_at(failed: &Failed, start: &Start<'_>, memory: Tracker) -> (Outcome, Requeue, Tracker) {
    (
        failed.failure.outcome(),
        retry(&failed.failure, start.resync),
        memory,
    )
}

/// The outcome of a reconcile whose steps all ran, and what the verdict puts in status.
fn gateway(
    start: &Start<'_>,
    desired: &Desired,
    probed: &Probed,
    status: &mut GatewayConnectionStatus,
    conditions: &mut Conditions,
) -> (Outcome, Requeue) {
    let resync = Requeue::After(start.resync);
    // Observe: a connection missing in Foundry rules Ready out whatever the probe says.
    let missing = probed
        .memory
        .observed
        .as_ref()
        .filter(|_| start.observe)
        .and_then(|o| observe::not_ready(o, &start.connection_name));
    if let Some((reason, message)) = missing {
        let reason = reason.into();
        return (Outcome::NotReady { reason, message }, resync);
    }
    let verdict = &probed.memory.verdict;
    let (generation, now) = (start.generation, start.now);
    if probed.running
        && !probed
            .memory
            .probed_at(generation, &desired.credentials_hash)
    {
        // A verdict an earlier process wrote for these same inputs stands until this probe
        // ends: a restart or a new leader does not turn Ready into Progressing.
        if let Some(outcome) = judged_before(start, desired) {
            return (outcome, resync);
        }
        // The first probe of these inputs is running: say so rather than guess.
        if verdict.state == GatewayState::Unknown {
            let message = "The first probe of the gateway is running";
            let active = types::GATEWAY_ACTIVE;
            conditions.set_unknown(
                active,
                (reasons::PROBING, message),
                Stamp { generation, now },
            );
        }
        let message = "Probing the gateway".into();
        return (Outcome::Progressing { message }, resync);
    }
    gateway_active(verdict, start, conditions);
    status.gateway_state = Some(verdict.state);
    // Inactive keeps the models last seen, so a person still sees what was offered.
    if verdict.state != GatewayState::Inactive && !verdict.models.is_empty() {
        status.models = verdict.models.clone();
        status.models_omitted =
            (verdict.omitted > 0).then(|| i64::try_from(verdict.omitted).unwrap_or(i64::MAX));
    }
    let next = probed
        .next_probe
        .map_or(start.resync, |next| start.resync.min(next));
    (ready(verdict, start), Requeue::After(next))
}

/// The outcome the live status already gives for this generation and these credentials, when it
/// holds a verdict (Active and Ready, or Inactive and Ready=False `GatewayInactive`), written by an
/// earlier process of the operator: this process has not probed yet, the status is the last
/// known truth. None for new inputs (a new generation, rotated credentials) or no verdict.
fn judged_before(start: &Start<'_>, desired: &Desired) -> Option<Outcome> {
    let status = &start.status;
    let same_inputs = status.observed_generation == Some(start.generation)
        && status.credentials_hash.as_deref() == Some(desired.credentials_hash.as_str());
    if !same_inputs {
        return None;
    }
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == types::READY && c.observed_generation == Some(start.generation))?;
    match status.gateway_state? {
        GatewayState::Active if ready.status == "True" => Some(Outcome::Ready {
            message: ready.message.clone(),
        }),
        GatewayState::Inactive
            if ready.status == "False" && ready.reason == reasons::GATEWAY_INACTIVE =>
        {
            Some(Outcome::NotReady {
                reason: ready.reason.clone(),
                message: ready.message.clone(),
            })
        }
        _ => None,
    }
}

/// The `GatewayActive` condition of a verdict.
fn gateway_active(verdict: &Verdict, start: &Start<'_>, conditions: &mut Conditions) {
    let (active, generation, now) = (types::GATEWAY_ACTIVE, start.generation, start.now);
    let message = &verdict.message;
    match verdict.state {
        GatewayState::Active => {
            conditions.set(
                active,
                true,
                (reasons::ACTIVE, message),
                Stamp { generation, now },
            );
        }
        GatewayState::Inactive => {
            conditions.set(
                active,
                false,
                (&verdict.reason, message),
                Stamp { generation, now },
            );
        }
        GatewayState::Unknown => {
            conditions.set_unknown(
                active,
                (&verdict.reason, message),
                Stamp { generation, now },
            );
        }
    }
}

/// Ready follows the verdict: only an Inactive gateway rules it out.
fn ready(verdict: &Verdict, start: &Start<'_>) -> Outcome {
    let connection = &start.connection_name;
    match verdict.state {
        GatewayState::Inactive => Outcome::NotReady {
            reason: reasons::GATEWAY_INACTIVE.into(),
            message: format!(
                "Gateway is Inactive ({}): {}",
                verdict.reason, verdict.message
            ),
        },
        _ if start.observe => Outcome::Ready {
            message: format!(
                "Foundry connection {connection} is in place (observed: managementPolicy is Observe, nothing is written)"
            ),
        },
        _ => Outcome::Ready {
            message: format!("Foundry connection {connection} is in place"),
        },
    }
}

/// Under Observe, the `Drifted` condition of the last read.
fn drifted(start: &Start<'_>, memory: &Tracker, conditions: &mut Conditions) {
    if start.observe
        && let Some(observation) = &memory.observed
    {
        let (drifted, reason, message) =
            observe::drifted_condition(observation, &start.connection_name);
        let (generation, now) = (start.generation, start.now);
        conditions.set(
            types::DRIFTED,
            drifted,
            (reason, &message),
            Stamp { generation, now },
        );
    }
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::GatewayConnection;
    use foundry_gateway_client::connections::{
        ConnectionAuth, ConnectionCategory, ConnectionProperties,
    };
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::connection::observe::Observation;
    use crate::connection::start::ProbeSettings;
    use crate::controller::{ObjectKey, Step};

    const RESYNC: Duration = Duration::from_secs(300);

    fn start(gc: &GatewayConnection, observe: bool) -> Start<'_> {
        Start {
            gc,
            key: ObjectKey::new("ns", "gw"),
            uid: "uid".into(),
            generation: 2,
            status: GatewayConnectionStatus::default(),
            memory: Tracker::default(),
            requested: Some("now".into()),
            forced: true,
            observe,
            scope: Default::default(),
            probe: ProbeSettings::of(gc),
            connection_name: "conn".into(),
            used_by: vec!["agent".into()],
            resync: RESYNC,
            now: Timestamp::UNIX_EPOCH,
            began: std::time::Instant::now(),
        }
    }

    fn desired() -> Desired {
        Desired {
            name: "conn".into(),
            properties: ConnectionProperties::new(
                ConnectionCategory::ModelGateway,
                "https://gw.example.com",
                ConnectionAuth::ApiKey { key: None },
            ),
            credentials_hash: "c".into(),
            discovery: None,
            static_models: vec!["m".into()],
        }
    }

    /// The memory after a probe of the current inputs (generation 2, credentials "c").
    fn probed_as(state: GatewayState, observed: Option<Observation>) -> Tracker {
        Tracker {
            probed_with: Some((2, "c".into())),
            verdict: Verdict {
                state,
                reason: "Cause".into(),
                message: "said".into(),
                models: vec!["m".into()],
                omitted: 0,
            },
            observed,
            ..Tracker::default()
        }
    }

    fn ran(memory: Tracker, running: bool, next_probe: Option<Duration>) -> Result<Ran, Failed> {
        Ok(Ran {
            desired: desired(),
            synced: Synced {
                connection_id: "id".into(),
                credentials_hash: None,
                memory: memory.clone(),
            },
            probed: Ok(Probed {
                memory,
                running,
                next_probe,
                waiting: slow::GRACE,
            }),
        })
    }

    fn failed(step: Step, failure: Failure) -> Failed {
        Failed { step, failure }
    }

    /// What a case expects: (status, reason) of Ready, GatewayActive and Drifted, the gateway
    /// state, and the requeue.
    type Want = (
        (&'static str, &'static str),
        Option<(&'static str, &'static str)>,
        Option<(&'static str, &'static str)>,
        Option<GatewayState>,
        Requeue,
    );

    fn check(case: &str, observe: bool, ran: Result<Ran, Failed>, want: Want) -> Report {
        let gc = GatewayConnection::new("gw", Default::default());
        let report = report(&start(&gc, observe), ran);
        let condition = |type_: &str| {
            report
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.as_str(), c.reason.as_str()))
        };
        let (ready, active, drifted, state, requeue) = want;
        assert_eq!(condition(types::READY), Some(ready), "{case}: Ready");
        assert_eq!(
            condition(types::GATEWAY_ACTIVE),
            active,
            "{case}: GatewayActive"
        );
        assert_eq!(condition(types::DRIFTED), drifted, "{case}: Drifted");
        assert_eq!(report.status.gateway_state, state, "{case}: gateway state");
        assert_eq!(report.requeue, requeue, "{case}: requeue");
        assert_eq!(
            report.memory.handled_request.as_deref(),
            Some("now"),
            "{case}"
        );
        assert_eq!(report.status.used_by, ["agent"], "{case}");
        report
    }

    /// The live status an earlier process wrote: generation 2, credentials "c", `state`, and
    /// Ready as that process judged it.
    fn judged_status(
        state: GatewayState,
        ready: (&str, &str),
        hash: &str,
    ) -> GatewayConnectionStatus {
        let (status, reason) = ready;
        let mut conditions = Conditions::from_live(&[]);
        let stamp = Stamp {
            generation: 2,
            now: Timestamp::UNIX_EPOCH,
        };
        conditions.set(types::READY, status == "True", (reason, "as judged"), stamp);
        GatewayConnectionStatus {
            observed_generation: Some(2),
            conditions: conditions.into_vec(),
            gateway_state: Some(state),
            credentials_hash: Some(hash.into()),
            ..GatewayConnectionStatus::default()
        }
    }

    #[test]
    fn a_verdict_of_an_earlier_process_stands_while_the_first_probe_of_this_one_runs() {
        use GatewayState::*;
        let gc = GatewayConnection::new("gw", Default::default());
        let fresh = Tracker::default();
        let cases = [
            // (live status, Ready of the report)
            (
                judged_status(Active, ("True", reasons::RECONCILED), "c"),
                ("True", reasons::RECONCILED),
            ),
            (
                judged_status(Inactive, ("False", reasons::GATEWAY_INACTIVE), "c"),
                ("False", reasons::GATEWAY_INACTIVE),
            ),
            // Rotated credentials: the verdict was about other inputs.
            (
                judged_status(Active, ("True", reasons::RECONCILED), "old"),
                ("False", reasons::PROGRESSING),
            ),
            // No verdict yet.
            (
                judged_status(Unknown, ("False", reasons::PROGRESSING), "c"),
                ("False", reasons::PROGRESSING),
            ),
        ];
        for (live, (ready, reason)) in cases {
            let mut begin = start(&gc, false);
            begin.status = live.clone();
            let report = report(&begin, ran(fresh.clone(), true, None));
            let got = report
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == types::READY)
                .map(|c| (c.status.as_str(), c.reason.as_str()));
            assert_eq!(got, Some((ready, reason)), "{live:?}");
            if ready == "True" || reason == reasons::GATEWAY_INACTIVE {
                assert_eq!(report.status.gateway_state, live.gateway_state);
                assert_eq!(
                    report.status.conditions, live.conditions,
                    "nothing rewritten"
                );
            }
        }
    }

    #[test]
    fn ready_follows_the_gateway_verdict_and_the_next_probe() {
        use GatewayState::*;
        let next = Some(Duration::from_secs(60));
        let cases: Vec<(&str, Result<Ran, Failed>, Want)> = vec![
            (
                "active",
                ran(probed_as(Active, None), false, next),
                (
                    ("True", reasons::RECONCILED),
                    Some(("True", reasons::ACTIVE)),
                    None,
                    Some(Active),
                    Requeue::After(Duration::from_secs(60)),
                ),
            ),
            (
                "inactive",
                ran(probed_as(Inactive, None), false, next),
                (
                    ("False", reasons::GATEWAY_INACTIVE),
                    Some(("False", "Cause")),
                    None,
                    Some(Inactive),
                    Requeue::After(Duration::from_secs(60)),
                ),
            ),
            (
                "first probe of new inputs running",
                ran(Tracker::default(), true, None),
                (
                    ("False", reasons::PROGRESSING),
                    Some(("Unknown", reasons::PROBING)),
                    None,
                    None,
                    Requeue::After(RESYNC),
                ),
            ),
            (
                "a probe of these inputs is known, the next one runs",
                ran(probed_as(Unknown, None), true, None),
                (
                    ("True", reasons::RECONCILED),
                    Some(("Unknown", "Cause")),
                    None,
                    Some(Unknown),
                    Requeue::After(RESYNC),
                ),
            ),
        ];
        for (case, ran, want) in cases {
            let report = check(case, false, ran, want);
            assert_eq!(report.status.connection_id.as_deref(), Some("id"), "{case}");
        }
    }

    #[test]
    fn while_the_first_probe_runs_within_the_grace_the_status_stays_and_a_verdict_is_written_at_once()
     {
        use GatewayState::*;
        let gc = GatewayConnection::new("gw", Default::default());
        let mut begin = start(&gc, false);
        begin.status = judged_status(Active, ("True", reasons::RECONCILED), "old");
        begin.status.observed_generation = Some(1);
        let second = Duration::from_secs(1);
        let within = |memory: Tracker, running: bool| {
            let Ok(mut ran) = ran(memory, running, None) else {
                unreachable!("built Ok")
            };
            if let Ok(probed) = ran.probed.as_mut() {
                probed.waiting = second;
            }
            Ok(ran)
        };
        let held = report(&begin, within(Tracker::default(), true));
        assert!(held.keep, "nothing written within the grace");
        assert_eq!(held.status, begin.status);
        assert_eq!(held.requeue, Requeue::After(slow::GRACE - second));
        assert_eq!(held.memory.handled_request.as_deref(), Some("now"));

        // The verdict came within the grace: written at once, in one write.
        let verdict = report(&begin, within(probed_as(Active, None), false));
        assert!(!verdict.keep);
        assert_eq!(verdict.status.observed_generation, Some(2));
        assert_eq!(verdict.status.gateway_state, Some(Active));
        assert_eq!(verdict.status.used_by, ["agent"]);

        // The grace is over: the status says the probe runs.
        let late = report(&begin, ran(Tracker::default(), true, None));
        let ready = late
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == types::READY);
        assert_eq!(
            ready.map(|c| (c.status.as_str(), c.reason.as_str())),
            Some(("False", reasons::PROGRESSING))
        );

        // A failure is written at once.
        let failed = report(
            &begin,
            Err(failed(
                Step::Validate,
                Failure::permanent(reasons::INVALID_SPEC, "bad"),
            )),
        );
        assert!(!failed.keep && failed.status != begin.status);
    }

    #[test]
    fn under_observe_a_missing_connection_rules_ready_out_and_drifted_says_why() {
        use GatewayState::*;
        let in_sync = Observation::Present {
            drift: None,
            ours: true,
        };
        let cases: Vec<(&str, Result<Ran, Failed>, Want)> = vec![
            (
                "missing",
                ran(probed_as(Active, Some(Observation::Missing)), false, None),
                (
                    ("False", reasons::NOT_FOUND_IN_FOUNDRY),
                    None,
                    Some(("True", reasons::NOT_FOUND_IN_FOUNDRY)),
                    None,
                    Requeue::After(RESYNC),
                ),
            ),
            (
                "in sync",
                ran(probed_as(Active, Some(in_sync)), false, None),
                (
                    ("True", reasons::RECONCILED),
                    Some(("True", reasons::ACTIVE)),
                    Some(("False", reasons::IN_SYNC)),
                    Some(Active),
                    Requeue::After(RESYNC),
                ),
            ),
        ];
        for (case, ran, want) in cases {
            let report = check(case, true, ran, want);
            assert_eq!(
                report.status.credentials_hash, None,
                "{case}: nothing applied"
            );
        }
    }

    #[test]
    fn a_failed_step_gives_its_outcome_and_a_failed_probe_keeps_what_sync_found() {
        let transient = Failure::Transient {
            reason: "FoundryUnavailable".into(),
            message: "503".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        let invalid = Failure::permanent(reasons::INVALID_SPEC, "bad");
        let Ok(mut probe_failed) = ran(probed_as(GatewayState::Active, None), false, None) else {
            unreachable!("built Ok")
        };
        probe_failed.probed = Err(failed(Step::Probe, transient.clone()));
        probe_failed.synced.credentials_hash = Some("c".into());
        let backoff = Requeue::Backoff {
            retry_after: Some(Duration::from_secs(7)),
            at_least: Duration::ZERO,
        };
        let report = check(
            "probe failed",
            false,
            Ok(probe_failed),
            (("False", "FoundryUnavailable"), None, None, None, backoff),
        );
        assert_eq!(report.status.connection_id.as_deref(), Some("id"));
        assert_eq!(report.status.credentials_hash.as_deref(), Some("c"));
        assert_eq!(report.memory.probed_with, Some((2, "c".into())));
        let report = check(
            "invalid spec",
            false,
            Err(failed(Step::Validate, invalid)),
            (
                ("False", reasons::INVALID_SPEC),
                None,
                None,
                None,
                Requeue::OnChange,
            ),
        );
        assert_eq!(report.status.connection_id, None);
        assert_eq!(report.status.connection_name.as_deref(), Some("conn"));
    }

    #[test]
    fn failures_are_looked_at_again_by_their_kind() {
        let waiting = Failure::Waiting {
            reason: reasons::PROJECT_NOT_READY.into(),
            message: "later".into(),
        };
        let hint = Some(Duration::from_secs(9));
        let transient = Failure::Transient {
            reason: "Throttled".into(),
            message: "429".into(),
            retry_after: hint,
        };
        let cases = [
            (
                transient,
                Requeue::Backoff {
                    retry_after: hint,
                    at_least: Duration::ZERO,
                },
            ),
            (
                Failure::permanent(reasons::OWNED_ELSEWHERE, "theirs"),
                Requeue::After(RESYNC),
            ),
            (
                Failure::permanent(reasons::INVALID_SPEC, "bad"),
                Requeue::OnChange,
            ),
            (
                waiting,
                Requeue::Backoff {
                    retry_after: None,
                    at_least: Duration::from_secs(5),
                },
            ),
        ];
        for (failure, want) in cases {
            assert_eq!(retry(&failure, RESYNC), want, "{failure:?}");
        }
    }

    #[test]
    fn a_new_generation_is_reported_before_any_slow_work_once() {
        let gc = GatewayConnection::new("gw", Default::default());
        let mut start = start(&gc, false);
        let progressing = new_generation(&start).expect("a new generation");
        assert_eq!(progressing.observed_generation, Some(2));
        assert!(
            progressing
                .conditions
                .iter()
                .any(|c| c.type_ == types::RECONCILING && c.status == "True")
        );
        start.status.observed_generation = Some(2);
        assert!(new_generation(&start).is_none());
    }
}
