//! Reconciliation, the decision: pgpool's view of its backends (PCP node
//! info: `status`, `role`, and what its checks saw, `pg_status`,
//! `pg_role`) against the live one the agent asked the backends for
//! itself (who is a primary, on which timeline, and who streams from it).
//!
//! Under tusk, Pacemaker's postgresql clone fails PostgreSQL over; pgpool
//! only follows. pgpool-II 4.3 follows badly by itself (docs/pgpool-facts.md):
//! a standby it detached stays detached after it comes back, a promotion
//! that lands after its primary search is missed for good, and a status
//! file from an older run can keep a healthy backend down. So on every
//! monitor the agent compares views and makes the smallest changes that
//! bring pgpool in step:
//!
//! - the **current primary** is the only backend that says it is a primary
//!   or, when a stale one from before a failover still runs, the one on the
//!   newest timeline; when that cannot be told (two on one timeline, or a
//!   backend that answered with an error) nothing is changed;
//! - the current primary **detached** in pgpool is attached (pgpool then
//!   searches for its primary and finds it); **attached but not pgpool's
//!   primary**, it is promoted in pgpool (`pcp_promote_node` without `-s`:
//!   pgpool changes its view only). A promotion makes pgpool detach every
//!   other backend and restart its children, which drops client sessions,
//!   so it comes only when pgpool's primary is wrong, and the standbys are
//!   attached again in the next round, once pgpool has acted;
//! - with pgpool's primary right, a detached standby that **streams from the
//!   current primary** (its `backend_application_nameN` in the primary's
//!   `pg_stat_replication`, state `streaming`) and that pgpool's own checks
//!   see up is attached (attaching closes no session while the standby's
//!   server kept running; after its restart pgpool closes some idle ones,
//!   docs/pgpool-facts.md); a backend that is up
//!   but follows nobody, or another primary (a former primary before its
//!   rejoin), is never attached;
//! - a **second primary** attached beside the current one (what pgpool
//!   does with every reachable backend when it starts without a status
//!   file) is detached: it would serve reads from an old timeline.

use crate::pcp::{BackendStatus, LiveRole, LiveStatus, NodeInfo, PcpError, PcpErrorKind, PoolRole};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What one backend said when the agent asked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    /// Nothing listens, the host is unreachable, or it did not answer in
    /// time: not running, as far as anyone can tell.
    Absent(String),
    /// It answered with an error (a refused password, a missing
    /// permission): it may be anything, so nothing is decided on it.
    Unknown(String),
    Standby,
    Primary {
        /// The timeline it writes on.
        timeline: u32,
        /// `application_name` of every walsender streaming from it.
        streaming: BTreeSet<String>,
    },
}

/// The backends as they say they are, by pgpool node id, with the name
/// each one's WAL receiver uses (`backend_application_nameN`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveView {
    pub backends: BTreeMap<u32, Live>,
    pub application_names: BTreeMap<u32, String>,
}

impl LiveView {
    /// The backends streaming from `primary`, by node id.
    pub fn followers(&self, primary: u32) -> BTreeSet<u32> {
        let Some(Live::Primary { streaming, .. }) = self.backends.get(&primary) else {
            return BTreeSet::new();
        };
        self.application_names
            .iter()
            .filter(|(id, name)| **id != primary && !name.is_empty() && streaming.contains(*name))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Which backend is the primary now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    Primary(u32),
    /// No backend is a primary (a failover in progress, or all down).
    NoPrimary,
    /// It cannot be told; says why.
    Unsure(String),
}

/// The current primary of `live` (see the module's description).
pub fn current_primary(live: &LiveView) -> Current {
    if let Some((id, Live::Unknown(why))) = live
        .backends
        .iter()
        .find(|(_, l)| matches!(l, Live::Unknown(_)))
    {
        return Current::Unsure(format!("node {id} could not be asked: {why}"));
    }
    let primaries: Vec<(u32, u32)> = live
        .backends
        .iter()
        .filter_map(|(id, l)| match l {
            Live::Primary { timeline, .. } => Some((*id, *timeline)),
            _ => None,
        })
        .collect();
    let Some(&(newest, timeline)) = primaries.iter().max_by_key(|(_, tl)| *tl) else {
        return Current::NoPrimary;
    };
    let on_it: Vec<u32> = primaries
        .iter()
        .filter(|(_, tl)| *tl == timeline)
        .map(|(id, _)| *id)
        .collect();
    if on_it.len() > 1 {
        return Current::Unsure(format!(
            "nodes {on_it:?} are all primaries on timeline {timeline}"
        ));
    }
    Current::Primary(newest)
}

/// One request to pgpool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// `pcp_attach_node`: a detached backend that should serve.
    Attach(u32),
    /// `pcp_detach_node`: a second primary pgpool must not use.
    Detach(u32),
    /// `pcp_promote_node` without `-s`: pgpool's primary was wrong.
    Promote(u32),
}

impl Change {
    pub fn node(self) -> u32 {
        match self {
            Change::Attach(n) | Change::Detach(n) | Change::Promote(n) => n,
        }
    }

    /// Whether pgpool's primary changes with it: the next changes must
    /// wait until pgpool has acted on it.
    pub fn moves_the_primary(self, nodes: &[NodeInfo]) -> bool {
        match self {
            Change::Promote(_) => true,
            Change::Attach(n) => nodes
                .iter()
                .find(|i| i.node_id == n)
                .is_some_and(|i| i.role == PoolRole::Primary || i.pg_role == LiveRole::Primary),
            Change::Detach(_) => false,
        }
    }
}

impl Change {
    /// Whether pgpool's view of the node (`info`) shows the change made.
    pub fn shows_in(self, info: &NodeInfo) -> bool {
        match self {
            Change::Attach(_) => info.status.is_attached(),
            Change::Detach(_) => info.status == BackendStatus::Down,
            Change::Promote(_) => is_pools_primary(info),
        }
    }
}

/// Whether pgpool uses the node as its primary.
pub fn is_pools_primary(info: &NodeInfo) -> bool {
    info.status.is_attached() && info.role == PoolRole::Primary
}

/// Whether pgpool refused a promotion because the node already is its
/// primary ("invalid promote request: specified node is already primary
/// node", docs/pgpool-facts.md): pgpool found it itself between the
/// agent's reading and its request, and nothing is wrong.
pub fn refused_as_primary_already(change: Change, e: &PcpError) -> bool {
    matches!(change, Change::Promote(_))
        && e.kind == PcpErrorKind::Server
        && e.reason.contains("already primary")
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Attach(n) => write!(f, "attach node {n}"),
            Change::Detach(n) => write!(f, "detach node {n}"),
            Change::Promote(n) => write!(f, "promote node {n} in pgpool"),
        }
    }
}

/// Whether pgpool's view disagrees with itself in a way the live view can
/// settle: a detached backend its checks see up, a live primary pgpool
/// does not use as its primary, or a primary of pgpool's that is not one.
/// In steady state it does not, and the monitor asks no backend.
pub fn needs_live_view(nodes: &[NodeInfo]) -> bool {
    let configured = || nodes.iter().filter(|n| n.status != BackendStatus::Unused);
    let detached_but_up =
        configured().any(|n| !n.status.is_attached() && n.pg_status == LiveStatus::Up);
    let primary_mismatch = configured().any(|n| {
        let pool_primary = n.role == PoolRole::Primary && n.status.is_attached();
        let live_primary = n.pg_role == LiveRole::Primary;
        pool_primary != live_primary
    });
    detached_but_up || primary_mismatch
}

/// The changes that bring pgpool's view (`nodes`) in step with `live`, in
/// the order they are to be made. When the primary must change, that is
/// the only change: the rest is planned again once pgpool has acted.
pub fn plan(nodes: &[NodeInfo], live: &LiveView) -> Vec<Change> {
    let Current::Primary(p) = current_primary(live) else {
        return Vec::new();
    };
    let Some(primary) = nodes.iter().find(|n| n.node_id == p) else {
        return Vec::new();
    };
    if !primary.status.is_attached() {
        // Attached while pgpool's own checks cannot reach it, it would be
        // detached again by the next health check.
        return if primary.pg_status == LiveStatus::Up {
            vec![Change::Attach(p)]
        } else {
            Vec::new()
        };
    }
    if primary.role != PoolRole::Primary {
        return vec![Change::Promote(p)];
    }
    let followers = live.followers(p);
    let mut changes = Vec::new();
    for n in nodes.iter().filter(|n| n.node_id != p) {
        let live_node = live.backends.get(&n.node_id);
        if n.status.is_attached() {
            if matches!(live_node, Some(Live::Primary { .. })) {
                changes.push(Change::Detach(n.node_id));
            }
        } else if n.status == BackendStatus::Down
            && n.pg_status == LiveStatus::Up
            && live_node == Some(&Live::Standby)
            && followers.contains(&n.node_id)
        {
            changes.push(Change::Attach(n.node_id));
        }
    }
    changes
}

/// Why a detached backend is left detached, for the operator (debug log).
pub fn held_back(nodes: &[NodeInfo], live: &LiveView) -> Vec<String> {
    let current = current_primary(live);
    let followers = match current {
        Current::Primary(p) => live.followers(p),
        _ => BTreeSet::new(),
    };
    nodes
        .iter()
        .filter(|n| n.status == BackendStatus::Down)
        .filter_map(|n| {
            let why = match (&current, live.backends.get(&n.node_id)) {
                (Current::Unsure(why), _) => why.clone(),
                (Current::NoPrimary, _) => "no backend is a primary".to_string(),
                (_, Some(Live::Absent(why) | Live::Unknown(why))) => why.clone(),
                (Current::Primary(_), _) if n.pg_status != LiveStatus::Up => {
                    "pgpool's own checks do not reach it".to_string()
                }
                (Current::Primary(p), Some(Live::Primary { .. })) if *p != n.node_id => {
                    format!("it is a primary beside node {p}, on an older timeline")
                }
                (Current::Primary(p), Some(Live::Standby)) if !followers.contains(&n.node_id) => {
                    match live.application_names.get(&n.node_id) {
                        Some(name) if !name.is_empty() => {
                            format!("{name} does not stream from node {p}")
                        }
                        _ => format!("backend_application_name{} is not set", n.node_id),
                    }
                }
                _ => return None,
            };
            Some(format!("node {} stays detached: {why}", n.node_id))
        })
        .collect()
}

/// Why `change` is made, for its log line.
pub fn reason(change: Change, nodes: &[NodeInfo], live: &LiveView) -> String {
    let timeline = |n: u32| match live.backends.get(&n) {
        Some(Live::Primary { timeline, .. }) => format!("timeline {timeline}"),
        _ => "timeline unknown".to_string(),
    };
    let current = match current_primary(live) {
        Current::Primary(p) => p,
        _ => return "the current primary is unknown".to_string(),
    };
    match change {
        Change::Attach(n) if n == current => format!(
            "it is the primary ({}) and pgpool had it detached",
            timeline(n)
        ),
        Change::Attach(n) => {
            let name = live.application_names.get(&n).map_or("", String::as_str);
            format!(
                "it streams from the primary, {}, as {name}",
                named(live, current)
            )
        }
        Change::Promote(n) => {
            let was = nodes
                .iter()
                .find(|i| i.role == PoolRole::Primary && i.status.is_attached())
                .map_or("pgpool had no primary".to_string(), |i| {
                    format!("pgpool's primary was {}", named(live, i.node_id))
                });
            format!("it is the primary ({}); {was}", timeline(n))
        }
        Change::Detach(n) => format!(
            "it is a primary too ({}), beside the current one, {} ({})",
            timeline(n),
            named(live, current),
            timeline(current)
        ),
    }
}

/// pgpool's backend `id` for a log line: `node2 (pgpool node 1)` by its
/// `backend_application_nameN` (the node name), `node 1` without one.
/// pgpool counts its nodes from 0 and clusters often name theirs from 1:
/// "node 1" alone would name either.
fn named(live: &LiveView, id: u32) -> String {
    match live.application_names.get(&id) {
        Some(name) if !name.is_empty() => format!("{name} (pgpool node {id})"),
        _ => format!("node {id}"),
    }
}

/// pgpool's view in a few words, for the log and the node attribute
/// `RESOURCE-backends` (what `crm_mon -A` shows): how many backends are
/// attached, which one is pgpool's primary, and which are detached or
/// `unknown` (their info did not come: a backend that hangs), e.g.
/// `2/3 attached, primary node1 (id 0), detached node3 (id 2)`. Each
/// backend is named by `names` (its `backend_application_nameN`, the node
/// name) or else by its address and port, with pgpool's node id, which
/// `pcp_attach_node -n` and `SHOW pool_nodes` use: pgpool counts from 0,
/// node names often from 1, and "node 1" alone would name either.
pub fn summary(nodes: &[NodeInfo], unknown: &[u32], names: &BTreeMap<u32, String>) -> String {
    let configured: Vec<&NodeInfo> = nodes
        .iter()
        .filter(|n| n.status != BackendStatus::Unused)
        .collect();
    let attached = configured.iter().filter(|n| n.status.is_attached()).count();
    let name = |id: u32| backend_name(id, names, configured.iter().find(|n| n.node_id == id));
    let primary = configured
        .iter()
        .filter(|n| n.status.is_attached())
        .find_map(|n| match n.role {
            PoolRole::Primary => Some(format!("primary {}", name(n.node_id))),
            // Slony and the other modes: where pgpool sends writes.
            PoolRole::Main => Some(format!("main {}", name(n.node_id))),
            _ => None,
        })
        .unwrap_or_else(|| "no primary".to_string());
    let mut text = format!(
        "{attached}/{} attached, {primary}",
        configured.len() + unknown.len()
    );
    for node in configured.iter().filter(|n| !n.status.is_attached()) {
        text.push_str(&format!(", detached {}", name(node.node_id)));
    }
    for node in unknown {
        text.push_str(&format!(", {} unknown", name(*node)));
    }
    text
}

/// `node1 (id 0)`: the backend's name in `names` when it has one, else its
/// address and port as pgpool has them.
fn backend_name(id: u32, names: &BTreeMap<u32, String>, info: Option<&&NodeInfo>) -> String {
    let name = names
        .get(&id)
        .filter(|n| !n.is_empty())
        .cloned()
        .or_else(|| info.map(|i| format!("{}:{}", i.hostname, i.port)))
        .unwrap_or_else(|| "backend".to_string());
    format!("{name} (id {id})")
}

/// Whether no backend is attached: pgpool then refuses every client.
pub fn none_attached(nodes: &[NodeInfo]) -> bool {
    !nodes.iter().any(|n| n.status.is_attached())
}

/// pgpool_status for a start, from the live view alone: the current
/// primary and the standbys streaming from it `up`, every other backend
/// `down` (so that pgpool never attaches a stale primary or a standby that
/// follows nobody); `None` when the current primary cannot be told, and
/// pgpool's own file is then left as it is. One word per backend slot, in
/// node id order, as pgpool-II 4.3 writes it (a slot without a backend is
/// `unused`).
pub fn status_file(backends: &[u32], live: &LiveView) -> Option<String> {
    let Current::Primary(p) = current_primary(live) else {
        return None;
    };
    let followers = live.followers(p);
    status_text(backends, |id| {
        id == p || (followers.contains(&id) && live.backends.get(&id) == Some(&Live::Standby))
    })
}

/// pgpool_status's text: `up` for the backends in `backends` that `up`
/// says, `down` for the others, `unused` for the slots between them; `None`
/// without a backend.
pub fn status_text(backends: &[u32], up: impl Fn(u32) -> bool) -> Option<String> {
    let last = backends.iter().max()?;
    let mut text = String::new();
    for id in 0..=*last {
        let word = if !backends.contains(&id) {
            "unused"
        } else if up(id) {
            "up"
        } else {
            "down"
        };
        text.push_str(word);
        text.push('\n');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pgpool's view of one backend: its status, its role in pgpool, and
    /// what pgpool's checks saw (`pg_status`, `pg_role`).
    fn node(id: u32, status: BackendStatus, role: PoolRole, pg: Option<LiveRole>) -> NodeInfo {
        let reached = pg.is_some();
        NodeInfo::sample(id, status, role, reached, pg.unwrap_or(LiveRole::Unknown))
    }

    use BackendStatus::{Down, Up, Waiting};
    use PoolRole::{Primary as PoolPrimary, Standby as PoolStandby};
    const LIVE_PRIMARY: Option<LiveRole> = Some(LiveRole::Primary);
    const LIVE_STANDBY: Option<LiveRole> = Some(LiveRole::Standby);

    fn primary(timeline: u32, streaming: &[&str]) -> Live {
        Live::Primary {
            timeline,
            streaming: streaming.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// node0, node1, node2 by their WAL receivers' names.
    fn view(backends: Vec<Live>) -> LiveView {
        LiveView {
            application_names: (0..backends.len() as u32)
                .map(|i| (i, format!("node{i}")))
                .collect(),
            backends: backends
                .into_iter()
                .enumerate()
                .map(|(i, l)| (i as u32, l))
                .collect(),
        }
    }

    fn absent() -> Live {
        Live::Absent("connection refused".into())
    }

    #[test]
    fn steady_state_needs_nothing_and_asks_no_backend() {
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Waiting, PoolStandby, LIVE_STANDBY),
        ];
        assert!(!needs_live_view(&nodes));
        let live = view(vec![primary(1, &["node1"]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), []);
    }

    #[test]
    fn a_restarted_standby_streaming_from_the_primary_is_attached() {
        // docs/pgpool-facts.md: status down, pg_status up, streaming, for good.
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Down, PoolStandby, LIVE_STANDBY),
        ];
        assert!(needs_live_view(&nodes));
        let live = view(vec![primary(1, &["node1"]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), [Change::Attach(1)]);
        assert!(held_back(&nodes, &live).is_empty());
    }

    #[test]
    fn a_standby_that_does_not_stream_yet_stays_detached() {
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Down, PoolStandby, LIVE_STANDBY),
        ];
        let live = view(vec![primary(1, &[]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), []);
        assert_eq!(
            held_back(&nodes, &live),
            ["node 1 stays detached: node1 does not stream from node 0"]
        );
        // Without backend_application_name1 the agent cannot tell.
        let mut unnamed = view(vec![primary(1, &["node1"]), Live::Standby]);
        unnamed.application_names.insert(1, String::new());
        assert_eq!(plan(&nodes, &unnamed), []);
        assert_eq!(
            held_back(&nodes, &unnamed),
            ["node 1 stays detached: backend_application_name1 is not set"]
        );
    }

    #[test]
    fn a_standby_pgpool_cannot_reach_is_not_attached() {
        // Attached, pgpool's next health check would detach it again.
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Down, PoolStandby, None),
        ];
        let live = view(vec![primary(1, &["node1"]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), []);
        assert_eq!(
            held_back(&nodes, &live),
            ["node 1 stays detached: pgpool's own checks do not reach it"]
        );
    }

    #[test]
    fn a_promotion_pgpool_missed_is_followed_then_the_standbys_attached() {
        // The primary search was over when node 1 was promoted: pgpool
        // calls it standby, and node 2 streams from it.
        let nodes = [
            node(0, Down, PoolStandby, None),
            node(1, Up, PoolStandby, LIVE_PRIMARY),
            node(2, Up, PoolStandby, LIVE_STANDBY),
        ];
        assert!(needs_live_view(&nodes));
        let live = view(vec![absent(), primary(2, &["node2"]), Live::Standby]);
        let first = plan(&nodes, &live);
        assert_eq!(first, [Change::Promote(1)]);
        assert!(first[0].moves_the_primary(&nodes));
        // pgpool acted: node 1 its primary, every other node detached.
        let after = [
            node(0, Down, PoolStandby, None),
            node(1, Up, PoolPrimary, LIVE_PRIMARY),
            node(2, Down, PoolStandby, LIVE_STANDBY),
        ];
        assert_eq!(plan(&after, &live), [Change::Attach(2)]);
        assert!(!Change::Attach(2).moves_the_primary(&after));
    }

    #[test]
    fn the_primary_pgpool_has_detached_is_attached_first() {
        // A status file from an older run marked the current primary down.
        let nodes = [
            node(0, Down, PoolStandby, LIVE_PRIMARY),
            node(1, Up, PoolStandby, LIVE_STANDBY),
        ];
        assert!(needs_live_view(&nodes));
        let live = view(vec![primary(1, &["node1"]), Live::Standby]);
        let changes = plan(&nodes, &live);
        assert_eq!(changes, [Change::Attach(0)]);
        assert!(changes[0].moves_the_primary(&nodes));
        // If pgpool then kept its own idea of the primary, promote.
        let after = [
            node(0, Waiting, PoolStandby, LIVE_PRIMARY),
            node(1, Up, PoolPrimary, LIVE_STANDBY),
        ];
        assert_eq!(plan(&after, &live), [Change::Promote(0)]);
    }

    #[test]
    fn a_former_primary_is_never_attached_before_it_follows() {
        // Node 0 was primary on timeline 1; node 1 took over on timeline 2.
        let nodes = [
            node(0, Down, PoolStandby, LIVE_PRIMARY),
            node(1, Up, PoolPrimary, LIVE_PRIMARY),
        ];
        let stale = view(vec![primary(1, &[]), primary(2, &[])]);
        assert_eq!(current_primary(&stale), Current::Primary(1));
        assert_eq!(plan(&nodes, &stale), []);
        assert_eq!(
            held_back(&nodes, &stale),
            ["node 0 stays detached: it is a primary beside node 1, on an older timeline"]
        );
        // Rewound and restarted as a standby, but not streaming yet.
        let nodes = [
            node(0, Down, PoolStandby, LIVE_STANDBY),
            node(1, Up, PoolPrimary, LIVE_PRIMARY),
        ];
        let catching_up = view(vec![Live::Standby, primary(2, &[])]);
        assert_eq!(plan(&nodes, &catching_up), []);
        // Streaming: attached.
        let following = view(vec![Live::Standby, primary(2, &["node0"])]);
        assert_eq!(plan(&nodes, &following), [Change::Attach(0)]);
    }

    #[test]
    fn a_stale_primary_pgpool_took_at_start_is_replaced_by_the_current_one() {
        // Started without a status file, pgpool attached both primaries and
        // took the first as its primary: the current one is promoted.
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Up, PoolStandby, LIVE_PRIMARY),
        ];
        let live = view(vec![primary(1, &[]), primary(2, &[])]);
        assert_eq!(plan(&nodes, &live), [Change::Promote(1)]);
        // Or pgpool took the current one: the stale one is detached.
        let nodes = [
            node(0, Up, PoolStandby, LIVE_PRIMARY),
            node(1, Up, PoolPrimary, LIVE_PRIMARY),
        ];
        assert!(needs_live_view(&nodes));
        assert_eq!(plan(&nodes, &live), [Change::Detach(0)]);
    }

    #[test]
    fn two_primaries_on_one_timeline_or_an_unanswered_question_change_nothing() {
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Up, PoolStandby, LIVE_PRIMARY),
        ];
        let twins = view(vec![primary(3, &[]), primary(3, &[])]);
        assert!(matches!(current_primary(&twins), Current::Unsure(_)));
        assert_eq!(plan(&nodes, &twins), []);

        let nodes = [
            node(0, Up, PoolPrimary, LIVE_PRIMARY),
            node(1, Down, PoolStandby, LIVE_STANDBY),
        ];
        let refused = view(vec![
            primary(1, &["node1"]),
            Live::Unknown("password authentication failed".into()),
        ]);
        assert_eq!(
            current_primary(&refused),
            Current::Unsure("node 1 could not be asked: password authentication failed".into())
        );
        assert_eq!(plan(&nodes, &refused), []);
    }

    #[test]
    fn during_a_failover_with_no_primary_nothing_changes() {
        // The primary died; the standby is not promoted yet. pgpool has
        // every backend down and refuses clients: still nothing to do.
        let nodes = [
            node(0, Down, PoolPrimary, None),
            node(1, Down, PoolStandby, LIVE_STANDBY),
        ];
        assert!(needs_live_view(&nodes));
        let live = view(vec![absent(), Live::Standby]);
        assert_eq!(current_primary(&live), Current::NoPrimary);
        assert_eq!(plan(&nodes, &live), []);
        assert_eq!(
            held_back(&nodes, &live),
            [
                "node 0 stays detached: no backend is a primary",
                "node 1 stays detached: no backend is a primary"
            ]
        );
        // Once it is promoted, it is attached (pgpool then finds it primary).
        let nodes = [
            node(0, Down, PoolPrimary, None),
            node(1, Down, PoolStandby, LIVE_PRIMARY),
        ];
        let live = view(vec![absent(), primary(2, &[])]);
        assert_eq!(plan(&nodes, &live), [Change::Attach(1)]);
    }

    #[test]
    fn a_primary_pgpool_cannot_reach_is_not_attached() {
        let nodes = [
            node(0, Down, PoolStandby, None),
            node(1, Up, PoolPrimary, LIVE_STANDBY),
        ];
        let live = view(vec![primary(2, &[]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), []);
    }

    #[test]
    fn a_node_pgpool_does_not_know_is_left_alone() {
        let nodes = [node(0, Up, PoolPrimary, LIVE_PRIMARY)];
        let live = view(vec![primary(1, &["node1"]), Live::Standby]);
        assert_eq!(plan(&nodes, &live), []);
        let live = view(vec![Live::Standby, primary(1, &[])]);
        assert_eq!(plan(&nodes, &live), []);
    }

    #[test]
    fn pgpools_primary_that_is_no_primary_any_more_is_noticed() {
        // A switchover: node 0 demoted, node 1 promoted; pgpool unaware.
        let nodes = [
            node(0, Up, PoolPrimary, LIVE_STANDBY),
            node(1, Up, PoolStandby, LIVE_PRIMARY),
        ];
        assert!(needs_live_view(&nodes));
        let live = view(vec![Live::Standby, primary(2, &["node0"])]);
        assert_eq!(plan(&nodes, &live), [Change::Promote(1)]);
        let after = [
            node(0, Down, PoolStandby, LIVE_STANDBY),
            node(1, Up, PoolPrimary, LIVE_PRIMARY),
        ];
        assert_eq!(plan(&after, &live), [Change::Attach(0)]);
    }

    #[test]
    fn each_change_says_why_and_the_summary_says_what_pgpool_sees() {
        let nodes = [
            node(0, Down, PoolStandby, None),
            node(1, Up, PoolStandby, LIVE_PRIMARY),
            node(2, Up, PoolStandby, LIVE_STANDBY),
        ];
        let live = view(vec![absent(), primary(2, &["node2"]), Live::Standby]);
        assert_eq!(
            reason(Change::Promote(1), &nodes, &live),
            "it is the primary (timeline 2); pgpool had no primary"
        );
        assert_eq!(
            reason(Change::Attach(2), &nodes, &live),
            "it streams from the primary, node1 (pgpool node 1), as node2"
        );
        let names = live.application_names.clone();
        assert_eq!(
            summary(&nodes, &[], &names),
            "2/3 attached, no primary, detached node0 (id 0)"
        );
        let after = [
            node(0, Down, PoolStandby, None),
            node(1, Waiting, PoolPrimary, LIVE_PRIMARY),
            node(2, Down, PoolStandby, LIVE_STANDBY),
        ];
        assert_eq!(
            summary(&after, &[], &names),
            "1/3 attached, primary node1 (id 1), detached node0 (id 0), detached node2 (id 2)"
        );
        assert_eq!(
            summary(&after[..2], &[2], &names),
            "1/3 attached, primary node1 (id 1), detached node0 (id 0), node2 (id 2) unknown"
        );
        // Without backend_application_nameN: the address pgpool has.
        assert_eq!(
            summary(&after[..2], &[2], &BTreeMap::new()),
            "1/3 attached, primary /run/node1:5432 (id 1), detached /run/node0:5432 (id 0), \
             backend (id 2) unknown"
        );
        assert!(!none_attached(&after));
        assert!(none_attached(&[node(0, Down, PoolPrimary, None)]));
        let stale = view(vec![primary(1, &[]), primary(2, &[])]);
        assert_eq!(
            reason(Change::Detach(0), &after, &stale),
            "it is a primary too (timeline 1), beside the current one, node1 (pgpool node 1) \
             (timeline 2)"
        );
        assert_eq!(
            reason(Change::Attach(1), &after, &stale),
            "it is the primary (timeline 2) and pgpool had it detached"
        );
    }

    #[test]
    fn a_change_shows_once_pgpool_has_acted_on_it() {
        let detached = node(1, Down, PoolStandby, LIVE_STANDBY);
        let waiting = node(1, Waiting, PoolStandby, LIVE_STANDBY);
        assert!(!Change::Attach(1).shows_in(&detached));
        assert!(Change::Attach(1).shows_in(&waiting));
        assert!(Change::Detach(1).shows_in(&detached));
        assert!(!Change::Detach(1).shows_in(&waiting));
        // Promoted: attached and pgpool's primary, not one without the other.
        assert!(!Change::Promote(1).shows_in(&waiting));
        assert!(!Change::Promote(1).shows_in(&node(1, Down, PoolPrimary, LIVE_PRIMARY)));
        assert!(Change::Promote(1).shows_in(&node(1, Up, PoolPrimary, LIVE_PRIMARY)));
    }

    #[test]
    fn only_pgpools_already_primary_refusal_of_a_promotion_is_no_failure() {
        // pgpool-II 4.3.5's words (test promote_makes_pgpool_follow_a_promotion_it_missed).
        let already = PcpError::new(
            PcpErrorKind::Server,
            "invalid promote request: specified node is already primary node, can't \
             promote node id 1",
        );
        assert!(refused_as_primary_already(Change::Promote(1), &already));
        assert!(!refused_as_primary_already(Change::Attach(1), &already));
        let other = PcpError::new(PcpErrorKind::Server, "invalid node id");
        assert!(!refused_as_primary_already(Change::Promote(1), &other));
        let cut = PcpError::new(PcpErrorKind::Protocol, "already primary? the peer closed");
        assert!(!refused_as_primary_already(Change::Promote(1), &cut));
    }

    #[test]
    fn followers_are_matched_by_application_name() {
        let live = view(vec![
            primary(1, &["node1", "node2", "stranger"]),
            Live::Standby,
            Live::Standby,
        ]);
        assert_eq!(live.followers(0), BTreeSet::from([1, 2]));
        assert!(live.followers(1).is_empty(), "a standby has no followers");
    }

    #[test]
    fn the_status_file_marks_up_the_primary_and_its_followers_only() {
        let live = view(vec![
            primary(2, &["node2"]),
            primary(1, &[]),
            Live::Standby,
            Live::Standby,
            absent(),
        ]);
        assert_eq!(
            status_file(&[0, 1, 2, 3, 4], &live).as_deref(),
            Some("up\ndown\nup\ndown\ndown\n")
        );
        // A gap in the backend numbers is an unused slot.
        let live = view(vec![primary(1, &["node2"]), absent(), Live::Standby]);
        assert_eq!(
            status_file(&[0, 2], &live).as_deref(),
            Some("up\nunused\nup\n")
        );
        // No primary, or no telling: pgpool's own file stays.
        assert_eq!(
            status_file(&[0, 1], &view(vec![absent(), Live::Standby])),
            None
        );
        assert_eq!(
            status_file(&[0, 1], &view(vec![primary(1, &[]), primary(1, &[])])),
            None
        );
    }
}
