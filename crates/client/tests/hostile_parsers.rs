//! Property tests: every parser that reads wire data is fed arbitrary bytes and arbitrary
//! JSON-ish structures (huge, negative and fractional numbers, deep nesting, control
//! characters, long arrays). None may panic, and each keeps its bounds: at most
//! [`MAX_MODELS`] model names, token lifetimes of at most 24 h, retry hints of at most 1 h.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::HashSet;
use std::time::Duration;

use azure_core::time::OffsetDateTime;
use foundry_gateway_client::probe::*;
use foundry_gateway_client::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

const DAY: Duration = Duration::from_secs(24 * 3600);
const PROVIDERS: [DeploymentProvider; 2] =
    [DeploymentProvider::AzureOpenAI, DeploymentProvider::OpenAI];

/// Any string, control characters and non-ASCII included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<char>(), 0..24).prop_map(String::from_iter),
        prop::collection::vec(0u8..0x20, 0..8)
            .prop_map(|b| b.into_iter().map(char::from).collect()),
        Just(String::new()),
        Just("gpt-4o".to_owned()),
        Just("\u{0}\u{7f}\u{202e}\u{feff}".to_owned()),
    ]
}

/// Number text as a hostile server writes it: huge, negative, fractional, exponents.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| f.to_string()),
        (any::<i32>(), -400i32..400).prop_map(|(m, e)| format!("{m}e{e}")),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("{a}{b}{a}")),
        Just("18446744073709551615".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-9223372036854775809".to_owned()),
        Just("1e308".to_owned()),
        Just("-1e308".to_owned()),
        Just("1e400".to_owned()),
        Just("-0".to_owned()),
        Just("0.0000001".to_owned()),
    ]
}

/// Arbitrary JSON values, up to a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 128, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        text(),
                        Just("value".to_owned()),
                        Just("data".to_owned()),
                        Just("name".to_owned()),
                        Just("id".to_owned()),
                        Just("choices".to_owned()),
                        Just("error".to_owned()),
                        Just("code".to_owned()),
                        Just("message".to_owned()),
                        Just("access_token".to_owned()),
                        Just("expires_in".to_owned()),
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Nesting around `inner`, up to beyond serde_json's recursion limit (128).
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Bodies a hostile gateway could send: raw bytes, JSON values, deep nesting, and model
/// lists of many items with duplicates and odd names.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (0usize..200).prop_map(|d| nested(d, "1").into_bytes()),
        (0usize..200)
            .prop_map(|d| format!(r#"{{"data":{}}}"#, nested(d, r#"{"id":"x"}"#)).into_bytes()),
        model_list_body(),
    ]
}

fn model_list_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![("data", "id"), ("value", "name")]),
        0usize..3000,
        0usize..3000,
        prop::collection::vec(text(), 0..4),
        number_text(),
    )
        .prop_map(|((key, field), n, modulo, odd, num)| {
            let modulo = modulo.max(1);
            let mut items: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"{field}":"m{}"}}"#, i % modulo))
                .collect();
            for o in odd {
                items.push(serde_json::json!({ field: o }).to_string());
            }
            items.push(format!(r#"{{"{field}":{num}}}"#));
            format!(r#"{{"{key}":[{}]}}"#, items.join(",")).into_bytes()
        })
}

fn token_reply() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (text(), number_text()).prop_map(|(t, n)| {
            format!(
                r#"{{"access_token":{},"expires_in":{n}}}"#,
                Value::String(t)
            )
            .into_bytes()
        }),
        (text(), text()).prop_map(|(t, n)| {
            serde_json::json!({"access_token": t, "expires_in": n})
                .to_string()
                .into_bytes()
        }),
        (text(), json_value()).prop_map(|(t, v)| {
            serde_json::json!({"access_token": t, "expires_in": v})
                .to_string()
                .into_bytes()
        }),
        body(),
    ]
}

/// Header values as a hostile server writes them.
fn hint_text() -> impl Strategy<Value = String> {
    prop_oneof![
        number_text(),
        text(),
        Just("inf".to_owned()),
        Just("-inf".to_owned()),
        Just("NaN".to_owned()),
        (0u32..100_000, 1u32..13, 1u32..29).prop_map(|(y, m, d)| {
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            format!(
                "Mon, {d:02} {} {y:04} 23:59:59 GMT",
                months[(m - 1) as usize]
            )
        }),
        Just("Fri, 31 Dec 9999 23:59:59 GMT".to_owned()),
    ]
}

fn hint_headers() -> impl Strategy<Value = HeaderMap> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["retry-after", "retry-after-ms", "x-ms-retry-after-ms"]),
            hint_text(),
        ),
        0..4,
    )
    .prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(HeaderName::from_static(name), v);
            }
        }
        h
    })
}

fn check_model_list(body: &[u8]) {
    for provider in &PROVIDERS {
        if let Ok(list) = parse_model_list(provider, body) {
            assert!(list.names.len() <= MAX_MODELS);
            let distinct: HashSet<&String> = list.names.iter().collect();
            assert_eq!(distinct.len(), list.names.len(), "names are distinct");
            assert!(list.names.iter().all(|n| !n.is_empty()));
            assert!(list.omitted == 0 || list.names.len() == MAX_MODELS);
        }
        let _ = parse_model_object(provider, body);
    }
    let _ = is_chat_completion(body);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn gateway_bodies_never_panic_the_parsers(body in body()) {
        check_model_list(&body);
    }

    #[test]
    fn model_lists_keep_at_most_max_models_and_count_the_rest(
        n in 0usize..3000,
        modulo in 1usize..3000,
    ) {
        let items: Vec<String> = (0..n).map(|i| format!(r#"{{"id":"m{}"}}"#, i % modulo)).collect();
        let body = format!(r#"{{"data":[{}]}}"#, items.join(","));
        let list = parse_model_list(&DeploymentProvider::OpenAI, body.as_bytes()).unwrap();
        let distinct = n.min(modulo);
        prop_assert_eq!(list.names.len(), distinct.min(MAX_MODELS));
        prop_assert_eq!(list.omitted, distinct.saturating_sub(MAX_MODELS));
    }

    #[test]
    fn token_replies_never_panic_and_lifetimes_stay_under_a_day(body in token_reply()) {
        if let Ok((token, lifetime)) = parse_token_reply(&body) {
            prop_assert!(!token.expose().is_empty());
            prop_assert!(lifetime <= DAY);
            prop_assert!(std::time::Instant::now().checked_add(lifetime).is_some());
        }
    }

    #[test]
    fn cache_lifetimes_stay_under_a_day(expires_in in any::<Option<u64>>()) {
        let lifetime = oauth_cache_lifetime(expires_in);
        prop_assert!(lifetime <= DAY);
        prop_assert!(std::time::Instant::now().checked_add(lifetime).is_some());
    }

    #[test]
    fn retry_hints_never_panic_and_stay_under_an_hour(
        headers in hint_headers(),
        now in -100_000_000_000i64..100_000_000_000,
    ) {
        let now = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if let Some(hint) = retry_after_from_headers(&headers, now) {
            prop_assert!(hint <= MAX_RETRY_AFTER);
            prop_assert!(MAX_RETRY_AFTER <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn error_envelopes_never_panic(
        status in 100u16..1000,
        headers in hint_headers(),
        code in text(),
        body in prop_oneof![
            body(),
            json_value().prop_map(|v| serde_json::json!({"error": v}).to_string().into_bytes()),
        ],
    ) {
        let mut headers = headers;
        if let Ok(v) = HeaderValue::from_str(&code) {
            headers.insert("x-ms-error-code", v);
        }
        let e = Error::from_response("Op", status, &headers, &body);
        prop_assert_eq!(e.status(), Some(status));
        prop_assert!(e.retry_after().is_none_or(|h| h <= MAX_RETRY_AFTER));
        prop_assert!(e.message().chars().count() <= 1025);
        prop_assert!(e.code().is_none_or(|c| c.chars().count() <= 129));
        let _ = (e.to_string(), e.label(), e.is_retryable());
    }
}

#[test]
fn nesting_up_to_and_beyond_the_recursion_limit_is_refused_cleanly() {
    for depth in [127, 128, 129, 10_000] {
        let list = format!(r#"{{"data":{}}}"#, nested(depth, r#"{"id":"x"}"#));
        check_model_list(list.as_bytes());
        check_model_list(nested(depth, "").as_bytes());
        assert!(parse_token_reply(nested(depth, "").as_bytes()).is_err());
        let _ = Error::from_response("Op", 500, &HeaderMap::new(), nested(depth, "").as_bytes());
    }
}
