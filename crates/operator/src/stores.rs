//! Reflector stores of the three kinds, shared by the controllers and the metrics.

use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use kube::runtime::reflector::Store;
use tokio::sync::watch;

/// Reflector stores of the three kinds, for lookups across kinds without extra GETs.
#[derive(Clone)]
pub struct Stores {
    /// FoundryProjects.
    pub projects: Store<FoundryProject>,
    /// GatewayConnections.
    pub connections: Store<GatewayConnection>,
    /// PromptAgents.
    pub agents: Store<PromptAgent>,
    /// Whether each store holds its first full list.
    pub filled: Filled,
}

/// Whether reflector stores hold their first full list, as the streams that fill them say.
///
/// `Store::wait_until_ready` cannot serve here: it wakes only the last of the tasks waiting on
/// it, and kube-runtime's runner already waits on the controller's own store; a watch channel
/// wakes every waiter.
#[derive(Clone, Debug)]
pub struct Filled {
    stores: Vec<watch::Receiver<bool>>,
    /// Turns `true` when the operator stops: the streams that fill the stores are no longer
    /// read then, so a reconcile waiting for them must give up.
    stop: Option<watch::Receiver<bool>>,
}

impl Filled {
    /// One store's signal: the sender is told `true` after the store took the initial list.
    pub fn channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
        watch::channel(false)
    }

    /// All of these stores, given up on when `stop` turns `true`.
    pub fn of(stores: Vec<watch::Receiver<bool>>, stop: watch::Receiver<bool>) -> Self {
        Self {
            stores,
            stop: Some(stop),
        }
    }

    /// Stores filled by hand (tests): nothing to wait for.
    pub fn already() -> Self {
        Self {
            stores: Vec::new(),
            stop: None,
        }
    }

    /// Waits until every store is filled (a store whose stream has ended is not waited for);
    /// false when the operator stops first.
    pub async fn wait(&self) -> bool {
        let filled = async {
            for store in &self.stores {
                let mut store = store.clone();
                let _ = store.wait_for(|filled| *filled).await;
            }
        };
        let Some(stop) = &self.stop else {
            filled.await;
            return true;
        };
        let mut stop = stop.clone();
        tokio::select! {
            () = filled => true,
            _ = stop.wait_for(|stopping| *stopping) => false,
        }
    }
}

impl Stores {
    /// Waits until every store holds its first full list. kube-runtime waits for a controller's
    /// own store before its first reconcile; the others are not, and an object read from a store
    /// that is still filling looks missing (after a restart or a leader change, a connection
    /// would report its project "does not exist" for a moment). The controllers keep reading
    /// their watches while a reconcile waits here, so no store waits on another. False when the
    /// operator stops before the stores are filled.
    pub async fn wait_until_ready(&self) -> bool {
        self.filled.wait().await
    }
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores").finish_non_exhaustive()
    }
}
