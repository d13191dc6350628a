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
        .send(
            Method::POST,
            &format!("{p}/agents/my-agent/versions?api-version=v1"),
            Some(version_body("gw/m1")),
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
        .send(
            Method::POST,
            &format!("{p}/agents/my-agent/versions?api-version=v1"),
            Some(version_body("gw/m2")),
        )
        .await;
    assert_eq!(v2["version"], "2");
    let (_, other) = h
        .send(
            Method::POST,
            &format!("{p}/agents/other/versions?api-version=v1"),
            Some(version_body("gw/m1")),
        )
        .await;
    assert_eq!(other["version"], "1");

    let (s, agent) = h
        .send(
            Method::GET,
            &format!("{p}/agents/my-agent?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(agent["object"], "agent");
    assert_eq!(agent["versions"]["latest"]["version"], "2");
    let (s, got) = h
        .send(
            Method::GET,
            &format!("{p}/agents/my-agent/versions/1?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, v1);
    let (s, v) = h
        .send(
            Method::GET,
            &format!("{p}/agents/my-agent/versions/7?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");

    let (s, v) = h
        .send(
            Method::DELETE,
            &format!("{p}/agents/my-agent/versions/1?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"object": "agent.version.deleted", "name": "my-agent", "version": "1", "deleted": true})
    );
    let (s, v) = h
        .send(
            Method::DELETE,
            &format!("{p}/agents/my-agent?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"object": "agent.deleted", "name": "my-agent", "deleted": true})
    );
    let (s, _) = h
        .send(
            Method::GET,
            &format!("{p}/agents/my-agent?api-version=v1"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .send(
            Method::DELETE,
            &format!("{p}/agents/my-agent?api-version=v1"),
            None,
        )
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
        let (s, page) = h.send(Method::GET, &url, None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        calls += 1;
        versions.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap().to_string()),
        );
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
        .send(
            Method::GET,
            &format!("{p}/agents/paged/versions?api-version=v1&order=asc&limit=2"),
            None,
        )
        .await;
    assert_eq!(page["first_id"], "paged:1");
    assert_eq!(page["last_id"], "paged:2");
    assert_eq!(page["has_more"], true);
    let (_, page) = h
        .send(
            Method::GET,
            &format!("{p}/agents/paged/versions?api-version=v1&order=asc&before=paged:4"),
            None,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    for bad in ["limit=0", "limit=101", "order=sideways"] {
        let (s, v) = h
            .send(
                Method::GET,
                &format!("{p}/agents/paged/versions?api-version=v1&{bad}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    // Listing agents pages the same way.
    h.create_agent("second", "gw/m").await;
    let (_, agents) = h
        .send(
            Method::GET,
            &format!("{p}/agents?api-version=v1&limit=1"),
            None,
        )
        .await;
    assert_eq!(agents["data"][0]["name"], "second");
    assert_eq!(agents["has_more"], true);
    let (_, rest) = h
        .send(
            Method::GET,
            &format!("{p}/agents?api-version=v1&after=second"),
            None,
        )
        .await;
    assert_eq!(rest["data"][0]["name"], "paged");
}

#[tokio::test]
async fn project_apis_need_api_version_v1_or_the_preview() {
    let h = start().await;
    let p = h.project();
    let (s, v) = h.send(Method::GET, &format!("{p}/agents"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["param"], "api-version");
    let (s, _) = h
        .send(
            Method::GET,
            &format!("{p}/agents?api-version=2020-01-01"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .send(
            Method::GET,
            &format!("{p}/agents?api-version=2025-11-15-preview"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = h
        .send(
            Method::GET,
            &format!("{}/api/projects/nope/agents?api-version=v1", h.emu.base_url),
            None,
        )
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
            .send(
                Method::POST,
                &format!("{p}/agents/{name}/versions?api-version=v1"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{param}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn create_and_update_agents_add_versions_only_when_the_definition_changes() {
    let h = start().await;
    let p = h.project();
    let body = json!({"name": "upd", "definition": {"kind": "prompt", "model": "gw/m1"}});
    let (s, v) = h
        .send(
            Method::POST,
            &format!("{p}/agents?api-version=v1"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["versions"]["latest"]["version"], "1");
    let (s, v) = h
        .send(
            Method::POST,
            &format!("{p}/agents?api-version=v1"),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let same = json!({"definition": {"kind": "prompt", "model": "gw/m1"}});
    let (_, v) = h
        .send(
            Method::POST,
            &format!("{p}/agents/upd?api-version=v1"),
            Some(same),
        )
        .await;
    assert_eq!(v["versions"]["latest"]["version"], "1");
    let changed = json!({"definition": {"kind": "prompt", "model": "gw/m2"}});
    let (_, v) = h
        .send(
            Method::POST,
            &format!("{p}/agents/upd?api-version=v1"),
            Some(changed.clone()),
        )
        .await;
    assert_eq!(v["versions"]["latest"]["version"], "2");
    let (s, _) = h
        .send(
            Method::POST,
            &format!("{p}/agents/missing?api-version=v1"),
            Some(changed),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn conversations_are_created_read_extended_and_deleted() {
    let h = start().await;
    let (s, c) = h
        .send(
            Method::POST,
            &h.openai("/conversations"),
            Some(json!({"metadata": {"topic": "x"}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(c["object"], "conversation");
    assert!(c["id"].as_str().unwrap().starts_with("conv_"));
    assert_eq!(c["metadata"], json!({"topic": "x"}));
    let id = c["id"].as_str().unwrap();
    let (s, got) = h
        .send(
            Method::GET,
            &h.openai(&format!("/conversations/{id}")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, c);
    let (s, added) = h
        .send(Method::POST, &h.openai(&format!("/conversations/{id}/items")), Some(json!({"items": [{"type": "message", "role": "user", "content": "a"}, {"role": "user", "content": [{"type": "input_text", "text": "b"}]}]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{added}");
    assert_eq!(added["data"].as_array().unwrap().len(), 2);
    let (_, items) = h
        .send(
            Method::GET,
            &h.openai(&format!("/conversations/{id}/items")),
            None,
        )
        .await;
    let texts: Vec<&str> = items["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["b", "a"], "items list newest first by default");
    let (s, v) = h
        .send(
            Method::DELETE,
            &h.openai(&format!("/conversations/{id}")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    let (s, v) = h
        .send(
            Method::GET,
            &h.openai(&format!("/conversations/{id}")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let too_many: Vec<Value> = (0..21)
        .map(|_| json!({"role": "user", "content": "x"}))
        .collect();
    let (s, _) = h
        .send(
            Method::POST,
            &h.openai("/conversations"),
            Some(json!({"items": too_many})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn data_plane_operations_are_recorded_by_name() {
    let h = start().await;
    h.create_agent("rec", "gw/m").await;
    h.send(Method::POST, &h.openai("/conversations"), None)
        .await;
    let (_, log) = h.control(Method::GET, "/requests?plane=data", None).await;
    let ops: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["Agents_CreateVersion", "Conversations_Create"]);
    assert_eq!(log[0]["requestBody"]["definition"]["model"], "gw/m");
}
