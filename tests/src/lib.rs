//! Cluster tests of the Foundry gateway operator against the real test bed (docs/ARCHITECTURE.md,
//! Test layers).
//!
//! [`harness`] gives every test binary one test bed (a running one if there is one, else its own,
//! ended with the test process), installs the CRDs once, and gives each test a fresh labelled
//! namespace whose custom objects and events are printed when the test fails.

pub mod fixtures;
pub mod harness;
pub mod hostile;
pub mod world;
