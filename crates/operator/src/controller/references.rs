//! Reading what an object references in its own namespace, with the grace period of a missing
//! Secret or ConfigMap key ([`missing`]): transient (Reconciling) for `--secret-grace`, then
//! permanent (Stalled).

use foundry_gateway_api::conditions::reasons;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::context::Context;
use crate::failure::Failure;
use crate::keys::{ObjectKey, RefKind, RetryKey};

/// Reads one key of a Secret of `namespace`; returns the value and the Secret's resourceVersion.
/// A missing Secret or key is transient during the grace period, then permanent.
pub async fn read_secret_key(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
    owner_key: &ObjectKey,
) -> Result<(String, String), Failure> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api.get_opt(name).await?;
    let missing_key = RetryKey::reference(owner_key, RefKind::Secret, name, key);
    let value = secret.as_ref().and_then(|s| {
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .or_else(|| s.string_data.as_ref().and_then(|d| d.get(key).cloned()))
    });
    match value {
        Some(value) => {
            ctx.found(&missing_key);
            let version = secret
                .and_then(|s| s.metadata.resource_version)
                .unwrap_or_default();
            Ok((value, version))
        }
        None => {
            let what = if secret.is_some() {
                format!("Secret {name} has no key {key:?}")
            } else {
                format!("Secret {name} does not exist in namespace {namespace}")
            };
            Err(missing(ctx, &missing_key, reasons::SECRET_NOT_FOUND, &what))
        }
    }
}

/// The failure of a referenced key that is missing (`what` says which and why): transient
/// (Reconciling) during `--secret-grace` since it was first found missing, then permanent
/// (Stalled). [`Context::found`] ends the grace period when the key appears.
pub fn missing(ctx: &Context, key: &RetryKey, reason: &str, what: &str) -> Failure {
    if ctx.missing_past_grace(key) {
        Failure::permanent(reason, format!("{what}; create it or fix the reference"))
    } else {
        Failure::Transient {
            reason: reason.to_owned(),
            message: format!("{what}; waiting for it"),
            retry_after: None,
        }
    }
}
