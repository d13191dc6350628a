//! The local test bed: real parts on loopback (docs/ARCHITECTURE.md, Test layers).
//!
//! Today it runs Kubernetes: a kube-apiserver and an etcd built from Go modules, with real RBAC and
//! real CRD validation, on free ports of 127.0.0.1. Further parts (a LiteLLM gateway, an OAuth2
//! token server, the Foundry emulator) are meant to be sibling modules of [`kubernetes`] that use
//! the same building blocks: [`process`] to run and supervise a child, [`pki`] for throwaway
//! certificates, [`ports`] for free ports and [`probe`] to wait for readiness.
//!
//! The API is synchronous (std::process and a blocking HTTP client), so it can be called from a
//! tokio test without a nested runtime.
//!
//! ```no_run
//! # fn main() -> Result<(), foundry_gateway_testbed::Error> {
//! use foundry_gateway_testbed::{Options, Testbed};
//! let mut bed = Testbed::start(Options::default())?;
//! println!("export KUBECONFIG={}", bed.kubeconfig_path().display());
//! bed.stop()?;
//! # Ok(())
//! # }
//! ```

pub mod binaries;
pub mod cargo_bin;
mod error;
pub mod kubernetes;
pub mod paths;
pub mod pki;
pub mod ports;
pub mod probe;
pub mod process;
mod secret;
mod state;
mod testbed;

pub mod emulator;
pub mod flux;
pub mod gateway;
pub mod http;
pub mod image;
pub mod install;
pub mod node;
pub mod oci;
pub mod operator;
mod part;
pub mod python;
pub mod registry;
pub mod stack;
pub mod stack_error;
pub mod token_server;

pub use binaries::{KubeBinaries, NodeBinaries, ensure_kube_binaries, ensure_node_binaries};
pub use error::{Error, LogTail};
pub use secret::Secret;
pub use state::{ProcessRecord, State};
pub use testbed::{Mode, Options, Testbed};

/// The Kubernetes version of the test bed, without the leading `v`. It matches the k8s-openapi
/// feature of the workspace and `tests/tools/kube/go.mod`, and keys the binary cache.
pub const KUBERNETES_VERSION: &str = "1.36.3";

/// The etcd version that `tests/tools/kube/go.mod` selects for [`KUBERNETES_VERSION`].
pub const ETCD_VERSION: &str = "3.6.8";

/// Environment variable naming a running test bed's state directory, used by the test harness.
pub const ENV_TESTBED_DIR: &str = "FOUNDRY_TESTBED_DIR";

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Random lowercase hex digits from a cryptographically secure generator, `2 * bytes` long.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
