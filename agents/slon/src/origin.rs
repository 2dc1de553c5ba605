//! The promotable role: the Promoted instance is the one on the node that
//! is the origin of the resource's sets. Which node that is, and the
//! promotion scores, come from the node's own catalog: `sl_set.set_origin`
//! and the confirmations of the origin's events in `sl_confirm` (every
//! node's confirmations reach every node).

use ocf::attributes::Score;
use ocf::{OcfError, Result};
use pgclient::quote;
use pgclient::slony::ClusterName;

/// The score of the origin: Pacemaker promotes where the sets already are,
/// so a transition that aborts between a planned move and the promote
/// follows the move at once.
pub const ORIGIN_SCORE: i64 = 1000;
/// The subscriber that has confirmed the most of the origin's events: the
/// one a FAILOVER loses the least on.
pub const BEST_SCORE: i64 = 900;
/// Any other active subscriber.
pub const BEHIND_SCORE: i64 = 800;

/// Who this node is for the resource's sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Origin,
    Subscriber {
        origin: i32,
    },
    /// This node's catalog does not list set `set` (yet): a node learns of
    /// a set only when its slon processes the set's creation, so a node
    /// started before its slon ever ran, or stored again, is neither the
    /// origin nor a subscriber. Not a configuration error: the same
    /// parameters are right on the origin, and will be here.
    Unlisted {
        set: u32,
    },
}

/// `set_id, set_origin` of the configured sets, then the newest confirmed
/// event of their origin per receiver (one statement each). Only receivers
/// with an active subscription to every set count: every node confirms the
/// origin's events, subscribed or not (a node stored but not yet
/// subscribed, or one whose copy is still running), and such a node must
/// get no promotion score, nor be the target of a move.
pub fn query(cluster: &ClusterName, sets: &[u32]) -> String {
    let schema = cluster.schema_sql();
    let ids = sets
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let first = sets.first().copied().unwrap_or(0);
    format!(
        "SELECT set_id, set_origin FROM {schema}.sl_set WHERE set_id IN ({ids}) ORDER BY 1; \
         SELECT con_received, max(con_seqno) FROM {schema}.sl_confirm \
         WHERE con_origin = (SELECT set_origin FROM {schema}.sl_set WHERE set_id = {first}) \
         AND con_received IN (SELECT sub_receiver FROM {schema}.sl_subscribe \
         WHERE sub_set IN ({ids}) AND sub_active GROUP BY 1 HAVING count(*) = {n}) \
         GROUP BY 1 ORDER BY 1",
        n = sets.len()
    )
}

/// `SELECT getLocalNodeId(...)`, for the statements that need the local
/// node id on its own.
pub fn local_node_query(cluster: &ClusterName) -> String {
    let schema = cluster.schema_sql();
    let value =
        quote::literal(&cluster.schema()).expect("a validated cluster name is a valid SQL string");
    format!("SELECT {schema}.getLocalNodeId({value})")
}

/// Pairs of numbers from rows of two integer columns.
pub fn pairs(rows: &[Vec<Option<String>>]) -> Vec<(i64, i64)> {
    rows.iter()
        .filter_map(|r| {
            let n = |i: usize| r.get(i)?.as_deref()?.parse().ok();
            Some((n(0)?, n(1)?))
        })
        .collect()
}

/// Pairs of texts from rows of two columns (NULLs skipped).
pub fn pairs_text(rows: &[Vec<Option<String>>]) -> Vec<(String, String)> {
    rows.iter()
        .filter_map(|r| Some((r.first()?.clone()?, r.get(1)?.clone()?)))
        .collect()
}

/// This node's role from the sets' origins as its catalog shows them. The
/// sets it lists must share one origin: the Promoted role is one node. A
/// set it does not list makes it [`Role::Unlisted`].
pub fn role(configured: &[u32], origins: &[(i64, i64)], local: i32) -> Result<Role> {
    let mut origin = None;
    let mut unlisted = None;
    for set in configured {
        let Some((_, o)) = origins.iter().find(|(s, _)| *s == i64::from(*set)) else {
            unlisted = unlisted.or(Some(*set));
            continue;
        };
        match origin {
            None => origin = Some(*o),
            Some(first) if first != *o => {
                return Err(OcfError::configured(format!(
                    "the sets {configured:?} do not share one origin (set {set} has node {o}, \
                     another node {first}): one promotable resource needs one origin"
                )))
            }
            Some(_) => {}
        }
    }
    if configured.is_empty() {
        return Err(OcfError::configured("no set is configured"));
    }
    if let Some(set) = unlisted {
        return Ok(Role::Unlisted { set });
    }
    let origin = origin.expect("every configured set is listed") as i32;
    Ok(if origin == local {
        Role::Origin
    } else {
        Role::Subscriber { origin }
    })
}

/// This node's promotion score: the origin's, or a subscriber's ranked by
/// the origin's events it has confirmed against the other receivers'
/// (`confirms`: receiver, newest confirmed event). `None` for a node that
/// has confirmed nothing of the origin (not subscribed, or its copy not
/// done): it must not be promoted.
pub fn score(role: Role, confirms: &[(i64, i64)], local: i32) -> Option<(Score, &'static str)> {
    let origin = match role {
        Role::Origin => return Some((Score::Value(ORIGIN_SCORE), "origin")),
        Role::Subscriber { origin } => i64::from(origin),
        Role::Unlisted { .. } => return None,
    };
    let mine = confirms
        .iter()
        .find(|(node, _)| *node == i64::from(local))
        .map(|(_, seqno)| *seqno)?;
    let best = confirms
        .iter()
        .filter(|(node, _)| *node != origin)
        .map(|(_, seqno)| *seqno)
        .max()
        .unwrap_or(mine);
    Some(if mine >= best {
        (Score::Value(BEST_SCORE), "best subscriber")
    } else {
        (Score::Value(BEHIND_SCORE), "subscriber behind another")
    })
}

/// The subscriber a planned move without a named target goes to: the one
/// that has confirmed the most of `origin`'s events (the lowest id on a
/// tie), among `candidates`.
pub fn best_subscriber(confirms: &[(i64, i64)], origin: i32, candidates: &[u32]) -> Option<u32> {
    confirms
        .iter()
        .filter(|(node, _)| *node != i64::from(origin))
        .filter(|(node, _)| candidates.iter().any(|c| i64::from(*c) == *node))
        .max_by_key(|(node, seqno)| (*seqno, -node))
        .and_then(|(node, _)| u32::try_from(*node).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Status;

    #[test]
    fn the_origin_of_every_set_is_the_promoted_role() {
        assert_eq!(role(&[1, 2], &[(1, 3), (2, 3)], 3).unwrap(), Role::Origin);
        assert_eq!(
            role(&[1], &[(1, 3), (2, 1)], 1).unwrap(),
            Role::Subscriber { origin: 3 }
        );
    }

    #[test]
    fn sets_with_two_origins_or_missing_sets_are_refused() {
        let e = role(&[1, 2], &[(1, 1), (2, 2)], 1).unwrap_err();
        assert_eq!(e.status(), Status::ErrConfigured);
        assert!(
            e.reason().contains("do not share one origin"),
            "{}",
            e.reason()
        );
        // Two origins among the sets it lists are refused even while
        // another set is not listed yet.
        let e = role(&[1, 2, 3], &[(1, 1), (2, 2)], 1).unwrap_err();
        assert_eq!(e.status(), Status::ErrConfigured);
        assert!(role(&[], &[], 1).is_err());
    }

    #[test]
    fn a_node_whose_catalog_does_not_list_a_set_yet_is_neither_origin_nor_subscriber() {
        // A subscriber started before its slon ever ran knows no set.
        assert_eq!(role(&[1], &[], 2).unwrap(), Role::Unlisted { set: 1 });
        assert_eq!(
            role(&[1, 5], &[(1, 1)], 1).unwrap(),
            Role::Unlisted { set: 5 }
        );
        assert_eq!(score(Role::Unlisted { set: 1 }, &[(2, 5)], 2), None);
    }

    #[test]
    fn subscribers_are_ranked_by_the_origin_s_events_they_confirmed() {
        // Node 1 is the origin; nodes 2 and 3 receive.
        let confirms = [(1, 120), (2, 100), (3, 97)];
        let sub = Role::Subscriber { origin: 1 };
        assert_eq!(
            score(Role::Origin, &confirms, 1).unwrap().0,
            Score::Value(1000)
        );
        assert_eq!(score(sub, &confirms, 2).unwrap().0, Score::Value(900));
        assert_eq!(score(sub, &confirms, 3).unwrap().0, Score::Value(800));
        // A tie makes both the best.
        assert_eq!(
            score(sub, &[(2, 5), (3, 5)], 3).unwrap().0,
            Score::Value(900)
        );
        // Nothing confirmed: no score.
        assert_eq!(score(sub, &[(2, 5)], 3), None);
    }

    #[test]
    fn a_move_without_a_target_goes_to_the_most_advanced_candidate() {
        let confirms = [(1, 120), (2, 100), (3, 101), (4, 101)];
        assert_eq!(best_subscriber(&confirms, 1, &[2, 3, 4]), Some(3));
        assert_eq!(best_subscriber(&confirms, 1, &[2]), Some(2));
        assert_eq!(best_subscriber(&confirms, 1, &[1]), None);
        assert_eq!(best_subscriber(&[], 1, &[2]), None);
    }

    #[test]
    fn the_query_names_the_sets() {
        let q = query(&ClusterName::parse("tusk").unwrap(), &[1, 2]);
        assert!(q.contains("WHERE set_id IN (1, 2)"), "{q}");
        assert!(q.contains("WHERE set_id = 1)"), "{q}");
        assert!(
            q.contains("WHERE sub_set IN (1, 2) AND sub_active GROUP BY 1 HAVING count(*) = 2"),
            "{q}"
        );
    }
}
