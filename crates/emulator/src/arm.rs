//! ARM project connections (reference §1): PUT, GET, PATCH, DELETE and LIST.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Map, Value, json};

use crate::auth::Caller;
use crate::connection::{ValidConnection, validate_body, validate_name, validate_properties};
use crate::errors::{ApiError, HandlerResult, empty, ok_json};
use crate::routes::ArmOp;
use crate::state::{ProjectState, Store, StoredConnection};
use crate::util::{rfc3339_millis, unix_millis};

/// api-versions that know project connections (reference §1.2).
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
];

const RESOURCE_TYPE: &str = "Microsoft.CognitiveServices/accounts/projects/connections";

/// Checks the mandatory `api-version` query parameter.
pub(crate) fn check_api_version(query: &[(String, String)]) -> Result<String, ApiError> {
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
                "The api-version '{v}' is invalid for resource type '{RESOURCE_TYPE}'. The supported api-versions are '{}'.",
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
    pub(crate) project: &'a str,
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

/// Serves one ARM request against the store.
pub(crate) fn handle(store: &mut Store, r: &ArmRequest<'_>) -> HandlerResult {
    if *r.op == ArmOp::MethodNotAllowed {
        return Err(ApiError::arm(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The HTTP method is not supported for this resource.",
        ));
    }
    let api_version = check_api_version(r.query)?;
    let Some(project) = store.arm_project(r.subscription, r.resource_group, r.account, r.project)
    else {
        let parent = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.CognitiveServices/accounts/{}/projects/{}",
            r.subscription, r.resource_group, r.account, r.project
        );
        return Err(ApiError::arm(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!(
                "Failed to perform the operation on resources of type '{RESOURCE_TYPE}', because the parent resource '{parent}' could not be found."
            ),
        ));
    };
    match (r.op, r.connection) {
        (ArmOp::List, _) => list(project, r, &api_version),
        (ArmOp::Create, Some(name)) => put(project, name, r),
        (ArmOp::Get, Some(name)) => {
            let c = find(project, name)?;
            Ok(ok_json(&resource_json(project, c)))
        }
        (ArmOp::Update, Some(name)) => patch(project, name, r),
        (ArmOp::Delete, Some(name)) => {
            if project
                .connections
                .remove(&name.to_ascii_lowercase())
                .is_some()
            {
                tracing::info!(connection = name, "Deleted connection");
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

fn find<'a>(project: &'a ProjectState, name: &str) -> Result<&'a StoredConnection, ApiError> {
    project
        .connections
        .get(&name.to_ascii_lowercase())
        .ok_or_else(|| not_found(project, name))
}

fn not_found(project: &ProjectState, name: &str) -> ApiError {
    ApiError::arm(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!(
            "The Resource '{RESOURCE_TYPE}/{}/{}/{name}' under resource group '{}' was not found.",
            project.id.account, project.id.project, project.id.resource_group
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

fn put(project: &mut ProjectState, name: &str, r: &ArmRequest<'_>) -> HandlerResult {
    validate_name(name).map_err(ApiError::invalid_content)?;
    let body = parse_json_body(r.body)?;
    let valid = validate_body(&body).map_err(ApiError::invalid_content)?;
    store_connection(project, name, valid, r.caller, true)
}

fn patch(project: &mut ProjectState, name: &str, r: &ArmRequest<'_>) -> HandlerResult {
    let existing = find(project, name)?.clone();
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
        return Ok(ok_json(&resource_json(project, &existing)));
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
    store_connection(project, &existing.name, valid, r.caller, false)
}

fn store_connection(
    project: &mut ProjectState,
    name: &str,
    valid: ValidConnection,
    caller: &Caller,
    created_now: bool,
) -> HandlerResult {
    let now = unix_millis();
    let key = name.to_ascii_lowercase();
    let previous = project.connections.get(&key);
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
    let json = resource_json(project, &stored);
    project.connections.insert(key, stored);
    let verb = if existed || !created_now {
        "Updated connection"
    } else {
        "Created connection"
    };
    tracing::info!(connection = name, project = %project.id.project, "{verb}");
    Ok(ok_json(&json))
}

/// The resource as ARM returns it: never with credentials.
pub(crate) fn resource_json(project: &ProjectState, c: &StoredConnection) -> Value {
    json!({
        "id": format!("{}/connections/{}", project.id.arm_id(), c.name),
        "name": c.name,
        "type": RESOURCE_TYPE,
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

fn list(project: &ProjectState, r: &ArmRequest<'_>, api_version: &str) -> HandlerResult {
    let q = |k: &str| {
        r.query
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let category = q("category").filter(|s| !s.is_empty());
    let target = q("target").filter(|s| !s.is_empty());
    let skip = q("$skipToken").map(str::to_ascii_lowercase);
    let matching = project.connections.iter().filter(|(key, c)| {
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
        value.push(resource_json(project, c));
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
