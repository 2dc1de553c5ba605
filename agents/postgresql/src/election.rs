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
/// The standby the primary reports synchronous (`FIRST 1`): it holds every
/// acknowledged commit, so it outranks one that merely caught up. A
/// promotion steered to another node gives that node this score too.
pub const SYNCHRONOUS: Score = Score::Value(1000);
/// A standby the primary saw caught up.
pub const CAUGHT_UP: Score = Score::Value(990);
/// A standby that elected itself while no primary runs anywhere (see
/// [`elect`]).
pub const ELECTED: Score = Score::Value(500);
/// A node a promotion was steered away from.
pub const STEERED_AWAY: Score = Score::Value(1);
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
        Some(_) if s.is_synchronous() => Some(SYNCHRONOUS),
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

/// What another candidate of a promotion has told, so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Its WAL position.
    Position(Position),
    /// Nothing yet, though its node is online and its instance runs: slow
    /// (its notification throttled, attrd busy). Waited for.
    Nothing,
    /// It never will: its node is offline or fenced, or its instance is
    /// not running (why).
    Gone(String),
}

/// What the node about to be promoted concludes from the candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// This node holds every acknowledged commit: how it compared.
    Promote(String),
    /// Candidates that may hold more WAL have not told yet.
    Wait(Vec<String>),
    /// Not this node: why, and the node Pacemaker should promote instead
    /// (none when no node may be promoted without a person).
    Refuse {
        why: String,
        instead: Option<String>,
    },
}

/// Whether this node (`me`, at `mine`) may be promoted, given what every
/// other candidate said and which node the primary last reported
/// synchronous (`synchronous`, from the scores: see [`synchronous_of`]).
///
/// No candidate is ever skipped because it is slow: one that may hold
/// more WAL is waited for (the caller turns a wait that outlasts its
/// budget into a refusal naming it). The synchronous standby holds every
/// acknowledged commit: it proceeds without the others, and outranks any
/// node behind it (one exactly as far holds the same WAL). A candidate
/// that is gone (node offline, instance stopped) is passed over under
/// `available` and `off`, which promise nothing once the standby holding
/// the commits is lost too; under `strict` it may have been the
/// synchronous one, so only the recorded synchronous standby, or a node
/// at least as far as it, proceeds.
pub fn judge(
    me: &str,
    mine: Position,
    sync: SyncPolicy,
    synchronous: Option<&str>,
    others: &BTreeMap<String, Said>,
) -> Judgement {
    let synchronous = synchronous.filter(|_| sync != SyncPolicy::Off);
    if synchronous == Some(me) {
        return Judgement::Promote("the synchronous standby".to_string());
    }
    let mut passed_over = Vec::new();
    let mut sync_compared = false;
    if let Some(x) = synchronous {
        match others.get(x) {
            // As far as this node is the same WAL: either may go.
            Some(Said::Position(p)) if *p > mine => {
                return Judgement::Refuse {
                    why: format!(
                        "{x}, the synchronous standby, holds every acknowledged commit ({p}; \
                         this node {mine})"
                    ),
                    instead: Some(x.to_string()),
                }
            }
            Some(Said::Position(_)) => sync_compared = true,
            Some(Said::Nothing) => {}
            gone => {
                let why = match gone {
                    Some(Said::Gone(why)) => why.clone(),
                    _ => "not a candidate".to_string(),
                };
                if sync == SyncPolicy::Strict {
                    return Judgement::Refuse {
                        why: format!(
                            "{x}, the synchronous standby, is gone ({why}): under sync=strict \
                             no other node is known to hold every acknowledged commit"
                        ),
                        instead: None,
                    };
                }
                passed_over.push(format!("{x} ({why})"));
            }
        }
    }
    let missing: Vec<String> = others
        .iter()
        .filter(|(_, said)| **said == Said::Nothing)
        .map(|(node, _)| node.clone())
        .collect();
    if !missing.is_empty() {
        return Judgement::Wait(missing);
    }
    for (node, said) in others {
        if let Said::Gone(why) = said {
            if Some(node.as_str()) == synchronous {
                continue;
            }
            // Under strict without a synchronous standby compared, a gone
            // one may have been it.
            if sync == SyncPolicy::Strict && !sync_compared {
                return Judgement::Refuse {
                    why: format!(
                        "{node} is gone ({why}) and may hold acknowledged commits this node \
                         lacks (sync=strict)"
                    ),
                    instead: None,
                };
            }
            passed_over.push(format!("{node} ({why})"));
        }
    }
    let mut positions: BTreeMap<String, Position> = others
        .iter()
        .filter_map(|(node, said)| match said {
            Said::Position(p) => Some((node.clone(), *p)),
            _ => None,
        })
        .collect();
    let compared = positions.len();
    positions.insert(me.to_string(), mine);
    let (best, position) = best_candidate(&positions, me).expect("this node is a candidate");
    if best != me {
        return Judgement::Refuse {
            why: format!("{best} has more WAL ({position}) than this node ({mine})"),
            instead: Some(best.to_string()),
        };
    }
    let mut how = format!("best of {} standbys", compared + 1);
    if !passed_over.is_empty() {
        how.push_str(&format!("; not compared, gone: {}", passed_over.join(", ")));
    }
    Judgement::Promote(how)
}

/// The node the primary last reported synchronous: the one that holds its
/// [`SYNCHRONOUS`] score (`scores`: what attrd or the CIB holds, by node).
pub fn synchronous_of(scores: &BTreeMap<String, String>) -> Option<&str> {
    scores
        .iter()
        .find(|(_, v)| v.parse::<Score>().ok() == Some(SYNCHRONOUS))
        .map(|(node, _)| node.as_str())
}

/// The scores that make Pacemaker promote `instead` rather than `me`: the
/// top standby score for it, and a token one for every other node that
/// holds as much (`scores`, by node), this node included.
pub fn steering(
    me: &str,
    instead: &str,
    scores: &BTreeMap<String, String>,
) -> Vec<(String, Score)> {
    let mut writes = vec![
        (instead.to_string(), SYNCHRONOUS),
        (me.to_string(), STEERED_AWAY),
    ];
    for (node, v) in scores {
        let outranks = v
            .parse::<Score>()
            .is_ok_and(|s| s >= SYNCHRONOUS && s < PRIMARY_SCORE);
        if outranks && node != instead && node != me {
            writes.push((node.clone(), STEERED_AWAY));
        }
    }
    writes
}

/// What a standby's monitor sees of the cluster when its WAL receiver does
/// not stream (see [`elect`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphaned {
    pub quorate: bool,
    /// A node where an instance is promoted.
    pub primary: Option<String>,
    /// Nodes holding a promotion score (any value).
    pub scored: Vec<String>,
    /// The other standbys that run on online nodes, with what they told.
    pub candidates: BTreeMap<String, Said>,
    /// Every other cluster node that is none of those: offline, or without
    /// a running instance. Its WAL cannot be compared.
    pub uncompared: Vec<String>,
    /// What the last primary recorded about its commits (see
    /// [`last_primary_sync`]): `Some(true)` they waited for a standby,
    /// `Some(false)` they were released to asynchronous, `None` no record.
    pub primary_was_synchronous: Option<bool>,
}

/// The outcome of a standby's election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Election {
    /// Nothing to do (why, for the debug log): a primary runs, a node holds
    /// a score Pacemaker can promote, no quorum...
    NotNeeded(String),
    /// Nobody can be promoted, and nobody may be without a person: why.
    Refused(String),
    /// A standby has not told its position yet.
    Wait(String),
    /// Another standby is the one: it elects itself.
    Other(String),
    /// This standby gives itself [`ELECTED`].
    Me(String),
}

/// When no primary runs anywhere and no node holds a promotion score,
/// Pacemaker has nobody to promote, and nothing changes that unless the
/// standbys do: each one's monitor elects, from the positions they all
/// publish, the one that holds every acknowledged commit, and only that
/// one gives itself a score; its promotion then compares again.
///
/// Every acknowledged commit is on the old primary and on at least one
/// standby (it waited for one), so the furthest of the standbys holds them
/// all once every node but one is compared (the uncompared one being the
/// old primary, or a standby while the old primary, restarted as a
/// standby, is compared). Under `strict` that is required. Under
/// `available` a primary that had released its commits to asynchronous
/// acknowledged some alone: then nobody is elected (as item 7 removed the
/// scores for). Under `off` nothing was promised: the furthest.
pub fn elect(me: &str, mine: Position, sync: SyncPolicy, seen: &Orphaned) -> Election {
    if !seen.quorate {
        return Election::NotNeeded("no quorum".to_string());
    }
    if let Some(p) = &seen.primary {
        return Election::NotNeeded(format!("{p} is the primary"));
    }
    if !seen.scored.is_empty() {
        return Election::NotNeeded(format!(
            "{} holds a promotion score",
            seen.scored.join(", ")
        ));
    }
    if let Some((node, _)) = seen.candidates.iter().find(|(_, s)| **s == Said::Nothing) {
        return Election::Wait(format!("{node} has not published its WAL position"));
    }
    match (sync, seen.primary_was_synchronous) {
        (SyncPolicy::Off, _) | (_, Some(true)) => {}
        (_, Some(false)) => {
            return Election::Refused(
                "the last primary released its commits to asynchronous: no standby is known \
                 to hold them all"
                    .to_string(),
            )
        }
        (_, None) => {
            return Election::Refused(
                "no record of whether the last primary's commits waited for a standby".to_string(),
            )
        }
    }
    let mut uncompared = seen.uncompared.clone();
    uncompared.extend(
        seen.candidates
            .iter()
            .filter_map(|(node, said)| match said {
                Said::Gone(_) => Some(node.clone()),
                _ => None,
            }),
    );
    if sync != SyncPolicy::Off && uncompared.len() > 1 {
        return Election::Refused(format!(
            "{} cannot be compared: one of them may hold acknowledged commits the others lack",
            uncompared.join(", ")
        ));
    }
    let mut positions: BTreeMap<String, Position> = seen
        .candidates
        .iter()
        .filter_map(|(node, said)| match said {
            Said::Position(p) => Some((node.clone(), *p)),
            _ => None,
        })
        .collect();
    positions.insert(me.to_string(), mine);
    // Every standby decides alike: on a tie the first name, not "me".
    let (best, position) = positions
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(n, p)| (n.clone(), *p))
        .expect("this node is a candidate");
    let how = format!(
        "no primary and no promotion score anywhere; the furthest of {} standbys is {best} \
         ({position})",
        positions.len()
    );
    if best == me {
        Election::Me(how)
    } else {
        Election::Other(how)
    }
}

/// What a data directory was before this start, as pg_control says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Former {
    /// A standby, or a base backup never started.
    Standby,
    /// A primary shut down cleanly: it holds every commit it acknowledged,
    /// and its standbys received all of it before it stopped.
    PrimaryShutDown,
    /// A primary that crashed (or lost power): another node may have been
    /// promoted since, on a newer timeline, and have commits it lacks.
    PrimaryCrashed,
}

/// The score a standby gives itself before its server starts (see
/// `standby::own_score_before_start`): none when a primary answers (it
/// scores the standbys). With no primary, a plain standby is a candidate
/// of a cluster with no primary, except where it may lack acknowledged
/// commits: under `strict`, and after a last primary that released its
/// commits to asynchronous (`last_primary_sync`: `Some(false)`). A former
/// primary that crashed never scores itself: nothing tells it that no
/// newer primary exists whose commits it lacks, and the standbys' election
/// (which compares every node's position) makes it primary again when it
/// is the furthest. One shut down cleanly scores itself only when no other
/// node holds a score (`scored_elsewhere`): a score elsewhere is either a
/// primary's, which this node has not compared itself with, or another
/// start's, and then the promotion compares positions anyway.
pub fn start_score(
    sync: SyncPolicy,
    former: Former,
    primary_seen: bool,
    last_primary_sync: Option<bool>,
    scored_elsewhere: bool,
) -> Option<Score> {
    match former {
        _ if primary_seen => None,
        Former::PrimaryCrashed => None,
        Former::PrimaryShutDown if scored_elsewhere => None,
        Former::PrimaryShutDown => Some(FORMER_PRIMARY),
        Former::Standby => match sync {
            SyncPolicy::Strict => None,
            SyncPolicy::Available if last_primary_sync == Some(false) => None,
            _ => Some(NO_PRIMARY_YET),
        },
    }
}

/// The record the primary keeps in the CIB of whether its commits wait for
/// a standby: `TIMELINE:sync` or `TIMELINE:async`, one per node that was
/// primary. The newest timeline's is the last primary's.
pub fn last_primary_sync(records: &BTreeMap<String, String>) -> Option<bool> {
    records
        .values()
        .filter_map(|v| {
            let (timeline, mode) = v.split_once(':')?;
            Some((timeline.parse::<u32>().ok()?, mode))
        })
        .max_by_key(|(timeline, _)| *timeline)
        .and_then(|(_, mode)| match mode {
            "sync" => Some(true),
            "async" => Some(false),
            _ => None,
        })
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
            Some(SYNCHRONOUS),
            "synchronous: holds every commit, outranks one merely caught up"
        );
        assert_eq!(s["node3"], Some(CAUGHT_UP));
        assert_eq!(s["node4"], Some(BEHIND));
        assert_eq!(s["node5"], Some(FAR_BEHIND));
        assert_eq!(s["node6"], None, "not streaming yet");
        assert!(CAUGHT_UP > BEHIND && BEHIND > FAR_BEHIND && PRIMARY_SCORE > SYNCHRONOUS);
        assert!(SYNCHRONOUS > CAUGHT_UP && FAR_BEHIND > ELECTED && ELECTED > STEERED_AWAY);

        let bounded = standby_scores(Lsn(now), &standbys, SyncPolicy::Available, Some(20 << 20));
        assert_eq!(bounded["node4"], Some(BEHIND));
        assert_eq!(bounded["node5"], None, "beyond max_lag");

        let strict = standby_scores(Lsn(now), &standbys, SyncPolicy::Strict, None);
        assert_eq!(strict["node2"], Some(SYNCHRONOUS));
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

    fn pos(s: &str) -> Position {
        s.parse().unwrap()
    }

    fn said(pairs: &[(&str, Said)]) -> BTreeMap<String, Said> {
        pairs
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn a_slow_candidate_is_waited_for_never_skipped() {
        use SyncPolicy::*;
        let mine = pos("2:0/5000000");
        let slow = said(&[
            ("node3", Said::Nothing),
            ("node4", Said::Position(pos("2:0/4000000"))),
        ]);
        // Before: after 3 s "not compared" and promoted anyway.
        for sync in [Off, Available, Strict] {
            assert_eq!(
                judge("node2", mine, sync, None, &slow),
                Judgement::Wait(vec!["node3".into()])
            );
        }
        // It tells: further, so the promotion goes there.
        let told = said(&[
            ("node3", Said::Position(pos("2:0/5000100"))),
            ("node4", Said::Position(pos("2:0/4000000"))),
        ]);
        assert_eq!(
            judge("node2", mine, Available, None, &told),
            Judgement::Refuse {
                why: "node3 has more WAL (2:0/5000100) than this node (2:0/5000000)".into(),
                instead: Some("node3".into())
            }
        );
        assert!(matches!(
            judge("node3", pos("2:0/5000100"), Available, None, &said(&[
                ("node2", Said::Position(mine)),
            ])),
            Judgement::Promote(ref how) if how == "best of 2 standbys"
        ));
    }

    #[test]
    fn the_synchronous_standby_proceeds_alone_and_outranks_one_merely_caught_up() {
        use SyncPolicy::*;
        let mine = pos("2:0/5000000");
        let slow = said(&[("node3", Said::Nothing)]);
        assert!(matches!(
            judge("node2", mine, Strict, Some("node2"), &slow),
            Judgement::Promote(_)
        ));
        assert!(matches!(
            judge("node2", mine, Available, Some("node2"), &slow),
            Judgement::Promote(_)
        ));
        // Under off nobody is synchronous: compared like any other.
        assert_eq!(
            judge("node2", mine, Off, Some("node2"), &slow),
            Judgement::Wait(vec!["node3".into()])
        );
        // Another node is the synchronous one and further: it wins.
        let further = said(&[("node3", Said::Position(pos("2:0/5000001")))]);
        assert!(matches!(
            judge("node2", mine, Available, Some("node3"), &further),
            Judgement::Refuse { instead: Some(ref n), .. } if n == "node3"
        ));
        // As far as this one (a switchover, every standby at the old
        // primary's shutdown checkpoint): the same WAL, Pacemaker's pick.
        let equal = said(&[("node3", Said::Position(mine))]);
        assert!(matches!(
            judge("node2", mine, Strict, Some("node3"), &equal),
            Judgement::Promote(_)
        ));
        // Unless this node is further: it holds all the synchronous one has.
        let behind = said(&[("node3", Said::Position(pos("2:0/4000000")))]);
        assert!(matches!(
            judge("node2", mine, Strict, Some("node3"), &behind),
            Judgement::Promote(_)
        ));
        // The synchronous one is slow: waited for.
        assert_eq!(
            judge("node2", mine, Strict, Some("node3"), &slow),
            Judgement::Wait(vec!["node3".into()])
        );
    }

    #[test]
    fn a_gone_candidate_is_passed_over_except_under_strict() {
        use SyncPolicy::*;
        let mine = pos("2:0/5000000");
        let gone = said(&[
            ("node3", Said::Gone("node offline".into())),
            ("node4", Said::Position(pos("2:0/4000000"))),
        ]);
        match judge("node2", mine, Available, None, &gone) {
            Judgement::Promote(how) => assert!(how.contains("node3 (node offline)"), "{how}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            judge("node2", mine, Strict, None, &gone),
            Judgement::Refuse { instead: None, .. }
        ));
        // The synchronous standby gone under strict: nobody else.
        assert!(matches!(
            judge("node2", mine, Strict, Some("node3"), &gone),
            Judgement::Refuse { instead: None, ref why } if why.contains("synchronous standby, is gone")
        ));
        // Under available it is passed over like any other.
        assert!(matches!(
            judge("node2", mine, Available, Some("node3"), &gone),
            Judgement::Promote(_)
        ));
        // Under strict, once the synchronous one is compared, the others
        // cannot hold more acknowledged commits than it.
        let compared = said(&[
            ("node3", Said::Gone("instance stopped".into())),
            ("node4", Said::Position(pos("2:0/4000000"))),
        ]);
        assert!(matches!(
            judge("node2", mine, Strict, Some("node4"), &compared),
            Judgement::Promote(_)
        ));
    }

    #[test]
    fn steering_makes_the_better_node_outrank_every_other() {
        let scores: BTreeMap<String, String> = [
            ("node1", "1001"),
            ("node2", "1000"),
            ("node3", "990"),
            ("node4", "1000"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        assert_eq!(synchronous_of(&scores), Some("node2"));
        assert_eq!(
            steering("node2", "node3", &scores),
            [
                ("node3".to_string(), SYNCHRONOUS),
                ("node2".to_string(), STEERED_AWAY),
                ("node4".to_string(), STEERED_AWAY),
            ]
        );
        assert_eq!(synchronous_of(&BTreeMap::new()), None);
    }

    fn orphaned(candidates: &[(&str, Said)]) -> Orphaned {
        Orphaned {
            quorate: true,
            primary: None,
            scored: vec![],
            candidates: said(candidates),
            uncompared: vec!["node1".into()],
            primary_was_synchronous: Some(true),
        }
    }

    #[test]
    fn with_no_primary_and_no_score_the_furthest_standby_elects_itself() {
        use SyncPolicy::*;
        let (two, three) = (pos("2:0/5000000"), pos("2:0/5000100"));
        let seen = orphaned(&[("node3", Said::Position(three))]);
        for sync in [Off, Available, Strict] {
            assert!(matches!(
                elect("node2", two, sync, &seen),
                Election::Other(_)
            ));
            let seen2 = orphaned(&[("node2", Said::Position(two))]);
            assert!(matches!(
                elect("node3", three, sync, &seen2),
                Election::Me(_)
            ));
        }
        // A tie: both pick the same node, the first name.
        let tie = orphaned(&[("node3", Said::Position(two))]);
        assert!(matches!(
            elect("node2", two, Available, &tie),
            Election::Me(_)
        ));
        let tie3 = orphaned(&[("node2", Said::Position(two))]);
        assert!(matches!(
            elect("node3", two, Available, &tie3),
            Election::Other(_)
        ));
        // Not told yet: wait for its next monitor.
        let slow = orphaned(&[("node3", Said::Nothing)]);
        assert!(matches!(
            elect("node2", two, Available, &slow),
            Election::Wait(_)
        ));
    }

    #[test]
    fn no_election_while_somebody_can_be_promoted_or_nobody_may() {
        use SyncPolicy::*;
        let two = pos("2:0/5000000");
        let base = orphaned(&[("node3", Said::Position(two))]);
        let with = |f: &dyn Fn(&mut Orphaned)| {
            let mut o = base.clone();
            f(&mut o);
            elect("node2", two, Available, &o)
        };
        assert!(matches!(
            with(&|o| o.quorate = false),
            Election::NotNeeded(_)
        ));
        assert!(matches!(
            with(&|o| o.primary = Some("node1".into())),
            Election::NotNeeded(_)
        ));
        assert!(matches!(
            with(&|o| o.scored = vec!["node3".into()]),
            Election::NotNeeded(_)
        ));
        // The primary had released its commits: as item 7 meant, nobody.
        assert!(matches!(
            with(&|o| o.primary_was_synchronous = Some(false)),
            Election::Refused(_)
        ));
        assert!(matches!(
            with(&|o| o.primary_was_synchronous = None),
            Election::Refused(_)
        ));
        let mut o = base.clone();
        o.primary_was_synchronous = Some(false);
        assert!(matches!(elect("node2", two, Off, &o), Election::Me(_)));
        // Two nodes not compared: either may hold what the others lack.
        let mut o = base.clone();
        o.uncompared.push("node4".into());
        for sync in [Available, Strict] {
            assert!(matches!(
                elect("node2", two, sync, &o),
                Election::Refused(_)
            ));
        }
        let mut o = base.clone();
        o.candidates
            .insert("node4".into(), Said::Gone("instance stopped".into()));
        assert!(matches!(
            elect("node2", two, Strict, &o),
            Election::Refused(_)
        ));
    }

    #[test]
    fn the_newest_timelines_record_says_whether_commits_waited() {
        let r = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            last_primary_sync(&r(&[("node1", "3:sync"), ("node2", "2:async")])),
            Some(true)
        );
        assert_eq!(
            last_primary_sync(&r(&[("node1", "3:sync"), ("node2", "4:async")])),
            Some(false)
        );
        assert_eq!(last_primary_sync(&r(&[("node1", "garbage")])), None);
        assert_eq!(last_primary_sync(&BTreeMap::new()), None);
    }

    #[test]
    fn a_standby_starting_with_no_primary_is_a_candidate_unless_it_may_lack_commits() {
        use Former::*;
        use SyncPolicy::*;
        assert_eq!(
            start_score(Available, Standby, true, None, false),
            None,
            "a primary scores it"
        );
        assert_eq!(
            start_score(Available, Standby, false, None, false),
            Some(NO_PRIMARY_YET)
        );
        assert_eq!(
            start_score(Available, Standby, false, Some(true), true),
            Some(NO_PRIMARY_YET)
        );
        // 10 after a primary that released its commits, which only it holds.
        assert_eq!(
            start_score(Available, Standby, false, Some(false), false),
            None
        );
        assert_eq!(start_score(Strict, Standby, false, Some(true), false), None);
        assert_eq!(
            start_score(Off, Standby, false, Some(false), false),
            Some(NO_PRIMARY_YET)
        );
    }

    #[test]
    fn a_former_primary_scores_itself_only_after_a_clean_shutdown_and_with_no_score_elsewhere() {
        use Former::*;
        use SyncPolicy::*;
        for sync in [Off, Available, Strict] {
            for last in [None, Some(true), Some(false)] {
                // Before: 100 after a crash too, though a newer primary
                // may have been promoted meanwhile.
                for elsewhere in [false, true] {
                    assert_eq!(
                        start_score(sync, PrimaryCrashed, false, last, elsewhere),
                        None
                    );
                    assert_eq!(
                        start_score(sync, PrimaryShutDown, true, last, elsewhere),
                        None
                    );
                }
                assert_eq!(
                    start_score(sync, PrimaryShutDown, false, last, false),
                    Some(FORMER_PRIMARY)
                );
                assert_eq!(start_score(sync, PrimaryShutDown, false, last, true), None);
            }
        }
    }
}
