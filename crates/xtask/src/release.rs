//! `cargo xtask version [--tag vX.Y.Z]`: prints the project's version, the one written by hand in
//! `[workspace.package] version` of the root Cargo.toml, after checking that every version that
//! follows it does (the chart's `version` and `appVersion`, the Dockerfile's `ARG VERSION`) and,
//! with `--tag`, that the tag being released is `v` and that version. The release workflow
//! (`.github/workflows/release.yml`) runs it first, so a tag that disagrees publishes nothing.

use anyhow::{Context as _, bail};

use crate::chart;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A release tag (`vX.Y.Z`, e.g. `$GITHUB_REF_NAME`) that must name the workspace version.
    #[arg(long)]
    tag: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let version = chart::workspace_version()?;
    check_versioned_files()?;
    if let Some(tag) = &args.tag {
        check_tag(tag, &version)?;
    }
    println!("{version}");
    Ok(())
}

/// Fails when a file whose version follows the workspace version does not show it.
pub fn check_versioned_files() -> anyhow::Result<()> {
    let root = foundry_gateway_testbed::paths::repo_root();
    let mut stale = Vec::new();
    for (relative, expected) in chart::versioned_files()? {
        let current = std::fs::read_to_string(root.join(&relative))
            .with_context(|| format!("reading {relative}"))?;
        if current != expected {
            stale.push(relative);
        }
    }
    if !stale.is_empty() {
        bail!(
            "not at the workspace version of {}: {}; run `cargo xtask chart render`",
            chart::VERSION_SOURCE,
            stale.join(", ")
        );
    }
    Ok(())
}

/// Fails unless `tag` is `v{version}`.
pub fn check_tag(tag: &str, version: &str) -> anyhow::Result<()> {
    let tag = tag.strip_prefix("refs/tags/").unwrap_or(tag);
    match tag.strip_prefix('v') {
        Some(tagged) if tagged == version => Ok(()),
        Some(tagged) => bail!(
            "the tag {tag} names version {tagged}, but the workspace version ({}) is {version}",
            chart::VERSION_SOURCE
        ),
        None => bail!("the tag {tag} is not of the form vX.Y.Z (expected v{version})"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use foundry_gateway_testbed::paths;
    use serde_yaml::Value;

    fn read(relative: &str) -> String {
        std::fs::read_to_string(paths::repo_root().join(relative)).unwrap()
    }

    #[test]
    fn version_of_the_chart_and_the_images_is_the_workspace_version() {
        let version = chart::workspace_version().unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"), "xtask inherits it");
        let chart: Value = serde_yaml::from_str(&read(chart::CHART_YAML)).unwrap();
        assert_eq!(
            chart["version"].as_str(),
            Some(version.as_str()),
            "Chart.yaml's version differs from the workspace version; run `cargo xtask chart render`"
        );
        assert_eq!(
            chart["appVersion"].as_str(),
            Some(version.as_str()),
            "Chart.yaml's appVersion differs from the workspace version; run `cargo xtask chart render`"
        );
        let dockerfile = read(chart::DOCKERFILE);
        let defaults: Vec<&str> = dockerfile
            .lines()
            .filter_map(|l| l.strip_prefix("ARG VERSION="))
            .collect();
        assert_eq!(
            defaults,
            [version.as_str(), version.as_str()],
            "one per image"
        );
        check_versioned_files().unwrap();
    }

    #[test]
    fn version_rewrites_only_the_version_lines() {
        let chart = "apiVersion: v2\nname: x\n# version: comment\nversion: 0.1.0\nappVersion: \"0.1.0\"\nkubeVersion: \">=1.30.0-0\"\n";
        let bumped = chart::with_chart_version(chart, "1.2.3").unwrap();
        assert_eq!(
            bumped,
            "apiVersion: v2\nname: x\n# version: comment\nversion: 1.2.3\nappVersion: \"1.2.3\"\nkubeVersion: \">=1.30.0-0\"\n"
        );
        let parsed: Value = serde_yaml::from_str(&bumped).unwrap();
        assert_eq!(parsed["appVersion"].as_str(), Some("1.2.3"));
        assert!(chart::with_chart_version("apiVersion: v2\n", "1.2.3").is_err());
        let dockerfile = "FROM a AS b\nARG VERSION=0.1.0\nLABEL v=\"${VERSION}\"\n";
        assert_eq!(
            chart::with_dockerfile_version(dockerfile, "2.0.0").unwrap(),
            "FROM a AS b\nARG VERSION=2.0.0\nLABEL v=\"${VERSION}\"\n"
        );
        assert!(chart::with_dockerfile_version("FROM a\n", "2.0.0").is_err());
        assert_eq!(
            chart::parse_workspace_version(
                "[package]\nversion = \"9.9.9\"\n[workspace.package]\nedition = \"2024\"\nversion = \"1.4.0\"\n"
            )
            .as_deref(),
            Some("1.4.0")
        );
        assert_eq!(
            chart::parse_workspace_version("[package]\nversion = \"1\"\n"),
            None
        );
    }

    #[test]
    fn version_tag_must_name_the_workspace_version() {
        check_tag("v1.2.3", "1.2.3").unwrap();
        check_tag("refs/tags/v1.2.3-rc.1", "1.2.3-rc.1").unwrap();
        let other = check_tag("v1.2.4", "1.2.3").unwrap_err().to_string();
        assert!(
            other.contains("1.2.4") && other.contains("1.2.3"),
            "{other}"
        );
        assert!(check_tag("1.2.3", "1.2.3").is_err(), "the v is required");
        assert!(check_tag("v1.2.3.1", "1.2.3").is_err());
    }
}
