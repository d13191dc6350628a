//! Maps a method and path to a named operation.

use http::Method;

use crate::errors::Plane;

/// ARM project-connection operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ArmOp {
    Create,
    Get,
    Update,
    Delete,
    List,
    MethodNotAllowed,
}

/// Data-plane operations (project APIs and the OpenAI-compatible surface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DataOp {
    AgentsList,
    AgentsCreate,
    AgentsGet(String),
    AgentsUpdate(String),
    AgentsDelete(String),
    /// `POST /agents/{name}:enable`.
    AgentsEnable(String),
    /// `POST /agents/{name}:disable`.
    AgentsDisable(String),
    VersionsCreate(String),
    VersionsList(String),
    VersionsGet(String, String),
    VersionsDelete(String, String),
    ConversationsCreate,
    ConversationsGet(String),
    ConversationsUpdate(String),
    ConversationsDelete(String),
    ItemsCreate(String),
    ItemsList(String),
    ItemsGet(String, String),
    ItemsDelete(String, String),
    ResponsesCreate,
    ResponsesList,
    ResponsesGet(String),
    ResponsesDelete(String),
    ResponsesCancel(String),
    ResponsesInputItems(String),
    ConnectionsList,
    ConnectionsGet(String),
    /// `POST /connections/{name}/getConnectionWithCredentials`.
    ConnectionsGetWithCredentials(String),
    DeploymentsList,
    DeploymentsGet(String),
    MethodNotAllowed,
    NotFound,
}

impl DataOp {
    /// Whether the operation belongs to the OpenAI-compatible surface (no api-version).
    pub(crate) fn is_openai(&self) -> bool {
        !self.is_agents() && !self.is_platform()
    }

    /// Agents and their versions (`/agents…`, api-version `v1`).
    pub(crate) fn is_agents(&self) -> bool {
        matches!(
            self,
            Self::AgentsList
                | Self::AgentsCreate
                | Self::AgentsGet(_)
                | Self::AgentsUpdate(_)
                | Self::AgentsDelete(_)
                | Self::AgentsEnable(_)
                | Self::AgentsDisable(_)
                | Self::VersionsCreate(_)
                | Self::VersionsList(_)
                | Self::VersionsGet(..)
                | Self::VersionsDelete(..)
        )
    }

    /// The older platform APIs (connections, deployments): api-version `v1`, Azure.Core paging
    /// (`value`, `nextLink`) and Azure.Core error bodies (reference §2.6, §2.7).
    pub(crate) fn is_platform(&self) -> bool {
        matches!(
            self,
            Self::ConnectionsList
                | Self::ConnectionsGet(_)
                | Self::ConnectionsGetWithCredentials(_)
                | Self::DeploymentsList
                | Self::DeploymentsGet(_)
        )
    }
}

/// A routed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Arm {
        subscription: String,
        resource_group: String,
        account: String,
        /// `None` for the account's own connections (`accounts/{a}/connections`).
        project: Option<String>,
        connection: Option<String>,
        op: ArmOp,
    },
    Data {
        project: String,
        op: DataOp,
    },
    /// Under `/subscriptions` but not a connection path.
    ArmUnknown,
    /// Anything else.
    Unknown,
}

impl Route {
    pub(crate) fn plane(&self) -> Plane {
        match self {
            Self::Arm { .. } | Self::ArmUnknown => Plane::Arm,
            Self::Data { .. } | Self::Unknown => Plane::Data,
        }
    }

    /// The REST operation id, as used by `/_emulator/requests` and fault rules.
    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Self::Arm {
                op, project: None, ..
            } => match op {
                ArmOp::Create => "AccountConnections_Create",
                ArmOp::Get => "AccountConnections_Get",
                ArmOp::Update => "AccountConnections_Update",
                ArmOp::Delete => "AccountConnections_Delete",
                ArmOp::List => "AccountConnections_List",
                ArmOp::MethodNotAllowed => "MethodNotAllowed",
            },
            Self::Arm { op, .. } => match op {
                ArmOp::Create => "ProjectConnections_Create",
                ArmOp::Get => "ProjectConnections_Get",
                ArmOp::Update => "ProjectConnections_Update",
                ArmOp::Delete => "ProjectConnections_Delete",
                ArmOp::List => "ProjectConnections_List",
                ArmOp::MethodNotAllowed => "MethodNotAllowed",
            },
            Self::Data { op, .. } => match op {
                DataOp::AgentsList => "Agents_List",
                DataOp::AgentsCreate => "Agents_Create",
                DataOp::AgentsGet(_) => "Agents_Get",
                DataOp::AgentsUpdate(_) => "Agents_Update",
                DataOp::AgentsDelete(_) => "Agents_Delete",
                DataOp::AgentsEnable(_) => "Agents_Enable",
                DataOp::AgentsDisable(_) => "Agents_Disable",
                DataOp::VersionsCreate(_) => "Agents_CreateVersion",
                DataOp::VersionsList(_) => "Agents_ListVersions",
                DataOp::VersionsGet(..) => "Agents_GetVersion",
                DataOp::VersionsDelete(..) => "Agents_DeleteVersion",
                DataOp::ConversationsCreate => "Conversations_Create",
                DataOp::ConversationsGet(_) => "Conversations_Retrieve",
                DataOp::ConversationsUpdate(_) => "Conversations_Update",
                DataOp::ConversationsDelete(_) => "Conversations_Delete",
                DataOp::ItemsCreate(_) => "ConversationItems_Create",
                DataOp::ItemsList(_) => "ConversationItems_List",
                DataOp::ItemsGet(..) => "ConversationItems_Retrieve",
                DataOp::ItemsDelete(..) => "ConversationItems_Delete",
                DataOp::ResponsesCreate => "Responses_Create",
                DataOp::ResponsesList => "Responses_List",
                DataOp::ResponsesGet(_) => "Responses_Get",
                DataOp::ResponsesDelete(_) => "Responses_Delete",
                DataOp::ResponsesCancel(_) => "Responses_Cancel",
                DataOp::ResponsesInputItems(_) => "Responses_ListInputItems",
                DataOp::ConnectionsList => "Connections_List",
                DataOp::ConnectionsGet(_) => "Connections_Get",
                DataOp::ConnectionsGetWithCredentials(_) => "Connections_GetWithCredentials",
                DataOp::DeploymentsList => "Deployments_List",
                DataOp::DeploymentsGet(_) => "Deployments_Get",
                DataOp::MethodNotAllowed => "MethodNotAllowed",
                DataOp::NotFound => "NotFound",
            },
            Self::ArmUnknown | Self::Unknown => "NotFound",
        }
    }
}

/// Decodes `%XX` escapes of one path segment; `None` when the escapes are malformed or the
/// result is not UTF-8.
fn decode_segment(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Routes a request path (without query).
pub(crate) fn route(method: &Method, path: &str) -> Route {
    let raw: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let Some(segs) = raw
        .iter()
        .map(|s| decode_segment(s))
        .collect::<Option<Vec<String>>>()
    else {
        return Route::Unknown;
    };
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if s.first().is_some_and(|f| eq(f, "subscriptions")) {
        return route_arm(method, &s);
    }
    if s.len() >= 3 && s[0] == "api" && s[1] == "projects" {
        let project = s[2].to_string();
        let op = route_data(method, &s[3..]);
        return Route::Data { project, op };
    }
    Route::Unknown
}

fn route_arm(method: &Method, s: &[&str]) -> Route {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{a}/projects/{p}/connections[/{c}]
    // or, for the account's own connections, .../accounts/{a}/connections[/{c}]
    let account_ok = s.len() >= 9
        && eq(s[2], "resourceGroups")
        && eq(s[4], "providers")
        && eq(s[5], "Microsoft.CognitiveServices")
        && eq(s[6], "accounts");
    let (project, at) = if account_ok
        && (s.len() == 11 || s.len() == 12)
        && eq(s[8], "projects")
        && eq(s[10], "connections")
    {
        (Some(s[9].to_string()), 11)
    } else if account_ok && (s.len() == 9 || s.len() == 10) && eq(s[8], "connections") {
        (None, 9)
    } else {
        return Route::ArmUnknown;
    };
    let connection = s.get(at).map(|c| (*c).to_string());
    let op = match (method.as_str(), connection.is_some()) {
        ("PUT", true) => ArmOp::Create,
        ("GET", true) => ArmOp::Get,
        ("PATCH", true) => ArmOp::Update,
        ("DELETE", true) => ArmOp::Delete,
        ("GET", false) => ArmOp::List,
        _ => ArmOp::MethodNotAllowed,
    };
    Route::Arm {
        subscription: s[1].to_string(),
        resource_group: s[3].to_string(),
        account: s[7].to_string(),
        project,
        connection,
        op,
    }
}

fn route_data(method: &Method, s: &[&str]) -> DataOp {
    let m = method.as_str();
    let own = |v: &str| v.to_string();
    match s {
        ["agents"] => match m {
            "GET" => DataOp::AgentsList,
            "POST" => DataOp::AgentsCreate,
            _ => DataOp::MethodNotAllowed,
        },
        ["agents", action] if action.contains(':') => match (m, action.rsplit_once(':')) {
            ("POST", Some((name, "enable"))) => DataOp::AgentsEnable(own(name)),
            ("POST", Some((name, "disable"))) => DataOp::AgentsDisable(own(name)),
            (_, Some((_, "enable" | "disable"))) => DataOp::MethodNotAllowed,
            _ => DataOp::NotFound,
        },
        ["agents", name] => match m {
            "GET" => DataOp::AgentsGet(own(name)),
            "POST" => DataOp::AgentsUpdate(own(name)),
            "DELETE" => DataOp::AgentsDelete(own(name)),
            _ => DataOp::MethodNotAllowed,
        },
        ["agents", name, "versions"] => match m {
            "GET" => DataOp::VersionsList(own(name)),
            "POST" => DataOp::VersionsCreate(own(name)),
            _ => DataOp::MethodNotAllowed,
        },
        ["agents", name, "versions", v] => match m {
            "GET" => DataOp::VersionsGet(own(name), own(v)),
            "DELETE" => DataOp::VersionsDelete(own(name), own(v)),
            _ => DataOp::MethodNotAllowed,
        },
        ["connections"] => match m {
            "GET" => DataOp::ConnectionsList,
            _ => DataOp::MethodNotAllowed,
        },
        ["connections", name] => match m {
            "GET" => DataOp::ConnectionsGet(own(name)),
            _ => DataOp::MethodNotAllowed,
        },
        ["connections", name, "getConnectionWithCredentials"] => match m {
            "POST" => DataOp::ConnectionsGetWithCredentials(own(name)),
            _ => DataOp::MethodNotAllowed,
        },
        ["deployments"] => match m {
            "GET" => DataOp::DeploymentsList,
            _ => DataOp::MethodNotAllowed,
        },
        // A gateway model is the deployment `<connection>/<model>`: the SDK escapes the slash
        // (`%2F`, one segment), a hand-written URL may not (two segments).
        ["deployments", name] => match m {
            "GET" => DataOp::DeploymentsGet(own(name)),
            _ => DataOp::MethodNotAllowed,
        },
        ["deployments", connection, model] => match m {
            "GET" => DataOp::DeploymentsGet(format!("{connection}/{model}")),
            _ => DataOp::MethodNotAllowed,
        },
        ["openai", "v1", rest @ ..] => route_openai(m, rest),
        _ => DataOp::NotFound,
    }
}

fn route_openai(m: &str, s: &[&str]) -> DataOp {
    let own = |v: &str| v.to_string();
    match s {
        ["conversations"] => match m {
            "POST" => DataOp::ConversationsCreate,
            _ => DataOp::MethodNotAllowed,
        },
        ["conversations", id] => match m {
            "GET" => DataOp::ConversationsGet(own(id)),
            "POST" => DataOp::ConversationsUpdate(own(id)),
            "DELETE" => DataOp::ConversationsDelete(own(id)),
            _ => DataOp::MethodNotAllowed,
        },
        ["conversations", id, "items"] => match m {
            "GET" => DataOp::ItemsList(own(id)),
            "POST" => DataOp::ItemsCreate(own(id)),
            _ => DataOp::MethodNotAllowed,
        },
        ["conversations", id, "items", item] => match m {
            "GET" => DataOp::ItemsGet(own(id), own(item)),
            "DELETE" => DataOp::ItemsDelete(own(id), own(item)),
            _ => DataOp::MethodNotAllowed,
        },
        ["responses"] => match m {
            "GET" => DataOp::ResponsesList,
            "POST" => DataOp::ResponsesCreate,
            _ => DataOp::MethodNotAllowed,
        },
        ["responses", id] => match m {
            "GET" => DataOp::ResponsesGet(own(id)),
            "DELETE" => DataOp::ResponsesDelete(own(id)),
            _ => DataOp::MethodNotAllowed,
        },
        ["responses", id, "cancel"] => match m {
            "POST" => DataOp::ResponsesCancel(own(id)),
            _ => DataOp::MethodNotAllowed,
        },
        ["responses", id, "input_items"] => match m {
            "GET" => DataOp::ResponsesInputItems(own(id)),
            _ => DataOp::MethodNotAllowed,
        },
        _ => DataOp::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONN: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/projects/p/connections";

    #[test]
    fn arm_paths_route_to_connection_operations() {
        let r = route(&Method::PUT, &format!("{CONN}/gw"));
        assert_eq!(r.operation(), "ProjectConnections_Create");
        assert_eq!(r.plane(), Plane::Arm);
        assert_eq!(
            route(&Method::GET, CONN).operation(),
            "ProjectConnections_List"
        );
        assert_eq!(
            route(&Method::DELETE, &format!("{CONN}/gw")).operation(),
            "ProjectConnections_Delete"
        );
        assert_eq!(
            route(&Method::PATCH, &format!("{CONN}/gw")).operation(),
            "ProjectConnections_Update"
        );
        // ARM literals are case-insensitive.
        let lower = CONN.to_lowercase();
        assert_eq!(
            route(&Method::GET, &format!("{lower}/gw")).operation(),
            "ProjectConnections_Get"
        );
        assert_eq!(
            route(&Method::GET, "/subscriptions/s/resourceGroups").operation(),
            "NotFound"
        );
    }

    #[test]
    fn account_paths_route_to_account_connection_operations() {
        const ACCOUNT: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a/connections";
        let r = route(&Method::PUT, &format!("{ACCOUNT}/gw"));
        assert_eq!(r.operation(), "AccountConnections_Create");
        assert_eq!(r.plane(), Plane::Arm);
        assert!(matches!(r, Route::Arm { project: None, .. }));
        for (method, path, op) in [
            (Method::GET, ACCOUNT.to_string(), "AccountConnections_List"),
            (
                Method::GET,
                format!("{ACCOUNT}/gw"),
                "AccountConnections_Get",
            ),
            (
                Method::PATCH,
                format!("{ACCOUNT}/gw"),
                "AccountConnections_Update",
            ),
            (
                Method::DELETE,
                format!("{ACCOUNT}/gw"),
                "AccountConnections_Delete",
            ),
            (Method::POST, format!("{ACCOUNT}/gw"), "MethodNotAllowed"),
            (
                Method::GET,
                ACCOUNT.replace("/connections", "/deployments"),
                "NotFound",
            ),
        ] {
            assert_eq!(route(&method, &path).operation(), op, "{method} {path}");
        }
        assert!(matches!(
            route(&Method::GET, &format!("{CONN}/gw")),
            Route::Arm { project: Some(p), .. } if p == "p"
        ));
    }

    #[test]
    fn data_paths_route_to_agent_and_openai_operations() {
        let r = route(&Method::POST, "/api/projects/p/agents/a1/versions");
        assert_eq!(
            r,
            Route::Data {
                project: "p".into(),
                op: DataOp::VersionsCreate("a1".into())
            }
        );
        assert_eq!(r.operation(), "Agents_CreateVersion");
        assert_eq!(
            route(&Method::POST, "/api/projects/p/openai/v1/responses").operation(),
            "Responses_Create"
        );
        assert_eq!(
            route(
                &Method::GET,
                "/api/projects/p/openai/v1/conversations/c1/items"
            )
            .operation(),
            "ConversationItems_List"
        );
        assert_eq!(route(&Method::GET, "/elsewhere").operation(), "NotFound");
        assert_eq!(
            route(&Method::PUT, "/api/projects/p/agents").operation(),
            "MethodNotAllowed"
        );
    }

    #[test]
    fn platform_paths_and_agent_actions_route_by_name() {
        let op = |m: &Method, p: &str| match route(m, p) {
            Route::Data { op, .. } => op,
            other => panic!("{p} routed to {other:?}"),
        };
        assert_eq!(
            op(&Method::GET, "/api/projects/p/connections"),
            DataOp::ConnectionsList
        );
        assert_eq!(
            op(
                &Method::POST,
                "/api/projects/p/connections/gw/getConnectionWithCredentials"
            ),
            DataOp::ConnectionsGetWithCredentials("gw".into())
        );
        assert_eq!(
            op(&Method::GET, "/api/projects/p/deployments/gw%2Fgpt-4o"),
            DataOp::DeploymentsGet("gw/gpt-4o".into())
        );
        assert_eq!(
            op(&Method::GET, "/api/projects/p/deployments/gw/gpt-4o"),
            DataOp::DeploymentsGet("gw/gpt-4o".into())
        );
        assert_eq!(
            op(&Method::POST, "/api/projects/p/agents/a1:disable"),
            DataOp::AgentsDisable("a1".into())
        );
        assert_eq!(
            op(
                &Method::POST,
                "/api/projects/p/openai/v1/responses/r1/cancel"
            ),
            DataOp::ResponsesCancel("r1".into())
        );
        assert_eq!(
            op(
                &Method::GET,
                "/api/projects/p/openai/v1/responses/r1/input_items"
            ),
            DataOp::ResponsesInputItems("r1".into())
        );
        assert!(DataOp::DeploymentsList.is_platform());
        assert!(!DataOp::DeploymentsList.is_openai());
        assert!(DataOp::AgentsEnable("a".into()).is_agents());
        assert!(DataOp::ResponsesCancel("r".into()).is_openai());
    }

    #[test]
    fn escaped_segments_are_decoded() {
        assert_eq!(decode_segment("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode_segment("bad%zz"), None);
    }
}
