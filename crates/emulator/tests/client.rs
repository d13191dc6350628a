//! The operator's Foundry client against the emulator over HTTPS: every operation, the error
//! envelopes, 404 handling, throttling with Retry-After, and paging.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{PROJECT, SUB, TOKEN};
use foundry_gateway_client::connections::{
    ConnectionAuth, ConnectionCategory, ConnectionProperties, ConnectionResource, ConnectionScope,
    ConnectionsClientOptions, DEFAULT_ARM_API_VERSION, ProjectResourceId,
};
use foundry_gateway_client::credentials::StaticTokenCredential;
use foundry_gateway_client::{
    ClientOptions, ConnectionsClient, CreateAgentVersionRequest, CreateResponseRequest,
    ListOptions, ProjectClient, ProjectClientOptions, PromptAgentDefinition, RetryOptions,
    SecretString, Transport, TransportOptions,
};
use serde_json::json;

fn client_options(h: &common::Harness) -> ClientOptions {
    let transport = Transport::new(TransportOptions {
        extra_root_ca_pem: Some(h.pki.ca_pem.clone().into_bytes()),
        ..TransportOptions::default()
    })
    .unwrap();
    ClientOptions {
        transport: Some(transport),
        retry: RetryOptions {
            initial_delay: Duration::from_millis(10),
            ..RetryOptions::default()
        },
        ..ClientOptions::default()
    }
}

fn connections(h: &common::Harness, token: &str, api_version: &str) -> ConnectionsClient {
    scoped_connections(h, ConnectionScope::Project, token, api_version)
}

fn scoped_connections(
    h: &common::Harness,
    scope: ConnectionScope,
    token: &str,
    api_version: &str,
) -> ConnectionsClient {
    ConnectionsClient::with_scope(
        &h.emu.base_url,
        ProjectResourceId::new(SUB, "rg-local", "local-account", PROJECT).unwrap(),
        scope,
        StaticTokenCredential::new(token),
        Some(ConnectionsClientOptions {
            api_version: api_version.into(),
            client_options: client_options(h),
        }),
    )
    .unwrap()
}

fn data_client(h: &common::Harness) -> ProjectClient {
    ProjectClient::new(
        &h.project(),
        StaticTokenCredential::new(TOKEN),
        Some(ProjectClientOptions {
            client_options: client_options(h),
            ..ProjectClientOptions::default()
        }),
    )
    .unwrap()
}

fn gateway(key: &str) -> ConnectionResource {
    let mut properties = ConnectionProperties::new(
        ConnectionCategory::ModelGateway,
        "https://gw.example.com/v1",
        ConnectionAuth::ApiKey {
            key: Some(SecretString::new(key)),
        },
    );
    properties
        .metadata
        .insert("deploymentInPath".into(), "false".into());
    properties.metadata.insert(
        "models".into(),
        r#"[{"name":"gpt-4o","properties":{"model":{"name":"gpt-4o","version":"","format":"OpenAI"}}}]"#.into(),
    );
    ConnectionResource::new(properties)
}

#[tokio::test]
async fn connection_operations_round_trip_without_echoing_credentials() {
    let h = common::start_with(|c| c.arm_page_size = 2).await;
    let arm = connections(&h, TOKEN, "2025-12-01");
    let written = arm
        .create_or_update("gw-one", &gateway("s3cret-key"))
        .await
        .unwrap();
    assert_eq!(written.name.as_deref(), Some("gw-one"));
    assert!(
        written
            .id
            .as_deref()
            .is_some_and(|id| id.ends_with("/connections/gw-one"))
    );
    assert_eq!(
        written.properties.auth,
        ConnectionAuth::ApiKey { key: None },
        "the key is not echoed"
    );
    let read = arm.get("gw-one").await.unwrap().expect("exists");
    assert_eq!(read.properties.metadata["deploymentInPath"], "false");
    assert!(!serde_json::to_string(&read).unwrap().contains("s3cret-key"));
    for name in ["gw-two", "gw-three", "gw-four", "gw-five"] {
        arm.create_or_update(name, &gateway("k")).await.unwrap();
    }
    // Five connections at two per page: the client follows nextLink.
    let all = arm.list(None).await.unwrap();
    assert_eq!(
        all.len(),
        5,
        "{:?}",
        all.iter().map(|c| c.name.clone()).collect::<Vec<_>>()
    );
    arm.delete("gw-one").await.unwrap();
    assert!(
        arm.get("gw-one").await.unwrap().is_none(),
        "404 reads as None"
    );
    arm.delete("gw-one").await.unwrap();
}

#[tokio::test]
async fn service_errors_carry_status_code_and_message() {
    let h = common::start().await;
    let arm = connections(&h, TOKEN, "2025-12-01");
    let bad_name = arm.create_or_update("x", &gateway("k")).await.unwrap_err();
    assert_eq!(
        bad_name.kind(),
        foundry_gateway_client::ErrorKind::InvalidInput,
        "refused before sending"
    );
    let mut both = gateway("k");
    both.properties.metadata.insert(
        "modelDiscovery".into(),
        r#"{"listModelsEndpoint":"/models","getModelEndpoint":"/models/{deploymentName}","deploymentProvider":"OpenAI"}"#.into(),
    );
    let rejected = arm.create_or_update("gw-both", &both).await.unwrap_err();
    assert_eq!(rejected.status(), Some(400));
    assert_eq!(rejected.code(), Some("InvalidRequestContent"));
    assert!(
        rejected.message().contains("models"),
        "{}",
        rejected.message()
    );
    assert!(!rejected.is_retryable());
    let bad_version = connections(&h, TOKEN, "1999-01-01")
        .get("gw")
        .await
        .unwrap_err();
    assert_eq!(bad_version.status(), Some(400));
    assert!(
        bad_version.message().contains("2025-12-01"),
        "the message lists supported versions: {}",
        bad_version.message()
    );
    let unauthorized = connections(&h, "wrong-token", "2025-12-01")
        .get("gw")
        .await
        .unwrap_err();
    assert_eq!(unauthorized.status(), Some(401));
    assert!(!unauthorized.to_string().contains("wrong-token"));
}

#[tokio::test]
async fn throttling_is_retried_no_sooner_than_retry_after() {
    let h = common::start().await;
    let arm = connections(&h, TOKEN, "2025-12-01");
    arm.create_or_update("gw-thr", &gateway("k")).await.unwrap();
    let (status, _) = h
        .send(
            reqwest::Method::POST,
            &format!("{}/_emulator/faults", h.emu.base_url),
            Some(json!({"operation": "ProjectConnections_Get", "status": 429, "retryAfterSeconds": 1, "times": 1})),
        )
        .await;
    assert!(status.is_success());
    let started = Instant::now();
    assert!(arm.get("gw-thr").await.unwrap().is_some());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried after {:?}",
        started.elapsed()
    );
    let (_, log) = h
        .send(
            reqwest::Method::GET,
            &format!(
                "{}/_emulator/requests?operation=ProjectConnections_Get",
                h.emu.base_url
            ),
            None,
        )
        .await;
    let times: Vec<i64> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timeUnixMs"].as_i64().unwrap())
        .collect();
    assert_eq!(times.len(), 2, "one 429, one retry");
    assert!(
        times[1] - times[0] >= 1000,
        "the retry came {} ms after the 429",
        times[1] - times[0]
    );
}

#[tokio::test]
async fn agent_versions_are_created_paged_read_and_deleted() {
    let h = common::start().await;
    let data = data_client(&h);
    for i in 1..=3 {
        let mut request = CreateAgentVersionRequest::new(PromptAgentDefinition::new("gw/gpt-4o"));
        request.metadata.insert("revision".into(), i.to_string());
        let created = data.create_version("paged-agent", &request).await.unwrap();
        assert_eq!(created.version, i.to_string());
    }
    let options = ListOptions {
        limit: Some(2),
        ..ListOptions::default()
    };
    let versions = data.list_versions("paged-agent", &options).await.unwrap();
    let mut numbers: Vec<String> = versions.iter().map(|v| v.version.clone()).collect();
    numbers.sort();
    assert_eq!(numbers, ["1", "2", "3"], "every page was followed");
    assert!(
        data.get_version("paged-agent", "2")
            .await
            .unwrap()
            .is_some()
    );
    data.delete_version("paged-agent", "2").await.unwrap();
    assert!(
        data.get_version("paged-agent", "2")
            .await
            .unwrap()
            .is_none(),
        "404 reads as None"
    );
    data.delete_version("paged-agent", "2").await.unwrap();
    data.delete("paged-agent").await.unwrap();
    assert!(data.get("paged-agent").await.unwrap().is_none());
}

#[tokio::test]
async fn both_scopes_round_trip_with_the_default_api_version_and_stay_apart() {
    let h = common::start_with(|c| c.arm_page_size = 1).await;
    let project = scoped_connections(&h, ConnectionScope::Project, TOKEN, DEFAULT_ARM_API_VERSION);
    let account = scoped_connections(&h, ConnectionScope::Account, TOKEN, DEFAULT_ARM_API_VERSION);
    assert_eq!(DEFAULT_ARM_API_VERSION, "2026-09-01");
    for scope_client in [&project, &account] {
        let written = scope_client
            .create_or_update("gw-shared", &gateway("scope-secret"))
            .await
            .unwrap();
        assert_eq!(
            written.id.as_deref(),
            Some(scope_client.connection_id("gw-shared").as_str())
        );
        assert_eq!(
            written.properties.auth,
            ConnectionAuth::ApiKey { key: None }
        );
    }
    let account_only = account
        .create_or_update("gw-account", &gateway("k"))
        .await
        .unwrap();
    assert_eq!(
        account_only.resource_type.as_deref(),
        Some("Microsoft.CognitiveServices/accounts/connections")
    );
    assert!(project.get("gw-account").await.unwrap().is_none());
    let names = |list: Vec<ConnectionResource>| -> Vec<String> {
        list.into_iter().filter_map(|c| c.name).collect()
    };
    // One per page: the account list follows its own nextLink.
    assert_eq!(
        names(account.list(None).await.unwrap()),
        ["gw-account", "gw-shared"]
    );
    assert_eq!(names(project.list(None).await.unwrap()), ["gw-shared"]);
    account.delete("gw-account").await.unwrap();
    account.delete("gw-account").await.unwrap();
    assert!(account.get("gw-account").await.unwrap().is_none());
    assert!(project.get("gw-shared").await.unwrap().is_some());

    let (_, log) = h
        .send(
            reqwest::Method::GET,
            &format!("{}/_emulator/requests", h.emu.base_url),
            None,
        )
        .await;
    let ops: std::collections::BTreeSet<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    for op in [
        "ProjectConnections_Create",
        "ProjectConnections_Get",
        "ProjectConnections_List",
        "AccountConnections_Create",
        "AccountConnections_Get",
        "AccountConnections_List",
        "AccountConnections_Delete",
    ] {
        assert!(ops.contains(op), "{op} in {ops:?}");
    }
    assert!(log.as_array().unwrap().iter().all(|r| {
        r["query"]
            .as_str()
            .unwrap()
            .contains("api-version=2026-09-01")
    }));
}

#[tokio::test]
async fn an_account_client_gets_the_emulators_errors() {
    let h = common::start().await;
    let account = scoped_connections(&h, ConnectionScope::Account, TOKEN, "2025-12-01");
    let mut both = gateway("k");
    both.properties.metadata.insert(
        "modelDiscovery".into(),
        r#"{"listModelsEndpoint":"/models","getModelEndpoint":"/models/{deploymentName}","deploymentProvider":"OpenAI"}"#.into(),
    );
    let rejected = account
        .create_or_update("gw-both", &both)
        .await
        .unwrap_err();
    assert_eq!(rejected.status(), Some(400));
    assert_eq!(rejected.code(), Some("InvalidRequestContent"));
    assert_eq!(rejected.operation(), "AccountConnections_Create");
    let bad_version = scoped_connections(&h, ConnectionScope::Account, TOKEN, "2020-01-01")
        .get("gw")
        .await
        .unwrap_err();
    assert_eq!(bad_version.status(), Some(400));
    assert_eq!(bad_version.code(), Some("InvalidApiVersionParameter"));
    assert_eq!(bad_version.operation(), "AccountConnections_Get");
}

#[tokio::test]
async fn a_model_response_through_an_account_connection_answers_or_names_its_failure() {
    let h = common::start().await;
    let gw = common::FakeGateway::start(&h.pki).await;
    let account = scoped_connections(&h, ConnectionScope::Account, TOKEN, DEFAULT_ARM_API_VERSION);
    let mut props = ConnectionProperties::new(
        ConnectionCategory::ModelGateway,
        format!("{}/v1", gw.base),
        ConnectionAuth::ApiKey {
            key: Some(SecretString::new("k-acct")),
        },
    );
    props
        .metadata
        .insert("models".into(), common::MODELS.into());
    account
        .create_or_update("acct-gw", &ConnectionResource::new(props))
        .await
        .unwrap();
    let data = data_client(&h);
    let ok = data
        .responses_create(&CreateResponseRequest::for_model("acct-gw/gpt-4o", "Hi"))
        .await
        .unwrap();
    assert_eq!(ok.output_text, "echo: Hi");
    assert_eq!(ok.model.as_deref(), Some("acct-gw/gpt-4o"));
    assert_eq!(gw.chat_calls()[0].headers["api-key"], "k-acct");

    let missing = data
        .responses_create(&CreateResponseRequest::for_model("acct-gw/gpt-5", "Hi"))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.status(), missing.code()),
        (Some(404), Some("model_not_found"))
    );
    let no_connection = data
        .responses_create(&CreateResponseRequest::for_model("nowhere/gpt-4o", "Hi"))
        .await
        .unwrap_err();
    assert_eq!(
        (no_connection.status(), no_connection.code()),
        (Some(404), Some("connection_not_found"))
    );
    gw.reply_next(
        reqwest::StatusCode::UNAUTHORIZED,
        json!({"error": {"message": "key revoked"}}),
    );
    let refused = data
        .responses_create(&CreateResponseRequest::for_model("acct-gw/gpt-4o", "Hi"))
        .await
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (Some(502), Some("gateway_unauthorized"))
    );
}
