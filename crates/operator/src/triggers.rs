//! Which changes wake a reconcile. A status write is a change like any other to a watch, and
//! every one of them used to wake the object that wrote it and every object that reads it: an
//! agent's status write woke its connection, a connection's woke each of its agents. Here each
//! watch passes on only the changes its controller reads ([`changed`]): for an object of the
//! controller's own kind its spec, annotations, finalizers and deletion ([`own_inputs`]); for a
//! referenced kind the view the controller reads of it (`connection::start::agent_view`,
//! `agent::report::connection_view`). Deletions always pass.
//!
//! A controller woken by another kind reads that kind from its store, so the wake-up must not
//! overtake the store: a [`Fanout`] hands each change of the store-filling watch to the other
//! controllers only once the store holds it. A second watch of the same kind would race it, and
//! did: an agent woken by its connection turning Inactive could read the connection still Ready
//! and never be woken again.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;

/// A digest of `value` (within this process).
pub fn digest(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// What a reconcile reads of its own object besides status: the generation (the spec), the
/// annotations (a `reconcile.fluxcd.io/requestedAt` request), the finalizers and whether it is
/// being deleted. A change of status alone, most often the controller's own write, wakes nothing.
pub fn own_inputs(meta: &ObjectMeta) -> u64 {
    digest(&(
        meta.generation,
        &meta.annotations,
        &meta.finalizers,
        meta.deletion_timestamp.is_some(),
    ))
}

/// Whom an object is, across a delete and create under the same name.
type Identity = (Option<String>, Option<String>, Option<String>);

fn identity(meta: &ObjectMeta) -> Identity {
    (meta.namespace.clone(), meta.name.clone(), meta.uid.clone())
}

/// The last view seen of each object of one watch.
#[derive(Debug, Default)]
struct Views {
    seen: HashMap<Identity, u64>,
}

impl Views {
    /// The objects of `event` to pass on: an added or changed object whose view changed (or was
    /// never seen), and a deleted one always.
    fn pass<K: Resource>(
        &mut self,
        event: watcher::Event<K>,
        view: impl Fn(&K) -> u64,
    ) -> Option<K> {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                let digest = view(&object);
                let before = self.seen.insert(identity(object.meta()), digest);
                (before != Some(digest)).then_some(object)
            }
            watcher::Event::Delete(object) => {
                self.seen.remove(&identity(object.meta()));
                Some(object)
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        }
    }
}

/// The objects of a watch whose view (`view`) changed since the watch last passed them on, and
/// the deleted ones; errors pass on as they are.
pub fn changed<K, S>(
    events: S,
    view: impl Fn(&K) -> u64 + Send + 'static,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
{
    let mut views = Views::default();
    events.filter_map(move |event| {
        let passed = match event {
            Ok(event) => views.pass(event, &view).map(Ok),
            Err(error) => Some(Err(error)),
        };
        std::future::ready(passed)
    })
}

/// The changes of one kind, as its store has them, for the controllers that read that store.
///
/// [`Fanout::forward`] sits after the reflector of the kind's own controller: an added, changed
/// or deleted object is passed on after the store took it; a re-list (the watch restarted) is
/// passed on when the store swaps it in, as each listed object and a deletion of each object
/// the list no longer has. Subscribers take everything (the controller they feed drains them
/// without pause); [`changed`] keeps what wakes someone.
pub struct Fanout<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<watcher::Event<K>>>>>,
    /// The store's objects when a re-list began.
    before_relist: Option<Vec<Arc<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> std::fmt::Debug for Fanout<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("relisting", &self.before_relist.is_some())
            .finish_non_exhaustive()
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Fanout<K> {
    /// A fan-out of the watch that fills `store`.
    pub fn new(store: Store<K>) -> Self {
        Self {
            store,
            subscribers: Arc::default(),
            before_relist: None,
        }
    }

    /// A handle that subscribes while the fan-out itself moves into the watch's stream.
    pub fn subscriptions(&self) -> Subscriptions<K> {
        Subscriptions {
            subscribers: Arc::clone(&self.subscribers),
        }
    }

    /// Passes on `event`, which the store has just applied.
    pub fn forward(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => self.send(|| watcher::Event::Apply(object.clone())),
            watcher::Event::Delete(object) => self.send(|| watcher::Event::Delete(object.clone())),
            // The store keeps its objects until the list is done, then swaps.
            watcher::Event::Init => self.before_relist = Some(self.store.state()),
            watcher::Event::InitApply(_) => {}
            watcher::Event::InitDone => {
                let listed = self.store.state();
                let kept: HashSet<Identity> = listed.iter().map(|o| identity(o.meta())).collect();
                for gone in self.before_relist.take().unwrap_or_default() {
                    if !kept.contains(&identity(gone.meta())) {
                        self.send(|| watcher::Event::Delete(K::clone(&gone)));
                    }
                }
                for object in listed {
                    self.send(|| watcher::Event::Apply(K::clone(&object)));
                }
            }
        }
    }

    fn send(&self, event: impl Fn() -> watcher::Event<K>) {
        let mut subscribers = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|subscriber| subscriber.unbounded_send(event()).is_ok());
    }
}

/// Subscribes to a [`Fanout`].
#[derive(Clone)]
pub struct Subscriptions<K> {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<watcher::Event<K>>>>>,
}

impl<K> std::fmt::Debug for Subscriptions<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriptions").finish_non_exhaustive()
    }
}

impl<K: Send + 'static> Subscriptions<K> {
    /// The changes from now on, as a watch's events.
    pub fn subscribe(
        &self,
    ) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
        receiver.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::FutureExt;
    use futures::executor::block_on;
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn map(name: &str, uid: &str, data: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(uid.into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("k".to_owned(), data.to_owned())])),
            ..ConfigMap::default()
        }
    }

    fn data(m: &ConfigMap) -> u64 {
        digest(&m.data)
    }

    #[test]
    fn only_changes_of_the_view_and_deletions_pass() {
        use watcher::Event::*;
        let events = vec![
            Ok(Init),
            Ok(InitApply(map("a", "1", "x"))),
            Ok(InitDone),
            // The same view again (a status write, a re-list): nothing.
            Ok(Apply(map("a", "1", "x"))),
            Ok(InitApply(map("a", "1", "x"))),
            Ok(Apply(map("a", "1", "y"))),
            Ok(Delete(map("a", "1", "y"))),
            // Created again under the same name: a new object.
            Ok(Apply(map("a", "2", "y"))),
            Err(watcher::Error::NoResourceVersion),
        ];
        let out: Vec<_> = block_on(changed(futures::stream::iter(events), data).collect());
        let seen: Vec<Option<(String, String)>> = out
            .iter()
            .map(|r| {
                r.as_ref().ok().map(|m| {
                    (
                        m.metadata.uid.clone().unwrap_or_default(),
                        m.data
                            .as_ref()
                            .and_then(|d| d.get("k").cloned())
                            .unwrap_or_default(),
                    )
                })
            })
            .collect();
        let pair = |u: &str, d: &str| Some((u.to_owned(), d.to_owned()));
        assert_eq!(
            seen,
            vec![
                pair("1", "x"),
                pair("1", "y"),
                pair("1", "y"),
                pair("2", "y"),
                None
            ]
        );
    }

    #[test]
    fn a_status_write_changes_none_of_the_own_inputs() {
        let mut meta = ObjectMeta {
            generation: Some(1),
            resource_version: Some("10".into()),
            ..ObjectMeta::default()
        };
        let before = own_inputs(&meta);
        meta.resource_version = Some("11".into());
        assert_eq!(own_inputs(&meta), before, "status write");
        meta.annotations = Some(BTreeMap::from([(
            "reconcile.fluxcd.io/requestedAt".to_owned(),
            "now".to_owned(),
        )]));
        let requested = own_inputs(&meta);
        assert_ne!(requested, before, "a reconcile request");
        meta.generation = Some(2);
        assert_ne!(own_inputs(&meta), requested, "a new spec");
        let spec = own_inputs(&meta);
        meta.finalizers = Some(vec!["f".into()]);
        assert_ne!(own_inputs(&meta), spec, "a finalizer");
    }

    /// What a subscriber got so far: ("apply" | "delete", uid, data), and whether the store
    /// already had each applied object when it was sent.
    fn drain(
        receiver: &mut (impl Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin),
    ) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        while let Some(Some(Ok(event))) = receiver.next().now_or_never() {
            let (what, m) = match event {
                watcher::Event::Apply(m) => ("apply", m),
                watcher::Event::Delete(m) => ("delete", m),
                other => panic!("a subscriber gets applies and deletions only: {other:?}"),
            };
            let data = m
                .data
                .as_ref()
                .and_then(|d| d.get("k").cloned())
                .unwrap_or_default();
            out.push((what, m.metadata.uid.unwrap_or_default(), data));
        }
        out
    }

    #[test]
    fn a_subscriber_gets_a_change_once_the_store_has_it_and_a_relist_s_losses_as_deletions() {
        use watcher::Event::*;
        let (store, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        let mut fanout = Fanout::new(store.clone());
        let mut first = Box::pin(fanout.subscriptions().subscribe());
        let mut through = |event: watcher::Event<ConfigMap>| {
            writer.apply_watcher_event(&event);
            fanout.forward(&event);
        };
        let s = |what: &'static str, uid: &str, data: &str| (what, uid.to_owned(), data.to_owned());

        // The first list reaches subscribers when the store swaps it in.
        through(Init);
        through(InitApply(map("a", "1", "x")));
        through(InitApply(map("b", "2", "x")));
        assert_eq!(
            drain(&mut first),
            vec![],
            "nothing before the store has the list"
        );
        through(InitDone);
        let mut listed = drain(&mut first);
        listed.sort();
        assert_eq!(listed, vec![s("apply", "1", "x"), s("apply", "2", "x")]);

        through(Apply(map("a", "1", "y")));
        assert_eq!(drain(&mut first), vec![s("apply", "1", "y")]);
        let stored = store.state();
        assert!(
            stored.iter().any(|m| m.metadata.uid.as_deref() == Some("1")
                && m.data.as_ref().and_then(|d| d.get("k")).map(String::as_str) == Some("y")),
            "the store had it"
        );

        // The watch restarts: b went away and a was made anew while it was down.
        through(Init);
        through(InitApply(map("a", "3", "z")));
        assert_eq!(drain(&mut first), vec![]);
        through(InitDone);
        let mut relisted = drain(&mut first);
        relisted.sort();
        assert_eq!(
            relisted,
            vec![
                s("apply", "3", "z"),
                s("delete", "1", "y"),
                s("delete", "2", "x")
            ]
        );

        // A subscriber that went away is forgotten; another still gets everything.
        let mut second = Box::pin(fanout.subscriptions().subscribe());
        drop(first);
        let mut through = |event: watcher::Event<ConfigMap>| {
            writer.apply_watcher_event(&event);
            fanout.forward(&event);
        };
        through(Delete(map("a", "3", "z")));
        assert_eq!(drain(&mut second), vec![s("delete", "3", "z")]);
        assert!(store.state().is_empty());
    }
}
