//! The official Foundry SDK (`azure-ai-projects`, `openai`) in a cached virtual environment made
//! from `tests/sdk/requirements.txt`, and a runner for `tests/sdk/flow.py`, the documented
//! "bring your own AI gateway" flow.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::install::{self, ensure_installed, fingerprint, install_venv, requirement_pin};
use crate::stack_error::{StackError, StackResult};
use crate::{Secret, paths};

/// `tests/sdk`.
pub fn sdk_dir() -> PathBuf {
    paths::repo_root().join("tests").join("sdk")
}

/// The Python interpreter of the SDK's virtual environment
/// (`<cache>/sdk-azure-ai-projects-<version>-py<minor>`), installed first when missing or when
/// `tests/sdk/requirements.txt` changed.
pub fn sdk_python() -> StackResult<PathBuf> {
    let requirements = sdk_dir().join("requirements.txt");
    let version = requirement_pin(&requirements, "azure-ai-projects")?;
    let python = install::python()?;
    let print = fingerprint(&[&requirements], &[&python.identity])?;
    let name = format!("sdk-azure-ai-projects-{version}-py{}", python.minor);
    let dir = ensure_installed(
        &name,
        &format!("azure-ai-projects {version}"),
        &print,
        |dir| install_venv(dir, "the Foundry SDK", &[&requirements], None),
    )?;
    Ok(install::venv_python(&dir))
}

/// Which key of `extra_body` carries the agent reference in `responses.create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceForm {
    /// `agent_reference`, the current form.
    AgentReference,
    /// `agent`, the legacy form.
    Agent,
}

impl ReferenceForm {
    fn flag(self) -> &'static str {
        match self {
            Self::AgentReference => "agent_reference",
            Self::Agent => "agent",
        }
    }
}

/// One run of `tests/sdk/flow.py`.
#[derive(Debug, Clone)]
pub struct SdkFlow {
    /// The project endpoint.
    pub endpoint: String,
    /// The data-plane bearer token (audience `https://ai.azure.com`).
    pub token: Secret,
    /// The gateway connection's name.
    pub connection: String,
    /// The model (deployment) inside the connection.
    pub model: String,
    /// The agent name.
    pub agent_name: String,
    /// The expected reply; `None` expects "model not found".
    pub expect: Option<String>,
    /// How the agent is referenced.
    pub reference_form: ReferenceForm,
    /// The CA (PEM file) the SDK trusts.
    pub ca_file: PathBuf,
}

/// What a flow run printed, and whether it passed.
#[derive(Debug, Clone)]
pub struct FlowOutcome {
    /// Exit code 0.
    pub passed: bool,
    /// Its stdout and stderr.
    pub output: String,
}

impl SdkFlow {
    /// Runs the flow with the SDK's interpreter.
    pub fn run(&self) -> StackResult<FlowOutcome> {
        let python = sdk_python()?;
        self.run_with(&python)
    }

    /// Runs the flow with `python`.
    pub fn run_with(&self, python: &Path) -> StackResult<FlowOutcome> {
        let mut command = Command::new(python);
        command
            .arg(sdk_dir().join("flow.py"))
            .args(["--endpoint", &self.endpoint])
            .args(["--connection", &self.connection])
            .args(["--model", &self.model])
            .args(["--agent-name", &self.agent_name])
            .args(["--reference-form", self.reference_form.flag()]);
        match &self.expect {
            Some(reply) => command.args(["--expect", reply]),
            None => command.arg("--expect-model-not-found"),
        };
        // The token goes through the environment, not the command line `ps` shows.
        let output = command
            .env("FOUNDRY_TOKEN", self.token.expose())
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| StackError::Tool {
                command: "python flow.py".to_owned(),
                message: source.to_string(),
            })?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(FlowOutcome {
            passed: output.status.success(),
            output: text.replace(self.token.expose(), "<token>"),
        })
    }
}
