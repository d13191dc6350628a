//! In-memory state of one GatewayConnection between reconciles: when Foundry was last checked,
//! and the probe history that damps flapping. Losing it (a restart) only costs one extra check.

use std::time::{Duration, Instant};

use foundry_gateway_api::connection::GatewayState;
use foundry_gateway_client::probe::ProbeOutcome;

use crate::probes::ProbeStamp;

/// Probe verdict after damping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Active, Inactive or Unknown.
    pub state: GatewayState,
    /// Condition reason (Active, or the Inactive cause, or NotProbed).
    pub reason: String,
    /// Message for a person.
    pub message: String,
    /// Models the last successful probe found.
    pub models: Vec<String>,
    /// Models it found beyond those kept.
    pub omitted: usize,
}

/// What the controller remembers about one connection.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// Generation last synced with Foundry.
    pub synced_generation: Option<i64>,
    /// Credentials hash last synced.
    pub synced_credentials: Option<String>,
    /// ARM id of the connection last written or read.
    pub connection_id: Option<String>,
    /// When Foundry was last read.
    pub last_foundry_check: Option<Instant>,
    /// When the gateway was last probed.
    pub last_probe: Option<Instant>,
    /// Generation and credentials the last probe ran with.
    pub probed_with: Option<(i64, String)>,
    /// Consecutive failed probes.
    pub failures: u32,
    /// The damped verdict.
    pub verdict: Verdict,
    /// The `reconcile.fluxcd.io/requestedAt` value last handled.
    pub handled_request: Option<String>,
    /// What the last read of Foundry found, when it was made under `managementPolicy: Observe`
    /// (then `synced_*` say what the read was made with, not what was written). None after a
    /// read under `Full`.
    pub observed: Option<super::observe::Observation>,
    /// The inputs (generation, credentials) this process works toward a verdict on, and since
    /// when: the grace before the status says "Probing" counts from there.
    pub working_since: Option<(i64, String, Instant)>,
}

impl Tracker {
    /// Whether Foundry must be read now.
    pub fn foundry_check_due(&self, generation: i64, credentials: &str, resync: Duration) -> bool {
        self.synced_generation != Some(generation)
            || self.synced_credentials.as_deref() != Some(credentials)
            || self
                .last_foundry_check
                .is_none_or(|t| t.elapsed() >= resync)
    }

    /// Remembers a read of Foundry made now, with these inputs, that found (or wrote) the
    /// connection `connection_id`; `observed` is what a read under `managementPolicy: Observe`
    /// found (None after a read under `Full`).
    pub fn checked(
        &mut self,
        generation: i64,
        credentials: &str,
        connection_id: &str,
        observed: Option<super::observe::Observation>,
    ) {
        self.synced_generation = Some(generation);
        self.synced_credentials = Some(credentials.to_owned());
        self.connection_id = Some(connection_id.to_owned());
        self.last_foundry_check = Some(Instant::now());
        self.observed = observed;
    }

    /// The credentials digest this object last applied, given the one status shows. After a
    /// read under Observe, the tracker holds what was read with, not what was written: only
    /// status says what was last applied. Otherwise the tracker, not the (possibly stale)
    /// cached status, says what was last written: a reconcile that sees its own previous status
    /// write late must not write again.
    pub fn applied<'a>(&'a self, status: Option<&'a str>) -> Option<&'a str> {
        if self.observed.is_some() {
            status
        } else {
            self.synced_credentials.as_deref().or(status)
        }
    }

    /// Whether the gateway must be probed now.
    pub fn probe_due(&self, generation: i64, credentials: &str, interval: Duration) -> bool {
        self.probed_with
            .as_ref()
            .is_none_or(|(g, c)| *g != generation || c != credentials)
            || self.last_probe.is_none_or(|t| t.elapsed() >= interval)
    }

    /// How long this process has worked toward a verdict on these inputs, counted from `began`
    /// (the start of the reconcile that first saw them).
    pub fn working_for(&mut self, generation: i64, credentials: &str, began: Instant) -> Duration {
        let since = match &self.working_since {
            Some((g, c, since)) if *g == generation && c == credentials => *since,
            _ => {
                self.working_since = Some((generation, credentials.to_owned(), began));
                began
            }
        };
        since.elapsed()
    }

    /// Whether the verdict comes from a probe of these inputs.
    pub fn probed_at(&self, generation: i64, credentials: &str) -> bool {
        self.probed_with
            .as_ref()
            .is_some_and(|(g, c)| *g == generation && c == credentials)
    }

    /// Time until the next probe is due.
    pub fn until_next_probe(&self, interval: Duration) -> Duration {
        self.last_probe
            .map_or(Duration::ZERO, |t| interval.saturating_sub(t.elapsed()))
    }

    /// Records a probe result with flap damping: an Active gateway turns Inactive only after
    /// `threshold` failures in a row; an Unknown one (never probed, or just changed) at the first
    /// failure; any success makes it Active at once.
    pub fn record(
        &mut self,
        outcome: &ProbeOutcome,
        threshold: u32,
        stamp: &ProbeStamp,
        started: Instant,
    ) {
        let (generation, credentials) = (stamp.generation, stamp.credentials.as_str());
        self.last_probe = Some(started);
        let changed_inputs = self
            .probed_with
            .as_ref()
            .is_none_or(|(g, c)| *g != generation || c != credentials);
        self.probed_with = Some((generation, credentials.to_owned()));
        match outcome {
            ProbeOutcome::Active {
                models, omitted, ..
            } => {
                self.failures = 0;
                self.verdict = Verdict {
                    state: GatewayState::Active,
                    reason: "Active".into(),
                    message: format!(
                        "The gateway answered as Foundry calls it ({} model{})",
                        models.len(),
                        if models.len() == 1 { "" } else { "s" }
                    ),
                    models: models.clone(),
                    omitted: *omitted,
                };
            }
            ProbeOutcome::Inactive { cause, message } => {
                self.failures = self.failures.saturating_add(1);
                let keep_active = self.verdict.state == GatewayState::Active
                    && !changed_inputs
                    && self.failures < threshold;
                if !keep_active {
                    self.verdict = Verdict {
                        state: GatewayState::Inactive,
                        reason: cause.as_str().to_owned(),
                        message: message.clone(),
                        models: Vec::new(),
                        omitted: 0,
                    };
                }
            }
        }
    }

    /// Records a direct probe of an Entra ID connection that the gateway refused: the operator's
    /// own token proves nothing about the project's identity, so the verdict is Unknown and no
    /// failure is counted.
    pub fn record_inconclusive(&mut self, stamp: &ProbeStamp, started: Instant) {
        self.last_probe = Some(started);
        self.probed_with = Some((stamp.generation, stamp.credentials.clone()));
        self.verdict = Verdict {
            state: GatewayState::Unknown,
            reason: super::probe_plan::IDENTITY_MISMATCH.to_owned(),
            message: "The gateway refused the operator's own Entra ID token, which says nothing about the project's managed identity that Foundry uses; set probe.mode: Foundry (with probe.model or static models) to have Foundry check the gateway".to_owned(),
            models: Vec::new(),
            omitted: 0,
        };
    }

    /// Marks probing as off.
    pub fn not_probed(&mut self) {
        self.verdict = Verdict {
            state: GatewayState::Unknown,
            reason: "NotProbed".into(),
            message: "Probing is off (spec.probe.mode: Off)".into(),
            models: Vec::new(),
            omitted: 0,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foundry_gateway_client::probe::InactiveCause;

    fn active() -> ProbeOutcome {
        ProbeOutcome::Active {
            models: vec!["gpt-4o".into()],
            latency: Duration::from_millis(5),
            omitted: 0,
        }
    }

    fn stamp(generation: i64, credentials: &str) -> ProbeStamp {
        ProbeStamp {
            generation,
            credentials: credentials.into(),
        }
    }

    fn down() -> ProbeOutcome {
        ProbeOutcome::Inactive {
            cause: InactiveCause::Unreachable,
            message: "connection refused".into(),
        }
    }

    #[test]
    fn work_toward_a_verdict_counts_from_the_first_reconcile_of_its_inputs() {
        let mut t = Tracker::default();
        let long_ago = Instant::now() - Duration::from_secs(30);
        assert!(t.working_for(1, "c", long_ago) >= Duration::from_secs(30));
        let later = Instant::now();
        assert!(
            t.working_for(1, "c", later) >= Duration::from_secs(30),
            "same inputs: the first start stands"
        );
        assert!(
            t.working_for(2, "c", later) < Duration::from_secs(30),
            "new generation"
        );
        assert!(
            t.working_for(2, "d", Instant::now()) < Duration::from_secs(30),
            "new credentials"
        );
    }

    #[test]
    fn an_active_gateway_turns_inactive_only_after_the_threshold() {
        let mut t = Tracker::default();
        t.record(&active(), 3, &stamp(1, "c"), Instant::now());
        t.record(&down(), 3, &stamp(1, "c"), Instant::now());
        t.record(&down(), 3, &stamp(1, "c"), Instant::now());
        assert_eq!(t.verdict.state, GatewayState::Active);
        t.record(&down(), 3, &stamp(1, "c"), Instant::now());
        assert_eq!(t.verdict.state, GatewayState::Inactive);
        assert_eq!(t.verdict.reason, "Unreachable");
        t.record(&active(), 3, &stamp(1, "c"), Instant::now());
        assert_eq!(t.verdict.state, GatewayState::Active);
        assert_eq!(t.failures, 0);
    }

    #[test]
    fn a_new_connection_is_inactive_at_its_first_failure() {
        let mut t = Tracker::default();
        t.record(&down(), 3, &stamp(1, "c"), Instant::now());
        assert_eq!(t.verdict.state, GatewayState::Inactive);
    }

    #[test]
    fn a_changed_spec_or_key_is_judged_by_its_own_first_probe() {
        let mut t = Tracker::default();
        t.record(&active(), 3, &stamp(1, "old-key"), Instant::now());
        t.record(&down(), 3, &stamp(1, "new-key"), Instant::now());
        assert_eq!(
            t.verdict.state,
            GatewayState::Inactive,
            "a new key that fails is not hidden by damping"
        );
    }

    #[test]
    fn what_was_applied_comes_from_memory_unless_the_last_read_only_observed() {
        let observed = Some(super::super::observe::Observation::Missing);
        // (synced credentials, last read observed, status) → applied
        let cases = [
            (None, None, None, None),
            (None, None, Some("s"), Some("s")),
            (Some("t"), None, Some("s"), Some("t")),
            (Some("t"), None, None, Some("t")),
            (Some("t"), observed.clone(), Some("s"), Some("s")),
            (Some("t"), observed, None, None),
        ];
        for (synced, observed, status, want) in cases {
            let t = Tracker {
                synced_credentials: synced.map(str::to_owned),
                observed: observed.clone(),
                ..Tracker::default()
            };
            assert_eq!(
                t.applied(status),
                want,
                "{synced:?} {observed:?} {status:?}"
            );
        }
    }

    #[test]
    fn a_check_remembers_its_inputs_and_what_it_found() {
        let mut t = Tracker {
            observed: Some(super::super::observe::Observation::Missing),
            ..Tracker::default()
        };
        t.checked(2, "c", "id", None);
        assert_eq!(t.synced_generation, Some(2));
        assert_eq!(t.synced_credentials.as_deref(), Some("c"));
        assert_eq!(t.connection_id.as_deref(), Some("id"));
        assert_eq!(t.observed, None);
        assert!(!t.foundry_check_due(2, "c", Duration::from_secs(600)));
        assert!(t.foundry_check_due(3, "c", Duration::from_secs(600)));
    }

    #[test]
    fn probes_and_foundry_checks_fall_due_on_change_and_on_time() {
        let mut t = Tracker::default();
        assert!(t.probe_due(1, "c", Duration::from_secs(60)));
        t.record(&active(), 3, &stamp(1, "c"), Instant::now());
        assert!(!t.probe_due(1, "c", Duration::from_secs(60)));
        assert!(t.probe_due(2, "c", Duration::from_secs(60)));
        assert!(t.probe_due(1, "c2", Duration::from_secs(60)));
        assert!(t.probe_due(1, "c", Duration::ZERO));
        assert!(t.foundry_check_due(1, "c", Duration::from_secs(600)));
    }
}
