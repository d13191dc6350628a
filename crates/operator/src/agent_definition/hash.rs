//! Steps "hash" and "request": a stable fingerprint of exactly what is sent, and the create-version
//! body that carries it in its metadata.

use std::collections::BTreeMap;

use foundry_gateway_api::PromptAgentSpec;
use foundry_gateway_api::agent::RESERVED_METADATA_PREFIX;
use foundry_gateway_client::project::{CreateAgentVersionRequest, PromptAgentDefinition};
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use super::{
    MANAGED_BY_KEY, MANAGED_BY_UID_KEY, MAX_METADATA_KEYS, MAX_USER_METADATA_KEYS,
    RESERVED_METADATA_KEYS, SPEC_HASH_KEY,
};
use crate::ownership::ObjectId;

/// Prefixed to the hashed text, so that a future change of what is hashed can be told apart.
const HASH_DOMAIN: &str = "foundry-gateway-operator/prompt-agent-version/v1\n";

/// Hex characters kept of the SHA-256 (128 bits: collisions are not a practical concern, and the
/// value stays readable in metadata and status).
const HASH_HEX_CHARS: usize = 32;

/// The fingerprint of an agent version as sent: the definition, the description and the user's
/// metadata (keys with the reserved `gateway.foundry.dev/` prefix are left out, so the hash never
/// depends on itself). Lowercase hex, the first 32 characters of a SHA-256 over
/// [`canonical_json`].
///
/// It is a function of the values only: the same spec gives the same hash in every process and
/// on every build, whatever the key order of free-form JSON in the CR (function parameters,
/// schemas, OpenAPI documents) and however a number was spelled (`1`, `1.0`, `1e0`); any change
/// of a value that is sent changes it.
pub fn definition_hash(
    definition: &PromptAgentDefinition,
    description: Option<&str>,
    metadata: &BTreeMap<String, String>,
) -> String {
    // The wire types serialise infallibly (string map keys only); should that ever change, the
    // error text still gives a deterministic input rather than a panic.
    let definition = serde_json::to_value(definition)
        .unwrap_or_else(|e| Value::String(format!("unserializable definition: {e}")));
    let metadata: Map<String, Value> = metadata
        .iter()
        .filter(|(key, _)| !key.starts_with(RESERVED_METADATA_PREFIX))
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    let mut document = Map::new();
    document.insert("definition".to_owned(), definition);
    document.insert(
        "description".to_owned(),
        description.map_or(Value::Null, |d| Value::String(d.to_owned())),
    );
    document.insert("metadata".to_owned(), Value::Object(metadata));

    let mut hasher = Sha256::new();
    hasher.update(HASH_DOMAIN.as_bytes());
    hasher.update(canonical_json(&Value::Object(document)).as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        for nibble in [byte >> 4, byte & 0x0f] {
            hex.extend(char::from_digit(u32::from(nibble), 16));
        }
    }
    hex.truncate(HASH_HEX_CHARS);
    hex
}

/// The body of `POST /agents/{name}/versions`: the definition, `spec.description`, and metadata
/// = the user's metadata plus the operator's reserved keys: [`SPEC_HASH_KEY`] = `hash`,
/// [`MANAGED_BY_KEY`] = the owner's marker (`foundry-gateway-operator:<namespace>/<name>`) and
/// [`MANAGED_BY_UID_KEY`] = the owner's uid.
///
/// Foundry accepts at most [`MAX_METADATA_KEYS`] (16) keys of at most 64 characters with values
/// of at most 512, and the CRD lets the user set [`MAX_USER_METADATA_KEYS`] (15). The three
/// reserved keys fit with up to 13 user keys. With 14 or 15, only [`SPEC_HASH_KEY`] goes in and
/// its value carries the owner too: `<hash> <marker> <uid>` (space-separated; none of the three
/// can contain a space, and at most 32 + 1 + 342 + 1 + 36 = 412 characters). So the hash (what
/// makes creation crash-safe) and the owner (what keeps other objects off) are always recorded.
/// User keys with the reserved prefix and keys beyond 15 (both refused by [`super::validate`])
/// are never sent.
pub fn version_request(
    spec: &PromptAgentSpec,
    definition: PromptAgentDefinition,
    hash: &str,
    owner: &ObjectId,
) -> CreateAgentVersionRequest {
    let mut metadata: BTreeMap<String, String> = spec
        .metadata
        .iter()
        .filter(|(key, _)| !key.starts_with(RESERVED_METADATA_PREFIX))
        .take(MAX_USER_METADATA_KEYS)
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let marker = owner.marker_value();
    if metadata.len().saturating_add(RESERVED_METADATA_KEYS) <= MAX_METADATA_KEYS {
        metadata.insert(SPEC_HASH_KEY.to_owned(), hash.to_owned());
        metadata.insert(MANAGED_BY_KEY.to_owned(), marker);
        if let Some(uid) = &owner.uid {
            metadata.insert(MANAGED_BY_UID_KEY.to_owned(), uid.clone());
        }
    } else {
        let folded = match &owner.uid {
            Some(uid) => format!("{hash} {marker} {uid}"),
            None => format!("{hash} {marker}"),
        };
        metadata.insert(SPEC_HASH_KEY.to_owned(), folded);
    }
    CreateAgentVersionRequest {
        definition: definition.into(),
        description: spec.description.clone(),
        metadata,
    }
}

/// Canonical JSON text of a value: object keys sorted by their UTF-8 bytes at every level (also
/// when serde_json's `preserve_order` feature is on), no whitespace, strings escaped minimally
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters as `\u00XX`, everything
/// else as is), integers in decimal, and floats canonicalised: an integral float within ±2^53 is
/// written as an integer (`1.0` → `1`, `-0.0` → `0`), any other float in its shortest
/// round-trip form. Array order is kept (it is meaningful).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(n)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

/// 2^53: every integer below it is exactly representable as an f64.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

fn canonical_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    match n.as_f64() {
        // Integral and within ±2^53: the cast is exact.
        Some(f) if f.fract() == 0.0 && f.abs() < MAX_SAFE_INTEGER => (f as i64).to_string(),
        // serde_json prints floats in their shortest round-trip form (ryu): deterministic.
        _ => n.to_string(),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
