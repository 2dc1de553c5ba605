//! notify: at pre-promote every standby publishes its WAL position for
//! the promotion to compare, and the node to be promoted records who the
//! candidates are; at post-promote the positions and demote markers go.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::postmaster::{self, State};
use crate::promote::{self, Comparison};
use crate::rebuild::{self, Rebuild};
use crate::replication;
use nix::unistd::{Gid, Uid};
use ocf::notify::{Notification, Operation, When};
use ocf::{debug, info, warning, Deadline, OcfEnv, Result, Status};
use std::time::Duration;

pub fn notify(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Result<Status> {
    // A notification's failure changes nothing Pacemaker does: it is
    // logged, and promote checks again what it needs.
    let n = match Notification::from_env() {
        Ok(n) => n,
        Err(e) => {
            warning!("notify: {}", e.reason());
            return Ok(Status::Success);
        }
    };
    let cluster = Cluster::new(env);
    debug!("notify {:?}-{:?}", n.when, n.operation);
    let result = match (n.when, n.operation) {
        (When::Pre, Operation::Promote) => pre_promote(cfg, &cluster, &n, deadline),
        (When::Post, Operation::Promote) => cluster
            .publish_position(None, deadline)
            .and_then(|()| cluster.publish_demoted_at(None, deadline))
            .map(|()| cluster.set_candidates(&[])),
        _ => Ok(()),
    };
    if let Err(e) = result {
        warning!("notify: {}", e.reason());
    }
    Ok(Status::Success)
}

fn pre_promote(
    cfg: &PgConfig,
    cluster: &Cluster,
    n: &Notification,
    deadline: &Deadline,
) -> Result<()> {
    if n.promote.contains(&cluster.node) {
        cluster.set_candidates(&candidates(n));
    }
    if Rebuild::of(&cluster.resource, &cfg.pgdata).observe() != rebuild::Observed::None {
        // Being rebuilt: no candidate, and the promotion must not wait for
        // a position it would never publish (seen in the lab: the other
        // standby's promote refused after 28 s). The lowest position there
        // is says so: it holds nothing anybody acknowledged.
        info!("pre-promote: being rebuilt, no candidate");
        return cluster.publish_position(Some(rebuild::NO_CANDIDATE), deadline);
    }
    let State::Running(pm) = postmaster::observe(&cfg.pgdata)? else {
        return Ok(());
    };
    let repl = replication::observe(
        cfg,
        (Uid::from_raw(pm.uid), Gid::from_raw(pm.gid)),
        deadline,
    )?;
    if !repl.in_recovery {
        return Ok(());
    }
    cluster.publish_position(Some(repl.position), deadline)?;
    if n.promote.contains(&cluster.node) {
        // Steered now, the promotion moves before it starts here. Briefly:
        // the others publish in their own notifications, which a throttled
        // cluster runs only after this one; promote, which runs after all
        // of them, compares again and waits for what is missing.
        let waiting = Deadline::after(
            deadline
                .remaining()
                .mul_f64(0.2)
                .min(Duration::from_secs(2)),
        );
        match promote::compare_candidates(cfg, cluster, repl.position, &waiting, deadline)? {
            Comparison::Refused {
                why,
                instead: Some(node),
            } => warning!("{why}: steering the promotion to {node}"),
            Comparison::Refused { why, instead: None } => {
                warning!("{why}: promote will refuse")
            }
            Comparison::Undecided(missing) => info!(
                "no WAL position from {} yet: promote compares again",
                missing.join(", ")
            ),
            Comparison::Best(_) => {}
        }
    }
    Ok(())
}

/// The candidates of a promotion, besides the node promoted: every
/// unpromoted instance, the demoted primary of a switchover, and instances
/// started in this same transition (a node that rejoined, a standby
/// restarted: listed as stopped and started), but not one only stopped.
pub fn candidates(n: &Notification) -> Vec<String> {
    let mut c: Vec<String> = n
        .unpromoted
        .iter()
        .chain(&n.demote)
        .chain(&n.start)
        .filter(|c| !n.promote.contains(c))
        .filter(|c| !n.stop.contains(c) || n.start.contains(c))
        .cloned()
        .collect();
    c.sort();
    c.dedup();
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_started_in_the_same_transition_are_candidates_too() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let n = Notification {
            when: When::Pre,
            operation: Operation::Promote,
            // node3 restarted, node4 rejoined, node5 stopped for good.
            start: names(&["node3", "node4"]),
            stop: names(&["node3", "node5"]),
            promote: names(&["node2"]),
            demote: names(&["node1"]),
            active: names(&["node1", "node2", "node3", "node5"]),
            promoted: names(&["node1"]),
            unpromoted: names(&["node2", "node3", "node5"]),
        };
        // Before: node3 and node4 were never compared.
        assert_eq!(candidates(&n), names(&["node1", "node3", "node4"]));
    }
}
