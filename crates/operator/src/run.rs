//! Starts the operator: admin server, leader election, and the three controllers sharing one
//! context and each other's reflector stores.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher;
use kube::runtime::watcher::Config as WatcherConfig;
use kube::runtime::{Controller, WatchStreamExt};
use kube::{Client, ResourceExt};
use tokio_util_shutdown::Shutdown;
use tracing::{info, warn};

use crate::admin::{self, AdminState};
use crate::context::{Context, Stores};
use crate::leader::{Elector, LeaseSettings};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::{connection, project};

mod tokio_util_shutdown {
    //! A one-shot shutdown signal shared by the controllers.
    use tokio::sync::watch;

    /// Resolves once shutdown was requested.
    #[derive(Clone, Debug)]
    pub struct Shutdown(pub watch::Receiver<bool>);

    impl Shutdown {
        /// Waits for the signal.
        pub async fn wait(mut self) {
            let _ = self.0.wait_for(|stop| *stop).await;
        }
    }
}

/// Runs until SIGTERM/SIGINT, or until leadership is lost (then exits with an error so that the
/// replica restarts as a follower and never writes without the Lease).
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(settings.log_format);
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let metrics = Metrics::new();
    let ready = Arc::new(AtomicBool::new(false));
    let (bound, admin_server) = admin::bind(
        settings.admin_addr,
        AdminState {
            metrics: Arc::clone(&metrics),
            ready: Arc::clone(&ready),
        },
    )
    .await
    .with_context(|| format!("cannot bind the admin server to {}", settings.admin_addr))?;
    info!(address = %bound, "Admin server listening");
    let admin_task = tokio::spawn(admin_server);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = Shutdown(stop_rx);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("Shutdown requested");
        let _ = stop_tx.send(true);
    });

    let mut elector = None;
    if settings.leader_elect {
        let identity = settings.identity.clone().unwrap_or_else(default_identity);
        let mut e = Elector::new(
            client.clone(),
            LeaseSettings {
                namespace: settings.lease_namespace.clone(),
                name: settings.lease_name.clone(),
                identity: identity.clone(),
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            },
        );
        // A standby replica is ready: it serves metrics and takes over when the leader goes.
        ready.store(true, Ordering::Relaxed);
        info!(%identity, lease = %settings.lease_name, "Waiting for the leader lease");
        tokio::select! {
            acquired = e.acquire() => acquired?,
            () = shutdown.clone().wait() => return Ok(()),
        }
        info!(%identity, "Became the leader");
        metrics.leader.set(1);
        elector = Some(e);
    } else {
        // Without election the only replica leads.
        metrics.leader.set(1);
    }

    let result = run_controllers(
        client,
        settings,
        Arc::clone(&metrics),
        Arc::clone(&ready),
        shutdown,
        elector.as_mut(),
    )
    .await;
    if let Some(e) = elector.as_mut() {
        if let Err(error) = e.release().await {
            warn!(%error, "Failed to release the leader lease");
        }
        metrics.leader.set(0);
    }
    admin_task.abort();
    result
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn default_identity() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}

async fn run_controllers(
    client: Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
    elector: Option<&mut Elector>,
) -> anyhow::Result<()> {
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let scope = Scope::from_settings(&settings);
    let projects_api: Api<FoundryProject> = scope.api(&client);
    let connections_api: Api<GatewayConnection> = scope.api(&client);
    let agents_api: Api<PromptAgent> = scope.api(&client);

    let project_controller = lean_controller(projects_api, &scope).with_config(config.clone());
    let connection_controller =
        lean_controller(connections_api, &scope).with_config(config.clone());
    let agent_controller = lean_controller(agents_api.clone(), &scope).with_config(config);

    let stores = Stores {
        projects: project_controller.store(),
        connections: connection_controller.store(),
        agents: agent_controller.store(),
    };
    metrics.read_objects_from(stores.clone());
    let digest_key = crate::digest::load(
        &client,
        &settings.lease_namespace,
        &settings.digest_key_secret,
    )
    .await
    .context("cannot load the key of the credentials digest")?;
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            settings,
            Arc::clone(&metrics),
            stores.clone(),
        )?
        .with_digest_key(digest_key),
    );

    let probe_events = ctx
        .take_probe_events()
        .context("the probe events were taken twice")?;
    let probe_scheduler = tokio::spawn(Arc::clone(&ctx.probes).run());

    // FoundryProject: its identity Secret changes → refresh it.
    let project_store = stores.projects.clone();
    let project_controller = project_controller
        .watches_stream(scope.metadata_watch::<Secret>(&client), move |secret| {
            let namespace = secret.namespace();
            let name = secret.name_any();
            project_store
                .state()
                .into_iter()
                .filter(|p| p.namespace() == namespace)
                .filter(|p| {
                    p.spec
                        .identity
                        .client_secret
                        .as_ref()
                        .is_some_and(|c| c.secret_ref.name == name)
                })
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown.clone().wait());

    // GatewayConnection: its Secrets, its project, and the agents that use it.
    let by_secret = stores.connections.clone();
    let by_project = stores.connections.clone();
    let connection_controller = connection_controller
        .watches_stream(scope.metadata_watch::<Secret>(&client), move |secret| {
            let namespace = secret.namespace();
            let name = secret.name_any();
            by_secret
                .state()
                .into_iter()
                .filter(|c| c.namespace() == namespace && references_secret(c, &name))
                .map(|c| ObjectRef::from_obj(&*c))
                .collect::<Vec<_>>()
        })
        .watches(
            scope.api::<FoundryProject>(&client),
            WatcherConfig::default(),
            move |p| {
                let namespace = p.namespace();
                let name = p.name_any();
                by_project
                    .state()
                    .into_iter()
                    .filter(|c| c.namespace() == namespace && c.spec.project_ref.name == name)
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .watches(agents_api, WatcherConfig::default(), |agent| {
            let namespace = agent.namespace().unwrap_or_default();
            Some(
                ObjectRef::<GatewayConnection>::new(&agent.spec.model.connection_ref.name)
                    .within(&namespace),
            )
        })
        .reconcile_on(futures::stream::unfold(probe_events, |mut events| async {
            events.recv().await.map(|object| (object, events))
        }))
        .graceful_shutdown_on(shutdown.clone().wait());

    // PromptAgent: the ConfigMaps of its instructions (metadata only), and its connection.
    let by_config_map = stores.agents.clone();
    let by_connection = stores.agents.clone();
    let agent_controller = agent_controller
        .watches_stream(
            scope.metadata_watch::<ConfigMap>(&client),
            move |config_map| {
                let namespace = config_map.namespace();
                let name = config_map.name_any();
                by_config_map
                    .state()
                    .into_iter()
                    .filter(|a| a.namespace() == namespace)
                    .filter(|a| {
                        a.spec
                            .instructions_from
                            .as_ref()
                            .is_some_and(|r| r.name == name)
                    })
                    .map(|a| ObjectRef::from_obj(&*a))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            scope.api::<GatewayConnection>(&client),
            WatcherConfig::default(),
            move |gc| {
                let namespace = gc.namespace();
                let name = gc.name_any();
                by_connection
                    .state()
                    .into_iter()
                    .filter(|a| {
                        a.namespace() == namespace && a.spec.model.connection_ref.name == name
                    })
                    .map(|a| ObjectRef::from_obj(&*a))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone().wait());

    ready.store(true, Ordering::Relaxed);
    info!("Controllers started");
    let projects = project_controller
        .run(project::reconcile, project::error_policy, Arc::clone(&ctx))
        .for_each(|_| async {});
    let connections = connection_controller
        .run(
            connection::reconcile,
            connection::error_policy,
            Arc::new(crate::controller::Scoped::new(Arc::clone(&ctx))),
        )
        .for_each(|_| async {});
    let agents = agent_controller
        .run(
            crate::agent::reconcile,
            crate::agent::error_policy,
            Arc::new(crate::controller::Scoped::new(Arc::clone(&ctx))),
        )
        .for_each(|_| async {});
    let controllers = async {
        tokio::join!(projects, connections, agents);
    };
    let result = match elector {
        Some(elector) => tokio::select! {
            () = controllers => Ok(()),
            lost = elector.hold() => Err(anyhow::Error::new(lost)),
        },
        None => {
            controllers.await;
            Ok(())
        }
    };
    probe_scheduler.abort();
    result
}

/// A controller whose cache drops `managedFields`: the operator never reads them, and they are
/// about half of every cached object (the memory target of DESIGN §8 is per 1,000 objects).
/// Objects outside the watched namespaces never reach the cache.
fn lean_controller<K>(api: Api<K>, scope: &Scope) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let scope = scope.clone();
    let stream = watcher(api, WatcherConfig::default())
        .default_backoff()
        .filter(move |event| std::future::ready(scope.admits_event(event)))
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(stream, reader)
}

/// Which namespaces the operator serves.
#[derive(Clone, Debug)]
enum Scope {
    /// Every namespace (a ClusterRole).
    All,
    /// One namespace, everything read there only (a Role in that namespace).
    One(String),
    /// Several namespaces: our kinds watched cluster-wide and filtered, Secrets and ConfigMaps
    /// watched in each listed namespace only (a ClusterRole for our kinds, a Role per namespace
    /// for the rest).
    Some(Arc<BTreeSet<String>>),
}

impl Scope {
    fn from_settings(settings: &Settings) -> Self {
        let listed: BTreeSet<String> = settings
            .watch_namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .chain(settings.watch_namespace.clone())
            .collect();
        match (&settings.watch_namespace, listed.len()) {
            (_, 0) => Self::All,
            (Some(one), 1) => Self::One(one.clone()),
            _ => Self::Some(Arc::new(listed)),
        }
    }

    /// An Api over the namespaces our kinds are read from.
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            Self::One(ns) => Api::namespaced(client.clone(), ns),
            Self::All | Self::Some(_) => Api::all(client.clone()),
        }
    }

    fn admits(&self, namespace: Option<&str>) -> bool {
        match self {
            Self::All | Self::One(_) => true,
            Self::Some(listed) => namespace.is_some_and(|n| listed.contains(n)),
        }
    }

    fn admits_event<K: kube::Resource>(
        &self,
        event: &Result<watcher::Event<K>, watcher::Error>,
    ) -> bool {
        match event {
            Ok(
                watcher::Event::Apply(object)
                | watcher::Event::Delete(object)
                | watcher::Event::InitApply(object),
            ) => self.admits(object.meta().namespace.as_deref()),
            _ => true,
        }
    }

    /// Metadata-only watch of a core kind (Secrets, ConfigMaps) in the served namespaces.
    fn metadata_watch<K>(
        &self,
        client: &Client,
    ) -> futures::stream::BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let watch = |api: Api<PartialObjectMeta<K>>| {
            watcher(api, WatcherConfig::default())
                .default_backoff()
                .touched_objects()
                .boxed()
        };
        match self {
            Self::All => watch(Api::all(client.clone())),
            Self::One(ns) => watch(Api::namespaced(client.clone(), ns)),
            Self::Some(listed) => futures::stream::select_all(
                listed
                    .iter()
                    .map(|ns| watch(Api::namespaced(client.clone(), ns))),
            )
            .boxed(),
        }
    }
}

fn references_secret(c: &GatewayConnection, name: &str) -> bool {
    let auth = &c.spec.auth;
    auth.api_key
        .as_ref()
        .is_some_and(|k| k.secret_ref.name == name)
        || auth
            .oauth2
            .as_ref()
            .is_some_and(|o| o.client_secret_ref.name == name)
        || c.spec
            .custom_headers
            .iter()
            .any(|h| h.value_from.as_ref().is_some_and(|r| r.name == name))
}
