//! kube-apiserver and etcd (and, for a test bed with a node, kubelet, kube-controller-manager,
//! kube-scheduler and kube-proxy), built once with `go build` from `tests/tools/kube` into a cache
//! outside the repository keyed by [`KUBERNETES_VERSION`]. Missing binaries are built in parallel.

use std::fs::{self, File, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::{ETCD_VERSION, Error, KUBERNETES_VERSION, Result, paths};

/// Paths of the two Kubernetes binaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeBinaries {
    /// The kube-apiserver binary.
    pub kube_apiserver: PathBuf,
    /// The etcd binary.
    pub etcd: PathBuf,
}

impl KubeBinaries {
    /// The binaries' places in `dir` (they may not exist yet).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            kube_apiserver: dir.join("kube-apiserver"),
            etcd: dir.join("etcd"),
        }
    }

    fn all_exist(&self) -> bool {
        self.kube_apiserver.is_file() && self.etcd.is_file()
    }
}

/// Paths of the node's Kubernetes binaries, from the same module and cache as [`KubeBinaries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBinaries {
    /// The kubelet binary.
    pub kubelet: PathBuf,
    /// The kube-controller-manager binary.
    pub kube_controller_manager: PathBuf,
    /// The kube-scheduler binary.
    pub kube_scheduler: PathBuf,
    /// The kube-proxy binary.
    pub kube_proxy: PathBuf,
}

impl NodeBinaries {
    /// The binaries' places in `dir` (they may not exist yet).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            kubelet: dir.join("kubelet"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
            kube_proxy: dir.join("kube-proxy"),
        }
    }

    fn all_exist(&self) -> bool {
        [
            &self.kubelet,
            &self.kube_controller_manager,
            &self.kube_scheduler,
            &self.kube_proxy,
        ]
        .iter()
        .all(|path| path.is_file())
    }
}

/// One `go build` target.
struct Target {
    name: &'static str,
    package: &'static str,
    ldflags: String,
    output: PathBuf,
}

/// Returns the cached binaries, building the missing ones first (a few minutes on a cold Go cache).
///
/// Concurrent callers, in this process or others, wait on a lock file instead of building twice.
pub fn ensure_kube_binaries() -> Result<KubeBinaries> {
    let dir = paths::kube_cache_dir()?;
    let binaries = KubeBinaries::in_dir(&dir);
    if binaries.all_exist() {
        return Ok(binaries);
    }
    ensure_built(&dir, &kube_targets(&binaries))?;
    Ok(binaries)
}

/// Returns the cached binaries of a test bed with a node (the control plane's and the node's),
/// building the missing ones first, all at once.
pub fn ensure_node_binaries() -> Result<(KubeBinaries, NodeBinaries)> {
    let dir = paths::kube_cache_dir()?;
    let kube = KubeBinaries::in_dir(&dir);
    let node = NodeBinaries::in_dir(&dir);
    if kube.all_exist() && node.all_exist() {
        return Ok((kube, node));
    }
    let mut targets = kube_targets(&kube);
    targets.extend(node_targets(&node));
    ensure_built(&dir, &targets)?;
    Ok((kube, node))
}

fn ensure_built(dir: &Path, targets: &[Target]) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let lock_path = dir.join(".build.lock");
    let lock = lock_cache(&lock_path)?;
    // Another caller may have finished the build while this one waited for the lock.
    if targets.iter().any(|t| !t.output.is_file()) {
        build(dir, targets)?;
    }
    drop(lock);
    Ok(())
}

/// The `-ldflags` that stamp the Kubernetes version into a component.
fn version_ldflags() -> String {
    let version = format!("v{KUBERNETES_VERSION}");
    let minor = KUBERNETES_VERSION.split('.').nth(1).unwrap_or_default();
    let stamp = "k8s.io/component-base/version";
    format!(
        "-X {stamp}.gitVersion={version} -X {stamp}.gitMajor=1 -X {stamp}.gitMinor={minor} \
         -X {stamp}.gitTreeState=clean"
    )
}

fn kube_targets(binaries: &KubeBinaries) -> Vec<Target> {
    vec![
        Target {
            name: "etcd",
            package: "go.etcd.io/etcd/server/v3",
            ldflags: String::new(),
            output: binaries.etcd.clone(),
        },
        Target {
            name: "kube-apiserver",
            package: "k8s.io/kubernetes/cmd/kube-apiserver",
            ldflags: version_ldflags(),
            output: binaries.kube_apiserver.clone(),
        },
    ]
}

fn node_targets(binaries: &NodeBinaries) -> Vec<Target> {
    let target = |name: &'static str, package: &'static str, output: &PathBuf| Target {
        name,
        package,
        ldflags: version_ldflags(),
        output: output.clone(),
    };
    vec![
        target(
            "kubelet",
            "k8s.io/kubernetes/cmd/kubelet",
            &binaries.kubelet,
        ),
        target(
            "kube-controller-manager",
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            &binaries.kube_controller_manager,
        ),
        target(
            "kube-scheduler",
            "k8s.io/kubernetes/cmd/kube-scheduler",
            &binaries.kube_scheduler,
        ),
        target(
            "kube-proxy",
            "k8s.io/kubernetes/cmd/kube-proxy",
            &binaries.kube_proxy,
        ),
    ]
}

fn lock_cache(path: &Path) -> Result<File> {
    let lock_error = |source| Error::LockCache {
        path: path.to_path_buf(),
        source,
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
            eprintln!(
                "Waiting for another build of the test bed binaries ({})",
                path.display()
            );
            file.lock().map_err(lock_error)?;
        }
        Err(TryLockError::Error(source)) => return Err(lock_error(source)),
    }
    Ok(file)
}

fn build(dir: &Path, targets: &[Target]) -> Result<()> {
    let module = paths::kube_tool_module();
    check_go_mod(&module)?;
    let version = format!("v{KUBERNETES_VERSION}");
    let missing: Vec<&Target> = targets.iter().filter(|t| !t.output.is_file()).collect();
    let names: Vec<&str> = missing.iter().map(|t| t.name).collect();
    eprintln!(
        "Building {} (Kubernetes {version}, etcd v{ETCD_VERSION}) into {}; the first build takes minutes",
        names.join(", "),
        dir.display()
    );
    let started = Instant::now();

    // The builds run at once: they share the Go build cache and overlap linking.
    let mut running: Vec<(&Target, PathBuf, Child)> = Vec::new();
    let mut failure = None;
    for target in &missing {
        let temp = dir.join(format!(".{}.tmp-{}", target.name, std::process::id()));
        match spawn_go_build(&module, target, &temp) {
            Ok(child) => running.push((target, temp, child)),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    let mut built = Vec::new();
    for (target, temp, mut child) in running {
        match child.wait() {
            Ok(status) if status.success() => built.push((target, temp)),
            Ok(status) => {
                let _ = fs::remove_file(&temp);
                failure.get_or_insert(Error::GoBuild {
                    target: target.package.to_owned(),
                    status,
                });
            }
            Err(source) => {
                let _ = fs::remove_file(&temp);
                failure.get_or_insert(Error::Spawn {
                    program: "go".to_owned(),
                    source,
                });
            }
        }
    }
    if let Some(err) = failure {
        for (_, temp) in built {
            let _ = fs::remove_file(temp);
        }
        return Err(err);
    }
    for (target, temp) in built {
        fs::rename(&temp, &target.output).map_err(|source| Error::WriteFile {
            path: target.output.clone(),
            source,
        })?;
    }
    eprintln!("Built {} in {:.0?}", names.join(", "), started.elapsed());
    let _ = std::io::stderr().flush();
    Ok(())
}

fn spawn_go_build(module: &Path, target: &Target, output: &Path) -> Result<Child> {
    let mut command = Command::new("go");
    command
        .current_dir(module)
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .args(["build", "-mod=readonly", "-trimpath"]);
    if !target.ldflags.is_empty() {
        command.arg("-ldflags").arg(&target.ldflags);
    }
    command
        .arg("-o")
        .arg(output)
        .arg(target.package)
        .stdin(Stdio::null())
        // go prints nothing on success; its errors belong on our stderr.
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    command.spawn().map_err(|source| Error::Spawn {
        program: "go".to_owned(),
        source,
    })
}

/// Guards the single version constant: a go.mod regenerated for another version must come with a
/// new [`KUBERNETES_VERSION`], or the cache key would lie.
fn check_go_mod(module: &Path) -> Result<()> {
    let path = module.join("go.mod");
    let text = fs::read_to_string(&path).map_err(|source| Error::ReadFile {
        path: path.clone(),
        source,
    })?;
    let wanted = format!("k8s.io/kubernetes v{KUBERNETES_VERSION}");
    if text.lines().any(|line| line.trim() == wanted) {
        Ok(())
    } else {
        Err(Error::GoModMismatch {
            path,
            expected: KUBERNETES_VERSION,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_module_requires_the_kubernetes_version_of_the_constant() {
        check_go_mod(&paths::kube_tool_module()).unwrap();
    }

    #[test]
    fn binaries_are_named_after_their_commands() {
        let binaries = KubeBinaries::in_dir(Path::new("cache"));
        assert_eq!(binaries.etcd, Path::new("cache/etcd"));
        assert_eq!(binaries.kube_apiserver, Path::new("cache/kube-apiserver"));
        let node = NodeBinaries::in_dir(Path::new("cache"));
        assert_eq!(node.kubelet, Path::new("cache/kubelet"));
        assert_eq!(node.kube_proxy, Path::new("cache/kube-proxy"));
    }

    #[test]
    fn the_node_binaries_are_built_from_the_same_module_with_the_version_stamped() {
        let targets = node_targets(&NodeBinaries::in_dir(Path::new("cache")));
        let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "kubelet",
                "kube-controller-manager",
                "kube-scheduler",
                "kube-proxy"
            ]
        );
        for target in &targets {
            assert!(target.package.starts_with("k8s.io/kubernetes/cmd/"));
            assert!(
                target
                    .ldflags
                    .contains(&format!("gitVersion=v{KUBERNETES_VERSION}"))
            );
        }
    }
}
