//! `import project`, the pure part: a live Foundry connection or agent version as a spec.
//! ARM never returns credentials, so every credential becomes a Secret placeholder.

use foundry_gateway_api::PromptAgentSpec;
use foundry_gateway_api::agent::{AgentModel, GatewayConnectionRef};
use foundry_gateway_api::common::{ProjectRef, SecretKeyRef};
use foundry_gateway_api::connection::{
    ApiKeyAuth, ConnectionScope, CustomHeader, DiscoveryProvider, EntraIdAuth, GatewayAuth,
    GatewayCategory, GatewayConnectionSpec, GatewayModels, ModelDiscovery, ModelFormat, OAuth2Auth,
    StaticModel,
};
use foundry_gateway_client::connections::{
    ConnectionAuth, ConnectionCategory, ConnectionResource, DeploymentProvider, GatewayMetadata,
    ModelFormat as WireFormat,
};
use foundry_gateway_client::project::AgentVersionObject;
use foundry_gateway_operator::agent_definition::{
    MANAGED_BY_KEY, MANAGED_BY_UID_KEY, SPEC_HASH_KEY,
};
use foundry_gateway_operator::connection::build::{self, DEFAULT_ENTRA_AUDIENCE};

use crate::manifest::object_name;

/// One imported object.
#[derive(Clone, Debug)]
pub struct ImportedObject<S> {
    /// `metadata.name`.
    pub name: String,
    /// The spec.
    pub spec: S,
    /// What could not be inferred.
    pub comments: Vec<String>,
    /// Secret placeholders: (Secret name, key, what it holds).
    pub secrets: Vec<(String, String, String)>,
}

/// Whether a listed connection is a gateway connection (category ApiManagement or ModelGateway).
pub fn is_gateway(resource: &ConnectionResource) -> bool {
    matches!(
        resource.properties.category,
        ConnectionCategory::ApiManagement | ConnectionCategory::ModelGateway
    )
}

/// A live connection as a GatewayConnection spec with `adopt: true`.
pub fn connection_spec(
    resource: &ConnectionResource,
    scope: ConnectionScope,
    project: &str,
) -> ImportedObject<GatewayConnectionSpec> {
    let props = &resource.properties;
    let connection_name = resource
        .name
        .clone()
        .or_else(|| {
            resource
                .id
                .as_deref()
                .and_then(|id| id.rsplit('/').next())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let name = object_name(&connection_name);
    let mut comments = Vec::new();
    let mut secrets = Vec::new();
    let category = match props.category {
        ConnectionCategory::ModelGateway => GatewayCategory::ModelGateway,
        _ => GatewayCategory::ApiManagement,
    };
    let metadata = match GatewayMetadata::from_map(&props.metadata) {
        Ok(m) => m,
        Err(e) => {
            comments.push(format!(
                "metadata: not readable ({e}); models and options not imported"
            ));
            GatewayMetadata::default()
        }
    };
    let mut auth = GatewayAuth::default();
    match &props.auth {
        ConnectionAuth::ProjectManagedIdentity { audience } | ConnectionAuth::Aad { audience } => {
            auth.entra_id = Some(EntraIdAuth {
                audience: audience.clone().filter(|a| a != DEFAULT_ENTRA_AUDIENCE),
            });
        }
        ConnectionAuth::OAuth2 {
            token_url,
            scopes,
            client_id,
            ..
        } => {
            let secret = format!("{name}-oauth2");
            if token_url.is_none() {
                comments.push(
                    "spec.auth.oauth2.tokenUrl: Foundry did not return it; fill it in".into(),
                );
            }
            if client_id.is_none() {
                comments.push(
                    "spec.auth.oauth2.clientId: Foundry did not return it; fill it in".into(),
                );
            }
            auth.oauth2 = Some(OAuth2Auth {
                token_url: token_url
                    .clone()
                    .unwrap_or_else(|| "https://token-url.invalid".into()),
                scopes: scopes.clone(),
                client_id: client_id.clone().unwrap_or_else(|| "CLIENT-ID".into()),
                client_secret_ref: SecretKeyRef {
                    name: secret.clone(),
                    key: "clientSecret".into(),
                },
            });
            secrets.push((
                secret,
                "clientSecret".into(),
                "the OAuth2 client secret".into(),
            ));
        }
        other => {
            if !matches!(other, ConnectionAuth::ApiKey { .. }) {
                comments.push(format!(
                    "spec.auth: authType {:?} has no equivalent; imported as apiKey",
                    other.auth_type()
                ));
            }
            let secret = format!("{name}-gateway-key");
            auth.api_key = Some(ApiKeyAuth {
                secret_ref: SecretKeyRef {
                    name: secret.clone(),
                    key: "apiKey".into(),
                },
                header: metadata.auth_config.as_ref().map(|c| c.name.clone()),
                format: metadata.auth_config.as_ref().map(|c| c.format.clone()),
            });
            secrets.push((
                secret,
                "apiKey".into(),
                "the gateway API key (ARM does not return it)".into(),
            ));
        }
    }
    if metadata.auth_config.is_some() && auth.api_key.is_none() {
        comments
            .push("metadata.authConfig: ignored, the connection does not use an API key".into());
    }
    let models = if let Some(models) = &metadata.models {
        Some(GatewayModels {
            static_models: Some(
                models
                    .iter()
                    .map(|m| StaticModel {
                        name: m.name.clone(),
                        model: Some(m.properties.model.name.clone()).filter(|n| *n != m.name),
                        version: Some(m.properties.model.version.clone()),
                        format: match &m.properties.model.format {
                            WireFormat::OpenAI => None,
                            WireFormat::Anthropic => Some(ModelFormat::Anthropic),
                            _ => Some(ModelFormat::NonOpenAI),
                        },
                    })
                    .collect(),
            ),
            discovery: None,
        })
    } else {
        metadata.model_discovery.as_ref().map(|d| GatewayModels {
            static_models: None,
            discovery: Some(ModelDiscovery {
                list_models_endpoint: Some(d.list_models_endpoint.clone()),
                get_model_endpoint: Some(d.get_model_endpoint.clone()),
                provider: Some(match d.deployment_provider {
                    DeploymentProvider::OpenAI => DiscoveryProvider::OpenAI,
                    _ => DiscoveryProvider::AzureOpenAI,
                }),
            }),
        })
    };
    if models.is_none() && category == GatewayCategory::ModelGateway {
        comments.push(
            "spec.models: the connection lists neither models nor modelDiscovery; add one".into(),
        );
    }
    let version = |v: &Option<String>, field: &str, comments: &mut Vec<String>| match v.as_deref() {
        Some("") => {
            comments.push(format!(
                "spec.{field}: Foundry holds an empty string; the operator omits the key instead"
            ));
            None
        }
        other => other.map(str::to_owned),
    };
    let inference_api_version = version(
        &metadata.inference_api_version,
        "inferenceApiVersion",
        &mut comments,
    );
    let deployment_api_version = version(
        &metadata.deployment_api_version,
        "deploymentApiVersion",
        &mut comments,
    );
    let custom_headers: Vec<CustomHeader> = metadata
        .custom_headers
        .iter()
        .flatten()
        .map(|(k, v)| CustomHeader {
            name: k.clone(),
            value: Some(v.clone()),
            value_from: None,
        })
        .collect();
    if !custom_headers.is_empty() {
        comments.push("spec.customHeaders: values copied inline from Foundry's metadata; move any sensitive one to valueFrom".into());
    }
    for key in metadata.other.keys() {
        if key == build::MANAGED_BY_KEY || key == build::MANAGED_BY_UID_KEY {
            comments.push(format!(
                "metadata.{key}: the connection is already marked by an operator object ({}); adopt does not take over a live owner",
                metadata.other.get(key).map(String::as_str).unwrap_or_default()
            ));
        } else {
            comments.push(format!(
                "metadata.{key}: no spec field; the operator would remove it"
            ));
        }
    }
    let spec = GatewayConnectionSpec {
        project_ref: ProjectRef {
            name: project.to_owned(),
        },
        connection_name: Some(connection_name),
        category,
        scope: (scope == ConnectionScope::Account).then_some(ConnectionScope::Account),
        target: props.target.clone(),
        auth,
        models,
        deployment_in_path: metadata.deployment_in_path,
        inference_api_version,
        deployment_api_version,
        custom_headers,
        shared_to_all: props.is_shared_to_all,
        probe: None,
        deletion_policy: None,
        adopt: Some(true),
        suspend: None,
        management_policy: None,
    };
    if spec.deployment_in_path.is_none() {
        comments.push(
            "spec.deploymentInPath: not in Foundry's metadata; the operator writes its default"
                .into(),
        );
    }
    ImportedObject {
        name,
        spec,
        comments,
        secrets,
    }
}

/// The newest version of a live agent as a PromptAgent spec. `connections` maps Foundry
/// connection names to the GatewayConnection object names imported with them.
pub fn agent_spec(
    agent: &str,
    newest: &AgentVersionObject,
    project: &str,
    connections: &[(String, String)],
) -> Option<ImportedObject<PromptAgentSpec>> {
    let mut comments = vec![format!(
        "Imported from version {} of agent {agent:?}.",
        newest.version
    )];
    let definition = newest.definition.as_prompt()?;
    let (connection, model) = match definition.model.split_once('/') {
        Some((c, m)) => (c.to_owned(), m.to_owned()),
        None => {
            comments.push(format!(
                "spec.model: {:?} is not <connection>/<model> (not a gateway model); fill in connectionRef",
                definition.model
            ));
            (String::new(), definition.model.clone())
        }
    };
    let connection_ref = connections
        .iter()
        .find(|(foundry, _)| *foundry == connection)
        .map(|(_, object)| object.clone())
        .unwrap_or_else(|| {
            comments.push(format!(
                "spec.model.connectionRef: connection {connection:?} was not imported; name its GatewayConnection"
            ));
            object_name(&connection)
        });
    if !definition.tools.is_empty() {
        comments.push(format!(
            "spec.tools: {} tool(s) not imported; add them by hand",
            definition.tools.len()
        ));
    }
    if definition.reasoning.is_some()
        || definition.text.is_some()
        || definition.tool_choice.is_some()
        || !definition.structured_inputs.is_empty()
    {
        comments.push("spec: reasoning, text, toolChoice and structuredInputs are not imported; compare with the live version".into());
    }
    let metadata = newest
        .metadata
        .iter()
        .filter(|(k, _)| ![SPEC_HASH_KEY, MANAGED_BY_KEY, MANAGED_BY_UID_KEY].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    comments.push("PromptAgent has no adopt field: the operator writes a new version with its own marker on top of the live ones (an agent another object owns is refused)".into());
    let spec = PromptAgentSpec {
        project_ref: ProjectRef {
            name: project.to_owned(),
        },
        agent_name: Some(agent.to_owned()),
        model: AgentModel {
            connection_ref: GatewayConnectionRef {
                name: connection_ref,
            },
            name: model,
        },
        instructions: definition.instructions.clone(),
        description: newest.description.clone(),
        metadata,
        temperature: definition.temperature,
        top_p: definition.top_p,
        ..Default::default()
    };
    Some(ImportedObject {
        name: object_name(agent),
        spec,
        comments,
        secrets: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(properties: serde_json::Value) -> ConnectionResource {
        serde_json::from_value(json!({"name": "My-Gateway", "properties": properties})).unwrap()
    }

    #[test]
    fn a_live_api_key_connection_becomes_a_spec_with_a_secret_placeholder() {
        let r = resource(json!({
            "category": "ModelGateway", "target": "https://gw.example.com", "authType": "ApiKey",
            "isSharedToAll": false,
            "metadata": {"deploymentInPath": "false", "inferenceAPIVersion": "",
                "models": r#"[{"name":"d","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#,
                "authConfig": r#"{"type":"api_key","name":"Authorization","format":"Bearer {api_key}"}"#,
                "customHeaders": r#"{"X-Env":"prod"}"#}
        }));
        let imp = connection_spec(&r, ConnectionScope::Project, "p");
        assert_eq!(imp.name, "my-gateway");
        assert_eq!(imp.spec.connection_name.as_deref(), Some("My-Gateway"));
        let key = imp.spec.auth.api_key.as_ref().unwrap();
        assert_eq!(key.secret_ref.name, "my-gateway-gateway-key");
        assert_eq!(key.header.as_deref(), Some("Authorization"));
        assert_eq!(imp.spec.deployment_in_path, Some(false));
        assert_eq!(imp.spec.inference_api_version, None);
        assert_eq!(imp.spec.custom_headers[0].value.as_deref(), Some("prod"));
        let models = imp
            .spec
            .models
            .as_ref()
            .unwrap()
            .static_models
            .as_ref()
            .unwrap();
        assert_eq!(models[0].model.as_deref(), Some("gpt-4o"));
        assert_eq!(imp.spec.adopt, Some(true));
        assert_eq!(imp.secrets.len(), 1);
    }

    #[test]
    fn entra_oauth2_and_account_scope_are_mapped() {
        let r = resource(
            json!({"category": "ApiManagement", "target": "https://a.azure-api.net/x",
            "authType": "ProjectManagedIdentity", "audience": "https://cognitiveservices.azure.com", "credentials": {},
            "metadata": {"deploymentInPath": "true"}}),
        );
        let imp = connection_spec(&r, ConnectionScope::Account, "p");
        assert_eq!(imp.spec.auth.entra_id, Some(EntraIdAuth { audience: None }));
        assert_eq!(imp.spec.scope, Some(ConnectionScope::Account));
        assert!(imp.secrets.is_empty());

        let r = resource(
            json!({"category": "ModelGateway", "target": "https://gw.example.com",
            "authType": "OAuth2", "tokenUrl": "https://login.example.com/t", "scopes": ["s"],
            "credentials": {"clientId": "c"},
            "metadata": {"deploymentInPath": "false", "modelDiscovery": r#"{"listModelsEndpoint":"/v1/models","getModelEndpoint":"/v1/models/{deploymentName}","deploymentProvider":"OpenAI"}"#}}),
        );
        let imp = connection_spec(&r, ConnectionScope::Project, "p");
        let oauth = imp.spec.auth.oauth2.as_ref().unwrap();
        assert_eq!(oauth.token_url, "https://login.example.com/t");
        assert_eq!(oauth.client_id, "c");
        assert_eq!(oauth.client_secret_ref.key, "clientSecret");
        let d = imp.spec.models.unwrap().discovery.unwrap();
        assert_eq!(d.provider, Some(DiscoveryProvider::OpenAI));
    }

    #[test]
    fn an_agent_version_becomes_a_prompt_agent() {
        let v: AgentVersionObject = serde_json::from_value(json!({
            "name": "helper", "version": "2", "metadata": {"team": "a", SPEC_HASH_KEY: "h"},
            "definition": {"kind": "prompt", "model": "my-gateway/gpt-4o", "instructions": "Be brief.", "temperature": 0.2}
        }))
        .unwrap();
        let imp = agent_spec(
            "helper",
            &v,
            "p",
            &[("My-Gateway".into(), "my-gateway".into())],
        );
        let imp = imp.unwrap();
        assert_eq!(imp.spec.model.name, "gpt-4o");
        // Foundry names the connection in the model string; it did not match case here.
        assert!(imp.comments.iter().any(|c| c.contains("was not imported")));
        assert_eq!(imp.spec.instructions.as_deref(), Some("Be brief."));
        assert_eq!(imp.spec.metadata.len(), 1);
        assert_eq!(imp.spec.temperature, Some(0.2));
    }
}
