//! Ownership of Foundry objects per Kubernetes object (docs/ARCHITECTURE.md, Admission and
//! RBAC; issue 11 item 4).
//!
//! Every Foundry connection and agent version the operator writes records the namespace, name
//! and uid of the object that wrote it (its *marker*). Another object naming the same Foundry
//! connection or agent is refused (`OwnedElsewhere`) while the recorded owner lives, `adopt`
//! never takes over what a live object owns, and no object deletes what another one owns.
//!
//! The decision is pure ([`ownership`], then [`OwnerState::blocks`]); looking the recorded owner
//! up ([`owner_state`]) is the only IO, and its result is classified by a pure function too
//! ([`classify`]).

use std::fmt;

use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// What every marker value starts with: `foundry-gateway-operator:<namespace>/<name>`.
pub const MARKER_PREFIX: &str = "foundry-gateway-operator:";

/// The marker of agent versions written before ownership was recorded per object: the operator,
/// but no object.
pub const LEGACY_MARKER: &str = "foundry-gateway-operator";

/// A Kubernetes object as a marker records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectId {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `metadata.uid`, when recorded.
    pub uid: Option<String>,
}

impl ObjectId {
    /// An object id; an empty uid counts as none.
    pub fn new(namespace: &str, name: &str, uid: Option<&str>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.filter(|u| !u.is_empty()).map(str::to_owned),
        }
    }

    /// The id of a live object.
    pub fn of<K: Resource>(object: &K) -> Self {
        Self::new(
            object.meta().namespace.as_deref().unwrap_or_default(),
            object.meta().name.as_deref().unwrap_or_default(),
            object.meta().uid.as_deref(),
        )
    }

    /// The marker value naming this object: `foundry-gateway-operator:<namespace>/<name>`.
    pub fn marker_value(&self) -> String {
        format!("{MARKER_PREFIX}{}/{}", self.namespace, self.name)
    }

    /// Whether both name the same namespace and name, whatever their uids (an object deleted
    /// with `Orphan` and created again is the same object to its user).
    pub fn same_object(&self, other: &Self) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What a Foundry object says about who wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marker {
    /// Written by the operator for this object.
    Object(ObjectId),
    /// Written by an earlier release of the operator, which did not record the object.
    Legacy,
}

/// Reads a marker value (and the uid recorded beside it). A value that is neither ours nor the
/// legacy constant (another tool's, or malformed) is no marker at all.
pub fn parse_marker(value: &str, uid: Option<&str>) -> Option<Marker> {
    if value == LEGACY_MARKER {
        return Some(Marker::Legacy);
    }
    let (namespace, name) = value.strip_prefix(MARKER_PREFIX)?.split_once('/')?;
    let valid = |text: &str, dots: bool, max: usize| {
        !text.is_empty()
            && text.len() <= max
            && text.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.')
            })
    };
    (valid(namespace, false, 63) && valid(name, true, 253))
        .then(|| Marker::Object(ObjectId::new(namespace, name, uid)))
}

/// Who owns a Foundry object, as far as its marker tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ownership {
    /// The marker names this object (its uid may differ: the object was deleted with `Orphan`
    /// and created again; the next write records the new uid).
    Ours,
    /// The marker names another object: it must be looked up before anything is written.
    Foreign(ObjectId),
    /// No marker of ours.
    Unmarked,
    /// The legacy constant marker: the operator, but no object recorded.
    Legacy,
}

/// The ownership of a Foundry object carrying `marker`, seen from the object `me`.
pub fn ownership(marker: Option<&Marker>, me: &ObjectId) -> Ownership {
    match marker {
        None => Ownership::Unmarked,
        Some(Marker::Legacy) => Ownership::Legacy,
        Some(Marker::Object(owner)) if owner.same_object(me) => Ownership::Ours,
        Some(Marker::Object(owner)) => Ownership::Foreign(owner.clone()),
    }
}

/// What a lookup of the recorded owner found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists (with the recorded uid, when one is recorded).
    Alive,
    /// Confirmed gone: not found, or only an object of the same name with another uid.
    Gone,
    /// The lookup failed (e.g. Forbidden for an operator scoped to other namespaces): the owner
    /// may well be alive, so it is treated as such.
    Unknown(String),
}

impl OwnerState {
    /// Whether the owner keeps others from writing: everything but a confirmed absence.
    pub fn blocks(&self) -> bool {
        !matches!(self, Self::Gone)
    }
}

/// The answer of one lookup of an object by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// An object of that name exists, with this uid.
    Found(Option<String>),
    /// 404.
    NotFound,
    /// Any other failure, described.
    Failed(String),
}

/// The owner's state from a lookup, given the uid the marker recorded.
pub fn classify(recorded_uid: Option<&str>, lookup: Lookup) -> OwnerState {
    match lookup {
        Lookup::Found(uid) => match (recorded_uid, uid.as_deref()) {
            (Some(recorded), Some(found)) if recorded != found => OwnerState::Gone,
            _ => OwnerState::Alive,
        },
        Lookup::NotFound => OwnerState::Gone,
        Lookup::Failed(why) => OwnerState::Unknown(why),
    }
}

/// Looks the recorded owner up: the reflector store first (no request when it holds the owner
/// with the recorded uid), then a GET through the apiserver, which is the authority: a store
/// miss may only mean that the store does not cover the owner's namespace.
pub async fn owner_state<K>(client: &kube::Client, store: &Store<K>, owner: &ObjectId) -> OwnerState
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug,
{
    let reference = ObjectRef::<K>::new(&owner.name).within(&owner.namespace);
    if let Some(cached) = store.get(&reference) {
        let state = classify(owner.uid.as_deref(), Lookup::Found(cached.uid()));
        if state == OwnerState::Alive {
            return state;
        }
    }
    let api: Api<K> = Api::namespaced(client.clone(), &owner.namespace);
    let lookup = match api.get_opt(&owner.name).await {
        Ok(Some(object)) => Lookup::Found(object.uid()),
        Ok(None) => Lookup::NotFound,
        Err(kube::Error::Api(status)) => Lookup::Failed(format!(
            "HTTP {} {}",
            status.code,
            if status.reason.is_empty() {
                "error"
            } else {
                status.reason.as_str()
            }
        )),
        Err(error) => Lookup::Failed(format!("{error}")),
    };
    classify(owner.uid.as_deref(), lookup)
}

/// What a refused object asked for, for the message of an `OwnedElsewhere` refusal.
#[derive(Clone, Copy, Debug)]
pub struct Taken<'a> {
    /// The Foundry object (`Foundry connection "x"`).
    pub what: &'a str,
    /// The owner's kind.
    pub kind: &'a str,
    /// The field to change.
    pub fix: &'a str,
    /// Whether the refused object set `adopt`.
    pub adopt: bool,
}

/// The message of an `OwnedElsewhere` refusal: what is taken, by which object, and what to do.
pub fn owned_elsewhere_message(taken: &Taken<'_>, owner: &ObjectId, state: &OwnerState) -> String {
    let Taken {
        what,
        kind,
        fix,
        adopt,
    } = *taken;
    let uid = owner
        .uid
        .as_deref()
        .map(|uid| format!(" (uid {uid})"))
        .unwrap_or_default();
    let checked = match state {
        OwnerState::Unknown(why) => format!(", which could not be looked up ({why})"),
        OwnerState::Alive | OwnerState::Gone => String::new(),
    };
    let adopt = if adopt {
        "; spec.adopt never takes over what another object manages"
    } else {
        ""
    };
    format!(
        "The {what} is managed by {kind} {owner}{uid}{checked}{adopt}; choose another {fix} or delete that object"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(namespace: &str, name: &str, uid: Option<&str>) -> ObjectId {
        ObjectId::new(namespace, name, uid)
    }

    #[test]
    fn the_marker_decides_whose_object_it_is() {
        let me = id("team-a", "gw", Some("uid-a"));
        let cases: [(Option<Marker>, Ownership); 6] = [
            (None, Ownership::Unmarked),
            (Some(Marker::Legacy), Ownership::Legacy),
            (
                Some(Marker::Object(id("team-a", "gw", Some("uid-a")))),
                Ownership::Ours,
            ),
            // Deleted with Orphan and created again: still ours.
            (
                Some(Marker::Object(id("team-a", "gw", Some("uid-old")))),
                Ownership::Ours,
            ),
            (
                Some(Marker::Object(id("team-b", "gw", Some("uid-b")))),
                Ownership::Foreign(id("team-b", "gw", Some("uid-b"))),
            ),
            (
                Some(Marker::Object(id("team-a", "other", None))),
                Ownership::Foreign(id("team-a", "other", None)),
            ),
        ];
        for (marker, expected) in cases {
            assert_eq!(ownership(marker.as_ref(), &me), expected, "{marker:?}");
        }
    }

    #[test]
    fn markers_parse_ours_the_legacy_constant_and_nothing_else() {
        let cases: [(&str, Option<&str>, Option<Marker>); 9] = [
            (
                "foundry-gateway-operator:team-b/gw",
                Some("u1"),
                Some(Marker::Object(id("team-b", "gw", Some("u1")))),
            ),
            (
                "foundry-gateway-operator:team-b/gw.v2",
                None,
                Some(Marker::Object(id("team-b", "gw.v2", None))),
            ),
            (
                "foundry-gateway-operator:team-b/gw",
                Some(""),
                Some(Marker::Object(id("team-b", "gw", None))),
            ),
            ("foundry-gateway-operator", None, Some(Marker::Legacy)),
            ("someone-else", None, None),
            ("foundry-gateway-operator:", None, None),
            ("foundry-gateway-operator:team-b/", None, None),
            ("foundry-gateway-operator:team b/gw", None, None),
            ("foundry-gateway-operator:team.b/gw", None, None),
        ];
        for (value, uid, expected) in cases {
            assert_eq!(parse_marker(value, uid), expected, "{value:?}");
        }
        let me = id("ns", "name", Some("u"));
        assert_eq!(
            parse_marker(&me.marker_value(), me.uid.as_deref()),
            Some(Marker::Object(me))
        );
    }

    #[test]
    fn only_a_confirmed_absence_frees_what_another_object_owns() {
        let cases: [(Option<&str>, Lookup, OwnerState); 7] = [
            (
                Some("u1"),
                Lookup::Found(Some("u1".into())),
                OwnerState::Alive,
            ),
            (None, Lookup::Found(Some("u1".into())), OwnerState::Alive),
            (Some("u1"), Lookup::Found(None), OwnerState::Alive),
            // Another object of the same name: the recorded owner is gone.
            (
                Some("u1"),
                Lookup::Found(Some("u2".into())),
                OwnerState::Gone,
            ),
            (Some("u1"), Lookup::NotFound, OwnerState::Gone),
            (None, Lookup::NotFound, OwnerState::Gone),
            (
                Some("u1"),
                Lookup::Failed("HTTP 403 Forbidden".into()),
                OwnerState::Unknown("HTTP 403 Forbidden".into()),
            ),
        ];
        for (recorded, lookup, expected) in cases {
            let state = classify(recorded, lookup.clone());
            assert_eq!(state, expected, "{recorded:?} {lookup:?}");
            assert_eq!(state.blocks(), expected != OwnerState::Gone);
        }
    }

    #[test]
    fn the_refusal_names_the_owner_and_the_way_out() {
        let owner = id("team-b", "gw", Some("1234"));
        let message = owned_elsewhere_message(
            &Taken {
                what: "Foundry connection \"shared\"",
                kind: "GatewayConnection",
                fix: "spec.connectionName",
                adopt: false,
            },
            &owner,
            &OwnerState::Alive,
        );
        assert_eq!(
            message,
            "The Foundry connection \"shared\" is managed by GatewayConnection team-b/gw (uid 1234); choose another spec.connectionName or delete that object"
        );
        let message = owned_elsewhere_message(
            &Taken {
                what: "Foundry agent \"weather\"",
                kind: "PromptAgent",
                fix: "spec.agentName",
                adopt: true,
            },
            &id("team-b", "pa", None),
            &OwnerState::Unknown("HTTP 403 Forbidden".into()),
        );
        assert_eq!(
            message,
            "The Foundry agent \"weather\" is managed by PromptAgent team-b/pa, which could not be looked up (HTTP 403 Forbidden); spec.adopt never takes over what another object manages; choose another spec.agentName or delete that object"
        );
    }
}
