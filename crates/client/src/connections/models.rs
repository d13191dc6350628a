//! Wire models of the ARM connection (reference §1.3–§1.6), gateway subset of
//! `ConnectionPropertiesV2`; project and account connections have the same body. Reading is
//! tolerant: unknown fields are ignored, unknown enum values are kept as strings.
//!
//! Against the 2026-09-01 spec (`arm-schemas/2026-09-01`): `authType`, `category`, `target`,
//! `metadata` (strings only), `isSharedToAll`, `expiryTime`, `error` and the `credentials` of
//! `ApiKey` (`{ key }`) and `OAuth2` (`{ clientId, clientSecret }`) are declared there. Not
//! declared, but sent by the Foundry samples and by us: `audience` beside
//! `ProjectManagedIdentity`/`AAD`, and `tokenUrl`/`scopes` beside `OAuth2`; and its OAuth2
//! `clientId` is a UUID (`Azure.Core.uuid`) where gateway clients often have other ids.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::types::{SecretString, string_enum};

string_enum! {
    /// `properties.category`.
    pub enum ConnectionCategory {
        /// Azure API Management in front of models.
        ApiManagement => "ApiManagement",
        /// Any other OpenAI-compatible gateway.
        ModelGateway => "ModelGateway",
    }
}

/// How the connection authenticates to the gateway (`authType` + `credentials` and the
/// top-level siblings some auth types use).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum ConnectionAuth {
    /// `authType: ApiKey`, `credentials: {"key": …}`. ARM does not echo the key on read, so it
    /// is `None` in responses.
    ApiKey {
        /// The key (APIM subscription key or gateway key).
        key: Option<SecretString>,
    },
    /// `authType: ProjectManagedIdentity` + top-level `audience`, `credentials: {}` (the APIM
    /// Bicep form of Entra ID auth).
    ProjectManagedIdentity {
        /// E.g. `https://cognitiveservices.azure.com`.
        audience: Option<String>,
    },
    /// `authType: AAD` + optional `audience`, `credentials: {}` (the APIM docs' form).
    Aad {
        /// Optional audience.
        audience: Option<String>,
    },
    /// `authType: OAuth2` with top-level `tokenUrl` and `scopes` and
    /// `credentials: {clientId, clientSecret}` (ModelGateway client credentials).
    OAuth2 {
        /// Token endpoint.
        token_url: Option<String>,
        /// Scopes requested.
        scopes: Vec<String>,
        /// Client id (may be absent on read).
        client_id: Option<String>,
        /// Client secret (absent on read).
        client_secret: Option<SecretString>,
    },
    /// `authType: None`.
    None,
    /// Any other auth type, kept as sent (credentials included, so `Debug` hides them).
    Other {
        /// The `authType` string (empty when absent).
        auth_type: String,
        /// The raw `credentials` object.
        credentials: Option<Value>,
    },
}

impl ConnectionAuth {
    /// The `authType` wire string.
    pub fn auth_type(&self) -> &str {
        match self {
            Self::ApiKey { .. } => "ApiKey",
            Self::ProjectManagedIdentity { .. } => "ProjectManagedIdentity",
            Self::Aad { .. } => "AAD",
            Self::OAuth2 { .. } => "OAuth2",
            Self::None => "None",
            Self::Other { auth_type, .. } => auth_type,
        }
    }
}

impl fmt::Debug for ConnectionAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey { key } => f
                .debug_struct("ApiKey")
                .field("key", &key.as_ref().map(|_| "***"))
                .finish(),
            Self::ProjectManagedIdentity { audience } => f
                .debug_struct("ProjectManagedIdentity")
                .field("audience", audience)
                .finish(),
            Self::Aad { audience } => f.debug_struct("Aad").field("audience", audience).finish(),
            Self::OAuth2 {
                token_url,
                scopes,
                client_id,
                client_secret,
            } => f
                .debug_struct("OAuth2")
                .field("token_url", token_url)
                .field("scopes", scopes)
                .field("client_id", client_id)
                .field("client_secret", &client_secret.as_ref().map(|_| "***"))
                .finish(),
            Self::None => f.write_str("None"),
            Self::Other {
                auth_type,
                credentials,
            } => f
                .debug_struct("Other")
                .field("auth_type", auth_type)
                .field("credentials", &credentials.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// `properties` of a project connection (gateway subset of `ConnectionPropertiesV2`).
/// `Debug` hides credentials and the values of `customHeaders`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireProperties", from = "WireProperties")]
pub struct ConnectionProperties {
    /// `category`.
    pub category: ConnectionCategory,
    /// `target`: the gateway base URL.
    pub target: String,
    /// `authType`, `credentials`, `audience`, `tokenUrl`, `scopes`.
    pub auth: ConnectionAuth,
    /// `metadata` (string values only on the wire; see [`super::GatewayMetadata`]).
    pub metadata: BTreeMap<String, String>,
    /// `isSharedToAll`.
    pub is_shared_to_all: Option<bool>,
    /// `expiryTime` (RFC 3339), if any.
    pub expiry_time: Option<String>,
    /// Read-only `error` the service may report for the connection.
    pub error: Option<String>,
}

impl fmt::Debug for ConnectionProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let metadata: BTreeMap<&str, &str> = self
            .metadata
            .iter()
            .map(|(k, v)| {
                let shown = if k == super::CUSTOM_HEADERS {
                    "***"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("ConnectionProperties")
            .field("category", &self.category)
            .field("target", &self.target)
            .field("auth", &self.auth)
            .field("metadata", &metadata)
            .field("is_shared_to_all", &self.is_shared_to_all)
            .field("expiry_time", &self.expiry_time)
            .field("error", &self.error)
            .finish()
    }
}

impl ConnectionProperties {
    /// Properties with the given category, target and auth, empty metadata, not shared.
    pub fn new(
        category: ConnectionCategory,
        target: impl Into<String>,
        auth: ConnectionAuth,
    ) -> Self {
        Self {
            category,
            target: target.into(),
            auth,
            metadata: BTreeMap::new(),
            is_shared_to_all: Some(false),
            expiry_time: None,
            error: None,
        }
    }
}

/// The ARM resource `Microsoft.CognitiveServices/accounts/projects/connections` or
/// `Microsoft.CognitiveServices/accounts/connections` (same shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionResource {
    /// ARM id (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Connection name (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Resource type (responses only).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// The connection.
    pub properties: ConnectionProperties,
    /// ARM `systemData`, kept raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_data: Option<Value>,
}

impl ConnectionResource {
    /// A PUT body `{ "properties": … }`.
    pub fn new(properties: ConnectionProperties) -> Self {
        Self {
            id: None,
            name: None,
            resource_type: None,
            properties,
            system_data: None,
        }
    }
}

/// The raw wire shape, converted to and from [`ConnectionProperties`].
#[derive(Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<ConnectionCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credentials: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_shared_to_all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiry_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_metadata",
        skip_serializing_if = "Option::is_none"
    )]
    metadata: Option<BTreeMap<String, String>>,
}

/// Metadata values are strings on the wire; should a service ever return another JSON type,
/// keep its compact JSON text instead of failing.
fn lenient_metadata<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
    Ok(raw.map(|m| {
        m.into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect()
    }))
}

fn str_field(v: &Option<Value>, key: &str) -> Option<String> {
    v.as_ref()
        .and_then(|c| c.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl From<WireProperties> for ConnectionProperties {
    fn from(w: WireProperties) -> Self {
        let auth_type = w.auth_type.unwrap_or_default();
        let auth = match auth_type.as_str() {
            "ApiKey" => ConnectionAuth::ApiKey {
                key: str_field(&w.credentials, "key").map(SecretString::from),
            },
            "ProjectManagedIdentity" => ConnectionAuth::ProjectManagedIdentity {
                audience: w.audience,
            },
            "AAD" => ConnectionAuth::Aad {
                audience: w.audience,
            },
            "OAuth2" => ConnectionAuth::OAuth2 {
                token_url: w.token_url,
                scopes: w.scopes.unwrap_or_default(),
                client_id: str_field(&w.credentials, "clientId"),
                client_secret: str_field(&w.credentials, "clientSecret").map(SecretString::from),
            },
            "None" => ConnectionAuth::None,
            _ => ConnectionAuth::Other {
                auth_type,
                credentials: w.credentials,
            },
        };
        Self {
            category: w
                .category
                .unwrap_or_else(|| ConnectionCategory::Other(String::new())),
            target: w.target.unwrap_or_default(),
            auth,
            metadata: w.metadata.unwrap_or_default(),
            is_shared_to_all: w.is_shared_to_all,
            expiry_time: w.expiry_time,
            error: w.error,
        }
    }
}

impl From<ConnectionProperties> for WireProperties {
    fn from(p: ConnectionProperties) -> Self {
        let mut w = WireProperties {
            category: Some(p.category),
            target: Some(p.target),
            auth_type: Some(p.auth.auth_type().to_owned()),
            is_shared_to_all: p.is_shared_to_all,
            expiry_time: p.expiry_time,
            error: None,
            metadata: Some(p.metadata),
            ..Default::default()
        };
        match p.auth {
            ConnectionAuth::ApiKey { key } => {
                w.credentials = key.map(|k| serde_json::json!({ "key": k.expose() }));
            }
            ConnectionAuth::ProjectManagedIdentity { audience }
            | ConnectionAuth::Aad { audience } => {
                w.audience = audience;
                w.credentials = Some(Value::Object(Default::default()));
            }
            ConnectionAuth::OAuth2 {
                token_url,
                scopes,
                client_id,
                client_secret,
            } => {
                let mut c = serde_json::Map::new();
                if let Some(id) = client_id {
                    c.insert("clientId".into(), Value::String(id));
                }
                if let Some(s) = client_secret {
                    c.insert("clientSecret".into(), Value::String(s.expose().to_owned()));
                }
                w.credentials = Some(Value::Object(c));
                w.token_url = token_url;
                w.scopes = Some(scopes);
            }
            ConnectionAuth::None => {}
            ConnectionAuth::Other { credentials, .. } => w.credentials = credentials,
        }
        w
    }
}

/// One page of `ProjectConnections_List` or `AccountConnections_List`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionsPage {
    /// The connections of this page.
    #[serde(default)]
    pub value: Vec<ConnectionResource>,
    /// Absolute URL of the next page, if any.
    #[serde(default)]
    pub next_link: Option<String>,
}
