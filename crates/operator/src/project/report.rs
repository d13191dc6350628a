//! Step "report" of the FoundryProject controller: the status a reconcile leaves, a pure
//! function of the object and what the earlier steps produced.

use std::sync::Arc;

use foundry_gateway_api::{FoundryProject, FoundryProjectStatus};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{ResolvedProject, project_identity};
use crate::context::REQUESTED_AT_ANNOTATION;
use crate::controller::Failed;
use crate::status::{Conditions, Outcome};

/// The status after a reconcile that authenticated (`Ok`) or failed at some step.
pub fn status(
    project: &FoundryProject,
    result: &Result<Arc<ResolvedProject>, Failed>,
    now: Timestamp,
) -> FoundryProjectStatus {
    let generation = project.metadata.generation.unwrap_or(0);
    let mut conditions = Conditions::from_live(
        project
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default(),
    );
    let outcome = match result {
        Ok(resolved) => Outcome::Ready {
            message: format!("Authenticated to project {}", resolved.resource_id.project),
        },
        Err(failed) => failed.failure.outcome(),
    };
    conditions.apply_outcome(&outcome, generation, now);
    let (arm_id, endpoint) = match project_identity(&project.spec) {
        Ok((id, endpoint)) => (Some(id.to_string()), Some(endpoint)),
        Err(_) => (None, None),
    };
    FoundryProjectStatus {
        observed_generation: Some(generation),
        conditions: conditions.into_vec(),
        arm_id,
        endpoint,
        last_handled_reconcile_at: project.annotations().get(REQUESTED_AT_ANNOTATION).cloned(),
    }
}
