//! `plan`, the pure part: given what the operator would send (computed by the operator's own
//! `connection::build::build` and `agent_definition::desired_version`) and what Foundry holds,
//! what would be written: create, update with a field diff, a new agent version, or nothing.
//! The decisions are the operator's own (`build::drift`, `agent_definition::needs_new_version`);
//! the diff lines only explain them.

use std::collections::BTreeMap;

use foundry_gateway_client::connections::{CUSTOM_HEADERS, ConnectionAuth, ConnectionProperties};
use foundry_gateway_client::project::AgentVersionObject;
use foundry_gateway_operator::agent_definition::{
    self, DesiredVersion, SPEC_HASH_KEY, VersionPlan,
};
use foundry_gateway_operator::connection::{build, observe};
use foundry_gateway_operator::ownership::ObjectId;
use serde_json::Value;

/// What the operator would do to one Foundry connection.
#[derive(Clone, Debug, PartialEq)]
pub enum ConnectionPlan {
    /// No connection of that name: PUT a new one.
    Create,
    /// The live connection differs: PUT, with these diff lines.
    Update(Vec<String>),
    /// Nothing to write.
    Nothing,
}

/// What the operator would do to one Foundry agent.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentPlan {
    /// POST a new version, with these diff lines against the newest live version.
    NewVersion(Vec<String>),
    /// The newest version is already this spec's.
    Nothing {
        /// The version that matches.
        version: String,
    },
}

/// The connection plan. With `adopt`, a connection without any marker is compared without the
/// marker, as the operator takes it over as it is when nothing else differs.
pub fn plan_connection(
    desired: &ConnectionProperties,
    live: Option<&ConnectionProperties>,
    adopt: bool,
) -> ConnectionPlan {
    let Some(live) = live else {
        return ConnectionPlan::Create;
    };
    let drift = if adopt && build::marker(live).is_none() {
        observe::content_drift(desired, live)
    } else {
        build::drift(desired, live)
    };
    match drift {
        None => ConnectionPlan::Nothing,
        Some(_) => ConnectionPlan::Update(connection_diff(desired, live)),
    }
}

fn show(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "(unset)".to_owned(),
    }
}

fn line(field: &str, live: Option<&str>, desired: Option<&str>, out: &mut Vec<String>) {
    if live != desired {
        let mark = match (live, desired) {
            (None, _) => '+',
            (_, None) => '-',
            _ => '~',
        };
        out.push(format!(
            "{mark} {field}: {} -> {}",
            show(live),
            show(desired)
        ));
    }
}

/// One line per differing field (`~` changed, `+` added, `-` removed); credentials are never
/// compared or shown (ARM does not return them), custom header values are not shown.
pub fn connection_diff(desired: &ConnectionProperties, live: &ConnectionProperties) -> Vec<String> {
    let mut out = Vec::new();
    line(
        "category",
        Some(live.category.as_str()),
        Some(desired.category.as_str()),
        &mut out,
    );
    line(
        "target",
        Some(&live.target),
        Some(&desired.target),
        &mut out,
    );
    let (la, da) = (auth_fields(&live.auth), auth_fields(&desired.auth));
    for key in la
        .keys()
        .chain(da.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        line(
            key,
            la.get(key).map(String::as_str),
            da.get(key).map(String::as_str),
            &mut out,
        );
    }
    for key in live
        .metadata
        .keys()
        .chain(desired.metadata.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (l, d) = (live.metadata.get(key), desired.metadata.get(key));
        if l == d {
            continue;
        }
        if key == CUSTOM_HEADERS {
            let mark = match (l, d) {
                (None, _) => '+',
                (_, None) => '-',
                _ => '~',
            };
            out.push(format!(
                "{mark} metadata.{key}: headers {} -> {} (values not shown)",
                header_names(l),
                header_names(d)
            ));
            continue;
        }
        // Complex values are JSON text: equal JSON in another key order is no difference to
        // the reader, but the operator compares text, so it still writes.
        let same_json = match (l, d) {
            (Some(l), Some(d)) => {
                serde_json::from_str::<Value>(l).ok().is_some()
                    && serde_json::from_str::<Value>(l).ok()
                        == serde_json::from_str::<Value>(d).ok()
            }
            _ => false,
        };
        if same_json {
            out.push(format!("~ metadata.{key}: same JSON, other formatting"));
        } else {
            line(
                &format!("metadata.{key}"),
                l.map(String::as_str),
                d.map(String::as_str),
                &mut out,
            );
        }
    }
    let shared = |p: &ConnectionProperties| p.is_shared_to_all.unwrap_or(false).to_string();
    line(
        "isSharedToAll",
        Some(&shared(live)),
        Some(&shared(desired)),
        &mut out,
    );
    out
}

fn header_names(json: Option<&String>) -> String {
    let names: Vec<String> = json
        .and_then(|j| serde_json::from_str::<BTreeMap<String, Value>>(j).ok())
        .map(|m| m.into_keys().collect())
        .unwrap_or_default();
    format!("[{}]", names.join(", "))
}

fn auth_fields(auth: &ConnectionAuth) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    m.insert("authType", auth.auth_type().to_owned());
    match auth {
        ConnectionAuth::ProjectManagedIdentity { audience } | ConnectionAuth::Aad { audience } => {
            if let Some(a) = audience {
                m.insert("audience", a.clone());
            }
        }
        ConnectionAuth::OAuth2 {
            token_url,
            scopes,
            client_id,
            ..
        } => {
            if let Some(t) = token_url {
                m.insert("tokenUrl", t.clone());
            }
            m.insert("scopes", scopes.join(" "));
            if let Some(c) = client_id {
                m.insert("credentials.clientId", c.clone());
            }
        }
        _ => {}
    }
    m
}

/// The agent plan. `me.uid` is None for an object that is not in the cluster yet: then the
/// newest version must carry this spec's hash (its owner cannot be compared).
pub fn plan_agent(
    desired: &DesiredVersion,
    versions: &[AgentVersionObject],
    me: &ObjectId,
) -> AgentPlan {
    let newest = agent_definition::newest_version(versions);
    let plan = agent_definition::plan_version(versions, desired, me);
    let matches = match &me.uid {
        Some(_) => plan.served().is_some(),
        None => {
            matches!(plan, VersionPlan::AdoptAsIs(_))
                || newest.is_some_and(|v| {
                    v.metadata
                        .get(SPEC_HASH_KEY)
                        .and_then(|h| h.split(' ').next())
                        == Some(desired.spec_hash.as_str())
                })
        }
    };
    match newest {
        Some(v) if matches => AgentPlan::Nothing {
            version: v.version.clone(),
        },
        Some(v) => AgentPlan::NewVersion(version_diff(v, desired)),
        None => AgentPlan::NewVersion(vec!["+ agent: no version yet".to_owned()]),
    }
}

/// Lines for the definition fields that differ between the newest version and the request.
pub fn version_diff(live: &AgentVersionObject, desired: &DesiredVersion) -> Vec<String> {
    let live_def = serde_json::to_value(&live.definition).unwrap_or_default();
    let desired_def = serde_json::to_value(&desired.request.definition).unwrap_or_default();
    let empty = serde_json::Map::new();
    let (l, d) = (
        live_def.as_object().unwrap_or(&empty),
        desired_def.as_object().unwrap_or(&empty),
    );
    let mut out = Vec::new();
    for key in l
        .keys()
        .chain(d.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (lv, dv) = (l.get(key), d.get(key));
        if lv != dv {
            let text = |v: Option<&Value>| {
                v.map(|v| truncate(&v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            };
            line(
                &format!("definition.{key}"),
                text(lv).as_deref(),
                text(dv).as_deref(),
                &mut out,
            );
        }
    }
    if live.description != desired.request.description {
        line(
            "description",
            live.description.as_deref(),
            desired.request.description.as_deref(),
            &mut out,
        );
    }
    if out.is_empty() {
        out.push(format!(
            "~ version {}: same definition, but not this object's (another owner, or made by hand)",
            live.version
        ));
    }
    out
}

fn truncate(text: &str) -> String {
    const MAX: usize = 120;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foundry_gateway_api::PromptAgentSpec;
    use foundry_gateway_client::connections::ConnectionCategory;
    use serde_json::json;

    fn props(target: &str) -> ConnectionProperties {
        let mut p = ConnectionProperties::new(
            ConnectionCategory::ModelGateway,
            target,
            ConnectionAuth::ApiKey { key: None },
        );
        p.metadata.insert("deploymentInPath".into(), "false".into());
        p
    }

    #[test]
    fn a_missing_connection_is_created() {
        assert_eq!(
            plan_connection(&props("https://a.example.com"), None, false),
            ConnectionPlan::Create
        );
    }

    #[test]
    fn a_changed_target_is_an_update_with_a_diff_line() {
        let plan = plan_connection(
            &props("https://b.example.com"),
            Some(&props("https://a.example.com")),
            false,
        );
        assert_eq!(
            plan,
            ConnectionPlan::Update(vec![
                "~ target: \"https://a.example.com\" -> \"https://b.example.com\"".into()
            ])
        );
    }

    #[test]
    fn an_unchanged_connection_is_nothing_even_though_arm_hides_the_key() {
        let mut desired = props("https://a.example.com");
        desired.auth = ConnectionAuth::ApiKey {
            key: Some("k".into()),
        };
        assert_eq!(
            plan_connection(&desired, Some(&props("https://a.example.com")), false),
            ConnectionPlan::Nothing
        );
    }

    #[test]
    fn an_unmarked_connection_is_adopted_as_it_is_only_with_adopt() {
        let mut desired = props("https://a.example.com");
        desired.metadata.insert(
            build::MANAGED_BY_KEY.into(),
            "foundry-gateway-operator:team-a/gw".into(),
        );
        let live = props("https://a.example.com");
        assert_eq!(
            plan_connection(&desired, Some(&live), true),
            ConnectionPlan::Nothing
        );
        assert!(matches!(
            plan_connection(&desired, Some(&live), false),
            ConnectionPlan::Update(lines) if lines.iter().any(|l| l.contains("managedBy"))
        ));
        let mut moved = desired.clone();
        moved.target = "https://b.example.com".into();
        assert!(matches!(
            plan_connection(&moved, Some(&live), true),
            ConnectionPlan::Update(_)
        ));
    }

    #[test]
    fn metadata_and_header_changes_are_listed_without_header_values() {
        let mut desired = props("https://a.example.com");
        desired
            .metadata
            .insert("customHeaders".into(), r#"{"X-A":"secret-ish"}"#.into());
        desired
            .metadata
            .insert("deploymentInPath".into(), "true".into());
        let lines = connection_diff(&desired, &props("https://a.example.com"));
        assert_eq!(
            lines,
            [
                "+ metadata.customHeaders: headers [] -> [X-A] (values not shown)",
                "~ metadata.deploymentInPath: \"false\" -> \"true\""
            ]
        );
    }

    fn agent_spec(instructions: &str) -> PromptAgentSpec {
        serde_json::from_value(json!({
            "projectRef": {"name": "p"},
            "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
            "instructions": instructions,
        }))
        .unwrap()
    }

    fn live_version(desired: &DesiredVersion, version: &str) -> AgentVersionObject {
        let mut body = serde_json::to_value(&desired.request).unwrap();
        body["name"] = json!("helper");
        body["version"] = json!(version);
        body["created_at"] = json!(1);
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn changed_instructions_need_a_new_version_and_unchanged_ones_do_not() {
        let me = ObjectId::new("team", "helper", Some("uid-1"));
        let v1 = agent_definition::desired_version(
            &agent_spec("Be brief."),
            "gw",
            Some("Be brief."),
            &me,
        )
        .unwrap();
        let live = vec![live_version(&v1, "1")];
        assert_eq!(
            plan_agent(&v1, &live, &me),
            AgentPlan::Nothing {
                version: "1".into()
            }
        );
        let v2 = agent_definition::desired_version(
            &agent_spec("Be verbose."),
            "gw",
            Some("Be verbose."),
            &me,
        )
        .unwrap();
        match plan_agent(&v2, &live, &me) {
            AgentPlan::NewVersion(lines) => assert_eq!(
                lines,
                ["~ definition.instructions: \"Be brief.\" -> \"Be verbose.\""]
            ),
            other => panic!("expected a new version, got {other:?}"),
        }
        assert!(matches!(
            plan_agent(&v1, &[], &me),
            AgentPlan::NewVersion(_)
        ));
    }

    #[test]
    fn without_a_uid_the_hash_alone_decides() {
        let me = ObjectId::new("team", "helper", Some("uid-1"));
        let v1 =
            agent_definition::desired_version(&agent_spec("Hi"), "gw", Some("Hi"), &me).unwrap();
        let live = vec![live_version(&v1, "3")];
        let anonymous = ObjectId::new("team", "helper", None);
        assert!(matches!(
            plan_agent(&v1, &live, &anonymous),
            AgentPlan::Nothing { .. }
        ));
    }
}
