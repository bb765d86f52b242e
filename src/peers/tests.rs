use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::journal::Entry;

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 5, 19, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn audit(action: AuditAction, detail: &str) -> Entry {
    let entry =
        AuditEntry { at: at(5), actor: "night-shift".into(), action, target: "A1".into(), detail: detail.into() };
    Entry { seq: 1, at: at(5), event: Event::Audit(Arc::new(entry)), from_peer: false }
}

#[test]
fn operator_actions_become_operations_peers_can_apply() {
    let ack = PeerOp::from_entry(&audit(AuditAction::Ack, "valve checked"), |_| None).expect("shared");
    assert_eq!(
        ack,
        PeerOp::Ack(AlarmAck {
            id: "A1".into(),
            by: "night-shift".into(),
            comment: Some("valve checked".into()),
            at: at(5)
        })
    );
    assert_eq!(PeerOp::parse(ack.kind(), ack.to_json().as_bytes()), Some(ack));

    let shelved = |id: &str| (id == "A1").then(|| (at(3605), Some("maintenance".into())));
    let shelve = PeerOp::from_entry(&audit(AuditAction::Shelve, "for 1h: maintenance"), shelved).expect("shared");
    let PeerOp::Shelve(shelve) = shelve else { panic!("{shelve:?}") };
    assert_eq!((shelve.until, shelve.reason.as_deref()), (at(3605), Some("maintenance")));

    assert_eq!(PeerOp::from_entry(&audit(AuditAction::UnshelveExpired, ""), |_| None), None);
    assert!(matches!(PeerOp::from_entry(&audit(AuditAction::Reload, "x"), |_| None), Some(PeerOp::Audit(_))));
}

#[test]
fn what_a_peer_told_is_never_published_again() {
    let mut entry = audit(AuditAction::Ack, "");
    entry.from_peer = true;
    assert_eq!(PeerOp::from_entry(&entry, |_| None), None);
}

#[test]
fn unknown_kinds_and_bad_json_are_skipped() {
    assert_eq!(PeerOp::parse("teleport", b"{}"), None);
    assert_eq!(PeerOp::parse("ack", b"{not json"), None);
    assert_eq!(PeerOp::parse("ack", &vec![b' '; MAX_ENTRY_JSON + 1]), None);
}

#[test]
fn peers_not_heard_from_lately_are_stale() {
    let record = |updated: i64| {
        serde_json::to_string(&PeerRecord { shard: 0, started_at: at(0), updated_at: at(updated) }).unwrap()
    };
    let fields: BTreeMap<String, String> =
        [("a".into(), record(100)), ("b".into(), record(80)), ("c".into(), "garbage".into())].into();
    let views = peer_views(&fields, "a", at(100));
    assert_eq!(views.len(), 2);
    assert!(!views[0].stale && views[0].this);
    assert!(views[1].stale && !views[1].this);
    assert_eq!(fallback_position(at(0)), format!("{}-0", at(0).timestamp_millis() - 60_000));
}

#[test]
fn a_peer_silent_for_a_day_is_forgotten_but_never_this_daemon_nor_an_entry_another_version_wrote() {
    let record = |updated: i64| {
        serde_json::to_string(&PeerRecord { shard: 0, started_at: at(0), updated_at: at(updated) }).unwrap()
    };
    let day = FORGET_AFTER.num_seconds();
    let fields: BTreeMap<String, String> = [
        ("me".into(), record(0)),
        ("restarting".into(), record(day)),
        ("retired".into(), record(10)),
        ("garbage".into(), "{".into()),
        ("huge".into(), format!("{} {}", record(day), " ".repeat(2000))),
    ]
    .into();
    let gone: Vec<String> = forgotten(&fields, "me", at(day + 11)).into_iter().map(|(instance, _)| instance).collect();
    assert_eq!(gone, ["retired"]);
}

#[test]
fn status_lists_this_daemon_first_then_the_freshest_others_within_a_bound() {
    let record = |updated: i64| {
        serde_json::to_string(&PeerRecord { shard: 0, started_at: at(0), updated_at: at(updated) }).unwrap()
    };
    let mut fields: BTreeMap<String, String> = (0..100).map(|i| (format!("peer-{i:03}"), record(i))).collect();
    fields.insert("me".into(), record(0));
    let views = peer_views(&fields, "me", at(100));
    assert_eq!(views.len(), MAX_PEERS_LISTED);
    assert!(views[0].this);
    assert_eq!(views[1].instance, "peer-099");
    assert_eq!(views[MAX_PEERS_LISTED - 1].instance, format!("peer-{:03}", 100 - (MAX_PEERS_LISTED - 1)));
}
