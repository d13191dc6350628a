//! Agents, versions, paging and conversations on the project data plane.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::{Value, json};

fn version_body(model: &str) -> Value {
    json!({"definition": {"kind": "prompt", "model": model, "instructions": "hi"}, "metadata": {"team": "blue"}, "description": "d"})
}

#[tokio::test]
async fn versions_are_numbered_per_agent_and_read_back() {
    let h = start().await;
    let p = h.project();
    let (s, v1) = h
        .post(
            &format!("{p}/agents/my-agent/versions?api-version=v1"),
            version_body("gw/m1"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v1}");
    assert_eq!(v1["object"], "agent.version");
    assert_eq!(v1["name"], "my-agent");
    assert_eq!(v1["version"], "1");
    assert_eq!(v1["id"], "my-agent:1");
    assert_eq!(v1["metadata"], json!({"team": "blue"}));
    assert!(v1["created_at"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v1["definition"]["model"], "gw/m1");
    let (_, v2) = h
        .post(
            &format!("{p}/agents/my-agent/versions?api-version=v1"),
            version_body("gw/m2"),
        )
        .await;
    assert_eq!(v2["version"], "2");
    let (_, other) = h
        .post(
            &format!("{p}/agents/other/versions?api-version=v1"),
            version_body("gw/m1"),
        )
        .await;
    assert_eq!(other["version"], "1");

    let (s, agent) = h.get(&format!("{p}/agents/my-agent?api-version=v1")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(agent["object"], "agent");
    assert_eq!(agent["versions"]["latest"]["version"], "2");
    let (s, got) = h
        .get(&format!("{p}/agents/my-agent/versions/1?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, v1);
    let (s, v) = h
        .get(&format!("{p}/agents/my-agent/versions/7?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");

    let (s, v) = h
        .delete(&format!("{p}/agents/my-agent/versions/1?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"object": "agent.version.deleted", "name": "my-agent", "version": "1", "deleted": true})
    );
    let (s, v) = h
        .delete(&format!("{p}/agents/my-agent?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"object": "agent.deleted", "name": "my-agent", "deleted": true})
    );
    let (s, _) = h.get(&format!("{p}/agents/my-agent?api-version=v1")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .delete(&format!("{p}/agents/my-agent?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_versions_pages_the_way_the_python_pager_walks() {
    let h = start().await;
    let p = h.project();
    for i in 0..7 {
        h.create_agent("paged", &format!("gw/m{i}")).await;
    }
    // The pager: call with after=<last_id> until a page has no last_id.
    let mut after: Option<String> = None;
    let mut versions = Vec::new();
    let mut calls = 0;
    loop {
        let mut url = format!("{p}/agents/paged/versions?api-version=v1&limit=3");
        if let Some(a) = &after {
            url.push_str(&format!("&after={a}"));
        }
        let (s, page) = h.get(&url).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        calls += 1;
        versions.extend(strings(&page["data"], "version"));
        match page["last_id"].as_str() {
            Some(id) => after = Some(id.to_string()),
            None => {
                assert_eq!(page["data"], json!([]));
                assert_eq!(page["has_more"], false);
                break;
            }
        }
        assert!(calls < 10);
    }
    assert_eq!(
        versions,
        vec!["7", "6", "5", "4", "3", "2", "1"],
        "default order is desc"
    );
    assert_eq!(calls, 4);
    let (_, page) = h
        .get(&format!(
            "{p}/agents/paged/versions?api-version=v1&order=asc&limit=2"
        ))
        .await;
    assert_eq!(page["first_id"], "paged:1");
    assert_eq!(page["last_id"], "paged:2");
    assert_eq!(page["has_more"], true);
    let (_, page) = h
        .get(&format!(
            "{p}/agents/paged/versions?api-version=v1&order=asc&before=paged:4"
        ))
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    for bad in ["limit=0", "limit=101", "order=sideways"] {
        let (s, v) = h
            .get(&format!("{p}/agents/paged/versions?api-version=v1&{bad}"))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Listing agents pages the same way.
    h.create_agent("second", "gw/m").await;
    let (_, agents) = h.get(&format!("{p}/agents?api-version=v1&limit=1")).await;
    assert_eq!(agents["data"][0]["name"], "second");
    assert_eq!(agents["has_more"], true);
    let (_, rest) = h
        .get(&format!("{p}/agents?api-version=v1&after=second"))
        .await;
    assert_eq!(rest["data"][0]["name"], "paged");
}

#[tokio::test]
async fn project_apis_need_api_version_v1_or_the_preview() {
    let h = start().await;
    let p = h.project();
    let (s, v) = h.get(&format!("{p}/agents")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "api-version");
    let (s, _) = h.get(&format!("{p}/agents?api-version=2020-01-01")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .get(&format!("{p}/agents?api-version=2025-11-15-preview"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .get(&format!(
            "{}/api/projects/nope/agents?api-version=v1",
            h.emu.base_url
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
}

#[tokio::test]
async fn invalid_agent_input_is_400_with_the_parameter_named() {
    let h = start().await;
    let p = h.project();
    let long_meta: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (
            "bad_name-",
            json!({"definition": {"kind": "prompt", "model": "a/b"}}),
            "agent_name",
        ),
        (
            "ok-name",
            json!({"definition": {"kind": "prompt"}}),
            "definition.model",
        ),
        (
            "ok-name",
            json!({"definition": {"model": "a/b"}}),
            "definition.kind",
        ),
        (
            "ok-name",
            json!({"definition": {"kind": "prompt", "model": "a/b"}, "metadata": {"n": 1}}),
            "metadata",
        ),
        (
            "ok-name",
            json!({"definition": {"kind": "prompt", "model": "a/b"}, "metadata": long_meta}),
            "metadata",
        ),
        (
            "ok-name",
            json!({"definition": {"kind": "prompt", "model": "a/b"}, "description": "x".repeat(513)}),
            "description",
        ),
    ];
    for (name, body, param) in cases {
        let (s, v) = h
            .post(&format!("{p}/agents/{name}/versions?api-version=v1"), body)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{param}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn update_agent_adds_a_version_only_when_the_definition_changes() {
    let h = start().await;
    let p = h.project();
    let body = json!({"name": "upd", "definition": {"kind": "prompt", "model": "gw/m1"}});
    let (s, v) = h
        .post(&format!("{p}/agents?api-version=v1"), body.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["versions"]["latest"]["version"], "1");
    let same = json!({"definition": {"kind": "prompt", "model": "gw/m1"}});
    let (_, v) = h
        .post(&format!("{p}/agents/upd?api-version=v1"), same)
        .await;
    assert_eq!(v["versions"]["latest"]["version"], "1");
    let changed = json!({"definition": {"kind": "prompt", "model": "gw/m2"}});
    let (_, v) = h
        .post(&format!("{p}/agents/upd?api-version=v1"), changed.clone())
        .await;
    assert_eq!(v["versions"]["latest"]["version"], "2");
    let (s, _) = h
        .post(&format!("{p}/agents/missing?api-version=v1"), changed)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn conversations_are_created_read_extended_and_deleted() {
    let h = start().await;
    let (s, c) = h
        .post(
            &h.openai("/conversations"),
            json!({"metadata": {"topic": "x"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["object"], "conversation");
    assert!(c["id"].as_str().unwrap().starts_with("conv_"));
    assert_eq!(c["metadata"], json!({"topic": "x"}));
    let id = c["id"].as_str().unwrap();
    let (s, got) = h.get(&h.openai(&format!("/conversations/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, c);
    let (s, added) = h.post(&h.openai(&format!("/conversations/{id}/items")), json!({"items": [{"type": "message", "role": "user", "content": "a"}, {"role": "user", "content": [{"type": "input_text", "text": "b"}]}]})).await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["data"].as_array().unwrap().len(), 2);
    let (_, items) = h
        .get(&h.openai(&format!("/conversations/{id}/items")))
        .await;
    let texts = item_texts(&items);
    assert_eq!(texts, vec!["b", "a"], "items list newest first by default");
    let (s, v) = h.delete(&h.openai(&format!("/conversations/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    let (s, v) = h.get(&h.openai(&format!("/conversations/{id}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let too_many: Vec<Value> = (0..21)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let (s, _) = h
        .post(&h.openai("/conversations"), json!({"items": too_many}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn data_plane_operations_are_recorded_by_name() {
    let h = start().await;
    h.create_agent("rec", "gw/m").await;
    h.post_empty(&h.openai("/conversations")).await;
    let (_, log) = h.control(Method::GET, "/requests?plane=data", None).await;
    let ops = strings(&log, "operation");
    assert_eq!(ops, vec!["Agents_CreateVersion", "Conversations_Create"]);
    assert_eq!(log[0]["requestBody"]["definition"]["model"], "gw/m");
}

fn prompt(model: &str) -> Value {
    json!({"kind": "prompt", "model": model})
}

#[tokio::test]
async fn creating_an_agent_that_exists_adds_a_version_instead_of_a_conflict() {
    let h = start().await;
    let p = h.project();
    let url = format!("{p}/agents?api-version=v1");
    let (s, v) = h
        .post(
            &url,
            json!({"name": "again", "definition": prompt("gw/m1")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["versions"]["latest"]["version"], "1");
    let (s, v) = h
        .post(
            &url,
            json!({"name": "again", "definition": prompt("gw/m2"), "state": "disabled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "createAgent on an existing name: {v}");
    assert_eq!(v["object"], "agent");
    assert_eq!(v["versions"]["latest"]["version"], "2");
    assert_eq!(v["versions"]["latest"]["definition"]["model"], "gw/m2");
    assert_eq!(
        v["state"], "enabled",
        "state is the initial state of a new agent only"
    );
    let (_, versions) = h
        .get(&format!("{p}/agents/again/versions?api-version=v1"))
        .await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn agents_carry_their_state_and_versions_their_agent_guid() {
    let h = start().await;
    let p = h.project();
    let (s, v) = h
        .post(
            &format!("{p}/agents?api-version=v1"),
            json!({"name": "off", "definition": prompt("gw/m"), "state": "disabled"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "disabled");
    assert_eq!(v["configuration_state"], "disabled");
    let (s, v) = h
        .post(
            &format!("{p}/agents?api-version=v1"),
            json!({"name": "odd", "definition": prompt("gw/m"), "state": "paused"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["param"], "state");

    let v1 = h.create_agent("on", "gw/m").await;
    let v2 = h.create_agent("on", "gw/m2").await;
    let guid = v1["agent_guid"].as_str().unwrap();
    assert_eq!(guid.len(), 36, "{guid}");
    assert_eq!(v2["agent_guid"], guid, "one GUID per agent");
    assert_eq!(v1["status"], "active");
    assert!(v1.get("draft").is_none(), "draft only appears on drafts");
    let (_, agent) = h.get(&format!("{p}/agents/on?api-version=v1")).await;
    assert_eq!(agent["state"], "enabled");
    assert_eq!(agent["configuration_state"], "enabled");

    for (action, state) in [("disable", "disabled"), ("enable", "enabled")] {
        let resp = h
            .raw(
                Method::POST,
                &format!("{p}/agents/on:{action}?api-version=v1"),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{action}");
        let (_, agent) = h.get(&format!("{p}/agents/on?api-version=v1")).await;
        assert_eq!(agent["state"], state, "after {action}");
    }
    let (s, _) = h
        .post_empty(&format!("{p}/agents/nobody:enable?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn draft_versions_need_the_preview_opt_in_and_are_never_latest() {
    let (h, gw) = start_with_gateway().await;
    let p = h.project();
    h.create_agent("drafty", "my-gw/gpt-4o").await;
    let url = format!("{p}/agents/drafty/versions?api-version=v1");
    let draft = json!({"definition": {"kind": "prompt", "model": "my-gw/gpt-4o", "instructions": "Draft."}, "draft": true});

    let (s, v) = h.post(&url, draft.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "preview_feature_required");
    assert_eq!(v["error"]["param"], "Foundry-Features");

    let resp = h
        .authed(Method::POST, &url)
        .header(
            "Foundry-Features",
            "WorkflowAgents=V1Preview,DraftAgents=V1Preview",
        )
        .json(&draft)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["version"], "2");
    assert_eq!(v["draft"], true);

    let (_, agent) = h.get(&format!("{p}/agents/drafty?api-version=v1")).await;
    assert_eq!(
        agent["versions"]["latest"]["version"], "1",
        "a draft is not latest"
    );
    let (_, listed) = h.get(&url).await;
    let versions = strings(&listed["data"], "version");
    assert_eq!(versions, ["1"], "drafts are listed only on request");
    let (_, listed) = h.get(&format!("{url}&include_drafts=true")).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    let (s, r) = h.respond("drafty", "Hi").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r["agent_reference"]["version"], "1",
        "a reference without version runs the latest release"
    );
    let (s, r) = h.post(&h.openai("/responses"), json!({"input": "Hi", "agent_reference": {"type": "agent_reference", "name": "drafty", "version": "2"}})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r["agent_reference"]["version"], "2",
        "a draft runs by version"
    );
    assert_eq!(gw.chat_calls()[1].body["messages"][0]["content"], "Draft.");
}

#[tokio::test]
async fn the_project_alias_serves_the_first_configured_project() {
    let h = start_with(|c| {
        let mut second = c.projects[0].clone();
        second.project = "second-project".into();
        c.projects.push(second);
    })
    .await;
    let alias = h.emu.project_endpoint("_project");
    let (s, v) = h
        .post(
            &format!("{alias}/agents/via-alias/versions?api-version=v1"),
            json!({"definition": prompt("gw/m")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = h
        .get(&format!("{}/agents/via-alias?api-version=v1", h.project()))
        .await;
    assert_eq!(s, StatusCode::OK, "the alias is the first project");
    let (s, _) = h
        .get(&format!(
            "{}/agents/via-alias?api-version=v1",
            h.emu.project_endpoint("second-project")
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, c) = h
        .post_empty(&format!("{alias}/openai/v1/conversations"))
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    let (s, _) = h
        .get(&h.openai(&format!("/conversations/{}", c["id"].as_str().unwrap())))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = h
        .get(&format!(
            "{}/agents?api-version=v1",
            h.emu.project_endpoint("_other")
        ))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "only `_project` is an alias");
}

async fn two_gateway_connections(h: &Harness, gw: &FakeGateway) {
    let key = api_key_gateway(&gw.base, "gw-secret-key-1");
    assert_eq!(h.put_connection("static-gw", key).await.0, StatusCode::OK);
    let oauth = gateway_connection(
        "ModelGateway",
        &format!("{}/v1", gw.base),
        json!({"authType": "OAuth2", "tokenUrl": format!("{}/oauth2/token", gw.base), "scopes": ["api://gw/.default"],
               "credentials": {"clientId": "client-1", "clientSecret": "gw-client-secret-1"}}),
        json!({"deploymentInPath": "false",
               "modelDiscovery": "{\"listModelsEndpoint\":\"/models\",\"getModelEndpoint\":\"/models/{deploymentName}\",\"deploymentProvider\":\"OpenAI\"}"}),
    );
    let (s, v) = h.put_connection("discovery-gw", oauth).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn connections_list_and_get_show_gateway_connections_without_secrets() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    two_gateway_connections(&h, &gw).await;
    let p = h.project();
    let (s, list) = h.get(&format!("{p}/connections?api-version=v1")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let value = list["value"].as_array().unwrap();
    assert_eq!(value.len(), 2);
    assert!(list.get("nextLink").is_none_or(Value::is_null));
    let c = value.iter().find(|c| c["name"] == "static-gw").unwrap();
    assert_eq!(
        c["id"],
        format!(
            "/subscriptions/{SUB}/resourceGroups/rg-local/providers/Microsoft.CognitiveServices/accounts/local-account/projects/{PROJECT}/connections/static-gw"
        )
    );
    assert_eq!(c["type"], "ModelGateway");
    assert_eq!(c["target"], gw.base);
    assert_eq!(c["isDefault"], false);
    assert_eq!(c["credentials"], json!({"type": "ApiKey"}));
    assert_eq!(c["metadata"]["deploymentInPath"], "false");
    let text = list.to_string();
    for secret in ["gw-secret-key-1", "gw-client-secret-1"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let (s, one) = h
        .get(&format!("{p}/connections/discovery-gw?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["credentials"], json!({"type": "OAuth2"}));

    let (s, with) = h
        .post_empty(&format!(
            "{p}/connections/static-gw/getConnectionWithCredentials?api-version=v1"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        with["credentials"],
        json!({"type": "ApiKey", "key": "gw-secret-key-1"})
    );
    let (_, with) = h
        .post_empty(&format!(
            "{p}/connections/discovery-gw/getConnectionWithCredentials?api-version=v1"
        ))
        .await;
    assert_eq!(
        with["credentials"],
        json!({"type": "OAuth2"}),
        "nothing the SDK cannot read"
    );

    let (_, filtered) = h
        .get(&format!(
            "{p}/connections?api-version=v1&connectionType=AzureOpenAI"
        ))
        .await;
    assert_eq!(filtered["value"], json!([]));
    let (_, defaults) = h
        .get(&format!(
            "{p}/connections?api-version=v1&defaultConnection=true"
        ))
        .await;
    assert_eq!(defaults["value"], json!([]));

    let resp = h
        .raw(Method::GET, &format!("{p}/connections/nope?api-version=v1"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-ms-error-code"], "NotFound");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "NotFound");
    assert!(
        v["error"].get("type").is_none(),
        "Azure.Core envelope, not the OpenAI one: {v}"
    );
    let (s, _) = h.get(&format!("{p}/connections")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "api-version is required");
}

#[tokio::test]
async fn deployments_show_each_gateway_model_under_its_connection() {
    let h = start().await;
    let gw = FakeGateway::start(&h.pki).await;
    two_gateway_connections(&h, &gw).await;
    let p = h.project();
    let (s, list) = h.get(&format!("{p}/deployments?api-version=v1")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let names = strings(&list["value"], "name");
    assert_eq!(
        names,
        [
            "discovery-gw/gpt-4o",
            "discovery-gw/llama",
            "static-gw/gpt-4o"
        ]
    );
    let d = &list["value"][2];
    assert_eq!(
        *d,
        json!({"type": "ModelDeployment", "name": "static-gw/gpt-4o", "modelName": "gpt-4o",
               "modelVersion": "2024-11-20", "modelPublisher": "OpenAI", "capabilities": {},
               "connectionName": "static-gw"})
    );
    assert_eq!(list["value"][1]["connectionName"], "discovery-gw");
    let discovery_calls = |gw: &FakeGateway| {
        gw.seen()
            .iter()
            .filter(|s| s.uri.path() == "/v1/models")
            .count()
    };
    assert_eq!(discovery_calls(&gw), 1);

    let (s, one) = h
        .get(&format!(
            "{p}/deployments/static-gw%2Fgpt-4o?api-version=v1"
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["connectionName"], "static-gw");
    let (s, _) = h
        .get(&format!(
            "{p}/deployments/discovery-gw/llama?api-version=v1"
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(discovery_calls(&gw), 1, "discovery results are cached");
    let (s, v) = h
        .get(&format!("{p}/deployments/static-gw%2Fgpt-5?api-version=v1"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "NotFound");
    let (_, filtered) = h
        .get(&format!("{p}/deployments?api-version=v1&modelName=llama"))
        .await;
    assert_eq!(filtered["value"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn input_items_list_the_input_of_one_response_newest_first() {
    let (h, _gw) = start_with_gateway().await;
    h.create_agent("items", "my-gw/gpt-4o").await;
    let (s, r) = h.post(&h.openai("/responses"), json!({"input": [{"role": "user", "content": "one"}, {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "two"}]}],
                        "agent_reference": {"type": "agent_reference", "name": "items"}})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let id = r["id"].as_str().unwrap();
    let (s, page) = h
        .get(&h.openai(&format!("/responses/{id}/input_items")))
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert_eq!(page["object"], "list");
    assert_eq!(item_texts(&page), ["two", "one"]);
    assert_eq!(page["data"][0]["type"], "message");
    assert!(page["data"][0]["id"].as_str().unwrap().starts_with("msg_"));
    let (_, page) = h
        .get(&h.openai(&format!("/responses/{id}/input_items?order=asc&limit=1")))
        .await;
    assert_eq!(item_texts(&page), ["one"]);
    assert_eq!(page["has_more"], true);
    let (s, _) = h
        .get(&h.openai("/responses/resp_missing/input_items"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleting_a_response_answers_the_delete_response_result_and_cancel_needs_background() {
    let (h, _gw) = start_with_gateway().await;
    h.create_agent("del", "my-gw/gpt-4o").await;
    let (_, r) = h.respond("del", "Hi").await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(r["background"], false);

    let (s, v) = h
        .post_empty(&h.openai(&format!("/responses/{id}/cancel")))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let (s, v) = h.delete(&h.openai(&format!("/responses/{id}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"id": id, "object": "response", "deleted": true}));
    for (method, path) in [
        (Method::GET, format!("/responses/{id}")),
        (Method::DELETE, format!("/responses/{id}")),
        (Method::POST, format!("/responses/{id}/cancel")),
    ] {
        let (s, _) = h.send(method.clone(), &h.openai(&path), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}");
    }
}

#[tokio::test]
async fn an_account_connection_shows_in_every_project_of_the_account_and_serves_its_agents() {
    let h = start_with(|c| {
        let mut second = c.projects[0].clone();
        second.project = "second-project".into();
        c.projects.push(second);
    })
    .await;
    let gw = FakeGateway::start(&h.pki).await;
    let account_id = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-local/providers/Microsoft.CognitiveServices/accounts/local-account"
    );
    let body = api_key_gateway(&gw.base, "account-key-1");
    let (s, v) = h
        .put(
            &format!(
                "{}{account_id}/connections/shared-gw?api-version=2026-09-01",
                h.emu.base_url
            ),
            body,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second = h.emu.project_endpoint("second-project");
    let (s, list) = h.get(&format!("{second}/connections?api-version=v1")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["value"][0]["name"], "shared-gw");
    assert_eq!(
        list["value"][0]["id"],
        format!("{account_id}/connections/shared-gw")
    );
    let (_, deployments) = h.get(&format!("{second}/deployments?api-version=v1")).await;
    assert_eq!(deployments["value"][0]["name"], "shared-gw/gpt-4o");
    assert_eq!(deployments["value"][0]["connectionName"], "shared-gw");

    let (s, v) = h
        .post(
            &format!("{second}/agents/shared-user/versions?api-version=v1"),
            json!({"definition": prompt("shared-gw/gpt-4o")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, r) = h.post(&format!("{second}/openai/v1/responses"), json!({"input": "Hi", "agent_reference": {"type": "agent_reference", "name": "shared-user"}})).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["output"][0]["content"][0]["text"], "echo: Hi");
}
