//! In-memory state of the emulated Foundry: connections, agents, conversations, responses.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::config::ProjectId;

/// Everything the emulator stores; guarded by one mutex that is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) projects: Vec<ProjectState>,
    /// The Foundry accounts of the served projects, each with its own connections.
    pub(crate) accounts: Vec<AccountState>,
    pub(crate) conversations: HashMap<String, Conversation>,
    pub(crate) responses: HashMap<String, StoredResponse>,
    /// Creation counter of conversations, items and responses (orders lists).
    pub(crate) counter: u64,
}

impl Store {
    pub(crate) fn next_order(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    pub(crate) fn new(projects: &[ProjectId]) -> Self {
        let mut accounts: Vec<AccountState> = Vec::new();
        for p in projects {
            if !accounts.iter().any(|a| a.id.same_account(p)) {
                accounts.push(AccountState {
                    id: p.clone(),
                    connections: BTreeMap::new(),
                });
            }
        }
        Self {
            accounts,
            projects: projects
                .iter()
                .map(|id| ProjectState {
                    id: id.clone(),
                    connections: BTreeMap::new(),
                    agents: BTreeMap::new(),
                    agent_counter: 0,
                })
                .collect(),
            ..Self::default()
        }
    }

    /// The project addressed by ARM path segments.
    pub(crate) fn arm_project(
        &mut self,
        sub: &str,
        rg: &str,
        account: &str,
        project: &str,
    ) -> Option<&mut ProjectState> {
        self.projects
            .iter_mut()
            .find(|p| p.id.matches(sub, rg, account, project))
    }

    /// The project addressed by the data-plane path segment.
    pub(crate) fn data_project(&mut self, project: &str) -> Option<&mut ProjectState> {
        self.projects
            .iter_mut()
            .find(|p| p.id.project.eq_ignore_ascii_case(project))
    }

    /// The account addressed by ARM path segments (one of a served project).
    pub(crate) fn arm_account(
        &mut self,
        sub: &str,
        rg: &str,
        account: &str,
    ) -> Option<&mut AccountState> {
        self.accounts
            .iter_mut()
            .find(|a| a.id.matches_account(sub, rg, account))
    }

    /// The connection named `name` that the data plane of `project` resolves (in
    /// `<connection>/<model>`): the project's own, else one of its account (every project of
    /// an account can use its connections: issue 12). A project connection shadows
    /// an account connection of the same name. No source found says which wins (the
    /// reference folder, the ARM spec and the Foundry docs are silent) [I]: the most specific
    /// scope winning is the usual rule, and it keeps a project's own agents from changing
    /// gateway when someone adds an account connection of the same name.
    pub(crate) fn visible_connection(
        &self,
        project: &str,
        name: &str,
    ) -> Option<(&StoredConnection, Scope)> {
        let key = name.to_ascii_lowercase();
        let p = self
            .projects
            .iter()
            .find(|p| p.id.project.eq_ignore_ascii_case(project))?;
        if let Some(c) = p.connections.get(&key) {
            return Some((c, Scope::Project));
        }
        self.accounts
            .iter()
            .find(|a| a.id.same_account(&p.id))
            .and_then(|a| a.connections.get(&key))
            .map(|c| (c, Scope::Account))
    }

    /// [`Store::visible_connection`], mutable (to cache what discovery found).
    pub(crate) fn visible_connection_mut(
        &mut self,
        project: &str,
        name: &str,
    ) -> Option<&mut StoredConnection> {
        let key = name.to_ascii_lowercase();
        let p = self
            .projects
            .iter_mut()
            .find(|p| p.id.project.eq_ignore_ascii_case(project))?;
        if p.connections.contains_key(&key) {
            return p.connections.get_mut(&key);
        }
        let id = p.id.clone();
        self.accounts
            .iter_mut()
            .find(|a| a.id.same_account(&id))
            .and_then(|a| a.connections.get_mut(&key))
    }

    /// Every connection the data plane of `project` can use: its own, then those of its
    /// account that no project connection shadows, each with its scope.
    pub(crate) fn visible_connections(&self, project: &str) -> Vec<(&StoredConnection, Scope)> {
        let Some(p) = self
            .projects
            .iter()
            .find(|p| p.id.project.eq_ignore_ascii_case(project))
        else {
            return Vec::new();
        };
        let mut out: Vec<(&StoredConnection, Scope)> = p
            .connections
            .values()
            .map(|c| (c, Scope::Project))
            .collect();
        if let Some(a) = self.accounts.iter().find(|a| a.id.same_account(&p.id)) {
            out.extend(
                a.connections
                    .iter()
                    .filter(|(key, _)| !p.connections.contains_key(*key))
                    .map(|(_, c)| (c, Scope::Account)),
            );
        }
        out
    }
}

/// Where a connection lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `accounts/{a}/projects/{p}/connections`.
    Project,
    /// `accounts/{a}/connections`: usable by every project of the account.
    Account,
}

/// One Foundry account's own resources (its connections).
#[derive(Debug)]
pub(crate) struct AccountState {
    /// A project of the account; only its subscription, resource group and account are used.
    pub(crate) id: ProjectId,
    /// Keyed by the lowercase name (ARM names are case-insensitive).
    pub(crate) connections: BTreeMap<String, StoredConnection>,
}

/// One project's resources.
#[derive(Debug)]
pub(crate) struct ProjectState {
    pub(crate) id: ProjectId,
    /// Keyed by the lowercase name (ARM names are case-insensitive).
    pub(crate) connections: BTreeMap<String, StoredConnection>,
    /// Keyed by agent name.
    pub(crate) agents: BTreeMap<String, Agent>,
    /// Creation counter, used to order agents.
    pub(crate) agent_counter: u64,
}

/// A stored project connection.
#[derive(Debug, Clone)]
pub(crate) struct StoredConnection {
    pub(crate) name: String,
    pub(crate) properties: Map<String, Value>,
    pub(crate) credentials: Option<Value>,
    pub(crate) created_ms: u64,
    pub(crate) modified_ms: u64,
    pub(crate) created_by: String,
    pub(crate) created_by_type: &'static str,
    pub(crate) modified_by: String,
    pub(crate) modified_by_type: &'static str,
    /// Bumped by every PUT/PATCH; discovery results of an older generation are discarded.
    pub(crate) generation: u64,
    /// Deployment names from the list endpoint, cached until the connection is written again.
    pub(crate) discovered: Option<Vec<String>>,
    /// Deployment names confirmed by the get-by-name endpoint.
    pub(crate) confirmed: BTreeSet<String>,
}

/// A prompt agent and its versions.
#[derive(Debug, Clone)]
pub(crate) struct Agent {
    pub(crate) name: String,
    /// Version number → `AgentVersionObject`.
    pub(crate) versions: BTreeMap<u64, Value>,
    pub(crate) next_version: u64,
    pub(crate) order: u64,
    /// `enabled` or `disabled` (`AgentObject.state`).
    pub(crate) state: String,
    /// `agent_guid` of its versions, fixed when the agent is created.
    pub(crate) guid: String,
}

impl Agent {
    /// The newest version that is not a draft: drafts are "excluded from default 'latest'
    /// resolution" (agents/models.tsp). An agent with drafts only falls back to its newest one,
    /// because an `AgentObject` always has `versions.latest`.
    pub(crate) fn latest(&self) -> Option<&Value> {
        self.versions
            .values()
            .rev()
            .find(|v| v.get("draft").and_then(Value::as_bool) != Some(true))
            .or_else(|| self.versions.values().next_back())
    }
}

/// An OpenAI-style conversation.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub(crate) id: String,
    pub(crate) project: String,
    pub(crate) created_at: u64,
    pub(crate) metadata: Value,
    /// (creation order, item) pairs, oldest first.
    pub(crate) items: Vec<(u64, Value)>,
}

impl Conversation {
    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        })
    }
}

/// A stored response and the chat messages that led to it (for `previous_response_id`).
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub(crate) project: String,
    pub(crate) order: u64,
    pub(crate) object: Value,
    pub(crate) messages: Vec<Value>,
    /// The request's own input items, normalised (`GET /responses/{id}/input_items`).
    pub(crate) input_items: Vec<Value>,
    /// Its server-sent events so far, in order, however it was asked for (replayed by
    /// `GET /responses/{id}?stream=true`).
    pub(crate) events: Vec<Value>,
    /// The task of a background response (aborted by cancel and delete).
    pub(crate) task: Option<tokio::task::AbortHandle>,
}
