//! The steps of a controller's pipeline, and a failure that says which step it came from.
//!
//! Every driver reads `resolve → validate → desired → sync → probe/verify → report`; a step
//! returns its typed value or a [`Failed`], which carries the [`Step`] and converts into the
//! [`Failure`] that status reports. Logs name the step, so "why did it go Inactive" and "where
//! is the PUT decided" are one hop away.

use std::fmt;

use crate::failure::Failure;

/// One step of a pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Read what the object references (project, Secrets, ConfigMaps, connection).
    Resolve,
    /// Check what the CRD schema cannot.
    Validate,
    /// Build what Foundry should hold.
    Desired,
    /// Read Foundry and write what differs (or, under Observe, compare).
    Sync,
    /// Probe the gateway.
    Probe,
    /// Ask the agent a question.
    Verify,
    /// Write status.
    Report,
    /// Delete (or leave) what the object made.
    Cleanup,
}

impl Step {
    /// The step's name in logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Validate => "validate",
            Self::Desired => "desired",
            Self::Sync => "sync",
            Self::Probe => "probe",
            Self::Verify => "verify",
            Self::Report => "report",
            Self::Cleanup => "cleanup",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A failure of one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    /// Where it failed.
    pub step: Step,
    /// What status says.
    pub failure: Failure,
}

impl From<Failed> for Failure {
    fn from(failed: Failed) -> Self {
        failed.failure
    }
}

/// Tags the error of a step's result with the step.
pub trait AtStep<T> {
    /// The result, its error tagged with `step`.
    fn at(self, step: Step) -> Result<T, Failed>;
}

impl<T, E: Into<Failure>> AtStep<T> for Result<T, E> {
    fn at(self, step: Step) -> Result<T, Failed> {
        self.map_err(|e| Failed {
            step,
            failure: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_step_keeps_its_step_and_converts_into_the_status_failure() {
        let result: Result<(), Failure> = Err(Failure::permanent("InvalidSpec", "bad"));
        let failed = result.at(Step::Validate).expect_err("failed");
        assert_eq!(failed.step, Step::Validate);
        assert_eq!(failed.step.to_string(), "validate");
        assert_eq!(
            Failure::from(failed),
            Failure::permanent("InvalidSpec", "bad")
        );
    }
}
