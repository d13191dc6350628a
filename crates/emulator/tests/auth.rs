//! Bearer tokens: the static token and RS256 JWTs from a JWKS, with the audience per plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use common::*;
use foundry_gateway_emulator::AuthMode;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const KEY_A: &[u8] = include_bytes!("fixtures/jwt-signing-key-a.pem");
const KEY_B: &[u8] = include_bytes!("fixtures/jwt-signing-key-b.pem");
const ISSUER: &str = "https://login.test.local/tenant/v2.0";

fn jwk(pem: &[u8], kid: &str) -> Jwk {
    let mut k =
        Jwk::from_encoding_key(&EncodingKey::from_rsa_pem(pem).unwrap(), Algorithm::RS256).unwrap();
    k.common.key_id = Some(kid.into());
    k
}

fn mint(pem: &[u8], kid: &str, aud: &str, exp_offset: i64, iss: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({"aud": aud, "iss": iss, "exp": now + exp_offset, "nbf": now - 10, "oid": "11111111-2222-3333-4444-555555555555"});
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
}

/// Serves a JWKS whose keys the test can change, and counts fetches.
async fn jwks_server(keys: Arc<Mutex<Vec<Jwk>>>, fetches: Arc<Mutex<usize>>) -> String {
    let app = Router::new().route(
        "/keys",
        get(move || {
            let keys = keys.clone();
            let fetches = fetches.clone();
            async move {
                *fetches.lock().unwrap() += 1;
                axum::Json(JwkSet {
                    keys: keys.lock().unwrap().clone(),
                })
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/keys")
}

async fn call(h: &Harness, url: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = h.client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let s = resp.status();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn jwts_are_checked_against_the_jwks_with_the_audience_of_each_plane() {
    let keys = Arc::new(Mutex::new(vec![jwk(KEY_A, "key-a")]));
    let fetches = Arc::new(Mutex::new(0));
    let url = jwks_server(keys.clone(), fetches.clone()).await;
    let h = start_with(|c| {
        c.auth = AuthMode::Jwks {
            url,
            issuer: Some(ISSUER.into()),
        }
    })
    .await;
    let arm = format!("{}?api-version=2025-12-01", h.arm_connections());
    let data = format!("{}/agents?api-version=v1", h.project());

    for aud in [
        "https://management.azure.com",
        "https://management.azure.com/",
    ] {
        let (s, v) = call(&h, &arm, Some(&mint(KEY_A, "key-a", aud, 600, ISSUER))).await;
        assert_eq!(s, StatusCode::OK, "{aud}: {v}");
    }
    for aud in ["https://ai.azure.com", "https://ai.azure.com/"] {
        let (s, v) = call(&h, &data, Some(&mint(KEY_A, "key-a", aud, 600, ISSUER))).await;
        assert_eq!(s, StatusCode::OK, "{aud}: {v}");
    }
    // Wrong audience: 401 naming the expected one, in each plane's envelope.
    let (s, v) = call(
        &h,
        &arm,
        Some(&mint(KEY_A, "key-a", "https://ai.azure.com", 600, ISSUER)),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationTokenAudience");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://management.azure.com")
    );
    let (s, v) = call(
        &h,
        &data,
        Some(&mint(
            KEY_A,
            "key-a",
            "https://management.azure.com",
            600,
            ISSUER,
        )),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https://ai.azure.com")
    );
    // Expired, wrong issuer, signed by a key the JWKS does not have under that kid.
    let (s, v) = call(
        &h,
        &data,
        Some(&mint(KEY_A, "key-a", "https://ai.azure.com", -3600, ISSUER)),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("expired"),
        "{v}"
    );
    let (s, _) = call(
        &h,
        &data,
        Some(&mint(
            KEY_A,
            "key-a",
            "https://ai.azure.com",
            600,
            "https://evil/",
        )),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(
        &h,
        &arm,
        Some(&mint(
            KEY_B,
            "key-a",
            "https://management.azure.com",
            600,
            ISSUER,
        )),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(*fetches.lock().unwrap(), 1, "the JWKS is cached");

    // A new kid makes the emulator fetch the JWKS again (key rotation).
    keys.lock().unwrap().push(jwk(KEY_B, "key-b"));
    let (s, v) = call(
        &h,
        &data,
        Some(&mint(KEY_B, "key-b", "https://ai.azure.com", 600, ISSUER)),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(*fetches.lock().unwrap(), 2);
}

#[tokio::test]
async fn missing_or_wrong_static_tokens_are_401_in_each_planes_envelope_and_never_echoed() {
    let h = start().await;
    let arm = format!("{}?api-version=2025-12-01", h.arm_connections());
    let data = format!("{}/agents?api-version=v1", h.project());
    let (s, v) = call(&h, &arm, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "AuthenticationFailed");
    let (s, v) = call(&h, &arm, Some("not-the-token-xyz")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    assert!(!v.to_string().contains("not-the-token-xyz"));
    let (s, v) = call(&h, &data, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    let (s, v) = call(&h, &data, Some("not-the-token-xyz")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    assert!(!v.to_string().contains("not-the-token-xyz"));
    // The OpenAI surface is guarded too.
    let (s, _) = call(&h, &h.openai("/conversations/conv_x"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // And the static token works on both planes.
    assert_eq!(call(&h, &arm, Some(TOKEN)).await.0, StatusCode::OK);
    assert_eq!(call(&h, &data, Some(TOKEN)).await.0, StatusCode::OK);
    let (_, log) = h.control(Method::GET, "/requests", None).await;
    assert!(!log.to_string().contains("not-the-token-xyz") && !log.to_string().contains(TOKEN));
}
