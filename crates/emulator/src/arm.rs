//! ARM connections (reference §1): PUT, GET, PATCH, DELETE and LIST of a project's
//! connections (`accounts/{a}/projects/{p}/connections`, `ProjectConnections_*`) and of an
//! account's (`accounts/{a}/connections`, `AccountConnections_*`; the 2026-09-01 spec). Both
//! scopes share the body, validation, envelopes and api-versions; only the parent, the resource
//! type and the operation names differ.

use std::collections::{BTreeMap, BTreeSet};

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::connection::{ValidConnection, validate_body, validate_name, validate_properties};
use crate::errors::{ApiError, HandlerResult, empty, ok_json};
use crate::routes::ArmOp;
use crate::state::{Scope, Store, StoredConnection};
use crate::util::{rfc3339_millis, unix_millis};

/// api-versions of `Microsoft.CognitiveServices` that have project and account connections and
/// accept `ApiManagement`/`ModelGateway` connections (the category is an extensible string, so
/// the versions before those names entered its enum accept them too: the samples' Bicep deploys
/// gateway connections with 2025-04-01-preview). Sources, all in the shared reference folder:
///
/// - `foundry-api.md` §1.2 (bicep-types-az list): 2025-04-01-preview through 2026-07-01;
///   2025-04-01-preview and 2025-12-01 also as copied schemas, 2025-04-01-preview, 2025-09-01,
///   2026-01-15-preview, 2026-05-01 and 2026-07-01 also by account-connection examples, and
///   2025-09-01 and 2025-10-01-preview by project-connection examples;
/// - `README.md`: 2026-07-15-preview (project-connection examples), 2026-09-01 (the newest GA,
///   copied spec, with `AccountConnections_*` and `ProjectConnections_*`) and
///   2026-09-15-preview (named as existing upstream, not copied).
///
/// Any other value is refused as ARM refuses it (400 `InvalidApiVersionParameter`).
pub(crate) const ARM_API_VERSIONS: &[&str] = &[
    "2025-04-01-preview",
    "2025-06-01",
    "2025-07-01-preview",
    "2025-09-01",
    "2025-10-01-preview",
    "2025-12-01",
    "2026-01-15-preview",
    "2026-03-01",
    "2026-03-15-preview",
    "2026-05-01",
    "2026-05-15-preview",
    "2026-07-01",
    "2026-07-15-preview",
    "2026-09-01",
    "2026-09-15-preview",
];

const PROJECT_RESOURCE_TYPE: &str = "Microsoft.CognitiveServices/accounts/projects/connections";
const ACCOUNT_RESOURCE_TYPE: &str = "Microsoft.CognitiveServices/accounts/connections";

fn resource_type(scope: Scope) -> &'static str {
    match scope {
        Scope::Project => PROJECT_RESOURCE_TYPE,
        Scope::Account => ACCOUNT_RESOURCE_TYPE,
    }
}

/// Checks the mandatory `api-version` query parameter; the refusal names the resource type.
fn check_scoped_api_version(query: &[(String, String)], scope: Scope) -> Result<String, ApiError> {
    match query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
    {
        None => Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some((_, v)) if ARM_API_VERSIONS.contains(&v.as_str()) => Ok(v.clone()),
        Some((_, v)) => Err(ApiError::arm(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid for resource type '{}'. The supported api-versions are '{}'.",
                resource_type(scope),
                ARM_API_VERSIONS.join(", ")
            ),
        )),
    }
}

/// Parameters of one ARM request.
#[derive(Debug)]
pub(crate) struct ArmRequest<'a> {
    pub(crate) subscription: &'a str,
    pub(crate) resource_group: &'a str,
    pub(crate) account: &'a str,
    /// `None` for the account's own connections.
    pub(crate) project: Option<&'a str>,
    pub(crate) connection: Option<&'a str>,
    pub(crate) op: &'a ArmOp,
    pub(crate) query: &'a [(String, String)],
    pub(crate) body: &'a [u8],
    pub(crate) caller: &'a Caller,
    /// `scheme://host[:port]` the client used, for `nextLink`.
    pub(crate) origin: &'a str,
    pub(crate) path: &'a str,
    pub(crate) page_size: usize,
}

/// The parent of the connections a request is about: a project or an account.
struct Parent<'a> {
    scope: Scope,
    /// The parent's ARM id.
    arm_id: String,
    /// `{account}/{project}` or `{account}`, as ARM's not-found messages name the parent.
    names: String,
    resource_group: String,
    /// The project, for log lines.
    label: String,
    connections: &'a mut BTreeMap<String, StoredConnection>,
}

/// Serves one ARM request against the store.
pub(crate) fn handle(store: &mut Store, r: &ArmRequest<'_>) -> HandlerResult {
    let scope = if r.project.is_some() {
        Scope::Project
    } else {
        Scope::Account
    };
    if *r.op == ArmOp::MethodNotAllowed {
        return Err(ApiError::arm(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The HTTP method is not supported for this resource.",
        ));
    }
    let api_version = check_scoped_api_version(r.query, scope)?;
    let parent = match r.project {
        Some(project) => store
            .arm_project(r.subscription, r.resource_group, r.account, project)
            .map(|p| Parent {
                scope,
                arm_id: p.id.arm_id(),
                names: format!("{}/{}", p.id.account, p.id.project),
                resource_group: p.id.resource_group.clone(),
                label: p.id.project.clone(),
                connections: &mut p.connections,
            }),
        None => store
            .arm_account(r.subscription, r.resource_group, r.account)
            .map(|a| Parent {
                scope,
                arm_id: a.id.account_arm_id(),
                names: a.id.account.clone(),
                resource_group: a.id.resource_group.clone(),
                label: format!("account {}", a.id.account),
                connections: &mut a.connections,
            }),
    };
    let Some(mut parent) = parent else {
        let mut parent = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}",
            r.subscription, r.resource_group, r.account
        );
        if let Some(project) = r.project {
            parent.push_str(&format!("/projects/{project}"));
        }
        return Err(ApiError::arm(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!(
                "Failed to perform the operation on resources of type '{}', because the parent resource '{parent}' could not be found.",
                resource_type(scope)
            ),
        ));
    };
    match (r.op, r.connection) {
        (ArmOp::List, _) => list(&parent, r, &api_version),
        (ArmOp::Create, Some(name)) => put(&mut parent, name, r),
        (ArmOp::Get, Some(name)) => {
            let c = find(&parent, name)?;
            Ok(ok_json(&resource_json(&parent, c)))
        }
        (ArmOp::Update, Some(name)) => patch(&mut parent, name, r),
        (ArmOp::Delete, Some(name)) => {
            if parent
                .connections
                .remove(&name.to_ascii_lowercase())
                .is_some()
            {
                tracing::info!(connection = name, parent = %parent.label, "Deleted connection");
                Ok(empty(StatusCode::OK))
            } else {
                Ok(empty(StatusCode::NO_CONTENT))
            }
        }
        _ => Err(ApiError::arm(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The resource path is not known.",
        )),
    }
}

fn find<'a>(parent: &'a Parent<'_>, name: &str) -> Result<&'a StoredConnection, ApiError> {
    parent
        .connections
        .get(&name.to_ascii_lowercase())
        .ok_or_else(|| not_found(parent, name))
}

fn not_found(parent: &Parent<'_>, name: &str) -> ApiError {
    ApiError::arm(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{}/{}/{name}' under resource group '{}' was not found.",
            resource_type(parent.scope),
            parent.names,
            parent.resource_group
        ),
    )
}

fn parse_json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_content(format!(
            "The request content was invalid and could not be deserialized: {e}."
        ))
    })
}

fn put(parent: &mut Parent<'_>, name: &str, r: &ArmRequest<'_>) -> HandlerResult {
    validate_name(name).map_err(ApiError::invalid_content)?;
    let body = parse_json_body(r.body)?;
    let valid = validate_body(&body).map_err(ApiError::invalid_content)?;
    store_connection(parent, name, valid, r.caller, true)
}

fn patch(parent: &mut Parent<'_>, name: &str, r: &ArmRequest<'_>) -> HandlerResult {
    let existing = find(parent, name)?.clone();
    let patch_props = if r.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match parse_json_body(r.body)? {
            Value::Object(mut m) => match m.remove("properties") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(p)) => p,
                Some(_) => return Err(ApiError::invalid_content("'properties' must be an object")),
            },
            _ => {
                return Err(ApiError::invalid_content(
                    "the request body must be a JSON object",
                ));
            }
        }
    };
    if patch_props.is_empty() {
        return Ok(ok_json(&resource_json(parent, &existing)));
    }
    // Fields in the patch replace the stored ones; credentials stay unless replaced.
    let mut merged = existing.properties.clone();
    if let Some(c) = &existing.credentials {
        merged.insert("credentials".into(), c.clone());
    }
    for (k, v) in patch_props {
        merged.insert(k, v);
    }
    let valid = validate_properties(merged).map_err(ApiError::invalid_content)?;
    store_connection(parent, &existing.name, valid, r.caller, false)
}

fn store_connection(
    parent: &mut Parent<'_>,
    name: &str,
    valid: ValidConnection,
    caller: &Caller,
    created_now: bool,
) -> HandlerResult {
    let now = unix_millis();
    let key = name.to_ascii_lowercase();
    let previous = parent.connections.get(&key);
    let stored = StoredConnection {
        // ARM keeps the casing of the first write.
        name: previous.map_or_else(|| name.to_string(), |p| p.name.clone()),
        properties: valid.properties,
        credentials: valid.credentials,
        created_ms: previous.map_or(now, |p| p.created_ms),
        modified_ms: now,
        created_by: previous.map_or_else(|| caller.subject.clone(), |p| p.created_by.clone()),
        created_by_type: previous.map_or(caller.kind, |p| p.created_by_type),
        modified_by: caller.subject.clone(),
        modified_by_type: caller.kind,
        generation: previous.map_or(1, |p| p.generation + 1),
        discovered: None,
        confirmed: BTreeSet::new(),
    };
    let existed = previous.is_some();
    let json = resource_json(parent, &stored);
    parent.connections.insert(key, stored);
    let verb = if existed || !created_now {
        "Updated connection"
    } else {
        "Created connection"
    };
    tracing::info!(connection = name, parent = %parent.label, "{verb}");
    Ok(ok_json(&json))
}

/// The resource as ARM returns it: never with credentials.
fn resource_json(parent: &Parent<'_>, c: &StoredConnection) -> Value {
    json!({
        "id": format!("{}/connections/{}", parent.arm_id, c.name),
        "name": c.name,
        "type": resource_type(parent.scope),
        "properties": Value::Object(c.properties.clone()),
        "systemData": {
            "createdAt": rfc3339_millis(c.created_ms),
            "createdBy": c.created_by,
            "createdByType": c.created_by_type,
            "lastModifiedAt": rfc3339_millis(c.modified_ms),
            "lastModifiedBy": c.modified_by,
            "lastModifiedByType": c.modified_by_type,
        },
    })
}

fn list(parent: &Parent<'_>, r: &ArmRequest<'_>, api_version: &str) -> HandlerResult {
    let q = |k: &str| {
        r.query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let category = q("category").filter(|s| !s.is_empty());
    let target = q("target").filter(|s| !s.is_empty());
    let skip = q("$skipToken").map(str::to_ascii_lowercase);
    let matching = parent.connections.iter().filter(|(key, c)| {
        skip.as_deref().is_none_or(|s| key.as_str() > s)
            && category.is_none_or(|cat| {
                c.properties
                    .get("category")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.eq_ignore_ascii_case(cat))
            })
            && target.is_none_or(|t| c.properties.get("target").and_then(Value::as_str) == Some(t))
    });
    let page_size = r.page_size.max(1);
    let mut value = Vec::new();
    let mut last_key = None;
    let mut more = false;
    for (key, c) in matching {
        if value.len() == page_size {
            more = true;
            break;
        }
        value.push(resource_json(parent, c));
        last_key = Some(key.clone());
    }
    let mut body = json!({ "value": value });
    if let (true, Some(last)) = (more, last_key) {
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        qs.append_pair("api-version", api_version);
        if let Some(c) = category {
            qs.append_pair("category", c);
        }
        if let Some(t) = target {
            qs.append_pair("target", t);
        }
        qs.append_pair("$skipToken", &last);
        body["nextLink"] = json!(format!("{}{}?{}", r.origin, r.path, qs.finish()));
    }
    Ok(ok_json(&body))
}
