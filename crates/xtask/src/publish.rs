//! `cargo xtask release --registry HOST:PORT`: the release workflow's steps, run here without
//! secrets against any OCI registry (the test bed's, on loopback):
//!
//! 1. the release binaries (`cargo build --release`, as the Dockerfile's builder stage);
//! 2. the operator's and the emulator's images (the test bed's image writer, no container
//!    engine), pushed as `<registry>/<name>:<version>`;
//! 3. a CycloneDX SBOM of each binary (`cargo xtask sbom`);
//! 4. each image signed with cosign and its SBOM attached as a signed attestation (`--type
//!    cyclonedx`), with a key pair on disk (a throwaway one, made in the output folder, unless
//!    `--key` names one) and nothing sent to a transparency log;
//! 5. the chart packaged at the version with the operator image's repository and digest in its
//!    values (`cargo xtask chart package`), pushed to `oci://<registry>/charts` and signed.
//!
//! What was published is written to `<out>/release.json` (references, digests, sizes, the public
//! key, the SBOMs); a summary with the time of each step is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use foundry_gateway_testbed::registry::{ReleaseTools, ensure_release_tools};
use foundry_gateway_testbed::{image, oci, paths};
use serde::{Deserialize, Serialize};

use crate::{chart, release, sbom};

/// The repository of the chart below the registry.
pub const CHART_REPOSITORY: &str = "charts/foundry-gateway-operator";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry to publish to, as `host:port` (HTTPS).
    #[arg(long)]
    registry: String,
    /// A CA certificate (PEM) to trust for the registry, beside nothing else.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// The version to publish [default: the workspace version].
    #[arg(long)]
    version: Option<String>,
    /// cosign's private key (unencrypted, or its password in `$COSIGN_PASSWORD`) [default: a
    /// throwaway key pair made in the output folder].
    #[arg(long)]
    key: Option<PathBuf>,
    /// The output folder [default: target/release-artifacts/<version>].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What a release published, as written to `release.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Published {
    pub version: String,
    pub registry: String,
    pub images: Vec<PublishedImage>,
    pub chart: PublishedChart,
    /// The public key the signatures verify with.
    pub public_key: PathBuf,
}

/// One image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedImage {
    pub name: String,
    /// `<registry>/<name>`.
    pub repository: String,
    pub digest: String,
    /// Bytes stored in the registry (compressed layer, config, manifest).
    pub size: usize,
    /// Bytes of the unpacked layer.
    pub uncompressed_size: usize,
    /// The CycloneDX SBOM attached to it.
    pub sbom: PathBuf,
}

/// The chart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedChart {
    /// `oci://<registry>/charts/foundry-gateway-operator`.
    pub reference: String,
    pub digest: String,
    pub archive: PathBuf,
}

impl PublishedImage {
    /// `<registry>/<name>@<digest>`.
    pub fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let version = match &args.version {
        Some(version) => version.clone(),
        None => chart::workspace_version()?,
    };
    ensure!(
        is_chart_version(&version),
        "{version:?} is not a version Helm accepts (X.Y.Z with an optional -prerelease)"
    );
    release::check_versioned_files()?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => paths::repo_root()
            .join("target")
            .join("release-artifacts")
            .join(&version),
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let ca_pem = match &args.ca_file {
        Some(path) => {
            Some(fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let mut steps = Steps::default();
    let tools = ensure_release_tools().context("building the registry and cosign")?;
    let cosign = Cosign::new(&tools, args.ca_file.as_deref(), &out);
    let key = match &args.key {
        Some(key) => key.clone(),
        None => cosign.generate_key_pair()?,
    };
    let public_key = key.with_extension("pub");
    steps.done("tools and key");

    let release_dir = image::build_release_binaries().context("building the release binaries")?;
    steps.done("release binaries");
    let registry = oci::Registry::new(&args.registry, ca_pem.as_deref())?;
    let mut images = Vec::new();
    for spec in image::project_images(&release_dir, &version)? {
        let built = image::build(&spec)?;
        let repository = format!("{}/{}", args.registry, spec.name);
        let digest = registry
            .push_image(&spec.name, &version, &built)
            .with_context(|| format!("pushing {repository}:{version}"))?;
        images.push(PublishedImage {
            name: spec.name.clone(),
            repository,
            digest,
            size: built.stored_size(),
            uncompressed_size: built.layer_uncompressed_size,
            sbom: out.join(format!("{}.cdx.json", spec.name)),
        });
    }
    steps.done("images built and pushed");

    write_sboms(&images)?;
    steps.done("SBOMs");
    for image in &images {
        cosign.sign(&key, &image.by_digest())?;
        cosign.attest_sbom(&key, &image.by_digest(), &image.sbom)?;
    }
    steps.done("images signed, SBOMs attested");

    let operator = images
        .iter()
        .find(|i| i.name == image::OPERATOR_IMAGE)
        .context("the operator's image")?;
    let chart = publish_chart(
        &args.registry,
        args.ca_file.as_deref(),
        &version,
        operator,
        &out,
    )?;
    cosign.sign(
        &key,
        &format!(
            "{}@{}",
            chart.reference.trim_start_matches("oci://"),
            chart.digest
        ),
    )?;
    steps.done("chart packaged, pushed and signed");

    let published = Published {
        version,
        registry: args.registry.clone(),
        images,
        chart,
        public_key,
    };
    let path = out.join("release.json");
    fs::write(&path, serde_json::to_string_pretty(&published)?)
        .with_context(|| format!("writing {}", path.display()))?;
    print_summary(&published, &steps, started);
    eprintln!("Wrote {}", path.display());
    Ok(())
}

/// Whether Helm takes `version` as a chart version: `X.Y.Z` or `X.Y.Z-pre.release`.
fn is_chart_version(version: &str) -> bool {
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (version, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|pre| {
            !pre.is_empty()
                && pre.split('.').all(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        })
}

fn write_sboms(images: &[PublishedImage]) -> anyhow::Result<()> {
    let target = sbom::host_target()?;
    let metadata = sbom::cargo_metadata(&target)?;
    for image in images {
        let package = match image.name.as_str() {
            image::OPERATOR_IMAGE => "foundry-gateway-operator",
            image::EMULATOR_IMAGE => "foundry-gateway-emulator",
            other => bail!("no package for the image {other}"),
        };
        let bom = sbom::sbom(&metadata, package, &target, std::time::SystemTime::now())?;
        fs::write(&image.sbom, serde_json::to_string_pretty(&bom)?)
            .with_context(|| format!("writing {}", image.sbom.display()))?;
    }
    Ok(())
}

/// `cargo xtask chart package` with the operator image's repository and digest, then `helm push`.
fn publish_chart(
    registry: &str,
    ca_file: Option<&Path>,
    version: &str,
    operator: &PublishedImage,
    out: &Path,
) -> anyhow::Result<PublishedChart> {
    let archive = chart::package(&chart::Package {
        version,
        image_repository: Some(&operator.repository),
        image_digest: Some(&operator.digest),
        out,
    })?;
    let charts = format!("oci://{registry}/charts");
    let mut push = Command::new(chart::helm_binary()?);
    push.arg("push").arg(&archive).arg(&charts);
    if let Some(ca) = ca_file {
        push.arg("--ca-file").arg(ca);
    }
    let output = push.output().context("running helm push")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(output.status.success(), "helm push failed: {}", text.trim());
    let digest = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Digest: "))
        .map(str::trim)
        .filter(|d| chart::is_digest(d))
        .with_context(|| format!("helm push printed no digest: {}", text.trim()))?
        .to_owned();
    Ok(PublishedChart {
        reference: format!("oci://{registry}/{CHART_REPOSITORY}"),
        digest,
        archive,
    })
}

/// cosign with a key on disk, trusting the registry's CA, without a transparency log.
#[derive(Debug)]
pub struct Cosign<'a> {
    binary: PathBuf,
    ca_file: Option<&'a Path>,
    dir: &'a Path,
}

impl<'a> Cosign<'a> {
    /// cosign of `tools`, working in `dir` (its key pair and its own state go there).
    pub fn new(tools: &ReleaseTools, ca_file: Option<&'a Path>, dir: &'a Path) -> Self {
        Self {
            binary: tools.cosign(),
            ca_file,
            dir,
        }
    }

    /// A cosign command: an empty key password unless the caller set one, the registry's CA as
    /// the only trusted root when given, and Sigstore's cache below the working folder.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.current_dir(self.dir);
        if std::env::var_os("COSIGN_PASSWORD").is_none() {
            command.env("COSIGN_PASSWORD", "");
        }
        if let Some(ca) = self.ca_file {
            command.env("SSL_CERT_FILE", ca);
        }
        command.env("TUF_ROOT", self.dir.join(".sigstore"));
        command
    }

    /// `cosign generate-key-pair` into `<dir>/cosign.key` and `cosign.pub` (a throwaway pair,
    /// replaced when present); returns the private key.
    pub fn generate_key_pair(&self) -> anyhow::Result<PathBuf> {
        let key = self.dir.join("cosign.key");
        for file in [key.clone(), key.with_extension("pub")] {
            if file.exists() {
                fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
            }
        }
        self.run(
            self.command()
                .args(["generate-key-pair", "--output-key-prefix"])
                .arg(self.dir.join("cosign")),
        )?;
        Ok(key)
    }

    /// `cosign sign` of `reference` (by digest) with `key`.
    pub fn sign(&self, key: &Path, reference: &str) -> anyhow::Result<()> {
        self.run(
            self.command()
                .args(["sign", "--yes", "--tlog-upload=false", "--key"])
                .arg(key)
                .arg(reference),
        )
    }

    /// `cosign attest --type cyclonedx` of `sbom` to `reference` with `key`.
    pub fn attest_sbom(&self, key: &Path, reference: &str, sbom: &Path) -> anyhow::Result<()> {
        self.run(
            self.command()
                .args([
                    "attest",
                    "--yes",
                    "--tlog-upload=false",
                    "--type",
                    "cyclonedx",
                ])
                .arg("--key")
                .arg(key)
                .arg("--predicate")
                .arg(sbom)
                .arg(reference),
        )
    }

    fn run(&self, command: &mut Command) -> anyhow::Result<()> {
        let output = command
            .output()
            .with_context(|| format!("running {command:?}"))?;
        ensure!(
            output.status.success(),
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Ok(())
    }
}

/// The time of each step.
#[derive(Debug)]
struct Steps {
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Default for Steps {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            done: Vec::new(),
        }
    }
}

impl Steps {
    fn done(&mut self, what: &'static str) {
        self.done.push((what, self.last.elapsed().as_secs_f64()));
        self.last = Instant::now();
    }
}

fn print_summary(published: &Published, steps: &Steps, started: Instant) {
    println!(
        "Released {} to {} in {:.1} s",
        published.version,
        published.registry,
        started.elapsed().as_secs_f64()
    );
    for (what, seconds) in &steps.done {
        println!("  {what:<34} {seconds:>6.1} s");
    }
    for image in &published.images {
        println!(
            "  image {}@{} ({:.1} MiB in the registry, {:.1} MiB unpacked)",
            image.repository,
            image.digest,
            mib(image.size),
            mib(image.uncompressed_size)
        );
    }
    println!(
        "  chart {} --version {} ({})",
        published.chart.reference, published.version, published.chart.digest
    );
    println!(
        "  verify with: cosign verify --key {} --insecure-ignore-tlog=true <image>@<digest>",
        published.public_key.display()
    );
}

fn mib(bytes: usize) -> f64 {
    // Sizes are far below 2^52 bytes, where f64 stops being exact.
    #[allow(clippy::cast_precision_loss)]
    let bytes = bytes as f64;
    bytes / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn chart_versions_are_semver_with_an_optional_prerelease() {
        for good in ["0.1.0", "1.22.333", "0.1.0-pods.1", "0.1.0-rc-1"] {
            assert!(is_chart_version(good), "{good}");
        }
        for bad in [
            "",
            "0.1",
            "v0.1.0",
            "0.1.0-",
            "0.1.0-a..b",
            "0.1.x",
            "0.1.0-a/b",
        ] {
            assert!(!is_chart_version(bad), "{bad}");
        }
    }

    #[test]
    fn the_packaged_values_name_the_released_image_and_keep_the_rest() {
        let values = fs::read_to_string(chart::chart_dir().join("values.yaml")).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        let text =
            chart::with_image_values(&values, Some("127.0.0.1:5000/op"), Some(&digest)).unwrap();
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["image"]["repository"], "127.0.0.1:5000/op");
        assert_eq!(parsed["image"]["digest"], digest.as_str());
        let original: serde_yaml::Value = serde_yaml::from_str(&values).unwrap();
        assert_eq!(parsed["replicas"], original["replicas"]);
        assert_eq!(
            parsed["image"]["pullPolicy"],
            original["image"]["pullPolicy"]
        );
        assert_eq!(
            text.lines().count(),
            values.lines().count(),
            "comments kept"
        );
        // Nothing given, nothing changed.
        assert_eq!(
            chart::with_image_values(&values, None, None).unwrap(),
            values
        );
    }

    #[test]
    fn digests_are_sha256_in_lowercase_hex() {
        assert!(chart::is_digest(&format!("sha256:{}", "0f".repeat(32))));
        assert!(!chart::is_digest(&format!("sha256:{}", "0F".repeat(32))));
        assert!(!chart::is_digest("sha256:abc"));
        assert!(!chart::is_digest(&format!("sha512:{}", "0".repeat(64))));
    }
}
