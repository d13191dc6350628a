//! What the node changes on the machine, recorded before it starts and compared after it stops:
//! sysctls, iptables chains and rules, mounts, network links and namespaces, paths outside the
//! state directory, and processes that belong to the node.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::packages::NodePackages;

/// Sysctls the kubelet, kube-proxy or the CNI plugins may set.
pub const SYSCTLS: &[&str] = &[
    "kernel/panic",
    "kernel/panic_on_oops",
    "vm/overcommit_memory",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

/// Paths outside the state directory that containerd, the kubelet or the CNI plugins create when
/// they are missing (hard-coded in them).
pub const OUTSIDE_PATHS: &[&str] = &[
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/run/containerd",
    "/run/netns",
    "/opt/containerd",
    "/etc/cni",
];

/// iptables tables the node's components touch.
pub const TABLES: &[&str] = &["filter", "nat", "mangle", "raw"];

/// The machine as the node found it (`<state>/node/host.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostSnapshot {
    /// Sysctl (as a path below /proc/sys) → value; `None` when it does not exist.
    pub sysctls: BTreeMap<String, Option<String>>,
    /// `iptables-save`/`ip6tables-save` (nft backend) of each family and table, normalised.
    pub iptables: BTreeMap<String, String>,
    /// Mount points.
    pub mounts: BTreeSet<String>,
    /// Network link names.
    pub links: BTreeSet<String>,
    /// Entries of /run/netns.
    pub netns: BTreeSet<String>,
    /// Which of [`OUTSIDE_PATHS`] exist.
    pub paths: BTreeSet<String>,
}

impl HostSnapshot {
    /// Reads the machine's state now.
    pub fn take(packages: &NodePackages) -> Self {
        let sysctls = SYSCTLS
            .iter()
            .map(|key| ((*key).to_owned(), read_sysctl(key)))
            .collect();
        let mut iptables = BTreeMap::new();
        for family in ["iptables", "ip6tables"] {
            for table in TABLES {
                iptables.insert(
                    format!("{family}/{table}"),
                    normalise_save(&iptables_save(packages, family, table)),
                );
            }
        }
        Self {
            sysctls,
            iptables,
            mounts: mount_points(),
            links: links(),
            netns: dir_entries(Path::new("/run/netns")),
            paths: OUTSIDE_PATHS
                .iter()
                .filter(|path| Path::new(path).exists())
                .map(|path| (*path).to_owned())
                .collect(),
        }
    }

    /// What differs in `now` from this snapshot, one sentence each; empty when restored.
    pub fn differences(&self, now: &Self) -> Vec<String> {
        let mut found = Vec::new();
        for (key, before) in &self.sysctls {
            let after = now.sysctls.get(key).cloned().flatten();
            if *before != after {
                found.push(format!("sysctl {key} is {after:?}, was {before:?}"));
            }
        }
        for (table, before) in &self.iptables {
            let after = now.iptables.get(table).cloned().unwrap_or_default();
            if *before != after {
                found.push(format!("{table} differs: before\n{before}\nnow\n{after}"));
            }
        }
        set_differences(&mut found, "mount", &self.mounts, &now.mounts);
        set_differences(&mut found, "network link", &self.links, &now.links);
        set_differences(&mut found, "network namespace", &self.netns, &now.netns);
        set_differences(&mut found, "path", &self.paths, &now.paths);
        found
    }

    /// Writes the snapshot to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        fs::write(path, text + "\n")
    }

    /// Reads a snapshot written by [`HostSnapshot::write`].
    pub fn read(path: &Path) -> std::io::Result<Self> {
        let text = fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

/// The node that runs on this machine, kept in the cache (outside its state directory, which the
/// watchdog of an attached test bed removes when its owner dies) so a later start can put the
/// machine back when that node was never stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The test bed's state directory.
    pub state_dir: PathBuf,
    /// The pid whose end ends the test bed; `None` when detached.
    pub owner: Option<u32>,
    /// The machine before the node started.
    pub snapshot: HostSnapshot,
}

impl NodeRecord {
    /// `<cache>/node-record.json`.
    pub fn path() -> crate::Result<PathBuf> {
        Ok(crate::paths::cache_root()?.join("node-record.json"))
    }

    /// The record, if any.
    pub fn read() -> Option<Self> {
        let text = fs::read_to_string(Self::path().ok()?).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the record.
    pub fn write(&self) -> std::io::Result<()> {
        let path = Self::path().map_err(std::io::Error::other)?;
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        fs::write(path, text + "\n")
    }

    /// Removes the record.
    pub fn remove() {
        if let Ok(path) = Self::path() {
            let _ = fs::remove_file(path);
        }
    }

    /// Whether the test bed of this record can no longer stop its node itself: its owner ended,
    /// or its state is gone.
    pub fn is_stale(&self) -> bool {
        let owner_gone = self
            .owner
            .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
        owner_gone || !self.state_dir.join(crate::state::STATE_FILE).exists()
    }
}

fn set_differences(
    found: &mut Vec<String>,
    what: &str,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) {
    for added in after.difference(before) {
        found.push(format!("{what} {added} was added"));
    }
    for removed in before.difference(after) {
        found.push(format!("{what} {removed} was removed"));
    }
}

pub(crate) fn read_sysctl(key: &str) -> Option<String> {
    fs::read_to_string(Path::new("/proc/sys").join(key))
        .ok()
        .map(|value| value.trim().to_owned())
}

pub(crate) fn write_sysctl(key: &str, value: &str) -> std::io::Result<()> {
    fs::write(Path::new("/proc/sys").join(key), value)
}

pub(crate) fn iptables_save(packages: &NodePackages, family: &str, table: &str) -> String {
    let program = packages.root.join("bin").join(format!("{family}-save"));
    packages
        .command(program)
        .args(["-t", table])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
}

/// An `iptables-save` dump without comments, counters and empty built-in chains, so that a table
/// that never existed equals one whose rules were all removed.
pub(crate) fn normalise_save(dump: &str) -> String {
    const BUILT_IN: &[&str] = &["INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"];
    let mut lines = Vec::new();
    for line in dump.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('*') || line == "COMMIT" {
            continue;
        }
        if let Some(chain) = line.strip_prefix(':') {
            let mut parts = chain.split_whitespace();
            let name = parts.next().unwrap_or_default();
            let policy = parts.next().unwrap_or_default();
            if BUILT_IN.contains(&name) && policy == "ACCEPT" {
                continue;
            }
            lines.push(format!(":{name} {policy}"));
        } else {
            lines.push(line.to_owned());
        }
    }
    lines.join("\n")
}

pub(crate) fn mount_points() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount)
        .collect()
}

/// Mount points in /proc/self/mountinfo escape space, tab, newline and backslash as octal.
fn unescape_mount(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub(crate) fn links() -> BTreeSet<String> {
    dir_entries(Path::new("/sys/class/net"))
}

pub(crate) fn dir_entries(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes that belong to a node: their command line names `marker` (the node's folder, which
/// every binary, shim and socket of it is under) or their cgroup is below `cgroup_root`.
pub fn node_processes(marker: &Path, cgroup_root: &str) -> Vec<(u32, String)> {
    let marker = marker.display().to_string();
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        let cmdline = fs::read(dir.join("cmdline"))
            .map(|bytes| {
                String::from_utf8_lossy(&bytes)
                    .replace('\0', " ")
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        let cgroup = fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
        let in_cgroup = cgroup.lines().any(|line| {
            line.split(':')
                .nth(2)
                .is_some_and(|p| p.starts_with(cgroup_root))
        });
        if cmdline.contains(&marker) || in_cgroup {
            let shown = if cmdline.is_empty() {
                fs::read_to_string(dir.join("comm"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            } else {
                cmdline
            };
            found.push((pid, shown));
        }
    }
    found
}

/// Cgroup folders named `root` (below each mounted cgroup v1 hierarchy, or the v2 root).
pub fn cgroup_dirs(root: &str) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let relative = root.trim_start_matches('/');
    let mut dirs = Vec::new();
    if base.join("cgroup.controllers").exists() {
        dirs.push(base.join(relative));
    } else {
        for entry in fs::read_dir(base).into_iter().flatten().flatten() {
            dirs.push(entry.path().join(relative));
        }
    }
    dirs.into_iter().filter(|dir| dir.is_dir()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_table_equals_one_that_never_existed() {
        let emptied = "# Generated by iptables-nft-save\n*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [3:120]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(normalise_save(emptied), normalise_save(""));
        let kept = "*nat\n:KUBE-SERVICES - [0:0]\n-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n";
        assert_eq!(
            normalise_save(kept),
            ":KUBE-SERVICES -\n-A PREROUTING -j KUBE-SERVICES"
        );
    }

    #[test]
    fn differences_name_what_changed() {
        let before = HostSnapshot {
            sysctls: BTreeMap::from([("kernel/panic".to_owned(), Some("0".to_owned()))]),
            iptables: BTreeMap::new(),
            mounts: BTreeSet::from(["/".to_owned()]),
            links: BTreeSet::from(["lo".to_owned()]),
            netns: BTreeSet::new(),
            paths: BTreeSet::new(),
        };
        assert!(before.differences(&before).is_empty());
        let mut after = before.clone();
        after
            .sysctls
            .insert("kernel/panic".to_owned(), Some("10".to_owned()));
        after.links.insert("fgotb0".to_owned());
        after.paths.insert("/var/lib/cni".to_owned());
        let found = after.differences(&before);
        let found = before.differences(&after).join("\n") + &found.join("\n");
        assert!(
            found.contains("sysctl kernel/panic is Some(\"10\"), was Some(\"0\")"),
            "{found}"
        );
        assert!(found.contains("network link fgotb0 was added"), "{found}");
        assert!(found.contains("path /var/lib/cni was added"), "{found}");
    }

    #[test]
    fn a_record_is_stale_once_its_owner_or_its_state_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::state::STATE_FILE), "{}").unwrap();
        let record = |owner| NodeRecord {
            state_dir: dir.path().to_path_buf(),
            owner,
            snapshot: HostSnapshot {
                sysctls: BTreeMap::new(),
                iptables: BTreeMap::new(),
                mounts: BTreeSet::new(),
                links: BTreeSet::new(),
                netns: BTreeSet::new(),
                paths: BTreeSet::new(),
            },
        };
        assert!(!record(Some(std::process::id())).is_stale());
        assert!(
            !record(None).is_stale(),
            "a detached node with its state runs"
        );
        assert!(record(Some(u32::MAX)).is_stale(), "its owner ended");
        std::fs::remove_file(dir.path().join(crate::state::STATE_FILE)).unwrap();
        assert!(record(None).is_stale(), "its state is gone");
    }

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }
}
