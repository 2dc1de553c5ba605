//! Reconciliation, the effects: read pgpool's view node by node, ask the
//! backends only when it needs settling, make the planned changes one log
//! line each, and when pgpool's primary changes wait for pgpool to act
//! before planning the rest (see [`crate::reconcile`] for the decisions).
//!
//! What is reported afterwards (the log line and the node attribute) is
//! pgpool's view read again once every change has shown in it: pgpool
//! answers a request before it acts, and a report of the view read before
//! the change would say the opposite of what was just done.

use crate::config::Follow;
use crate::live::Asker;
use crate::pcp::{NodeInfo, PcpError};
use crate::reconcile::{self, Change, Current, LiveView};
use crate::session::Pcp;
use crate::settings::BackendConf;
use crate::slony;
use ocf::{debug, info, warning, Deadline};
use pgclient::slony::ClusterName;

/// What one reconciliation saw and did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// pgpool's view as last read.
    pub nodes: Vec<NodeInfo>,
    /// Nodes whose info did not come (a backend that hangs), with why.
    pub missing: Vec<(u32, PcpError)>,
    pub changed: Vec<Change>,
}

/// At most this many rounds: attach the primary, promote it, attach the
/// standbys.
const ROUNDS: usize = 3;

/// Brings pgpool's view of its `count` backends in step with theirs
/// (`follow`: a streaming primary or a Slony origin), inside `deadline`.
pub fn reconcile(
    pcp: &Pcp,
    count: u32,
    asker: &Asker,
    backends: &[BackendConf],
    follow: &Follow,
    deadline: &Deadline,
) -> Outcome {
    let mut outcome = Outcome::default();
    read(pcp, count, &mut outcome, &deadline.share(0.4));
    match follow {
        Follow::Streaming => follow_primary(pcp, count, asker, backends, outcome, deadline),
        Follow::Slony(cluster) => {
            follow_origin(pcp, count, asker, backends, cluster, outcome, deadline)
        }
    }
}

/// Streaming replication: the live primary pgpool's primary, its standbys
/// attached.
fn follow_primary(
    pcp: &Pcp,
    count: u32,
    asker: &Asker,
    backends: &[BackendConf],
    mut outcome: Outcome,
    deadline: &Deadline,
) -> Outcome {
    let mut live: Option<LiveView> = None;
    for _ in 0..ROUNDS {
        if !reconcile::needs_live_view(&outcome.nodes) {
            break;
        }
        let live = live.get_or_insert_with(|| asker.observe(backends, &deadline.share(0.5)));
        let changes = reconcile::plan(&outcome.nodes, live);
        if changes.is_empty() {
            if let Current::Unsure(why) = reconcile::current_primary(live) {
                warning!("pgpool's view of the backends is left as it is: {why}");
            }
            for line in reconcile::held_back(&outcome.nodes, live) {
                debug!("{line}");
            }
            break;
        }
        let why = |change| reconcile::reason(change, &outcome.nodes, live);
        let applied = apply(pcp, &changes, &outcome.nodes, why, deadline);
        let moved = applied.primary_taken
            || applied
                .made
                .iter()
                .any(|c| c.moves_the_primary(&outcome.nodes));
        outcome.changed.extend(&applied.made);
        if applied.view_changed {
            read(pcp, count, &mut outcome, &deadline.share(0.5));
        }
        // Only a new primary calls for another plan: the standbys that
        // pgpool detached with it are attached in the next round.
        if !moved {
            break;
        }
    }
    outcome
}

/// Slony mode: writes to the origin. pgpool's view cannot show that the
/// origin moved (every backend is up and writable to pgpool), so the
/// backends are asked at every monitor, one round trip each.
fn follow_origin(
    pcp: &Pcp,
    count: u32,
    asker: &Asker,
    backends: &[BackendConf],
    cluster: &ClusterName,
    mut outcome: Outcome,
    deadline: &Deadline,
) -> Outcome {
    let view = asker.observe_slony(backends, cluster, &deadline.share(0.5));
    let changes = slony::plan(&outcome.nodes, &view);
    if changes.is_empty() {
        if let slony::Origin::Unsure(why) = slony::origin(&view) {
            warning!("pgpool's view of the backends is left as it is: {why}");
        }
        if let Some(why) = slony::held_back(&outcome.nodes, &view) {
            warning!("{why}");
        }
        return outcome;
    }
    let applied = apply(
        pcp,
        &changes,
        &outcome.nodes,
        |change| slony::reason(change, &view),
        deadline,
    );
    outcome.changed.extend(&applied.made);
    if applied.view_changed {
        read(pcp, count, &mut outcome, &deadline.share(0.5));
    }
    outcome
}

/// pgpool's view of nodes `0..count`, into `outcome`.
fn read(pcp: &Pcp, count: u32, outcome: &mut Outcome, deadline: &Deadline) {
    let infos = pcp.node_infos(count, deadline);
    for (node, e) in &infos.missing {
        debug!("pgpool's view of node {node} did not come: {e}");
    }
    outcome.nodes = infos.nodes;
    outcome.missing = infos.missing;
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct Applied {
    /// The requests pgpool took.
    pub made: Vec<Change>,
    /// Whether pgpool's view may differ from the one the changes were
    /// planned on (a change was made, or pgpool made one itself).
    pub view_changed: bool,
    /// pgpool took the planned primary itself: as after a promotion, the
    /// standbys it detached meanwhile are planned again.
    pub primary_taken: bool,
}

/// Makes `changes` one log line each, then waits until each shows in
/// pgpool's view. Before a promotion the node is read again: pgpool may
/// have found its new primary itself meanwhile (its own primary search),
/// and a promotion it does not need restarts its children and drops every
/// client session.
pub fn apply(
    pcp: &Pcp,
    changes: &[Change],
    nodes: &[NodeInfo],
    why: impl Fn(Change) -> String,
    deadline: &Deadline,
) -> Applied {
    let mut applied = Applied::default();
    for &change in changes {
        let node = nodes.iter().find(|n| n.node_id == change.node());
        let at = node.map_or(String::new(), |n| format!(" ({}:{})", n.hostname, n.port));
        if let Change::Promote(n) = change {
            match pcp.node_info(n, &deadline.share(0.2)) {
                Ok(now) if reconcile::is_pools_primary(&now) => {
                    info!("node {n}{at} is pgpool's primary already: pgpool found it itself");
                    applied.view_changed = true;
                    applied.primary_taken = true;
                    continue;
                }
                Ok(_) => {}
                Err(e) => debug!("could not read node {n} again before promoting it: {e}"),
            }
        }
        match pcp.request(change, deadline) {
            Ok(()) => {
                info!("{change}{at}: {}", why(change));
                applied.made.push(change);
                applied.view_changed = true;
            }
            Err(e) if reconcile::refused_as_primary_already(change, &e) => {
                info!(
                    "node {}{at} is pgpool's primary already: {e}",
                    change.node()
                );
                applied.view_changed = true;
                applied.primary_taken = true;
            }
            Err(e) => warning!("could not {change}{at}: {e}"),
        }
    }
    // pgpool queues each request and answers first; it takes it up within
    // a second (0.03 s for an attach, 0.7 s for a promote,
    // docs/pgpool-facts.md).
    for &change in &applied.made {
        let shows = |i: &NodeInfo| change.shows_in(i);
        match pcp.wait_for(change.node(), shows, &deadline.share(0.5)) {
            Ok(info) if shows(&info) => {}
            Ok(info) => warning!(
                "pgpool did not show the change ({change}) in time: node {} is {}, {}",
                info.node_id,
                info.status.name(),
                info.role.name()
            ),
            Err(e) => warning!("pgpool did not show the change ({change}): {e}"),
        }
    }
    applied
}
