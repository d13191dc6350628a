//! Binaries of this workspace that the test bed runs as processes (the emulator, the operator):
//! found next to the running executable, or built with cargo when missing or older than their
//! sources.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use serde_json::Value;

use crate::paths;
use crate::stack_error::{StackError, StackResult};

/// The binary `bin` of the workspace package `package`:
///
/// 1. the path in the environment variable `env_var`, when set (nothing is built or checked);
/// 2. else the one cargo built next to the running executable (a test binary in
///    `target/<profile>/deps`, or xtask in `target/<profile>`), unless it is older than the
///    package's sources (its crate, the workspace crates it depends on, `Cargo.toml`,
///    `Cargo.lock`);
/// 3. else `cargo build -p <package> --bin <bin>`, run once per process.
pub fn cargo_binary(package: &str, bin: &str, env_var: &str) -> StackResult<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let slot = slot(bin);
    let mut built = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.as_ref() {
        return Ok(path.clone());
    }
    let root = paths::repo_root();
    let sources_changed = newest_change(&source_paths(&root, package));
    let found = candidates(bin).into_iter().find(|path| {
        path.is_file()
            && fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|built_at| sources_changed.is_none_or(|changed| built_at >= changed))
    });
    let path = match found {
        Some(path) => path,
        None => build(&root, package, bin)?,
    };
    *built = Some(path.clone());
    Ok(path)
}

/// One lock per binary, so building one does not hold up finding another.
fn slot(bin: &str) -> Arc<Mutex<Option<PathBuf>>> {
    static SLOTS: Mutex<BTreeMap<String, Arc<Mutex<Option<PathBuf>>>>> =
        Mutex::new(BTreeMap::new());
    let mut slots = SLOTS.lock().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(slots.entry(bin.to_owned()).or_default())
}

fn candidates(bin: &str) -> Vec<PathBuf> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(bin))
        .collect()
}

/// The files and folders whose changes make `package`'s binary stale: its crate folder, those of
/// the workspace crates it depends on (transitively, dev-dependencies excluded), the root
/// manifest and the lock file.
fn source_paths(root: &Path, package: &str) -> Vec<PathBuf> {
    let crates = workspace_crates(root);
    let mut seen = BTreeSet::new();
    let mut queue = vec![package.to_owned()];
    let mut paths = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(dir) = crates.get(&name) else {
            continue;
        };
        paths.push(dir.clone());
        if let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) {
            queue.extend(
                dependencies(&manifest)
                    .into_iter()
                    .filter(|dep| crates.contains_key(dep)),
            );
        }
    }
    paths
}

/// Package name → folder, for every crate below `crates/` and the `tests` crate.
fn workspace_crates(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.push(root.join("tests"));
    dirs.into_iter()
        .filter_map(|dir| {
            let manifest = fs::read_to_string(dir.join("Cargo.toml")).ok()?;
            Some((package_name(&manifest)?, dir))
        })
        .collect()
}

/// `name` of the `[package]` table of a manifest.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "name"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// The names of the normal and build dependencies of a manifest (any target).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let table = header.rsplit('.').next().unwrap_or(header);
            in_dependencies = matches!(table, "dependencies" | "build-dependencies");
            // `[dependencies.name]` and `[target.'cfg(..)'.dependencies.name]`
            for kind in ["dependencies.", "build-dependencies."] {
                if let Some((_, name)) = header.split_once(kind)
                    && !header.contains("dev-dependencies")
                {
                    names.push(name.trim_matches('"').to_owned());
                }
            }
            continue;
        }
        if in_dependencies && !line.starts_with('#') && line.contains('=') {
            let key = line
                .split(['=', '.'])
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches('"');
            if !key.is_empty() {
                names.push(key.to_owned());
            }
        }
    }
    names
}

/// The newest modification time of the files in and below `paths`.
fn newest_change(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(Some(modified));
        }
    }
    newest
}

fn build(root: &Path, package: &str, bin: &str) -> StackResult<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("Building {bin} with cargo");
    let started = Instant::now();
    let output = Command::new(&cargo)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            bin,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| StackError::Tool {
            command: format!("cargo build -p {package} --bin {bin}"),
            message: source.to_string(),
        })?;
    let failed = || StackError::BuildBinary {
        bin: bin.to_owned(),
        status: output.status,
    };
    if !output.status.success() {
        return Err(failed());
    }
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .ok_or_else(failed)?;
    eprintln!("Built {bin} in {:.1?}", started.elapsed());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_cover_every_form_and_skip_dev_dependencies() {
        let manifest = r#"
[package]
name = "foundry-gateway-operator"

[dependencies]
anyhow.workspace = true
foundry-gateway-api.workspace = true
"kube" = { workspace = true }
# foundry-gateway-commented.workspace = true

[dependencies.foundry-gateway-client]
workspace = true

[target.'cfg(unix)'.dependencies]
libc = "0.2"

[dev-dependencies]
foundry-gateway-testbed.workspace = true
"#;
        assert_eq!(
            package_name(manifest).as_deref(),
            Some("foundry-gateway-operator")
        );
        let deps = dependencies(manifest);
        for expected in [
            "anyhow",
            "foundry-gateway-api",
            "kube",
            "foundry-gateway-client",
            "libc",
        ] {
            assert!(deps.iter().any(|d| d == expected), "{expected} in {deps:?}");
        }
        assert!(!deps.iter().any(|d| d.contains("testbed")), "{deps:?}");
        assert!(!deps.iter().any(|d| d.contains("commented")), "{deps:?}");
    }

    #[test]
    fn the_operator_is_stale_when_the_crates_it_uses_change() {
        let root = paths::repo_root();
        let sources = source_paths(&root, "foundry-gateway-operator");
        for dir in ["operator", "api", "client"] {
            assert!(
                sources.contains(&root.join("crates").join(dir)),
                "{dir} in {sources:?}"
            );
        }
        assert!(!sources.contains(&root.join("crates").join("testbed")));
        assert!(sources.contains(&root.join("Cargo.lock")));
    }
}
