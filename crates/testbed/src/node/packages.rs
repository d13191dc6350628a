//! The node's Debian packages (containerd, runc, the CNI plugins, iptables, conntrack and the
//! libraries iptables needs), taken out with `apt-get download` and `dpkg-deb -x` into a folder of
//! the cache keyed by [`CONTAINERD_VERSION`], like `install::promtool`: no system install, no
//! maintainer scripts. The binaries run from there; the libraries are found through
//! `LD_LIBRARY_PATH`, iptables's extensions through `XTABLES_LIBDIR`, and `bin/` holds the names
//! (`iptables`, `iptables-save`, …) that Debian's alternatives would make, pointing at the nft
//! backend.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::install::{self, ensure_installed, output_of};
use crate::stack_error::{StackError, StackResult};

/// Upstream version of Debian bookworm's containerd, the cache key of the whole folder.
pub const CONTAINERD_VERSION: &str = "1.6.20";

/// The Debian packages taken, libraries of iptables and conntrack included (libc and libseccomp
/// come with every Debian system).
const PACKAGES: &[&str] = &[
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "conntrack",
    "libip4tc2",
    "libip6tc2",
    "libxtables12",
    "libnftnl11",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
    "libmnl0",
];

/// Names under `bin/` that the nft backend of iptables answers to.
const IPTABLES_NAMES: &[&str] = &[
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
];

/// Where the extracted packages are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePackages {
    /// The cache folder.
    pub root: PathBuf,
}

impl NodePackages {
    /// `containerd`.
    pub fn containerd(&self) -> PathBuf {
        self.root.join("usr/bin/containerd")
    }

    /// `ctr`, containerd's client.
    pub fn ctr(&self) -> PathBuf {
        self.root.join("usr/bin/ctr")
    }

    /// `runc`.
    pub fn runc(&self) -> PathBuf {
        self.root.join("usr/sbin/runc")
    }

    /// The CNI plugins (`bridge`, `host-local`, `loopback`, …).
    pub fn cni_bin_dir(&self) -> PathBuf {
        self.root.join("usr/lib/cni")
    }

    /// `iptables` and friends (nft backend), `conntrack`, containerd's shims: the `PATH` entries.
    pub fn path_dirs(&self) -> Vec<PathBuf> {
        vec![
            self.root.join("bin"),
            self.root.join("usr/sbin"),
            self.root.join("usr/bin"),
        ]
    }

    /// `iptables` (nft backend).
    pub fn iptables(&self) -> PathBuf {
        self.root.join("bin/iptables")
    }

    /// The libraries the binaries need beyond libc.
    pub fn lib_dir(&self) -> PathBuf {
        self.root.join("usr/lib/x86_64-linux-gnu")
    }

    /// iptables's extension modules.
    pub fn xtables_dir(&self) -> PathBuf {
        self.lib_dir().join("xtables")
    }

    /// The environment every node process and every iptables call gets: `PATH` with our folders
    /// first, `LD_LIBRARY_PATH` and `XTABLES_LIBDIR`.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut path: Vec<String> = self
            .path_dirs()
            .iter()
            .map(|dir| dir.display().to_string())
            .collect();
        path.push(std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        vec![
            ("PATH".to_owned(), path.join(":")),
            (
                "LD_LIBRARY_PATH".to_owned(),
                self.lib_dir().display().to_string(),
            ),
            (
                "XTABLES_LIBDIR".to_owned(),
                self.xtables_dir().display().to_string(),
            ),
        ]
    }

    /// A command for one of the packaged programs, with [`NodePackages::env`].
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env());
        command
    }
}

/// The extracted packages, downloaded first when the cache has none.
pub fn ensure_node_packages() -> StackResult<NodePackages> {
    let name = format!("node-packages-containerd-{CONTAINERD_VERSION}");
    let facts = format!(
        "Debian packages {} with containerd {CONTAINERD_VERSION}",
        PACKAGES.join(" ")
    );
    let fingerprint = install::fingerprint(&[], &[&facts])?;
    let root = ensure_installed(&name, "the node's Debian packages", &fingerprint, install)?;
    Ok(NodePackages { root })
}

fn install(dir: &Path) -> StackResult<()> {
    let what = "the node's Debian packages";
    let log = dir.join("install.log");
    install::unpack_debian_packages(what, PACKAGES, dir, dir, &log)?;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(|source| StackError::create_dir(&bin, source))?;
    for name in IPTABLES_NAMES {
        let link = bin.join(name);
        std::os::unix::fs::symlink("../usr/sbin/xtables-nft-multi", &link)
            .map_err(|source| StackError::write(&link, source))?;
    }
    let packages = NodePackages {
        root: dir.to_path_buf(),
    };
    let version = output_of(packages.command(packages.containerd()).arg("--version"))?;
    if !version.contains(&format!(" {CONTAINERD_VERSION}")) {
        return Err(StackError::Tool {
            command: "containerd --version".to_owned(),
            message: format!("Debian ships `{version}`, expected containerd {CONTAINERD_VERSION}"),
        });
    }
    output_of(packages.command(packages.iptables()).arg("--version"))?;
    Ok(())
}
