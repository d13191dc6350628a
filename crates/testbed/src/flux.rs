//! Flux for real: source-controller, kustomize-controller and helm-controller built from their Go
//! modules (`tests/tools/flux/<controller>`, pinned by go.mod and go.sum, one module each because
//! their own go.mod files pin different dependencies), run on the host against the test bed's
//! apiserver; and a Git server (`tests/tools/gitserver`: `git http-backend` behind Go's CGI
//! handler) on loopback that the GitRepository objects clone from.
//!
//! The binaries and Flux's CRDs (from the controllers' module downloads) are cached outside the
//! repository like the Kubernetes binaries, keyed by the controllers' versions and a fingerprint
//! of the tool modules. [`Flux::publish`] commits a directory tree to a repository of the server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::install::{
    self, GoBuild, ensure_installed, fingerprint, go_build_all, output_of, run_logged,
};
use crate::part::PartProcess;
use crate::ports::free_loopback_ports;
use crate::probe::Probe;
use crate::process::{Mode, ProcessSpec};
use crate::stack_error::{StackError, StackResult};
use crate::{Error, paths};

/// A Flux controller built from its Go module: the command (and module) name and its release tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Controller {
    /// The command, which is also the last element of the module path.
    pub name: &'static str,
    /// The release tag of the module.
    pub version: &'static str,
}

impl Controller {
    /// The Go module path.
    pub fn module(&self) -> String {
        format!("github.com/fluxcd/{}", self.name)
    }

    /// The tool module in the repository that pins this controller.
    fn tool_module(&self) -> PathBuf {
        tools_dir().join("flux").join(self.name)
    }
}

/// source-controller: GitRepository, HelmChart and the artifacts the other two fetch.
pub const SOURCE_CONTROLLER: Controller = Controller {
    name: "source-controller",
    version: "v1.9.6",
};

/// kustomize-controller: Kustomization, with health checks (`spec.healthCheckExprs`).
pub const KUSTOMIZE_CONTROLLER: Controller = Controller {
    name: "kustomize-controller",
    version: "v1.9.6",
};

/// helm-controller: HelmRelease.
pub const HELM_CONTROLLER: Controller = Controller {
    name: "helm-controller",
    version: "v1.6.4",
};

/// The controllers, in start order.
pub const CONTROLLERS: [Controller; 3] = [SOURCE_CONTROLLER, KUSTOMIZE_CONTROLLER, HELM_CONTROLLER];

/// The namespace the controllers run "in" (`RUNTIME_NAMESPACE`): where a user puts Flux's objects.
pub const FLUX_NAMESPACE: &str = "flux-system";

fn tools_dir() -> PathBuf {
    paths::repo_root().join("tests").join("tools")
}

/// The cached Flux binaries and CRDs.
#[derive(Clone, Debug)]
pub struct FluxBinaries {
    dir: PathBuf,
}

impl FluxBinaries {
    /// The binary of `controller`.
    pub fn controller(&self, controller: Controller) -> PathBuf {
        self.dir.join(controller.name)
    }

    /// The Git server.
    pub fn git_server(&self) -> PathBuf {
        self.dir.join("gitserver")
    }

    /// The folder with Flux's CRDs (`*.yaml`).
    pub fn crds(&self) -> PathBuf {
        self.dir.join("crds")
    }
}

/// Returns the cached binaries, building them first (about eight minutes on a cold Go cache, the
/// three controllers at once).
pub fn ensure_flux_binaries() -> StackResult<FluxBinaries> {
    let mut files = Vec::new();
    for controller in CONTROLLERS {
        check_go_mod(controller)?;
        files.push(controller.tool_module().join("go.mod"));
        files.push(controller.tool_module().join("go.sum"));
    }
    let git_server = tools_dir().join("gitserver");
    files.push(git_server.join("go.mod"));
    files.push(git_server.join("main.go"));
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let versions: Vec<String> = CONTROLLERS
        .iter()
        .map(|c| format!("{}-{}", c.name.trim_end_matches("-controller"), c.version))
        .collect();
    let name = format!("flux-{}", versions.join("-"));
    let print = fingerprint(&refs, &[&name, "go build -trimpath, CGO_ENABLED=0"])?;
    let dir = ensure_installed(&name, "the Flux controllers", &print, install_flux)?;
    Ok(FluxBinaries { dir })
}

/// Guards the version constants: a regenerated go.mod must come with new constants, or the cache
/// key would lie.
fn check_go_mod(controller: Controller) -> StackResult<()> {
    let path = controller.tool_module().join("go.mod");
    let text = fs::read_to_string(&path).map_err(|source| StackError::read(&path, source))?;
    let wanted = format!("{} {}", controller.module(), controller.version);
    if text.lines().any(|line| line.trim() == wanted) {
        Ok(())
    } else {
        Err(StackError::Pin {
            what: controller.name,
            path,
        })
    }
}

fn go(dir: &Path) -> Command {
    install::go_command(dir)
}

fn install_flux(dir: &Path) -> StackResult<()> {
    let log = dir.join("install.log");
    copy_crds(dir, &log)?;
    let mut builds: Vec<GoBuild> = CONTROLLERS
        .iter()
        .map(|controller| GoBuild {
            module_dir: controller.tool_module(),
            package: controller.module(),
            output: dir.join(controller.name),
        })
        .collect();
    builds.push(GoBuild {
        module_dir: tools_dir().join("gitserver"),
        package: ".".to_owned(),
        output: dir.join("gitserver"),
    });
    go_build_all(&builds, &log)
}

/// Copies `config/crd/bases/*.yaml` of each controller's module download into `<dir>/crds`.
fn copy_crds(dir: &Path, log: &Path) -> StackResult<()> {
    let crds = dir.join("crds");
    fs::create_dir_all(&crds).map_err(|source| StackError::create_dir(&crds, source))?;
    for controller in CONTROLLERS {
        let module = controller.module();
        run_logged(
            "the Flux modules",
            go(&controller.tool_module()).args(["mod", "download", &module]),
            log,
        )?;
        let source = output_of(
            go(&controller.tool_module()).args(["list", "-m", "-f", "{{.Dir}}", &module]),
        )?;
        let bases = Path::new(&source).join("config").join("crd").join("bases");
        let entries = fs::read_dir(&bases).map_err(|source| StackError::read(&bases, source))?;
        for entry in entries {
            let path = entry
                .map_err(|source| StackError::read(&bases, source))?
                .path();
            if path.extension().is_some_and(|e| e == "yaml")
                && let Some(name) = path.file_name()
            {
                let target = crds.join(name);
                fs::copy(&path, &target).map_err(|source| StackError::write(&target, source))?;
            }
        }
    }
    Ok(())
}

/// Where and how to run Flux.
#[derive(Debug, Clone)]
pub struct FluxOptions {
    /// The test bed's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// A folder of this Flux: logs, the controllers' storage, the Git repositories.
    pub dir: PathBuf,
    /// Attached (stopped with the caller) or detached.
    pub mode: Mode,
    /// How long each part may take to answer its health probe.
    pub ready_timeout: Duration,
}

/// The running controllers and Git server.
#[derive(Debug)]
pub struct Flux {
    git_base: String,
    repos: PathBuf,
    work: PathBuf,
    parts: Vec<PartProcess>,
}

impl Flux {
    /// Builds what is missing, installs Flux's CRDs and the [`FLUX_NAMESPACE`] namespace, starts
    /// the Git server and the three controllers, and waits until each answers its health probe.
    pub fn start(options: &FluxOptions) -> StackResult<Self> {
        let started = Instant::now();
        let binaries = ensure_flux_binaries()?;
        let dir = &options.dir;
        let repos = dir.join("repositories");
        let work = dir.join("work");
        let storage = dir.join("storage");
        for folder in [dir, &repos, &work, &storage] {
            fs::create_dir_all(folder).map_err(|source| StackError::create_dir(folder, source))?;
        }
        install_crds(&options.kubeconfig, &binaries.crds())?;
        let ports = free_loopback_ports(1 + 2 * CONTROLLERS.len() + 1)?;
        let port = |i: usize| ports.get(i).copied().unwrap_or_default();
        let git_base = format!("http://127.0.0.1:{}", port(0));
        let mut parts = Vec::new();
        let spec = ProcessSpec {
            name: "gitserver".to_owned(),
            program: binaries.git_server(),
            args: vec![
                "-listen".into(),
                format!("127.0.0.1:{}", port(0)).into(),
                "-root".into(),
                repos.clone().into_os_string(),
            ],
            log: dir.join("gitserver.log"),
            cwd: dir.clone(),
            env: Vec::new(),
        };
        let mut git = PartProcess::start(spec, options.mode, dir, None)?;
        // The server answers 404 for a path that is no repository, so probe with one.
        init_bare(&repos.join("probe.git"))?;
        let probe = Probe::new(
            format!("{git_base}/probe.git/info/refs?service=git-upload-pack"),
            None,
            None,
        )?;
        git.wait_ready(&probe, options.ready_timeout)?;
        parts.push(git);
        let storage_port = port(1 + 2 * CONTROLLERS.len());
        for (i, controller) in CONTROLLERS.into_iter().enumerate() {
            let metrics = port(1 + 2 * i);
            let health = port(2 + 2 * i);
            let mut args = vec![
                format!("--metrics-addr=127.0.0.1:{metrics}"),
                format!("--health-addr=127.0.0.1:{health}"),
                "--enable-leader-election=false".to_owned(),
                "--log-encoding=console".to_owned(),
                "--watch-all-namespaces=true".to_owned(),
            ];
            if controller == SOURCE_CONTROLLER {
                args.extend([
                    format!("--storage-path={}", storage.display()),
                    format!("--storage-addr=127.0.0.1:{storage_port}"),
                    format!("--storage-adv-addr=127.0.0.1:{storage_port}"),
                ]);
            }
            let spec = ProcessSpec {
                name: controller.name.to_owned(),
                program: binaries.controller(controller),
                args: args.into_iter().map(Into::into).collect(),
                log: dir.join(format!("{}.log", controller.name)),
                cwd: dir.clone(),
                env: vec![
                    (
                        "KUBECONFIG".into(),
                        Some(options.kubeconfig.clone().into_os_string()),
                    ),
                    ("RUNTIME_NAMESPACE".into(), Some(FLUX_NAMESPACE.into())),
                ],
            };
            let mut part = PartProcess::start(spec, options.mode, dir, None)?;
            let probe = Probe::new(format!("http://127.0.0.1:{health}/readyz"), None, None)?;
            part.wait_ready(&probe, options.ready_timeout)?;
            parts.push(part);
        }
        eprintln!(
            "Started Flux ({}) and the Git server at {git_base} in {:.1?}",
            CONTROLLERS
                .iter()
                .map(|c| format!("{} {}", c.name, c.version))
                .collect::<Vec<_>>()
                .join(", "),
            started.elapsed()
        );
        Ok(Self {
            git_base,
            repos,
            work,
            parts,
        })
    }

    /// The clone URL of repository `name`.
    pub fn git_url(&self, name: &str) -> String {
        format!("{}/{name}.git", self.git_base)
    }

    /// Makes `tree` the content of branch `main` of repository `name` (created on first use) in
    /// one commit, and returns the commit's id.
    pub fn publish(&self, name: &str, tree: &Path, message: &str) -> StackResult<String> {
        let bare = self.repos.join(format!("{name}.git"));
        let work = self.work.join(name);
        if !bare.exists() {
            init_bare(&bare)?;
        }
        if !work.exists() {
            output_of(
                git(&self.work)
                    .args(["init", "-q", "-b", "main"])
                    .arg(&work),
            )?;
        }
        clear_except_git(&work)?;
        copy_tree(tree, &work)?;
        output_of(git(&work).args(["add", "-A"]))?;
        output_of(git(&work).args(["commit", "-q", "--allow-empty", "-m", message]))?;
        output_of(git(&work).arg("push").arg("-q").arg(&bare).arg("main"))?;
        output_of(git(&work).args(["rev-parse", "HEAD"]))
    }

    /// The log of `controller`.
    pub fn log(&self, controller: Controller) -> Option<PathBuf> {
        self.parts
            .iter()
            .find(|p| p.log().ends_with(format!("{}.log", controller.name)))
            .map(|p| p.log().to_path_buf())
    }

    /// Stops the controllers and the Git server.
    pub fn stop(&mut self) -> StackResult<()> {
        for part in self.parts.iter_mut().rev() {
            part.shutdown()?;
        }
        Ok(())
    }
}

/// A `git` command for the test's repositories: fixed identity, no signing, no user config.
fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test bed")
        .env("GIT_AUTHOR_EMAIL", "testbed@localhost")
        .env("GIT_COMMITTER_NAME", "Test bed")
        .env("GIT_COMMITTER_EMAIL", "testbed@localhost");
    command
}

fn init_bare(path: &Path) -> StackResult<()> {
    if path.exists() {
        return Ok(());
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    output_of(
        git(parent)
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(path),
    )?;
    Ok(())
}

fn install_crds(kubeconfig: &Path, crds: &Path) -> StackResult<()> {
    let kubectl = || {
        let mut command = Command::new("kubectl");
        command.env("KUBECONFIG", kubeconfig);
        command
    };
    output_of(
        kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(crds),
    )?;
    output_of(
        kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
            .arg(crds),
    )?;
    let namespace = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{FLUX_NAMESPACE}\"}}}}"
    );
    let path = crds
        .parent()
        .unwrap_or(crds)
        .join(format!(".namespace-{}.json", std::process::id()));
    fs::write(&path, namespace).map_err(|source| StackError::write(&path, source))?;
    let applied = output_of(kubectl().args(["apply", "-f"]).arg(&path));
    let _ = fs::remove_file(&path);
    applied.map(drop)
}

fn clear_except_git(dir: &Path) -> StackResult<()> {
    let entries = fs::read_dir(dir).map_err(|source| StackError::read(dir, source))?;
    for entry in entries {
        let path = entry
            .map_err(|source| StackError::read(dir, source))?
            .path();
        if path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|source| {
            StackError::Testbed(Error::RemoveDir {
                path: path.clone(),
                source,
            })
        })?;
    }
    Ok(())
}

/// Copies the files of `from` into `to` (folders recursively; symbolic links are not followed).
pub fn copy_tree(from: &Path, to: &Path) -> StackResult<()> {
    fs::create_dir_all(to).map_err(|source| StackError::create_dir(to, source))?;
    let entries = fs::read_dir(from).map_err(|source| StackError::read(from, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| StackError::read(from, source))?;
        let kind = entry
            .file_type()
            .map_err(|source| StackError::read(entry.path(), source))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target).map_err(|source| StackError::write(&target, source))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_modules_pin_the_versions_of_the_constants() {
        for controller in CONTROLLERS {
            check_go_mod(controller).unwrap();
        }
    }

    #[test]
    fn a_published_tree_replaces_the_previous_one_in_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let flux = Flux {
            git_base: "http://127.0.0.1:1".to_owned(),
            repos: dir.path().join("repositories"),
            work: dir.path().join("work"),
            parts: Vec::new(),
        };
        fs::create_dir_all(&flux.repos).unwrap();
        fs::create_dir_all(&flux.work).unwrap();
        let tree = dir.path().join("tree");
        fs::create_dir_all(tree.join("sub")).unwrap();
        fs::write(tree.join("a.yaml"), "a: 1\n").unwrap();
        fs::write(tree.join("sub/b.yaml"), "b: 1\n").unwrap();
        let first = flux.publish("fleet", &tree, "first").unwrap();
        fs::remove_file(tree.join("a.yaml")).unwrap();
        fs::write(tree.join("sub/b.yaml"), "b: 2\n").unwrap();
        let second = flux.publish("fleet", &tree, "second").unwrap();
        assert_ne!(first, second);
        let bare = flux.repos.join("fleet.git");
        let files = output_of(git(&bare).args(["ls-tree", "-r", "--name-only", "main"])).unwrap();
        assert_eq!(files, "sub/b.yaml");
        let content = output_of(git(&bare).args(["show", "main:sub/b.yaml"])).unwrap();
        assert_eq!(content, "b: 2");
        let count = output_of(git(&bare).args(["rev-list", "--count", "main"])).unwrap();
        assert_eq!(count, "2");
    }
}
