//! stop: nothing of this pgpool may run or listen afterwards, and the
//! agent, not Pacemaker's timeout, decides how hard to push.
//!
//! A frozen pgpool (SIGSTOP) cannot shut down, so every member is sent
//! SIGCONT first. The main process then gets a fast shutdown (SIGINT: it
//! ends its children, clients in the middle of a query included, and
//! removes its sockets, pid file and System V memory and semaphores, in
//! 0.03 to 0.2 s measured), then an immediate one (SIGQUIT), each with a
//! share of the time left; then every member is SIGKILLed, orphans of an
//! earlier main process included. Signals go only to processes verified as
//! this configuration's pgpool (see [`crate::daemon`]).
//!
//! There is no smart shutdown (SIGTERM) first: it waits for every client
//! to disconnect, which a pooled client never does, and pgpool-II 4.3.5
//! ignores every later signal once a shutdown has begun ("exit handler
//! (signal: 2) called. but exit handler is already in progress"), so a
//! smart shutdown under load would lock the fast one out and leave only
//! SIGKILL (22 s of a 30 s stop, measured, with four clients).

use crate::config::{Layout, PoolConfig};
use crate::daemon::Pgpool;
use crate::settings::Settings;
use nix::sys::signal::Signal;
use ocf::process::{self, PidFile};
use ocf::service::{self, Service, Step};
use ocf::{warning, Deadline, OcfError, OsUser, Result, Status};

/// The immediate shutdown is for a pgpool that missed the first signal;
/// one busy with a fast shutdown ignores it, so it gets little time.
const LADDER: [Step; 2] = [
    Step::new(Signal::SIGINT, "fast shutdown", 0.7),
    Step::new(Signal::SIGQUIT, "immediate shutdown", 0.3),
];

/// Stops this pgpool with as little configuration as possible: pgpool.conf
/// unreadable, the members are still found by command line and parent.
pub fn stop(cfg: &PoolConfig, deadline: &Deadline) -> Result<Status> {
    let uid = OsUser::lookup(&cfg.user).ok().map(|u| u.uid.as_raw());
    let pgpool = match Settings::read(&cfg.config).and_then(|s| Layout::resolve(cfg, &s)) {
        Ok(layout) => Pgpool::new(cfg, &layout, uid),
        Err(e) => {
            let pid_file = cfg
                .pid_file
                .clone()
                .unwrap_or_else(|| crate::settings::DEFAULT_PID_FILE.into());
            warning!(
                "{}; stopping what runs with {} (pid file {})",
                e.reason(),
                cfg.config.display(),
                pid_file.display()
            );
            Pgpool::without_sockets(cfg, pid_file, uid)
        }
    };
    stop_service(&pgpool, deadline)?;
    Ok(Status::Success)
}

/// The ladder, then the checks that nothing is left: no member, no
/// listener on this configuration's sockets. The shared memory of a main
/// process that had to be killed is removed.
pub fn stop_service(pgpool: &Pgpool, deadline: &Deadline) -> Result<()> {
    let recorded_main = match process::read_pid_file(pgpool.pid_file()) {
        Ok(PidFile::Pid { pid, .. }) => Some(pid),
        _ => None,
    };
    for p in pgpool.members().unwrap_or_default() {
        if p.state == 'T' {
            process::signal_if_same(&p, Signal::SIGCONT);
        }
    }
    let uid = pgpool.members().ok().and_then(|m| m.first().map(|p| p.uid));
    service::stop(pgpool, &LADDER, deadline)?;
    // A child the main process forked while the ladder ran (it respawns
    // children until it dies) may have been born after the last scan: it
    // holds the inherited listening socket, which is how it is found and
    // ended in another round. Whatever still listens after that is not
    // ours to kill.
    for round in 1.. {
        let left = pgpool
            .listeners()
            .map_err(|e| OcfError::generic(format!("reading /proc/net/unix: {e}")))?;
        let Some(s) = left.first() else { break };
        if round > 3 || deadline.remaining().is_zero() {
            return Err(OcfError::generic(format!(
                "something still listens on {} (socket inode {}) after pgpool stopped",
                s.path.display(),
                s.inode
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        service::stop(pgpool, &LADDER, deadline)?;
    }
    if let (Some(pid), Some(uid)) = (recorded_main, uid) {
        for s in crate::ipc::remove_leftovers(pid, uid) {
            warning!(
                "removed the shared memory segment {} ({} bytes) pgpool {pid} left",
                s.id,
                s.size
            );
        }
    }
    Ok(())
}
