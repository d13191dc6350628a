//! Step "resolve": the FoundryProject the connection belongs to, and the Secret values its spec
//! refers to (all in the object's namespace).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use foundry_gateway_api::common::SecretKeyRef;
use foundry_gateway_api::{GatewayConnection, References};
use foundry_gateway_client::SecretString;

use super::build::ResolvedSecrets;
use super::start::Start;
use crate::context::Context;
use crate::controller::{AtStep, Failed, ObjectKey, Step};
use crate::failure::Failure;
use crate::project::{self, ResolvedProject};

/// What the object refers to, read.
#[derive(Debug)]
pub struct Resolved {
    /// The project, with its clients.
    pub project: Arc<ResolvedProject>,
    /// The Secret values of the spec.
    pub secrets: ResolvedSecrets,
}

/// Resolves the project (a project that is missing or not usable is waited for) and reads the
/// Secrets.
pub async fn resolve(ctx: &Context, start: &Start<'_>) -> Result<Resolved, Failed> {
    let project = project::usable(ctx, &start.key.namespace, &start.gc.spec.project_ref.name)
        .await
        .at(Step::Resolve)?;
    let secrets = secrets(ctx, start.gc, &start.key).await.at(Step::Resolve)?;
    Ok(Resolved { project, secrets })
}

/// Reads every Secret key the object references ([`References::secret_refs`], the list the
/// watches use too), then hands each field its value.
async fn secrets(
    ctx: &Context,
    gc: &GatewayConnection,
    key: &ObjectKey,
) -> Result<ResolvedSecrets, Failure> {
    let mut read: HashMap<(&str, &str), SecretString> = HashMap::new();
    for used in gc.secret_refs() {
        let (name, secret_key) = (used.secret.name.as_str(), used.secret.key.as_str());
        if let Entry::Vacant(slot) = read.entry((name, secret_key)) {
            let (value, _) =
                project::read_secret_key(ctx, &key.namespace, name, secret_key, key).await?;
            slot.insert(value.into());
        }
    }
    let value = |r: &SecretKeyRef| read.get(&(r.name.as_str(), r.key.as_str())).cloned();
    let spec = &gc.spec;
    Ok(ResolvedSecrets {
        api_key: spec
            .auth
            .api_key
            .as_ref()
            .and_then(|a| value(&a.secret_ref)),
        oauth_client_secret: spec
            .auth
            .oauth2
            .as_ref()
            .and_then(|o| value(&o.client_secret_ref)),
        header_values: spec
            .custom_headers
            .iter()
            .filter_map(|h| Some((h.name.clone(), value(h.value_from.as_ref()?)?)))
            .collect(),
    })
}
