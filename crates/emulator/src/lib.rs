//! A faithful, offline Microsoft Foundry for the "bring your own AI gateway" feature.
//!
//! One loopback server holds both planes: ARM connections of projects
//! (`/subscriptions/…/projects/{project}/connections`) and of their accounts
//! (`/subscriptions/…/accounts/{account}/connections`), and the project data plane
//! (`/api/projects/{project}/…`, including the OpenAI-compatible `/openai/v1`). A response for
//! an agent really calls the gateway of the agent's connection. Every request is recorded and
//! faults can be injected under `/_emulator/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use foundry_gateway_emulator::{AuthMode, Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::new(AuthMode::StaticToken("t".into()))).await?;
//! println!("{}", emulator.project_endpoint("local-project"));
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod agents;
mod app;
mod arm;
mod auth;
pub mod cli;
pub mod config;
mod connection;
mod control;
mod errors;
mod gateway;
mod inventory;
mod openai;
mod paging;
mod responses;
mod routes;
mod server;
mod sse;
mod state;
mod util;

pub use config::{AuthMode, EmulatorConfig, IdentityClient, ProjectId, ProjectIdentity, TlsPem};
pub use server::{Emulator, RunningEmulator, StartError};

/// api-versions the ARM connection operations accept.
pub const ARM_API_VERSIONS: &[&str] = arm::ARM_API_VERSIONS;
/// api-versions the data-plane project APIs accept.
pub const DATA_API_VERSIONS: &[&str] = agents::DATA_API_VERSIONS;
