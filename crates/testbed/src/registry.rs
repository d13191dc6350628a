//! A release's tools, built from pinned Go modules, and an OCI registry on loopback.
//!
//! - The CNCF distribution registry (`tests/tools/release/registry`) serves images and charts
//!   over TLS on 127.0.0.1 with a certificate of a CA the caller owns, so containerd, Helm and
//!   cosign trust it through that CA and nothing else.
//! - cosign (`tests/tools/release/cosign`) signs and verifies with a key pair on disk; nothing
//!   goes to a transparency log (that needs the public Sigstore services, which are off the
//!   machine).
//!
//! Both binaries are cached outside the repository like the Kubernetes binaries, keyed by their
//! versions and a fingerprint of the tool modules.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::install::{GoBuild, ensure_installed, fingerprint, go_build_all};
use crate::part::PartProcess;
use crate::pki::{Ca, San};
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Mode, ProcessSpec};
use crate::stack_error::{StackError, StackResult};
use crate::{paths, random_hex};

/// A release tool built from its Go module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The binary's name and the tool module's folder below `tests/tools/release`.
    pub name: &'static str,
    /// The Go module.
    pub module: &'static str,
    /// Its release tag.
    pub version: &'static str,
    /// The command's package below the module.
    pub command: &'static str,
}

impl Tool {
    fn tool_module(&self) -> PathBuf {
        paths::repo_root()
            .join("tests")
            .join("tools")
            .join("release")
            .join(self.name)
    }
}

/// The CNCF distribution registry.
pub const DISTRIBUTION: Tool = Tool {
    name: "registry",
    module: "github.com/distribution/distribution/v3",
    version: "v3.1.2",
    command: "cmd/registry",
};

/// cosign.
pub const COSIGN: Tool = Tool {
    name: "cosign",
    module: "github.com/sigstore/cosign/v2",
    version: "v2.6.5",
    command: "cmd/cosign",
};

const TOOLS: [Tool; 2] = [DISTRIBUTION, COSIGN];

/// The cached release tools.
#[derive(Clone, Debug)]
pub struct ReleaseTools {
    dir: PathBuf,
}

impl ReleaseTools {
    /// The registry's binary.
    pub fn registry(&self) -> PathBuf {
        self.dir.join(DISTRIBUTION.name)
    }

    /// cosign's binary.
    pub fn cosign(&self) -> PathBuf {
        self.dir.join(COSIGN.name)
    }
}

/// Returns the cached tools, building them first (a few minutes on a cold Go cache, both at once).
pub fn ensure_release_tools() -> StackResult<ReleaseTools> {
    let mut files = Vec::new();
    for tool in TOOLS {
        check_go_mod(tool)?;
        files.push(tool.tool_module().join("go.mod"));
        files.push(tool.tool_module().join("go.sum"));
    }
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let name = format!(
        "release-tools-{}",
        TOOLS
            .iter()
            .map(|t| format!("{}-{}", t.name, t.version))
            .collect::<Vec<_>>()
            .join("-")
    );
    let print = fingerprint(&refs, &[&name, "go build -trimpath, CGO_ENABLED=0"])?;
    let dir = ensure_installed(&name, "the registry and cosign", &print, |dir| {
        let builds: Vec<GoBuild> = TOOLS
            .iter()
            .map(|tool| GoBuild {
                module_dir: tool.tool_module(),
                package: format!("{}/{}", tool.module, tool.command),
                output: dir.join(tool.name),
            })
            .collect();
        go_build_all(&builds, &dir.join("install.log"))
    })?;
    Ok(ReleaseTools { dir })
}

/// Guards the version constants: a regenerated go.mod must come with new constants, or the cache
/// key would lie.
fn check_go_mod(tool: Tool) -> StackResult<()> {
    let path = tool.tool_module().join("go.mod");
    let text = fs::read_to_string(&path).map_err(|source| StackError::read(&path, source))?;
    let wanted = format!("require {} {}", tool.module, tool.version);
    if text.lines().any(|line| line.trim() == wanted) {
        Ok(())
    } else {
        Err(StackError::Pin {
            what: tool.name,
            path,
        })
    }
}

/// Where and how to run the registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// The registry's folder: its configuration, certificate, storage and log.
    pub dir: PathBuf,
    /// The CA that issues the registry's serving certificate (for 127.0.0.1).
    pub ca: Ca,
    /// Attached (stopped with the caller) or detached.
    pub mode: Mode,
    /// How long it may take to answer `GET /v2/`.
    pub ready_timeout: Duration,
}

/// A running registry.
#[derive(Debug)]
pub struct Registry {
    host: String,
    ca_file: PathBuf,
    part: PartProcess,
}

impl Registry {
    /// Builds the tools if needed, issues the serving certificate, and starts the registry on a
    /// free port of 127.0.0.1, waiting until `GET /v2/` answers over TLS.
    pub fn start(options: &RegistryOptions) -> StackResult<Self> {
        let started = Instant::now();
        let tools = ensure_release_tools()?;
        let dir = &options.dir;
        let data = dir.join("data");
        for folder in [dir, &data] {
            fs::create_dir_all(folder).map_err(|source| StackError::create_dir(folder, source))?;
        }
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pair =
            options
                .ca
                .issue_server_cert(dir, "registry", "registry", &[San::Ip(loopback)])?;
        let port = free_loopback_ports(1)?.first().copied().unwrap_or_default();
        let host = format!("127.0.0.1:{port}");
        let config = config(&host, &data, &pair.cert, &pair.key, &random_hex(32));
        let config_path = dir.join("config.yml");
        fs::write(&config_path, config)
            .map_err(|source| StackError::write(&config_path, source))?;
        let spec = ProcessSpec {
            name: "registry".to_owned(),
            program: tools.registry(),
            args: vec!["serve".into(), config_path.into_os_string()],
            log: dir.join("registry.log"),
            cwd: dir.clone(),
            // No traces: there is no collector, and an exporter would try one.
            env: vec![
                ("OTEL_TRACES_EXPORTER".into(), Some("none".into())),
                ("OTEL_SDK_DISABLED".into(), Some("true".into())),
            ],
        };
        let mut part = PartProcess::start(spec, options.mode, dir, None)?;
        let ca_pem = options.ca.cert_pem()?;
        let probe = Probe::new(format!("https://{host}/v2/"), Some(&ca_pem), None)?;
        part.wait_ready(&probe, options.ready_timeout)?;
        eprintln!(
            "Started the registry ({} {}) at {host} in {:.1?}",
            DISTRIBUTION.module,
            DISTRIBUTION.version,
            started.elapsed()
        );
        Ok(Self {
            host,
            ca_file: options.ca.pair().cert.clone(),
            part,
        })
    }

    /// `127.0.0.1:<port>`, the host part of every reference into this registry.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The CA certificate that the registry's certificate chains to.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The registry's log.
    pub fn log(&self) -> &Path {
        self.part.log()
    }

    /// Stops the registry.
    pub fn stop(&mut self) -> StackResult<()> {
        self.part.shutdown()
    }
}

/// The registry's configuration: TLS on `host`, storage below `data` with deletes allowed, no
/// authentication (loopback only), upload state signed with `secret`.
fn config(host: &str, data: &Path, cert: &Path, key: &Path, secret: &str) -> String {
    format!(
        r#"version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: "{data}"
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: "{host}"
  secret: "{secret}"
  tls:
    certificate: "{cert}"
    key: "{key}"
  headers:
    X-Content-Type-Options: [nosniff]
"#,
        data = data.display(),
        cert = cert.display(),
        key = key.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_modules_pin_the_versions_of_the_constants() {
        for tool in TOOLS {
            check_go_mod(tool).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn the_configuration_listens_on_loopback_with_tls() {
        let text = config(
            "127.0.0.1:5000",
            Path::new("/d/data"),
            Path::new("/d/registry.crt"),
            Path::new("/d/registry.key"),
            "s",
        );
        assert!(text.contains("addr: \"127.0.0.1:5000\""), "{text}");
        assert!(text.contains("certificate: \"/d/registry.crt\""), "{text}");
        assert!(text.contains("rootdirectory: \"/d/data\""), "{text}");
    }
}
