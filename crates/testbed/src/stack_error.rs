use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::LogTail;

/// What can go wrong while installing, starting, calling or stopping the parts of the stack (the
/// gateway, the token server, the emulator, the SDK). Failures of the shared building blocks
/// (processes, certificates, files) arrive as [`StackError::Testbed`].
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Testbed(#[from] crate::Error),
    #[error("failed to install {what}: `{command}` exited with {status}; {log}")]
    Install {
        what: String,
        command: String,
        status: ExitStatus,
        log: Box<LogTail>,
    },
    #[error("failed to run `{command}`: {message}")]
    Tool { command: String, message: String },
    #[error("{what} is not pinned in {path}")]
    Pin { what: &'static str, path: PathBuf },
    #[error("failed to build the {bin} binary with cargo ({status})")]
    BuildBinary { bin: String, status: ExitStatus },
    #[error("{name} printed no listen line within {timeout:?}; {log}")]
    NoListenLine {
        name: String,
        timeout: Duration,
        log: Box<LogTail>,
    },
    #[error("{what} did not happen within {timeout:?} (or the process ended); {log}")]
    WaitTimedOut {
        what: String,
        timeout: Duration,
        log: Box<LogTail>,
    },
    #[error("request {method} {url} failed: {message}")]
    Request {
        method: &'static str,
        url: String,
        message: String,
    },
    #[error("{method} {url} answered HTTP {status}: {body}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    #[error("failed to parse the answer of {url}")]
    Parse {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} is not running")]
    NotRunning { what: &'static str },
}

impl StackError {
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Testbed(crate::Error::WriteFile {
            path: path.into(),
            source,
        })
    }

    pub(crate) fn read(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Testbed(crate::Error::ReadFile {
            path: path.into(),
            source,
        })
    }

    pub(crate) fn create_dir(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Testbed(crate::Error::CreateDir {
            path: path.into(),
            source,
        })
    }
}

/// Result type of the stack's parts.
pub type StackResult<T> = std::result::Result<T, StackError>;
