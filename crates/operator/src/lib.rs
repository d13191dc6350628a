//! The Foundry gateway operator: controllers for FoundryProject, GatewayConnection and
//! PromptAgent.

pub mod backoff;
pub mod status;
