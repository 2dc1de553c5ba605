//! What of this instance runs here: the postmaster as a [`Service`] of the
//! core, found through postmaster.pid, the socket lock file and /proc,
//! without trusting any of them alone (DESIGN.md failure 1).

use crate::config::PgConfig;
use ocf::process::{self, Expected, ProcInfo};
use ocf::service::{self, Lock, Service};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub use ocf::service::State;

/// The processes of one data directory. What runs is found from the data
/// directory alone, so that stop works even when another parameter is wrong.
pub struct Postmaster {
    pgdata: PathBuf,
    pid_file: PathBuf,
}

impl Postmaster {
    pub fn of(pgdata: &Path) -> Postmaster {
        Postmaster {
            pgdata: pgdata.to_path_buf(),
            pid_file: pgdata.join("postmaster.pid"),
        }
    }
}

impl Service for Postmaster {
    fn name(&self) -> &str {
        "postmaster"
    }

    fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// The postgres executable (from whatever bindir) working in pgdata,
    /// where the postmaster and every backend chdir. That identifies a
    /// postgres of this data directory without doubt, so the start time is
    /// not compared with the file's mtime. The owner is left out on purpose:
    /// a postmaster of this data directory run by the wrong account is still
    /// one, and its pid file must never be moved aside.
    fn main_process(&self) -> Expected<'_> {
        Expected {
            exe_name: Some(OsStr::new("postgres")),
            cwd: Some(&self.pgdata),
            ..Default::default()
        }
    }

    fn members(&self) -> std::io::Result<Vec<ProcInfo>> {
        process::find_processes(&self.main_process())
    }
}

/// What of the instance in `pgdata` runs.
pub fn observe(pgdata: &Path) -> ocf::Result<State> {
    service::observe(&Postmaster::of(pgdata))
}

/// The unix socket's lock file (`.s.PGSQL.PORT.lock`) names the postmaster
/// that owns the socket, and PostgreSQL refuses to start while that PID is
/// alive. Returns why the lock is stale, or `None` when it is absent or held
/// by a live postgres of whatever data directory (then the port really is
/// taken, and PostgreSQL's own error says so).
pub fn stale_socket_lock(cfg: &PgConfig) -> Option<String> {
    let any_postgres = Expected {
        exe_name: Some(OsStr::new("postgres")),
        ..Default::default()
    };
    match service::read_lock(&socket_lock(cfg), &any_postgres, None) {
        Lock::Stale(why) => Some(format!("{} is stale: {why}", socket_lock(cfg).display())),
        Lock::Absent | Lock::Held(_) => None,
    }
}

pub fn pid_file(pgdata: &Path) -> PathBuf {
    pgdata.join("postmaster.pid")
}

pub fn socket_lock(cfg: &PgConfig) -> PathBuf {
    cfg.socketdir.join(format!(".s.PGSQL.{}.lock", cfg.pgport))
}
