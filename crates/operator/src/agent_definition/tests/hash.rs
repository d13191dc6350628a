use std::collections::BTreeMap;

use foundry_gateway_api::agent::RESERVED_METADATA_PREFIX;
use serde_json::json;

use super::*;
use crate::ownership::ObjectId;

/// The PromptAgent whose versions the requests are for.
fn owner() -> ObjectId {
    ObjectId::new(
        "team-a",
        "weather",
        Some("0b5f9c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
    )
}

fn hash_of(spec: &PromptAgentSpec, instructions: Option<&str>) -> String {
    let definition = build_definition(spec, "litellm", instructions);
    definition_hash(&definition, spec.description.as_deref(), &spec.metadata)
}

fn full_hash() -> String {
    hash_of(&full_spec(), Some(FULL_INSTRUCTIONS))
}

#[test]
fn the_hash_is_32_lowercase_hex_characters() {
    let h = full_hash();
    assert_eq!(h.len(), 32);
    assert!(
        h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{h}"
    );
}

#[test]
fn the_same_spec_gives_the_same_hash_twice() {
    assert_eq!(full_hash(), full_hash());
    assert_eq!(
        hash_of(&minimal_spec(), None),
        hash_of(&minimal_spec(), None)
    );
}

/// Pinned values: if one changes, every agent in every cluster gets a new version on upgrade.
/// Change them only on purpose (and say so in the release notes).
#[test]
fn the_hash_is_the_same_in_every_process_and_build() {
    assert_eq!(
        hash_of(&minimal_spec(), None),
        "f86a090c4d2d51c45fbc58fcb558993e"
    );
    assert_eq!(full_hash(), "747ad6afed2ee78eb1fb3d5f1a1851f6");
}

#[test]
fn the_key_order_of_free_form_json_does_not_change_the_hash() {
    let a: Value = serde_json::from_str(
        r#"{"type":"object","required":["city"],"properties":{"unit":{"enum":["c","f"],"type":"string"},"city":{"type":"string"}}}"#,
    )
    .unwrap();
    let b: Value = serde_json::from_str(
        r#"{"properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"],"type":"object"}"#,
    )
    .unwrap();
    let with = |parameters: Value| {
        spec_with(
            json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
            "metadata": {"b": "2", "a": "1"}}),
        )
    };
    assert_eq!(hash_of(&with(a), None), hash_of(&with(b), None));
    assert_eq!(
        canonical_json(&json!({"b": {"d": 1, "c": [2, 1]}, "a": null})),
        r#"{"a":null,"b":{"c":[2,1],"d":1}}"#
    );
}

#[test]
fn the_spelling_of_a_number_does_not_change_the_hash_but_its_value_does() {
    let with = |raw: &str| {
        let parameters: Value = serde_json::from_str(raw).unwrap();
        hash_of(
            &spec_with(
                json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}),
            ),
            None,
        )
    };
    let one = with(r#"{"type":"object","maxProperties":1}"#);
    assert_eq!(one, with(r#"{"type":"object","maxProperties":1.0}"#));
    assert_eq!(one, with(r#"{"type":"object","maxProperties":1e0}"#));
    assert_ne!(one, with(r#"{"type":"object","maxProperties":2}"#));
    assert_eq!(
        with(r#"{"type":"object","x":0.30000000000000004}"#),
        with(r#"{"type":"object","x":3.0000000000000004e-1}"#)
    );
    assert_ne!(
        with(r#"{"type":"object","x":0.3}"#),
        with(r#"{"type":"object","x":0.30000000000000004}"#)
    );
    assert_eq!(
        canonical_json(&json!([1.0, -0.0, 0.1, 1e300, -7, 18446744073709551615u64])),
        "[1,0,0.1,1e+300,-7,18446744073709551615]"
    );
    // Temperatures read from YAML (`0.2`) always hash alike.
    let t = |raw: &str| {
        let spec: PromptAgentSpec = serde_json::from_str(&format!(
            r#"{{"projectRef":{{"name":"p"}},"model":{{"connectionRef":{{"name":"c"}},"name":"m"}},"temperature":{raw}}}"#
        ))
        .unwrap();
        hash_of(&spec, None)
    };
    assert_eq!(t("1"), t("1.0"));
    assert_eq!(t("0.2"), t("2e-1"));
    assert_ne!(t("0.2"), t("0.21"));
}

#[test]
fn strings_are_escaped_canonically() {
    assert_eq!(
        canonical_json(&json!("a\"b\\c\n\t\u{1}é😀")),
        r#""a\"b\\c\n\t\u0001é😀""#
    );
}

/// A change of the spec, the instructions or the Foundry connection name.
type Change = fn(&mut PromptAgentSpec, &mut String, &mut String);

/// Changes of what is sent outside the tools.
fn definition_changes() -> Vec<(&'static str, Change)> {
    vec![
        ("connection", |_, _, c| *c = "other-gw".into()),
        ("model", |s, _, _| s.model.name = "gpt-4o-mini".into()),
        ("instructions", |_, i, _| i.push('!')),
        ("description", |s, _, _| {
            s.description = Some("Other".into())
        }),
        ("description removed", |s, _, _| s.description = None),
        ("metadata value", |s, _, _| {
            s.metadata.insert("team".into(), "rain".into());
        }),
        ("metadata key added", |s, _, _| {
            s.metadata.insert("owner".into(), "me".into());
        }),
        ("temperature", |s, _, _| s.temperature = Some(0.3)),
        ("top_p", |s, _, _| s.top_p = None),
        ("reasoning", |s, _, _| {
            s.reasoning.as_mut().unwrap().effort =
                Some(foundry_gateway_api::agent::ReasoningEffort::High)
        }),
        ("tool choice", |s, _, _| {
            s.tool_choice = Some(foundry_gateway_api::agent::ToolChoice::default())
        }),
        ("text strict", |s, _, _| {
            s.text.as_mut().unwrap().format.strict = Some(false)
        }),
        ("structured input", |s, _, _| {
            s.structured_inputs.get_mut("city").unwrap().default_value = Some(json!("Lyon"))
        }),
    ]
}

/// Changes of the tools.
fn tool_changes() -> Vec<(&'static str, Change)> {
    vec![
        ("tool order", |s, _, _| s.tools.swap(0, 1)),
        ("tool removed", |s, _, _| {
            s.tools.pop();
        }),
        ("function parameters", |s, _, _| {
            s.tools[1].function.as_mut().unwrap().parameters = Some(json!({"type": "object"}))
        }),
        ("file ids", |s, _, _| {
            s.tools[0]
                .code_interpreter
                .as_mut()
                .unwrap()
                .file_ids
                .clear()
        }),
        ("max results", |s, _, _| {
            s.tools[2].file_search.as_mut().unwrap().max_num_results = Some(6)
        }),
        ("openapi spec", |s, _, _| {
            s.tools[3].open_api.as_mut().unwrap().spec["info"]["version"] = json!("2")
        }),
        ("foundry iq connection", |s, _, _| {
            s.tools[4]
                .foundry_iq
                .as_mut()
                .unwrap()
                .project_connection_id = "x".into()
        }),
        ("sharepoint connection", |s, _, _| {
            s.tools[5]
                .share_point_grounding
                .as_mut()
                .unwrap()
                .project_connection_ids[0] = "x".into()
        }),
        ("mcp approval", |s, _, _| {
            s.tools[7].mcp.as_mut().unwrap().require_approval = None
        }),
        ("browser connection", |s, _, _| {
            s.tools[8]
                .browser_automation
                .as_mut()
                .unwrap()
                .project_connection_id = "x".into()
        }),
    ]
}

#[test]
fn every_change_of_what_is_sent_changes_the_hash() {
    let changes = [definition_changes(), tool_changes()].concat();
    let base = full_hash();
    let mut seen = BTreeMap::from([(base.clone(), "base")]);
    for (name, change) in changes {
        let mut spec = full_spec();
        let mut instructions = FULL_INSTRUCTIONS.to_owned();
        let mut connection = "litellm".to_owned();
        change(&mut spec, &mut instructions, &mut connection);
        let definition = build_definition(&spec, &connection, Some(&instructions));
        let h = definition_hash(&definition, spec.description.as_deref(), &spec.metadata);
        if let Some(other) = seen.insert(h, name) {
            panic!("changing {name} gave the same hash as {other}");
        }
    }
}

#[test]
fn what_is_not_sent_does_not_change_the_hash() {
    let mut spec = full_spec();
    spec.verify = None;
    spec.suspend = Some(true);
    spec.agent_name = Some("renamed".into());
    spec.deletion_policy = Some(foundry_gateway_api::common::DeletionPolicy::Orphan);
    spec.model.connection_ref.name = "another-object-same-foundry-connection".into();
    assert_eq!(hash_of(&spec, Some(FULL_INSTRUCTIONS)), full_hash());
}

#[test]
fn reserved_metadata_keys_never_enter_the_hash() {
    let definition = build_definition(&minimal_spec(), "gw", None);
    let user = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    let mut with_reserved = user.clone();
    with_reserved.insert(SPEC_HASH_KEY.into(), "old".into());
    with_reserved.insert(MANAGED_BY_KEY.into(), owner().marker_value());
    with_reserved.insert(MANAGED_BY_UID_KEY.into(), "uid".into());
    assert_eq!(
        definition_hash(&definition, None, &user),
        definition_hash(&definition, None, &with_reserved)
    );
}

#[test]
fn the_reserved_keys_use_the_prefix_the_crd_reserves() {
    assert!(SPEC_HASH_KEY.starts_with(RESERVED_METADATA_PREFIX));
    assert!(MANAGED_BY_KEY.starts_with(RESERVED_METADATA_PREFIX));
    assert!(MANAGED_BY_UID_KEY.starts_with(RESERVED_METADATA_PREFIX));
    assert!(SPEC_HASH_KEY.len() <= 64 && MANAGED_BY_KEY.len() <= 64);
    assert!(MANAGED_BY_UID_KEY.len() <= 64);
}

#[test]
fn the_version_request_carries_definition_description_user_metadata_hash_and_marker() {
    let spec = full_spec();
    let definition = build_definition(&spec, "litellm", Some(FULL_INSTRUCTIONS));
    let hash = full_hash();
    let request = version_request(&spec, definition.clone(), &hash, &owner());
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({
            "definition": serde_json::to_value(&definition).unwrap(),
            "description": "Weather agent",
            "metadata": {
                "team": "weather", "tier": "gold",
                "gateway.foundry.dev/spec-hash": hash,
                "gateway.foundry.dev/managed-by": "foundry-gateway-operator:team-a/weather",
                "gateway.foundry.dev/managed-by-uid": "0b5f9c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
            },
        })
    );
    let minimal = version_request(
        &minimal_spec(),
        build_definition(&minimal_spec(), "gw", None),
        "abc",
        &owner(),
    );
    let v = serde_json::to_value(&minimal).unwrap();
    assert!(v.get("description").is_none());
    assert_eq!(v["metadata"].as_object().unwrap().len(), 3);
}

fn spec_with_user_keys(n: usize) -> PromptAgentSpec {
    let metadata: serde_json::Map<String, Value> =
        (0..n).map(|i| (format!("k{i:02}"), json!("v"))).collect();
    spec_with(json!({"metadata": metadata}))
}

#[test]
fn with_13_user_keys_the_three_reserved_keys_fit_in_foundrys_16() {
    let spec = spec_with_user_keys(13);
    validate(&spec, None).unwrap();
    let r = version_request(&spec, build_definition(&spec, "gw", None), "h", &owner());
    assert_eq!(r.metadata.len(), MAX_METADATA_KEYS);
    assert_eq!(r.metadata[SPEC_HASH_KEY], "h");
    assert_eq!(r.metadata[MANAGED_BY_KEY], owner().marker_value());
    assert_eq!(r.metadata[MANAGED_BY_UID_KEY], owner().uid.unwrap());
}

#[test]
fn with_14_or_15_user_keys_the_owner_travels_in_the_hash_value() {
    for user_keys in [14, 15] {
        let spec = spec_with_user_keys(user_keys);
        validate(&spec, None).unwrap();
        let r = version_request(&spec, build_definition(&spec, "gw", None), "h", &owner());
        assert_eq!(r.metadata.len(), user_keys + 1);
        assert_eq!(
            r.metadata[SPEC_HASH_KEY],
            "h foundry-gateway-operator:team-a/weather 0b5f9c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
        );
        assert!(!r.metadata.contains_key(MANAGED_BY_KEY));
        assert!(!r.metadata.contains_key(MANAGED_BY_UID_KEY));
    }
}

#[test]
fn the_longest_owner_fits_foundrys_value_limit() {
    let longest = ObjectId::new(
        &"n".repeat(63),
        &"a".repeat(253),
        Some("0b5f9c3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
    );
    let spec = spec_with_user_keys(15);
    let hash = hash_of(&spec, None);
    let r = version_request(&spec, build_definition(&spec, "gw", None), &hash, &longest);
    assert!(r.metadata.values().all(|v| v.len() <= 512));
    assert!(r.metadata.keys().all(|k| k.len() <= 64));
}

#[test]
fn metadata_beyond_the_limits_or_with_the_reserved_prefix_is_never_sent() {
    // Only reachable when validation was skipped (an older CRD): still never over 16 keys.
    let mut spec = spec_with_user_keys(20);
    spec.metadata.insert(
        format!("{RESERVED_METADATA_PREFIX}spec-hash"),
        "forged".into(),
    );
    let r = version_request(&spec, build_definition(&spec, "gw", None), "h", &owner());
    assert_eq!(r.metadata.len(), MAX_METADATA_KEYS);
    assert!(r.metadata[SPEC_HASH_KEY].starts_with("h "));
}
