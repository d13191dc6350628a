//! Reflector stores of the three kinds, shared by the controllers and the metrics.

use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use kube::runtime::reflector::Store;

/// Reflector stores of the three kinds, for lookups across kinds without extra GETs.
#[derive(Clone)]
pub struct Stores {
    /// FoundryProjects.
    pub projects: Store<FoundryProject>,
    /// GatewayConnections.
    pub connections: Store<GatewayConnection>,
    /// PromptAgents.
    pub agents: Store<PromptAgent>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}
