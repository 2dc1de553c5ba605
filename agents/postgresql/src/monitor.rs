//! monitor: the truth about this instance on this node, cheaply.
//!
//! The steady-state path reads postmaster.pid and a few /proc entries and
//! makes one connection with one query; it forks nothing.

use crate::config::PgConfig;
use crate::postmaster::{self, Postmaster};
use crate::sql::{self, ServerState};
use ocf::{debug, Deadline, OcfError, OsUser, Result};

/// What a monitor found when something of the instance runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    NotRunning,
    Running(ServerState),
}

pub fn monitor(cfg: &PgConfig, deadline: &Deadline) -> Result<Observed> {
    match postmaster::observe(&cfg.pgdata)? {
        Postmaster::Stopped { stale } => {
            if let Some(why) = stale {
                debug!("{why}");
            }
            Ok(Observed::NotRunning)
        }
        Postmaster::Orphaned(procs) => Err(OcfError::generic(format!(
            "processes of {} run without a postmaster (PIDs {})",
            cfg.pgdata.display(),
            postmaster::pid_list(&procs)
        ))),
        Postmaster::Running(pm) => {
            let user = OsUser::lookup(&cfg.pguser)?;
            let state = sql::server_state(cfg, &user, deadline)
                .map_err(|e| e.context(format!("postmaster {} runs, but", pm.pid)))?;
            Ok(Observed::Running(state))
        }
    }
}
