//! Status writes: one server-side apply of the whole status under the operator's field manager.

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
        &PatchParams::apply(crate::context::MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
