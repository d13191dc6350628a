//! Starts the operator: admin server, leader election, and the three controllers sharing one
//! context and each other's reflector stores.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use foundry_gateway_api::{FoundryProject, GatewayConnection, PromptAgent, References};
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
use crate::controller::Scoped;
use crate::leader::{Elector, LeaseSettings};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::stores::Filled;
use crate::{agent, connection, project, triggers};

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
    let admin_task = start_admin(&settings, &metrics, &ready).await?;
    let shutdown = shutdown_on_signal();
    let mut elector = match lead(&client, &settings, &ready, &shutdown).await? {
        Leadership::Elected(elector) => Some(*elector),
        Leadership::Alone => None,
        Leadership::ShutDown => return Ok(()),
    };
    metrics.leader.set(1);
    let runtime = Runtime {
        metrics: Arc::clone(&metrics),
        ready: Arc::clone(&ready),
        shutdown,
    };
    let result = run_controllers(client, settings, runtime, elector.as_mut()).await;
    if let Some(e) = elector.as_mut() {
        if let Err(error) = e.release().await {
            warn!(%error, "Failed to release the leader lease");
        }
        metrics.leader.set(0);
    }
    admin_task.abort();
    result
}

/// Binds the admin server (metrics, health) and serves it in the background.
async fn start_admin(
    settings: &Settings,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let (bound, admin_server) = admin::bind(
        settings.admin_addr,
        AdminState {
            metrics: Arc::clone(metrics),
            ready: Arc::clone(ready),
        },
    )
    .await
    .with_context(|| format!("cannot bind the admin server to {}", settings.admin_addr))?;
    info!(address = %bound, "Admin server listening");
    Ok(tokio::spawn(admin_server))
}

/// A shutdown signal raised by SIGTERM or SIGINT.
fn shutdown_on_signal() -> Shutdown {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("Shutdown requested");
        let _ = stop_tx.send(true);
    });
    Shutdown(stop_rx)
}

/// How this replica came to lead.
enum Leadership {
    /// It holds the Lease.
    Elected(Box<Elector>),
    /// Leader election is off: the only replica leads.
    Alone,
    /// Shutdown came first.
    ShutDown,
}

/// Waits for the leader Lease (when election is on). A standby replica is ready: it serves
/// metrics and takes over when the leader goes.
async fn lead(
    client: &Client,
    settings: &Settings,
    ready: &AtomicBool,
    shutdown: &Shutdown,
) -> anyhow::Result<Leadership> {
    if !settings.leader_elect {
        return Ok(Leadership::Alone);
    }
    let identity = settings.identity.clone().unwrap_or_else(default_identity);
    let mut elector = Elector::new(
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
    ready.store(true, Ordering::Relaxed);
    info!(%identity, lease = %settings.lease_name, "Waiting for the leader lease");
    tokio::select! {
        acquired = elector.acquire() => acquired?,
        () = shutdown.clone().wait() => return Ok(Leadership::ShutDown),
    }
    info!(%identity, "Became the leader");
    Ok(Leadership::Elected(Box::new(elector)))
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

/// What the controllers run with besides the client and the settings.
struct Runtime {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: Shutdown,
}

/// The three controllers, wired to each other's stores and to what their objects reference.
async fn run_controllers(
    client: Client,
    settings: Settings,
    runtime: Runtime,
    elector: Option<&mut Elector>,
) -> anyhow::Result<()> {
    let config = ControllerConfig::default().concurrency(settings.concurrency);
    let scope = Scope::from_settings(&settings);
    let projects = lean_controller::<FoundryProject>(scope.api(&client), &scope);
    let connections = lean_controller::<GatewayConnection>(scope.api(&client), &scope);
    let agents = lean_controller::<PromptAgent>(scope.api(&client), &scope);
    let filled = Filled::of(
        vec![projects.filled, connections.filled, agents.filled],
        runtime.shutdown.0.clone(),
    );
    let changes = Changes {
        projects: projects.changes,
        connections: connections.changes,
        agents: agents.changes,
    };
    let (projects, connections, agents) = (
        projects.controller.with_config(config.clone()),
        connections.controller.with_config(config.clone()),
        agents.controller.with_config(config),
    );
    let stores = Stores {
        projects: projects.store(),
        connections: connections.store(),
        agents: agents.store(),
        filled,
    };
    runtime.metrics.read_objects_from(stores.clone());
    let ctx = context(&client, settings, &runtime.metrics, stores).await?;
    let probe_events = ctx
        .take_probe_events()
        .context("the probe events were taken twice")?;
    let probe_scheduler = tokio::spawn(Arc::clone(&ctx.probes).run());
    let watches = Watches {
        client: &client,
        scope: &scope,
        stores: &ctx.stores,
        changes: &changes,
    };
    let stop = || runtime.shutdown.clone().wait();
    let projects = watches.project(projects).graceful_shutdown_on(stop());
    let connections = watches
        .connection(connections)
        .reconcile_on(futures::stream::unfold(probe_events, |mut events| async {
            events.recv().await.map(|object| (object, events))
        }))
        .graceful_shutdown_on(stop());
    let agents = watches.agent(agents).graceful_shutdown_on(stop());

    runtime.ready.store(true, Ordering::Relaxed);
    info!("Controllers started");
    let result = run_all(&ctx, (projects, connections, agents), elector).await;
    probe_scheduler.abort();
    result
}

/// The three controllers, each with its own memory, until they end or the Lease is lost.
async fn run_all(
    ctx: &Arc<Context>,
    (projects, connections, agents): (
        Controller<FoundryProject>,
        Controller<GatewayConnection>,
        Controller<PromptAgent>,
    ),
    elector: Option<&mut Elector>,
) -> anyhow::Result<()> {
    let projects = projects
        .run(project::reconcile, project::error_policy, Arc::clone(ctx))
        .for_each(|_| async {});
    let connections = connections
        .run(
            connection::reconcile,
            connection::error_policy,
            Arc::new(Scoped::new(Arc::clone(ctx))),
        )
        .for_each(|_| async {});
    let agents = agents
        .run(
            agent::reconcile,
            agent::error_policy,
            Arc::new(Scoped::new(Arc::clone(ctx))),
        )
        .for_each(|_| async {});
    let controllers = async {
        tokio::join!(projects, connections, agents);
    };
    match elector {
        Some(elector) => tokio::select! {
            () = controllers => Ok(()),
            lost = elector.hold() => Err(anyhow::Error::new(lost)),
        },
        None => {
            controllers.await;
            Ok(())
        }
    }
}

/// The shared infrastructure, with the digest key from its Secret.
async fn context(
    client: &Client,
    settings: Settings,
    metrics: &Arc<Metrics>,
    stores: Stores,
) -> anyhow::Result<Arc<Context>> {
    let digest_key = crate::digest::load(
        client,
        &settings.lease_namespace,
        &settings.digest_key_secret,
    )
    .await
    .context("cannot load the key of the credentials digest")?;
    Ok(Arc::new(
        Context::new(client.clone(), settings, Arc::clone(metrics), stores)?
            .with_digest_key(digest_key),
    ))
}

/// The objects of `store` in `namespace` for which `uses` holds, as reconcile requests.
fn referrers<K>(
    store: &reflector::Store<K>,
    namespace: Option<String>,
    uses: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace == namespace && uses(o))
        .map(|o| ObjectRef::from_obj(&*o))
        .collect()
}

/// What each controller watches besides its own kind: exactly what its objects reference
/// ([`References`], the answer the resolvers read by), mapped back to the objects.
struct Watches<'a> {
    client: &'a Client,
    scope: &'a Scope,
    stores: &'a Stores,
    changes: &'a Changes,
}

/// The changes of our three kinds, each after its store has it.
struct Changes {
    projects: triggers::Subscriptions<FoundryProject>,
    connections: triggers::Subscriptions<GatewayConnection>,
    agents: triggers::Subscriptions<PromptAgent>,
}

impl Watches<'_> {
    /// FoundryProject: its identity Secret changes → refresh it.
    fn project(&self, controller: Controller<FoundryProject>) -> Controller<FoundryProject> {
        let store = self.stores.projects.clone();
        controller.watches_stream(self.scope.metadata_watch::<Secret>(self.client), move |s| {
            let name = s.name_any();
            referrers(&store, s.namespace(), |p| p.reads_secret(&name))
        })
    }

    /// GatewayConnection: its Secrets, its project, and the agents that use it.
    fn connection(
        &self,
        controller: Controller<GatewayConnection>,
    ) -> Controller<GatewayConnection> {
        let by_secret = self.stores.connections.clone();
        let by_project = self.stores.connections.clone();
        controller
            .watches_stream(self.scope.metadata_watch::<Secret>(self.client), move |s| {
                let name = s.name_any();
                referrers(&by_secret, s.namespace(), |c| c.reads_secret(&name))
            })
            .watches_stream(
                // Every change of the project (its status, too) passes.
                triggers::changed(self.changes.projects.subscribe(), |p| {
                    triggers::digest(&p.metadata.resource_version)
                }),
                move |p| {
                    let name = p.name_any();
                    referrers(&by_project, p.namespace(), |c| {
                        c.project_ref() == Some(name.as_str())
                    })
                },
            )
            .watches_stream(
                triggers::changed(
                    self.changes.agents.subscribe(),
                    connection::start::agent_view,
                ),
                |agent| {
                    let namespace = agent.namespace().unwrap_or_default();
                    agent
                        .connection_ref()
                        .map(|c| ObjectRef::<GatewayConnection>::new(c).within(&namespace))
                },
            )
    }

    /// PromptAgent: the ConfigMaps of its instructions (metadata only), and its connection.
    fn agent(&self, controller: Controller<PromptAgent>) -> Controller<PromptAgent> {
        let by_config_map = self.stores.agents.clone();
        let by_connection = self.stores.agents.clone();
        controller
            .watches_stream(
                self.scope.metadata_watch::<ConfigMap>(self.client),
                move |m| {
                    let name = m.name_any();
                    referrers(&by_config_map, m.namespace(), |a| a.reads_config_map(&name))
                },
            )
            .watches_stream(
                triggers::changed(
                    self.changes.connections.subscribe(),
                    agent::report::connection_view,
                ),
                move |gc| {
                    let name = gc.name_any();
                    referrers(&by_connection, gc.namespace(), |a| {
                        a.connection_ref() == Some(name.as_str())
                    })
                },
            )
    }
}

/// A controller whose cache drops `managedFields`: the operator never reads them, and they are
/// about half of every cached object (the memory target, docs/ARCHITECTURE.md, is per 1,000 objects).
/// Objects outside the watched namespaces never reach the cache. The receiver turns `true` once
/// the store holds the first full list; the subscriptions hand the store's changes to the other
/// controllers ([`triggers::Fanout`]).
fn lean_controller<K>(api: Api<K>, scope: &Scope) -> Lean<K>
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
    let (filled, filled_rx) = Filled::channel();
    let mut fanout = triggers::Fanout::new(reader.clone());
    let subscriptions = fanout.subscriptions();
    let stream = scope
        .watch(api)
        .modify(|object| object.managed_fields_mut().clear())
        .reflect(writer)
        // After `reflect`: the store has taken each event when these see it.
        .inspect(move |event| {
            if let Ok(event) = event {
                fanout.forward(event);
                if matches!(event, watcher::Event::InitDone) {
                    let _ = filled.send(true);
                }
            }
        })
        .applied_objects()
        // A change of status alone (most often our own write) wakes nothing.
        .predicate_filter(
            |object: &K| Some(triggers::own_inputs(object.meta())),
            Default::default(),
        );
    Lean {
        controller: Controller::for_stream(stream, reader),
        filled: filled_rx,
        changes: subscriptions,
    }
}

/// A controller of [`lean_controller`], with what it shares.
struct Lean<K: kube::Resource<DynamicType = ()> + Clone + std::fmt::Debug + 'static> {
    controller: Controller<K>,
    filled: tokio::sync::watch::Receiver<bool>,
    changes: triggers::Subscriptions<K>,
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

    /// A watch of `api` (with the default backoff) that passes on only the events of objects in
    /// the served namespaces.
    fn watch<K>(
        &self,
        api: Api<K>,
    ) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let scope = self.clone();
        watcher(api, WatcherConfig::default())
            .default_backoff()
            .filter(move |event| std::future::ready(scope.admits_event(event)))
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
