//! The GitHub Actions workflows (`.github/workflows/*.yml`), linted by actionlint: every finding
//! fails the test, and a deliberately broken workflow shows that actionlint does report. Then the
//! release workflow's promises that actionlint cannot see: third-party actions pinned by commit,
//! least privilege per job, the version check before anything is published.
//!
//! actionlint is built from its Go module (`github.com/rhysd/actionlint`, pinned at
//! [`ACTIONLINT_VERSION`]) with the local Go (`go install` into the cache outside the repository,
//! one folder per version; the module's own go.sum and the checksum database check the sources).
//! Its shellcheck and pyflakes integrations are off, so that the result does not depend on what
//! else this machine has installed.

// Helpers of this test crate fail the test on purpose when something misbehaves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use foundry_gateway_testbed::paths;
use serde_yaml::Value as Yaml;

/// The actionlint release the workflows are checked with.
const ACTIONLINT_VERSION: &str = "v1.7.12";

/// Its main package.
const ACTIONLINT_PACKAGE: &str = "github.com/rhysd/actionlint/cmd/actionlint";

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("failed to run {command:?}: {err}"))
}

/// actionlint, built once per test binary when missing into
/// `<cache>/actionlint-<version>/actionlint`; a lock file lets one test binary build while the
/// others wait.
fn actionlint() -> PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(|| {
        let dir = paths::cache_root()
            .unwrap()
            .join(format!("actionlint-{ACTIONLINT_VERSION}"));
        let binary = dir.join("actionlint");
        if !binary.is_file() {
            fs::create_dir_all(&dir).unwrap();
            let lock = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(".build.lock"))
                .unwrap();
            match lock.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => lock.lock().unwrap(),
                Err(TryLockError::Error(err)) => {
                    panic!("failed to lock the actionlint cache: {err}")
                }
            }
            if !binary.is_file() {
                eprintln!(
                    "Building actionlint {ACTIONLINT_VERSION} into {}",
                    dir.display()
                );
                let temp = dir.join(format!(".bin.tmp-{}", std::process::id()));
                let output = run(Command::new("go")
                    .current_dir(&dir)
                    .env("GOTOOLCHAIN", "local")
                    .env("CGO_ENABLED", "0")
                    .env("GOBIN", &temp)
                    .env_remove("GOFLAGS")
                    .args(["install", "-trimpath"])
                    .arg(format!("{ACTIONLINT_PACKAGE}@{ACTIONLINT_VERSION}")));
                assert!(
                    output.status.success(),
                    "go install of actionlint {ACTIONLINT_VERSION} failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                );
                fs::rename(temp.join("actionlint"), &binary).unwrap();
                fs::remove_dir_all(&temp).unwrap();
            }
        }
        let output = run(Command::new(&binary).arg("-version"));
        let version = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            version.lines().next(),
            Some(ACTIONLINT_VERSION),
            "{} is not actionlint {ACTIONLINT_VERSION}: {version}",
            binary.display()
        );
        binary
    })
    .clone()
}

/// actionlint on `files`, run in `dir`, without shellcheck and pyflakes.
fn lint(dir: &Path, files: &[PathBuf]) -> Output {
    run(Command::new(actionlint())
        .current_dir(dir)
        .args(["-no-color", "-oneline", "-shellcheck=", "-pyflakes="])
        .args(files))
}

fn workflows_dir() -> PathBuf {
    paths::repo_root().join(".github").join("workflows")
}

/// The workflow files, sorted.
fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(workflows_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yml" || ext == "yaml")
        })
        .collect();
    files.sort();
    files
}

fn workflow(name: &str) -> Yaml {
    serde_yaml::from_str(&fs::read_to_string(workflows_dir().join(name)).unwrap()).unwrap()
}

#[test]
fn workflows_pass_actionlint() {
    let files = workflow_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["ci.yml", "release.yml"]);
    let output = lint(&paths::repo_root(), &files);
    assert!(
        output.status.success() && output.stdout.is_empty(),
        "actionlint {ACTIONLINT_VERSION} found problems ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn workflows_actionlint_reports_a_broken_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join(".github").join("workflows");
    fs::create_dir_all(&workflows).unwrap();
    let broken = workflows.join("broken.yml");
    fs::write(
        &broken,
        "name: broken\n\
         on:\n  push:\n    tags: [\"v*\"]\n\
         permissions:\n  id-token: writ\n\
         jobs:\n  \
           build:\n    runs-on: ubuntu-latest\n    needs: [missing]\n    steps:\n      \
             - run: echo \"${{ github.event.head_commit.mesage }}\"\n      \
             - uses: actions/checkout\n",
    )
    .unwrap();
    let output = lint(dir.path(), &[broken]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    for rule in ["[permissions]", "[job-needs]", "[action]"] {
        assert!(report.contains(rule), "no {rule} finding:\n{report}");
    }
    assert!(report.contains("writ"), "{report}");
}

/// Every `uses:` of a workflow (steps and reusable workflows), with its line's comment.
fn uses_lines(name: &str) -> Vec<(String, String)> {
    fs::read_to_string(workflows_dir().join(name))
        .unwrap()
        .lines()
        .filter_map(|line| {
            let rest = line.trim().trim_start_matches("- ").trim();
            let value = rest.strip_prefix("uses:")?;
            let (reference, comment) = value.split_once('#').unwrap_or((value, ""));
            Some((reference.trim().to_owned(), comment.trim().to_owned()))
        })
        .collect()
}

#[test]
fn workflows_pin_third_party_actions_by_commit_with_their_version() {
    for name in ["ci.yml", "release.yml"] {
        let uses = uses_lines(name);
        assert!(!uses.is_empty(), "{name} uses no action");
        for (reference, comment) in uses {
            if reference.starts_with("./") {
                continue;
            }
            let (_, rev) = reference.split_once('@').expect("a pinned action");
            assert!(
                rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()),
                "{name}: {reference} is not pinned by a full commit SHA"
            );
            assert!(
                comment.starts_with('v'),
                "{name}: {reference} does not name its version in a comment"
            );
        }
    }
}

#[test]
fn workflows_grant_least_privilege_per_job() {
    for name in ["ci.yml", "release.yml"] {
        let workflow = workflow(name);
        let top = &workflow["permissions"];
        assert!(
            top.as_mapping()
                .is_some_and(|m| m.iter().all(|(_, v)| v == "read" || v == "none")),
            "{name}: the workflow-wide permissions are not read-only: {top:?}"
        );
        for (job, spec) in workflow["jobs"].as_mapping().unwrap() {
            assert!(
                spec["permissions"].is_mapping(),
                "{name}: job {job:?} does not state its permissions"
            );
        }
    }
    // Only the jobs that sign or publish get a token that can: id-token for keyless signing,
    // packages for GHCR, contents for the release.
    let release = workflow("release.yml");
    for (job, spec) in release["jobs"].as_mapping().unwrap() {
        let job = job.as_str().unwrap();
        let grants = |scope: &str| spec["permissions"][scope] == "write";
        let signs = ["images", "chart"].contains(&job);
        assert_eq!(grants("id-token"), signs, "{job}: id-token");
        assert_eq!(
            grants("packages"),
            signs || job == "build",
            "{job}: packages"
        );
        assert_eq!(grants("contents"), job == "release", "{job}: contents");
    }
}

#[test]
fn workflows_release_checks_the_version_tests_signs_and_publishes() {
    let release = workflow("release.yml");
    assert_eq!(
        release["on"]["push"]["tags"],
        serde_yaml::from_str::<Yaml>("[\"v*\"]").unwrap()
    );
    let text = fs::read_to_string(workflows_dir().join("release.yml")).unwrap();
    for needed in [
        "cargo xtask version --tag",
        "cargo xtask sbom",
        "cosign sign",
        "cosign attest",
        "--type cyclonedx",
        "cargo xtask chart package --version",
        "--image-digest",
        "helm push",
        "oci://ghcr.io/",
        "linux/amd64",
        "linux/arm64",
        "config/crd/*.yaml",
        "deploy/foundry-gateway-operator.yaml",
    ] {
        assert!(text.contains(needed), "release.yml does not run {needed}");
    }
    // Nothing is built before the version check and the whole test suite pass.
    let jobs = release["jobs"].as_mapping().unwrap();
    assert_eq!(
        release["jobs"]["test"]["uses"],
        "./.github/workflows/ci.yml"
    );
    for (job, spec) in jobs {
        if ["version", "test"].contains(&job.as_str().unwrap()) {
            continue;
        }
        let needs: Vec<&str> = spec["needs"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(
            needs.contains(&"version")
                && (needs.contains(&"test")
                    || needs.contains(&"build")
                    || needs.contains(&"images")
                    || needs.contains(&"chart")),
            "{job:?} does not wait for the checks: {needs:?}"
        );
    }
    assert_eq!(
        release["jobs"]["build"]["needs"],
        serde_yaml::from_str::<Yaml>("[version, test]").unwrap()
    );
}
