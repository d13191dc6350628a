//! Custom resource types of the Foundry gateway operator: [`FoundryProject`],
//! [`GatewayConnection`] and [`PromptAgent`] in group `gateway.foundry.dev`, version `v1alpha1`.
//!
//! This crate is the public API that users meet through `kubectl explain`: every field carries the
//! doc text the apiserver prints, and every rule the apiserver can enforce itself (enums, patterns,
//! CEL rules for "exactly one of", immutability) lives in the generated schema. It does no IO.

// kube's `printcolumn(...)` attributes repeat `type_ = "string"` by design, which clippy reads as
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod agent;
pub mod common;
pub mod conditions;
pub mod connection;
pub mod project;
pub mod refs;
mod schema;

pub use agent::{PromptAgent, PromptAgentSpec, PromptAgentStatus};
pub use connection::{GatewayConnection, GatewayConnectionSpec, GatewayConnectionStatus};
pub use project::{FoundryProject, FoundryProjectSpec, FoundryProjectStatus};
pub use refs::{References, SecretUse};

/// API group of every kind in this crate.
pub const GROUP: &str = "gateway.foundry.dev";
/// API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";
/// The `kubectl get foundry` category shared by the three kinds.
pub const CATEGORY: &str = "foundry";

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};

/// Every CRD of this crate, in the order they are installed.
///
/// Optional fields are not marked `nullable`: the apiserver then prunes an explicit `null`, so
/// `has(field)` in the CEL rules means "set to a value", and a `null` written by a tool never
/// reaches the controller as a half-set field.
pub fn crds() -> Vec<CustomResourceDefinition> {
    use kube::CustomResourceExt;
    let mut crds = vec![
        FoundryProject::crd(),
        GatewayConnection::crd(),
        PromptAgent::crd(),
    ];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                clear_nullable(schema);
            }
        }
    }
    crds
}

fn clear_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        clear_nullable(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(item)) =
        schema.items.as_mut()
    {
        clear_nullable(item);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrBool::Schema(value)) =
        schema.additional_properties.as_mut()
    {
        clear_nullable(value);
    }
}
