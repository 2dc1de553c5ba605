//! What of this instance runs here, read from postmaster.pid and /proc
//! without trusting either alone (DESIGN.md failure 1).

use crate::config::PgConfig;
use ocf::process::{self, Expected, PidCheck, PidFile, ProcInfo};
use ocf::{OcfError, Result};
use std::ffi::OsStr;

/// The processes of one data directory, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Postmaster {
    /// The postmaster named by postmaster.pid, verified by /proc.
    Running(ProcInfo),
    /// Nothing of this data directory runs; `stale` says why a pid file
    /// that is present was not believed.
    Stopped { stale: Option<String> },
    /// Server processes of this data directory run without a postmaster
    /// (it was killed and backends outlived it).
    Orphaned(Vec<ProcInfo>),
}

/// What any process of this data directory looks like: the postgres
/// executable (from whatever bindir) working in pgdata, where the postmaster
/// and every backend chdir. The owner is left out on purpose: a postmaster
/// of this data directory run by the wrong account is still one, and its
/// pid file must never be moved aside.
pub fn expected(cfg: &PgConfig) -> Expected<'_> {
    Expected {
        exe_name: Some(OsStr::new("postgres")),
        cwd: Some(&cfg.pgdata),
        ..Default::default()
    }
}

pub fn observe(cfg: &PgConfig) -> Result<Postmaster> {
    let pid_file = cfg.pid_file();
    let stale = match process::read_pid_file(&pid_file) {
        Ok(PidFile::Missing) => None,
        Ok(PidFile::Garbage(text)) => Some(format!("it holds no PID ({text:?})")),
        Ok(PidFile::Pid { pid, written, .. }) => {
            match process::check_pid(pid, &expected(cfg), Some(written)) {
                Ok(PidCheck::Ours(info)) => return Ok(Postmaster::Running(info)),
                Ok(PidCheck::Dead) => Some(format!("PID {pid} does not exist")),
                Ok(PidCheck::Zombie) => Some(format!("PID {pid} has exited")),
                Ok(PidCheck::Foreign(why)) => Some(why),
                Err(e) => return Err(OcfError::generic(format!("reading /proc/{pid}: {e}"))),
            }
        }
        Err(e) => {
            return Err(OcfError::generic(format!(
                "cannot read {}: {e}",
                pid_file.display()
            )))
        }
    };
    let leftovers = leftovers(cfg)?;
    if leftovers.is_empty() {
        Ok(Postmaster::Stopped {
            stale: stale.map(|why| format!("{} is stale: {why}", pid_file.display())),
        })
    } else {
        Ok(Postmaster::Orphaned(leftovers))
    }
}

/// Every process of this data directory, found by a /proc scan.
pub fn leftovers(cfg: &PgConfig) -> Result<Vec<ProcInfo>> {
    process::find_processes(&expected(cfg))
        .map_err(|e| OcfError::generic(format!("scanning /proc: {e}")))
}

pub fn pid_list(procs: &[ProcInfo]) -> String {
    procs
        .iter()
        .map(|p| p.pid.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
