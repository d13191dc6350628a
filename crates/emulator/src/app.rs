//! The shared state behind one running emulator.

use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::auth::Authenticator;
use crate::config::EmulatorConfig;
use crate::control::Control;
use crate::gateway::Gateway;
use crate::state::Store;

/// Everything a request handler needs.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) config: EmulatorConfig,
    pub(crate) store: Mutex<Store>,
    pub(crate) control: Control,
    pub(crate) auth: Authenticator,
    pub(crate) gateway: Gateway,
    /// `http` or `https`, for links.
    pub(crate) scheme: &'static str,
}

impl App {
    /// Locks the store; a panic in another handler does not make the data unusable.
    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
