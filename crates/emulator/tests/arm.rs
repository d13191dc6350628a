//! ARM project and account connections over real HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

fn apikey_body(key: &str) -> Value {
    gateway_connection(
        "ModelGateway",
        "https://gw.example.com/llm",
        json!({"authType": "ApiKey", "credentials": {"key": key}}),
        json!({"deploymentInPath": "false", "inferenceAPIVersion": "", "models": MODELS}),
    )
}

#[tokio::test]
async fn put_creates_and_upserts_with_200_and_never_returns_credentials() {
    let h = start().await;
    let (s, v) = h
        .put_connection("my-gw", apikey_body("super-secret-key-1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "my-gw");
    assert_eq!(
        v["type"],
        "Microsoft.CognitiveServices/accounts/projects/connections"
    );
    assert!(
        v["id"]
            .as_str()
            .unwrap()
            .ends_with("/projects/local-project/connections/my-gw")
    );
    assert_eq!(v["properties"]["category"], "ModelGateway");
    assert!(v["properties"].get("credentials").is_none());
    assert!(v["systemData"]["createdAt"].is_string());
    // Upsert is also 200 (no 201).
    let (s, v2) = h
        .put_connection("my-gw", apikey_body("super-secret-key-2"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!v2.to_string().contains("super-secret"));
    let (s, got) = h.get(&h.connection_url("my-gw")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["properties"], v2["properties"]);
    assert!(!got.to_string().contains("super-secret"));
}

#[tokio::test]
async fn get_of_a_missing_connection_is_404_resource_not_found() {
    let h = start().await;
    let (s, v) = h.get(&h.connection_url("nothing-here")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ResourceNotFound");
}

#[tokio::test]
async fn delete_is_200_when_it_existed_and_204_when_missing() {
    let h = start().await;
    h.put_connection("my-gw", apikey_body("k-1")).await;
    let resp = h.raw(Method::DELETE, &h.connection_url("my-gw")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = h.raw(Method::DELETE, &h.connection_url("my-gw")).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (s, _) = h.get(&h.connection_url("my-gw")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patch_merges_properties_and_keeps_credentials_unless_replaced() {
    let h = start().await;
    h.put_connection("my-gw", apikey_body("k-original")).await;
    let (s, v) = h
        .send(Method::PATCH, &h.connection_url("my-gw"), Some(json!({"properties": {"category": "ModelGateway", "authType": "ApiKey", "isSharedToAll": true}})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["properties"]["isSharedToAll"], true);
    assert_eq!(v["properties"]["target"], "https://gw.example.com/llm");
    assert!(v["properties"].get("credentials").is_none());
    let (s, v) = h
        .send(
            Method::PATCH,
            &h.connection_url("absent-one"),
            Some(json!({"properties": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ResourceNotFound");
    let (s, v) = h
        .send(
            Method::PATCH,
            &h.connection_url("my-gw"),
            Some(json!({"properties": {"metadata": {"models": [1]}}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "InvalidRequestContent");
}

#[tokio::test]
async fn list_pages_with_next_link_and_filters_by_category_and_target() {
    let h = start_with(|c| c.arm_page_size = 2).await;
    for i in 0..5 {
        h.put_connection(&format!("gw-{i}"), apikey_body("k")).await;
    }
    let other = json!({"properties": {"category": "ContainerRegistry", "target": "https://acr.example.com", "authType": "None"}});
    h.put_connection("acr-1", other).await;

    let mut url = format!(
        "{}?api-version=2025-12-01&category=ModelGateway",
        h.arm_connections()
    );
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let (s, v) = h.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        pages += 1;
        names.extend(strings(&v["value"], "name"));
        match v["nextLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => break,
        }
    }
    assert_eq!(names, vec!["gw-0", "gw-1", "gw-2", "gw-3", "gw-4"]);
    assert_eq!(pages, 3);
    let (_, v) = h
        .get(&format!(
            "{}?api-version=2025-12-01&target=https://acr.example.com",
            h.arm_connections()
        ))
        .await;
    assert_eq!(v["value"].as_array().unwrap().len(), 1);
    assert_eq!(v["value"][0]["name"], "acr-1");
    assert!(v.get("nextLink").is_none());
}

#[tokio::test]
async fn api_version_is_required_and_must_be_a_known_one() {
    let h = start().await;
    let url = format!("{}/my-gw", h.arm_connections());
    let (s, v) = h.get(&url).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
    let (s, v) = h.get(&format!("{url}?api-version=2023-05-01")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "InvalidApiVersionParameter");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("2025-04-01-preview") && msg.contains("2025-12-01"),
        "{msg}"
    );
    for version in foundry_gateway_emulator::ARM_API_VERSIONS {
        let (s, _) = h.get(&format!("{url}?api-version={version}")).await;
        assert_eq!(
            s,
            StatusCode::NOT_FOUND,
            "{version} is accepted (and the connection is missing)"
        );
    }
}

#[tokio::test]
async fn an_unknown_parent_project_is_404_parent_resource_not_found() {
    let h = start().await;
    let url = h
        .connection_url("my-gw")
        .replace("/projects/local-project/", "/projects/other-project/");
    let (s, v) = h.put(&url, apikey_body("k")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ParentResourceNotFound");
}

#[tokio::test]
async fn invalid_bodies_are_400_invalid_request_content_with_a_precise_message() {
    let h = start().await;
    let cases = [
        ("ab", apikey_body("k"), "connection name 'ab' is invalid"),
        ("my-gw", json!({"name": "x"}), "'properties' is required"),
        (
            "my-gw",
            json!({"properties": {"authType": "ApiKey"}}),
            "properties.category is required",
        ),
        (
            "my-gw",
            json!({"properties": {"category": "ModelGateway"}}),
            "properties.authType is required",
        ),
        (
            "my-gw",
            api_key_connection(
                "https://gw.example.com",
                "k",
                json!({"models": [{"name": "gpt-4o"}]}),
            ),
            "metadata.models must be a string",
        ),
        (
            "my-gw",
            gateway_connection(
                "ModelGateway",
                "https://gw.example.com",
                json!({"authType": "ApiKey", "credentials": {}}),
                json!({"models": MODELS}),
            ),
            "credentials.key is required",
        ),
        (
            "my-gw",
            gateway_connection(
                "ModelGateway",
                "https://gw.example.com",
                json!({"authType": "OAuth2", "credentials": {"clientId": "c", "clientSecret": "s"}}),
                json!({"models": MODELS}),
            ),
            "tokenUrl is required",
        ),
        (
            "my-gw",
            api_key_connection(
                "https://gw.example.com",
                "k",
                json!({"modelDiscovery": r#"{"listModelsEndpoint":"https://evil.example.com/models","getModelEndpoint":"/models/{deploymentName}","deploymentProvider":"OpenAI"}"#}),
            ),
            "same origin",
        ),
        (
            "my-gw",
            api_key_connection(
                "https://gw.example.com",
                "k",
                json!({"models": MODELS, "modelDiscovery": r#"{"listModelsEndpoint":"/m","getModelEndpoint":"/m/{deploymentName}","deploymentProvider":"OpenAI"}"#}),
            ),
            "mutually exclusive",
        ),
    ];
    for (name, body, expected) in cases {
        let (s, v) = h.put_connection(name, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{expected}: {v}");
        assert_eq!(v["error"]["code"], "InvalidRequestContent");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "expected '{expected}' in '{msg}'");
    }
    let resp = h
        .authed(Method::PUT, &h.connection_url("my-gw"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn entra_and_oauth2_connections_of_the_samples_are_accepted() {
    let h = start().await;
    let apim = json!({"properties": {"category": "ApiManagement", "target": "https://contoso.azure-api.net/aoai",
        "authType": "ProjectManagedIdentity", "audience": "https://cognitiveservices.azure.com", "credentials": {},
        "isSharedToAll": false, "metadata": {"deploymentInPath": "true",
        "modelDiscovery": "{\"listModelsEndpoint\":\"/deployments\",\"getModelEndpoint\":\"/deployments/{deploymentName}\",\"deploymentProvider\":\"AzureOpenAI\"}"}}});
    let (s, v) = h.put_connection("apim-entra", apim).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["properties"]["audience"],
        "https://cognitiveservices.azure.com"
    );
    let oauth = json!({"properties": {"category": "ModelGateway", "target": "https://gw.example.com/llm", "authType": "OAuth2",
        "credentials": {"clientId": "gw-client", "clientSecret": "oauth-secret-value"},
        "tokenUrl": "https://login.example.com/oauth2/token", "scopes": ["api://gw/.default"],
        "isSharedToAll": false, "metadata": {"deploymentInPath": "false", "inferenceAPIVersion": "", "models": MODELS,
        "customHeaders": "{\"X-Client-App\":\"foundry-agents\"}"}}});
    let (s, v) = h.put_connection("mg-oauth", oauth).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["properties"]["tokenUrl"],
        "https://login.example.com/oauth2/token"
    );
    assert!(!v.to_string().contains("oauth-secret-value"));
}

#[tokio::test]
async fn the_request_log_redacts_credentials_and_hashes_them_so_rotation_is_visible() {
    let h = start().await;
    h.put_connection("my-gw", apikey_body("rotating-key-one"))
        .await;
    h.put_connection("my-gw", apikey_body("rotating-key-two"))
        .await;
    h.get(&h.connection_url("my-gw")).await;
    let (s, log) = h.control(Method::GET, "/requests", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = log.to_string();
    assert!(!text.contains("rotating-key"), "{text}");
    let list = log.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["operation"], "ProjectConnections_Create");
    assert_eq!(list[0]["plane"], "arm");
    assert_eq!(list[0]["status"], 200);
    assert_eq!(list[0]["query"], "api-version=2025-12-01");
    assert_eq!(
        list[0]["requestBody"]["properties"]["credentials"]["key"],
        "<redacted>"
    );
    let h1 = list[0]["credentialsSha256"].as_str().unwrap();
    let h2 = list[1]["credentialsSha256"].as_str().unwrap();
    assert_ne!(h1, h2, "a rotated key changes the hash");
    assert_eq!(h1.len(), 64);
    assert_eq!(list[2]["operation"], "ProjectConnections_Get");
    assert!(list[2].get("credentialsSha256").is_none());
    let (_, only_gets) = h
        .control(
            Method::GET,
            "/requests?operation=ProjectConnections_Get",
            None,
        )
        .await;
    assert_eq!(only_gets.as_array().unwrap().len(), 1);
    let (s, _) = h.control(Method::DELETE, "/requests", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, log) = h.control(Method::GET, "/requests", None).await;
    assert_eq!(log, json!([]));
}

#[tokio::test]
async fn arm_names_are_case_insensitive_and_keep_the_first_casing() {
    let h = start().await;
    h.put_connection("My-Gw", apikey_body("k")).await;
    let (s, v) = h.get(&h.connection_url("my-gw")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "My-Gw");
}

const ACCOUNT_ID: &str = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/Microsoft.CognitiveServices/accounts/local-account";

fn account_connections(h: &Harness) -> String {
    format!("{}{ACCOUNT_ID}/connections", h.emu.base_url)
}

fn account_connection_url(h: &Harness, name: &str) -> String {
    format!("{}/{name}?api-version=2026-09-01", account_connections(h))
}

#[tokio::test]
async fn account_connections_have_the_same_lifecycle_as_project_connections() {
    let h = start().await;
    let url = account_connection_url(&h, "shared-gw");
    let (s, v) = h.put(&url, apikey_body("account-secret-1")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "shared-gw");
    assert_eq!(
        v["type"],
        "Microsoft.CognitiveServices/accounts/connections"
    );
    assert_eq!(v["id"], format!("{ACCOUNT_ID}/connections/shared-gw"));
    assert!(v["properties"].get("credentials").is_none());
    assert!(!v.to_string().contains("account-secret"));

    let (s, got) = h.get(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["properties"], v["properties"]);
    let (s, v) = h
        .send(
            Method::PATCH,
            &url,
            Some(json!({"properties": {"isSharedToAll": true}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["properties"]["isSharedToAll"], true);

    // The account's connections and the project's are separate collections.
    let (_, listed) = h
        .get(&format!(
            "{}?api-version=2026-09-01",
            account_connections(&h)
        ))
        .await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    let (_, project_list) = h
        .get(&format!("{}?api-version=2026-09-01", h.arm_connections()))
        .await;
    assert_eq!(project_list["value"], json!([]));
    let (s, _) = h.get(&h.connection_url("shared-gw")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let resp = h.raw(Method::DELETE, &url).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = h.raw(Method::DELETE, &url).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (s, v) = h.get(&url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ResourceNotFound");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Microsoft.CognitiveServices/accounts/connections/local-account/shared-gw"),
        "{v}"
    );
}

#[tokio::test]
async fn account_connections_are_validated_and_checked_like_project_connections() {
    let h = start_with(|c| c.arm_page_size = 1).await;
    let (s, v) = h
        .put(&account_connection_url(&h, "ab"), apikey_body("k"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "InvalidRequestContent");
    let (s, v) = h
        .put(
            &account_connection_url(&h, "my-gw"),
            json!({"properties": {"category": "ModelGateway"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("properties.authType is required")
    );

    let bare = format!("{}/my-gw", account_connections(&h));
    let (s, v) = h.get(&bare).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
    let (s, v) = h.get(&format!("{bare}?api-version=2023-05-01")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "InvalidApiVersionParameter");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'Microsoft.CognitiveServices/accounts/connections'"),
        "{v}"
    );

    let other = account_connection_url(&h, "my-gw").replace("local-account", "other-account");
    let (s, v) = h.put(&other, apikey_body("k")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "ParentResourceNotFound");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/accounts/other-account'"),
        "{v}"
    );

    for i in 0..3 {
        h.put(
            &account_connection_url(&h, &format!("gw-{i}")),
            apikey_body("k"),
        )
        .await;
    }
    let mut url = format!(
        "{}?api-version=2026-09-01&category=ModelGateway",
        account_connections(&h)
    );
    let mut names = Vec::new();
    loop {
        let (s, v) = h.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        names.extend(strings(&v["value"], "name"));
        match v["nextLink"].as_str() {
            Some(next) => {
                assert!(
                    next.contains("/accounts/local-account/connections?"),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(names, ["gw-0", "gw-1", "gw-2"]);
}

#[tokio::test]
async fn the_request_log_names_account_connection_operations() {
    let h = start().await;
    let url = account_connection_url(&h, "shared-gw");
    h.put(&url, apikey_body("account-key-9")).await;
    h.get(&url).await;
    h.send(
        Method::PATCH,
        &url,
        Some(json!({"properties": {"isSharedToAll": true}})),
    )
    .await;
    h.get(&format!(
        "{}?api-version=2026-09-01",
        account_connections(&h)
    ))
    .await;
    h.raw(Method::DELETE, &url).await;
    let (_, log) = h.control(Method::GET, "/requests", None).await;
    assert!(!log.to_string().contains("account-key-9"));
    let ops = strings(&log, "operation");
    assert_eq!(
        ops,
        [
            "AccountConnections_Create",
            "AccountConnections_Get",
            "AccountConnections_Update",
            "AccountConnections_List",
            "AccountConnections_Delete",
        ]
    );
    assert!(log[0]["credentialsSha256"].is_string());
    assert_eq!(log[0]["plane"], "arm");
}

#[tokio::test]
async fn every_api_version_of_the_reference_is_accepted_for_both_scopes() {
    let h = start().await;
    let expected = [
        "2025-04-01-preview",
        "2025-06-01",
        "2025-07-01-preview",
        "2025-09-01",
        "2025-10-01-preview",
        "2025-12-01",
        "2026-01-15-preview",
        "2026-03-01",
        "2026-03-15-preview",
        "2026-05-01",
        "2026-05-15-preview",
        "2026-07-01",
        "2026-07-15-preview",
        "2026-09-01",
        "2026-09-15-preview",
    ];
    assert_eq!(foundry_gateway_emulator::ARM_API_VERSIONS, expected);
    for base in [h.arm_connections(), account_connections(&h)] {
        for version in expected {
            let (s, v) = h.get(&format!("{base}?api-version={version}")).await;
            assert_eq!(s, StatusCode::OK, "{version}: {v}");
        }
        for refused in ["2024-10-01", "2025-04-01", "2026-09-01-preview", "v1", ""] {
            let (s, v) = h.get(&format!("{base}?api-version={refused}")).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{refused:?}");
            assert_eq!(
                v["error"]["code"], "InvalidApiVersionParameter",
                "{refused:?}"
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("2026-09-01")
            );
        }
    }
}
