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

/// The scores the primary gives the standbys it sees, by node. Scores move
/// by tiers, not by byte, so that a busy primary does not rewrite them on
/// every monitor. `None`: the standby must not be promoted.
pub fn standby_scores(
    current: Lsn,
    standbys: &[Standby],
    sync: SyncPolicy,
    max_lag: Option<u64>,
) -> BTreeMap<String, Option<Score>> {
    standbys
        .iter()
        .filter(|s| !s.name.is_empty())
        .map(|s| {
            let lag = s.flushed.map(|f| current.0.saturating_sub(f.0));
            let score = match lag {
                _ if !s.is_streaming() => None,
                None => None,
                // Under strict only a standby that held every commit may
                // take over: an asynchronous one may lack acknowledged rows.
                Some(_) if sync == SyncPolicy::Strict && !s.is_synchronous() => None,
                Some(lag) if max_lag.is_some_and(|max| lag > max) => None,
                Some(_) if s.is_synchronous() => Some(CAUGHT_UP),
                Some(lag) if lag <= CAUGHT_UP_BYTES => Some(CAUGHT_UP),
                Some(lag) if lag <= BEHIND_BYTES => Some(BEHIND),
                Some(_) => Some(FAR_BEHIND),
            };
            (s.name.clone(), score)
        })
        .collect()
}

/// `synchronous_standby_names` as the policy wants it now. Under
/// `available`, only while a standby streams: a commit waits for a
/// synchronous standby, and with none connected it would wait forever.
pub fn wanted_sync_names(sync: SyncPolicy, standbys: &[Standby]) -> &'static str {
    match sync {
        SyncPolicy::Off => "",
        SyncPolicy::Strict => "*",
        SyncPolicy::Available if standbys.iter().any(Standby::is_streaming) => "*",
        SyncPolicy::Available => "",
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
    }

    #[test]
    fn available_is_synchronous_only_while_a_standby_streams() {
        let streaming = [standby("node2", "streaming", "async", 0)];
        let catching_up = [standby("node2", "catchup", "async", 0)];
        assert_eq!(wanted_sync_names(SyncPolicy::Available, &streaming), "*");
        assert_eq!(wanted_sync_names(SyncPolicy::Available, &catching_up), "");
        assert_eq!(wanted_sync_names(SyncPolicy::Available, &[]), "");
        assert_eq!(wanted_sync_names(SyncPolicy::Strict, &[]), "*");
        assert_eq!(wanted_sync_names(SyncPolicy::Off, &streaming), "");
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
