//! demote: a primary never runs unpromoted. It shuts down cleanly (the
//! shutdown checkpoint reaches the standbys before the walsenders exit),
//! says where that checkpoint is, and starts again as a standby.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::controldata::{ClusterState, ControlData};
use crate::postmaster::{self, State};
use crate::start::{self, Mode};
use crate::wal::Position;
use crate::{election, sql, stop, validate};
use ocf::{info, warning, Deadline, OcfEnv, OcfError, Result, Status};

pub fn demote(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Result<Status> {
    let checked = validate::check(cfg, deadline)?;
    match postmaster::observe(&cfg.pgdata)? {
        State::Running(pm) => {
            let state = sql::server_state(cfg, (checked.user.uid, checked.user.gid), deadline)
                .map_err(|e| e.context(format!("postmaster {} runs, but", pm.pid)))?;
            if state.in_recovery {
                info!("already a standby");
                return Ok(Status::Success);
            }
        }
        // A crashed primary is not started again here: started as a
        // standby now, with nothing to compare its WAL to, it could run
        // diverged. Pacemaker stops it; start later checks it against the
        // new primary.
        _ => {
            return Err(OcfError::new(
                Status::NotRunning,
                "PostgreSQL is not running: nothing to demote",
            ))
        }
    }
    stop::stop(&cfg.pgdata, &deadline.share(0.5))?;
    // pg-sync is the primary's: left here, crm_mon -A would show this
    // standby-to-be as a primary whose commits wait.
    if let Err(e) = Cluster::new(env).publish_sync_gone(deadline) {
        warning!("{}", e.reason());
    }
    let control = ControlData::read(&checked.user, &checked.bindir, &cfg.pgdata, deadline)?;
    if control.state != ClusterState::ShutDown {
        return Err(OcfError::generic(format!(
            "the primary did not shut down cleanly ({:?}): left stopped, its start will check \
             it against the new primary",
            control.state
        )));
    }
    let checkpoint = Position {
        timeline: control.timeline,
        lsn: control.checkpoint,
    };
    info!("shut down the primary; its shutdown checkpoint is at {checkpoint}");
    if let Err(e) = Cluster::new(env).publish_demoted_at(Some(checkpoint), deadline) {
        warning!("{}", e.reason());
    }
    start::start(
        cfg,
        env,
        after_demote(env, control.timeline, deadline),
        deadline,
    )
}

/// How the demoted primary starts as a standby. A planned demote hands
/// over cleanly: the node about to be promoted holds everything this one
/// wrote, so no divergence check. A stale primary (another node was
/// promoted on a newer timeline while this one ran on: a healed
/// partition, Pacemaker demoting one of two primaries) may have written
/// past that promotion's fork: started unchecked, it would follow the new
/// primary's history from beyond the fork and never stream. It starts as
/// any standby does, checked (and rewound) first. When attrd cannot say,
/// the planned case: a stale primary's monitor fails anyway, and its
/// restart checks it.
fn after_demote(env: &OcfEnv, my_timeline: u32, deadline: &Deadline) -> Mode {
    let cluster = Cluster::new(env);
    match cluster.timelines(deadline) {
        Ok(timelines) => match election::newer_timeline(&cluster.node, my_timeline, &timelines) {
            Some((node, timeline)) => {
                warning!(
                    "{node} is on timeline {timeline}, newer than this primary's \
                     {my_timeline}: this node's WAL is checked against the primary before it \
                     follows"
                );
                Mode::Standby
            }
            None => Mode::DemotedStandby,
        },
        Err(e) => {
            warning!("{}", e.reason());
            Mode::DemotedStandby
        }
    }
}
