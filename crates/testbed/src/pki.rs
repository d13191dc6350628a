//! Throwaway keys and certificates, made with the `openssl` command of the machine.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result, random_hex};

/// Validity of every certificate: long enough for any test bed, short enough to be throwaway.
const DAYS: &str = "365";

/// A subject alternative name of a serving certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// An IP address SAN.
    Ip(IpAddr),
    /// A DNS name SAN.
    Dns(String),
}

/// A certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate.
    pub cert: PathBuf,
    /// The unencrypted private key.
    pub key: PathBuf,
}

impl CertPair {
    /// The certificate as PEM text.
    pub fn cert_pem(&self) -> Result<String> {
        read(&self.cert)
    }
}

/// An RSA key pair, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key.
    pub private: PathBuf,
    /// The public key.
    pub public: PathBuf,
}

/// A self-signed certificate authority that issues serving certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ca {
    pair: CertPair,
}

impl Ca {
    /// Creates `<dir>/<name>.crt` and `<dir>/<name>.key`, a CA named `common_name`.
    pub fn create(dir: &Path, name: &str, common_name: &str) -> Result<Self> {
        let pair = CertPair {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let config = write_config(
            dir,
            name,
            "basicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
        )?;
        openssl(
            "req (certificate authority)",
            Command::new("openssl")
                .args([
                    "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-days", DAYS,
                ])
                .arg("-subj")
                .arg(format!("/CN={common_name}"))
                .arg("-config")
                .arg(&config)
                .args(["-extensions", "ext", "-keyout"])
                .arg(&pair.key)
                .arg("-out")
                .arg(&pair.cert),
        )?;
        remove_quietly(&config);
        restrict(&pair.key)?;
        Ok(Self { pair })
    }

    /// The CA certificate and key.
    pub fn pair(&self) -> &CertPair {
        &self.pair
    }

    /// The CA certificate as PEM text.
    pub fn cert_pem(&self) -> Result<String> {
        self.pair.cert_pem()
    }

    /// Issues `<dir>/<name>.crt` and `<dir>/<name>.key`, a TLS client certificate of user
    /// `common_name` in group `organization` (the apiserver's identity towards the kubelet).
    pub fn issue_client_cert(
        &self,
        dir: &Path,
        name: &str,
        common_name: &str,
        organization: &str,
    ) -> Result<CertPair> {
        self.issue(
            dir,
            name,
            &format!("/O={organization}/CN={common_name}"),
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
        )
    }

    /// Issues `<dir>/<name>.crt` and `<dir>/<name>.key`, a TLS serving certificate for `sans`.
    pub fn issue_server_cert(
        &self,
        dir: &Path,
        name: &str,
        common_name: &str,
        sans: &[San],
    ) -> Result<CertPair> {
        let mut extensions = String::from(
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\nsubjectAltName = ",
        );
        for (i, san) in sans.iter().enumerate() {
            if i > 0 {
                extensions.push(',');
            }
            let _ = match san {
                San::Ip(ip) => write!(extensions, "IP:{ip}"),
                San::Dns(dns) => write!(extensions, "DNS:{dns}"),
            };
        }
        extensions.push('\n');
        self.issue(dir, name, &format!("/CN={common_name}"), &extensions)
    }

    fn issue(&self, dir: &Path, name: &str, subject: &str, extensions: &str) -> Result<CertPair> {
        let pair = CertPair {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let csr = dir.join(format!("{name}.csr"));
        let config = write_config(dir, name, extensions)?;
        openssl(
            "req (certificate request)",
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "rsa:2048", "-nodes"])
                .arg("-subj")
                .arg(subject)
                .arg("-config")
                .arg(&config)
                .arg("-keyout")
                .arg(&pair.key)
                .arg("-out")
                .arg(&csr),
        )?;
        restrict(&pair.key)?;
        openssl(
            "x509 (sign certificate)",
            Command::new("openssl")
                .args(["x509", "-req", "-days", DAYS])
                .arg("-set_serial")
                .arg(format!("0x{}", random_hex(16)))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&self.pair.cert)
                .arg("-CAkey")
                .arg(&self.pair.key)
                .arg("-extfile")
                .arg(&config)
                .args(["-extensions", "ext", "-out"])
                .arg(&pair.cert),
        )?;
        remove_quietly(&config);
        remove_quietly(&csr);
        Ok(pair)
    }
}

/// Creates `<dir>/<name>.key` and `<dir>/<name>.pub`, a 2048-bit RSA key pair.
pub fn rsa_key_pair(dir: &Path, name: &str) -> Result<KeyPair> {
    let pair = KeyPair {
        private: dir.join(format!("{name}.key")),
        public: dir.join(format!("{name}.pub")),
    };
    openssl(
        "genpkey",
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&pair.private),
    )?;
    restrict(&pair.private)?;
    openssl(
        "pkey (public key)",
        Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&pair.private)
            .arg("-out")
            .arg(&pair.public),
    )?;
    Ok(pair)
}

/// A minimal config of our own, so the result does not depend on the machine's openssl.cnf.
fn write_config(dir: &Path, name: &str, extensions: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.cnf"));
    let text = format!("[req]\ndistinguished_name = dn\n[dn]\n[ext]\n{extensions}");
    fs::write(&path, text).map_err(|source| Error::WriteFile {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

fn openssl(step: &'static str, command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: "openssl".to_owned(),
            source,
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Openssl {
            step,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes a file readable by its owner only.
pub(crate) fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| {
        Error::WriteFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn remove_quietly(path: &Path) {
    let _ = fs::remove_file(path);
}
