//! stop: nothing of this data directory may run afterwards, and the agent,
//! not Pacemaker's timeout, decides how hard to push.

use crate::postmaster::Postmaster;
use nix::sys::signal::Signal;
use ocf::service::{self, Step};
use ocf::{Deadline, Result, Status};
use std::path::Path;

/// Fast shutdown first (it rolls back open transactions but writes a
/// shutdown checkpoint, so no crash recovery follows), immediate shutdown
/// when that takes too long, then SIGKILL of every process still working in
/// the data directory.
///
/// Signals go to the validated postmaster PID directly rather than through
/// `pg_ctl stop`: pg_ctl signals whatever PID postmaster.pid names, which
/// after a reboot may be an unrelated process.
const LADDER: [Step; 2] = [
    Step::new(Signal::SIGINT, "fast shutdown", 0.6),
    Step::new(Signal::SIGQUIT, "immediate shutdown", 0.5),
];

pub fn stop(pgdata: &Path, deadline: &Deadline) -> Result<Status> {
    service::stop(&Postmaster::of(pgdata), &LADDER, deadline)?;
    Ok(Status::Success)
}
