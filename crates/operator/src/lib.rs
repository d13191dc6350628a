//! The Foundry gateway operator: controllers for FoundryProject, GatewayConnection and
//! PromptAgent, an admin server with metrics and health endpoints, and Lease leader election.

pub mod admin;
pub mod backoff;
pub mod connection;
pub mod leader;
pub mod metrics;
pub mod settings;
pub mod status;
pub mod telemetry;
