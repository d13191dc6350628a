use foundry_gateway_client::project::{AgentDefinition, AgentVersionObject, PromptAgentDefinition};
use serde_json::json;

use super::*;
use crate::ownership::{Marker, ObjectId};

const HASH: &str = "0123456789abcdef0123456789abcdef";
const OTHER: &str = "fedcba9876543210fedcba9876543210";

fn version(number: &str, created_at: i64, metadata: &[(&str, &str)]) -> AgentVersionObject {
    AgentVersionObject {
        object: "agent.version".into(),
        id: format!("weather:{number}"),
        name: "weather".into(),
        version: number.into(),
        description: None,
        metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        created_at,
        definition: AgentDefinition::from(PromptAgentDefinition::new("gw/gpt-4o")),
        status: None,
    }
}

/// The PromptAgent the tests reconcile.
fn me() -> ObjectId {
    ObjectId::new("team-a", "weather", Some("uid-a"))
}

/// A version made by the operator for `owner`.
fn made_for(owner: &ObjectId, number: &str, created_at: i64, hash: &str) -> AgentVersionObject {
    let marker = owner.marker_value();
    let uid = owner.uid.clone().unwrap_or_default();
    version(
        number,
        created_at,
        &[
            (SPEC_HASH_KEY, hash),
            (MANAGED_BY_KEY, &marker),
            (MANAGED_BY_UID_KEY, &uid),
        ],
    )
}

fn ours(number: &str, created_at: i64, hash: &str) -> AgentVersionObject {
    made_for(&me(), number, created_at, hash)
}

/// A version of another namespace's PromptAgent of the same agent name.
fn theirs(number: &str, created_at: i64, hash: &str) -> AgentVersionObject {
    made_for(
        &ObjectId::new("team-b", "weather", Some("uid-b")),
        number,
        created_at,
        hash,
    )
}

/// A version of an earlier release: the constant marker, no object.
fn legacy(number: &str, created_at: i64, hash: &str) -> AgentVersionObject {
    version(
        number,
        created_at,
        &[
            (SPEC_HASH_KEY, hash),
            (MANAGED_BY_KEY, LEGACY_MANAGED_BY_VALUE),
        ],
    )
}

fn by_hand(number: &str, created_at: i64) -> AgentVersionObject {
    version(number, created_at, &[("owner", "portal")])
}

/// Every order of a small list (Heap's algorithm).
fn permutations(items: &[AgentVersionObject]) -> Vec<Vec<AgentVersionObject>> {
    fn heap(k: usize, a: &mut Vec<AgentVersionObject>, out: &mut Vec<Vec<AgentVersionObject>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, a, out);
            a.swap(if k.is_multiple_of(2) { i } else { 0 }, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}

#[test]
fn an_agent_without_versions_needs_one() {
    assert!(needs_new_version(&[], HASH, &me()));
    assert!(latest_managed_version(&[]).is_none());
}

#[test]
fn nothing_is_created_when_our_latest_version_has_the_same_hash() {
    let versions = [ours("1", 100, OTHER), ours("2", 200, HASH)];
    assert!(!needs_new_version(&versions, HASH, &me()));
    assert_eq!(latest_managed_version(&versions).unwrap().version, "2");
    assert!(version_matches(&versions[1], HASH, &me()));
}

#[test]
fn a_version_is_created_when_our_latest_version_has_another_hash() {
    let versions = [ours("1", 100, HASH), ours("2", 200, OTHER)];
    assert!(
        needs_new_version(&versions, HASH, &me()),
        "a spec reverted to an older hash"
    );
    assert!(needs_new_version(&[ours("1", 100, OTHER)], HASH, &me()));
}

#[test]
fn a_newer_hand_made_version_after_ours_is_replaced_even_when_ours_has_the_same_hash() {
    let versions = [ours("1", 100, HASH), by_hand("2", 200)];
    assert!(needs_new_version(&versions, HASH, &me()));
    assert_eq!(latest_managed_version(&versions).unwrap().version, "1");
    assert_eq!(newest_version(&versions).unwrap().version, "2");
}

#[test]
fn a_hand_made_version_that_copied_our_hash_under_another_marker_is_not_ours() {
    let copied = version(
        "3",
        300,
        &[(SPEC_HASH_KEY, HASH), (MANAGED_BY_KEY, "someone-else")],
    );
    assert!(!is_managed(&copied));
    assert!(!version_matches(&copied, HASH, &me()));
    assert!(needs_new_version(
        &[ours("2", 200, HASH), copied],
        HASH,
        &me()
    ));
}

#[test]
fn the_decision_does_not_depend_on_the_order_versions_are_listed_in() {
    let cases = [
        (
            vec![
                ours("1", 100, OTHER),
                ours("2", 200, HASH),
                ours("3", 300, HASH),
            ],
            false,
        ),
        (
            vec![
                ours("1", 100, HASH),
                ours("2", 200, HASH),
                by_hand("3", 300),
            ],
            true,
        ),
        (
            vec![
                by_hand("1", 100),
                ours("2", 200, OTHER),
                ours("3", 300, HASH),
            ],
            false,
        ),
        (
            vec![
                ours("1", 100, HASH),
                by_hand("2", 200),
                ours("3", 300, OTHER),
            ],
            true,
        ),
    ];
    for (versions, expected) in cases {
        let latest_ours = latest_managed_version(&versions).map(|v| v.version.clone());
        for order in permutations(&versions) {
            assert_eq!(
                needs_new_version(&order, HASH, &me()),
                expected,
                "{order:?}"
            );
            assert_eq!(
                latest_managed_version(&order).map(|v| v.version.clone()),
                latest_ours
            );
        }
    }
}

#[test]
fn version_10_is_newer_than_version_9() {
    let versions = [ours("10", 1000, HASH), ours("9", 900, OTHER)];
    assert!(!needs_new_version(&versions, HASH, &me()));
    assert_eq!(latest_managed_version(&versions).unwrap().version, "10");
}

#[test]
fn versions_created_in_the_same_second_are_ordered_by_number() {
    let versions = [ours("4", 500, HASH), ours("3", 500, OTHER)];
    assert!(!needs_new_version(&versions, HASH, &me()));
    let reversed = [ours("3", 500, HASH), ours("4", 500, OTHER)];
    assert!(needs_new_version(&reversed, HASH, &me()));
}

#[test]
fn non_numeric_versions_fall_back_to_creation_time() {
    let versions = [ours("b", 200, HASH), ours("a", 100, OTHER)];
    assert!(!needs_new_version(&versions, HASH, &me()));
}

#[test]
fn versions_being_deleted_do_not_count() {
    let mut deleting = by_hand("3", 300);
    deleting.status = Some("deleting".into());
    let mut deleted = ours("4", 400, OTHER);
    deleted.status = Some("deleted".into());
    let versions = [ours("2", 200, HASH), deleting, deleted];
    assert!(!needs_new_version(&versions, HASH, &me()));
    assert_eq!(latest_managed_version(&versions).unwrap().version, "2");
}

#[test]
fn a_failed_version_of_ours_is_not_recreated_in_a_loop() {
    let mut failed = ours("2", 200, HASH);
    failed.status = Some("failed".into());
    assert!(!needs_new_version(&[failed], HASH, &me()));
}

#[test]
fn a_version_created_from_a_request_is_recognised_so_a_crash_before_the_status_write_creates_no_duplicate()
 {
    for user_keys in [0, 13, 14, 15] {
        let metadata: serde_json::Map<String, Value> = (0..user_keys)
            .map(|i| (format!("k{i:02}"), json!("v")))
            .collect();
        let spec = spec_with(json!({"metadata": metadata}));
        let desired = desired_version(&spec, "gw", None, &me()).unwrap();
        // What Foundry stores and lists back after the create (the operator then crashed).
        let created = AgentVersionObject {
            metadata: desired.request.metadata.clone(),
            definition: desired.request.definition.clone(),
            ..version("7", 700, &[])
        };
        assert!(is_managed(&created), "{user_keys} user keys");
        assert_eq!(
            version_marker(&created),
            Some(Marker::Object(me())),
            "{user_keys} user keys"
        );
        let listed = [ours("6", 600, OTHER), created];
        assert!(
            !needs_new_version(&listed, &desired.spec_hash, &me()),
            "{user_keys} user keys"
        );
    }
}

#[test]
fn user_metadata_alone_does_not_make_a_version_ours() {
    assert!(!is_managed(&version("1", 1, &[("team", "weather")])));
    assert!(!is_managed(&version("1", 1, &[])));
}

#[test]
fn the_owner_is_the_object_named_by_the_newest_version_that_names_one() {
    let cases: [(Vec<AgentVersionObject>, Option<Marker>); 6] = [
        (vec![], None),
        (vec![by_hand("1", 100)], None),
        (vec![legacy("1", 100, HASH)], Some(Marker::Legacy)),
        (vec![ours("1", 100, HASH)], Some(Marker::Object(me()))),
        (
            vec![ours("1", 100, HASH), theirs("2", 200, HASH)],
            Some(Marker::Object(ObjectId::new(
                "team-b",
                "weather",
                Some("uid-b"),
            ))),
        ),
        // A version made by hand on top does not change the owner.
        (
            vec![theirs("1", 100, HASH), by_hand("2", 200)],
            Some(Marker::Object(ObjectId::new(
                "team-b",
                "weather",
                Some("uid-b"),
            ))),
        ),
    ];
    for (versions, expected) in cases {
        for order in permutations(&versions) {
            assert_eq!(agent_marker(&order), expected, "{order:?}");
        }
    }
}

#[test]
fn a_version_of_an_earlier_release_is_ours_and_gets_this_objects_marker_once() {
    let versions = [legacy("1", 100, HASH)];
    assert_eq!(
        crate::ownership::ownership(agent_marker(&versions).as_ref(), &me()),
        crate::ownership::Ownership::Legacy
    );
    assert!(is_managed(&versions[0]));
    assert!(
        needs_new_version(&versions, HASH, &me()),
        "the same definition, written again with this object as its owner"
    );
    let remarked = [legacy("1", 100, HASH), ours("2", 200, HASH)];
    assert!(!needs_new_version(&remarked, HASH, &me()));
    // An earlier release with 15 user keys wrote the hash alone.
    let hash_only = version("1", 100, &[(SPEC_HASH_KEY, HASH)]);
    assert_eq!(version_marker(&hash_only), Some(Marker::Legacy));
}

#[test]
fn a_recreated_object_is_still_the_owner_and_records_its_new_uid_in_one_version() {
    let before = ObjectId::new("team-a", "weather", Some("uid-old"));
    let versions = [made_for(&before, "1", 100, HASH)];
    assert_eq!(
        crate::ownership::ownership(agent_marker(&versions).as_ref(), &me()),
        crate::ownership::Ownership::Ours
    );
    assert!(needs_new_version(&versions, HASH, &me()));
    assert!(!version_matches(&versions[0], HASH, &me()));
}

#[test]
fn another_objects_version_is_never_a_match_even_with_the_same_hash() {
    let versions = [theirs("1", 100, HASH)];
    assert!(is_managed(&versions[0]));
    assert!(!version_matches(&versions[0], HASH, &me()));
    assert!(needs_new_version(&versions, HASH, &me()));
}

#[test]
fn deleting_an_object_deletes_only_an_agent_whose_versions_it_made() {
    let them = ObjectId::new("team-b", "weather", Some("uid-b"));
    let cases: [(Vec<AgentVersionObject>, Deletion); 8] = [
        (vec![], Deletion::Nothing),
        (vec![ours("1", 100, HASH)], Deletion::Delete),
        (
            vec![made_for(
                &ObjectId::new("team-a", "weather", Some("uid-old")),
                "1",
                100,
                HASH,
            )],
            Deletion::Delete,
        ),
        (vec![legacy("1", 100, HASH)], Deletion::Delete),
        (
            vec![theirs("1", 100, HASH)],
            Deletion::OwnedElsewhere(them.clone()),
        ),
        (
            vec![ours("1", 100, HASH), theirs("2", 200, HASH)],
            Deletion::OwnedElsewhere(them),
        ),
        (vec![by_hand("1", 100)], Deletion::MadeElsewhere),
        (
            vec![ours("1", 100, HASH), by_hand("2", 200)],
            Deletion::MadeElsewhere,
        ),
    ];
    for (versions, expected) in cases {
        assert_eq!(deletion(&versions, &me()), expected, "{versions:?}");
    }
}

// ----- plan_version -----------------------------------------------------------------------------

/// The desired version of `me` for the model `gw/gpt-4o` with these instructions.
fn desired(instructions: Option<&str>) -> DesiredVersion {
    let spec: foundry_gateway_api::PromptAgentSpec = serde_json::from_value(json!({
        "projectRef": {"name": "p"},
        "model": {"connectionRef": {"name": "gw"}, "name": "gpt-4o"},
    }))
    .unwrap();
    desired_version(&spec, "gw", instructions, &me()).unwrap()
}

/// A version made by hand (no operator key) with this definition.
fn written_by_hand(
    number: &str,
    created_at: i64,
    instructions: Option<&str>,
) -> AgentVersionObject {
    let mut definition = PromptAgentDefinition::new("gw/gpt-4o");
    definition.instructions = instructions.map(str::to_owned);
    AgentVersionObject {
        definition: AgentDefinition::from(definition),
        ..version(number, created_at, &[])
    }
}

#[test]
fn plan_version_serves_ours_adopts_an_identical_agent_made_by_hand_and_creates_otherwise() {
    let want = desired(Some("Be brief."));
    let hash = want.spec_hash.clone();
    let cases: Vec<(&str, Vec<AgentVersionObject>, VersionPlan)> = vec![
        ("no version", vec![], VersionPlan::Create),
        (
            "ours on top with this hash",
            vec![
                written_by_hand("1", 1, Some("Be brief.")),
                ours("2", 2, &hash),
            ],
            VersionPlan::Serve("2".into()),
        ),
        (
            "made by hand, same content",
            vec![
                written_by_hand("1", 1, None),
                written_by_hand("2", 2, Some("Be brief.")),
            ],
            VersionPlan::AdoptAsIs("2".into()),
        ),
        (
            "made by hand, other instructions",
            vec![written_by_hand("1", 1, Some("Be long."))],
            VersionPlan::Create,
        ),
        (
            "same content by hand on top of ours: the operator's rule holds",
            vec![
                ours("1", 1, OTHER),
                written_by_hand("2", 2, Some("Be brief.")),
            ],
            VersionPlan::Create,
        ),
        (
            "same content on top of another object's version",
            vec![
                theirs("1", 1, OTHER),
                written_by_hand("2", 2, Some("Be brief.")),
            ],
            VersionPlan::Create,
        ),
        (
            "an earlier release's version",
            vec![version(
                "1",
                1,
                &[(MANAGED_BY_KEY, LEGACY_MANAGED_BY_VALUE)],
            )],
            VersionPlan::Create,
        ),
    ];
    for (case, versions, expected) in cases {
        assert_eq!(plan_version(&versions, &want, &me()), expected, "{case}");
    }
}
