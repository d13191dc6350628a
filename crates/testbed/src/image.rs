//! Container images without a container engine: the blobs of an image (one gzip-compressed layer,
//! a config, a manifest) written by our own code, either as an OCI image layout archive (with
//! `index.json`), which `ctr images import` loads into the node's containerd, or pushed to a
//! registry by [`crate::oci`].
//!
//! A layer holds files taken from this machine: a binary, the shared libraries `ldd` says it
//! needs, CA certificates, and a user database with the unprivileged user 65532, like the
//! distroless `cc` image the Dockerfile uses. Timestamps are zero and entries sorted, so the same
//! inputs give the same digests.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::stack_error::{StackError, StackResult};

/// The unprivileged user (and group) of every image, as in distroless `nonroot`.
pub const NONROOT: u32 = 65532;

/// `PATH` of every image.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the CA bundle lives in an image (and on Debian).
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path in the image.
    pub path: String,
    /// File content; `None` for a directory.
    pub content: Option<Vec<u8>>,
    /// Permission bits.
    pub mode: u32,
    /// Owner and group.
    pub owner: u32,
}

impl Entry {
    /// A regular file.
    pub fn file(path: impl Into<String>, content: Vec<u8>, mode: u32) -> Self {
        Self {
            path: path.into(),
            content: Some(content),
            mode,
            owner: 0,
        }
    }

    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32, owner: u32) -> Self {
        Self {
            path: path.into(),
            content: None,
            mode,
            owner,
        }
    }
}

/// An image to write: a name and tag, one layer, and the config of its process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Repository without registry (`foundry-gateway-operator`): containerd stores it as
    /// `docker.io/library/<name>:<tag>`, which is what a Pod's `image: <name>:<tag>` means.
    pub name: String,
    /// The tag.
    pub tag: String,
    /// The layer's files and directories (parents are added).
    pub entries: Vec<Entry>,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Env` beyond `PATH` and `SSL_CERT_FILE`.
    pub env: Vec<String>,
    /// `ExposedPorts`, as `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `User`; `None` for root.
    pub user: Option<String>,
    /// `Labels`.
    pub labels: BTreeMap<String, String>,
}

impl ImageSpec {
    /// The full reference containerd stores.
    pub fn reference(&self) -> String {
        format!("docker.io/library/{}:{}", self.name, self.tag)
    }
}

/// Name of the operator's image (the Dockerfile's `operator` stage).
pub const OPERATOR_IMAGE: &str = "foundry-gateway-operator";

/// Name of the emulator's image (the Dockerfile's `emulator` stage).
pub const EMULATOR_IMAGE: &str = "foundry-emulator";

/// `cargo build --release` of the operator and the emulator, as the Dockerfile's builder stage
/// runs it; returns `target/release`.
pub fn build_release_binaries() -> StackResult<PathBuf> {
    let root = crate::paths::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let command = "cargo build --release -p foundry-gateway-operator -p foundry-gateway-emulator";
    let mut build = Command::new(cargo);
    // Under `cargo test` the package's own variables are set; build scripts (ring's) track some
    // of them, so passing them on would rebuild half the tree whenever the caller changes.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&name.as_ref())
        {
            build.env_remove(name.as_ref());
        }
    }
    let status = build
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "foundry-gateway-operator",
            "-p",
            "foundry-gateway-emulator",
        ])
        .current_dir(&root)
        .status()
        .map_err(|source| StackError::Tool {
            command: command.to_owned(),
            message: source.to_string(),
        })?;
    if !status.success() {
        return Err(StackError::Tool {
            command: command.to_owned(),
            message: status.to_string(),
        });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("release"))
}

/// The images of the Dockerfile's two runtime stages, from binaries in `release_dir`, tagged
/// `tag`: the same Entrypoint, Env, ExposedPorts and user 65532.
pub fn project_images(release_dir: &Path, tag: &str) -> StackResult<Vec<ImageSpec>> {
    Ok(vec![
        binary_image(
            OPERATOR_IMAGE,
            tag,
            &release_dir.join("foundry-gateway-operator"),
            &[],
            &["8080/tcp"],
        )?,
        binary_image(
            EMULATOR_IMAGE,
            tag,
            &release_dir.join("foundry-emulator"),
            &["FOUNDRY_EMULATOR_LISTEN=0.0.0.0:8443"],
            &["8443/tcp"],
        )?,
    ])
}

/// Writes [`project_images`] to `<out_dir>/<name>-<tag>.oci.tar`.
pub fn write_project_images(
    release_dir: &Path,
    tag: &str,
    out_dir: &Path,
) -> StackResult<Vec<(ImageSpec, WrittenImage)>> {
    project_images(release_dir, tag)?
        .into_iter()
        .map(|spec| {
            let archive = out_dir.join(format!("{}-{}.oci.tar", spec.name, spec.tag));
            let written = write_archive(&spec, &archive)?;
            Ok((spec, written))
        })
        .collect()
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The archive.
    pub archive: PathBuf,
    /// `sha256:…` of the manifest.
    pub manifest_digest: String,
    /// Size of the (uncompressed) layer in bytes.
    pub layer_size: usize,
}

/// An image of `binary` installed as `/usr/local/bin/<name>` that runs it as user 65532, with the
/// libraries it needs, CA certificates and `/etc/passwd`, like the Dockerfile's runtime stages.
pub fn binary_image(
    name: &str,
    tag: &str,
    binary: &Path,
    env: &[&str],
    exposed_ports: &[&str],
) -> StackResult<ImageSpec> {
    let file_name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned());
    let target = format!("/usr/local/bin/{file_name}");
    let mut entries = vec![Entry::file(&target, read(binary)?, 0o755)];
    for library in shared_libraries(binary)? {
        let content = read(&library)?;
        entries.push(Entry::file(library.display().to_string(), content, 0o755));
    }
    entries.extend(base_entries()?);
    let mut env: Vec<String> = env.iter().map(|e| (*e).to_owned()).collect();
    env.insert(0, format!("SSL_CERT_FILE={CA_BUNDLE}"));
    Ok(ImageSpec {
        name: name.to_owned(),
        tag: tag.to_owned(),
        entries,
        entrypoint: vec![target],
        env,
        exposed_ports: exposed_ports.iter().map(|p| (*p).to_owned()).collect(),
        user: Some(format!("{NONROOT}:{NONROOT}")),
        labels: BTreeMap::from([
            ("org.opencontainers.image.title".to_owned(), name.to_owned()),
            (
                "org.opencontainers.image.version".to_owned(),
                tag.to_owned(),
            ),
        ]),
    })
}

/// CA certificates, `/etc/passwd` and `/etc/group` with root and nonroot, `/tmp` and the home of
/// nonroot.
fn base_entries() -> StackResult<Vec<Entry>> {
    Ok(vec![
        Entry::file(CA_BUNDLE, read(Path::new(CA_BUNDLE))?, 0o644),
        Entry::file(
            "/etc/passwd",
            format!(
                "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
            )
            .into_bytes(),
            0o644,
        ),
        Entry::file(
            "/etc/group",
            format!("root:x:0:\nnonroot:x:{NONROOT}:\n").into_bytes(),
            0o644,
        ),
        Entry::dir("/tmp", 0o1777, 0),
        Entry::dir("/home/nonroot", 0o700, NONROOT),
    ])
}

/// The shared libraries `binary` loads (its interpreter included), as `ldd` lists them.
pub fn shared_libraries(binary: &Path) -> StackResult<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| StackError::Tool {
            command: format!("ldd {}", binary.display()),
            message: source.to_string(),
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("not a dynamic executable") || !output.status.success() {
        return Ok(Vec::new());
    }
    Ok(parse_ldd(&text))
}

/// Paths in `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and the
/// interpreter's `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
pub(crate) fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// An image's blobs: one gzip-compressed layer, the config and the manifest that names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The layer, a gzip-compressed tar.
    pub layer: Vec<u8>,
    /// `sha256:…` of the layer as stored (compressed).
    pub layer_digest: String,
    /// Size of the uncompressed layer in bytes.
    pub layer_uncompressed_size: usize,
    /// The config (JSON).
    pub config: Vec<u8>,
    /// `sha256:…` of the config.
    pub config_digest: String,
    /// The manifest (JSON, `application/vnd.oci.image.manifest.v1+json`).
    pub manifest: Vec<u8>,
    /// `sha256:…` of the manifest: what a reference by digest names.
    pub manifest_digest: String,
}

impl Image {
    /// The manifest's media type.
    pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

    /// Every blob with its digest, the config last (as a registry expects them before the
    /// manifest).
    pub fn blobs(&self) -> [(&str, &[u8]); 2] {
        [
            (self.layer_digest.as_str(), self.layer.as_slice()),
            (self.config_digest.as_str(), self.config.as_slice()),
        ]
    }

    /// Bytes of the layer, config and manifest together: what a registry stores.
    pub fn stored_size(&self) -> usize {
        self.layer.len() + self.config.len() + self.manifest.len()
    }
}

/// Builds the blobs of `spec`. The same inputs give the same digests (zero timestamps, sorted
/// entries, a gzip header without a name or time).
pub fn build(spec: &ImageSpec) -> StackResult<Image> {
    let tar = layer_tar(&spec.entries);
    let diff_id = digest(&tar);
    let layer = gzip(&tar)?;
    let layer_digest = digest(&layer);
    let mut config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": std::iter::once(PATH_ENV.to_owned()).chain(spec.env.iter().cloned()).collect::<Vec<_>>(),
            "Entrypoint": spec.entrypoint,
            "WorkingDir": "/",
            "Labels": spec.labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created_by": "foundry-gateway-testbed image writer" }],
    });
    if let Some(user) = &spec.user {
        config["config"]["User"] = Value::from(user.as_str());
    }
    if !spec.exposed_ports.is_empty() {
        let ports: serde_json::Map<String, Value> = spec
            .exposed_ports
            .iter()
            .map(|port| (port.clone(), json!({})))
            .collect();
        config["config"]["ExposedPorts"] = Value::Object(ports);
    }
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": Image::MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))
    .unwrap_or_default();
    let manifest_digest = digest(&manifest);
    Ok(Image {
        layer,
        layer_digest,
        layer_uncompressed_size: tar.len(),
        config,
        config_digest,
        manifest,
        manifest_digest,
    })
}

fn gzip(bytes: &[u8]) -> StackResult<Vec<u8>> {
    use std::io::Write as _;
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_err(|source| StackError::Tool {
            command: "gzip of an image layer".to_owned(),
            message: source.to_string(),
        })
}

/// Writes `spec` as an OCI image layout archive to `archive`.
pub fn write_archive(spec: &ImageSpec, archive: &Path) -> StackResult<WrittenImage> {
    let image = build(spec)?;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": Image::MANIFEST_MEDIA_TYPE,
            "digest": image.manifest_digest,
            "size": image.manifest.len(),
            "platform": { "architecture": "amd64", "os": "linux" },
            "annotations": {
                "io.containerd.image.name": spec.reference(),
                "org.opencontainers.image.ref.name": spec.tag,
            },
        }],
    }))
    .unwrap_or_default();
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let mut outer = Vec::new();
    let mut add = |path: &str, content: &[u8]| {
        tar_entry(&mut outer, path, Some(content), 0o644, 0);
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json", &index);
    add(&blob(&image.manifest_digest), &image.manifest);
    for (digest, content) in image.blobs() {
        add(&blob(digest), content);
    }
    finish_tar(&mut outer);
    if let Some(parent) = archive.parent() {
        fs::create_dir_all(parent).map_err(|source| StackError::create_dir(parent, source))?;
    }
    fs::write(archive, &outer).map_err(|source| StackError::write(archive, source))?;
    Ok(WrittenImage {
        archive: archive.to_path_buf(),
        manifest_digest: image.manifest_digest,
        layer_size: image.layer_uncompressed_size,
    })
}

/// `ctr images import` of `archive` into the `k8s.io` namespace of the containerd at `socket`
/// (what the kubelet sees), unpacked for its default snapshotter.
pub fn import(ctr: &mut Command, socket: &Path, archive: &Path) -> StackResult<()> {
    let output = ctr
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io", "images", "import"])
        .arg(archive)
        .output()
        .map_err(|source| StackError::Tool {
            command: "ctr images import".to_owned(),
            message: source.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(StackError::Tool {
            command: format!("ctr images import {}", archive.display()),
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

fn read(path: &Path) -> StackResult<Vec<u8>> {
    fs::read(path).map_err(|source| StackError::read(path, source))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The layer: every entry and its parent directories, sorted by path.
fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut all: BTreeMap<String, &Entry> = BTreeMap::new();
    let mut parents: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in entries {
        all.insert(entry.path.trim_start_matches('/').to_owned(), entry);
    }
    // Every ancestor of every entry, not only the direct parent.
    for entry in entries {
        let relative = entry.path.trim_start_matches('/');
        for ancestor in Path::new(relative).ancestors().skip(1) {
            let dir = ancestor.display().to_string();
            if !dir.is_empty() {
                parents
                    .entry(dir.clone())
                    .or_insert_with(|| Entry::dir(dir, 0o755, 0));
            }
        }
    }
    for (path, entry) in &parents {
        all.entry(path.clone()).or_insert(entry);
    }
    let mut out = Vec::new();
    for (path, entry) in all {
        match &entry.content {
            Some(content) => tar_entry(&mut out, &path, Some(content), entry.mode, entry.owner),
            None => tar_entry(&mut out, &format!("{path}/"), None, entry.mode, entry.owner),
        }
    }
    finish_tar(&mut out);
    out
}

/// Appends one ustar entry (a file, or a directory when `content` is `None`).
fn tar_entry(out: &mut Vec<u8>, path: &str, content: Option<&[u8]>, mode: u32, owner: u32) {
    let mut header = [0u8; 512];
    let (prefix, name) = split_path(path);
    put(&mut header[0..100], name.as_bytes());
    put(&mut header[100..108], format!("{mode:07o}\0").as_bytes());
    put(&mut header[108..116], format!("{owner:07o}\0").as_bytes());
    put(&mut header[116..124], format!("{owner:07o}\0").as_bytes());
    let size = content.map_or(0, <[u8]>::len);
    put(&mut header[124..136], format!("{size:011o}\0").as_bytes());
    put(&mut header[136..148], b"00000000000\0");
    header[156] = if content.is_some() { b'0' } else { b'5' };
    put(&mut header[257..263], b"ustar\0");
    put(&mut header[263..265], b"00");
    put(&mut header[345..500], prefix.as_bytes());
    // The checksum is computed with its own field as spaces.
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    put(&mut header[148..156], format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&header);
    if let Some(content) = content {
        out.extend_from_slice(content);
        let padding = (512 - content.len() % 512) % 512;
        out.resize(out.len() + padding, 0);
    }
}

/// Two zero blocks end an archive.
fn finish_tar(out: &mut Vec<u8>) {
    out.resize(out.len() + 1024, 0);
}

/// ustar keeps names up to 100 bytes, with up to 155 more in a prefix split at a `/`.
fn split_path(path: &str) -> (&str, &str) {
    if path.len() <= 100 {
        return ("", path);
    }
    let cut = path
        .char_indices()
        .filter(|(i, c)| *c == '/' && *i <= 155 && path.len() - i - 1 <= 100)
        .map(|(i, _)| i)
        .next()
        .unwrap_or(0);
    (&path[..cut], &path[cut + 1..])
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_library_and_interpreter_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn a_layer_is_a_tar_that_tar_reads_with_parents_owners_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer_tar(&[
            Entry::file("/usr/local/bin/app", b"hello".to_vec(), 0o755),
            Entry::dir("/home/nonroot", 0o700, NONROOT),
        ]);
        assert_eq!(layer.len() % 512, 0);
        let path = dir.path().join("layer.tar");
        fs::write(&path, &layer).unwrap();
        let listing = Command::new("tar").arg("-tvf").arg(&path).output().unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        assert!(text.contains("usr/local/bin/app"), "{text}");
        assert!(text.contains("-rwxr-xr-x 0/0"), "{text}");
        assert!(text.contains("drwx------ 65532/65532"), "{text}");
        assert!(text.contains("usr/local/"), "{text}");
    }

    #[test]
    fn the_same_inputs_give_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ImageSpec {
            name: "app".to_owned(),
            tag: "t".to_owned(),
            entries: vec![Entry::file("/app", b"x".to_vec(), 0o755)],
            entrypoint: vec!["/app".to_owned()],
            env: Vec::new(),
            exposed_ports: vec!["8080/tcp".to_owned()],
            user: Some("65532:65532".to_owned()),
            labels: BTreeMap::new(),
        };
        let one = write_archive(&spec, &dir.path().join("a.tar")).unwrap();
        let two = write_archive(&spec, &dir.path().join("b.tar")).unwrap();
        assert_eq!(one.manifest_digest, two.manifest_digest);
        assert_eq!(spec.reference(), "docker.io/library/app:t");
    }
}
