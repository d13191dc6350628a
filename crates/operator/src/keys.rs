//! Typed keys of what the controllers remember per object: no strings with suffixes.

use std::fmt;

use kube::ResourceExt;

/// A namespaced object of one of our kinds, as the controllers key their memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The key of a live object.
    pub fn of<K: ResourceExt>(object: &K) -> Self {
        Self {
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a referenced key is a key of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// A Secret.
    Secret,
    /// A ConfigMap.
    ConfigMap,
}

/// What a retry delay, a Retry-After deadline or a grace period belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetryKey {
    /// The object's reconcile.
    Object(ObjectKey),
    /// A PromptAgent's verification, apart from its reconcile.
    Verify(ObjectKey),
    /// A key of a Secret or ConfigMap the object references, while it is missing (the grace
    /// period before the object is Stalled).
    Reference {
        /// The object that references it.
        object: ObjectKey,
        /// Secret or ConfigMap.
        kind: RefKind,
        /// Its name.
        name: String,
        /// The key in it.
        key: String,
    },
}

impl RetryKey {
    /// The missing `key` of the Secret or ConfigMap `name`, referenced by `object`.
    pub fn reference(object: &ObjectKey, kind: RefKind, name: &str, key: &str) -> Self {
        Self::Reference {
            object: object.clone(),
            kind,
            name: name.to_owned(),
            key: key.to_owned(),
        }
    }
}

impl From<ObjectKey> for RetryKey {
    fn from(key: ObjectKey) -> Self {
        Self::Object(key)
    }
}

impl From<&ObjectKey> for RetryKey {
    fn from(key: &ObjectKey) -> Self {
        Self::Object(key.clone())
    }
}
