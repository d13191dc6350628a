//! The `foundry-emulator` binary: flags, the listen line on stdout, TLS from files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::TestPki;

#[tokio::test]
async fn the_binary_prints_its_https_url_and_serves_both_planes() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_foundry-emulator"))
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .args([
            "--static-token",
            "bin-token",
            "--project",
            "s1/rg1/acct1/proj1",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let line = line.trim_end();
    assert!(
        line.starts_with("foundry-emulator listening on https://127.0.0.1:"),
        "{line}"
    );
    let base = line.rsplit(' ').next().unwrap().to_string();

    let client = pki.client();
    let health: serde_json::Value = client
        .get(format!("{base}/_emulator/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["projects"][0]["project"], "proj1");
    let arm = format!(
        "{base}/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.CognitiveServices/accounts/acct1/projects/proj1/connections?api-version=2025-04-01-preview"
    );
    let resp = client
        .get(&arm)
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{base}/api/projects/proj1/agents?api-version=v1"))
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn the_binary_refuses_to_start_without_an_auth_mode() {
    let out = Command::new(env!("CARGO_BIN_EXE_foundry-emulator"))
        .arg("--insecure-http")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--static-token"));
    assert!(out.stdout.is_empty());
}
