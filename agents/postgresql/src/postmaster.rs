//! What of this instance runs here, read from postmaster.pid, the socket
//! lock file and /proc, without trusting any of them alone (DESIGN.md
//! failure 1).

use crate::config::PgConfig;
use ocf::process::{self, Expected, PidCheck, PidFile, ProcInfo};
use ocf::{OcfError, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

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

/// A lock file that names a process by PID.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lock {
    Absent,
    Held(ProcInfo),
    /// Present but naming no live process of the expected kind; says why.
    Stale(String),
}

fn read_lock(path: &Path, expected: &Expected<'_>) -> Result<Lock> {
    let file = process::read_pid_file(path)
        .map_err(|e| OcfError::generic(format!("cannot read {}: {e}", path.display())))?;
    let pid = match file {
        PidFile::Missing => return Ok(Lock::Absent),
        PidFile::Garbage(text) => return Ok(Lock::Stale(format!("it holds no PID ({text:?})"))),
        PidFile::Pid { pid, .. } => pid,
    };
    // The executable and the working directory identify a postgres of this
    // data directory without doubt, so the start time is not compared with
    // the file's mtime: that test would break when the clock is stepped.
    let verdict = process::check_pid(pid, expected, None)
        .map_err(|e| OcfError::generic(format!("reading /proc/{pid}: {e}")))?;
    Ok(match verdict {
        PidCheck::Ours(info) => Lock::Held(info),
        PidCheck::Dead => Lock::Stale(format!("PID {pid} does not exist")),
        // A postmaster killed where nothing reaps orphans stays a zombie,
        // and a zombie passes PostgreSQL's own kill(pid, 0) test.
        PidCheck::Zombie => Lock::Stale(format!("PID {pid} has exited")),
        PidCheck::Foreign(why) => Lock::Stale(why),
    })
}

/// What any process of this data directory looks like: the postgres
/// executable (from whatever bindir) working in pgdata, where the postmaster
/// and every backend chdir. The owner is left out on purpose: a postmaster
/// of this data directory run by the wrong account is still one, and its
/// pid file must never be moved aside.
pub fn expected(pgdata: &Path) -> Expected<'_> {
    Expected {
        exe_name: Some(OsStr::new("postgres")),
        cwd: Some(pgdata),
        ..Default::default()
    }
}

/// Everything else about the instance is configuration; what runs is found
/// from the data directory alone, so that stop works even when another
/// parameter is wrong.
pub fn observe(pgdata: &Path) -> Result<Postmaster> {
    let pid_file = pid_file(pgdata);
    let stale = match read_lock(&pid_file, &expected(pgdata))? {
        Lock::Held(info) => return Ok(Postmaster::Running(info)),
        Lock::Absent => None,
        Lock::Stale(why) => Some(format!("{} is stale: {why}", pid_file.display())),
    };
    let leftovers = leftovers(pgdata)?;
    if leftovers.is_empty() {
        Ok(Postmaster::Stopped { stale })
    } else {
        Ok(Postmaster::Orphaned(leftovers))
    }
}

/// The unix socket's lock file (`.s.PGSQL.PORT.lock`) names the postmaster
/// that owns the socket, and PostgreSQL refuses to start while that PID is
/// alive. Returns why the lock is stale, or `None` when it is absent or held
/// by a live postgres of whatever data directory (then the port really is
/// taken, and PostgreSQL's own error says so).
pub fn stale_socket_lock(cfg: &PgConfig) -> Result<Option<String>> {
    let any_postgres = Expected {
        exe_name: Some(OsStr::new("postgres")),
        ..Default::default()
    };
    Ok(match read_lock(&socket_lock(cfg), &any_postgres)? {
        Lock::Stale(why) => Some(format!("{} is stale: {why}", socket_lock(cfg).display())),
        Lock::Absent | Lock::Held(_) => None,
    })
}

pub fn pid_file(pgdata: &Path) -> PathBuf {
    pgdata.join("postmaster.pid")
}

pub fn socket_lock(cfg: &PgConfig) -> PathBuf {
    cfg.socketdir.join(format!(".s.PGSQL.{}.lock", cfg.pgport))
}

/// Every process of this data directory, found by a /proc scan.
pub fn leftovers(pgdata: &Path) -> Result<Vec<ProcInfo>> {
    process::find_processes(&expected(pgdata))
        .map_err(|e| OcfError::generic(format!("scanning /proc: {e}")))
}

pub fn pid_list(procs: &[ProcInfo]) -> String {
    procs
        .iter()
        .map(|p| p.pid.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
