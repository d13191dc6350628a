//! How a failed step ends a reconcile: permanent failures stall the object until a person acts,
//! transient ones retry with per-object backoff that never undercuts the server's hint.

use std::time::Duration;

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_client::ErrorKind;

use crate::status::Outcome;

/// The classified end of a failed reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Retried with backoff; the object shows Reconciling.
    Transient {
        /// Condition reason.
        reason: String,
        /// What happened, for a person.
        message: String,
        /// The server's retry hint.
        retry_after: Option<Duration>,
    },
    /// Waits for a change; the object shows Stalled.
    Permanent {
        /// Condition reason.
        reason: String,
        /// What to fix.
        message: String,
    },
    /// Waits for another object (a project or connection that is not ready); retried slowly,
    /// neither Reconciling nor Stalled.
    Waiting {
        /// Condition reason.
        reason: String,
        /// What it waits for.
        message: String,
    },
}

impl Failure {
    /// A transient failure.
    pub fn transient(reason: &str, message: impl Into<String>) -> Self {
        Self::Transient {
            reason: reason.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: &str, message: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// Classifies a Foundry client error raised while doing `what` (e.g. "create the Foundry
    /// connection").
    pub fn from_foundry(what: &str, error: &foundry_gateway_client::Error) -> Self {
        let status = error.status();
        let detail = match (status, error.code()) {
            (Some(s), Some(code)) => format!("HTTP {s} {code}: {}", error.message()),
            (Some(s), None) => format!("HTTP {s}: {}", error.message()),
            _ => error.message().to_owned(),
        };
        let message = format!("Could not {what}: {detail}");
        match status {
            Some(401 | 403) => Self::permanent(
                reasons::UNAUTHORIZED,
                format!(
                    "{message}. Check the FoundryProject identity and its role assignments on the project"
                ),
            ),
            Some(400 | 422) => Self::permanent(reasons::REJECTED_BY_FOUNDRY, message),
            _ if error.kind() == ErrorKind::Credential && !error.is_retryable() => Self::permanent(
                reasons::UNAUTHORIZED,
                format!("{message}. Check the FoundryProject identity (client id, tenant, secret)"),
            ),
            _ if error.kind() == ErrorKind::InvalidInput => {
                Self::permanent(reasons::INVALID_SPEC, message)
            }
            _ => Self::Transient {
                reason: error.label().to_owned(),
                message,
                retry_after: error.retry_after(),
            },
        }
    }

    /// A stable label for metrics.
    pub fn label(&self) -> &str {
        match self {
            Self::Transient { reason, .. }
            | Self::Permanent { reason, .. }
            | Self::Waiting { reason, .. } => reason,
        }
    }

    /// The status outcome of this failure.
    pub fn outcome(&self) -> Outcome {
        match self.clone() {
            Self::Transient {
                reason, message, ..
            } => Outcome::Retrying { reason, message },
            Self::Permanent { reason, message } => Outcome::Stalled { reason, message },
            Self::Waiting { reason, message } => Outcome::NotReady { reason, message },
        }
    }
}

impl From<kube::Error> for Failure {
    fn from(error: kube::Error) -> Self {
        Self::transient(
            "KubernetesApiError",
            format!("Kubernetes API call failed: {error}"),
        )
    }
}
