//! Step "sync": when a check is due (a new generation, rotated credentials, a Flux request, or
//! the resync), read the live connection, settle whose it is ([`super::claim`]) and send the
//! PUT the write plan asks for ([`super::write_plan`], pure). Under `managementPolicy: Observe`
//! the same read and owner check, then a comparison ([`super::observe`]); nothing is written.

use foundry_gateway_client::connections::ConnectionResource;
use kube::runtime::events::EventType;
use tracing::info;

use super::build::Desired;
use super::claim::{claim, named_elsewhere, observe_claim};
use super::observe::{self, Observation};
use super::start::Start;
use super::tracker::Tracker;
use super::write_plan::{self, Claim, Live, WritePlan};
use crate::context::Context;
use crate::controller::{AtStep, Failed, Step, publish};
use crate::failure::Failure;
use crate::project::ResolvedProject;

/// What the sync step leaves for status and memory.
#[derive(Clone, Debug)]
pub struct Synced {
    /// The ARM id of the connection, as found or written (or as the last check found it).
    pub connection_id: String,
    /// The credentials digest status records as applied; None under Observe, where nothing is
    /// applied and status keeps what was (so `Full` later knows whether to write).
    pub credentials_hash: Option<String>,
    /// The memory after the step: what the check was made with and found.
    pub memory: Tracker,
}

/// Reads, compares and writes the Foundry connection when a check is due.
pub async fn sync(
    ctx: &Context,
    start: &Start<'_>,
    project: &ResolvedProject,
    desired: &Desired,
) -> Result<Synced, Failed> {
    let pass = Pass {
        ctx,
        start,
        project,
        desired,
    };
    let credentials_hash = (!start.observe).then(|| desired.credentials_hash.clone());
    let due = start.forced
        || start.memory.foundry_check_due(
            start.generation,
            &desired.credentials_hash,
            start.resync,
        );
    if !due {
        // Not re-read this time: status says what the last check found.
        let connection_id = start
            .memory
            .connection_id
            .clone()
            .unwrap_or_else(|| pass.default_id());
        return Ok(Synced {
            connection_id,
            credentials_hash,
            memory: start.memory.clone(),
        });
    }
    let live = project
        .connections_in(start.scope)
        .get(&desired.name)
        .await
        .map_err(|e| Failure::from_foundry("read the Foundry connection", &e))
        .at(Step::Sync)?;
    let (connection_id, observed) = if start.observe {
        let (id, observation) = pass.observe(live).await?;
        (id, Some(observation))
    } else {
        (pass.write(live).await?, None)
    };
    let mut memory = start.memory.clone();
    memory.checked(
        start.generation,
        &desired.credentials_hash,
        &connection_id,
        observed,
    );
    Ok(Synced {
        connection_id,
        credentials_hash,
        memory,
    })
}

/// One check of the live connection.
struct Pass<'a> {
    ctx: &'a Context,
    start: &'a Start<'a>,
    project: &'a ResolvedProject,
    desired: &'a Desired,
}

impl Pass<'_> {
    /// The ARM id the connection has when Foundry did not say.
    fn default_id(&self) -> String {
        self.project
            .connection_id(self.start.scope, &self.desired.name)
    }

    /// Observe: check the owner, compare; write nothing.
    async fn observe(
        &self,
        live: Option<ConnectionResource>,
    ) -> Result<(String, Observation), Failed> {
        let desired = self.desired;
        let ours = match &live {
            Some(live) => observe_claim(
                self.ctx,
                self.start.gc,
                &desired.name,
                &self.project.resource_id.project,
                &live.properties,
            )
            .await
            .at(Step::Sync)?,
            None => false,
        };
        let observation = observe::observe(
            &desired.properties,
            live.as_ref().map(|l| &l.properties),
            ours,
        );
        if self.start.memory.observed.as_ref() != Some(&observation) {
            info!(connection = %desired.name, ?observation, "Observed Foundry connection");
        }
        let id = live.and_then(|l| l.id).unwrap_or_else(|| self.default_id());
        Ok((id, observation))
    }

    /// Full: claim the live connection, plan the write, PUT when the plan says so. Returns the
    /// connection's ARM id.
    async fn write(&self, live: Option<ConnectionResource>) -> Result<String, Failed> {
        let desired = self.desired;
        let found = match &live {
            None => None,
            Some(live) => {
                let claim = claim(
                    self.ctx,
                    self.start.gc,
                    &desired.name,
                    &self.project.resource_id.project,
                    &live.properties,
                )
                .await
                .at(Step::Sync)?;
                Some(Live::compare(claim, &desired.properties, &live.properties))
            }
        };
        let applied = self
            .start
            .memory
            .applied(self.start.status.credentials_hash.as_deref());
        // Only an unmarked connection that matches can be taken as it is, and only then does it
        // matter whether another object names it: the scan of the store is skipped otherwise
        // (at scale it would run for every connection on every check).
        let may_adopt_as_is = found
            .as_ref()
            .is_some_and(|l| l.claim == Claim::Unmarked && l.drift.is_none());
        let elsewhere = may_adopt_as_is && named_elsewhere(self.ctx, self.start.gc, &desired.name);
        let plan = write_plan::plan_write(
            found.as_ref(),
            applied,
            &desired.credentials_hash,
            elsewhere,
        );
        if plan == WritePlan::AdoptAsIs && applied.is_none() {
            self.adopted_as_is().await;
        }
        let id = match plan.reason() {
            Some(what) => self.put(&what).await?.id,
            None => live.and_then(|l| l.id),
        };
        Ok(id.unwrap_or_else(|| self.default_id()))
    }

    async fn adopted_as_is(&self) {
        let name = &self.desired.name;
        info!(connection = %name, "Adopted Foundry connection as it is: nothing readable differs");
        publish(
            self.ctx,
            self.start.gc,
            EventType::Normal,
            "ConnectionAdopted",
            format!(
                "Adopted Foundry connection {name} as it is: nothing readable differs, so nothing was written (its credentials are taken as the Secret's until the Secret changes)"
            ),
        )
        .await;
    }

    /// The PUT, for the reason `what`.
    async fn put(&self, what: &str) -> Result<ConnectionResource, Failed> {
        let name = &self.desired.name;
        let written = self
            .project
            .connections_in(self.start.scope)
            .create_or_update(
                name,
                &ConnectionResource::new(self.desired.properties.clone()),
            )
            .await
            .map_err(|e| Failure::from_foundry("write the Foundry connection", &e))
            .at(Step::Sync)?;
        info!(connection = %name, change = %what, "Wrote Foundry connection");
        publish(
            self.ctx,
            self.start.gc,
            EventType::Normal,
            "ConnectionWritten",
            format!("{what} Foundry connection {name}"),
        )
        .await;
        Ok(written)
    }
}
