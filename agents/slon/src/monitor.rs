//! monitor: 0, 7 or 1 that tell the truth about this node's slon, cheaply.
//!
//! The steady state reads the pid file and a few /proc entries (the
//! watchdog, its worker from the kernel's list of its children, the
//! worker's descriptors) and makes one connection with one round trip:
//! the lock row with the backend it names, and this node's lag. It forks
//! nothing.

use crate::config::SlonConfig;
use crate::daemon::{self, Slon, SlonDaemon};
use crate::lag;
use crate::nodelock::{self, NodeLock, Verdict};
use crate::origin::{self, Role};
use crate::start::{describe_holder, lock_error};
use nix::unistd::{Gid, Uid};
use ocf::attributes::NodeAttributes;
use ocf::process::ProcInfo;
use ocf::{debug, info, warning, Deadline, OcfError, OsUser, Result, Status};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// A worker younger than this may still be connecting: slon takes its
/// lock about 0.1 s after it starts.
const YOUNG_WORKER: Duration = Duration::from_secs(10);

/// `promotable`: an instance of a promotable clone, whose monitor also
/// says whether this node is the origin (8) and scores it.
pub fn monitor(
    cfg: &SlonConfig,
    attrs: &NodeAttributes,
    promotable: bool,
    deadline: &Deadline,
) -> Result<Status> {
    let inst = &cfg.instance;
    let daemon = SlonDaemon::new(inst);
    let (watchdog, worker) = match daemon.observe()? {
        Slon::Stopped { stale } => {
            if let Some(why) = stale {
                debug!("{why}");
            }
            return others(cfg, deadline);
        }
        Slon::Orphaned { members, .. } => {
            return Err(OcfError::generic(format!(
                "slon PIDs {} run without their watchdog (it was killed): they serve the node \
                 unsupervised",
                ocf::service::pid_list(&members)
            )))
        }
        Slon::Running {
            watchdog,
            worker,
            pid_file,
        } => {
            if let Some(why) = pid_file {
                restore_pid_file(cfg, &watchdog, &why);
            }
            (watchdog, worker)
        }
    };
    for p in std::iter::once(watchdog.as_ref()).chain(worker.as_ref()) {
        if daemon::is_frozen(p) {
            return Err(OcfError::generic(format!(
                "slon PID {} is stopped (SIGSTOP): it holds the node's lock and replicates \
                 nothing",
                p.pid
            )));
        }
    }
    let Some(worker) = worker else {
        // slon's watchdog forks a new worker 10 s after the last one died
        // and 20 s after a restart notification (FAILOVER, DROP NODE): it
        // runs and will serve again by itself. A failure here would make
        // Pacemaker restart it, a promoted instance through demote.
        note_change(
            attrs,
            "worker",
            Some(&format!(
                "slon's watchdog PID {} is waiting to start a new worker: nothing serves the \
                 node meanwhile",
                watchdog.pid
            )),
        );
        if promotable {
            let db = inst.database(Some((
                Uid::from_raw(watchdog.uid),
                Gid::from_raw(watchdog.gid),
            )))?;
            let obs = match crate::promotable::observe(&db, cfg, deadline) {
                Ok(obs) => obs,
                Err(e) => return database_down(&db, attrs, promotable, e),
            };
            return in_role(obs.role, Status::Degraded, attrs, obs.local);
        }
        return Ok(Status::Degraded);
    };
    note_change(attrs, "worker", None);
    note_change(attrs, "database", None);
    // As slon's own uid and gid: no user lookup, which could fail (an LDAP
    // outage) and read as "not installed here".
    let db = inst.database(Some((
        Uid::from_raw(watchdog.uid),
        Gid::from_raw(watchdog.gid),
    )))?;
    let mut sql = format!(
        "{}; {}",
        nodelock::query(&inst.cluster),
        lag::query(&inst.cluster, &cfg.origin.sets)
    );
    if promotable {
        sql = format!("{sql}; {}", origin::query(&inst.cluster, &cfg.origin.sets));
    }
    let patience = deadline.share(0.5);
    let (lock, sets, results) = loop {
        let results = match db.query(deadline, &sql) {
            Ok(results) => results,
            Err(e) => {
                let e = lock_error(&db, inst, e)
                    .context(format!("slon PID {} runs, but", watchdog.pid));
                return database_down(&db, attrs, promotable, e);
            }
        };
        let lock = NodeLock::from_rows(results.first().map(Vec::as_slice).unwrap_or_default())?;
        if nodelock::held_by(&lock, &worker).is_some() {
            let sets = lag::from_rows(results.get(1).map(Vec::as_slice).unwrap_or_default());
            break (lock, sets, results);
        }
        // Between two connections: slon's worker closes its connection
        // and exits after a restart notification (FAILOVER, DROP NODE),
        // and for a moment still runs while its lock row names a backend
        // that is gone. Once it has exited, the watchdog's wait for a new
        // one is what there is to report: observe again.
        if !ocf::process::is_same_running(&worker) {
            return monitor(cfg, attrs, promotable, deadline);
        }
        let between = lock.slon_lock().is_some_and(|row| row.backend.is_none());
        if patience.is_expired() || !(is_young(&worker) || between) {
            return Err(not_serving(&lock, &worker, cfg));
        }
        std::thread::sleep(Duration::from_millis(100).min(patience.remaining()));
    };
    let behind = lag::behind(&sets, &cfg.lag);
    note_change(
        attrs,
        "lag",
        behind
            .as_deref()
            .map(|why| format!("node {} is behind: {why}", lock.local_node))
            .as_deref(),
    );
    let health = match behind {
        Some(_) => Status::Degraded,
        None => Status::Success,
    };
    if !promotable {
        return Ok(health);
    }
    let obs = crate::promotable::from_results(
        results.get(2..).unwrap_or_default(),
        cfg,
        lock.local_node,
    )?;
    crate::promotable::score_self(attrs, &obs, deadline);
    crate::promotable::learn_node_names(attrs, cfg, obs.local, deadline);
    in_role(obs.role, health, attrs, obs.local)
}

/// The origin is the Promoted role once Pacemaker promoted this instance
/// (8, or 191 when degraded): the origin is a fact of the catalog that no
/// start changes, so an instance that Pacemaker only started reports 0
/// with the origin's score, and Pacemaker promotes it (promote then has
/// nothing to move). A promoted instance whose node is no longer the
/// origin (the sets were moved by hand) has lost its role: 9.
fn in_role(role: Role, health: Status, attrs: &NodeAttributes, local: i32) -> Result<Status> {
    let promoted = crate::promotable::is_promoted(attrs);
    let unlisted = match role {
        Role::Unlisted { set } => Some(format!(
            "node {local}'s catalog does not list set {set}: no promotion score until its slon \
             has processed the set's creation and it is subscribed"
        )),
        _ => None,
    };
    note_change(attrs, "unlisted", unlisted.as_deref());
    Ok(match (role, promoted, health) {
        (Role::Origin, true, Status::Degraded) => Status::DegradedPromoted,
        (Role::Origin, true, _) => Status::RunningPromoted,
        (Role::Subscriber { origin }, true, _) => {
            return Err(OcfError::new(
                Status::FailedPromoted,
                format!(
                    "this instance was promoted, but node {origin} is the origin of the sets now, \
                     not node {local}"
                ),
            ))
        }
        (Role::Unlisted { set }, true, _) => {
            return Err(OcfError::new(
                Status::FailedPromoted,
                format!(
                    "this instance was promoted, but node {local}'s catalog does not list set \
                     {set}"
                ),
            ))
        }
        (_, false, h) => h,
    })
}

/// The node's database did not answer (`e`). When nothing listens where it
/// would (connection refused, no socket: its PostgreSQL is stopped or
/// crashed), slon is not what failed: it runs, and retries the database
/// every 10 s by itself. Degraded (191 for the promoted instance), not a
/// failure: PostgreSQL's own resource, which slon is ordered after,
/// recovers it, and a failure here would make Pacemaker restart slon alone
/// while its database is down, a start that fails and bans slon from the
/// node. Anything else is the error.
fn database_down(
    db: &crate::database::NodeDb,
    attrs: &NodeAttributes,
    promotable: bool,
    e: OcfError,
) -> Result<Status> {
    let crate::failover::Listening::Nothing(how) =
        crate::failover::listening(&db.config, Duration::from_secs(1))
    else {
        return Err(e);
    };
    note_change(
        attrs,
        "database",
        Some(&format!(
            "this node's PostgreSQL is down ({how}): slon waits for it"
        )),
    );
    Ok(if promotable && crate::promotable::is_promoted(attrs) {
        Status::DegradedPromoted
    } else {
        Status::Degraded
    })
}

fn is_young(p: &ProcInfo) -> bool {
    SystemTime::now()
        .duration_since(p.started)
        .map(|age| age < YOUNG_WORKER)
        .unwrap_or(true)
}

/// Why the lock row does not name our worker's backend.
fn not_serving(lock: &NodeLock, worker: &ProcInfo, cfg: &SlonConfig) -> OcfError {
    let node = lock.local_node;
    let why = match lock.slon_lock() {
        None => format!("node {node} has no lock row"),
        Some(row) => {
            let observed = nodelock::observe_row(row, lock.server_port);
            match nodelock::judge(&observed, &cfg.instance.expected()) {
                Verdict::HeldBy(h) => describe_holder(&h),
                Verdict::Stale(why) | Verdict::Unknown(why) => {
                    format!("node {node}'s lock row is not its: {why}")
                }
            }
        }
    };
    OcfError::generic(format!(
        "slon's worker PID {} does not serve node {node}: {why}",
        worker.pid
    ))
}

/// Nothing of this resource runs: 7, unless another slon serves this node
/// (one started by hand or by an init script here, or one on another
/// host), which the probe reports as a failure with its reason, so that
/// Pacemaker never believes the node unserved while a slon serves it.
fn others(cfg: &SlonConfig, deadline: &Deadline) -> Result<Status> {
    let inst = &cfg.instance;
    let Ok(user) = OsUser::lookup(&inst.user) else {
        return Ok(Status::NotRunning);
    };
    let db = inst.database(Some((user.uid, user.gid)))?;
    let lock = match nodelock::read(&db, &inst.cluster, &deadline.share(0.5)) {
        Ok(lock) => lock,
        Err(e) => {
            // A database that is down or not a node serves nothing.
            debug!("{}", e.reason());
            return Ok(Status::NotRunning);
        }
    };
    let Some(row) = lock.slon_lock() else {
        return Ok(Status::NotRunning);
    };
    let observed = nodelock::observe_row(row, lock.server_port);
    match nodelock::judge(&observed, &inst.expected()) {
        Verdict::HeldBy(h) => Err(OcfError::generic(format!(
            "this resource's slon is not running, but another slon serves node {} of cluster \
             {}: {}",
            lock.local_node,
            inst.cluster,
            describe_holder(&h)
        ))),
        _ => Ok(Status::NotRunning),
    }
}

/// A second slon given the same pid file removes it on its way out (slon
/// never checks it); the running watchdog's PID is written back, so that
/// the operator's tools (pidofproc) see it again.
fn restore_pid_file(cfg: &SlonConfig, watchdog: &ProcInfo, why: &str) {
    let path = &cfg.instance.pid_file;
    let owner = Some((Uid::from_raw(watchdog.uid), Gid::from_raw(watchdog.gid)));
    let written = ocf::fs::create_owned(path, 0o644, owner)
        .and_then(|()| ocf::fs::open_append_owned(path, 0o644, owner))
        .and_then(|mut f| f.write_all(format!("{}\n", watchdog.pid).as_bytes()));
    match written {
        Ok(()) => info!("{why}; wrote slon's watchdog PID {} back", watchdog.pid),
        Err(e) => warning!("{why}; cannot write it back: {e}"),
    }
}

/// Logs a condition when it starts and when it ends, not at every monitor.
fn note_change(attrs: &NodeAttributes, key: &str, now: Option<&str>) {
    let before = attrs.note(key);
    if before.as_deref() == now {
        return;
    }
    match (now, before) {
        (Some(why), _) => warning!("{why}"),
        (None, Some(was)) => info!("no longer: {was}"),
        (None, None) => {}
    }
    attrs.keep_note(key, now);
}
