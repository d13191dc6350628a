//! Schema fragments that schemars cannot derive in the structural form the apiserver requires.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON object, kept as written (a JSON Schema document, an OpenAPI document, ...).
pub(crate) fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Any JSON value: string, number, boolean, array or object.
pub(crate) fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The Kubernetes `metav1.Condition` list, merged by `type` under server-side apply.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item =
        generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>();
    json_schema!({
        "type": "array",
        "description": "Latest observations of the object's state. Ready is always present after the first reconcile; Reconciling only while work is in flight; Stalled only when a person must act.",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}
