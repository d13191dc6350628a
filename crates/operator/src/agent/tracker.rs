//! In-memory state of one PromptAgent between reconciles: what Foundry was last found serving and
//! when, and the verdict of the last verification. Losing it (a restart) costs one listing of the
//! versions; a verification recorded in status is not repeated.

use std::time::{Duration, Instant};

use foundry_gateway_api::agent::{AgentVersionRef, VerifySpec};

use super::report::{Check, Served};

/// What the last look at Foundry found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    /// Project endpoint and agent name the look was made against.
    pub target: String,
    /// The version in place.
    pub served: Served,
    /// Its Foundry `status` (`active`, `failed`, …; absent on older services).
    pub state: Option<String>,
}

/// A look at Foundry: read now, or the last one remembered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Look<T> {
    /// What it found.
    pub found: T,
    /// Whether it was read now.
    pub fresh: bool,
}

impl<T> Look<T> {
    /// A look read now.
    pub fn fresh(found: T) -> Self {
        Self { found, fresh: true }
    }
}

/// Whether Foundry is still creating the version.
fn creating(state: &Option<String>) -> bool {
    state.as_deref() == Some("creating")
}

/// What the last look at Foundry found under `managementPolicy: Observe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Project endpoint and agent name the look was made against.
    pub target: String,
    /// The spec hash it compared with.
    pub spec_hash: String,
    /// What it found.
    pub observation: crate::agent_definition::AgentObservation,
    /// The newest version (None when the agent does not exist).
    pub served: Option<Served>,
    /// Its Foundry `status`.
    pub state: Option<String>,
}

/// What a verification ran against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The version asked.
    pub agent: AgentVersionRef,
    /// What was asked and expected.
    pub verify: VerifySpec,
}

/// The verdict of the last verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// What it ran against.
    pub subject: Subject,
    /// The verdict.
    pub check: Check,
    /// When it ran (`None` when taken over from the status after a restart).
    pub at: Option<Instant>,
    /// When a failed verification may run again.
    pub retry_in: Duration,
    /// The generation of the agent it ran at.
    pub generation: i64,
}

/// What the controller remembers about one agent.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    /// The last look at Foundry under `managementPolicy: Full`.
    pub synced: Option<Synced>,
    /// The last look at Foundry under `managementPolicy: Observe` (None after one under Full,
    /// and `synced` None after one under Observe, so a switch of policy always looks again).
    pub observed: Option<Observed>,
    /// When Foundry was last read.
    pub last_foundry_check: Option<Instant>,
    /// The last verification.
    pub verification: Option<Verification>,
    /// The `reconcile.fluxcd.io/requestedAt` value last handled.
    pub handled_request: Option<String>,
    /// The generation this process works on, and since when.
    pub working_since: Option<(i64, Instant)>,
}

impl Tracker {
    /// Whether the versions must be listed now: never looked, another project or agent name,
    /// another definition, or a resync interval passed since the last look.
    pub fn foundry_check_due(&self, target: &str, spec_hash: &str, resync: Duration) -> bool {
        self.synced
            .as_ref()
            .is_none_or(|s| s.target != target || s.served.spec_hash != spec_hash)
            || self
                .last_foundry_check
                .is_none_or(|t| t.elapsed() >= resync)
    }

    /// [`Self::foundry_check_due`] under `managementPolicy: Observe`.
    pub fn observe_check_due(&self, target: &str, spec_hash: &str, resync: Duration) -> bool {
        self.observed
            .as_ref()
            .is_none_or(|o| o.target != target || o.spec_hash != spec_hash)
            || self
                .last_foundry_check
                .is_none_or(|t| t.elapsed() >= resync)
    }

    /// The verdict for `subject`, if one is known.
    pub fn verdict(&self, subject: &Subject) -> Option<&Check> {
        self.verification
            .as_ref()
            .filter(|v| &v.subject == subject)
            .map(|v| &v.check)
    }

    /// Whether `subject` must be verified now: never verified, or failed and either its retry
    /// time has come or the spec changed since. A passed verification is not repeated (each one
    /// spends tokens).
    pub fn verification_due(&self, subject: &Subject, generation: i64) -> bool {
        match &self.verification {
            Some(v) if &v.subject == subject => {
                !v.check.ok
                    && (v.generation != generation
                        || v.at.is_none_or(|at| at.elapsed() >= v.retry_in))
            }
            _ => true,
        }
    }

    /// Remembers a look under `managementPolicy: Full` when it was read now. A version still
    /// being created is looked at again at the next reconcile.
    pub fn remember_sync(&mut self, look: &Look<Synced>) {
        if look.fresh {
            self.observed = None;
            self.synced = Some(look.found.clone());
            self.last_foundry_check = (!creating(&look.found.state)).then(Instant::now);
        }
    }

    /// [`Self::remember_sync`] under `managementPolicy: Observe`.
    pub fn remember_observe(&mut self, look: &Look<Observed>) {
        if look.fresh {
            self.synced = None;
            self.observed = Some(look.found.clone());
            self.last_foundry_check = (!creating(&look.found.state)).then(Instant::now);
        }
    }

    /// How long this process has worked on `generation`, counted from `began` (the start of
    /// the first pass that saw it).
    pub fn working_for(&mut self, generation: i64, began: Instant) -> Duration {
        let since = match self.working_since {
            Some((g, since)) if g == generation => since,
            _ => {
                self.working_since = Some((generation, began));
                began
            }
        };
        since.elapsed()
    }

    /// Time until a failed verification may run again.
    pub fn until_verification_retry(&self) -> Option<Duration> {
        self.verification.as_ref().filter(|v| !v.check.ok).map(|v| {
            v.at.map_or(Duration::ZERO, |at| v.retry_in.saturating_sub(at.elapsed()))
        })
    }
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::conditions::reasons;

    use super::*;
    use crate::agent::report::REPLY_MATCHED;

    fn served(hash: &str) -> Served {
        Served {
            agent: AgentVersionRef {
                name: "weather".into(),
                version: "1".into(),
            },
            model: "gw/gpt-4o".into(),
            spec_hash: hash.into(),
        }
    }

    fn subject(version: &str, input: &str) -> Subject {
        Subject {
            agent: AgentVersionRef {
                name: "weather".into(),
                version: version.into(),
            },
            verify: VerifySpec {
                input: input.into(),
                expect: None,
            },
        }
    }

    fn verified(subject: Subject, ok: bool, retry_in: Duration) -> Verification {
        let check = if ok {
            Check::pass(REPLY_MATCHED, "replied")
        } else {
            Check::fail(reasons::UNEXPECTED_REPLY, "replied wrong")
        };
        Verification {
            subject,
            check,
            at: Some(Instant::now()),
            retry_in,
            generation: 1,
        }
    }

    #[test]
    fn work_on_a_generation_counts_from_its_first_pass() {
        let mut t = Tracker::default();
        let long_ago = Instant::now() - Duration::from_secs(30);
        assert!(t.working_for(1, long_ago) >= Duration::from_secs(30));
        assert!(t.working_for(1, Instant::now()) >= Duration::from_secs(30));
        assert!(t.working_for(2, Instant::now()) < Duration::from_secs(30));
    }

    #[test]
    fn foundry_is_read_on_a_new_definition_project_or_agent_and_once_per_resync() {
        let resync = Duration::from_secs(600);
        let mut t = Tracker::default();
        assert!(
            t.foundry_check_due("p#weather", "h1", resync),
            "never looked"
        );
        t.synced = Some(Synced {
            target: "p#weather".into(),
            served: served("h1"),
            state: None,
        });
        t.last_foundry_check = Some(Instant::now());
        assert!(
            !t.foundry_check_due("p#weather", "h1", resync),
            "quiet resync"
        );
        assert!(
            t.foundry_check_due("p#weather", "h2", resync),
            "new definition"
        );
        assert!(
            t.foundry_check_due("q#weather", "h1", resync),
            "other project"
        );
        assert!(
            t.foundry_check_due("p#weather", "h1", Duration::ZERO),
            "resync passed"
        );
        t.last_foundry_check = None;
        assert!(
            t.foundry_check_due("p#weather", "h1", resync),
            "asked to look again"
        );
    }

    #[test]
    fn a_passed_verification_is_not_repeated_until_the_version_or_prompt_changes() {
        let mut t = Tracker::default();
        assert!(t.verification_due(&subject("1", "hi"), 1));
        t.verification = Some(verified(subject("1", "hi"), true, Duration::ZERO));
        assert!(!t.verification_due(&subject("1", "hi"), 1));
        assert!(t.verdict(&subject("1", "hi")).is_some_and(|c| c.ok));
        assert!(t.verification_due(&subject("2", "hi"), 1), "new version");
        assert!(t.verification_due(&subject("1", "hello"), 1), "new prompt");
        assert!(t.verdict(&subject("2", "hi")).is_none());
        assert_eq!(t.until_verification_retry(), None);
    }

    #[test]
    fn a_failed_verification_is_retried_after_its_backoff() {
        let mut t = Tracker {
            verification: Some(verified(subject("1", "hi"), false, Duration::from_secs(60))),
            ..Tracker::default()
        };
        assert!(!t.verification_due(&subject("1", "hi"), 1));
        assert!(
            t.verification_due(&subject("1", "hi"), 2),
            "a changed spec retries at once"
        );
        assert!(
            t.until_verification_retry()
                .is_some_and(|d| d > Duration::from_secs(50))
        );
        t.verification = Some(verified(subject("1", "hi"), false, Duration::ZERO));
        assert!(t.verification_due(&subject("1", "hi"), 1));
        assert_eq!(t.until_verification_retry(), Some(Duration::ZERO));
    }

    #[test]
    fn a_fresh_look_is_remembered_and_one_under_the_other_policy_is_forgotten() {
        let mut t = Tracker::default();
        let synced = Synced {
            target: "p#weather".into(),
            served: served("h1"),
            state: None,
        };
        t.remember_sync(&Look {
            found: synced.clone(),
            fresh: false,
        });
        assert!(
            t.synced.is_none(),
            "a remembered look is not recorded again"
        );
        t.remember_sync(&Look::fresh(synced.clone()));
        assert!(t.synced.is_some() && t.last_foundry_check.is_some());
        let creating = Synced {
            state: Some("creating".into()),
            ..synced
        };
        t.remember_sync(&Look::fresh(creating));
        assert!(t.last_foundry_check.is_none(), "being created: look again");
        t.remember_observe(&Look::fresh(Observed {
            target: "p#weather".into(),
            spec_hash: "h1".into(),
            observation: crate::agent_definition::AgentObservation::Missing,
            served: None,
            state: None,
        }));
        assert!(t.synced.is_none() && t.observed.is_some());
        assert!(t.last_foundry_check.is_some());
    }
}
