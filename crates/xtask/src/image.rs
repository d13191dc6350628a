//! `cargo xtask image`: the operator's and the emulator's images without a container engine. The
//! release binaries (`cargo build --release -p foundry-gateway-operator -p
//! foundry-gateway-emulator`) go into OCI image layout archives written by the test bed's own
//! code (`target/images/<name>-<tag>.oci.tar`), which are then loaded into the containerd of a
//! running test bed with a node (`ctr images import`), if there is one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use foundry_gateway_testbed::{Testbed, image, paths};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tag of both images (a second tag makes the images of an upgrade).
    #[arg(long, default_value = "dev")]
    tag: String,
    /// Only write the archives; do not load them into a running test bed's node.
    #[arg(long)]
    no_load: bool,
    /// State directory of the test bed to load into [default: $FOUNDRY_TESTBED_DIR, else
    /// <repo>/.testbed]
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let release =
        image::build_release_binaries().context("failed to build the release binaries")?;
    let out = paths::repo_root().join("target").join("images");
    let images = image::write_project_images(&release, &args.tag, &out)
        .context("failed to write the images")?;
    for (spec, written) in &images {
        eprintln!(
            "Wrote {} ({} MiB layer, manifest {}) to {}",
            spec.reference(),
            written.layer_size / (1024 * 1024),
            written.manifest_digest,
            written.archive.display()
        );
    }
    if !args.no_load {
        let default_dir = args.dir.clone().unwrap_or_else(paths::default_state_dir);
        match Testbed::find_running(&default_dir) {
            Some(testbed) => match testbed.node() {
                Some(node) => {
                    for (spec, written) in &images {
                        node.import_image(&written.archive)
                            .with_context(|| format!("failed to load {}", spec.reference()))?;
                        eprintln!("Loaded {} into the test bed's node", spec.reference());
                    }
                }
                None => eprintln!(
                    "The test bed in {} has no node (`cargo xtask testbed up --nodes`); not loaded",
                    testbed.state_dir().display()
                ),
            },
            None => eprintln!("No running test bed; the images were not loaded"),
        }
    }
    eprintln!("Images done in {:.1?}", started.elapsed());
    Ok(())
}
