//! Objects of our kinds for tests, built fluently: `FoundryProject::test("p")`,
//! `GatewayConnection::test("gw").with_api_key("gateway-key")`, `PromptAgent::test("a")`.
//! Every fixture starts from what the test bed serves (the emulator's default project, the
//! LiteLLM gateway, the token server) and changes one thing at a time.

#![allow(clippy::expect_used)]

use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use foundry_gateway_testbed::emulator::EmulatorProject;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use crate::world::stack;

/// The default-client id the World's project identity uses.
pub const PROJECT_CLIENT_ID: &str = foundry_gateway_testbed::stack::OPERATOR_CLIENT_ID;

/// A fixture of one of our kinds.
pub trait Fixture: Sized {
    /// The object `name` as the test bed serves it.
    fn test(name: &str) -> Self;

    /// The object in `namespace`.
    #[must_use]
    fn in_namespace(self, namespace: &str) -> Self;
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn from_spec<K: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: Value) -> K {
    serde_json::from_value(json!({
        "apiVersion": "gateway.foundry.dev/v1alpha1", "kind": kind,
        "metadata": serde_json::to_value(meta(name)).expect("metadata"),
        "spec": spec,
    }))
    .expect("a valid fixture")
}

impl Fixture for FoundryProject {
    fn test(name: &str) -> Self {
        let s = stack();
        from_spec(
            "FoundryProject",
            name,
            json!({
                "armId": EmulatorProject::default_project().arm_id(),
                "endpoint": s.emulator.project_endpoint,
                "managementEndpoint": s.emulator.arm_endpoint,
                "authorityHost": s.token_server.entra_authority_host(),
                "identity": {"clientSecret": {"clientId": PROJECT_CLIENT_ID,
                    "tenantId": foundry_gateway_testbed::token_server::DEFAULT_TENANT,
                    "secretRef": {"name": "project-identity", "key": "clientSecret"}}},
            }),
        )
    }

    fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_owned());
        self
    }
}

/// Builder steps of a FoundryProject fixture.
pub trait ProjectFixture: Sized {
    /// The data-plane endpoint.
    #[must_use]
    fn with_endpoint(self, endpoint: &str) -> Self;
    /// The client secret's Secret.
    #[must_use]
    fn with_secret(self, name: &str) -> Self;
}

impl ProjectFixture for FoundryProject {
    fn with_endpoint(mut self, endpoint: &str) -> Self {
        self.spec.endpoint = Some(endpoint.to_owned());
        self
    }

    fn with_secret(mut self, name: &str) -> Self {
        if let Some(cs) = self.spec.identity.client_secret.as_mut() {
            name.clone_into(&mut cs.secret_ref.name);
        }
        self
    }
}

impl Fixture for GatewayConnection {
    fn test(name: &str) -> Self {
        from_spec(
            "GatewayConnection",
            name,
            json!({
                "projectRef": {"name": "local"}, "category": "ModelGateway",
                "target": stack().gateway.openai_target(),
                "auth": {"apiKey": {"secretRef": {"name": "gateway-key", "key": "key"},
                    "header": "Authorization", "format": "Bearer {api_key}"}},
                "models": {"static": [{"name": "gpt-4o"}]},
            }),
        )
    }

    fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_owned());
        self
    }
}

/// Builder steps of a GatewayConnection fixture.
pub trait ConnectionFixture: Sized {
    /// API key auth from this Secret (key `key`).
    #[must_use]
    fn with_api_key(self, secret: &str) -> Self;
    /// `managementPolicy: Observe`.
    #[must_use]
    fn observing(self) -> Self;
}

impl ConnectionFixture for GatewayConnection {
    fn with_api_key(mut self, secret: &str) -> Self {
        if let Some(key) = self.spec.auth.api_key.as_mut() {
            secret.clone_into(&mut key.secret_ref.name);
        }
        self
    }

    fn observing(mut self) -> Self {
        self.spec.management_policy =
            Some(foundry_gateway_api::connection::ManagementPolicy::Observe);
        self
    }
}

impl Fixture for PromptAgent {
    fn test(name: &str) -> Self {
        from_spec(
            "PromptAgent",
            name,
            json!({
                "projectRef": {"name": "local"},
                "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
                "instructions": "Answer in one short sentence.",
            }),
        )
    }

    fn in_namespace(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.to_owned());
        self
    }
}
