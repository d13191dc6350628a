//! A small client of the OCI distribution API (blocking): push an image's blobs and manifest,
//! read a manifest back. It trusts one CA (or the machine's roots when given none), ignores proxy
//! settings, and sends no credentials: the test bed's registry is on loopback without
//! authentication.

use std::time::Duration;

use ureq::Agent;

use crate::image::Image;
use crate::stack_error::{StackError, StackResult};

/// How long one request may take (a layer is tens of MiB on loopback).
const TIMEOUT: Duration = Duration::from_secs(120);

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct Registry {
    agent: Agent,
    base: String,
}

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `Content-Type`.
    pub media_type: String,
    /// `Docker-Content-Digest`.
    pub digest: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Registry {
    /// A client of `https://<host>`, trusting `ca_pem` only when given.
    pub fn new(host: &str, ca_pem: Option<&str>) -> StackResult<Self> {
        let mut config = Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT));
        if let Some(pem) = ca_pem {
            config = config.tls_config(crate::http::trusting(pem).map_err(StackError::Testbed)?);
        }
        Ok(Self {
            agent: config.build().new_agent(),
            base: format!("https://{host}"),
        })
    }

    /// Pushes `image` as `repository:tag` (blobs the registry already has are not sent again)
    /// and returns the manifest's digest.
    pub fn push_image(&self, repository: &str, tag: &str, image: &Image) -> StackResult<String> {
        for (digest, content) in image.blobs() {
            self.push_blob(repository, digest, content)?;
        }
        self.push_manifest(repository, tag, Image::MANIFEST_MEDIA_TYPE, &image.manifest)
    }

    /// Uploads `content` as blob `digest` of `repository` in one monolithic upload, unless the
    /// registry has it.
    pub fn push_blob(&self, repository: &str, digest: &str, content: &[u8]) -> StackResult<()> {
        let blob = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let head = self.agent.head(&blob).call();
        if head.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self
            .agent
            .post(&start)
            .header("Content-Length", "0")
            .send_empty()
            .map_err(|err| request_error("POST", &start, &err))?;
        let response = expect_status("POST", &start, response, 202)?;
        let location = response
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| StackError::Request {
                method: "POST",
                url: start.clone(),
                message: "the registry answered 202 without a Location".to_owned(),
            })?;
        let upload = self.upload_url(location, digest);
        let response = self
            .agent
            .put(&upload)
            .header("Content-Type", "application/octet-stream")
            .send(content)
            .map_err(|err| request_error("PUT", &upload, &err))?;
        expect_status("PUT", &upload, response, 201).map(drop)
    }

    /// Puts `body` as manifest `reference` (a tag or a digest) of `repository`, returning the
    /// digest the registry gives it.
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> StackResult<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .agent
            .put(&url)
            .header("Content-Type", media_type)
            .send(body)
            .map_err(|err| request_error("PUT", &url, &err))?;
        let response = expect_status("PUT", &url, response, 201)?;
        Ok(response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| crate::image::digest(body), str::to_owned))
    }

    /// The manifest `reference` of `repository`, accepting OCI and Docker manifests and indexes.
    pub fn manifest(&self, repository: &str, reference: &str) -> StackResult<Manifest> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .agent
            .get(&url)
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .map_err(|err| request_error("GET", &url, &err))?;
        let mut response = expect_status("GET", &url, response, 200)?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let media_type = header("Content-Type");
        let digest = header("Docker-Content-Digest");
        let body = response
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()
            .map_err(|err| request_error("GET", &url, &err))?;
        Ok(Manifest {
            media_type,
            digest,
            body,
        })
    }

    /// The upload's URL (the `Location` may be relative) with `digest=` added to its query.
    fn upload_url(&self, location: &str, digest: &str) -> String {
        let absolute = if location.starts_with("https://") || location.starts_with("http://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base)
        };
        let separator = if absolute.contains('?') { '&' } else { '?' };
        format!("{absolute}{separator}digest={}", digest.replace(':', "%3A"))
    }
}

fn request_error(method: &'static str, url: &str, err: &ureq::Error) -> StackError {
    StackError::Request {
        method,
        url: url.to_owned(),
        message: err.to_string(),
    }
}

type Response = ureq::http::Response<ureq::Body>;

/// `response` when its status is `wanted`, else an error with the start of the registry's answer.
fn expect_status(
    method: &'static str,
    url: &str,
    mut response: Response,
    wanted: u16,
) -> StackResult<Response> {
    let status = response.status().as_u16();
    if status == wanted {
        return Ok(response);
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Err(StackError::Status {
        method,
        url: url.to_owned(),
        status,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_urls_keep_the_registrys_state_and_add_the_digest() {
        let registry = Registry::new("127.0.0.1:5000", None).unwrap();
        assert_eq!(
            registry.upload_url("/v2/app/blobs/uploads/u1?_state=abc", "sha256:00"),
            "https://127.0.0.1:5000/v2/app/blobs/uploads/u1?_state=abc&digest=sha256%3A00"
        );
        assert_eq!(
            registry.upload_url(
                "https://127.0.0.1:5000/v2/app/blobs/uploads/u2",
                "sha256:ff"
            ),
            "https://127.0.0.1:5000/v2/app/blobs/uploads/u2?digest=sha256%3Aff"
        );
    }
}
