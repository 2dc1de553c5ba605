//! Reconciliation in pgpool's slony mode, the decision: writes must go to
//! the Slony-I origin.
//!
//! In `backend_clustering_mode = 'slony'` pgpool-II 4.3 sends every write
//! to its main node, the lowest-numbered attached backend, and has no idea
//! which node is the origin of the sets; `pcp_promote_node` refuses outside
//! streaming replication. So its one lever is attachment: every backend
//! numbered below the origin's is detached (it would take the writes, and
//! Slony refuses writes on a subscriber), the origin is attached, and the
//! subscribers numbered above it are attached to serve reads. Detaching
//! the lower backends also takes them out of read balancing, subscribers or
//! not: that is the price of this layout (README, "pgpool in front of a
//! Slony-I cluster").
//!
//! The origin is asked of the backends themselves, each about itself: its
//! own node id (`getLocalNodeId`), the origin of each set as its catalog
//! says (`sl_set.set_origin`), the nodes it counts as active members
//! (`sl_node`), and the active subscriptions it knows (`sl_subscribe`).
//! The origin is the one backend whose own catalog names itself the origin
//! of every set. A catalog can be stale: an old origin that comes back
//! after a FAILOVER still names itself (docs/slony-facts.md), so a claimant
//! that another claimant no longer counts as an active member is not
//! believed; and during a MOVE SET the old origin has already handed the
//! set on while the new one has not taken it yet, so for a moment nobody
//! claims it. Whenever the origin cannot be told, nothing is changed.

use crate::pcp::{BackendStatus, LiveStatus, NodeInfo};
use crate::reconcile::Change;
use pgclient::quote;
use pgclient::slony::ClusterName;
use std::collections::{BTreeMap, BTreeSet};

/// What one backend said of itself when the agent asked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Nothing answered (not running, or it did not answer in time).
    Absent(String),
    /// It answered with an error that says nothing of its membership (a
    /// refused password): nothing is decided while it lasts.
    Unknown(String),
    /// The cluster's schema or its functions are not there: not a node of
    /// the cluster (a node dropped after a FAILOVER, or not built yet).
    NotMember,
    Member(Member),
}

/// A backend's own catalog of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// Its Slony node id.
    pub node: i32,
    /// set id -> origin node id.
    pub origins: BTreeMap<i64, i32>,
    /// The nodes it counts as active members (itself included).
    pub active: BTreeSet<i32>,
    /// The active subscriptions it knows: (set id, receiver node id).
    pub subscriptions: BTreeSet<(i64, i32)>,
}

/// The backends as they say they are, by pgpool node id.
pub type View = BTreeMap<u32, Live>;

/// Where writes must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The backend (pgpool node id) that is the origin of every set, and
    /// its Slony node id.
    At { backend: u32, node: i32 },
    /// It cannot be told; says why.
    Unsure(String),
}

/// The agent's question to each backend, every name quoted:
/// `getLocalNodeId` takes the schema name as a value (it quotes it
/// itself), the tables are reached through the quoted schema.
pub fn question(cluster: &ClusterName) -> String {
    let schema = cluster.schema_sql();
    let value =
        quote::literal(&cluster.schema()).expect("a validated cluster name is a valid SQL string");
    format!(
        "SELECT {schema}.getLocalNodeId({value}); \
         SELECT set_id, set_origin FROM {schema}.sl_set ORDER BY 1; \
         SELECT no_id FROM {schema}.sl_node WHERE no_active ORDER BY 1; \
         SELECT sub_set, sub_receiver FROM {schema}.sl_subscribe WHERE sub_active ORDER BY 1, 2"
    )
}

/// The SQLSTATEs of a database without the cluster's schema or functions:
/// invalid_schema_name, undefined_function, undefined_table.
pub const NOT_A_MEMBER: &[&str] = &["3F000", "42883", "42P01"];

/// A backend's answers to [`question`], one result set per statement.
pub fn member(results: &[Vec<Vec<Option<String>>>]) -> Result<Member, String> {
    let number = |v: &Option<String>| -> Result<i64, String> {
        v.as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not a number: {v:?}"))
    };
    let node_id = |v: &Option<String>| -> Result<i32, String> {
        i32::try_from(number(v)?).map_err(|_| format!("not a node id: {v:?}"))
    };
    let rows = |i: usize| results.get(i).map(Vec::as_slice).unwrap_or_default();
    let local = rows(0)
        .first()
        .and_then(|r| r.first())
        .ok_or("getLocalNodeId gave no answer")?;
    let mut m = Member {
        node: node_id(local)?,
        ..Member::default()
    };
    for r in rows(1) {
        m.origins.insert(number(&r[0])?, node_id(&r[1])?);
    }
    for r in rows(2) {
        m.active.insert(node_id(&r[0])?);
    }
    for r in rows(3) {
        m.subscriptions.insert((number(&r[0])?, node_id(&r[1])?));
    }
    Ok(m)
}

/// The origin of every set, as the backends tell it (see the module's
/// description).
pub fn origin(view: &View) -> Origin {
    if let Some((id, Live::Unknown(why))) = view.iter().find(|(_, l)| matches!(l, Live::Unknown(_)))
    {
        return Origin::Unsure(format!("node {id} could not be asked: {why}"));
    }
    let members: Vec<(u32, &Member)> = view
        .iter()
        .filter_map(|(id, l)| match l {
            Live::Member(m) => Some((*id, m)),
            _ => None,
        })
        .collect();
    for (i, (a, ma)) in members.iter().enumerate() {
        if let Some((b, _)) = members[i + 1..].iter().find(|(_, mb)| mb.node == ma.node) {
            return Origin::Unsure(format!(
                "nodes {a} and {b} are both Slony node {}: one database configured twice?",
                ma.node
            ));
        }
    }
    for (_, m) in &members {
        let origins: BTreeSet<i32> = m.origins.values().copied().collect();
        if origins.len() > 1 {
            let sets: Vec<String> = m
                .origins
                .iter()
                .map(|(set, o)| format!("set {set} on node {o}"))
                .collect();
            return Origin::Unsure(format!(
                "the sets have different origins ({}, as Slony node {} sees them): pgpool \
                 sends every write to one backend",
                sets.join(", "),
                m.node
            ));
        }
    }
    let claims = |m: &Member| !m.origins.is_empty() && m.origins.values().all(|o| *o == m.node);
    let claimants: Vec<(u32, &Member)> =
        members.iter().copied().filter(|(_, m)| claims(m)).collect();
    // A claimant that another claimant no longer counts as active is an
    // old origin that missed its own FAILOVER.
    let believed: Vec<(u32, &Member)> = claimants
        .iter()
        .copied()
        .filter(|(_, m)| {
            claimants
                .iter()
                .all(|(_, other)| other.node == m.node || other.active.contains(&m.node))
        })
        .collect();
    match believed.as_slice() {
        [(backend, m)] => Origin::At {
            backend: *backend,
            node: m.node,
        },
        [] if members.is_empty() && view.values().any(|l| *l == Live::NotMember) => Origin::Unsure(
            "no backend that answered has the cluster's schema in dbname (is dbname the \
                 replicated database?)"
                .to_string(),
        ),
        [] if members.is_empty() => Origin::Unsure("no backend answered".to_string()),
        [] if claimants.is_empty() => Origin::Unsure(
            "no backend is the origin of every set by its own catalog (a MOVE SET in \
             progress?)"
                .to_string(),
        ),
        [] => Origin::Unsure(format!(
            "nodes {:?} each claim the sets and disown each other",
            claimants.iter().map(|(id, _)| *id).collect::<Vec<_>>()
        )),
        many => Origin::Unsure(format!(
            "nodes {:?} each are the origin by their own catalog",
            many.iter().map(|(id, _)| *id).collect::<Vec<_>>()
        )),
    }
}

/// Whether backend `id` subscribes to every set of the origin `o`, by the
/// origin's own catalog.
fn subscribes(view: &View, origin_backend: u32, id: u32) -> bool {
    let (Some(Live::Member(o)), Some(Live::Member(m))) = (view.get(&origin_backend), view.get(&id))
    else {
        return false;
    };
    o.origins
        .keys()
        .all(|set| o.subscriptions.contains(&(*set, m.node)))
}

/// The changes that make pgpool send writes to the origin, in the order to
/// make them: the origin attached first (so that pgpool is never left
/// without a backend), then the backends below it detached, then the
/// subscribers above it attached and anything else above it detached.
/// Never a promotion: pgpool refuses it in this mode. A backend pgpool's
/// own checks do not reach is not attached (its next health check would
/// detach it again), and one that does not answer is left to pgpool.
pub fn plan(nodes: &[NodeInfo], view: &View) -> Vec<Change> {
    let Origin::At { backend: o, .. } = origin(view) else {
        return Vec::new();
    };
    let configured = || nodes.iter().filter(|n| n.status != BackendStatus::Unused);
    let attachable =
        |n: &NodeInfo| n.status == BackendStatus::Down && n.pg_status == LiveStatus::Up;
    let mut changes = Vec::new();
    if let Some(n) = configured().find(|n| n.node_id == o) {
        if attachable(n) {
            changes.push(Change::Attach(o));
        } else if !n.status.is_attached() {
            // Detaching the others now would leave no backend at all.
            return changes;
        }
    } else {
        return changes;
    }
    for n in configured().filter(|n| n.node_id < o && n.status.is_attached()) {
        changes.push(Change::Detach(n.node_id));
    }
    for n in configured().filter(|n| n.node_id > o) {
        let answered = matches!(
            view.get(&n.node_id),
            Some(Live::Member(_) | Live::NotMember)
        );
        let subscriber = subscribes(view, o, n.node_id);
        if subscriber && attachable(n) {
            changes.push(Change::Attach(n.node_id));
        } else if !subscriber && answered && n.status.is_attached() {
            changes.push(Change::Detach(n.node_id));
        }
    }
    changes
}

/// Why nothing is planned although pgpool does not send writes to the
/// origin, for the operator: the origin detached and out of pgpool's own
/// reach (attached, its next health check would detach it again).
pub fn held_back(nodes: &[NodeInfo], view: &View) -> Option<String> {
    let Origin::At { backend, node } = origin(view) else {
        return None;
    };
    let n = nodes.iter().find(|n| n.node_id == backend)?;
    (!n.status.is_attached() && n.pg_status != LiveStatus::Up).then(|| {
        format!(
            "the origin, node {backend} (Slony node {node}), is detached and pgpool's own \
             checks do not reach it: it stays detached, and so do the backends below it"
        )
    })
}

/// Why `change` is made, for its log line.
pub fn reason(change: Change, view: &View) -> String {
    let Origin::At { backend: o, node } = origin(view) else {
        return "the origin is unknown".to_string();
    };
    let slony = |id: u32| match view.get(&id) {
        Some(Live::Member(m)) => format!("Slony node {}", m.node),
        Some(Live::NotMember) => "not a node of the cluster".to_string(),
        _ => "not answering".to_string(),
    };
    match change {
        Change::Attach(n) if n == o => {
            format!("it is the origin of the sets (Slony node {node}): writes go there")
        }
        Change::Attach(n) => format!(
            "it subscribes to every set of the origin, node {o} ({})",
            slony(n)
        ),
        Change::Detach(n) if n < o => format!(
            "it is numbered below the origin, node {o} (Slony node {node}), and pgpool sends \
             writes to the lowest attached backend ({})",
            slony(n)
        ),
        Change::Detach(n) => format!(
            "it does not subscribe to every set of the origin, node {o} ({})",
            slony(n)
        ),
        Change::Promote(_) => "never made in slony mode".to_string(),
    }
}

/// pgpool_status for a start: the origin and the subscribers numbered
/// above it `up`, every other backend `down`; `None` when the origin
/// cannot be told (pgpool's own file is then left as it is).
pub fn status_file(backends: &[u32], view: &View) -> Option<String> {
    let Origin::At { backend: o, .. } = origin(view) else {
        return None;
    };
    crate::reconcile::status_text(backends, |id| {
        id == o || (id > o && subscribes(view, o, id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcp::{LiveRole, PoolRole};

    /// Backend `id` in slony mode: node 0 pgpool's main node.
    fn info(id: u32, status: BackendStatus, reached: bool) -> NodeInfo {
        let role = if id == 0 {
            PoolRole::Main
        } else {
            PoolRole::Replica
        };
        NodeInfo::sample(id, status, role, reached, LiveRole::Other("main".into()))
    }

    use BackendStatus::{Down, Up, Waiting};

    /// Slony node `node`'s catalog: every set's origin `origin`, the given
    /// active nodes, and the origin's subscribers (set 1) `receivers`.
    fn member(node: i32, origin: i32, active: &[i32], receivers: &[i32]) -> Live {
        Live::Member(Member {
            node,
            origins: BTreeMap::from([(1, origin)]),
            active: active.iter().copied().collect(),
            subscriptions: receivers.iter().map(|r| (1, *r)).collect(),
        })
    }

    /// Three nodes, backend N = Slony node N+1, all agreeing that `origin`
    /// (a Slony node) is the origin and the two others subscribe.
    fn agreed(origin: i32) -> View {
        let subs: Vec<i32> = (1..=3).filter(|n| *n != origin).collect();
        (0..3)
            .map(|b| (b, member(b as i32 + 1, origin, &[1, 2, 3], &subs)))
            .collect()
    }

    #[test]
    fn the_question_quotes_the_schema_and_passes_its_name_as_a_value() {
        let q = question(&ClusterName::parse("Tusk_A$1").unwrap());
        assert!(
            q.starts_with("SELECT \"_Tusk_A$1\".getLocalNodeId(E'_Tusk_A$1');")
                || q.starts_with("SELECT \"_Tusk_A$1\".getLocalNodeId('_Tusk_A$1');"),
            "{q}"
        );
        assert!(q.contains("FROM \"_Tusk_A$1\".sl_set"), "{q}");
    }

    #[test]
    fn answers_are_read_statement_by_statement() {
        let s = |v: &str| Some(v.to_string());
        let results = vec![
            vec![vec![s("2")]],
            vec![vec![s("1"), s("2")], vec![s("2"), s("2")]],
            vec![vec![s("1")], vec![s("2")]],
            vec![vec![s("1"), s("1")]],
        ];
        let m = super::member(&results).unwrap();
        assert_eq!(m.node, 2);
        assert_eq!(m.origins, BTreeMap::from([(1, 2), (2, 2)]));
        assert_eq!(m.active, BTreeSet::from([1, 2]));
        assert_eq!(m.subscriptions, BTreeSet::from([(1, 1)]));
        assert!(super::member(&[vec![vec![None]]]).is_err());
        assert!(super::member(&[]).is_err());
    }

    #[test]
    fn in_step_nothing_changes() {
        let nodes = [info(0, Up, true), info(1, Waiting, true), info(2, Up, true)];
        let view = agreed(1);
        assert_eq!(
            origin(&view),
            Origin::At {
                backend: 0,
                node: 1
            }
        );
        assert_eq!(plan(&nodes, &view), []);
    }

    #[test]
    fn after_a_move_the_backends_below_the_new_origin_are_detached() {
        let nodes = [info(0, Up, true), info(1, Up, true), info(2, Up, true)];
        let view = agreed(2);
        assert_eq!(plan(&nodes, &view), [Change::Detach(0)]);
        assert!(reason(Change::Detach(0), &view).contains("numbered below the origin, node 1"));
        let view = agreed(3);
        assert_eq!(plan(&nodes, &view), [Change::Detach(0), Change::Detach(1)]);
    }

    #[test]
    fn after_a_move_back_the_origin_is_attached_first_and_subscribers_follow() {
        let nodes = [info(0, Down, true), info(1, Down, true), info(2, Up, true)];
        assert_eq!(
            plan(&nodes, &agreed(1)),
            [Change::Attach(0), Change::Attach(1)]
        );
        assert_eq!(
            reason(Change::Attach(0), &agreed(1)),
            "it is the origin of the sets (Slony node 1): writes go there"
        );
        // The origin pgpool cannot reach: nothing, not even the detaches,
        // or pgpool would be left with no backend; and the operator is told.
        let nodes = [info(0, Down, false), info(1, Up, true), info(2, Up, true)];
        assert_eq!(plan(&nodes, &agreed(1)), []);
        assert!(held_back(&nodes, &agreed(1))
            .is_some_and(|why| why.starts_with("the origin, node 0 (Slony node 1), is detached")));
        let nodes = [info(0, Down, true), info(1, Up, true), info(2, Up, true)];
        assert_eq!(held_back(&nodes, &agreed(1)), None);
    }

    #[test]
    fn never_a_promotion() {
        for o in 1..=3 {
            for statuses in [[Up, Up, Up], [Down, Down, Down], [Down, Up, Down]] {
                let nodes: Vec<NodeInfo> = statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| info(i as u32, *s, true))
                    .collect();
                assert!(!plan(&nodes, &agreed(o))
                    .iter()
                    .any(|c| matches!(c, Change::Promote(_))));
            }
        }
    }

    #[test]
    fn above_the_origin_only_subscribers_serve() {
        // Backend 2 is Slony node 3, which the origin does not list as a
        // subscriber (its subscription is being copied, or it was dropped).
        let mut view = agreed(1);
        view.insert(0, member(1, 1, &[1, 2, 3], &[2]));
        let nodes = [info(0, Up, true), info(1, Up, true), info(2, Up, true)];
        assert_eq!(plan(&nodes, &view), [Change::Detach(2)]);
        assert!(reason(Change::Detach(2), &view).contains("does not subscribe"));
        // Detached, it stays so.
        let nodes = [info(0, Up, true), info(1, Up, true), info(2, Down, true)];
        assert_eq!(plan(&nodes, &view), []);
        // Not a member at all: the same.
        view.insert(2, Live::NotMember);
        let nodes = [info(0, Up, true), info(1, Up, true), info(2, Up, true)];
        assert_eq!(plan(&nodes, &view), [Change::Detach(2)]);
        // Not answering: left to pgpool's health checks.
        view.insert(2, Live::Absent("connection refused".into()));
        assert_eq!(plan(&nodes, &view), []);
    }

    #[test]
    fn during_a_move_nobody_claims_the_set_and_nothing_changes() {
        // MOVE SET 1 -> 2: node 1 has handed it on, node 2 not taken it yet.
        let view: View = [
            (0, member(1, 2, &[1, 2], &[2])),
            (1, member(2, 1, &[1, 2], &[2])),
        ]
        .into();
        assert!(matches!(origin(&view), Origin::Unsure(why) if why.contains("MOVE SET")));
        assert_eq!(plan(&[info(0, Up, true), info(1, Up, true)], &view), []);
    }

    #[test]
    fn an_old_origin_back_after_a_failover_is_not_believed() {
        // Slony node 1 failed over to node 2 and was dropped; it came back
        // and its own catalog still names it the origin.
        let view: View = [
            (0, member(1, 1, &[1, 2], &[2])),
            (1, member(2, 2, &[2], &[])),
        ]
        .into();
        assert_eq!(
            origin(&view),
            Origin::At {
                backend: 1,
                node: 2
            }
        );
        let nodes = [info(0, Up, true), info(1, Up, true)];
        assert_eq!(plan(&nodes, &view), [Change::Detach(0)]);
        // Both still count each other active: no telling.
        let view: View = [
            (0, member(1, 1, &[1, 2], &[2])),
            (1, member(2, 2, &[1, 2], &[1])),
        ]
        .into();
        assert!(matches!(origin(&view), Origin::Unsure(_)));
        assert_eq!(plan(&nodes, &view), []);
    }

    #[test]
    fn sets_with_different_origins_are_no_origin() {
        let split = Live::Member(Member {
            node: 1,
            origins: BTreeMap::from([(1, 1), (2, 2)]),
            active: BTreeSet::from([1, 2]),
            subscriptions: BTreeSet::new(),
        });
        let view: View = [(0, split), (1, member(2, 2, &[1, 2], &[]))].into();
        let Origin::Unsure(why) = origin(&view) else {
            panic!("an origin from split sets")
        };
        assert!(why.contains("set 1 on node 1, set 2 on node 2"), "{why}");
        assert_eq!(plan(&[info(0, Up, true), info(1, Up, true)], &view), []);
    }

    #[test]
    fn an_unanswered_question_or_a_database_twice_changes_nothing() {
        let mut view = agreed(2);
        view.insert(2, Live::Unknown("password authentication failed".into()));
        assert_eq!(
            origin(&view),
            Origin::Unsure("node 2 could not be asked: password authentication failed".into())
        );
        let mut view = agreed(2);
        view.insert(2, member(2, 2, &[1, 2, 3], &[1, 3]));
        assert!(matches!(origin(&view), Origin::Unsure(why) if why.contains("configured twice")));
        let none: View = [(0, Live::NotMember), (1, Live::Absent("x".into()))].into();
        assert!(matches!(origin(&none), Origin::Unsure(why) if why.contains("is dbname the")));
        let gone: View = [(0, Live::Absent("x".into()))].into();
        assert_eq!(origin(&gone), Origin::Unsure("no backend answered".into()));
    }

    #[test]
    fn the_status_file_marks_up_the_origin_and_the_subscribers_above_it() {
        assert_eq!(
            status_file(&[0, 1, 2], &agreed(2)).as_deref(),
            Some("down\nup\nup\n")
        );
        assert_eq!(
            status_file(&[0, 1, 2], &agreed(1)).as_deref(),
            Some("up\nup\nup\n")
        );
        let moving: View = [
            (0, member(1, 2, &[1, 2], &[2])),
            (1, member(2, 1, &[1, 2], &[2])),
        ]
        .into();
        assert_eq!(status_file(&[0, 1], &moving), None);
    }
}
