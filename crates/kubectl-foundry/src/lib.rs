//! `kubectl foundry`: the command-line companion of the Foundry gateway operator.
//!
//! - `import bicep`: the Foundry samples' connection parameter files as manifests ([`bicep`]);
//! - `import project`: a live project's gateway connections and agents as manifests ([`live`]);
//! - `status`: one table across the three kinds with each not-Ready object's fix ([`status`],
//!   [`fixes`]);
//! - `plan`: what the operator would write to Foundry, computed with the operator's own
//!   functions, without writing ([`plan`]).
//!
//! Everything is printed; nothing is applied. Foundry is read with the caller's own tokens
//! (`FOUNDRY_TOKEN` for the data plane, `FOUNDRY_ARM_TOKEN` for ARM, e.g. from
//! `az account get-access-token`), never with the project identity's Secret.

pub mod bicep;
pub mod fixes;
pub mod live;
pub mod manifest;
pub mod plan;
pub mod status;

mod cmd;

pub use cmd::{Cli, Command, Env, FoundryArgs, ImportCommand, Policy, execute};
/// The operator crate whose pure functions `plan` uses (re-exported for tests).
pub use foundry_gateway_operator as operator;
