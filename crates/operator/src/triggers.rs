//! Which changes wake a reconcile. A status write is a change like any other to a watch, and
//! every one of them used to wake the object that wrote it and every object that reads it: an
//! agent's status write woke its connection, a connection's woke each of its agents. Here each
//! watch passes on only the changes its controller reads ([`changed`]): for an object of the
//! controller's own kind its spec, annotations, finalizers and deletion ([`own_inputs`]); for a
//! referenced kind the view the controller reads of it (`connection::start::agent_view`,
//! `agent::report::connection_view`). Deletions always pass.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
}
