//! Deterministic status conditions (the status contract of docs/ARCHITECTURE.md).
//!
//! A reconcile ends in one [`Outcome`]; [`Conditions::apply_outcome`] turns it into the Ready,
//! Reconciling and Stalled conditions with the rules every GitOps tool relies on: never
//! Reconciling and Stalled together, Ready=False whenever either is True, every condition stamped
//! with the generation it describes, and `lastTransitionTime` moved only when a status flips. The
//! caller compares the result with the live status and patches only on a difference, so a resync
//! that finds nothing to do writes nothing.

use foundry_gateway_api::conditions::{reasons, types};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// How a reconcile ended, as far as the generic conditions are concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is in place and healthy.
    Ready { message: String },
    /// Work is in flight and will finish by itself (first reconcile, waiting on Foundry).
    Progressing { message: String },
    /// A transient failure; the controller retries with backoff.
    Retrying { reason: String, message: String },
    /// A person must act; nothing is retried until the spec or a referenced object changes.
    Stalled { reason: String, message: String },
    /// Not ready for a reason that heals by itself without work of ours (gateway Inactive,
    /// referenced connection not Ready): neither Reconciling nor Stalled.
    NotReady { reason: String, message: String },
}

/// When a condition is written: the generation it describes, and the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The generation the condition describes.
    pub generation: i64,
    /// Now.
    pub now: Timestamp,
}

/// The condition list of one object, edited in place.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions {
    list: Vec<Condition>,
}

impl Conditions {
    /// Starts from the live conditions so that transition times survive.
    pub fn from_live(list: &[Condition]) -> Self {
        Self {
            list: list.to_vec(),
        }
    }

    /// The edited list, sorted by type so that equal content compares equal.
    pub fn into_vec(mut self) -> Vec<Condition> {
        self.list.sort_by(|a, b| a.type_.cmp(&b.type_));
        self.list
    }

    /// The condition of this type, if present.
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.list.iter().find(|c| c.type_ == type_)
    }

    /// Whether the condition of this type is present with status "True".
    pub fn is_true(&self, type_: &str) -> bool {
        self.get(type_).is_some_and(|c| c.status == "True")
    }

    /// Sets a condition to `status` with `(reason, message)`. `lastTransitionTime` changes only
    /// when the status changes.
    pub fn set(&mut self, type_: &str, status: bool, text: (&str, &str), at: Stamp) {
        let (reason, message) = text;
        let Stamp { generation, now } = at;
        let status = if status { "True" } else { "False" };
        let message = truncate(message, 1024);
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(existing) => {
                if existing.status != status {
                    existing.last_transition_time = Time(now);
                }
                existing.status = status.to_owned();
                existing.reason = reason.to_owned();
                existing.message = message;
                existing.observed_generation = Some(generation);
            }
            None => self.list.push(Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                observed_generation: Some(generation),
                last_transition_time: Time(now),
            }),
        }
    }

    /// Sets a condition to status "Unknown" (same transition-time rule as [`Self::set`]).
    pub fn set_unknown(&mut self, type_: &str, text: (&str, &str), at: Stamp) {
        self.set(type_, false, text, at);
        let now = at.now;
        if let Some(c) = self.list.iter_mut().find(|c| c.type_ == type_)
            && c.status != "Unknown"
        {
            c.status = "Unknown".to_owned();
            c.last_transition_time = Time(now);
        }
    }

    /// Removes a condition (abnormal-true conditions are absent rather than False).
    pub fn remove(&mut self, type_: &str) {
        self.list.retain(|c| c.type_ != type_);
    }

    /// The conditions to write at the first reconcile of a new generation, before any slow
    /// work, so that a new object or spec never looks finished.
    pub fn new_generation(live: &[Condition], generation: i64, now: Timestamp) -> Vec<Condition> {
        let mut conditions = Self::from_live(live);
        conditions.apply_outcome(
            &Outcome::Progressing {
                message: "Reconciling the new spec".into(),
            },
            generation,
            now,
        );
        conditions.into_vec()
    }

    /// Writes Ready, Reconciling and Stalled for an outcome. Domain conditions set before this
    /// call are kept; Ready=True is only written when every condition describes `generation`.
    pub fn apply_outcome(&mut self, outcome: &Outcome, generation: i64, now: Timestamp) {
        let at = Stamp { generation, now };
        match outcome {
            Outcome::Ready { message } => self.ready(message, at),
            Outcome::Progressing { message } => {
                self.remove(types::STALLED);
                self.set(
                    types::RECONCILING,
                    true,
                    (reasons::PROGRESSING, message),
                    at,
                );
                self.set(types::READY, false, (reasons::PROGRESSING, message), at);
            }
            Outcome::Retrying { reason, message } => {
                self.remove(types::STALLED);
                self.set(types::RECONCILING, true, (reasons::RETRYING, message), at);
                self.set(types::READY, false, (reason, message), at);
            }
            Outcome::Stalled { reason, message } => {
                self.remove(types::RECONCILING);
                self.set(types::STALLED, true, (reason, message), at);
                self.set(types::READY, false, (reason, message), at);
            }
            Outcome::NotReady { reason, message } => {
                self.remove(types::RECONCILING);
                self.remove(types::STALLED);
                self.set(types::READY, false, (reason, message), at);
            }
        }
    }

    /// Ready=True, unless a condition still describes an older generation.
    fn ready(&mut self, message: &str, at: Stamp) {
        self.remove(types::RECONCILING);
        self.remove(types::STALLED);
        let stale = self
            .list
            .iter()
            .any(|c| c.type_ != types::READY && c.observed_generation != Some(at.generation));
        if stale {
            let waiting = "Waiting for every condition to observe the current generation";
            self.set(types::READY, false, (reasons::PROGRESSING, waiting), at);
            self.set(
                types::RECONCILING,
                true,
                (reasons::PROGRESSING, waiting),
                at,
            );
        } else {
            self.set(types::READY, true, (reasons::RECONCILED, message), at);
        }
    }
}

/// Cuts a message to at most `max` bytes on a character boundary (the apiserver limit is 32 KiB;
/// long messages help nobody in `kubectl get`).
fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_owned();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| message.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", message.get(..end).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(generation: i64, now: Timestamp) -> Stamp {
        Stamp { generation, now }
    }

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("valid timestamp")
    }

    fn ready(message: &str) -> Outcome {
        Outcome::Ready {
            message: message.into(),
        }
    }

    #[test]
    fn a_resync_with_the_same_outcome_changes_nothing() {
        let mut first = Conditions::default();
        first.apply_outcome(&ready("Connection is Active"), 1, t(0));
        let live = first.into_vec();
        let mut again = Conditions::from_live(&live);
        again.apply_outcome(&ready("Connection is Active"), 1, t(60));
        assert_eq!(again.into_vec(), live);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let mut c = Conditions::default();
        c.set(
            types::GATEWAY_ACTIVE,
            false,
            (reasons::UNREACHABLE, "down"),
            at(1, t(0)),
        );
        c.set(
            types::GATEWAY_ACTIVE,
            false,
            (reasons::TIMEOUT, "slow"),
            at(1, t(10)),
        );
        assert_eq!(
            c.get(types::GATEWAY_ACTIVE)
                .map(|c| c.last_transition_time.0),
            Some(t(0))
        );
        c.set(
            types::GATEWAY_ACTIVE,
            true,
            (reasons::ACTIVE, "up"),
            at(1, t(20)),
        );
        assert_eq!(
            c.get(types::GATEWAY_ACTIVE)
                .map(|c| c.last_transition_time.0),
            Some(t(20))
        );
    }

    #[test]
    fn reconciling_and_stalled_are_never_true_together() {
        let mut c = Conditions::default();
        c.apply_outcome(
            &Outcome::Progressing {
                message: "working".into(),
            },
            1,
            t(0),
        );
        c.apply_outcome(
            &Outcome::Stalled {
                reason: "AlreadyExists".into(),
                message: "taken".into(),
            },
            1,
            t(1),
        );
        assert!(c.is_true(types::STALLED));
        assert!(c.get(types::RECONCILING).is_none());
        c.apply_outcome(
            &Outcome::Retrying {
                reason: "Throttled".into(),
                message: "429".into(),
            },
            2,
            t(2),
        );
        assert!(c.is_true(types::RECONCILING));
        assert!(c.get(types::STALLED).is_none());
        assert!(!c.is_true(types::READY));
    }

    #[test]
    fn ready_is_not_true_while_a_condition_describes_an_older_generation() {
        let mut c = Conditions::default();
        c.set(
            types::GATEWAY_ACTIVE,
            true,
            (reasons::ACTIVE, "up"),
            at(1, t(0)),
        );
        c.apply_outcome(&ready("ok"), 2, t(1));
        assert!(!c.is_true(types::READY));
        assert!(c.is_true(types::RECONCILING));
        c.set(
            types::GATEWAY_ACTIVE,
            true,
            (reasons::ACTIVE, "up"),
            at(2, t(2)),
        );
        c.apply_outcome(&ready("ok"), 2, t(3));
        assert!(c.is_true(types::READY));
        assert!(c.get(types::RECONCILING).is_none());
    }

    #[test]
    fn a_not_ready_outcome_is_neither_reconciling_nor_stalled() {
        let mut c = Conditions::default();
        c.apply_outcome(
            &Outcome::Progressing {
                message: "first".into(),
            },
            1,
            t(0),
        );
        c.apply_outcome(
            &Outcome::NotReady {
                reason: reasons::GATEWAY_INACTIVE.into(),
                message: "Unreachable".into(),
            },
            1,
            t(1),
        );
        let ready = c.get(types::READY).expect("Ready present");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reasons::GATEWAY_INACTIVE)
        );
        assert!(c.get(types::RECONCILING).is_none() && c.get(types::STALLED).is_none());
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(600);
        let cut = truncate(&message, 1023);
        assert!(cut.len() <= 1023 + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
