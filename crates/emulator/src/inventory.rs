//! The project's connections and deployments as the data plane shows them (reference §2.7;
//! SDK 2.10 `project.connections` and `project.deployments`). Both are Azure.Core APIs:
//! api-version `v1`, lists as `{ "value", "nextLink" }`, errors in the Azure.Core envelope.
//!
//! A gateway connection's models appear as deployments named `<connection>/<model>` with
//! `connectionName` set: the name an agent definition uses (reference §2.3), and what the
//! portal shows once a gateway connection exists. Models of a discovery connection come from
//! its list endpoint, cached like a response's model check caches them.

use std::sync::Arc;

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::agents::check_api_version;
use crate::app::App;
use crate::connection::{ModelSource, is_gateway_category, string_metadata};
use crate::errors::{ApiError, HandlerResult, ok_json};
use crate::responses::{resolve_connection, with_connection};
use crate::routes::DataOp;
use crate::state::{Scope, Store, StoredConnection};

fn not_found(what: &str, name: &str) -> ApiError {
    ApiError::arm(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} '{name}' was not found in this project."),
    )
}

fn query<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn prop<'a>(c: &'a StoredConnection, key: &str) -> &'a str {
    c.properties
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A data-plane `Connection`. `type` is the ARM category and `credentials.type` the ARM
/// `authType`: the SDK's `ConnectionType` and `CredentialType` enums are those names
/// (`ApiKey`, `AAD`, `CustomKeys`, `None`, …) and both are open strings, so `ModelGateway`,
/// `ApiManagement`, `OAuth2` and `ProjectManagedIdentity` pass through unchanged. No
/// connection is a default one: a project's default connections are those Foundry creates
/// itself (for instance its Azure OpenAI one), never a gateway. `id` is the ARM id of the
/// connection, under the account for an account connection.
fn connection_json(
    store: &Store,
    project: &str,
    (c, scope): (&StoredConnection, Scope),
    with_secrets: bool,
) -> Value {
    let parent = store
        .projects
        .iter()
        .find(|p| p.id.project.eq_ignore_ascii_case(project))
        .map(|p| match scope {
            Scope::Project => p.id.arm_id(),
            Scope::Account => p.id.account_arm_id(),
        })
        .unwrap_or_default();
    let metadata: Map<String, Value> = string_metadata(&c.properties)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let auth_type = prop(c, "authType");
    let mut credentials = json!({ "type": auth_type });
    // With credentials, only what the SDK can read: `ApiKeyCredentials.api_key` (wire `key`).
    // The SDK has no credential model for OAuth2 or an identity, so nothing else is returned.
    if with_secrets
        && auth_type == "ApiKey"
        && let Some(key) = c
            .credentials
            .as_ref()
            .and_then(|v| v.get("key"))
            .and_then(Value::as_str)
    {
        credentials["key"] = json!(key);
    }
    json!({
        "name": c.name,
        "id": format!("{parent}/connections/{}", c.name),
        "type": prop(c, "category"),
        "target": prop(c, "target"),
        "isDefault": false,
        "credentials": credentials,
        "metadata": metadata,
    })
}

/// Connection operations of one project (synchronous: the store is enough). The project sees
/// its own connections and those of its account.
pub(crate) fn connections(
    store: &Store,
    project: &str,
    op: &DataOp,
    q: &[(String, String)],
) -> HandlerResult {
    check_api_version(q)?;
    match op {
        DataOp::ConnectionsList => {
            let kind = query(q, "connectionType");
            let default_only =
                query(q, "defaultConnection").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            let mut visible = store.visible_connections(project);
            visible.sort_by_key(|(c, _)| c.name.to_ascii_lowercase());
            let value: Vec<Value> = visible
                .into_iter()
                .filter(|(c, _)| kind.is_none_or(|k| prop(c, "category").eq_ignore_ascii_case(k)))
                .filter(|_| !default_only)
                .map(|c| connection_json(store, project, c, false))
                .collect();
            Ok(ok_json(&json!({ "value": value })))
        }
        DataOp::ConnectionsGet(name) | DataOp::ConnectionsGetWithCredentials(name) => {
            let c = store
                .visible_connection(project, name)
                .ok_or_else(|| not_found("Connection", name))?;
            let with_secrets = matches!(op, DataOp::ConnectionsGetWithCredentials(_));
            Ok(ok_json(&connection_json(store, project, c, with_secrets)))
        }
        _ => Err(ApiError::not_found("The requested resource was not found.")),
    }
}

/// One model of a gateway connection: its deployment name and what the connection says of it.
#[derive(Debug, Clone)]
struct GatewayModel {
    connection: String,
    deployment: String,
    model: String,
    version: String,
    format: String,
}

impl GatewayModel {
    /// A `ModelDeployment`. The fields a gateway model has no value for stay empty rather than
    /// invented: `capabilities` is unknown and a gateway model has no Azure `sku`.
    fn to_json(&self) -> Value {
        json!({
            "type": "ModelDeployment",
            "name": format!("{}/{}", self.connection, self.deployment),
            "modelName": self.model,
            "modelVersion": self.version,
            "modelPublisher": self.format,
            "capabilities": {},
            "connectionName": self.connection,
        })
    }
}

/// The entries of a static `metadata.models` list (already validated when it was stored).
fn static_models(c: &StoredConnection) -> Vec<GatewayModel> {
    let text = string_metadata(&c.properties)
        .unwrap_or_default()
        .into_iter()
        .find(|(k, _)| k == "models")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let list: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
    list.iter()
        .filter_map(|m| {
            let deployment = m.get("name")?.as_str()?.to_string();
            let model = m.pointer("/properties/model");
            let field = |k: &str| {
                model
                    .and_then(|v| v.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Some(GatewayModel {
                connection: c.name.clone(),
                model: Some(field("name"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| deployment.clone()),
                version: field("version"),
                format: field("format"),
                deployment,
            })
        })
        .collect()
}

/// Deployment names of a discovery connection: the cache, else the gateway's list endpoint
/// (cached afterwards). A gateway that cannot be asked contributes nothing, so that one
/// broken gateway does not hide the others' models.
async fn discovered_models(app: &App, project: &str, connection: &str) -> Vec<GatewayModel> {
    let resolved = resolve_connection(&app.store(), project, connection);
    let resolved = match resolved {
        Ok(Some(r)) => r,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(connection, error = %e.message, "Skipped connection in deployments");
            return Vec::new();
        }
    };
    let ModelSource::Discovery(discovery) = &resolved.target.meta.models else {
        return Vec::new();
    };
    let names = match resolved.known.clone() {
        Some(names) => names,
        None => match app
            .gateway
            .list_models(&resolved.target, discovery, &app.control)
            .await
        {
            Ok(names) => {
                with_connection(app, project, connection, resolved.generation, |c| {
                    c.discovered = Some(names.clone());
                });
                names
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(connection, error = %message, "Skipped connection in deployments");
                Vec::new()
            }
        },
    };
    let mut names: Vec<String> = names;
    for extra in &resolved.confirmed {
        if !names.contains(extra) {
            names.push(extra.clone());
        }
    }
    names
        .into_iter()
        .map(|n| GatewayModel {
            connection: resolved.target.connection.clone(),
            model: n.clone(),
            version: String::new(),
            format: String::new(),
            deployment: n,
        })
        .collect()
}

/// Every gateway model of the project, connection by connection (in name order).
async fn gateway_models(app: &App, project: &str) -> Result<Vec<GatewayModel>, ApiError> {
    let (mut models, discovery): (Vec<GatewayModel>, Vec<String>) = {
        let store = app.store();
        if !store
            .projects
            .iter()
            .any(|p| p.id.project.eq_ignore_ascii_case(project))
        {
            return Err(ApiError::not_found(format!(
                "Project '{project}' not found."
            )));
        }
        let mut models = Vec::new();
        let mut discovery = Vec::new();
        for (c, _) in store.visible_connections(project) {
            if !is_gateway_category(prop(c, "category")) {
                continue;
            }
            if string_metadata(&c.properties)
                .unwrap_or_default()
                .iter()
                .any(|(k, _)| k == "models")
            {
                models.extend(static_models(c));
            } else {
                discovery.push(c.name.clone());
            }
        }
        (models, discovery)
    };
    for name in discovery {
        models.extend(discovered_models(app, project, &name).await);
    }
    models.sort_by(|a, b| {
        (a.connection.to_ascii_lowercase(), &a.deployment)
            .cmp(&(b.connection.to_ascii_lowercase(), &b.deployment))
    });
    Ok(models)
}

/// `GET /deployments` and `GET /deployments/{name}`.
pub(crate) async fn deployments(
    app: &Arc<App>,
    project: &str,
    op: &DataOp,
    q: &[(String, String)],
) -> HandlerResult {
    check_api_version(q)?;
    let models = gateway_models(app, project).await?;
    match op {
        DataOp::DeploymentsList => {
            let eq =
                |filter: Option<&str>, v: &str| filter.is_none_or(|f| f.eq_ignore_ascii_case(v));
            let (publisher, model, kind) = (
                query(q, "modelPublisher"),
                query(q, "modelName"),
                query(q, "deploymentType"),
            );
            let value: Vec<Value> = models
                .iter()
                .filter(|m| {
                    eq(publisher, &m.format) && eq(model, &m.model) && eq(kind, "ModelDeployment")
                })
                .map(GatewayModel::to_json)
                .collect();
            Ok(ok_json(&json!({ "value": value })))
        }
        DataOp::DeploymentsGet(name) => {
            let found = name.split_once('/').and_then(|(conn, dep)| {
                models
                    .iter()
                    .find(|m| m.connection.eq_ignore_ascii_case(conn) && m.deployment == dep)
            });
            found
                .map(|m| ok_json(&m.to_json()))
                .ok_or_else(|| not_found("Deployment", name))
        }
        _ => Err(ApiError::not_found("The requested resource was not found.")),
    }
}
