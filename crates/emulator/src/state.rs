//! In-memory state of the emulated Foundry: connections, agents, conversations, responses.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::config::ProjectId;

/// Everything the emulator stores; guarded by one mutex that is never held across an await.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) projects: Vec<ProjectState>,
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
        Self {
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
}

impl Agent {
    pub(crate) fn latest(&self) -> Option<&Value> {
        self.versions.values().next_back()
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
}
