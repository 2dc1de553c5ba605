//! stop: nothing of this data directory may run afterwards, and the agent,
//! not Pacemaker's timeout, decides how hard to push.

use crate::postmaster::{self, Postmaster};
use nix::sys::signal::Signal;
use ocf::process::{self, ProcInfo};
use ocf::{info, warning, Deadline, OcfError, Result, Status};
use std::path::Path;
use std::time::Duration;

/// Fast shutdown first (it rolls back open transactions but writes a
/// shutdown checkpoint, so no crash recovery follows), immediate shutdown
/// when that takes too long, then SIGKILL of every process still working in
/// the data directory.
///
/// Signals go to the validated postmaster PID directly rather than through
/// `pg_ctl stop`: pg_ctl signals whatever PID postmaster.pid names, which
/// after a reboot may be an unrelated process.
pub fn stop(pgdata: &Path, deadline: &Deadline) -> Result<Status> {
    match postmaster::observe(pgdata)? {
        Postmaster::Running(pm) => {
            // Each step gets a share of what is left, so SIGKILL always has time.
            let modes = [
                (Signal::SIGINT, "fast", 0.6),
                (Signal::SIGQUIT, "immediate", 0.5),
            ];
            for (signal, mode, share) in modes {
                if !signal_if_same(&pm, signal) {
                    break; // already gone
                }
                if wait_gone(&pm, &deadline.share(share)) {
                    info!(
                        "stopped PostgreSQL (postmaster {}, {mode} shutdown)",
                        pm.pid
                    );
                    break;
                }
                warning!(
                    "{mode} shutdown of postmaster {} did not finish in time",
                    pm.pid
                );
            }
        }
        Postmaster::Orphaned(procs) => warning!(
            "killing processes of {} left without a postmaster: PIDs {}",
            pgdata.display(),
            postmaster::pid_list(&procs)
        ),
        Postmaster::Stopped { .. } => {}
    }
    kill_leftovers(pgdata, deadline)?;
    Ok(Status::Success)
}

/// SIGKILLs whatever still works in the data directory until nothing does.
fn kill_leftovers(pgdata: &Path, deadline: &Deadline) -> Result<()> {
    let mut killed = Vec::new();
    let remaining = deadline.wait_for(
        "the server processes to exit",
        Duration::from_millis(50),
        || {
            let procs = postmaster::leftovers(pgdata)?;
            if procs.is_empty() {
                return Ok(Some(()));
            }
            for p in &procs {
                if !killed.contains(&p.pid) && signal_if_same(p, Signal::SIGKILL) {
                    killed.push(p.pid);
                }
            }
            Ok(None)
        },
    );
    if !killed.is_empty() {
        warning!("sent SIGKILL to PIDs {killed:?} of {}", pgdata.display());
    }
    remaining.map_err(|e| {
        let left = postmaster::leftovers(pgdata)
            .map(|p| postmaster::pid_list(&p))
            .unwrap_or_default();
        OcfError::generic(format!("{e}; still running: {left}"))
    })
}

/// Signals `p` only if its PID still names the same process: between the
/// check and the signal the PID might have been reused.
fn signal_if_same(p: &ProcInfo, signal: Signal) -> bool {
    match ProcInfo::read(p.pid) {
        Ok(Some(now)) if now.start_ticks == p.start_ticks && !now.has_exited() => {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), signal).is_ok()
        }
        _ => false,
    }
}

fn wait_gone(p: &ProcInfo, deadline: &Deadline) -> bool {
    deadline
        .wait_for("the postmaster to exit", Duration::from_millis(50), || {
            Ok(match process::ProcInfo::read(p.pid) {
                Ok(Some(now)) if now.start_ticks == p.start_ticks && !now.has_exited() => None,
                _ => Some(()),
            })
        })
        .is_ok()
}
