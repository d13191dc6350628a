//! The HTTP transport shared by every client, the credentials and the probe.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::request::Body;
use azure_core::http::{AsyncRawResponse, Request as AzRequest};
use bytes::{Bytes, BytesMut};
use url::{Host, Url};

use crate::error::{Error, ErrorKind, Result};
use crate::netpolicy::{DEFAULT_DENIED_NETWORKS, IpNetwork, PolicyResolver, is_denied_ip};

/// Default cap of one response body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1_048_576;

/// Options of a [`Transport`].
#[derive(Clone, Default)]
pub struct TransportOptions {
    /// Extra trusted root certificates (one or more PEM `CERTIFICATE` blocks), added to the
    /// public web PKI roots. Use it for a private CA in front of a gateway, or for a test token
    /// server with a throwaway CA.
    pub extra_root_ca_pem: Option<Vec<u8>>,
    /// Trust only [`Self::extra_root_ca_pem`], not the public web PKI roots.
    pub only_extra_roots: bool,
    /// TCP connect timeout (default 10 s).
    pub connect_timeout: Option<Duration>,
    /// `User-Agent` header (default `foundry-gateway-client/<version>`).
    pub user_agent: Option<String>,
    /// The largest response body read, in bytes (default [`DEFAULT_MAX_BODY_BYTES`], 1 MiB).
    /// Every body, of the clients, the probe and the token requests of the credentials, is
    /// read through this cap; a larger one fails the call as soon as it passes the cap.
    pub max_body_bytes: Option<usize>,
    /// Address ranges no call may reach (default [`DEFAULT_DENIED_NETWORKS`]: link-local
    /// with the cloud metadata address, the Azure wire server and other metadata addresses);
    /// `Some(vec![])` denies nothing. Host names are checked after DNS resolution; IP-literal
    /// URLs are checked by the clients and the probe before they send (see
    /// [`Transport::is_denied`]). The `azure_core` adapter ([`Transport::azure_http_client`])
    /// checks host names only, so a managed identity still reaches the instance metadata
    /// service at its IP literal.
    pub denied_networks: Option<Vec<IpNetwork>>,
}

impl fmt::Debug for TransportOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportOptions")
            .field(
                "extra_root_ca_pem",
                &self.extra_root_ca_pem.as_ref().map(Vec::len),
            )
            .field("only_extra_roots", &self.only_extra_roots)
            .field("connect_timeout", &self.connect_timeout)
            .field("user_agent", &self.user_agent)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("denied_networks", &self.denied_networks)
            .finish()
    }
}

/// A connection-pooling HTTP client (rustls, HTTP/1.1 and HTTP/2, no redirects followed),
/// with a cap on response bodies and a deny-list of addresses.
///
/// Cheap to clone; build one per process (or per trust configuration) and hand it to every
/// client, credential and [`crate::probe::Prober`].
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    max_body_bytes: usize,
    denied: Arc<[IpNetwork]>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("max_body_bytes", &self.max_body_bytes)
            .field("denied_networks", &self.denied)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Build a transport. Fails on an unusable CA PEM.
    pub fn new(options: TransportOptions) -> Result<Self> {
        const OP: &str = "Transport_New";
        let user_agent = options.user_agent.unwrap_or_else(|| {
            concat!("foundry-gateway-client/", env!("CARGO_PKG_VERSION")).into()
        });
        let denied: Arc<[IpNetwork]> = match options.denied_networks {
            Some(list) => Arc::from(list),
            None => Arc::from(DEFAULT_DENIED_NETWORKS),
        };
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(user_agent);
        if !denied.is_empty() {
            builder = builder.dns_resolver(Arc::new(PolicyResolver {
                denied: denied.clone(),
            }));
        }
        if let Some(pem) = &options.extra_root_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::invalid_input(OP, "the extra root CA is not valid PEM").with_source(e)
            })?;
            if certs.is_empty() {
                return Err(Error::invalid_input(
                    OP,
                    "the extra root CA PEM holds no CERTIFICATE block",
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if options.only_extra_roots {
            builder = builder.tls_built_in_root_certs(false);
        }
        let client = builder.build().map_err(|e| {
            Error::invalid_input(OP, "could not build the HTTP client").with_source(e)
        })?;
        Ok(Self {
            client,
            max_body_bytes: options.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
            denied,
        })
    }

    /// A transport with default options (public roots only).
    pub fn default_transport() -> Result<Self> {
        Self::new(TransportOptions::default())
    }

    pub(crate) fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// The largest response body this transport reads, in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The denied address ranges.
    pub fn denied_networks(&self) -> &[IpNetwork] {
        &self.denied
    }

    /// True when `url`'s host is an IP literal in a denied range (IPv4-mapped IPv6 addresses
    /// are judged as IPv4). Host names are not resolved here: the transport's resolver drops
    /// their denied addresses when the call is made.
    pub fn is_denied(&self, url: &Url) -> bool {
        let ip = match url.host() {
            Some(Host::Ipv4(a)) => std::net::IpAddr::V4(a),
            Some(Host::Ipv6(a)) => std::net::IpAddr::V6(a),
            Some(Host::Domain(_)) | None => return false,
        };
        is_denied_ip(&self.denied, ip)
    }

    /// Read a response body, at most [`Self::max_body_bytes`].
    pub(crate) async fn read_body(
        &self,
        rsp: reqwest::Response,
    ) -> std::result::Result<Bytes, BodyError> {
        read_capped(rsp, self.max_body_bytes).await
    }

    /// This transport as an `azure_core` HTTP client, for `azure_identity` credentials or any
    /// other Azure SDK client (`ClientOptions::transport`). Each request gets `timeout`, and
    /// its response body is read through the transport's cap.
    pub fn azure_http_client(&self, timeout: Duration) -> Arc<dyn azure_core::http::HttpClient> {
        Arc::new(AzureHttpClient {
            client: self.client.clone(),
            timeout,
            max_body_bytes: self.max_body_bytes,
        })
    }
}

/// Why a response body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body (or its `Content-Length`) is larger than the cap.
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body stream failed (timeout, reset, malformed framing).
    Read(reqwest::Error),
}

impl BodyError {
    /// The message of an over-cap body for a client error.
    pub(crate) fn too_large_message(limit: usize) -> String {
        format!("the response body is larger than {limit} bytes")
    }
}

/// The one body reader of this crate: checks `Content-Length` first, then reads chunk by
/// chunk and stops as soon as the total passes `limit`, so a hostile server can make us
/// hold at most `limit` bytes (plus one chunk) whatever it sends.
pub(crate) async fn read_capped(
    mut rsp: reqwest::Response,
    limit: usize,
) -> std::result::Result<Bytes, BodyError> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let declared = rsp.content_length().or_else(|| {
        rsp.headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    if declared.is_some_and(|len| len > limit_u64) {
        return Err(BodyError::TooLarge { limit });
    }
    let initial = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(limit)
        .min(65_536);
    let mut buf = BytesMut::with_capacity(initial);
    while let Some(chunk) = rsp.chunk().await.map_err(BodyError::Read)? {
        match buf.len().checked_add(chunk.len()) {
            Some(total) if total <= limit => buf.extend_from_slice(&chunk),
            _ => return Err(BodyError::TooLarge { limit }),
        }
    }
    Ok(buf.freeze())
}

/// Adapter from our reqwest client to `azure_core::http::HttpClient`.
struct AzureHttpClient {
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for AzureHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureHttpClient")
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl azure_core::http::HttpClient for AzureHttpClient {
    async fn execute_request(&self, request: &AzRequest) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::ErrorKind as AzKind;
        let method =
            reqwest::Method::from_bytes(request.method().as_ref().as_bytes()).map_err(|e| {
                azure_core::Error::with_error(AzKind::Other, e, "unsupported HTTP method")
            })?;
        let mut req = self
            .client
            .request(method, request.url().clone())
            .timeout(self.timeout);
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        let body: bytes::Bytes = match request.body() {
            Body::Bytes(b) => b.clone(),
            Body::SeekableStream(_) => {
                return Err(azure_core::Error::with_message(
                    AzKind::Other,
                    "streaming request bodies are not supported by this transport",
                ));
            }
        };
        let rsp = req.body(body).send().await.map_err(|err| {
            // azure_core retries Io and Connection errors; a TLS failure or a denied address
            // will not heal by itself, so it is reported as Other (not retried).
            let kind = match crate::error::classify_reqwest(&err) {
                ErrorKind::Tls | ErrorKind::InvalidInput => AzKind::Other,
                ErrorKind::Connection => AzKind::Connection,
                _ => AzKind::Io,
            };
            azure_core::Error::with_error(kind, err.without_url(), "HTTP request failed")
        })?;
        let status = rsp.status().as_u16();
        let mut headers = Headers::new();
        for (k, v) in rsp.headers() {
            if let Ok(v) = v.to_str() {
                headers.insert(
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                );
            }
        }
        let body = read_capped(rsp, self.max_body_bytes)
            .await
            .map_err(|e| match e {
                // Not retried: the same endpoint will send the same body again.
                BodyError::TooLarge { limit } => azure_core::Error::with_message(
                    AzKind::Other,
                    BodyError::too_large_message(limit),
                ),
                BodyError::Read(e) => azure_core::Error::with_error(
                    AzKind::Io,
                    e.without_url(),
                    "reading the response body",
                ),
            })?;
        let stream = futures::stream::once(async move { Ok(body) });
        Ok(AsyncRawResponse::new(
            status.into(),
            headers,
            Box::pin(stream),
        ))
    }
}
