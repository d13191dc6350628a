//! The Foundry clients of a resolved FoundryProject, and their cache (shared infrastructure:
//! the project controller fills it, the connection and agent controllers use it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use foundry_gateway_api::connection::ConnectionScope;
use foundry_gateway_client::connections::ProjectResourceId;
use foundry_gateway_client::{ConnectionsClient, ProjectClient, TokenCredential};

use crate::keys::ObjectKey;

/// A project with ready-to-use Foundry clients.
#[derive(Debug)]
pub struct ResolvedProject {
    /// ARM identity of the project.
    pub resource_id: ProjectResourceId,
    /// ARM id string.
    pub arm_id: String,
    /// Data-plane endpoint.
    pub endpoint: String,
    /// ARM connections client of the project (`accounts/{a}/projects/{p}/connections`).
    pub connections: ConnectionsClient,
    /// ARM connections client of the project's Foundry account (`accounts/{a}/connections`).
    pub account_connections: ConnectionsClient,
    /// Data-plane client.
    pub data: ProjectClient,
    /// The identity's credential (also used for Entra gateway probes).
    pub credential: Arc<dyn TokenCredential>,
}

impl ResolvedProject {
    /// The connections client of a scope.
    pub fn connections_in(&self, scope: ConnectionScope) -> &ConnectionsClient {
        match scope {
            ConnectionScope::Project => &self.connections,
            ConnectionScope::Account => &self.account_connections,
        }
    }

    /// The ARM id of connection `name` in a scope.
    pub fn connection_id(&self, scope: ConnectionScope, name: &str) -> String {
        match scope {
            ConnectionScope::Project => self.resource_id.connection_id(name),
            ConnectionScope::Account => self.resource_id.account_connection_id(name),
        }
    }
}

/// Resolved projects by `namespace/name`, with the fingerprint they were built from.
#[derive(Debug, Default)]
pub struct ProjectResolver {
    cache: Mutex<HashMap<ObjectKey, (String, Arc<ResolvedProject>)>>,
}

impl ProjectResolver {
    pub(crate) fn get(&self, key: &ObjectKey, fingerprint: &str) -> Option<Arc<ResolvedProject>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, p)| Arc::clone(p))
    }

    pub(crate) fn get_any(
        &self,
        key: &ObjectKey,
        spec_fingerprint: &str,
    ) -> Option<Arc<ResolvedProject>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(key)
            .filter(|(f, _)| f.starts_with(spec_fingerprint))
            .map(|(_, p)| Arc::clone(p))
    }

    pub(crate) fn put(&self, key: ObjectKey, fingerprint: String, project: Arc<ResolvedProject>) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (fingerprint, project));
    }

    /// Drops a deleted project.
    pub fn forget(&self, key: &ObjectKey) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}
