//! Installs of the stack's tools (a Python virtual environment, a node_modules folder) into the
//! cache outside the repository, one folder per tool and version below [`paths::cache_root`].
//!
//! An install is idempotent (a folder whose completion marker carries the fingerprint of the
//! inputs is used as is, without taking any lock), locked against concurrent runs in this and
//! other processes (a lock file beside the folder), and atomic in effect: the marker is written
//! last, and a folder without a matching marker is removed and installed again. Virtual
//! environments are not relocatable, so they are installed in place rather than renamed.

use std::ffi::OsStr;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use crate::stack_error::{StackError, StackResult};
use crate::{Error, LogTail, paths};

/// File in an installed folder that says the install finished, holding its fingerprint.
const MARKER: &str = ".installed";

/// Overrides the Python interpreter the virtual environments are made from (default `python3`).
pub const ENV_PYTHON: &str = "FOUNDRY_TESTBED_PYTHON";

/// Overrides the node executable (default `node`; `npm` is looked up on `PATH`).
pub const ENV_NODE: &str = "FOUNDRY_TESTBED_NODE";

/// A fingerprint of install inputs: file contents and extra facts, as hex SHA-256.
pub(crate) fn fingerprint(files: &[&Path], facts: &[&str]) -> StackResult<String> {
    let mut hasher = Sha256::new();
    for file in files {
        let bytes = fs::read(file).map_err(|source| StackError::read(*file, source))?;
        hasher.update(
            file.file_name()
                .map(OsStr::as_encoded_bytes)
                .unwrap_or_default(),
        );
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    for fact in facts {
        hasher.update((fact.len() as u64).to_le_bytes());
        hasher.update(fact.as_bytes());
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Returns `<cache>/<name>`, running `install` into it first unless it already holds a finished
/// install with this `fingerprint`. `what` names the tool in messages.
pub(crate) fn ensure_installed(
    name: &str,
    what: &str,
    fingerprint: &str,
    install: impl FnOnce(&Path) -> StackResult<()>,
) -> StackResult<PathBuf> {
    ensure_installed_in(&paths::cache_root()?, name, what, fingerprint, install)
}

fn ensure_installed_in(
    root: &Path,
    name: &str,
    what: &str,
    fingerprint: &str,
    install: impl FnOnce(&Path) -> StackResult<()>,
) -> StackResult<PathBuf> {
    let dir = root.join(name);
    if is_installed(&dir, fingerprint) {
        return Ok(dir);
    }
    fs::create_dir_all(root).map_err(|source| StackError::create_dir(root, source))?;
    let lock_path = root.join(format!(".{name}.lock"));
    let _lock = lock(&lock_path, what)?;
    // Another process may have finished the install while this one waited.
    if is_installed(&dir, fingerprint) {
        return Ok(dir);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|source| {
            StackError::Testbed(Error::RemoveDir {
                path: dir.clone(),
                source,
            })
        })?;
    }
    fs::create_dir_all(&dir).map_err(|source| StackError::create_dir(&dir, source))?;
    eprintln!("Installing {what} into {}", dir.display());
    let started = Instant::now();
    if let Err(err) = install(&dir) {
        // Keep the log of a failed install next to the cache for a look, drop the rest.
        let log = dir.join("install.log");
        let kept = root.join(format!("{name}.failed-install.log"));
        let _ = fs::rename(&log, &kept);
        let _ = fs::remove_dir_all(&dir);
        return Err(err);
    }
    let marker = dir.join(MARKER);
    let temp = dir.join(format!("{MARKER}.tmp"));
    fs::write(&temp, fingerprint).map_err(|source| StackError::write(&temp, source))?;
    fs::rename(&temp, &marker).map_err(|source| StackError::write(&marker, source))?;
    eprintln!("Installed {what} in {:.1?}", started.elapsed());
    Ok(dir)
}

fn is_installed(dir: &Path, fingerprint: &str) -> bool {
    fs::read_to_string(dir.join(MARKER)).is_ok_and(|text| text.trim() == fingerprint)
}

fn lock(path: &Path, what: &str) -> StackResult<File> {
    let lock_error = |source| {
        StackError::Testbed(Error::LockCache {
            path: path.to_path_buf(),
            source,
        })
    };
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!("Waiting for another install of {what} ({})", path.display());
            file.lock().map_err(lock_error)?;
        }
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    Ok(file)
}

/// A `go` command in `dir` (a pinned tool module): the machine's own Go, no cgo.
pub(crate) fn go_command(dir: &Path) -> Command {
    let mut command = Command::new("go");
    command
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0");
    command
}

/// One `go build` of a package of a tool module pinned in the repository.
#[derive(Debug, Clone)]
pub(crate) struct GoBuild {
    /// The tool module (its go.mod and go.sum pin everything).
    pub module_dir: PathBuf,
    /// The package to build, a module path or `.`.
    pub package: String,
    /// The binary to write.
    pub output: PathBuf,
}

/// Runs `builds` at once (they share the Go build cache and overlap linking), their output
/// appended to `log`; the first failure carries the log's tail.
pub(crate) fn go_build_all(builds: &[GoBuild], log: &Path) -> StackResult<()> {
    let mut running = Vec::new();
    for build in builds {
        let (out, err) = log_sinks(log)?;
        let child = go_command(&build.module_dir)
            .args(["build", "-mod=readonly", "-trimpath", "-o"])
            .arg(&build.output)
            .arg(&build.package)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| StackError::Tool {
                command: format!("go build {}", build.package),
                message: source.to_string(),
            })?;
        running.push((build.package.clone(), child));
    }
    let mut failure = None;
    for (package, mut child) in running {
        let status = child.wait().map_err(|source| StackError::Tool {
            command: format!("go build {package}"),
            message: source.to_string(),
        })?;
        if !status.success() && failure.is_none() {
            failure = Some(StackError::Install {
                what: package.clone(),
                command: format!("go build {package}"),
                status,
                log: Box::new(LogTail {
                    tail: tail(log, 30),
                    path: log.to_path_buf(),
                }),
            });
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Runs `command` with its output appended to `log`; a failure carries the log's tail.
pub(crate) fn run_logged(what: &str, command: &mut Command, log: &Path) -> StackResult<()> {
    let (out, err) = log_sinks(log)?;
    let shown = describe(command);
    let status = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| StackError::Tool {
            command: shown.clone(),
            message: source.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(StackError::Install {
            what: what.to_owned(),
            command: shown,
            status,
            log: Box::new(LogTail {
                path: log.to_path_buf(),
                tail: tail(log, 30),
            }),
        })
    }
}

/// `log` opened for appending, twice: a command's stdout and stderr.
pub(crate) fn log_sinks(log: &Path) -> StackResult<(File, File)> {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|source| StackError::write(log, source))?;
    let err = out
        .try_clone()
        .map_err(|source| StackError::write(log, source))?;
    Ok((out, err))
}

/// Runs `command` and returns its trimmed stdout.
pub(crate) fn output_of(command: &mut Command) -> StackResult<String> {
    let shown = describe(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| StackError::Tool {
            command: shown.clone(),
            message: source.to_string(),
        })?;
    if !output.status.success() {
        return Err(StackError::Tool {
            command: shown,
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    format!("{program} {}", args.join(" ")).trim().to_owned()
}

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// Upstream version of the pinned `promtool` (Debian bookworm's `prometheus` package).
pub const PROMTOOL_VERSION: &str = "2.42.0";

/// Overrides the `promtool` executable (default: the pinned one in the cache).
pub const ENV_PROMTOOL: &str = "FOUNDRY_PROMTOOL";

/// Prometheus's `promtool` (`$FOUNDRY_PROMTOOL`, else [`PROMTOOL_VERSION`] in the cache): taken
/// out of Debian's `prometheus` package with `apt-get download` and `dpkg-deb -x`, so no root and
/// no system install is needed, only the apt package lists (read with `apt-get update` when the
/// download fails without them). The package's upstream version must be
/// the pinned one; a Debian revision bump (a security fix) is accepted.
pub fn promtool() -> StackResult<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_PROMTOOL).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let name = format!("promtool-{PROMTOOL_VERSION}");
    let facts = format!("promtool {PROMTOOL_VERSION} from the Debian prometheus package");
    let fingerprint = fingerprint(&[], &[&facts])?;
    let dir = ensure_installed(&name, "promtool", &fingerprint, install_promtool)?;
    Ok(dir.join("promtool"))
}

fn install_promtool(dir: &Path) -> StackResult<()> {
    let what = "promtool";
    let log = dir.join("install.log");
    let unpacked = dir.join("unpacked");
    unpack_debian_packages(what, &["prometheus"], dir, &unpacked, &log)?;
    let binary = dir.join("promtool");
    let extracted = unpacked.join("usr").join("bin").join("promtool");
    fs::rename(&extracted, &binary).map_err(|source| StackError::write(&binary, source))?;
    let _ = fs::remove_dir_all(&unpacked);
    let version = output_of(Command::new(&binary).arg("--version"))?;
    let expected = format!("promtool, version {PROMTOOL_VERSION}");
    if version.starts_with(&expected) {
        Ok(())
    } else {
        Err(StackError::Tool {
            command: "promtool --version".to_owned(),
            message: format!(
                "the Debian prometheus package ships `{}`, expected {PROMTOOL_VERSION}",
                version.lines().next().unwrap_or_default()
            ),
        })
    }
}

/// Downloads Debian's `packages` with `apt-get download` into `work/download` (reading the package
/// lists with `apt-get update` once when the download fails without them) and unpacks each with
/// `dpkg-deb -x` into `into`: no root and no system install. The download folder is removed.
pub(crate) fn unpack_debian_packages(
    what: &str,
    packages: &[&str],
    work: &Path,
    into: &Path,
    log: &Path,
) -> StackResult<()> {
    let download = work.join("download");
    fs::create_dir_all(&download).map_err(|source| StackError::create_dir(&download, source))?;
    let fetch = || {
        run_logged(
            what,
            Command::new("apt-get")
                .arg("download")
                .args(packages)
                .current_dir(&download),
            log,
        )
    };
    if fetch().is_err() {
        // A fresh machine may have no package lists yet: read them once, then try again.
        run_logged(what, Command::new("apt-get").arg("update"), log)?;
        fetch()?;
    }
    let debs: Vec<PathBuf> = fs::read_dir(&download)
        .map_err(|source| StackError::read(&download, source))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "deb"))
        .collect();
    if debs.len() < packages.len() {
        return Err(StackError::Tool {
            command: format!("apt-get download {}", packages.join(" ")),
            message: format!(
                "{} of {} packages were downloaded",
                debs.len(),
                packages.len()
            ),
        });
    }
    for deb in &debs {
        run_logged(
            what,
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(into),
            log,
        )?;
    }
    let _ = fs::remove_dir_all(&download);
    Ok(())
}

/// The Python interpreter virtual environments are made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Python {
    /// The interpreter as found (`$FOUNDRY_TESTBED_PYTHON` or `python3`).
    pub program: PathBuf,
    /// `major.minor`, part of every cache folder name (`py3.11`).
    pub minor: String,
    /// The full version and the real path of the interpreter, part of the fingerprints.
    pub identity: String,
}

/// The interpreter of this machine, asked once per process.
pub fn python() -> StackResult<&'static Python> {
    static PYTHON: OnceLock<Python> = OnceLock::new();
    if let Some(found) = PYTHON.get() {
        return Ok(found);
    }
    let program = std::env::var_os(ENV_PYTHON)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let answer = output_of(Command::new(&program).args([
        "-c",
        "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.version.split()[0]); \
         import os; print(os.path.realpath(sys.executable))",
    ]))?;
    let mut lines = answer.lines();
    let minor = lines.next().unwrap_or_default().trim().to_owned();
    let identity = lines.collect::<Vec<_>>().join(" ");
    Ok(PYTHON.get_or_init(|| Python {
        program,
        minor,
        identity,
    }))
}

/// Makes `<dir>/venv` and installs the requirement files into it, logging to `<dir>/install.log`.
pub(crate) fn install_venv(
    dir: &Path,
    what: &str,
    requirements: &[&Path],
    constraints: Option<&Path>,
) -> StackResult<()> {
    let python = python()?;
    let log = dir.join("install.log");
    let venv = dir.join("venv");
    run_logged(
        what,
        Command::new(&python.program)
            .args(["-m", "venv"])
            .arg(&venv),
        &log,
    )?;
    let mut pip = Command::new(venv_python(dir));
    pip.args([
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
    ]);
    for file in requirements {
        pip.arg("-r").arg(file);
    }
    if let Some(file) = constraints {
        pip.arg("-c").arg(file);
    }
    run_logged(what, &mut pip, &log)
}

/// The interpreter of the virtual environment installed in `dir`.
pub(crate) fn venv_python(dir: &Path) -> PathBuf {
    dir.join("venv").join("bin").join("python")
}

/// The node executable (`$FOUNDRY_TESTBED_NODE` or `node`).
pub(crate) fn node() -> PathBuf {
    std::env::var_os(ENV_NODE)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("node"), PathBuf::from)
}

/// Reads the exact pin `name==version` from a requirements file.
pub(crate) fn requirement_pin(file: &Path, name: &str) -> StackResult<String> {
    let text = fs::read_to_string(file).map_err(|source| StackError::read(file, source))?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter_map(|line| line.split_once("=="))
        .find(|(package, _)| {
            let base = package.split('[').next().unwrap_or_default().trim();
            base.eq_ignore_ascii_case(name)
        })
        .map(|(_, version)| version.trim().to_owned())
        .ok_or(StackError::Pin {
            what: "the package",
            path: file.to_path_buf(),
        })
}

/// Writes `text` to `path`, readable by its owner only (0600), replacing any previous file.
pub(crate) fn write_private(path: &Path, text: &str) -> StackResult<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = fs::remove_file(path);
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| StackError::write(path, source))?;
    file.write_all(text.as_bytes())
        .map_err(|source| StackError::write(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_content_and_facts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requirements.txt");
        fs::write(&file, "a==1\n").unwrap();
        let one = fingerprint(&[&file], &["3.11"]).unwrap();
        assert_eq!(one, fingerprint(&[&file], &["3.11"]).unwrap());
        assert_ne!(one, fingerprint(&[&file], &["3.12"]).unwrap());
        fs::write(&file, "a==2\n").unwrap();
        assert_ne!(one, fingerprint(&[&file], &["3.11"]).unwrap());
    }

    #[test]
    fn pins_are_read_with_extras_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("requirements.txt");
        fs::write(
            &file,
            "# c\nlitellm[proxy]==1.102.4  # the gateway\nprisma==0.15.0\n",
        )
        .unwrap();
        assert_eq!(requirement_pin(&file, "litellm").unwrap(), "1.102.4");
        assert_eq!(requirement_pin(&file, "prisma").unwrap(), "0.15.0");
        assert!(requirement_pin(&file, "openai").is_err());
    }

    #[test]
    fn an_install_runs_once_per_fingerprint_and_a_failed_one_leaves_nothing() {
        let cache = tempfile::tempdir().unwrap();
        let root = cache.path();
        let runs = std::cell::Cell::new(0);
        let install = |dir: &Path| {
            runs.set(runs.get() + 1);
            fs::write(dir.join("tool"), "v1").map_err(|e| StackError::write(dir, e))
        };
        let dir = ensure_installed_in(root, "tool-1", "tool", "f1", install).unwrap();
        assert_eq!(fs::read_to_string(dir.join("tool")).unwrap(), "v1");
        ensure_installed_in(root, "tool-1", "tool", "f1", install).unwrap();
        assert_eq!(runs.get(), 1, "a finished install is reused");
        ensure_installed_in(root, "tool-1", "tool", "f2", install).unwrap();
        assert_eq!(runs.get(), 2, "changed inputs install again");

        let failed = ensure_installed_in(root, "tool-2", "tool", "f1", |dir: &Path| {
            fs::write(dir.join("install.log"), "boom").unwrap();
            Err(StackError::NotRunning { what: "pip" })
        });
        assert!(failed.is_err());
        assert!(!root.join("tool-2").exists(), "no half install is left");
        assert_eq!(
            fs::read_to_string(root.join("tool-2.failed-install.log")).unwrap(),
            "boom"
        );
    }

    #[test]
    fn private_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        write_private(&file, "x").unwrap();
        write_private(&file, "y").unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "y");
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
