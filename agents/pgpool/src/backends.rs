//! Reconciliation, the effects: read pgpool's view node by node, ask the
//! backends only when it needs settling, make the planned changes one log
//! line each, and when pgpool's primary changes wait for pgpool to act
//! before planning the rest (see [`crate::reconcile`] for the decisions).

use crate::live::Asker;
use crate::pcp::{NodeInfo, PcpError, PoolRole};
use crate::reconcile::{self, Change, Current, LiveView};
use crate::session::Pcp;
use crate::settings::BackendConf;
use ocf::{debug, info, warning, Deadline};
use std::time::Duration;

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

/// Brings pgpool's view of its `count` backends in step with theirs,
/// inside `deadline`.
pub fn reconcile(
    pcp: &Pcp,
    count: u32,
    asker: &Asker,
    backends: &[BackendConf],
    deadline: &Deadline,
) -> Outcome {
    let infos = pcp.node_infos(count, &deadline.share(0.4));
    let mut outcome = Outcome {
        nodes: infos.nodes,
        missing: infos.missing,
        changed: Vec::new(),
    };
    for (node, e) in &outcome.missing {
        debug!("pgpool's view of node {node} did not come: {e}");
    }
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
        let mut moved = None;
        let mut made = Vec::new();
        for change in changes {
            let node = outcome.nodes.iter().find(|n| n.node_id == change.node());
            let at = node.map_or(String::new(), |n| format!(" ({}:{})", n.hostname, n.port));
            match pcp.request(change, deadline) {
                Ok(()) => {
                    info!(
                        "{change}{at}: {}",
                        reconcile::reason(change, &outcome.nodes, live)
                    );
                    if change.moves_the_primary(&outcome.nodes) {
                        moved = Some(change);
                    }
                    outcome.changed.push(change);
                    made.push(change);
                }
                Err(e) if reconcile::already_done(change, &e.reason) => {
                    info!("{change}{at}: pgpool found it itself meanwhile ({e})");
                    // Its standbys may need attaching again, as after
                    // the agent's own promote.
                    moved = Some(change);
                }
                Err(e) => warning!("could not {change}{at}: {e}"),
            }
        }
        let Some(change) = moved else {
            // pgpool answers a request before it takes it up: wait, briefly,
            // until it shows each change, so that the summary logged and
            // published (RESOURCE-backends) is pgpool's view after them,
            // not the one before until the next monitor.
            for change in made {
                let attached = matches!(change, Change::Attach(_));
                let brief = Deadline::after(
                    deadline
                        .remaining()
                        .mul_f64(0.2)
                        .min(Duration::from_secs(2)),
                );
                let shown = |i: &NodeInfo| i.status.is_attached() == attached;
                match pcp.wait_for(change.node(), shown, &brief) {
                    Ok(info) => {
                        if let Some(n) =
                            outcome.nodes.iter_mut().find(|n| n.node_id == info.node_id)
                        {
                            *n = info;
                        }
                    }
                    Err(e) => debug!("pgpool's view after {change}: {e}"),
                }
            }
            break;
        };
        // pgpool queues the request and answers first; it takes it up
        // within a second (0.7 s for a promote, docs/pgpool-facts.md).
        let done = |i: &NodeInfo| i.status.is_attached() && is_promoted(change, i);
        if let Err(e) = pcp.wait_for(change.node(), done, &deadline.share(0.5)) {
            warning!("pgpool did not show the change ({change}): {e}");
            break;
        }
        let infos = pcp.node_infos(count, &deadline.share(0.5));
        outcome.nodes = infos.nodes;
        outcome.missing = infos.missing;
    }
    outcome
}

fn is_promoted(change: Change, info: &NodeInfo) -> bool {
    !matches!(change, Change::Promote(_)) || info.role == PoolRole::Primary
}
