//! GatewayConnection controller.

pub mod build;
