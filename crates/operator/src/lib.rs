//! The Foundry gateway operator: controllers for FoundryProject, GatewayConnection and
//! PromptAgent, an admin server with metrics and health endpoints, and Lease leader election.

#![warn(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod admin;
pub mod agent;
pub mod agent_definition;
pub mod backoff;
pub mod connection;
pub mod context;
pub mod digest;
pub mod failure;
pub mod leader;
pub mod metrics;
pub mod ownership;
pub mod policy;
pub mod probes;
pub mod project;
pub mod reconcile;
pub mod run;
pub mod settings;
pub mod status;
pub mod telemetry;

use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes `status` with server-side apply under the operator's field manager. The operator owns
/// every status field, so what it leaves out is removed.
pub async fn apply_status<K>(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &impl Serialize,
) -> kube::Result<()>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(context::MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
