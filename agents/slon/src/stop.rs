//! stop: no slon of this node runs on this host afterwards, its backends
//! are gone, and its lock row is removed, so that the next start needs no
//! cleanup.
//!
//! The processes come first and need nothing but /proc: a stop that fails
//! gets the node fenced, so the database part (waiting for the backends,
//! the lock row, a slon of this node started outside the resource) is done
//! when the database answers, and only logged when it does not.

use crate::config::Instance;
use crate::connections::{self, sql_list};
use crate::daemon::{Slon, SlonDaemon};
use crate::database::NodeDb;
use crate::nodelock::{self, HolderClient, Verdict};
use nix::sys::signal::Signal;
use ocf::process::{self, ProcInfo};
use ocf::service::{self, Service, Step};
use ocf::{info, warning, Deadline, OcfError, OsUser, Result, Status};
use std::path::Path;
use std::time::Duration;

/// SIGTERM makes the watchdog SIGKILL its worker, remove its pid file and
/// exit (9 to 26 ms). slon 2.2.11 loses a SIGTERM that arrives while the
/// watchdog waits to fork a new worker (20 s after a restart notification
/// such as FAILOVER or DROP NODE): it only cuts the wait short and a new
/// worker serves again. So the first SIGTERM gets a tenth of the time (a
/// clean exit needs far less) and a second one follows; whatever still
/// runs after it is SIGKILLed, worker included (the worker ignores
/// SIGTERM).
pub const LADDER: [Step; 2] = [
    Step::new(Signal::SIGTERM, "SIGTERM", 0.1),
    Step::new(Signal::SIGTERM, "a second SIGTERM", 0.3),
];

pub fn stop(inst: &Instance, deadline: &Deadline) -> Result<Status> {
    let daemon = SlonDaemon::new(inst);
    let db = match OsUser::lookup(&inst.user).and_then(|u| inst.database(Some((u.uid, u.gid)))) {
        Ok(db) => Some(db),
        Err(e) => {
            warning!(
                "{}; stopping slon without looking at the database",
                e.reason()
            );
            None
        }
    };
    let before = db
        .as_ref()
        .and_then(|db| Before::observe(db, inst, &daemon, &deadline.share(0.15)));
    match daemon.observe()? {
        Slon::Running {
            watchdog, pid_file, ..
        } => {
            if let Some(why) = pid_file {
                warning!(
                    "{why}; stopping slon PID {} found through /proc",
                    watchdog.pid
                );
            }
            service::stop_main(&daemon, &watchdog, &LADDER, &deadline.share(0.6));
        }
        Slon::Orphaned { members, stale } => warning!(
            "killing slon processes left without their watchdog{}: PIDs {}",
            stale.map(|s| format!(" ({s})")).unwrap_or_default(),
            service::pid_list(&members)
        ),
        Slon::Stopped { .. } => {}
    }
    service::kill_members(&daemon, &deadline.share(0.8))?;
    if let (Some(db), Some(before)) = (&db, before) {
        if let Some(outsider) = &before.outsider {
            stop_outsider(outsider, &deadline.share(0.5))?;
        }
        if let Err(e) = release(db, inst, &before.backends, deadline) {
            warning!("slon is stopped, but {}", e.reason());
        }
    }
    Ok(Status::Success)
}

/// What the database said before the processes were stopped.
struct Before {
    /// The backends of every slon about to be stopped.
    backends: Vec<i32>,
    /// A slon of this node on this host that is not this resource's (its
    /// worker, then its watchdog if it has one).
    outsider: Option<Vec<ProcInfo>>,
}

impl Before {
    fn observe(
        db: &NodeDb,
        inst: &Instance,
        daemon: &SlonDaemon,
        deadline: &Deadline,
    ) -> Option<Before> {
        let ours = daemon.members().unwrap_or_default();
        let outsider = match nodelock::read(db, &inst.cluster, deadline) {
            Ok(lock) => lock.slon_lock().and_then(|row| {
                let observed = nodelock::observe_row(row, lock.server_port);
                match nodelock::judge(&observed, &inst.expected()) {
                    Verdict::HeldBy(h) => match h.client {
                        HolderClient::Local(worker) if !daemon.is_instance(&worker) => {
                            Some(with_watchdog(worker))
                        }
                        _ => None,
                    },
                    _ => None,
                }
            }),
            Err(e) => {
                // A database that is down has no backends to wait for.
                warning!("{}", e.reason());
                return None;
            }
        };
        let slons: Vec<ProcInfo> = ours
            .iter()
            .chain(outsider.iter().flatten())
            .cloned()
            .collect();
        let backends = match connections::read(db, deadline) {
            Ok((conns, port)) => connections::backends_of(&conns, port, &slons),
            Err(e) => {
                warning!("{}", e.reason());
                Vec::new()
            }
        };
        Some(Before { backends, outsider })
    }
}

/// The worker and, when its parent is slon too, its watchdog.
fn with_watchdog(worker: ProcInfo) -> Vec<ProcInfo> {
    let watchdog = ProcInfo::read(worker.ppid)
        .ok()
        .flatten()
        .filter(|p| p.exe == worker.exe && !p.has_exited());
    std::iter::once(worker).chain(watchdog).collect()
}

/// A slon of this node that this resource did not start (by hand, or an
/// init script) would keep the node served, and the next start would find
/// the lock held: stop ends it too, the same way.
fn stop_outsider(slon: &[ProcInfo], deadline: &Deadline) -> Result<()> {
    warning!(
        "stopping slon PIDs {}, started outside this resource, which served this node",
        service::pid_list(slon)
    );
    let outsider = Outsider(slon.to_vec());
    if let Some(watchdog) = slon.get(1) {
        service::stop_main(&outsider, watchdog, &LADDER, &deadline.share(0.6));
    }
    service::kill_members(&outsider, deadline)
}

/// Processes known by PID and start time, as a [`Service`] for the core's
/// signal ladder.
struct Outsider(Vec<ProcInfo>);

impl Service for Outsider {
    fn name(&self) -> &str {
        "slon"
    }
    fn pid_file(&self) -> &Path {
        Path::new("/nonexistent")
    }
    fn main_process(&self) -> process::Expected<'_> {
        process::Expected::default()
    }
    fn members(&self) -> std::io::Result<Vec<ProcInfo>> {
        Ok(self
            .0
            .iter()
            .filter(|p| process::is_same_running(p))
            .cloned()
            .collect())
    }
}

/// Waits until the stopped slons' backends are gone (a backend busy in a
/// statement notices its client's end late: it is terminated after half
/// the time), then deletes the lock row unless a live slon holds it.
fn release(db: &NodeDb, inst: &Instance, backends: &[i32], deadline: &Deadline) -> Result<()> {
    if !backends.is_empty() {
        let live = format!(
            "SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid IN ({})",
            sql_list(backends)
        );
        let terminate = format!(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE pid IN ({})",
            sql_list(backends)
        );
        let patience = deadline.share(0.5);
        let mut terminated = false;
        deadline.wait_for(
            &format!("slon's backends {} to end", sql_list(backends)),
            Duration::from_millis(20),
            || {
                let rows = db.query(deadline, &live)?;
                let left = rows.first().map(Vec::len).unwrap_or(0);
                if left == 0 {
                    return Ok(Some(()));
                }
                if patience.is_expired() && !terminated {
                    warning!("terminating {left} backends of the stopped slon");
                    db.query(deadline, &terminate)?;
                    terminated = true;
                }
                Ok(None)
            },
        )?;
    }
    if let Some(pid) = nodelock::release(db, &inst.cluster, deadline).map_err(OcfError::from)? {
        info!("removed this node's sl_nodelock row (backend {pid}, gone)");
    }
    Ok(())
}
