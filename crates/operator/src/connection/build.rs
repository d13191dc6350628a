//! The pure middle of the GatewayConnection pipeline: validate the spec, build the ARM body and
//! the probe settings, compare with the live connection, hash the credentials. No IO.

use std::collections::BTreeMap;

use foundry_gateway_api::connection::{
    DiscoveryProvider, GatewayCategory, GatewayConnectionSpec, ModelFormat as SpecModelFormat,
};
use foundry_gateway_client::SecretString;
use foundry_gateway_client::connections::{
    AuthConfig, ConnectionAuth, ConnectionCategory, ConnectionProperties, DeploymentProvider,
    DiscoveryOverrides, GatewayMetadata, ModelDiscovery, ModelFormat, StaticModel,
};
use url::Url;

use crate::digest::DigestKey;
use crate::ownership::{Marker, ObjectId, Ownership, ownership, parse_marker};

/// Metadata key marking a connection as managed by this operator, value
/// `foundry-gateway-operator:<namespace>/<name>`. It makes ownership survive a crash between the
/// PUT and the status write, and keeps the operator away from connections it does not own.
pub const MANAGED_BY_KEY: &str = "managedBy";

/// Metadata key beside [`MANAGED_BY_KEY`]: the uid of the owning object, so that another object
/// can tell whether the owner it names still exists or was deleted and created again.
/// (ARM connection metadata has no documented limit on keys; the uid is 36 characters.)
pub const MANAGED_BY_UID_KEY: &str = "managedByUid";

/// The marker value for an object.
pub fn managed_by_value(namespace: &str, name: &str) -> String {
    ObjectId::new(namespace, name, None).marker_value()
}

/// The ownership marker a live connection carries, if any.
pub fn marker(live: &ConnectionProperties) -> Option<Marker> {
    let value = live.metadata.get(MANAGED_BY_KEY)?;
    parse_marker(
        value,
        live.metadata.get(MANAGED_BY_UID_KEY).map(String::as_str),
    )
}

/// Default audience of Entra ID gateway auth.
pub const DEFAULT_ENTRA_AUDIENCE: &str = "https://cognitiveservices.azure.com";

/// A spec that cannot work as written (beyond what the CRD schema checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// Secret values the spec refers to, read from the object's namespace.
#[derive(Clone, Default)]
pub struct ResolvedSecrets {
    /// `auth.apiKey.secretRef`.
    pub api_key: Option<SecretString>,
    /// `auth.oauth2.clientSecretRef`.
    pub oauth_client_secret: Option<SecretString>,
    /// `customHeaders[].valueFrom`, by header name.
    pub header_values: BTreeMap<String, SecretString>,
}

impl std::fmt::Debug for ResolvedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedSecrets")
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field(
                "oauth_client_secret",
                &self.oauth_client_secret.as_ref().map(|_| "***"),
            )
            .field(
                "header_values",
                &self.header_values.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The connection as it should be in Foundry.
#[derive(Debug, Clone)]
pub struct Desired {
    /// Connection name in Foundry.
    pub name: String,
    /// The ARM `properties`, credentials included.
    pub properties: ConnectionProperties,
    /// HMAC of the credentials, for status (never the credentials).
    pub credentials_hash: String,
    /// Model discovery in effect (None with static models).
    pub discovery: Option<ModelDiscovery>,
    /// Static model names (empty with discovery).
    pub static_models: Vec<String>,
}

/// The wire format of a static model's `format` (default OpenAI).
pub fn model_format(format: Option<SpecModelFormat>) -> ModelFormat {
    match format.unwrap_or_default() {
        SpecModelFormat::OpenAI => ModelFormat::OpenAI,
        SpecModelFormat::Anthropic => ModelFormat::Anthropic,
        SpecModelFormat::NonOpenAI => ModelFormat::NonOpenAI,
    }
}

/// The connection name: `spec.connectionName`, else the object name.
pub fn connection_name(spec: &GatewayConnectionSpec, object_name: &str) -> String {
    spec.connection_name
        .clone()
        .unwrap_or_else(|| object_name.to_owned())
}

/// Whether inference calls put the deployment in the path (default by category).
pub fn deployment_in_path(spec: &GatewayConnectionSpec) -> bool {
    spec.deployment_in_path
        .unwrap_or(spec.category == GatewayCategory::ApiManagement)
}

/// Checks what the schema cannot: the connection name Foundry will see, absolute discovery
/// endpoints on the target's origin, and the api-version rules of absolute endpoints.
pub fn validate(spec: &GatewayConnectionSpec, object_name: &str) -> Result<(), InvalidSpec> {
    let name = connection_name(spec, object_name);
    if !foundry_gateway_client::connections::is_valid_connection_name(&name) {
        return Err(InvalidSpec(format!(
            "connection name {name:?} is not valid in Foundry (3 to 33 letters, digits, '_' or '-', starting with a letter or digit); set spec.connectionName"
        )));
    }
    let target = Url::parse(&spec.target)
        .map_err(|e| InvalidSpec(format!("spec.target is not a valid URL: {e}")))?;
    if let Some(discovery) = spec.models.as_ref().and_then(|m| m.discovery.as_ref()) {
        for (field, endpoint) in [
            (
                "listModelsEndpoint",
                discovery.list_models_endpoint.as_deref(),
            ),
            ("getModelEndpoint", discovery.get_model_endpoint.as_deref()),
        ] {
            let Some(endpoint) = endpoint else { continue };
            if !endpoint.starts_with("https://") {
                continue;
            }
            let url = Url::parse(&endpoint.replace("{deploymentName}", "d")).map_err(|e| {
                InvalidSpec(format!(
                    "spec.models.discovery.{field} is not a valid URL: {e}"
                ))
            })?;
            if url.origin() != target.origin() {
                return Err(InvalidSpec(format!(
                    "spec.models.discovery.{field} must be on the same scheme, host and port as spec.target ({})",
                    target.origin().ascii_serialization()
                )));
            }
            if url
                .query_pairs()
                .filter(|(k, _)| k == "api-version")
                .count()
                > 1
            {
                return Err(InvalidSpec(format!(
                    "spec.models.discovery.{field} has api-version twice"
                )));
            }
        }
    }
    Ok(())
}

fn category(spec: &GatewayConnectionSpec) -> ConnectionCategory {
    match spec.category {
        GatewayCategory::ApiManagement => ConnectionCategory::ApiManagement,
        GatewayCategory::ModelGateway => ConnectionCategory::ModelGateway,
    }
}

/// Discovery in effect: explicit fields over the APIM defaults; None with static models.
pub fn discovery(spec: &GatewayConnectionSpec) -> Option<ModelDiscovery> {
    let models = spec.models.as_ref();
    if models.is_some_and(|m| m.static_models.is_some()) {
        return None;
    }
    let overrides = models
        .and_then(|m| m.discovery.as_ref())
        .map(|d| DiscoveryOverrides {
            list_models_endpoint: d.list_models_endpoint.clone(),
            get_model_endpoint: d.get_model_endpoint.clone(),
            deployment_provider: d.provider.map(|p| match p {
                DiscoveryProvider::AzureOpenAI => DeploymentProvider::AzureOpenAI,
                DiscoveryProvider::OpenAI => DeploymentProvider::OpenAI,
            }),
        });
    ModelDiscovery::resolve(&category(spec), overrides.as_ref(), false)
        .ok()
        .flatten()
}

/// Builds the connection Foundry should hold; its metadata names the object `me` (namespace,
/// name and uid), and `key` keys the credentials digest.
pub fn build_for(
    spec: &GatewayConnectionSpec,
    me: &ObjectId,
    secrets: &ResolvedSecrets,
    key: &DigestKey,
) -> Result<Desired, InvalidSpec> {
    validate(spec, &me.name)?;
    let auth = connection_auth(spec, secrets)?;
    let static_models = static_models(spec);
    let discovery = discovery(spec);
    let metadata = metadata(spec, me, secrets, static_models.clone(), discovery.clone());
    let mut properties = ConnectionProperties::new(category(spec), spec.target.clone(), auth);
    properties.metadata = metadata.to_map();
    properties.is_shared_to_all = Some(spec.shared_to_all.unwrap_or(false));
    let client_id = spec.auth.oauth2.as_ref().map(|o| o.client_id.as_str());
    let uid = me.uid.as_deref().unwrap_or_default();
    let credentials_hash = credentials_hash(key, uid, secrets, client_id);
    Ok(Desired {
        name: connection_name(spec, &me.name),
        properties,
        credentials_hash,
        discovery,
        static_models: static_models
            .map(|models| models.into_iter().map(|m| m.name).collect())
            .unwrap_or_default(),
    })
}

/// How Foundry authenticates to the gateway, with the Secret values.
fn connection_auth(
    spec: &GatewayConnectionSpec,
    secrets: &ResolvedSecrets,
) -> Result<ConnectionAuth, InvalidSpec> {
    if spec.auth.api_key.is_some() {
        Ok(ConnectionAuth::ApiKey {
            key: secrets.api_key.clone(),
        })
    } else if let Some(entra) = &spec.auth.entra_id {
        Ok(ConnectionAuth::ProjectManagedIdentity {
            audience: Some(
                entra
                    .audience
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ENTRA_AUDIENCE.to_owned()),
            ),
        })
    } else if let Some(oauth) = &spec.auth.oauth2 {
        Ok(ConnectionAuth::OAuth2 {
            token_url: Some(oauth.token_url.clone()),
            scopes: oauth.scopes.clone(),
            client_id: Some(oauth.client_id.clone()),
            client_secret: secrets.oauth_client_secret.clone(),
        })
    } else {
        Err(InvalidSpec(
            "spec.auth needs one of apiKey, entraId, oauth2".into(),
        ))
    }
}

/// The static models of the spec, as Foundry lists them (None with discovery).
fn static_models(spec: &GatewayConnectionSpec) -> Option<Vec<StaticModel>> {
    spec.models
        .as_ref()
        .and_then(|m| m.static_models.as_ref())
        .map(|models| {
            models
                .iter()
                .map(|m| {
                    StaticModel::new(
                        &m.name,
                        m.model.clone().unwrap_or_else(|| m.name.clone()),
                        m.version.clone().unwrap_or_default(),
                        model_format(m.format),
                    )
                })
                .collect()
        })
}

/// The connection's metadata: how Foundry calls the gateway, its models, and the marker naming
/// the object `me`.
fn metadata(
    spec: &GatewayConnectionSpec,
    me: &ObjectId,
    secrets: &ResolvedSecrets,
    models: Option<Vec<StaticModel>>,
    model_discovery: Option<ModelDiscovery>,
) -> GatewayMetadata {
    let custom_headers = (!spec.custom_headers.is_empty()).then(|| {
        header_values(spec, secrets)
            .into_iter()
            .map(|(name, value)| (name, value.expose().to_owned()))
            .collect::<BTreeMap<_, _>>()
    });
    let mut other = BTreeMap::new();
    other.insert(MANAGED_BY_KEY.to_owned(), me.marker_value());
    if let Some(uid) = &me.uid {
        other.insert(MANAGED_BY_UID_KEY.to_owned(), uid.clone());
    }
    GatewayMetadata {
        deployment_in_path: Some(deployment_in_path(spec)),
        inference_api_version: spec.inference_api_version.clone(),
        deployment_api_version: spec.deployment_api_version.clone(),
        models,
        model_discovery,
        custom_headers,
        auth_config: auth_config(spec),
        other,
    }
}

/// `authConfig`: how the API key is sent, when the spec names a header (default format
/// `{api_key}`); None means Foundry's default `api-key` header.
pub fn auth_config(spec: &GatewayConnectionSpec) -> Option<AuthConfig> {
    let key = spec.auth.api_key.as_ref()?;
    let header = key.header.as_ref()?;
    Some(AuthConfig::new(
        header,
        key.format.clone().unwrap_or_else(|| "{api_key}".to_owned()),
    ))
}

/// Every custom header with its value, inline or from its Secret (empty when unresolved).
pub fn header_values(
    spec: &GatewayConnectionSpec,
    secrets: &ResolvedSecrets,
) -> BTreeMap<String, SecretString> {
    spec.custom_headers
        .iter()
        .map(|h| {
            let value = h
                .value
                .clone()
                .map(SecretString::from)
                .or_else(|| secrets.header_values.get(&h.name).cloned())
                .unwrap_or_else(|| SecretString::new(""));
            (h.name.clone(), value)
        })
        .collect()
}

/// An HMAC-SHA256 of the credentials sent to Foundry, keyed by the operator's digest key and
/// bound to the object's uid: it changes when a key rotates, and without the digest key it
/// cannot be tested against guessed credentials. 96 bits of the tag are kept.
///
/// An OAuth2 `clientId` is hashed too: it travels in `credentials`, which ARM does not return,
/// so [`drift`] cannot see it change.
pub fn credentials_hash(
    key: &DigestKey,
    uid: &str,
    secrets: &ResolvedSecrets,
    oauth2_client_id: Option<&str>,
) -> String {
    let mut hasher = key.mac();
    hasher.update(b"foundry-gateway-operator/credentials/v2\0");
    // Every field is length-prefixed, so no two inputs run into each other.
    let mut field = |bytes: &[u8]| {
        hasher.update(u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
        hasher.update(bytes);
    };
    field(uid.as_bytes());
    for (label, value) in [
        ("apiKey", &secrets.api_key),
        ("oauth2", &secrets.oauth_client_secret),
    ] {
        field(label.as_bytes());
        match value {
            Some(v) => field(v.expose().as_bytes()),
            None => field(b"\xff(none)"),
        }
    }
    // Only when there is one, so that the digests of other connections stay as they were.
    if let Some(id) = oauth2_client_id {
        field(b"oauth2ClientId");
        field(id.as_bytes());
    }
    let digest = hasher.finalize();
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Whether deleting the object `me` may delete the live connection: when its marker names this
/// object, or when it carries no marker of ours and the object set `adopt`. Never when the
/// marker names another object, whether or not that object still exists.
pub fn may_delete(live: &ConnectionProperties, me: &ObjectId, adopt: bool) -> bool {
    match ownership(marker(live).as_ref(), me) {
        Ownership::Ours => true,
        Ownership::Unmarked | Ownership::Legacy => adopt,
        Ownership::Foreign(_) => false,
    }
}

/// What differs between the desired and the live connection, ignoring credentials (ARM does
/// not return them; their changes are tracked by [`credentials_hash`]). None when equal.
pub fn drift(desired: &ConnectionProperties, live: &ConnectionProperties) -> Option<String> {
    let mut fields = Vec::new();
    if desired.category != live.category {
        fields.push("category");
    }
    if desired.target != live.target {
        fields.push("target");
    }
    if strip_secrets(&desired.auth) != strip_secrets(&live.auth) {
        fields.push("auth");
    }
    if desired.metadata != live.metadata {
        fields.push("metadata");
    }
    if desired.is_shared_to_all.unwrap_or(false) != live.is_shared_to_all.unwrap_or(false) {
        fields.push("isSharedToAll");
    }
    (!fields.is_empty()).then(|| fields.join(", "))
}

fn strip_secrets(auth: &ConnectionAuth) -> ConnectionAuth {
    match auth {
        ConnectionAuth::ApiKey { .. } => ConnectionAuth::ApiKey { key: None },
        // The client id travels in `credentials` too, which ARM does not return: its changes
        // are tracked by [`credentials_hash`].
        ConnectionAuth::OAuth2 {
            token_url, scopes, ..
        } => ConnectionAuth::OAuth2 {
            token_url: token_url.clone(),
            scopes: scopes.clone(),
            client_id: None,
            client_secret: None,
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foundry_gateway_api::common::{ProjectRef, SecretKeyRef};
    use foundry_gateway_api::connection::{
        ApiKeyAuth, CustomHeader, GatewayAuth, GatewayModels, ModelDiscovery as SpecDiscovery,
        OAuth2Auth, StaticModel as SpecStaticModel,
    };

    fn secret_ref() -> SecretKeyRef {
        SecretKeyRef {
            name: "s".into(),
            key: "k".into(),
        }
    }

    fn model_gateway() -> GatewayConnectionSpec {
        GatewayConnectionSpec {
            project_ref: ProjectRef { name: "p".into() },
            category: GatewayCategory::ModelGateway,
            target: "https://gw.example.com/v1".into(),
            auth: GatewayAuth {
                api_key: Some(ApiKeyAuth {
                    secret_ref: secret_ref(),
                    header: Some("Authorization".into()),
                    format: Some("Bearer {api_key}".into()),
                }),
                ..GatewayAuth::default()
            },
            models: Some(GatewayModels {
                static_models: Some(vec![SpecStaticModel {
                    name: "gpt-4o".into(),
                    model: None,
                    version: Some("2024-11-20".into()),
                    format: None,
                }]),
                discovery: None,
            }),
            custom_headers: vec![CustomHeader {
                name: "X-Client-App".into(),
                value: Some("foundry-agents".into()),
                value_from: None,
            }],
            ..GatewayConnectionSpec::default()
        }
    }

    fn key() -> DigestKey {
        DigestKey::from_bytes(&[7; 32])
    }

    fn secrets(key: &str) -> ResolvedSecrets {
        ResolvedSecrets {
            api_key: Some(key.into()),
            ..ResolvedSecrets::default()
        }
    }

    #[test]
    fn a_model_gateway_with_static_models_builds_the_documented_metadata() {
        let desired = build_for(
            &model_gateway(),
            &ObjectId::new("team", "gateway", Some("uid-1")),
            &secrets("k1"),
            &key(),
        )
        .expect("valid");
        let m = &desired.properties.metadata;
        assert_eq!(m["deploymentInPath"], "false");
        assert_eq!(
            m["models"],
            r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"2024-11-20","format":"OpenAI"}}}]"#
        );
        assert_eq!(m["customHeaders"], r#"{"X-Client-App":"foundry-agents"}"#);
        assert_eq!(
            m["authConfig"],
            r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#
        );
        assert_eq!(m[MANAGED_BY_KEY], "foundry-gateway-operator:team/gateway");
        assert_eq!(m[MANAGED_BY_UID_KEY], "uid-1");
        assert!(!m.contains_key("modelDiscovery"));
        assert_eq!(desired.name, "gateway");
        assert_eq!(desired.static_models, ["gpt-4o"]);
        let wire = serde_json::to_value(&desired.properties).expect("serialises");
        assert_eq!(wire["authType"], "ApiKey");
        assert_eq!(wire["credentials"]["key"], "k1");
        assert_eq!(wire["category"], "ModelGateway");
    }

    #[test]
    fn apim_without_models_discovers_with_the_apim_defaults_overridden_field_by_field() {
        let mut spec = model_gateway();
        spec.category = GatewayCategory::ApiManagement;
        spec.models = Some(GatewayModels {
            static_models: None,
            discovery: Some(SpecDiscovery {
                list_models_endpoint: Some("/models".into()),
                get_model_endpoint: None,
                provider: None,
            }),
        });
        let desired = build_for(
            &spec,
            &ObjectId::new("ns", "apim", Some("u")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        assert_eq!(
            desired.properties.metadata["modelDiscovery"],
            r#"{"listModelsEndpoint":"/models","getModelEndpoint":"/deployments/{deploymentName}","deploymentProvider":"AzureOpenAI"}"#
        );
        assert_eq!(desired.properties.metadata["deploymentInPath"], "true");
        spec.models = None;
        let desired = build_for(
            &spec,
            &ObjectId::new("ns", "apim", Some("u")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        assert_eq!(
            desired.properties.metadata["modelDiscovery"],
            r#"{"listModelsEndpoint":"/deployments","getModelEndpoint":"/deployments/{deploymentName}","deploymentProvider":"AzureOpenAI"}"#
        );
    }

    #[test]
    fn an_oauth2_connection_as_arm_returns_it_has_no_drift_and_its_client_id_is_in_the_digest() {
        let mut spec = model_gateway();
        let oauth = |client_id: &str| OAuth2Auth {
            token_url: "https://login.example.com/token".into(),
            scopes: vec!["api://gw/.default".into()],
            client_id: client_id.into(),
            client_secret_ref: secret_ref(),
        };
        spec.auth = GatewayAuth {
            oauth2: Some(oauth("app")),
            ..GatewayAuth::default()
        };
        let resolved = ResolvedSecrets {
            oauth_client_secret: Some("s3cret".into()),
            ..ResolvedSecrets::default()
        };
        let desired = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &resolved,
            &key(),
        )
        .expect("valid");
        // ARM returns no `credentials`: neither the secret nor the client id.
        let mut live = desired.properties.clone();
        live.auth = ConnectionAuth::OAuth2 {
            token_url: Some("https://login.example.com/token".into()),
            scopes: vec!["api://gw/.default".into()],
            client_id: None,
            client_secret: None,
        };
        assert_eq!(drift(&desired.properties, &live), None);
        spec.auth.oauth2 = Some(oauth("another-app"));
        let moved = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &resolved,
            &key(),
        )
        .expect("valid");
        assert_ne!(moved.credentials_hash, desired.credentials_hash);
    }

    #[test]
    fn oauth2_puts_token_url_and_scopes_beside_the_client_credentials() {
        let mut spec = model_gateway();
        spec.auth = GatewayAuth {
            oauth2: Some(OAuth2Auth {
                token_url: "https://login.example.com/token".into(),
                scopes: vec!["api://gw/.default".into()],
                client_id: "app".into(),
                client_secret_ref: secret_ref(),
            }),
            ..GatewayAuth::default()
        };
        let resolved = ResolvedSecrets {
            oauth_client_secret: Some("s3cret".into()),
            ..ResolvedSecrets::default()
        };
        let desired = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &resolved,
            &key(),
        )
        .expect("valid");
        let wire = serde_json::to_value(&desired.properties).expect("serialises");
        assert_eq!(wire["authType"], "OAuth2");
        assert_eq!(wire["tokenUrl"], "https://login.example.com/token");
        assert_eq!(wire["scopes"][0], "api://gw/.default");
        assert_eq!(wire["credentials"]["clientId"], "app");
        assert_eq!(wire["credentials"]["clientSecret"], "s3cret");
    }

    #[test]
    fn a_rotated_key_changes_the_credentials_hash_and_nothing_else() {
        let spec = model_gateway();
        let a = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &secrets("old"),
            &key(),
        )
        .expect("valid");
        let b = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &secrets("new"),
            &key(),
        )
        .expect("valid");
        assert_ne!(a.credentials_hash, b.credentials_hash);
        assert_eq!(drift(&a.properties, &b.properties), None);
        assert!(!a.credentials_hash.contains("old"));
        assert_eq!(
            a.credentials_hash,
            build_for(
                &spec,
                &ObjectId::new("ns", "gateway", Some("u")),
                &secrets("old"),
                &key()
            )
            .expect("valid")
            .credentials_hash
        );
    }

    #[test]
    fn drift_names_the_fields_changed_in_foundry() {
        let desired = build_for(
            &model_gateway(),
            &ObjectId::new("ns", "gateway", Some("u")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        let mut live = desired.properties.clone();
        live.auth = ConnectionAuth::ApiKey { key: None };
        assert_eq!(
            drift(&desired.properties, &live),
            None,
            "a live connection without credentials is not drift"
        );
        live.target = "https://elsewhere.example.com".into();
        live.metadata
            .insert("deploymentInPath".into(), "true".into());
        assert_eq!(
            drift(&desired.properties, &live).as_deref(),
            Some("target, metadata")
        );
    }

    #[test]
    fn absolute_discovery_endpoints_must_share_the_target_origin() {
        let mut spec = model_gateway();
        spec.models = Some(GatewayModels {
            static_models: None,
            discovery: Some(SpecDiscovery {
                list_models_endpoint: Some("https://other.example.com/v1/models".into()),
                get_model_endpoint: Some("/models/{deploymentName}".into()),
                provider: Some(DiscoveryProvider::OpenAI),
            }),
        });
        let err = validate(&spec, "gateway").expect_err("other origin refused");
        assert!(
            err.0.contains("listModelsEndpoint") && err.0.contains("https://gw.example.com"),
            "{err}"
        );
        if let Some(d) = spec.models.as_mut().and_then(|m| m.discovery.as_mut()) {
            d.list_models_endpoint = Some("https://gw.example.com/v1/models?api-version=1".into());
        }
        validate(&spec, "gateway").expect("same origin accepted");
    }

    #[test]
    fn a_long_object_name_without_connection_name_is_refused_with_the_fix() {
        let err = validate(&model_gateway(), &"a".repeat(40)).expect_err("too long");
        assert!(err.0.contains("spec.connectionName"), "{err}");
    }

    #[test]
    fn secret_header_values_come_from_the_resolved_secrets() {
        let mut spec = model_gateway();
        spec.custom_headers.push(CustomHeader {
            name: "X-Tenant".into(),
            value: None,
            value_from: Some(secret_ref()),
        });
        let mut resolved = secrets("k");
        resolved
            .header_values
            .insert("X-Tenant".into(), "contoso".into());
        let desired = build_for(
            &spec,
            &ObjectId::new("ns", "gateway", Some("u")),
            &resolved,
            &key(),
        )
        .expect("valid");
        assert_eq!(
            desired.properties.metadata["customHeaders"],
            r#"{"X-Client-App":"foundry-agents","X-Tenant":"contoso"}"#
        );
        assert!(!format!("{resolved:?}").contains("contoso"));
    }

    #[test]
    fn the_credentials_digest_depends_on_the_operators_key_and_the_object() {
        let spec = model_gateway();
        let with = |key: &DigestKey, uid: &str| {
            build_for(
                &spec,
                &ObjectId::new("ns", "gateway", Some(uid)),
                &secrets("k"),
                key,
            )
            .expect("valid")
            .credentials_hash
        };
        let other_key = DigestKey::from_bytes(&[8; 32]);
        assert_eq!(with(&key(), "u"), with(&key(), "u"));
        assert_ne!(
            with(&key(), "u"),
            with(&other_key, "u"),
            "without the operator's key the digest cannot be recomputed"
        );
        assert_ne!(with(&key(), "u"), with(&key(), "v"));
        assert_eq!(with(&key(), "u").len(), 24);
        // Which field holds a value matters, not only the concatenated bytes.
        let oauth = ResolvedSecrets {
            oauth_client_secret: Some("k".into()),
            ..ResolvedSecrets::default()
        };
        assert_ne!(
            credentials_hash(&key(), "u", &secrets("k"), None),
            credentials_hash(&key(), "u", &oauth, None)
        );
    }

    #[test]
    fn the_live_marker_names_the_object_and_its_uid() {
        let desired = build_for(
            &model_gateway(),
            &ObjectId::new("team", "gateway", Some("uid-1")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        assert_eq!(
            marker(&desired.properties),
            Some(Marker::Object(ObjectId::new(
                "team",
                "gateway",
                Some("uid-1")
            )))
        );
        let mut live = desired.properties.clone();
        live.metadata.remove(MANAGED_BY_UID_KEY);
        assert_eq!(
            marker(&live),
            Some(Marker::Object(ObjectId::new("team", "gateway", None))),
            "a connection written before uids were recorded"
        );
        live.metadata
            .insert(MANAGED_BY_KEY.into(), "terraform".into());
        assert_eq!(marker(&live), None);
        live.metadata.remove(MANAGED_BY_KEY);
        assert_eq!(marker(&live), None);
    }

    #[test]
    fn a_new_uid_is_drift_so_a_recreated_object_records_itself() {
        let old = build_for(
            &model_gateway(),
            &ObjectId::new("ns", "gateway", Some("uid-old")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        let new = build_for(
            &model_gateway(),
            &ObjectId::new("ns", "gateway", Some("uid-new")),
            &secrets("k"),
            &key(),
        )
        .expect("valid");
        assert_eq!(
            drift(&new.properties, &old.properties).as_deref(),
            Some("metadata")
        );
    }

    #[test]
    fn deletion_never_removes_a_connection_another_object_manages() {
        let me = ObjectId::new("team-a", "gateway", Some("uid-a"));
        let written_by = |namespace: &str, name: &str, uid: &str| {
            build_for(
                &model_gateway(),
                &ObjectId::new(namespace, name, Some(uid)),
                &secrets("k"),
                &key(),
            )
            .expect("valid")
            .properties
        };
        let mut unmarked = written_by("team-a", "gateway", "uid-a");
        unmarked.metadata.remove(MANAGED_BY_KEY);
        let cases = [
            (written_by("team-a", "gateway", "uid-a"), false, true),
            (written_by("team-a", "gateway", "uid-old"), false, true),
            (written_by("team-b", "gateway", "uid-b"), false, false),
            (written_by("team-b", "gateway", "uid-b"), true, false),
            (unmarked.clone(), false, false),
            (unmarked, true, true),
        ];
        for (live, adopt, expected) in cases {
            assert_eq!(
                may_delete(&live, &me, adopt),
                expected,
                "{:?} adopt={adopt}",
                live.metadata.get(MANAGED_BY_KEY)
            );
        }
    }
}
