//! `ProjectClient`: the Foundry project data plane (reference §2): agents and versions
//! (`api-version=v1`), and the OpenAI-compatible conversations and responses
//! (`{endpoint}/openai/v1`, no api-version).

mod models;
mod tools;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use http::Method;
use serde_json::Value;
use url::Url;

pub use models::*;
pub use tools::*;

use crate::credentials::DATA_PLANE_SCOPE;
use crate::error::{Error, ErrorKind, Result};
use crate::pipeline::{ClientOptions, Pipeline};
use crate::urls::{check_segment, join_segments, parse_endpoint};

/// Default data-plane api-version.
pub const DEFAULT_DATA_PLANE_API_VERSION: &str = "v1";

/// Most pages a collect-all call follows (a loop guard).
const MAX_PAGES: usize = 1000;

/// True when `name` is a valid agent name: 1–63 chars, ASCII alphanumeric at both ends,
/// alphanumerics and hyphens inside.
pub fn is_valid_agent_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() <= 63
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// The project data-plane endpoint `https://{account}.services.ai.azure.com/api/projects/{project}`.
pub fn default_project_endpoint(account: &str, project: &str) -> String {
    format!("https://{account}.services.ai.azure.com/api/projects/{project}")
}

/// Options of [`ProjectClient`].
#[derive(Clone, Debug)]
pub struct ProjectClientOptions {
    /// api-version of the project APIs (default `v1`).
    pub api_version: String,
    /// Timeout of `responses_create` (it waits for the model; default 120 s). Other calls use
    /// `client_options.timeout`.
    pub response_timeout: Duration,
    /// Transport, timeout, retries, observer.
    pub client_options: ClientOptions,
}

impl Default for ProjectClientOptions {
    fn default() -> Self {
        Self {
            api_version: DEFAULT_DATA_PLANE_API_VERSION.into(),
            response_timeout: Duration::from_secs(120),
            client_options: ClientOptions::default(),
        }
    }
}

/// Client of one Foundry project's data plane (scope [`DATA_PLANE_SCOPE`]). `get` and
/// `get_version` return `Ok(None)` on 404; deletes treat 404 as done.
pub struct ProjectClient {
    endpoint: Url,
    api_version: String,
    pipeline: Arc<Pipeline>,
    responses_pipeline: Arc<Pipeline>,
}

impl fmt::Debug for ProjectClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_version", &self.api_version)
            .finish_non_exhaustive()
    }
}

fn check_agent_name(op: &'static str, name: &str) -> Result<()> {
    if is_valid_agent_name(name) {
        Ok(())
    } else {
        Err(Error::invalid_input(
            op,
            format!(
                "agent name {name:?} must be 1-63 characters, alphanumeric at both ends, hyphens inside"
            ),
        ))
    }
}

fn not_found_is_none<T>(r: Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn not_found_is_ok<T>(r: Result<T>) -> Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

impl ProjectClient {
    /// A client for the project at `endpoint` (see [`default_project_endpoint`]; the emulator's
    /// `http://127.0.0.1:port/api/projects/p` works too).
    pub fn new(
        endpoint: &str,
        credential: Arc<dyn TokenCredential>,
        options: Option<ProjectClientOptions>,
    ) -> Result<Self> {
        let options = options.unwrap_or_default();
        let endpoint = parse_endpoint("ProjectClient_New", endpoint)?;
        if options.api_version.trim().is_empty() {
            return Err(Error::invalid_input(
                "ProjectClient_New",
                "api_version is empty",
            ));
        }
        let mut response_options = options.client_options.clone();
        response_options.timeout = options.response_timeout;
        let pipeline = Pipeline::new(
            "ProjectClient",
            credential.clone(),
            DATA_PLANE_SCOPE,
            options.client_options,
        )?;
        let responses_pipeline = Pipeline::new(
            "ProjectClient",
            credential,
            DATA_PLANE_SCOPE,
            response_options,
        )?;
        Ok(Self {
            endpoint,
            api_version: options.api_version,
            pipeline: Arc::new(pipeline),
            responses_pipeline: Arc::new(responses_pipeline),
        })
    }

    /// `{endpoint}/{segments…}?api-version=…` (pure; exposed for tests and logs).
    pub fn project_url(&self, segments: &[&str]) -> Url {
        let mut url = join_segments(&self.endpoint, segments);
        url.query_pairs_mut()
            .append_pair("api-version", &self.api_version);
        url
    }

    /// `{endpoint}/openai/v1/{segments…}` without api-version.
    pub fn openai_url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["openai", "v1"];
        all.extend_from_slice(segments);
        join_segments(&self.endpoint, &all)
    }

    /// `Agents_CreateVersion`: `POST /agents/{name}/versions`. Never retried (not idempotent):
    /// on a timeout, look for the version (e.g. by a hash in its metadata) before creating again.
    pub async fn create_version(
        &self,
        agent_name: &str,
        request: &CreateAgentVersionRequest,
    ) -> Result<AgentVersionObject> {
        const OP: &str = "Agents_CreateVersion";
        check_agent_name(OP, agent_name)?;
        let body = serde_json::to_vec(request).map_err(|e| {
            Error::invalid_input(OP, format!("could not serialise the request: {e}"))
        })?;
        let url = self.project_url(&["agents", agent_name, "versions"]);
        self.pipeline
            .send(OP, Method::POST, url, Some(body))
            .await?
            .json(OP)
    }

    /// `Agents_Get`: `Ok(None)` when the agent does not exist.
    pub async fn get(&self, agent_name: &str) -> Result<Option<AgentObject>> {
        const OP: &str = "Agents_Get";
        check_segment(OP, "agent name", agent_name)?;
        let url = self.project_url(&["agents", agent_name]);
        not_found_is_none(match self.pipeline.send(OP, Method::GET, url, None).await {
            Ok(r) => r.json(OP),
            Err(e) => Err(e),
        })
    }

    /// `Agents_GetVersion`: `Ok(None)` when the version does not exist.
    pub async fn get_version(
        &self,
        agent_name: &str,
        version: &str,
    ) -> Result<Option<AgentVersionObject>> {
        const OP: &str = "Agents_GetVersion";
        check_segment(OP, "agent name", agent_name)?;
        check_segment(OP, "agent version", version)?;
        let url = self.project_url(&["agents", agent_name, "versions", version]);
        not_found_is_none(match self.pipeline.send(OP, Method::GET, url, None).await {
            Ok(r) => r.json(OP),
            Err(e) => Err(e),
        })
    }

    /// One page of `Agents_List` (`GET /agents`).
    pub async fn list_agents_page(&self, options: &ListOptions) -> Result<ListPage<AgentObject>> {
        const OP: &str = "Agents_List";
        let mut url = self.project_url(&["agents"]);
        append_list_query(&mut url, options);
        self.pipeline
            .send(OP, Method::GET, url, None)
            .await?
            .json(OP)
    }

    /// Every agent of the project, following the pages as [`Self::list_versions`] does.
    pub async fn list_agents(&self, options: &ListOptions) -> Result<Vec<AgentObject>> {
        collect_pages(options.clone(), |o| async move {
            self.list_agents_page(&o).await
        })
        .await
    }

    /// One page of `Agents_ListVersions`.
    pub async fn list_versions_page(
        &self,
        agent_name: &str,
        options: &ListOptions,
    ) -> Result<ListPage<AgentVersionObject>> {
        const OP: &str = "Agents_ListVersions";
        check_segment(OP, "agent name", agent_name)?;
        let mut url = self.project_url(&["agents", agent_name, "versions"]);
        append_list_query(&mut url, options);
        self.pipeline
            .send(OP, Method::GET, url, None)
            .await?
            .json(OP)
    }

    /// Every version of an agent: follows `after=<last_id>` until a page has no `last_id`
    /// (as the official SDK does). A missing agent gives an empty list.
    pub async fn list_versions(
        &self,
        agent_name: &str,
        options: &ListOptions,
    ) -> Result<Vec<AgentVersionObject>> {
        match collect_pages(options.clone(), |o| async move {
            self.list_versions_page(agent_name, &o).await
        })
        .await
        {
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            other => other,
        }
    }

    /// `Agents_DeleteVersion`: 404 means already gone.
    pub async fn delete_version(&self, agent_name: &str, version: &str) -> Result<()> {
        const OP: &str = "Agents_DeleteVersion";
        check_segment(OP, "agent name", agent_name)?;
        check_segment(OP, "agent version", version)?;
        let url = self.project_url(&["agents", agent_name, "versions", version]);
        not_found_is_ok(self.pipeline.send(OP, Method::DELETE, url, None).await)
    }

    /// `Agents_Delete` (the agent and all its versions): 404 means already gone.
    pub async fn delete(&self, agent_name: &str) -> Result<()> {
        const OP: &str = "Agents_Delete";
        check_segment(OP, "agent name", agent_name)?;
        let url = self.project_url(&["agents", agent_name]);
        not_found_is_ok(self.pipeline.send(OP, Method::DELETE, url, None).await)
    }

    /// `Conversations_Create`: `POST /openai/v1/conversations`.
    pub async fn conversations_create(
        &self,
        request: &CreateConversationRequest,
    ) -> Result<Conversation> {
        const OP: &str = "Conversations_Create";
        let body = serde_json::to_vec(request).map_err(|e| {
            Error::invalid_input(OP, format!("could not serialise the request: {e}"))
        })?;
        let url = self.openai_url(&["conversations"]);
        self.pipeline
            .send(OP, Method::POST, url, Some(body))
            .await?
            .json(OP)
    }

    /// `Conversations_Delete`: 404 means already gone.
    pub async fn conversations_delete(&self, conversation_id: &str) -> Result<()> {
        const OP: &str = "Conversations_Delete";
        check_segment(OP, "conversation id", conversation_id)?;
        let url = self.openai_url(&["conversations", conversation_id]);
        not_found_is_ok(self.pipeline.send(OP, Method::DELETE, url, None).await)
    }

    /// `Responses_Create` with an agent reference (top-level `agent_reference`) or with a model
    /// and no agent ([`CreateResponseRequest::for_model`]). Never retried. A response whose
    /// `status` is `failed` is returned as an error carrying its message.
    ///
    /// A request must name exactly one of the two; Foundry's error answers (a gateway that could
    /// not be used, a model or connection it does not know) come back as [`Error`] with the HTTP
    /// status and the service's `error.code`.
    pub async fn responses_create(&self, request: &CreateResponseRequest) -> Result<AgentResponse> {
        const OP: &str = "Responses_Create";
        match (&request.agent_reference, &request.model) {
            (Some(_), None) => {}
            (None, Some(m)) if !m.trim().is_empty() => {}
            (None, Some(_)) => return Err(Error::invalid_input(OP, "model is empty")),
            _ => {
                return Err(Error::invalid_input(
                    OP,
                    "a response needs exactly one of an agent reference and a model",
                ));
            }
        }
        let body = serde_json::to_vec(request).map_err(|e| {
            Error::invalid_input(OP, format!("could not serialise the request: {e}"))
        })?;
        let url = self.openai_url(&["responses"]);
        let rsp = self
            .responses_pipeline
            .send(OP, Method::POST, url, Some(body))
            .await?;
        let status = rsp.status.as_u16();
        let raw: Value = rsp.json(OP)?;
        let response = AgentResponse::from_value(&raw);
        if response.status.as_deref() == Some("failed") {
            let err = response.error.clone().unwrap_or(Value::Null);
            let code = err.get("code").and_then(Value::as_str).map(str::to_owned);
            let message = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the response failed")
                .to_owned();
            return Err(Error::new(ErrorKind::InvalidResponse, OP, message)
                .with_status(Some(status))
                .with_code(code));
        }
        Ok(response)
    }
}

fn append_list_query(url: &mut Url, options: &ListOptions) {
    let mut q = url.query_pairs_mut();
    if let Some(l) = options.limit {
        q.append_pair("limit", &l.to_string());
    }
    if let Some(o) = &options.order {
        q.append_pair("order", o.as_str());
    }
    if let Some(a) = &options.after {
        q.append_pair("after", a);
    }
    if let Some(b) = &options.before {
        q.append_pair("before", b);
    }
}

/// The cursor for the page after `page`, given the cursor that fetched it: `last_id`, unless
/// the service says there is no more (`has_more: false`; the Python pager ignores it and asks
/// once more, which costs a call per listing), or `last_id` is missing, empty, or did not move
/// (a loop guard).
pub fn next_cursor<T>(page: &ListPage<T>, previous: Option<&str>) -> Option<String> {
    if page.has_more == Some(false) {
        return None;
    }
    match page.last_id.as_deref() {
        Some(id) if !id.is_empty() && Some(id) != previous => Some(id.to_owned()),
        _ => None,
    }
}

/// Collect every item of a cursor-paged list: call `fetch` with `after` set to the previous
/// page's `last_id` until there is none. Generic so it can be tested without HTTP.
pub async fn collect_pages<T, F, Fut>(first: ListOptions, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: Future<Output = Result<ListPage<T>>>,
{
    let mut items = Vec::new();
    let mut options = first;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let page = fetch(options.clone()).await?;
        let next = next_cursor(&page, options.after.as_deref());
        items.extend(page.data);
        match next {
            Some(cursor) if seen.insert(cursor.clone()) => options.after = Some(cursor),
            _ => return Ok(items),
        }
    }
    Err(Error::new(
        ErrorKind::InvalidResponse,
        "ListPages",
        format!("more than {MAX_PAGES} pages; giving up"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::StaticTokenCredential;
    use std::sync::Mutex;

    #[test]
    fn agent_names() {
        assert!(is_valid_agent_name("a"));
        assert!(is_valid_agent_name("my-agent-1"));
        assert!(!is_valid_agent_name("-a"));
        assert!(!is_valid_agent_name("a-"));
        assert!(!is_valid_agent_name("a_b"));
        assert!(!is_valid_agent_name(""));
        assert!(!is_valid_agent_name(&"a".repeat(64)));
        assert!(is_valid_agent_name(&"a".repeat(63)));
    }

    #[test]
    fn urls() {
        let c = ProjectClient::new(
            &default_project_endpoint("acct", "proj"),
            StaticTokenCredential::new("t"),
            None,
        )
        .unwrap();
        assert_eq!(
            c.project_url(&["agents", "a1", "versions"]).as_str(),
            "https://acct.services.ai.azure.com/api/projects/proj/agents/a1/versions?api-version=v1"
        );
        assert_eq!(
            c.openai_url(&["responses"]).as_str(),
            "https://acct.services.ai.azure.com/api/projects/proj/openai/v1/responses"
        );
        let mut u = c.project_url(&["agents", "a1", "versions"]);
        append_list_query(
            &mut u,
            &ListOptions {
                limit: Some(2),
                order: Some(ListOrder::Asc),
                after: Some("a1:2".into()),
                before: None,
            },
        );
        assert!(
            u.as_str()
                .ends_with("?api-version=v1&limit=2&order=asc&after=a1%3A2")
        );
    }

    fn page(ids: &[&str], last: Option<&str>) -> ListPage<String> {
        ListPage {
            data: ids.iter().map(|s| s.to_string()).collect(),
            first_id: ids.first().map(|s| s.to_string()),
            last_id: last.map(str::to_owned),
            has_more: None,
        }
    }

    #[test]
    fn cursors() {
        assert_eq!(
            next_cursor(&page(&["a"], Some("a")), None),
            Some("a".into())
        );
        assert_eq!(next_cursor(&page(&[], None), Some("a")), None);
        assert_eq!(next_cursor(&page(&["a"], Some("a")), Some("a")), None);
        assert_eq!(next_cursor(&page(&[], Some("")), None), None);
    }

    #[test]
    fn a_page_that_says_there_is_no_more_ends_the_listing() {
        let page = ListPage::<u32> {
            data: vec![1],
            first_id: Some("a".into()),
            last_id: Some("b".into()),
            has_more: Some(false),
        };
        assert_eq!(next_cursor(&page, None), None);
        let more = ListPage::<u32> {
            has_more: Some(true),
            ..page
        };
        assert_eq!(next_cursor(&more, None).as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn collect_follows_last_id_until_absent() {
        // Pages like the SDK expects: the last page has last_id; one more empty page ends it.
        let calls = Mutex::new(Vec::new());
        let items = collect_pages(
            ListOptions {
                limit: Some(2),
                ..Default::default()
            },
            |o| {
                calls.lock().unwrap().push(o.after.clone());
                let p = match o.after.as_deref() {
                    None => page(&["v1", "v2"], Some("v2")),
                    Some("v2") => page(&["v3"], Some("v3")),
                    Some("v3") => page(&[], None),
                    other => panic!("unexpected cursor {other:?}"),
                };
                async move { Ok(p) }
            },
        )
        .await
        .unwrap();
        assert_eq!(items, vec!["v1", "v2", "v3"]);
        assert_eq!(
            *calls.lock().unwrap(),
            vec![None, Some("v2".into()), Some("v3".into())]
        );
    }

    #[tokio::test]
    async fn collect_stops_on_a_cursor_that_repeats() {
        let n = Mutex::new(0);
        let items = collect_pages(ListOptions::default(), |_| {
            *n.lock().unwrap() += 1;
            async { Ok(page(&["x"], Some("x"))) }
        })
        .await
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(*n.lock().unwrap(), 2);
    }

    #[tokio::test]
    async fn collect_propagates_errors() {
        let r: Result<Vec<String>> = collect_pages(ListOptions::default(), |_| async {
            Err(Error::http("Op", 500, None, "boom"))
        })
        .await;
        assert_eq!(r.unwrap_err().status(), Some(500));
    }
}
