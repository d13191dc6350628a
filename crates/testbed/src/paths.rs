//! Where the repository, the binary cache and the default state directory are.

use std::env;
use std::path::{Path, PathBuf};

use crate::{Error, KUBERNETES_VERSION, Result};

/// Overrides the repository root (default: two levels above this crate's manifest).
pub const ENV_REPO_ROOT: &str = "FOUNDRY_REPO_ROOT";

/// Overrides the cache root (default: `${XDG_CACHE_HOME:-$HOME/.cache}/foundry-gateway-operator`).
pub const ENV_CACHE: &str = "FOUNDRY_TESTBED_CACHE";

/// The repository root: `$FOUNDRY_REPO_ROOT`, else the checkout this crate was compiled from.
pub fn repo_root() -> PathBuf {
    match env::var_os(ENV_REPO_ROOT) {
        Some(root) if !root.is_empty() => PathBuf::from(root),
        _ => {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            // crates/testbed -> crates -> repository root
            manifest_dir
                .parent()
                .and_then(Path::parent)
                .unwrap_or(manifest_dir)
                .to_path_buf()
        }
    }
}

/// The Go tool module that builds kube-apiserver and etcd.
pub fn kube_tool_module() -> PathBuf {
    repo_root().join("tests").join("tools").join("kube")
}

/// The default state directory of `cargo xtask testbed up`: `<repo>/.testbed`.
pub fn default_state_dir() -> PathBuf {
    repo_root().join(".testbed")
}

/// The default state directory of `cargo xtask stack up`: `<repo>/.stack`.
pub fn default_stack_dir() -> PathBuf {
    repo_root().join(".stack")
}

/// The cache root outside the repository; every part of the test bed keys its own folder below it
/// by version.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = non_empty_var(ENV_CACHE) {
        return Ok(PathBuf::from(dir));
    }
    let base = match non_empty_var("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(non_empty_var("HOME").ok_or(Error::NoCacheDir)?).join(".cache"),
    };
    Ok(base.join("foundry-gateway-operator"))
}

/// The folder that holds kube-apiserver and etcd of [`KUBERNETES_VERSION`].
pub fn kube_cache_dir() -> Result<PathBuf> {
    Ok(cache_root()?.join(format!("kube-v{KUBERNETES_VERSION}")))
}

fn non_empty_var(name: &str) -> Option<std::ffi::OsString> {
    env::var_os(name).filter(|value| !value.is_empty())
}
