//! Types shared by the three kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to the FoundryProject, in the same namespace, that this object belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRef {
    /// Name of a FoundryProject in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret in the same namespace. Secrets are never read from other namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of a Secret in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A key of a ConfigMap in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of a ConfigMap in the same namespace as this object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the ConfigMap's data.
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// What happens in Foundry when the Kubernetes object is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the Foundry resource too (a resource that is already gone counts as deleted).
    #[default]
    Delete,
    /// Leave the Foundry resource in place.
    Orphan,
}

/// An HTTP header name (an RFC 9110 token).
pub(crate) const HEADER_NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$";

/// An https URL with a host, no user info and no fragment.
pub(crate) const HTTPS_URL_PATTERN: &str = r"^https://[^\s/?#@]+(/[^\s#]*)?$";
