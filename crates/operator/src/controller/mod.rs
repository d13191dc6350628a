//! What the three controllers share: the finalizer wrapper and the requeue policy of errors
//! that escape a reconcile ([`finalizer`]), status writes ([`status`]), events ([`events`]), the pipeline steps and a failure that
//! names its step ([`step`]), the grace before a reconcile says Reconciling ([`slow`]),
//! per-object memory ([`memory`]) and its typed keys ([`crate::keys`]).
//!
//! Each controller (`project`, `connection`, `agent`) runs with a [`memory::Scoped`] context:
//! the shared infrastructure plus its own memory, so nothing per object lives in a static and
//! [`crate::context::Context`] depends on no controller.

pub mod events;
pub mod finalizer;
pub mod memory;
pub mod references;
pub mod slow;
pub mod status;
pub mod step;

pub use crate::keys::{ObjectKey, RefKind, RetryKey};
pub use events::publish;
pub use finalizer::{Error, Managed, error_policy, with_finalizer};
pub use memory::{PerObject, Scoped};
pub use references::read_secret_key;
pub use status::apply_status;
pub use step::{AtStep, Failed, Step};
