//! Step "validate": the project's ARM identity and endpoint from the spec, and what the
//! installation allows (hosts that will receive the identity's tokens, the identity itself),
//! checked before any Secret is read or any token is requested.

use foundry_gateway_api::FoundryProject;
use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::project::FoundryProjectSpec;
use foundry_gateway_client::connections::ProjectResourceId;

use super::{DEFAULT_AUTHORITY_HOST, DEFAULT_MANAGEMENT_ENDPOINT};
use crate::context::Context;
use crate::failure::Failure;

/// ARM id and data-plane endpoint of a spec.
pub fn project_identity(spec: &FoundryProjectSpec) -> Result<(ProjectResourceId, String), Failure> {
    let invalid = |m: String| Failure::permanent(reasons::INVALID_SPEC, m);
    let id = match &spec.arm_id {
        Some(arm_id) => ProjectResourceId::parse(arm_id)
            .map_err(|e| invalid(format!("spec.armId is not a project id: {}", e.message())))?,
        None => ProjectResourceId::new(
            spec.subscription_id.clone().unwrap_or_default(),
            spec.resource_group.clone().unwrap_or_default(),
            spec.account.clone().unwrap_or_default(),
            spec.project.clone().unwrap_or_default(),
        )
        .map_err(|e| invalid(format!("the project fields are not valid: {}", e.message())))?,
    };
    let endpoint = spec.endpoint.clone().unwrap_or_else(|| {
        format!(
            "https://{}.services.ai.azure.com/api/projects/{}",
            id.account, id.project
        )
    });
    Ok((id, endpoint))
}

pub(super) fn spec_fingerprint(project: &FoundryProject) -> String {
    format!(
        "{}:{}",
        project.metadata.uid.as_deref().unwrap_or(""),
        serde_json::to_string(&project.spec).unwrap_or_default()
    )
}

/// What the installation allows: the hosts that will receive this identity's tokens and the
/// identity itself. Checked before any Secret is read or any token is requested.
pub(super) fn check_policy(
    ctx: &Context,
    namespace: &str,
    spec: &FoundryProjectSpec,
    endpoint: &str,
) -> Result<(), Failure> {
    let policy = &ctx.policy;
    let host = |e: String| Failure::permanent(reasons::HOST_NOT_ALLOWED, e);
    policy
        .foundry_hosts
        .check("spec.endpoint", endpoint)
        .map_err(host)?;
    policy
        .arm_hosts
        .check(
            "spec.managementEndpoint",
            spec.management_endpoint
                .as_deref()
                .unwrap_or(DEFAULT_MANAGEMENT_ENDPOINT),
        )
        .map_err(host)?;
    policy
        .authority_hosts
        .check(
            "spec.authorityHost",
            spec.authority_host
                .as_deref()
                .unwrap_or(DEFAULT_AUTHORITY_HOST),
        )
        .map_err(host)?;
    if let Some(mi) = &spec.identity.managed_identity {
        policy
            .managed_identities
            .check(namespace, mi.client_id.as_deref())
            .map_err(|e| Failure::permanent(reasons::IDENTITY_NOT_ALLOWED, e))?;
    }
    if spec.identity.operator_default.is_some() && !ctx.settings.allow_operator_default_identity {
        return Err(Failure::permanent(
            reasons::IDENTITY_NOT_ALLOWED,
            "identity.operatorDefault is not allowed by this installation (flag --allow-operator-default-identity, Helm value allowOperatorDefaultIdentity); use workloadIdentity or clientSecret",
        ));
    }
    Ok(())
}
