use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while building, starting, reading or stopping the test bed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to write {path}")]
    WriteFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to remove {path}")]
    RemoveDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {path} is not empty")]
    StateDirNotEmpty { path: PathBuf },
    #[error("no test bed state in {path}")]
    NoState { path: PathBuf },
    #[error("failed to parse test bed state {path}")]
    ParseState {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot locate the home directory: set HOME, XDG_CACHE_HOME or FOUNDRY_TESTBED_CACHE")]
    NoCacheDir,
    #[error("failed to lock the binary cache {path}")]
    LockCache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not require k8s.io/kubernetes v{expected}: regenerate it with gen-go-mod.sh"
    )]
    GoModMismatch {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("failed to build {target} with go ({status})")]
    GoBuild { target: String, status: ExitStatus },
    #[error("failed to find a free port on 127.0.0.1")]
    FreePort(#[source] std::io::Error),
    #[error("failed to run {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("openssl {step} failed ({status}): {stderr}")]
    Openssl {
        step: &'static str,
        status: ExitStatus,
        stderr: String,
    },
    #[error("failed to read the CA certificate")]
    CaCertificate(#[source] Box<ureq::Error>),
    #[error("{name} exited during startup ({status}); {log}")]
    ExitedDuringStartup {
        name: String,
        status: String,
        log: Box<LogTail>,
    },
    #[error("{name} was not ready at {url} within {timeout:?} (last answer: {last}); {log}")]
    NotReady {
        name: String,
        url: String,
        timeout: Duration,
        last: String,
        log: Box<LogTail>,
    },
    #[error("failed to stop {name} (pid {pid})")]
    Stop { name: String, pid: u32 },
    #[error("the test bed has no process {name}, or this handle did not start it")]
    NoProcess { name: String },
    #[error(transparent)]
    Node(Box<crate::node::NodeError>),
}

impl Error {
    pub(crate) fn node(err: crate::node::NodeError) -> Self {
        Self::Node(Box::new(err))
    }
}

/// The end of a process's log, shown when it failed to start.
#[derive(Debug)]
pub struct LogTail {
    /// The log file.
    pub path: PathBuf,
    /// Its last lines.
    pub tail: String,
}

impl std::fmt::Display for LogTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "last lines of {}:\n{}", self.path.display(), self.tail)
    }
}
