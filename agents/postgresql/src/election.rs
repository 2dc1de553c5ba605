//! Who may become primary, and who should: promotion scores from observed
//! WAL positions, the synchronous setting the primary wants, the best of
//! the candidates at promotion time, and whether a primary is stale.
//!
//! Pure functions over observed state; the actions apply them.

use crate::config::SyncPolicy;
use crate::replication::Standby;
use crate::wal::{Lsn, Position};
use ocf::attributes::Score;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The primary's own score: above every standby's, so Pacemaker keeps it.
pub const PRIMARY_SCORE: Score = Score::Value(1001);
/// A standby the primary saw caught up (or synchronous).
pub const CAUGHT_UP: Score = Score::Value(1000);
/// A standby streaming but somewhat behind.
pub const BEHIND: Score = Score::Value(900);
/// A standby streaming far behind (but within max_lag).
pub const FAR_BEHIND: Score = Score::Value(800);
/// A standby that never saw a primary since it started, and has no score:
/// the cluster is starting up with no primary. The candidates' WAL
/// positions, compared at promotion, pick the right one among them.
pub const NO_PRIMARY_YET: Score = Score::Value(10);
/// The same, for a former primary shut down cleanly or crashed.
pub const FORMER_PRIMARY: Score = Score::Value(100);

const CAUGHT_UP_BYTES: u64 = 1 << 20;
const BEHIND_BYTES: u64 = 16 << 20;

/// The nodes that may stream from this primary as a standby: the
/// cluster's other nodes, but only those whose name survives as an
/// `application_name` (PostgreSQL cuts it to 63 bytes and shows non-ASCII
/// bytes as `?`; such a node's start refuses to run, so it never streams).
pub fn peers(nodes: &[String], me: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.as_str() != me && crate::validate::check_node_name(n).is_ok())
        .cloned()
        .collect()
}

/// The walsenders that serve a cluster node. A `pg_receivewal`, a base
/// backup or any other tool connected for replication is no promotion
/// candidate, and must neither get a score nor release a commit. With no
/// node list (`None`: the cluster could not be asked), every named one.
pub fn cluster_standbys(standbys: &[Standby], peers: Option<&[String]>) -> Vec<Standby> {
    standbys
        .iter()
        .filter(|s| !s.name.is_empty())
        .filter(|s| peers.is_none_or(|p| p.contains(&s.name)))
        .cloned()
        .collect()
}

/// The scores the primary gives the standbys it sees, by node (see
/// [`score_of`]).
pub fn standby_scores(
    current: Lsn,
    standbys: &[Standby],
    sync: SyncPolicy,
    max_lag: Option<u64>,
) -> BTreeMap<String, Option<Score>> {
    standbys
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| (s.name.clone(), score_of(current, s, sync, max_lag)))
        .collect()
}

/// The score the primary gives one standby's connection. Scores move by
/// tiers, not by byte, so that a busy primary does not rewrite them on
/// every monitor. `None`: the standby must not be promoted.
pub fn score_of(
    current: Lsn,
    s: &Standby,
    sync: SyncPolicy,
    max_lag: Option<u64>,
) -> Option<Score> {
    let lag = s.flushed.map(|f| current.0.saturating_sub(f.0));
    match lag {
        _ if !s.is_streaming() => None,
        None => None,
        // Under strict only a standby that held every commit may take
        // over: an asynchronous one may lack acknowledged rows.
        Some(_) if sync == SyncPolicy::Strict && !s.is_synchronous() => None,
        Some(lag) if max_lag.is_some_and(|max| lag > max) => None,
        Some(_) if s.is_synchronous() => Some(CAUGHT_UP),
        Some(lag) if lag <= CAUGHT_UP_BYTES => Some(CAUGHT_UP),
        Some(lag) if lag <= BEHIND_BYTES => Some(BEHIND),
        Some(_) => Some(FAR_BEHIND),
    }
}

/// `synchronous_standby_names` as the policy wants it now, given the
/// walsenders of cluster nodes (see [`cluster_standbys`]) and the nodes
/// that may stream (`None`: unknown). Under `available`, only while a
/// cluster node streams: a commit waits for a synchronous standby, and
/// with none connected it would wait forever.
///
/// The cluster's nodes, never `*`, which any walsender matches (a
/// `pg_receivewal --synchronous`, a base backup). Under `strict`,
/// `FIRST 1 (...)`: exactly one standby is synchronous and holds every
/// acknowledged commit, and only it is scored, so that losing it with the
/// primary never promotes one that lacks commits; it stays first, so that
/// a standby joining does not take the role over. Under `available`,
/// `ANY 1 (...)`: whichever standby acknowledges first releases a commit,
/// so one that hangs (its walsender still "streaming" until
/// `wal_sender_timeout`) does not stall the primary; every standby then
/// shows `quorum`, none is known to hold a given commit, and they are
/// ranked by flushed WAL (the furthest holds every acknowledged commit,
/// WAL being one sequence). With no node list, `*` as before.
pub fn wanted_sync_names(
    sync: SyncPolicy,
    standbys: &[Standby],
    peers: Option<&[String]>,
) -> String {
    match sync {
        SyncPolicy::Off => return String::new(),
        SyncPolicy::Available if !standbys.iter().any(Standby::is_streaming) => {
            return String::new()
        }
        _ => {}
    }
    let current = standbys
        .iter()
        .find(|s| s.is_synchronous())
        .map(|s| s.name.as_str());
    sync_list(sync, current, peers)
}

/// The list itself (see [`wanted_sync_names`]), `current` being the
/// synchronous standby now, if any: for a new primary too, before any
/// standby streams.
pub fn sync_list(sync: SyncPolicy, current: Option<&str>, peers: Option<&[String]>) -> String {
    if sync == SyncPolicy::Off {
        return String::new();
    }
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        return "*".to_string();
    };
    let current = current
        .filter(|c| peers.iter().any(|p| p == c))
        .filter(|_| sync == SyncPolicy::Strict);
    let mut ordered: Vec<&str> = current.into_iter().collect();
    let mut rest: Vec<&str> = peers
        .iter()
        .map(String::as_str)
        .filter(|p| Some(*p) != current)
        .collect();
    rest.sort_unstable();
    ordered.extend(rest);
    let quoted: Vec<String> = ordered
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect();
    let method = if sync == SyncPolicy::Strict {
        "FIRST"
    } else {
        "ANY"
    };
    format!("{method} 1 ({})", quoted.join(", "))
}

/// What a change of `synchronous_standby_names` does to commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncChange {
    None,
    /// Commits wait for a standby (again, or for another list).
    Wait,
    /// Commits stop waiting: they are acknowledged with no standby holding
    /// them, so no other node may be promoted from then on.
    Release,
}

pub fn sync_change(current: &str, wanted: &str) -> SyncChange {
    match (current == wanted, wanted.is_empty()) {
        (true, _) => SyncChange::None,
        (false, true) => SyncChange::Release,
        (false, false) => SyncChange::Wait,
    }
}

/// How a standby's WAL receiver is doing, for its monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    Streaming,
    /// Not streaming for this long, within the bound.
    Silent(Duration),
    /// Not streaming for longer than the bound.
    TooLong(Duration),
}

/// `silent_since`: when a monitor first saw the receiver not streaming
/// (`None`: this is the first). Gaps of a few seconds are normal (the WAL
/// receiver retries every 5 s after a failed connection); a dead
/// connection that still shows `streaming` is the WAL receiver's own
/// business (`wal_receiver_timeout`).
pub fn receiver(
    streaming: bool,
    silent_since: Option<SystemTime>,
    now: SystemTime,
    bound: Option<Duration>,
) -> Receiver {
    if streaming {
        return Receiver::Streaming;
    }
    let silent = silent_since
        .and_then(|since| now.duration_since(since).ok())
        .unwrap_or_default();
    match bound {
        Some(bound) if silent > bound => Receiver::TooLong(silent),
        _ => Receiver::Silent(silent),
    }
}

/// The node with the furthest WAL among `candidates`, and its position. On
/// a tie, `prefer` (the node Pacemaker chose) wins.
pub fn best_candidate<'a>(
    candidates: &'a BTreeMap<String, Position>,
    prefer: &str,
) -> Option<(&'a str, Position)> {
    candidates
        .iter()
        .max_by_key(|(node, pos)| (**pos, node.as_str() == prefer))
        .map(|(node, pos)| (node.as_str(), *pos))
}

/// A node on a newer timeline than this primary's: then this primary is a
/// stale one, left from before a failover it did not take part in.
pub fn newer_timeline<'a>(
    me: &str,
    my_timeline: u32,
    timelines: &'a BTreeMap<String, String>,
) -> Option<(&'a str, u32)> {
    timelines
        .iter()
        .filter(|(node, _)| node.as_str() != me)
        .filter_map(|(node, t)| Some((node.as_str(), t.parse::<u32>().ok()?)))
        .filter(|(_, t)| *t > my_timeline)
        .max_by_key(|(_, t)| *t)
}

/// After a planned demote, whether this standby holds everything the old
/// primary wrote: it must have replayed past the old primary's shutdown
/// checkpoint (the checkpoint record starts at `checkpoint.lsn`; replaying
/// it moves the replay position beyond). A marker from an older timeline
/// predates a promotion since and says nothing.
pub fn shutdown_checkpoint_replayed(my_timeline: u32, replayed: Lsn, checkpoint: Position) -> bool {
    match checkpoint.timeline.cmp(&my_timeline) {
        std::cmp::Ordering::Less => true,
        std::cmp::Ordering::Equal => replayed > checkpoint.lsn,
        std::cmp::Ordering::Greater => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standby(name: &str, state: &str, sync: &str, flushed: u64) -> Standby {
        Standby {
            name: name.into(),
            state: state.into(),
            sync_state: sync.into(),
            flushed: Some(Lsn(flushed)),
            walsender: 1,
            connected_at: String::new(),
        }
    }

    #[test]
    fn scores_follow_the_lag_in_tiers() {
        let now = 100 << 20;
        let standbys = [
            standby("node2", "streaming", "sync", now - (5 << 20)),
            standby("node3", "streaming", "async", now - 1000),
            standby("node4", "streaming", "async", now - (10 << 20)),
            standby("node5", "streaming", "async", now - (50 << 20)),
            standby("node6", "catchup", "async", now),
        ];
        let s = standby_scores(Lsn(now), &standbys, SyncPolicy::Available, None);
        assert_eq!(
            s["node2"],
            Some(CAUGHT_UP),
            "synchronous: holds every commit"
        );
        assert_eq!(s["node3"], Some(CAUGHT_UP));
        assert_eq!(s["node4"], Some(BEHIND));
        assert_eq!(s["node5"], Some(FAR_BEHIND));
        assert_eq!(s["node6"], None, "not streaming yet");
        assert!(CAUGHT_UP > BEHIND && BEHIND > FAR_BEHIND && PRIMARY_SCORE > CAUGHT_UP);

        let bounded = standby_scores(Lsn(now), &standbys, SyncPolicy::Available, Some(20 << 20));
        assert_eq!(bounded["node4"], Some(BEHIND));
        assert_eq!(bounded["node5"], None, "beyond max_lag");

        let strict = standby_scores(Lsn(now), &standbys, SyncPolicy::Strict, None);
        assert_eq!(strict["node2"], Some(CAUGHT_UP));
        assert_eq!(strict["node3"], None, "asynchronous under strict");

        // Under ANY 1 every standby shows quorum: ranked by flushed WAL.
        let quorum = [
            standby("node2", "streaming", "quorum", now - (5 << 20)),
            standby("node3", "streaming", "quorum", now - 1000),
        ];
        let s = standby_scores(Lsn(now), &quorum, SyncPolicy::Available, None);
        assert_eq!(s["node2"], Some(BEHIND));
        assert_eq!(s["node3"], Some(CAUGHT_UP));
    }

    #[test]
    fn available_is_synchronous_only_while_a_cluster_node_streams() {
        let peers = vec!["node2".to_string(), "node3".to_string()];
        let p = Some(peers.as_slice());
        let streaming = [standby("node2", "streaming", "async", 0)];
        let catching_up = [standby("node2", "catchup", "async", 0)];
        let any = r#"ANY 1 ("node2", "node3")"#;
        let first = r#"FIRST 1 ("node2", "node3")"#;
        assert_eq!(wanted_sync_names(SyncPolicy::Available, &streaming, p), any);
        assert_eq!(
            wanted_sync_names(SyncPolicy::Available, &catching_up, p),
            ""
        );
        assert_eq!(wanted_sync_names(SyncPolicy::Available, &[], p), "");
        assert_eq!(wanted_sync_names(SyncPolicy::Strict, &[], p), first);
        assert_eq!(wanted_sync_names(SyncPolicy::Off, &streaming, p), "");
        // Unknown nodes: any walsender, as before.
        assert_eq!(wanted_sync_names(SyncPolicy::Strict, &[], None), "*");
        assert_eq!(
            wanted_sync_names(SyncPolicy::Available, &streaming, None),
            "*"
        );
    }

    #[test]
    fn only_cluster_nodes_count_and_the_synchronous_one_stays_first() {
        let nodes: Vec<String> = ["node1", "node2", "node3", "n\"x", &"n".repeat(64), "nœud"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let peers = peers(&nodes, "node1");
        assert_eq!(
            peers,
            ["node2", "node3", "n\"x"],
            "itself, and names no standby can have"
        );
        let walsenders = [
            standby("pg_receivewal", "streaming", "sync", 0),
            standby("node3", "streaming", "potential", 0),
            standby("", "backup", "async", 0),
        ];
        let mine = cluster_standbys(&walsenders, Some(&peers));
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].name, "node3");
        assert_eq!(cluster_standbys(&walsenders, None).len(), 2);
        // pg_receivewal streaming alone releases no commit under available.
        let receiver_only = cluster_standbys(&walsenders[..1], Some(&peers));
        assert_eq!(
            wanted_sync_names(SyncPolicy::Available, &receiver_only, Some(&peers)),
            ""
        );
        let now_sync = [
            standby("node3", "streaming", "sync", 0),
            standby("node2", "streaming", "potential", 0),
        ];
        assert_eq!(
            wanted_sync_names(SyncPolicy::Strict, &now_sync, Some(&peers)),
            r#"FIRST 1 ("node3", "n""x", "node2")"#
        );
        // Under ANY the order says nothing: sorted.
        assert_eq!(
            wanted_sync_names(SyncPolicy::Available, &now_sync, Some(&peers)),
            r#"ANY 1 ("n""x", "node2", "node3")"#
        );
    }

    #[test]
    fn a_receiver_silent_beyond_the_bound_is_reported_from_the_first_silent_monitor() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let bound = Some(Duration::from_secs(30));
        assert_eq!(receiver(true, Some(t0), t0, bound), Receiver::Streaming);
        assert_eq!(
            receiver(false, None, t0, bound),
            Receiver::Silent(Duration::ZERO)
        );
        let later = t0 + Duration::from_secs(31);
        assert_eq!(
            receiver(false, Some(t0), later, bound),
            Receiver::TooLong(Duration::from_secs(31))
        );
        assert_eq!(
            receiver(false, Some(t0), t0 + Duration::from_secs(30), bound),
            Receiver::Silent(Duration::from_secs(30))
        );
        assert_eq!(
            receiver(false, Some(t0), later, None),
            Receiver::Silent(Duration::from_secs(31)),
            "no bound"
        );
        // A clock stepped back: no silence rather than a huge one.
        assert_eq!(
            receiver(false, Some(later), t0, bound),
            Receiver::Silent(Duration::ZERO)
        );
    }

    #[test]
    fn only_emptying_the_list_releases_commits() {
        let list = r#"FIRST 1 ("node2")"#;
        assert_eq!(sync_change(list, ""), SyncChange::Release);
        assert_eq!(sync_change("*", ""), SyncChange::Release);
        assert_eq!(sync_change("", list), SyncChange::Wait);
        assert_eq!(sync_change(r#"FIRST 1 ("node3")"#, list), SyncChange::Wait);
        assert_eq!(sync_change(list, list), SyncChange::None);
        assert_eq!(sync_change("", ""), SyncChange::None);
    }

    #[test]
    fn the_furthest_candidate_wins_and_a_tie_keeps_pacemakers_choice() {
        let pos = |s: &str| s.parse::<Position>().unwrap();
        let mut c = BTreeMap::new();
        c.insert("node1".to_string(), pos("2:0/5000000"));
        c.insert("node2".to_string(), pos("2:0/6000000"));
        c.insert("node3".to_string(), pos("1:0/9000000"));
        assert_eq!(best_candidate(&c, "node1").unwrap().0, "node2");
        c.insert("node1".to_string(), pos("2:0/6000000"));
        assert_eq!(best_candidate(&c, "node1").unwrap().0, "node1");
        assert_eq!(best_candidate(&c, "node2").unwrap().0, "node2");
        assert_eq!(best_candidate(&BTreeMap::new(), "node1"), None);
    }

    #[test]
    fn a_primary_behind_another_nodes_timeline_is_stale() {
        let mut t = BTreeMap::new();
        t.insert("node1".to_string(), "2".to_string());
        t.insert("node2".to_string(), "3".to_string());
        t.insert("node3".to_string(), "garbage".to_string());
        assert_eq!(newer_timeline("node1", 2, &t), Some(("node2", 3)));
        assert_eq!(newer_timeline("node2", 3, &t), None);
        assert_eq!(newer_timeline("node1", 3, &t), None);
    }

    #[test]
    fn promotion_after_demote_needs_the_shutdown_checkpoint_replayed() {
        let ckpt: Position = "2:0/5000028".parse().unwrap();
        let at = |s: &str| s.parse::<Lsn>().unwrap();
        assert!(!shutdown_checkpoint_replayed(2, at("0/5000000"), ckpt));
        assert!(
            !shutdown_checkpoint_replayed(2, at("0/5000028"), ckpt),
            "strict"
        );
        assert!(shutdown_checkpoint_replayed(2, at("0/50000A0"), ckpt));
        assert!(
            shutdown_checkpoint_replayed(3, at("0/0"), ckpt),
            "an old marker"
        );
        assert!(!shutdown_checkpoint_replayed(1, at("0/9000000"), ckpt));
    }
}
