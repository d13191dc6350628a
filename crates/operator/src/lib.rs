//! The Foundry gateway operator: controllers for FoundryProject, GatewayConnection and
//! PromptAgent, an admin server with metrics and health endpoints, and Lease leader election.

#![warn(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::too_many_lines
)]
#![cfg_attr(
    test,
    allow(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod admin;
pub mod agent;
pub mod agent_definition;
pub mod backoff;
pub mod clients;
pub mod connection;
pub mod context;
pub mod controller;
pub mod digest;
pub mod failure;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod ownership;
pub mod policy;
pub mod probes;
pub mod project;
pub mod run;
pub mod settings;
pub mod status;
pub mod stores;
pub mod telemetry;
pub mod triggers;

pub use controller::apply_status;
