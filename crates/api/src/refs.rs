//! What each kind references by name in its own namespace: one answer for the resolvers that
//! read the references and the watches that map a change of a referenced object back to the
//! objects that use it, so a new reference cannot be read without being watched.

use crate::common::{ConfigMapKeyRef, SecretKeyRef};
use crate::{FoundryProject, GatewayConnection, PromptAgent};

/// A Secret key an object reads, with the field that names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretUse<'a> {
    /// The spec field, as a user writes it (`spec.auth.apiKey.secretRef`).
    pub field: &'static str,
    /// The Secret and key.
    pub secret: &'a SecretKeyRef,
}

/// The references of an object of one of our kinds. Every reference stays in the object's
/// namespace.
pub trait References {
    /// The Secret keys the object reads.
    fn secret_refs(&self) -> Vec<SecretUse<'_>> {
        Vec::new()
    }

    /// The ConfigMap keys the object reads.
    fn config_map_refs(&self) -> Vec<&ConfigMapKeyRef> {
        Vec::new()
    }

    /// The ServiceAccounts whose tokens the object uses.
    fn service_account_refs(&self) -> Vec<&str> {
        Vec::new()
    }

    /// The FoundryProject the object belongs to.
    fn project_ref(&self) -> Option<&str> {
        None
    }

    /// The GatewayConnection the object uses.
    fn connection_ref(&self) -> Option<&str> {
        None
    }

    /// Whether the object reads the Secret `name`.
    fn reads_secret(&self, name: &str) -> bool {
        self.secret_refs().iter().any(|u| u.secret.name == name)
    }

    /// Whether the object reads the ConfigMap `name`.
    fn reads_config_map(&self, name: &str) -> bool {
        self.config_map_refs().iter().any(|r| r.name == name)
    }
}

impl References for GatewayConnection {
    fn secret_refs(&self) -> Vec<SecretUse<'_>> {
        let auth = &self.spec.auth;
        let mut uses = Vec::new();
        if let Some(key) = &auth.api_key {
            uses.push(SecretUse {
                field: "spec.auth.apiKey.secretRef",
                secret: &key.secret_ref,
            });
        }
        if let Some(oauth) = &auth.oauth2 {
            uses.push(SecretUse {
                field: "spec.auth.oauth2.clientSecretRef",
                secret: &oauth.client_secret_ref,
            });
        }
        uses.extend(
            self.spec
                .custom_headers
                .iter()
                .filter_map(|h| h.value_from.as_ref())
                .map(|secret| SecretUse {
                    field: "spec.customHeaders[].valueFrom",
                    secret,
                }),
        );
        uses
    }

    fn project_ref(&self) -> Option<&str> {
        Some(&self.spec.project_ref.name)
    }
}

impl References for PromptAgent {
    fn config_map_refs(&self) -> Vec<&ConfigMapKeyRef> {
        self.spec.instructions_from.iter().collect()
    }

    fn project_ref(&self) -> Option<&str> {
        Some(&self.spec.project_ref.name)
    }

    fn connection_ref(&self) -> Option<&str> {
        Some(&self.spec.model.connection_ref.name)
    }
}

impl References for FoundryProject {
    fn secret_refs(&self) -> Vec<SecretUse<'_>> {
        self.spec
            .identity
            .client_secret
            .iter()
            .map(|c| SecretUse {
                field: "spec.identity.clientSecret.secretRef",
                secret: &c.secret_ref,
            })
            .collect()
    }

    fn service_account_refs(&self) -> Vec<&str> {
        self.spec
            .identity
            .workload_identity
            .iter()
            .map(|w| w.service_account_name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_connection_names_every_secret_it_reads_with_its_field() {
        let gc: GatewayConnection = serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "GatewayConnection",
            "metadata": {"name": "gw", "namespace": "ns"},
            "spec": {"projectRef": {"name": "p"}, "category": "ModelGateway",
                "target": "https://gw.example.com",
                "auth": {"oauth2": {"tokenUrl": "https://login.example.com/t", "scopes": ["s"],
                    "clientId": "c", "clientSecretRef": {"name": "oauth", "key": "secret"}}},
                "customHeaders": [{"name": "X-A", "value": "a"},
                    {"name": "X-B", "valueFrom": {"name": "headers", "key": "b"}}]}
        }))
        .expect("a connection");
        let fields: Vec<(&str, &str)> = gc
            .secret_refs()
            .iter()
            .map(|u| (u.field, u.secret.name.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.auth.oauth2.clientSecretRef", "oauth"),
                ("spec.customHeaders[].valueFrom", "headers"),
            ]
        );
        assert!(gc.reads_secret("headers") && !gc.reads_secret("other"));
        assert_eq!(gc.project_ref(), Some("p"));
        assert!(gc.config_map_refs().is_empty() && gc.connection_ref().is_none());
    }

    #[test]
    fn an_agent_names_its_instructions_project_and_connection() {
        let agent: PromptAgent = serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "PromptAgent",
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"projectRef": {"name": "p"},
                "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
                "instructionsFrom": {"name": "prompts", "key": "support"}}
        }))
        .expect("an agent");
        assert!(agent.reads_config_map("prompts"));
        assert_eq!(agent.connection_ref(), Some("gw"));
        assert_eq!(agent.project_ref(), Some("p"));
        assert!(agent.secret_refs().is_empty());
    }

    #[test]
    fn a_project_names_its_client_secret_or_its_service_account() {
        let with = |identity: serde_json::Value| -> FoundryProject {
            serde_json::from_value(json!({
                "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": "FoundryProject",
                "metadata": {"name": "p", "namespace": "ns"},
                "spec": {"armId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.CognitiveServices/accounts/a/projects/p",
                    "endpoint": "https://a.services.ai.azure.com/api/projects/p", "identity": identity}
            }))
            .expect("a project")
        };
        let secret = with(json!({"clientSecret": {"clientId": "c", "tenantId": "t",
            "secretRef": {"name": "identity", "key": "clientSecret"}}}));
        assert!(secret.reads_secret("identity"));
        assert!(secret.service_account_refs().is_empty());
        let workload = with(
            json!({"workloadIdentity": {"clientId": "c", "tenantId": "t",
            "serviceAccountName": "foundry"}}),
        );
        assert_eq!(workload.service_account_refs(), ["foundry"]);
        assert!(workload.secret_refs().is_empty());
    }
}
