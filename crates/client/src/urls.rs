//! URL helpers shared by the clients.

use std::net::IpAddr;

use url::Url;

use crate::error::{Error, Result};

/// True for `localhost`, 127.0.0.0/8 and `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parse a service endpoint: `https`, or `http` on loopback only (the local emulator), no
/// credentials, query or fragment. The returned URL has no trailing slash in its path.
pub(crate) fn parse_endpoint(operation: &'static str, endpoint: &str) -> Result<Url> {
    let url = Url::parse(endpoint.trim()).map_err(|e| {
        Error::invalid_input(
            operation,
            format!("endpoint {endpoint:?} is not a URL: {e}"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        _ => {
            return Err(Error::invalid_input(
                operation,
                format!("endpoint {endpoint:?} must use https (plain http only on loopback)"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid_input(
            operation,
            "endpoint must not contain credentials",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::invalid_input(
            operation,
            format!("endpoint {endpoint:?} must not have a query or fragment"),
        ));
    }
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

/// `base` with `segments` appended (each percent-encoded as one path segment).
pub(crate) fn join_segments(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty();
        p.extend(segments);
    }
    url
}

/// Same scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Percent-encode everything but RFC 3986 unreserved characters.
pub(crate) fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reject a path parameter that is empty or would escape its segment.
pub(crate) fn check_segment(operation: &'static str, what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value == "." || value == ".." {
        return Err(Error::invalid_input(
            operation,
            format!("{what} must not be empty"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let u = parse_endpoint("T", "https://a.example/api/projects/p/").unwrap();
        assert_eq!(u.as_str(), "https://a.example/api/projects/p");
        assert!(parse_endpoint("T", "http://127.0.0.1:8080").is_ok());
        assert!(parse_endpoint("T", "http://localhost:8080").is_ok());
        assert!(parse_endpoint("T", "http://example.com").is_err());
        assert!(parse_endpoint("T", "https://u:p@example.com").is_err());
        assert!(parse_endpoint("T", "https://example.com/?x=1").is_err());
        assert!(parse_endpoint("T", "not a url").is_err());
    }

    #[test]
    fn segments_are_encoded() {
        let base = parse_endpoint("T", "https://a.example/api").unwrap();
        let u = join_segments(&base, &["agents", "a b/c"]);
        assert_eq!(u.as_str(), "https://a.example/api/agents/a%20b%2Fc");
        let root = parse_endpoint("T", "https://a.example").unwrap();
        assert_eq!(join_segments(&root, &["x"]).as_str(), "https://a.example/x");
        assert_eq!(encode_component("gpt-4o.mini_1~"), "gpt-4o.mini_1~");
        assert_eq!(encode_component("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn origins() {
        let a = Url::parse("https://h.example/x").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://H.example:443/y").unwrap()
        ));
        assert!(!same_origin(&a, &Url::parse("http://h.example/y").unwrap()));
        assert!(!same_origin(
            &a,
            &Url::parse("https://h.example:8443/y").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://other.example/y").unwrap()
        ));
    }
}
