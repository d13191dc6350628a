//! Step "resolve": what the spec references. The instructions (inline, or a ConfigMap key of
//! this namespace), then (after validation) the FoundryProject, the GatewayConnection and the
//! model it must offer. IO reads the apiserver and the stores; [`check_references`] is pure.

use std::sync::Arc;

use foundry_gateway_api::conditions::reasons;
use foundry_gateway_api::connection::ConnectionScope;
use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use foundry_gateway_client::connections::ProjectResourceId;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::message_of;
use super::pass::Keys;
use super::report::{self, Check, ConnectionFacts};
use crate::context::Context;
use crate::failure::Failure;
use crate::project::{self, ResolvedProject};

/// What the spec references, resolved.
pub(super) struct Resolved {
    /// The instructions' text.
    pub instructions: Option<String>,
    /// The Foundry agent name (validated).
    pub agent_name: String,
    /// The FoundryProject, with its clients.
    pub project: Arc<ResolvedProject>,
    /// The verdicts on the connection and the model.
    pub references: References,
}

/// The `ConnectionResolved` and `ModelResolved` verdicts, and the connection's facts when both
/// passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct References {
    /// `ConnectionResolved`.
    pub connection: Check,
    /// `ModelResolved` (`None` when the connection did not resolve).
    pub model: Option<Check>,
    /// The connection's facts (`None` when a check failed).
    pub facts: Option<ConnectionFacts>,
    /// The connection is missing or still works toward a verdict
    /// ([`report::connection_settling`]).
    pub settling: bool,
}

impl References {
    /// The `ConnectionResolved` and `ModelResolved` checks, for the report.
    pub fn checks(&self) -> (Option<Check>, Option<Check>) {
        (Some(self.connection.clone()), self.model.clone())
    }

    /// The connection's facts, or the failed check as a failure that waits for the connection.
    pub fn usable(&self) -> Result<&ConnectionFacts, Failure> {
        let failed = [Some(&self.connection), self.model.as_ref()]
            .into_iter()
            .flatten()
            .find(|check| !check.ok);
        match (failed, &self.facts) {
            (None, Some(facts)) => Ok(facts),
            (Some(check), _) => Err(Failure::Waiting {
                reason: check.reason.clone(),
                message: check.message.clone(),
            }),
            (None, None) => Err(Failure::Waiting {
                reason: reasons::CONNECTION_NOT_READY.to_owned(),
                message: self.connection.message.clone(),
            }),
        }
    }
}

/// The instructions: inline, or the value of the `instructionsFrom` ConfigMap key. A missing
/// ConfigMap or key is transient during the grace period (it may be applied right after the
/// agent), then permanent.
pub(super) async fn instructions(
    ctx: &Context,
    agent: &PromptAgent,
    keys: &Keys,
) -> Result<Option<String>, Failure> {
    // Both set is refused by validate; the inline text is enough to get there.
    if let Some(text) = &agent.spec.instructions {
        return Ok(Some(text.clone()));
    }
    let Some(from) = &agent.spec.instructions_from else {
        return Ok(None);
    };
    let namespace = agent.namespace().unwrap_or_default();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let config_map = api.get_opt(&from.name).await?;
    let missing = keys.config_map(&from.name, &from.key);
    if let Some(value) = config_map.as_ref().and_then(|cm| text_of(cm, &from.key)) {
        ctx.found(&missing);
        return Ok(Some(value));
    }
    let what = if config_map.is_some() {
        format!(
            "spec.instructionsFrom: ConfigMap {} has no text key {:?}",
            from.name, from.key
        )
    } else {
        format!(
            "spec.instructionsFrom: ConfigMap {} does not exist in namespace {namespace}",
            from.name
        )
    };
    Err(crate::controller::references::missing(
        ctx,
        &missing,
        reasons::CONFIG_MAP_NOT_FOUND,
        &what,
    ))
}

/// The text of `key` in a ConfigMap: its data, else its binary data when that is UTF-8.
fn text_of(config_map: &ConfigMap, key: &str) -> Option<String> {
    config_map
        .data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .or_else(|| {
            config_map
                .binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        })
}

/// The project (usable, with its clients), then the connection and the model, from the stores;
/// `instructions` and `agent_name` come from the steps before.
pub(super) async fn resolve(
    ctx: &Context,
    agent: &PromptAgent,
    instructions: Option<String>,
    agent_name: String,
) -> Result<Resolved, Failure> {
    let namespace = agent.namespace().unwrap_or_default();
    let project = project::usable(ctx, &namespace, &agent.spec.project_ref.name).await?;
    let connection = ctx.stores.connections.get(
        &ObjectRef::<GatewayConnection>::new(&agent.spec.model.connection_ref.name)
            .within(&namespace),
    );
    // The project of an account-scope connection decides whether it serves ours.
    let theirs = connection.as_deref().and_then(|gc| {
        (gc.spec.scope.unwrap_or_default() == ConnectionScope::Account).then(|| {
            ctx.stores.projects.get(
                &ObjectRef::<FoundryProject>::new(&gc.spec.project_ref.name).within(&namespace),
            )
        })?
    });
    let references = check_references(
        agent,
        connection.as_deref(),
        theirs.as_deref(),
        &project.resource_id,
    );
    Ok(Resolved {
        instructions,
        agent_name,
        project,
        references,
    })
}

/// `ConnectionResolved` and `ModelResolved`: the connection is Ready at its generation and serves
/// the agent's project (`their_project`: the connection's FoundryProject, looked up for an
/// account-scope connection; `mine`: the agent's project), then it offers the model. Pure.
pub(super) fn check_references(
    agent: &PromptAgent,
    gc: Option<&GatewayConnection>,
    their_project: Option<&FoundryProject>,
    mine: &ProjectResourceId,
) -> References {
    let name = &agent.spec.model.connection_ref.name;
    let (facts, connection) = match report::check_connection(gc, name) {
        Ok(found) => found,
        Err(check) => {
            return References {
                settling: report::connection_settling(gc),
                ..References::failed(check)
            };
        }
    };
    if let Some(gc) = gc
        && let Err(message) = connection_reachable(agent, gc, their_project, mine)
    {
        return References::failed(Check::fail(reasons::CONNECTION_NOT_READY, message));
    }
    let model = report::check_model(&facts, name, &agent.spec.model.name);
    References {
        connection,
        facts: model.ok.then_some(facts),
        model: Some(model),
        settling: false,
    }
}

impl References {
    fn failed(connection: Check) -> Self {
        Self {
            connection,
            model: None,
            facts: None,
            settling: false,
        }
    }
}

/// Whether the agent's project can use the connection: a project-scope connection serves its
/// own project only; an account-scope one every project of the same Foundry account.
fn connection_reachable(
    agent: &PromptAgent,
    gc: &GatewayConnection,
    their_project: Option<&FoundryProject>,
    mine: &ProjectResourceId,
) -> Result<(), String> {
    let theirs = &gc.spec.project_ref.name;
    let ours = &agent.spec.project_ref.name;
    let connection = gc.name_any();
    match gc.spec.scope.unwrap_or_default() {
        ConnectionScope::Project if theirs == ours => Ok(()),
        ConnectionScope::Project => Err(format!(
            "GatewayConnection {connection} is a connection of FoundryProject {theirs}, not of {ours}; give it scope: Account (same Foundry account) or use a connection of {ours}"
        )),
        ConnectionScope::Account => {
            let their_project = their_project.ok_or_else(|| {
                format!("FoundryProject {theirs} of GatewayConnection {connection} does not exist")
            })?;
            let (their_id, _) = project::project_identity(&their_project.spec).map_err(|f| {
                format!("FoundryProject {theirs} is not usable: {}", message_of(&f))
            })?;
            if same_account(&their_id, mine) {
                Ok(())
            } else {
                Err(format!(
                    "GatewayConnection {connection} lives on Foundry account {} and FoundryProject {ours} on account {}; an account-scope connection serves only the projects of its own account",
                    their_id.account, mine.account
                ))
            }
        }
    }
}

/// Whether two projects live on the same Foundry account (ARM names compare without case).
fn same_account(a: &ProjectResourceId, b: &ProjectResourceId) -> bool {
    a.subscription_id.eq_ignore_ascii_case(&b.subscription_id)
        && a.resource_group.eq_ignore_ascii_case(&b.resource_group)
        && a.account.eq_ignore_ascii_case(&b.account)
}

#[cfg(test)]
mod tests {
    use foundry_gateway_api::GatewayConnectionStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::agent::report::{CONNECTION_READY, MODEL_FOUND};

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn agent(project: &str) -> PromptAgent {
        serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "PromptAgent",
            "metadata": {"name": "weather", "namespace": "team"},
            "spec": {
                "projectRef": {"name": project},
                "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
            },
        }))
        .expect("test agent")
    }

    /// A Ready connection of `project` in `scope` that offers gpt-4o.
    fn connection(project: &str, scope: &str) -> GatewayConnection {
        let mut gc: GatewayConnection = serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "GatewayConnection",
            "metadata": {"name": "gw", "namespace": "team", "generation": 1},
            "spec": {
                "projectRef": {"name": project},
                "scope": scope,
                "category": "ModelGateway",
                "target": "https://gw.example.com",
                "auth": {"apiKey": {"secretRef": {"name": "s", "key": "k"}}},
            },
        }))
        .expect("test connection");
        gc.status = Some(GatewayConnectionStatus {
            observed_generation: Some(1),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: "Reconciled".into(),
                message: "ok".into(),
                observed_generation: Some(1),
                last_transition_time: Time(Timestamp::UNIX_EPOCH),
            }],
            models: vec!["gpt-4o".into()],
            ..GatewayConnectionStatus::default()
        });
        gc
    }

    fn project_on(account: &str) -> FoundryProject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.foundry.dev/v1alpha1",
            "kind": "FoundryProject",
            "metadata": {"name": "other", "namespace": "team"},
            "spec": {
                "subscriptionId": SUB, "resourceGroup": "rg", "account": account,
                "project": "other", "identity": {"operatorDefault": {}},
            },
        }))
        .expect("test project")
    }

    fn id_on(account: &str) -> ProjectResourceId {
        ProjectResourceId::new(SUB, "rg", account, "mine").expect("test id")
    }

    #[test]
    fn a_connection_serves_its_own_project_or_with_account_scope_the_projects_of_its_account() {
        // (case, the connection's project, its scope, that project's account, usable)
        let cases = [
            ("own project", "mine", "Project", None, true),
            ("other project", "other", "Project", None, false),
            ("same account", "other", "Account", Some("ACCT-A"), true),
            ("other account", "other", "Account", Some("acct-b"), false),
            ("missing project", "other", "Account", None, false),
        ];
        for (case, project, scope, account, usable) in cases {
            let gc = connection(project, scope);
            let theirs = account.map(project_on);
            let references =
                check_references(&agent("mine"), Some(&gc), theirs.as_ref(), &id_on("acct-a"));
            assert_eq!(references.connection.ok, usable, "{case}: {references:?}");
            let model = references.model.as_ref().map(|m| m.ok);
            assert_eq!(model, usable.then_some(true), "{case}");
            assert_eq!(references.usable().is_ok(), usable, "{case}");
            if !usable {
                let reason = &references.connection.reason;
                assert_eq!(reason, reasons::CONNECTION_NOT_READY, "{case}");
            }
        }
    }

    #[test]
    fn a_missing_connection_or_model_waits_with_the_failed_check() {
        let missing = check_references(&agent("mine"), None, None, &id_on("acct-a"));
        let failure = missing.usable().expect_err("missing");
        assert_eq!(failure.label(), reasons::CONNECTION_NOT_READY);
        assert_eq!(
            failure.outcome(),
            Failure::Waiting {
                reason: missing.connection.reason.clone(),
                message: missing.connection.message.clone(),
            }
            .outcome()
        );

        let unready = GatewayConnection {
            status: None,
            ..connection("mine", "Project")
        };
        let unready = check_references(&agent("mine"), Some(&unready), None, &id_on("acct-a"));
        assert_eq!(
            unready.usable().expect_err("unready").label(),
            reasons::CONNECTION_NOT_READY
        );
        assert!(
            unready.settling && missing.settling,
            "on its way, or not there yet"
        );
        let mut inactive = connection("mine", "Project");
        if let Some(ready) = inactive
            .status
            .as_mut()
            .and_then(|s| s.conditions.first_mut())
        {
            ready.status = "False".into();
            ready.reason = reasons::GATEWAY_INACTIVE.into();
        }
        let inactive = check_references(&agent("mine"), Some(&inactive), None, &id_on("acct-a"));
        assert!(
            !inactive.settling && inactive.usable().is_err(),
            "a verdict: {inactive:?}"
        );

        let mut gc = connection("mine", "Project");
        if let Some(status) = gc.status.as_mut() {
            status.models = vec!["gpt-4o-mini".into()];
        }
        let no_model = check_references(&agent("mine"), Some(&gc), None, &id_on("acct-a"));
        assert_eq!(no_model.connection.reason, CONNECTION_READY);
        assert_eq!(
            no_model.usable().expect_err("no model").label(),
            reasons::MODEL_NOT_FOUND
        );

        let found = check_references(
            &agent("mine"),
            Some(&connection("mine", "Project")),
            None,
            &id_on("acct-a"),
        );
        assert_eq!(
            found.model.as_ref().map(|m| m.reason.as_str()),
            Some(MODEL_FOUND)
        );
        assert_eq!(found.usable().map(|f| f.connection_name.as_str()), Ok("gw"));
    }
}
