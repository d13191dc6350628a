//! Typed helpers for the gateway `metadata` keys (reference §1.5). Complex values travel as
//! compact JSON text inside the string map, exactly as the Foundry Bicep's `string()` emits them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::models::ConnectionCategory;
use crate::error::{Error, Result};
use crate::types::string_enum;

/// Metadata key `deploymentInPath` (`"true"` / `"false"`).
pub const DEPLOYMENT_IN_PATH: &str = "deploymentInPath";
/// Metadata key `inferenceAPIVersion`.
pub const INFERENCE_API_VERSION: &str = "inferenceAPIVersion";
/// Metadata key `deploymentAPIVersion`.
pub const DEPLOYMENT_API_VERSION: &str = "deploymentAPIVersion";
/// Metadata key `modelDiscovery` (JSON text of [`ModelDiscovery`]).
pub const MODEL_DISCOVERY: &str = "modelDiscovery";
/// Metadata key `models` (JSON text of a [`StaticModel`] array).
pub const MODELS: &str = "models";
/// Metadata key `customHeaders` (JSON text of a string map).
pub const CUSTOM_HEADERS: &str = "customHeaders";
/// Metadata key `authConfig` (JSON text of [`AuthConfig`]).
pub const AUTH_CONFIG: &str = "authConfig";

/// The placeholder `getModelEndpoint` must contain exactly once.
pub const DEPLOYMENT_NAME_PLACEHOLDER: &str = "{deploymentName}";
/// The placeholder of [`AuthConfig::format`].
pub const API_KEY_PLACEHOLDER: &str = "{api_key}";

string_enum! {
    /// `modelDiscovery.deploymentProvider`: the response format of the discovery endpoints.
    pub enum DeploymentProvider {
        /// `{"value":[{"name":…,"properties":{"model":{…}}}]}`.
        AzureOpenAI => "AzureOpenAI",
        /// `{"data":[{"id":…}]}`.
        OpenAI => "OpenAI",
    }
}

string_enum! {
    /// `properties.model.format` of a static model.
    pub enum ModelFormat {
        /// OpenAI-compatible chat completions.
        OpenAI => "OpenAI",
        /// Anthropic Messages API.
        Anthropic => "Anthropic",
        /// Anything else.
        NonOpenAI => "NonOpenAI",
    }
}

/// `modelDiscovery`: dynamic discovery endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDiscovery {
    /// List endpoint, relative to the target (e.g. `/deployments`, `/v1/models`) or an absolute
    /// URL on the target's origin.
    pub list_models_endpoint: String,
    /// Get endpoint with exactly one `{deploymentName}`.
    pub get_model_endpoint: String,
    /// Response format.
    pub deployment_provider: DeploymentProvider,
}

/// Explicit discovery settings, any field may be left to the APIM default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiscoveryOverrides {
    /// `listModelsEndpoint`.
    pub list_models_endpoint: Option<String>,
    /// `getModelEndpoint`.
    pub get_model_endpoint: Option<String>,
    /// `deploymentProvider`.
    pub deployment_provider: Option<DeploymentProvider>,
}

impl ModelDiscovery {
    /// The APIM defaults: `/deployments`, `/deployments/{deploymentName}`, `AzureOpenAI`.
    pub fn apim_defaults() -> Self {
        Self {
            list_models_endpoint: "/deployments".into(),
            get_model_endpoint: "/deployments/{deploymentName}".into(),
            deployment_provider: DeploymentProvider::AzureOpenAI,
        }
    }

    /// The discovery settings in force for a connection:
    /// - static models given → no discovery (and overrides together with them are an error);
    /// - `ApiManagement` → the APIM defaults, overridden field by field;
    /// - `ModelGateway` → the overrides, which must then name all three fields; with neither
    ///   static models nor overrides this is an error.
    pub fn resolve(
        category: &ConnectionCategory,
        overrides: Option<&DiscoveryOverrides>,
        has_static_models: bool,
    ) -> Result<Option<Self>> {
        const OP: &str = "ModelDiscovery_Resolve";
        if has_static_models {
            return match overrides {
                Some(_) => Err(Error::invalid_input(
                    OP,
                    "static models and model discovery are mutually exclusive",
                )),
                None => Ok(None),
            };
        }
        let resolved = match (category, overrides) {
            (ConnectionCategory::ApiManagement, o) => {
                let d = Self::apim_defaults();
                let o = o.cloned().unwrap_or_default();
                Self {
                    list_models_endpoint: o.list_models_endpoint.unwrap_or(d.list_models_endpoint),
                    get_model_endpoint: o.get_model_endpoint.unwrap_or(d.get_model_endpoint),
                    deployment_provider: o.deployment_provider.unwrap_or(d.deployment_provider),
                }
            }
            (_, None) => {
                return Err(Error::invalid_input(
                    OP,
                    "a ModelGateway connection needs static models or model discovery",
                ));
            }
            (_, Some(o)) => {
                let missing = |what: &str| {
                    Error::invalid_input(
                        OP,
                        format!("model discovery needs {what} for a ModelGateway connection"),
                    )
                };
                Self {
                    list_models_endpoint: o
                        .list_models_endpoint
                        .clone()
                        .ok_or_else(|| missing("listModelsEndpoint"))?,
                    get_model_endpoint: o
                        .get_model_endpoint
                        .clone()
                        .ok_or_else(|| missing("getModelEndpoint"))?,
                    deployment_provider: o
                        .deployment_provider
                        .clone()
                        .ok_or_else(|| missing("deploymentProvider"))?,
                }
            }
        };
        resolved.validate()?;
        Ok(Some(resolved))
    }

    /// Check the shape rules the service enforces: non-empty endpoints, exactly one
    /// `{deploymentName}` in `getModelEndpoint`, a known provider.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "ModelDiscovery_Validate";
        if self.list_models_endpoint.trim().is_empty() {
            return Err(Error::invalid_input(OP, "listModelsEndpoint is empty"));
        }
        if self
            .get_model_endpoint
            .matches(DEPLOYMENT_NAME_PLACEHOLDER)
            .count()
            != 1
        {
            return Err(Error::invalid_input(
                OP,
                "getModelEndpoint must contain {deploymentName} exactly once",
            ));
        }
        if let DeploymentProvider::Other(p) = &self.deployment_provider {
            return Err(Error::invalid_input(
                OP,
                format!("deploymentProvider must be AzureOpenAI or OpenAI, not {p:?}"),
            ));
        }
        Ok(())
    }
}

/// One entry of the static `models` list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticModel {
    /// Deployment name (what agents put after `<connection>/`).
    pub name: String,
    /// `properties`.
    pub properties: StaticModelProperties,
}

/// `properties` of a [`StaticModel`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticModelProperties {
    /// `model`.
    pub model: ModelInfo,
}

/// `properties.model` of a [`StaticModel`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model name, e.g. `gpt-4o`.
    pub name: String,
    /// Model version, or empty.
    #[serde(default)]
    pub version: String,
    /// Format.
    pub format: ModelFormat,
}

impl StaticModel {
    /// A static model entry.
    pub fn new(
        deployment: impl Into<String>,
        model_name: impl Into<String>,
        version: impl Into<String>,
        format: ModelFormat,
    ) -> Self {
        Self {
            name: deployment.into(),
            properties: StaticModelProperties {
                model: ModelInfo {
                    name: model_name.into(),
                    version: version.into(),
                    format,
                },
            },
        }
    }
}

/// `authConfig`: how the API key is sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    /// Always `api_key`.
    #[serde(rename = "type")]
    pub config_type: String,
    /// Header name, e.g. `Authorization`, `x-api-key`.
    pub name: String,
    /// Value template with `{api_key}`, e.g. `Bearer {api_key}` (default `{api_key}`).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    API_KEY_PLACEHOLDER.to_owned()
}

impl AuthConfig {
    /// `{"type":"api_key","name":<header>,"format":<format>}`.
    pub fn new(header: impl Into<String>, format: impl Into<String>) -> Self {
        Self {
            config_type: "api_key".into(),
            name: header.into(),
            format: format.into(),
        }
    }
}

/// The gateway metadata of a connection, typed. Converts to and from the wire string map.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GatewayMetadata {
    /// `deploymentInPath`.
    pub deployment_in_path: Option<bool>,
    /// `inferenceAPIVersion` (`Some("")` is emitted as an empty string, as the ModelGateway
    /// Bicep does).
    pub inference_api_version: Option<String>,
    /// `deploymentAPIVersion`.
    pub deployment_api_version: Option<String>,
    /// `models` (static discovery).
    pub models: Option<Vec<StaticModel>>,
    /// `modelDiscovery` (dynamic discovery).
    pub model_discovery: Option<ModelDiscovery>,
    /// `customHeaders` (values may be secrets: `Debug` hides them).
    pub custom_headers: Option<BTreeMap<String, String>>,
    /// `authConfig`.
    pub auth_config: Option<AuthConfig>,
    /// Any other key, kept as is.
    pub other: BTreeMap<String, String>,
}

impl fmt::Debug for GatewayMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayMetadata")
            .field("deployment_in_path", &self.deployment_in_path)
            .field("inference_api_version", &self.inference_api_version)
            .field("deployment_api_version", &self.deployment_api_version)
            .field("models", &self.models)
            .field("model_discovery", &self.model_discovery)
            .field(
                "custom_headers",
                &self.custom_headers.as_ref().map(|h| {
                    h.keys()
                        .map(|k| (k.as_str(), "***"))
                        .collect::<BTreeMap<_, _>>()
                }),
            )
            .field("auth_config", &self.auth_config)
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn to_json_text<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs and string maps cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn from_json_text<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(
            "GatewayMetadata_Parse",
            format!("metadata {key} is not the expected JSON text: {e}"),
        )
    })
}

impl GatewayMetadata {
    /// The wire map (compact JSON text for complex values).
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = self.other.clone();
        if let Some(v) = self.deployment_in_path {
            m.insert(DEPLOYMENT_IN_PATH.into(), v.to_string());
        }
        if let Some(v) = &self.inference_api_version {
            m.insert(INFERENCE_API_VERSION.into(), v.clone());
        }
        if let Some(v) = &self.deployment_api_version {
            m.insert(DEPLOYMENT_API_VERSION.into(), v.clone());
        }
        if let Some(v) = &self.models {
            m.insert(MODELS.into(), to_json_text(v));
        }
        if let Some(v) = &self.model_discovery {
            m.insert(MODEL_DISCOVERY.into(), to_json_text(v));
        }
        if let Some(v) = &self.custom_headers {
            m.insert(CUSTOM_HEADERS.into(), to_json_text(v));
        }
        if let Some(v) = &self.auth_config {
            m.insert(AUTH_CONFIG.into(), to_json_text(v));
        }
        m
    }

    /// Read the wire map. Known keys with malformed values are an error; others are kept in
    /// [`Self::other`].
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut md = Self::default();
        for (k, v) in map {
            match k.as_str() {
                DEPLOYMENT_IN_PATH => {
                    md.deployment_in_path = Some(match v.trim().to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(Error::invalid_input(
                                "GatewayMetadata_Parse",
                                format!(
                                    "metadata deploymentInPath must be \"true\" or \"false\", not {v:?}"
                                ),
                            ));
                        }
                    });
                }
                INFERENCE_API_VERSION => md.inference_api_version = Some(v.clone()),
                DEPLOYMENT_API_VERSION => md.deployment_api_version = Some(v.clone()),
                MODELS => md.models = Some(from_json_text(k, v)?),
                MODEL_DISCOVERY => md.model_discovery = Some(from_json_text(k, v)?),
                CUSTOM_HEADERS => md.custom_headers = Some(from_json_text(k, v)?),
                AUTH_CONFIG => md.auth_config = Some(from_json_text(k, v)?),
                _ => {
                    md.other.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_json_text_matches_the_reference() {
        let md = GatewayMetadata {
            deployment_in_path: Some(true),
            inference_api_version: Some("2024-02-01".into()),
            models: Some(vec![StaticModel::new(
                "gpt-4o",
                "gpt-4o",
                "2024-11-20",
                ModelFormat::OpenAI,
            )]),
            ..Default::default()
        };
        let m = md.to_map();
        assert_eq!(m["deploymentInPath"], "true");
        assert_eq!(m["inferenceAPIVersion"], "2024-02-01");
        assert_eq!(
            m["models"],
            r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"2024-11-20","format":"OpenAI"}}}]"#
        );

        let md = GatewayMetadata {
            model_discovery: Some(ModelDiscovery::apim_defaults()),
            custom_headers: Some(BTreeMap::from([(
                "X-Client-App".into(),
                "foundry-agents".into(),
            )])),
            auth_config: Some(AuthConfig::new("Authorization", "Bearer {api_key}")),
            ..Default::default()
        };
        let m = md.to_map();
        assert_eq!(
            m["modelDiscovery"],
            r#"{"listModelsEndpoint":"/deployments","getModelEndpoint":"/deployments/{deploymentName}","deploymentProvider":"AzureOpenAI"}"#
        );
        assert_eq!(m["customHeaders"], r#"{"X-Client-App":"foundry-agents"}"#);
        assert_eq!(
            m["authConfig"],
            r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#
        );
        let x = AuthConfig::new("x-api-key", "{api_key}");
        assert_eq!(
            to_json_text(&x),
            r#"{"type":"api_key","name":"x-api-key","format":"{api_key}"}"#
        );
    }

    #[test]
    fn metadata_round_trips_and_keeps_unknown_keys() {
        let mut map = BTreeMap::new();
        map.insert("deploymentInPath".to_string(), "false".to_string());
        map.insert("inferenceAPIVersion".to_string(), String::new());
        map.insert("somethingNew".to_string(), "x".to_string());
        map.insert(
            "models".to_string(),
            r#"[{"name":"m","properties":{"model":{"name":"m","version":"","format":"Deepseek"}}}]"#.to_string(),
        );
        let md = GatewayMetadata::from_map(&map).unwrap();
        assert_eq!(md.deployment_in_path, Some(false));
        assert_eq!(md.inference_api_version.as_deref(), Some(""));
        assert_eq!(md.other["somethingNew"], "x");
        let models = md.models.clone().unwrap();
        assert_eq!(
            models[0].properties.model.format,
            ModelFormat::Other("Deepseek".into())
        );
        assert_eq!(md.to_map(), map);
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        let map = BTreeMap::from([("modelDiscovery".to_string(), "{not json".to_string())]);
        assert!(GatewayMetadata::from_map(&map).is_err());
        let map = BTreeMap::from([("deploymentInPath".to_string(), "yes".to_string())]);
        assert!(GatewayMetadata::from_map(&map).is_err());
    }

    #[test]
    fn debug_hides_custom_header_values() {
        let md = GatewayMetadata {
            custom_headers: Some(BTreeMap::from([("X-Token".into(), "s3cr3t-value".into())])),
            ..Default::default()
        };
        let d = format!("{md:?}");
        assert!(d.contains("X-Token"));
        assert!(!d.contains("s3cr3t-value"));
    }

    #[test]
    fn apim_defaults_apply_field_by_field() {
        let apim = ConnectionCategory::ApiManagement;
        let d = ModelDiscovery::resolve(&apim, None, false)
            .unwrap()
            .unwrap();
        assert_eq!(d, ModelDiscovery::apim_defaults());
        let o = DiscoveryOverrides {
            deployment_provider: Some(DeploymentProvider::OpenAI),
            list_models_endpoint: Some("/v1/models".into()),
            ..Default::default()
        };
        let d = ModelDiscovery::resolve(&apim, Some(&o), false)
            .unwrap()
            .unwrap();
        assert_eq!(d.list_models_endpoint, "/v1/models");
        assert_eq!(d.get_model_endpoint, "/deployments/{deploymentName}");
        assert_eq!(d.deployment_provider, DeploymentProvider::OpenAI);
        assert_eq!(ModelDiscovery::resolve(&apim, None, true).unwrap(), None);
        assert!(ModelDiscovery::resolve(&apim, Some(&o), true).is_err());
    }

    #[test]
    fn model_gateway_discovery_needs_every_field() {
        let mg = ConnectionCategory::ModelGateway;
        assert!(ModelDiscovery::resolve(&mg, None, false).is_err());
        assert_eq!(ModelDiscovery::resolve(&mg, None, true).unwrap(), None);
        let partial = DiscoveryOverrides {
            list_models_endpoint: Some("/v1/models".into()),
            ..Default::default()
        };
        let e = ModelDiscovery::resolve(&mg, Some(&partial), false).unwrap_err();
        assert!(e.message().contains("getModelEndpoint"));
        let full = DiscoveryOverrides {
            list_models_endpoint: Some("/v1/models".into()),
            get_model_endpoint: Some("/v1/models/{deploymentName}".into()),
            deployment_provider: Some(DeploymentProvider::OpenAI),
        };
        assert!(
            ModelDiscovery::resolve(&mg, Some(&full), false)
                .unwrap()
                .is_some()
        );
        let twice = DiscoveryOverrides {
            get_model_endpoint: Some("/{deploymentName}/{deploymentName}".into()),
            ..full
        };
        assert!(ModelDiscovery::resolve(&mg, Some(&twice), false).is_err());
    }
}
