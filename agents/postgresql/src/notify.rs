//! notify: at pre-promote every standby publishes its WAL position for
//! the promotion to compare, and the node to be promoted records who the
//! candidates are; at post-promote the positions and demote markers go.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::postmaster::{self, State};
use crate::promote::{self, Comparison};
use crate::replication;
use nix::unistd::{Gid, Uid};
use ocf::notify::{Notification, Operation, When};
use ocf::{debug, warning, Deadline, OcfEnv, Result, Status};

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
        // In a switchover the demoted primary is a candidate too.
        let candidates: Vec<String> = n
            .unpromoted
            .iter()
            .chain(&n.demote)
            .filter(|c| !n.stop.contains(c) && !n.promote.contains(c))
            .cloned()
            .collect();
        cluster.set_candidates(&candidates);
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
        // Steered now, the promotion moves before it starts here.
        if let Comparison::Behind { node, position } =
            promote::compare_candidates(cluster, repl.position, deadline)?
        {
            warning!(
                "{node} has more WAL ({position}) than this node ({}): steering the promotion \
                 to {node}",
                repl.position
            );
        }
    }
    Ok(())
}
