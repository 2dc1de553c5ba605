//! monitor: the truth about this instance on this node, cheaply.
//!
//! The steady-state path reads postmaster.pid and a few /proc entries and
//! makes one connection with one query; it forks nothing.

use crate::config::PgConfig;
use crate::postmaster::{self, Postmaster};
use crate::sql::{self, ServerState};
use nix::unistd::{Gid, Uid};
use ocf::{debug, Deadline, OcfError, Result};

/// What a monitor found.
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
            // As the postmaster's own uid and gid: no user lookup, which
            // could fail (an LDAP outage) and read as "not installed here".
            let as_user = (Uid::from_raw(pm.uid), Gid::from_raw(pm.gid));
            let state = sql::server_state(cfg, as_user, deadline)
                .map_err(|e| e.context(format!("postmaster {} runs, but", pm.pid)))?;
            Ok(Observed::Running(state))
        }
    }
}
