//! Per-object memory of one controller, owned by that controller ([`Scoped`]): no statics, and
//! [`crate::context::Context`] keeps only infrastructure.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use crate::context::Context;
use crate::keys::ObjectKey;

/// What a controller remembers of each object between reconciles. The uid of the object is kept
/// with it: an object deleted and created again under the same name starts afresh.
#[derive(Debug)]
pub struct PerObject<T> {
    entries: Mutex<HashMap<ObjectKey, (String, T)>>,
}

impl<T> Default for PerObject<T> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone + Default> PerObject<T> {
    /// What is remembered of the object with this uid (the default when nothing is, or when it
    /// was remembered for another uid).
    pub fn get(&self, key: &ObjectKey, uid: &str) -> T {
        self.lock()
            .get(key)
            .filter(|(known, _)| known == uid)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    }

    /// Remembers `value` for the object with this uid.
    pub fn put(&self, key: &ObjectKey, uid: &str, value: T) {
        self.lock().insert(key.clone(), (uid.to_owned(), value));
    }

    /// Forgets the object (it is gone).
    pub fn forget(&self, key: &ObjectKey) {
        self.lock().remove(key);
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, (String, T)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The context one controller runs with: the shared infrastructure and the controller's own
/// memory `M`. Derefs to [`Context`], so steps that need only the infrastructure take `&Context`.
#[derive(Debug)]
pub struct Scoped<M> {
    /// The shared infrastructure.
    pub infra: Arc<Context>,
    /// This controller's memory.
    pub memory: M,
}

impl<M: Default> Scoped<M> {
    /// A controller context with empty memory.
    pub fn new(infra: Arc<Context>) -> Self {
        Self {
            infra,
            memory: M::default(),
        }
    }
}

impl<M> Deref for Scoped<M> {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.infra
    }
}

impl<M> AsRef<Context> for Scoped<M> {
    fn as_ref(&self) -> &Context {
        &self.infra
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_per_object_and_per_uid() {
        let memory: PerObject<u32> = PerObject::default();
        let a = ObjectKey::new("ns", "a");
        let b = ObjectKey::new("ns", "b");
        memory.put(&a, "uid-1", 7);
        assert_eq!(memory.get(&a, "uid-1"), 7);
        assert_eq!(memory.get(&b, "uid-1"), 0, "another object");
        assert_eq!(memory.get(&a, "uid-2"), 0, "created again: starts afresh");
        memory.forget(&a);
        assert_eq!(memory.get(&a, "uid-1"), 0);
        assert!(memory.is_empty());
    }
}
