//! A small blocking HTTPS client for the parts of the stack: it trusts only the test bed's CA (or
//! speaks plain HTTP to an admin server), ignores proxy settings (everything lives on loopback)
//! and hands back every status, so callers can assert on 401s as well as on 200s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::Error;
use crate::stack_error::{StackError, StackResult};

/// How long one request may take, unless the caller says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A status and a body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A blocking client that trusts one CA.
#[derive(Debug, Clone)]
pub struct HttpClient {
    agent: Agent,
}

impl HttpClient {
    /// A client trusting `ca_pem` only.
    pub fn new(ca_pem: &str) -> StackResult<Self> {
        Self::with_timeout(ca_pem, DEFAULT_TIMEOUT)
    }

    /// A client trusting `ca_pem` only, with a timeout per request.
    pub fn with_timeout(ca_pem: &str, timeout: Duration) -> StackResult<Self> {
        let agent = Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .tls_config(trusting(ca_pem).map_err(StackError::Testbed)?)
            .build()
            .new_agent();
        Ok(Self { agent })
    }

    /// A client for plain HTTP on loopback (the operator's admin server), with a timeout per
    /// request.
    pub fn plain(timeout: Duration) -> Self {
        let agent = Agent::config_builder()
            .proxy(None)
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        Self { agent }
    }

    /// `GET url` with `headers`.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> StackResult<Reply> {
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish("GET", url, request.call())
    }

    /// `DELETE url` with `headers`.
    pub fn delete(&self, url: &str, headers: &[(&str, &str)]) -> StackResult<Reply> {
        let mut request = self.agent.delete(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish("DELETE", url, request.call())
    }

    /// `POST url` with a JSON `body` and `headers`.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> StackResult<Reply> {
        self.send_json("POST", url, headers, body)
    }

    /// `PUT url` with a JSON `body` and `headers`.
    pub fn put_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> StackResult<Reply> {
        self.send_json("PUT", url, headers, body)
    }

    fn send_json(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> StackResult<Reply> {
        let mut request = if method == "PUT" {
            self.agent.put(url)
        } else {
            self.agent.post(url)
        };
        request = request.header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish(method, url, request.send(body.to_string()))
    }

    /// `POST url` with a form body (`application/x-www-form-urlencoded`).
    pub fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> StackResult<Reply> {
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        finish("POST", url, request.send_form(form.iter().copied()))
    }
}

/// TLS that trusts the CA certificate `ca_pem` and nothing else.
pub(crate) fn trusting(ca_pem: &str) -> crate::Result<TlsConfig> {
    let ca = Certificate::from_pem(ca_pem.as_bytes())
        .map_err(|err| Error::CaCertificate(Box::new(err)))?
        .to_owned();
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
        .build())
}

fn finish(
    method: &'static str,
    url: &str,
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> StackResult<Reply> {
    let failed = |message: String| StackError::Request {
        method,
        url: url.to_owned(),
        message,
    };
    let mut response = result.map_err(|err| failed(err.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|err| failed(err.to_string()))?;
    Ok(Reply { status, text })
}

/// `reply` as JSON when its status is 2xx, else a [`StackError::Status`].
pub(crate) fn expect_json(method: &'static str, url: &str, reply: Reply) -> StackResult<Value> {
    if !reply.is_success() {
        return Err(StackError::Status {
            method,
            url: url.to_owned(),
            status: reply.status,
            body: reply.text,
        });
    }
    serde_json::from_str(&reply.text).map_err(|source| StackError::Parse {
        url: url.to_owned(),
        source,
    })
}
