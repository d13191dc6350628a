//! The HTTP transport shared by every client, the credentials and the probe.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::request::Body;
use azure_core::http::{AsyncRawResponse, Request as AzRequest};

use crate::error::{Error, ErrorKind, Result};

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
            .finish()
    }
}

/// A connection-pooling HTTP client (rustls, HTTP/1.1 and HTTP/2, no redirects followed).
///
/// Cheap to clone; build one per process (or per trust configuration) and hand it to every
/// client, credential and [`crate::probe::Prober`].
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport").finish_non_exhaustive()
    }
}

impl Transport {
    /// Build a transport. Fails on an unusable CA PEM.
    pub fn new(options: TransportOptions) -> Result<Self> {
        const OP: &str = "Transport_New";
        let user_agent = options.user_agent.unwrap_or_else(|| {
            concat!("foundry-gateway-client/", env!("CARGO_PKG_VERSION")).into()
        });
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(user_agent);
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
        Ok(Self { client })
    }

    /// A transport with default options (public roots only).
    pub fn default_transport() -> Result<Self> {
        Self::new(TransportOptions::default())
    }

    pub(crate) fn reqwest(&self) -> &reqwest::Client {
        &self.client
    }

    /// This transport as an `azure_core` HTTP client, for `azure_identity` credentials or any
    /// other Azure SDK client (`ClientOptions::transport`). Each request gets `timeout`.
    pub fn azure_http_client(&self, timeout: Duration) -> Arc<dyn azure_core::http::HttpClient> {
        Arc::new(AzureHttpClient {
            client: self.client.clone(),
            timeout,
        })
    }
}

/// Adapter from our reqwest client to `azure_core::http::HttpClient`.
struct AzureHttpClient {
    client: reqwest::Client,
    timeout: Duration,
}

impl fmt::Debug for AzureHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureHttpClient")
            .field("timeout", &self.timeout)
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
            // azure_core retries Io and Connection errors; a TLS failure will not heal by
            // itself, so it is reported as Other (not retried).
            let kind = match crate::error::classify_reqwest(&err) {
                ErrorKind::Tls => AzKind::Other,
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
        // Token responses are small: read the body whole (reqwest's streaming API needs a
        // feature the workspace does not enable).
        let body = rsp.bytes().await.map_err(|e| {
            azure_core::Error::with_error(AzKind::Io, e.without_url(), "reading the response body")
        })?;
        let stream = futures::stream::once(async move { Ok(body) });
        Ok(AsyncRawResponse::new(
            status.into(),
            headers,
            Box::pin(stream),
        ))
    }
}
