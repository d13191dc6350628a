//! Small helpers shared by the handlers: clocks, ids, hashing and JSON canonicalisation.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC (`2026-01-28T10:11:12.345Z`).
pub(crate) fn rfc3339_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let ms = millis % 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A random identifier with the given prefix, in the style of OpenAI ids (`resp_…`, `conv_…`).
pub(crate) fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(prefix.len() + 1 + 48);
    s.push_str(prefix);
    s.push('_');
    for _ in 0..24 {
        let b: u8 = rng.random();
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Lowercase hexadecimal SHA-256 of the bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compact JSON text with object keys sorted at every level, so that hashes do not depend on
/// the order in which a client serialised the object.
pub(crate) fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*k) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Replaces every scalar inside `value` with the string `"<redacted>"`, keeping the shape.
pub(crate) fn redact_all(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        Value::Null => {}
        other => *other = Value::String(REDACTED.to_string()),
    }
}

/// The text put where a secret was.
pub(crate) const REDACTED: &str = "<redacted>";

/// Constant-time equality for secrets of possibly different length.
pub(crate) fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_769_598_672_345),
            "2026-01-28T11:11:12.345Z"
        );
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"d": [1, {"z": 1, "y": 2}], "c": "x"}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}"#
        );
    }

    #[test]
    fn redaction_keeps_shape_and_hides_every_scalar() {
        let mut v = json!({"key": "s3cret", "n": 5, "nested": {"list": ["a", true]}});
        redact_all(&mut v);
        assert_eq!(
            v,
            json!({"key": "<redacted>", "n": "<redacted>", "nested": {"list": ["<redacted>", "<redacted>"]}})
        );
    }

    #[test]
    fn secure_eq_compares_whole_values() {
        assert!(secure_eq(b"token", b"token"));
        assert!(!secure_eq(b"token", b"tokem"));
        assert!(!secure_eq(b"token", b"token2"));
        assert!(!secure_eq(b"", b"x"));
        assert!(secure_eq(b"", b""));
    }

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let a = new_id("resp");
        let b = new_id("resp");
        assert!(a.starts_with("resp_"));
        assert_ne!(a, b);
    }
}
