//! azure_identity credentials against a local HTTPS token server with a throwaway CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use foundry_gateway_client::credentials::*;
use foundry_gateway_client::*;
use serde_json::json;
use support::{Log, TestPki, serve, serve_tls};

const TENANT: &str = "tenant-1";
const SECRET: &str = "sp-secret-value";

fn token_server(log: Log, hits: Arc<AtomicUsize>) -> Router {
    Router::new().fallback(move |req: Request| {
        let (log, hits) = (log.clone(), hits.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            log.push(&parts, &body);
            hits.fetch_add(1, Ordering::SeqCst);
            assert_eq!(parts.uri.path(), format!("/{TENANT}/oauth2/v2.0/token"));
            let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            assert_eq!(form["grant_type"], "client_credentials");
            let token = if let Some(a) = form.get("client_assertion") {
                assert_eq!(form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
                format!("wi-{a}")
            } else if form.get("client_secret").map(String::as_str) == Some(SECRET) {
                format!("sp-{}", form["scope"])
            } else {
                return (
                    StatusCode::UNAUTHORIZED,
                    [("content-type", "application/json")],
                    json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": [7000215]}).to_string(),
                )
                    .into_response();
            };
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                json!({"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token}).to_string(),
            )
                .into_response()
        }
    })
}

async fn start() -> (String, TestPki, Log, Arc<AtomicUsize>) {
    let pki = TestPki::new();
    let log = Log::default();
    let hits = Arc::new(AtomicUsize::new(0));
    let url = serve_tls(token_server(log.clone(), hits.clone()), &pki).await;
    (url, pki, log, hits)
}

fn options(authority: &str, pki: Option<&TestPki>) -> CredentialOptions {
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem: pki.map(|p| p.ca_pem.clone().into_bytes()),
        ..Default::default()
    })
    .unwrap();
    CredentialOptions {
        authority_host: Some(authority.parse().unwrap()),
        transport: Some(transport),
        max_retries: 0,
        ..Default::default()
    }
}

#[tokio::test]
async fn client_secret_against_a_custom_authority_with_an_extra_ca() {
    let (authority, pki, _, hits) = start().await;
    let cred = client_secret_credential(TENANT, "app-1", SECRET, &options(&authority, Some(&pki)))
        .unwrap();
    let t = cred.get_token(&[ARM_SCOPE], None).await.unwrap();
    assert_eq!(t.token.secret(), format!("sp-{ARM_SCOPE}"));
    let again = cred.get_token(&[ARM_SCOPE], None).await.unwrap();
    assert_eq!(again.token.secret(), t.token.secret());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "cached");
    assert!(!format!("{cred:?}").contains(SECRET));
}

#[tokio::test]
async fn without_the_ca_the_token_call_fails_with_a_tls_error() {
    let (authority, _, _, hits) = start().await;
    let cred =
        client_secret_credential(TENANT, "app-1", SECRET, &options(&authority, None)).unwrap();
    let err = cred.get_token(&[ARM_SCOPE], None).await.unwrap_err();
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    // Through a client, the error is classified and carries no secret.
    let arm = serve(Router::new().fallback(|| async { "unused" })).await;
    let c = ConnectionsClient::new(
        &arm,
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        cred,
        None,
    )
    .unwrap();
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Credential);
    eprintln!("{e}");
    assert!(e.message().contains("TLS"), "{e} / {err}");
    assert!(!e.is_retryable());
    assert!(!e.to_string().contains(SECRET));
}

#[tokio::test]
async fn a_wrong_secret_is_a_non_retryable_401() {
    let (authority, pki, _, _) = start().await;
    let cred = client_secret_credential(
        TENANT,
        "app-1",
        "not-the-secret",
        &options(&authority, Some(&pki)),
    )
    .unwrap();
    let arm = serve(Router::new().fallback(|| async { "unused" })).await;
    let c = ConnectionsClient::new(
        &arm,
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        cred,
        None,
    )
    .unwrap();
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Credential);
    eprintln!("{e}");
    assert_eq!(e.status(), Some(401));
    assert!(!e.is_retryable());
    assert_eq!(e.label(), "CredentialError");
    assert!(!e.to_string().contains("not-the-secret"));
}

#[tokio::test]
async fn workload_identity_asks_the_callback_for_each_new_token() {
    let (authority, pki, log, hits) = start().await;
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    let cred = workload_identity_credential(
        TENANT,
        "app-2",
        move || {
            let i = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok(format!("sa-token-{i}")) }
        },
        &options(&authority, Some(&pki)),
    )
    .unwrap();
    let a = cred.get_token(&[ARM_SCOPE], None).await.unwrap();
    let b = cred.get_token(&[DATA_PLANE_SCOPE], None).await.unwrap();
    let a2 = cred.get_token(&[ARM_SCOPE], None).await.unwrap();
    assert_eq!(a.token.secret(), "wi-sa-token-1");
    assert_eq!(b.token.secret(), "wi-sa-token-2");
    assert_eq!(a2.token.secret(), a.token.secret());
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(log.all()[0].body.contains("client_id=app-2"));
}

#[tokio::test]
async fn a_failing_assertion_callback_is_a_credential_error() {
    let (authority, pki, _, hits) = start().await;
    let cred = workload_identity_credential(
        TENANT,
        "app-2",
        || async { Err::<String, BoxError>("TokenRequest forbidden".into()) },
        &options(&authority, Some(&pki)),
    )
    .unwrap();
    let arm = serve(Router::new().fallback(|| async { "unused" })).await;
    let c = ConnectionsClient::new(
        &arm,
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        cred,
        None,
    )
    .unwrap();
    let e = c.get("c1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Credential);
    assert!(e.message().contains("TokenRequest forbidden"), "{e}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn workload_identity_from_a_token_file() {
    let (authority, pki, _, _) = start().await;
    let path = std::env::temp_dir().join(format!("fgc-federated-token-{}", std::process::id()));
    std::fs::write(&path, "projected-sa-token").unwrap();
    let cred = workload_identity_credential_from_file(
        TENANT,
        "app-3",
        &path,
        &options(&authority, Some(&pki)),
    )
    .unwrap();
    let t = cred.get_token(&[ARM_SCOPE], None).await.unwrap();
    assert_eq!(t.token.secret(), "wi-projected-sa-token");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_token_reaches_the_service() {
    let (authority, pki, _, _) = start().await;
    let cred = client_secret_credential(TENANT, "app-1", SECRET, &options(&authority, Some(&pki)))
        .unwrap();
    let seen = Log::default();
    let s = seen.clone();
    let arm = serve(Router::new().fallback(move |req: Request| {
        let s = s.clone();
        async move {
            let (parts, _) = req.into_parts();
            s.push(&parts, b"");
            (
                StatusCode::NOT_FOUND,
                r#"{"error":{"code":"ResourceNotFound","message":"x"}}"#,
            )
        }
    }))
    .await;
    let c = ConnectionsClient::new(
        &arm,
        ProjectResourceId::new("s", "r", "a", "p").unwrap(),
        cred,
        None,
    )
    .unwrap();
    assert!(c.get("c1").await.unwrap().is_none());
    assert_eq!(
        seen.all()[0].headers["authorization"],
        format!("Bearer sp-{ARM_SCOPE}")
    );
}

#[test]
fn managed_identity_builds_without_network() {
    let cred = managed_identity_credential(
        Some("00000000-0000-0000-0000-000000000001"),
        &CredentialOptions::default(),
    );
    assert!(cred.is_ok());
}
