//! The one error type of this crate, its classification and the retry hint.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use azure_core::time::OffsetDateTime;
use http::HeaderMap;

use crate::netpolicy::DeniedAddress;

/// A boxed error used as the source of an [`Error`] and returned by assertion callbacks.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely. [`Error::label`] gives a finer, metrics-friendly name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The service answered with a status that is not a success ([`Error::status`] is set).
    HttpStatus,
    /// The request (or the whole call) ran out of time.
    Timeout,
    /// No connection could be made: refused, DNS failure, reset.
    Connection,
    /// TLS failed: untrusted or invalid certificate, handshake failure.
    Tls,
    /// A token could not be obtained from the credential.
    Credential,
    /// The service answered 2xx but the body could not be understood.
    InvalidResponse,
    /// The caller passed something unusable (bad URL, name, CA PEM, option), or a URL whose
    /// address the operator's network policy denies.
    InvalidInput,
    /// Any other transport failure (for example the body stream broke).
    Io,
}

/// The error of every call in this crate.
///
/// It carries the HTTP status, the service error code and message, and the server's retry hint
/// (`retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After`). It never carries a token, key or
/// secret: messages are built from the service's error envelope or from our own text.
#[derive(thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    operation: Cow<'static, str>,
    status: Option<u16>,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
    transient: bool,
    #[source]
    source: Option<BoxError>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("operation", &self.operation)
            .field("status", &self.status)
            .field("code", &self.code)
            .field("message", &self.message)
            .field("retry_after", &self.retry_after)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.operation)?;
        match (self.kind, self.status) {
            (ErrorKind::Credential, Some(status)) => {
                write!(f, ": {} (token endpoint HTTP {status})", self.label())?;
            }
            (_, Some(status)) => write!(f, ": HTTP {status}")?,
            (_, None) => write!(f, ": {}", self.label())?,
        }
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl Error {
    /// A new error of `kind` for `operation` with a human-readable `message`.
    pub fn new(
        kind: ErrorKind,
        operation: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation: operation.into(),
            status: None,
            code: None,
            message: message.into(),
            retry_after: None,
            transient: false,
            source: None,
        }
    }

    /// An [`ErrorKind::InvalidInput`] error.
    pub fn invalid_input(
        operation: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(ErrorKind::InvalidInput, operation, message)
    }

    /// An [`ErrorKind::HttpStatus`] error.
    pub fn http(
        operation: impl Into<Cow<'static, str>>,
        status: u16,
        code: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut e = Self::new(ErrorKind::HttpStatus, operation, message);
        e.status = Some(status);
        e.code = code;
        e
    }

    /// Build the error for a non-success response: the service error code and message are read
    /// from the ARM / Azure.Core / OpenAI error envelope (`{"error":{"code","message"}}`) or the
    /// `x-ms-error-code` header, and the retry hint from the headers.
    pub fn from_response(
        operation: impl Into<Cow<'static, str>>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Self {
        let (mut code, message) = parse_error_body(body);
        if code.is_none() {
            code = headers
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .map(|c| truncate_chars(c, MAX_CODE_CHARS));
        }
        let message = message.unwrap_or_else(|| {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("unexpected status")
                .to_owned()
        });
        let mut e = Self::http(operation, status, code, message);
        e.retry_after = retry_after_from_headers(headers, OffsetDateTime::now_utc());
        e
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub(crate) fn with_status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    pub(crate) fn with_transient(mut self, transient: bool) -> Self {
        self.transient = transient;
        self
    }

    /// Set the retry hint.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// The coarse kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed, e.g. `ProjectConnections_Get` or `Agents_CreateVersion`.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The HTTP status of the response (for a credential error: of the token endpoint, if known).
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The service error code (`error.code` or `x-ms-error-code`), if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The message (the service's `error.message`, or our own sentence).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's retry hint; never retry sooner than this.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// True for 404.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::HttpStatus && self.status == Some(404)
    }

    /// True when trying again later may succeed: 408, 429, 5xx, timeouts, connection and
    /// transport errors, and credential errors caused by one of those.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::HttpStatus => self.status.is_some_and(retryable_status),
            ErrorKind::Timeout | ErrorKind::Connection | ErrorKind::Io => true,
            ErrorKind::Credential => self.transient || self.status.is_some_and(retryable_status),
            ErrorKind::Tls | ErrorKind::InvalidResponse | ErrorKind::InvalidInput => false,
        }
    }

    /// A stable PascalCase label for metrics and condition reasons.
    pub fn label(&self) -> &'static str {
        match self.kind {
            ErrorKind::HttpStatus => match self.status.unwrap_or(0) {
                s if (500..=599).contains(&s) => "ServerError",
                400 => "BadRequest",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "NotFound",
                408 => "RequestTimeout",
                409 => "Conflict",
                412 => "PreconditionFailed",
                429 => "Throttled",
                s if (400..=499).contains(&s) => "ClientError",
                _ => "UnexpectedStatus",
            },
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Connection => "ConnectionFailed",
            ErrorKind::Tls => "TlsError",
            ErrorKind::Credential => "CredentialError",
            ErrorKind::InvalidResponse => "InvalidResponse",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::Io => "TransportError",
        }
    }

    /// Classify a transport error of the HTTP client.
    pub(crate) fn from_reqwest(
        operation: impl Into<Cow<'static, str>>,
        err: reqwest::Error,
    ) -> Self {
        let kind = classify_reqwest(&err);
        let message = match kind {
            ErrorKind::InvalidInput => match denied_host(&err) {
                Some(host) => DeniedAddress { host }.to_string(),
                None => "the request could not be built".to_owned(),
            },
            ErrorKind::Timeout => "the request timed out".to_owned(),
            ErrorKind::Tls => format!("TLS failure: {}", tls_reason(&err)),
            ErrorKind::Connection => "could not connect".to_owned(),
            _ => "transport error".to_owned(),
        };
        Self::new(kind, operation, message).with_source(err.without_url())
    }

    /// Classify an error of an `azure_identity` credential.
    pub(crate) fn from_credential(
        operation: impl Into<Cow<'static, str>>,
        err: azure_core::Error,
    ) -> Self {
        let mut status = None;
        let mut transient = false;
        let mut tls = None;
        walk_chain(&err, &mut |e| {
            if let Some(az) = e.downcast_ref::<azure_core::Error>() {
                if let Some(s) = az.http_status() {
                    status.get_or_insert(u16::from(s));
                }
                if matches!(
                    az.kind(),
                    azure_core::error::ErrorKind::Connection | azure_core::error::ErrorKind::Io
                ) {
                    transient = true;
                }
            }
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                tls.get_or_insert_with(|| match r {
                    rustls::Error::InvalidCertificate(c) => format!("invalid certificate: {c:?}"),
                    other => other.to_string(),
                });
            }
            false
        });
        // The first line of azure_identity's message names the credential and the cause; the
        // troubleshooting link that follows is noise in a status condition.
        let text = err.to_string();
        let first = text.lines().next().unwrap_or("").trim().to_owned();
        let message = match &tls {
            Some(reason) => format!(
                "TLS failure talking to the token endpoint ({reason}); trust its CA or fix the authority host"
            ),
            None => first,
        };
        Self::new(ErrorKind::Credential, operation, message)
            .with_status(status)
            .with_transient(transient && tls.is_none())
            .with_source(err)
    }
}

fn retryable_status(s: u16) -> bool {
    s == 408 || s == 429 || (500..=599).contains(&s)
}

/// The longest error code kept from a service's error envelope, in characters.
const MAX_CODE_CHARS: usize = 128;
/// The longest error message kept from a service's error envelope, in characters.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Read `{"error":{"code","message"}}` (ARM, Azure.Core, OpenAI) leniently; the code and the
/// message are cut to a sane length, since they end up in logs and status conditions.
fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let err = v.get("error").unwrap_or(&v);
    let text = |key: &str, max: usize| match err.get(key) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(truncate_chars(s, max)),
        Some(serde_json::Value::Number(n)) => Some(truncate_chars(&n.to_string(), max)),
        _ => None,
    };
    (
        text("code", MAX_CODE_CHARS),
        text("message", MAX_MESSAGE_CHARS),
    )
}

/// At most `max` characters of `s`, with `…` when it was cut.
fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => {
            let mut out = s.get(..cut).unwrap_or_default().to_owned();
            out.push('…');
            out
        }
    }
}

/// The longest retry hint taken from a server: a larger one is clamped to this (1 hour), so
/// that a hostile or broken server cannot park a caller for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The server's retry hint, read in this order: `retry-after-ms`, `x-ms-retry-after-ms`
/// (milliseconds), `Retry-After` (delta-seconds or an HTTP date, relative to `now`; a date in the
/// past gives zero). Unparseable, negative and non-finite values are ignored; hints are clamped
/// to [`MAX_RETRY_AFTER`]. Never panics, whatever the header says.
pub fn retry_after_from_headers(headers: &HeaderMap, now: OffsetDateTime) -> Option<Duration> {
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(hint) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_hint(v.trim(), 1_000.0))
        {
            return Some(hint);
        }
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Some(hint) = parse_hint(value, 1.0) {
        return Some(hint);
    }
    let at = azure_core::time::parse_rfc7231(value).ok()?;
    let delta_nanos = at
        .unix_timestamp_nanos()
        .checked_sub(now.unix_timestamp_nanos())?;
    if delta_nanos <= 0 {
        return Some(Duration::ZERO);
    }
    let max_nanos = i128::try_from(MAX_RETRY_AFTER.as_nanos()).unwrap_or(i128::MAX);
    let nanos = u64::try_from(delta_nanos.min(max_nanos)).unwrap_or(u64::MAX);
    Some(Duration::from_nanos(nanos).min(MAX_RETRY_AFTER))
}

/// A non-negative decimal number of `1 / per_second` seconds, clamped to [`MAX_RETRY_AFTER`].
fn parse_hint(v: &str, per_second: f64) -> Option<Duration> {
    let n: f64 = v.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = (n / per_second).min(MAX_RETRY_AFTER.as_secs_f64());
    Duration::try_from_secs_f64(secs)
        .ok()
        .map(|d| d.min(MAX_RETRY_AFTER))
}

/// Visit `err` and its sources, looking inside `std::io::Error`s too (whose `source()` skips
/// the wrapped error). Stops early when `visit` returns true.
pub(crate) fn walk_chain(
    err: &(dyn StdError + 'static),
    visit: &mut dyn FnMut(&(dyn StdError + 'static)) -> bool,
) -> bool {
    let mut cur = Some(err);
    let mut depth: u32 = 0;
    while let Some(e) = cur {
        if visit(e) {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn StdError + 'static) = inner;
            if walk_chain(inner, visit) {
                return true;
            }
        }
        depth = depth.saturating_add(1);
        if depth > 32 {
            break;
        }
        cur = e.source();
    }
    false
}

/// True when the error chain contains a TLS failure (rustls error, or an I/O error that says so).
pub(crate) fn is_tls_error(err: &(dyn StdError + 'static)) -> bool {
    walk_chain(err, &mut |e| {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if e.downcast_ref::<reqwest::Error>().is_some() {
            // reqwest's own text contains the URL; judge it by its sources only.
            return false;
        }
        let text = e.to_string().to_ascii_lowercase();
        text.contains("certificate") || text.contains("handshake")
    })
}

/// The most specific TLS reason found in the chain, for messages.
fn tls_reason(err: &(dyn StdError + 'static)) -> String {
    let mut reason = None;
    walk_chain(err, &mut |e| {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            reason = Some(r.to_string());
            return true;
        }
        false
    });
    reason.unwrap_or_else(|| "handshake failed".to_owned())
}

/// The host whose every address the network policy denied, when that is why `err` failed.
pub(crate) fn denied_host(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut host = None;
    walk_chain(err, &mut |e| {
        if let Some(d) = e.downcast_ref::<DeniedAddress>() {
            host = Some(d.host.clone());
            return true;
        }
        false
    });
    host
}

pub(crate) fn classify_reqwest(err: &reqwest::Error) -> ErrorKind {
    if denied_host(err).is_some() {
        // The operator's network policy refused the address: retrying will not help.
        ErrorKind::InvalidInput
    } else if err.is_timeout() {
        ErrorKind::Timeout
    } else if is_tls_error(err) {
        ErrorKind::Tls
    } else if err.is_connect() {
        ErrorKind::Connection
    } else if err.is_decode() {
        ErrorKind::InvalidResponse
    } else if err.is_builder() {
        ErrorKind::InvalidInput
    } else {
        ErrorKind::Io
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn now() -> OffsetDateTime {
        // Sun, 06 Nov 1994 08:49:37 GMT
        OffsetDateTime::from_unix_timestamp(784_111_777).unwrap()
    }

    #[test]
    fn retry_after_ms_headers_win_in_order() {
        let h = headers(&[
            ("retry-after-ms", "1500"),
            ("x-ms-retry-after-ms", "2500"),
            ("retry-after", "9"),
        ]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_millis(1500))
        );
        let h = headers(&[("x-ms-retry-after-ms", "2500"), ("retry-after", "9")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(7))
        );
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:47 GMT")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(10))
        );
        let h = headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:00 GMT")]);
        assert_eq!(retry_after_from_headers(&h, now()), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        for v in ["soon", "-3", "NaN", ""] {
            let h = headers(&[("retry-after", v)]);
            assert_eq!(retry_after_from_headers(&h, now()), None, "{v}");
        }
        let h = headers(&[("retry-after-ms", "x"), ("retry-after", "2")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_secs(2))
        );
        assert_eq!(retry_after_from_headers(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn retry_hints_are_clamped_to_an_hour() {
        for (name, v) in [
            ("retry-after", "86400"),
            ("retry-after", "1e308"),
            ("retry-after", "99999999999999999999999999"),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("retry-after-ms", "1e300"),
            ("retry-after-ms", "18446744073709551615000"),
            ("x-ms-retry-after-ms", "3600001"),
        ] {
            let h = headers(&[(name, v)]);
            assert_eq!(
                retry_after_from_headers(&h, now()),
                Some(MAX_RETRY_AFTER),
                "{name}: {v}"
            );
        }
        for v in ["inf", "-inf", "-0.5", "1e999", "0x10"] {
            let h = headers(&[("retry-after-ms", v)]);
            assert_eq!(retry_after_from_headers(&h, now()), None, "{v}");
        }
        let h = headers(&[("retry-after-ms", "0.5")]);
        assert_eq!(
            retry_after_from_headers(&h, now()),
            Some(Duration::from_micros(500))
        );
        let h = headers(&[("retry-after", "Mon, 01 Jan 0001 00:00:00 GMT")]);
        assert_eq!(retry_after_from_headers(&h, now()), Some(Duration::ZERO));
    }

    #[test]
    fn long_error_envelopes_are_cut() {
        let body =
            serde_json::json!({"error": {"code": "C".repeat(500), "message": "m".repeat(5000)}});
        let e = Error::from_response("Op", 400, &HeaderMap::new(), body.to_string().as_bytes());
        assert_eq!(e.code().unwrap().chars().count(), MAX_CODE_CHARS + 1);
        assert_eq!(e.message().chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(e.message().ends_with('…'));
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }

    #[test]
    fn error_envelopes_are_read() {
        let arm = br#"{"error":{"code":"ResourceNotFound","message":"gone","details":[]}}"#;
        let e = Error::from_response("Op", 404, &HeaderMap::new(), arm);
        assert_eq!(e.code(), Some("ResourceNotFound"));
        assert_eq!(e.message(), "gone");
        assert!(e.is_not_found());
        assert_eq!(e.label(), "NotFound");
        assert_eq!(e.to_string(), "Op: HTTP 404 ResourceNotFound: gone");

        let h = headers(&[("x-ms-error-code", "Throttled"), ("retry-after", "3")]);
        let e = Error::from_response("Op", 429, &h, b"not json");
        assert_eq!(e.code(), Some("Throttled"));
        assert_eq!(e.message(), "Too Many Requests");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert!(e.is_retryable());
        assert_eq!(e.label(), "Throttled");
    }

    #[test]
    fn classification_and_labels() {
        let cases: &[(u16, bool, &str)] = &[
            (400, false, "BadRequest"),
            (401, false, "Unauthorized"),
            (403, false, "Forbidden"),
            (404, false, "NotFound"),
            (408, true, "RequestTimeout"),
            (409, false, "Conflict"),
            (418, false, "ClientError"),
            (429, true, "Throttled"),
            (500, true, "ServerError"),
            (503, true, "ServerError"),
        ];
        for (status, retryable, label) in cases {
            let e = Error::http("Op", *status, None, "m");
            assert_eq!(e.is_retryable(), *retryable, "{status}");
            assert_eq!(e.label(), *label, "{status}");
        }
        let t = Error::new(ErrorKind::Timeout, "Op", "slow");
        assert!(t.is_retryable());
        assert_eq!(t.label(), "Timeout");
        let c = Error::new(ErrorKind::Connection, "Op", "refused");
        assert!(c.is_retryable());
        assert_eq!(c.label(), "ConnectionFailed");
        let tls = Error::new(ErrorKind::Tls, "Op", "bad cert");
        assert!(!tls.is_retryable());
        assert_eq!(tls.label(), "TlsError");
        let cred = Error::new(ErrorKind::Credential, "Op", "denied").with_status(Some(401));
        assert!(!cred.is_retryable());
        let cred = Error::new(ErrorKind::Credential, "Op", "down").with_status(Some(503));
        assert!(cred.is_retryable());
        assert!(!Error::invalid_input("Op", "bad").is_retryable());
        assert_eq!(Error::invalid_input("Op", "bad").label(), "InvalidInput");
    }

    #[test]
    fn tls_errors_are_found_inside_io_errors() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        assert!(is_tls_error(&Outer(io)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_error(&Outer(refused)));
    }
}
