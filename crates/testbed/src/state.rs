//! `state.json`: what a running test bed is, so another process (the CLI, a test run) can find,
//! check and stop it. It holds no secret; the admin token stays in its own file.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File name of the state inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// One process of a running test bed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessRecord {
    /// Short name (`etcd`, `kube-apiserver`).
    pub name: String,
    /// Process id.
    pub pid: u32,
    /// The executable, to tell a reused pid from ours.
    pub program: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

/// The content of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// Kubernetes version of the binaries that run.
    pub kubernetes_version: String,
    /// `None` for a detached test bed, else the pid whose end ends it.
    pub owner: Option<u32>,
    /// Whether the state directory is deleted when the test bed stops.
    pub temporary: bool,
    /// `https://127.0.0.1:PORT`.
    pub server_url: String,
    /// etcd's client URL.
    pub etcd_url: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The CA certificate (PEM) that signed the apiserver's serving certificate.
    pub ca_file: PathBuf,
    /// The file holding the admin bearer token.
    pub admin_token_file: PathBuf,
    /// The apiserver's audit log, when it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_log: Option<PathBuf>,
    /// Processes, in start order.
    pub processes: Vec<ProcessRecord>,
}

impl State {
    /// Reads `<dir>/state.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoState {
                    path: dir.to_path_buf(),
                });
            }
            Err(source) => return Err(Error::ReadFile { path, source }),
        };
        serde_json::from_str(&text).map_err(|source| Error::ParseState { path, source })
    }

    /// Writes `<dir>/state.json` atomically (temp file, then rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let temp = dir.join(format!(".{STATE_FILE}.tmp"));
        let text = serde_json::to_string_pretty(self).map_err(|source| Error::ParseState {
            path: path.clone(),
            source,
        })?;
        fs::write(&temp, text + "\n").map_err(|source| Error::WriteFile {
            path: temp.clone(),
            source,
        })?;
        fs::rename(&temp, &path).map_err(|source| Error::WriteFile { path, source })
    }
}
