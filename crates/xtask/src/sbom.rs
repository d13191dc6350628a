//! `cargo xtask sbom [--package NAME] [--target TRIPLE] [--out FILE]`: a CycloneDX 1.5 JSON SBOM
//! of the crates linked into a binary.
//!
//! The graph is cargo's own resolve (`cargo metadata --format-version 1 --filter-platform
//! TRIPLE`): from the package, every dependency of the normal kind, then theirs, transitively.
//! Dev-dependencies and build-dependencies are left out at every level (they are not linked), and
//! so are proc-macro crates with what only they need (they run in the compiler, not in the
//! binary). Each crate is a component with its purl (`pkg:cargo/NAME@VERSION`), its licence
//! expression where the metadata has one and, for registry crates, the SHA-256 that Cargo.lock
//! records; the package itself is `metadata.component`, and `dependencies` is the graph.
//!
//! The resolve is the workspace's, so a crate's features are those that the whole workspace
//! enables; which crates are in the list is the package's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// The package whose SBOM `cargo xtask sbom` writes when none is named.
pub const DEFAULT_PACKAGE: &str = "foundry-gateway-operator";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workspace package whose binary the SBOM describes.
    #[arg(long, short, default_value = DEFAULT_PACKAGE)]
    package: String,
    /// The target triple whose dependencies count [default: the host's].
    #[arg(long)]
    target: Option<String>,
    /// Where to write the JSON [default: standard output].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let target = match &args.target {
        Some(target) => target.clone(),
        None => host_target()?,
    };
    let metadata = cargo_metadata(&target)?;
    let bom = sbom(&metadata, &args.package, &target, SystemTime::now())?;
    let mut text = serde_json::to_string_pretty(&bom).context("serializing the SBOM")?;
    text.push('\n');
    match &args.out {
        Some(path) => {
            fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "Wrote the CycloneDX SBOM of {} ({} components) to {}",
                args.package,
                bom["components"].as_array().map_or(0, Vec::len),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The host's target triple, from `rustc -vV`.
pub fn host_target() -> anyhow::Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .arg("-vV")
        .current_dir(crate::crd::repo_root())
        .stdin(Stdio::null())
        .output()
        .context("running rustc -vV")?;
    if !output.status.success() {
        bail!("rustc -vV failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|host| host.trim().to_owned())
        .context("rustc -vV names no host")
}

/// `cargo metadata --format-version 1 --filter-platform TARGET` of the workspace.
pub fn cargo_metadata(target: &str) -> anyhow::Result<Metadata> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", target])
        .current_dir(crate::crd::repo_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("parsing cargo metadata")
}

/// The parts of `cargo metadata --format-version 1` that an SBOM needs.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Resolve,
    workspace_root: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    license: Option<String>,
    description: Option<String>,
    source: Option<String>,
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    kind: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    /// `None` for a normal dependency, else `dev` or `build`.
    kind: Option<String>,
}

impl Package {
    fn is_proc_macro(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
    }

    fn purl(&self) -> String {
        format!("pkg:cargo/{}@{}", self.name, self.version)
    }
}

/// The CycloneDX 1.5 document of `package`'s binary for `target`, dated `now` (or
/// `$SOURCE_DATE_EPOCH`, when set, for reproducible output).
pub fn sbom(
    metadata: &Metadata,
    package: &str,
    target: &str,
    now: SystemTime,
) -> anyhow::Result<Value> {
    let packages: BTreeMap<&str, &Package> = metadata
        .packages
        .iter()
        .map(|p| (p.id.as_str(), p))
        .collect();
    let root = metadata
        .workspace_members
        .iter()
        .filter_map(|id| packages.get(id.as_str()))
        .find(|p| p.name == package)
        .with_context(|| format!("{package} is not a package of the workspace"))?;
    let nodes: BTreeMap<&str, &Node> = metadata
        .resolve
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n))
        .collect();

    // The linked crates: normal dependencies, transitively, without proc-macros.
    let linked_deps = |id: &str| -> Vec<&str> {
        let mut deps: Vec<&str> = nodes
            .get(id)
            .map(|node| {
                node.deps
                    .iter()
                    .filter(|d| d.dep_kinds.iter().any(|k| k.kind.is_none()))
                    .map(|d| d.pkg.as_str())
                    .filter(|pkg| packages.get(pkg).is_some_and(|p| !p.is_proc_macro()))
                    .collect()
            })
            .unwrap_or_default();
        deps.sort_unstable();
        deps.dedup();
        deps
    };
    let mut linked: BTreeSet<&str> = BTreeSet::new();
    let mut pending = vec![root.id.as_str()];
    while let Some(id) = pending.pop() {
        for dep in linked_deps(id) {
            if dep != root.id && linked.insert(dep) {
                pending.push(dep);
            }
        }
    }

    let checksums = lock_checksums(&metadata.workspace_root.join("Cargo.lock"))?;
    // One bom-ref per package id; two ids with one purl (the same crate from two sources) get
    // the id's position as a suffix.
    let mut refs: BTreeMap<&str, String> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for id in std::iter::once(root.id.as_str()).chain(linked.iter().copied()) {
        let purl = packages[id].purl();
        let bom_ref = if seen.insert(purl.clone()) {
            purl
        } else {
            format!("{purl}#{}", refs.len())
        };
        refs.insert(id, bom_ref);
    }

    let component = |id: &str, kind: &str| -> Value {
        let p = packages[id];
        let mut c = json!({
            "type": kind,
            "bom-ref": refs[id],
            "name": p.name,
            "version": p.version,
            "purl": p.purl(),
        });
        if let Some(description) = p.description.as_deref() {
            c["description"] = json!(description.trim());
        }
        if let Some(license) = p.license.as_deref() {
            c["licenses"] = json!([{ "expression": spdx_expression(license) }]);
        }
        if let Some(sum) = checksums.get(&(p.name.clone(), p.version.clone())) {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
        }
        if p.source.is_none() {
            // A workspace crate: part of this repository, built from source.
            c["properties"] = json!([{ "name": "cargo:source", "value": "workspace" }]);
        }
        c
    };
    let components: Vec<Value> = linked.iter().map(|id| component(id, "library")).collect();
    let dependencies: Vec<Value> = std::iter::once(root.id.as_str())
        .chain(linked.iter().copied())
        .map(|id| {
            let on: Vec<&String> = linked_deps(id).iter().map(|dep| &refs[dep]).collect();
            json!({ "ref": refs[id], "dependsOn": on })
        })
        .collect();

    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .context("SOURCE_DATE_EPOCH is not a number of seconds")?,
        Err(_) => now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid_v4()),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(epoch),
            "tools": {
                "components": [{
                    "type": "application",
                    "name": "xtask",
                    "description": "cargo xtask sbom of the Foundry gateway operator",
                    "version": env!("CARGO_PKG_VERSION"),
                }]
            },
            "component": component(root.id.as_str(), "application"),
            "properties": [{ "name": "cargo:target", "value": target }],
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

/// An SPDX expression from a crate's `license` (old crates write `MIT/Apache-2.0`).
fn spdx_expression(license: &str) -> String {
    license
        .split('/')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `(name, version) -> checksum` of every registry package in a Cargo.lock.
fn lock_checksums(path: &Path) -> anyhow::Result<BTreeMap<(String, String), String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut sums = BTreeMap::new();
    for block in text.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block.lines().find_map(|line| {
                line.strip_prefix(key)
                    .and_then(|rest| rest.trim().strip_prefix('='))
                    .map(|value| value.trim().trim_matches('"'))
            })
        };
        if let (Some(name), Some(version), Some(sum)) =
            (field("name"), field("version"), field("checksum"))
        {
            sums.insert((name.to_owned(), version.to_owned()), sum.to_owned());
        }
    }
    Ok(sums)
}

/// `seconds` since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// A random (version 4) UUID.
fn uuid_v4() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn operator_sbom() -> Value {
        let target = host_target().unwrap();
        let metadata = cargo_metadata(&target).unwrap();
        sbom(&metadata, DEFAULT_PACKAGE, &target, SystemTime::now()).unwrap()
    }

    fn names(bom: &Value) -> BTreeSet<String> {
        bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn sbom_of_the_operator_lists_its_linked_crates_only() {
        let bom = operator_sbom();
        assert_eq!(bom["bomFormat"], "CycloneDX");
        assert_eq!(bom["specVersion"], "1.5");
        let root = &bom["metadata"]["component"];
        assert_eq!(root["type"], "application");
        assert_eq!(root["name"], DEFAULT_PACKAGE);
        assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            root["purl"],
            format!("pkg:cargo/{DEFAULT_PACKAGE}@{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(root["licenses"][0]["expression"], "MIT");

        let names = names(&bom);
        for linked in [
            "kube",
            "kube-runtime",
            "tokio",
            "reqwest",
            "rustls",
            "foundry-gateway-api",
            "foundry-gateway-client",
        ] {
            assert!(names.contains(linked), "{linked} is missing: {names:?}");
        }
        // proptest is a dev-dependency (of foundry-gateway-client), xtask and the test crates are
        // no dependency, cc is a build-dependency, serde_derive a proc-macro: none is linked.
        for absent in [
            "proptest",
            "xtask",
            "foundry-gateway-tests",
            "foundry-gateway-testbed",
            "foundry-gateway-operator",
            "tempfile",
            "cc",
            "serde_derive",
        ] {
            assert!(!names.contains(absent), "{absent} is listed");
        }
    }

    #[test]
    fn sbom_components_have_purls_licenses_hashes_and_a_closed_graph() {
        let bom = operator_sbom();
        let components = bom["components"].as_array().unwrap();
        let refs: BTreeSet<&str> = components
            .iter()
            .map(|c| c["bom-ref"].as_str().unwrap())
            .chain([bom["metadata"]["component"]["bom-ref"].as_str().unwrap()])
            .collect();
        assert_eq!(refs.len(), components.len() + 1, "bom-refs are unique");
        for c in components {
            let (name, version) = (c["name"].as_str().unwrap(), c["version"].as_str().unwrap());
            assert_eq!(c["type"], "library");
            assert_eq!(c["purl"], format!("pkg:cargo/{name}@{version}"));
        }
        let tokio = components.iter().find(|c| c["name"] == "tokio").unwrap();
        assert_eq!(tokio["licenses"][0]["expression"], "MIT");
        let sum = tokio["hashes"][0]["content"].as_str().unwrap();
        assert_eq!(tokio["hashes"][0]["alg"], "SHA-256");
        assert_eq!(sum.len(), 64, "{sum}");
        // Every node of the graph and every edge's end is a component (or the root).
        let dependencies = bom["dependencies"].as_array().unwrap();
        assert_eq!(dependencies.len(), refs.len());
        for d in dependencies {
            assert!(refs.contains(d["ref"].as_str().unwrap()));
            for on in d["dependsOn"].as_array().unwrap() {
                assert!(refs.contains(on.as_str().unwrap()), "{on}");
            }
        }
        let root = dependencies
            .iter()
            .find(|d| d["ref"] == bom["metadata"]["component"]["bom-ref"])
            .unwrap();
        assert!(
            root["dependsOn"]
                .as_array()
                .unwrap()
                .iter()
                .any(|on| on.as_str().unwrap().starts_with("pkg:cargo/kube@"))
        );
        let serial = bom["serialNumber"].as_str().unwrap();
        assert!(
            serial.starts_with("urn:uuid:") && serial.len() == 45,
            "{serial}"
        );
    }

    #[test]
    fn sbom_of_an_unknown_package_fails() {
        let target = host_target().unwrap();
        let metadata = cargo_metadata(&target).unwrap();
        let error = sbom(&metadata, "no-such-crate", &target, SystemTime::now()).unwrap_err();
        assert!(error.to_string().contains("no-such-crate"), "{error}");
    }

    #[test]
    fn sbom_timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(spdx_expression("MIT/Apache-2.0"), "MIT OR Apache-2.0");
        assert_eq!(spdx_expression("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
    }
}
