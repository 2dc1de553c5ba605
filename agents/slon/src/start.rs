//! start: one slon per (cluster, node), started only after this node's
//! lock row has been judged, and reported started only once it serves the
//! node.
//!
//! slon 2.2.11 deletes a stale lock row only when `kill(pid, 0)` fails, and
//! after a reboot that PID often belongs to another process of the
//! postgres user: slon then dies with a duplicate key and exits 0. So the
//! row is judged here from what its backend really is (`nodelock`), and a
//! stale one deleted; and because slon's exit status says nothing, start
//! waits until the lock row names a live backend of the new slon's own
//! worker.

use crate::config::{Instance, SlonConfig};
use crate::daemon::{Slon, SlonDaemon};
use crate::database::NodeDb;
use crate::failback;
use crate::nodelock::{self, Holder, HolderClient, Verdict};
use crate::origin::Role;
use crate::promotable;
use crate::validate;
use ocf::attributes::NodeAttributes;
use ocf::service;
use ocf::{info, warning, Deadline, OcfError, OsUser, Result, Status};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `role`: the clone instance's node attributes when the resource is a
/// promotable clone.
pub fn start(
    cfg: &SlonConfig,
    role: Option<&NodeAttributes>,
    deadline: &Deadline,
) -> Result<Status> {
    let checked = validate::check(cfg)?;
    let inst = &cfg.instance;
    let daemon = SlonDaemon::new(inst);
    let db = inst.database(Some((checked.user.uid, checked.user.gid)))?;
    // Before anything runs slonik: its script is written next to the pid
    // file, in a directory that a reboot empties (/run).
    let log = prepare_files(cfg, &checked.user)?;
    let rejoined = match role {
        Some(attrs) => failed_over_origin(cfg, &checked.user, &db, attrs, deadline)?,
        None => None,
    };
    match daemon.observe()? {
        Slon::Running { watchdog, .. } => {
            let serving = wait_serving(&daemon, &db, inst, None, deadline)?;
            info!(
                "slon already runs (watchdog {}) and serves node {} through backend {}",
                watchdog.pid, serving.node, serving.backend
            );
            if let Some(attrs) = role {
                score(cfg, &db, attrs, deadline);
            }
            return Ok(Status::Success);
        }
        Slon::Orphaned { members, .. } => {
            warning!(
                "slon processes of this resource run without their watchdog (PIDs {}): killing \
                 them before starting",
                service::pid_list(&members)
            );
            service::kill_members(&daemon, &deadline.share(0.3))?;
        }
        Slon::Stopped { stale: Some(why) } => {
            // slon would overwrite a file it may write, and fail on one it
            // may not (a root-owned leftover): unlink does not follow a
            // symlink, so removing it is safe in the user's directory.
            match std::fs::remove_file(&inst.pid_file) {
                Ok(()) => info!("{why}; removed it"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(OcfError::perm(format!("{why}; cannot remove it: {e}"))),
            }
        }
        Slon::Stopped { stale: None } => {}
    }
    let node = clear_lock(&db, inst, deadline)?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let mut child = spawn(cfg, &checked.user, log)?;
    match wait_serving(&daemon, &db, inst, Some(&mut child), deadline) {
        Ok(serving) => {
            let took = started.elapsed();
            if let Some((local, origin)) = rejoined {
                failback::subscribe(cfg, &checked.user, local, origin, deadline)?;
                if let Some(attrs) = role {
                    failback::forget_pending(attrs);
                }
            }
            if let Some(attrs) = role {
                score(cfg, &db, attrs, deadline);
            }
            info!(
                "slon serves node {node} of cluster {} after {} ms (watchdog {}, worker {}, lock \
                 backend {})",
                inst.cluster,
                took.as_millis(),
                child.id(),
                serving.worker,
                serving.backend
            );
            Ok(Status::Success)
        }
        Err(e) => {
            let from_log = reason_from_log(&log_since(&cfg.logfile, log_offset));
            // What this start left running is stopped now: a failed start
            // leaves nothing behind (Pacemaker's stop would do it later).
            if let Err(stop) = service::stop(
                &daemon,
                &crate::stop::LADDER,
                &Deadline::after(
                    Duration::from_secs(5).min(deadline.remaining() + Duration::from_secs(1)),
                ),
            ) {
                warning!("{}", stop.reason());
            }
            let _ = child.try_wait();
            Err(match from_log {
                Some(line) => {
                    OcfError::new(e.status(), format!("{}; slon's log: {line}", e.reason()))
                }
                None => e,
            })
        }
    }
}

/// A promotable instance on a node that was failed over must not start as
/// it is: its slon would serve a node the cluster dropped, and its catalog
/// names it the origin. With failback=auto it is rejoined as a new node
/// (returned: this node and the origin to subscribe from once slon
/// serves); with failback=off start fails and names the steps.
fn failed_over_origin(
    cfg: &SlonConfig,
    user: &OsUser,
    db: &NodeDb,
    attrs: &NodeAttributes,
    deadline: &Deadline,
) -> Result<Option<(u32, u32)>> {
    promotable::set_promoted(attrs, false);
    // A rejoin that an earlier start left half done (its schema dropped,
    // or stored again but not subscribed) goes on from where it stopped.
    if let Some((local, origin)) = failback::pending(attrs) {
        failback::resume(cfg, user, db, local, origin, deadline)?;
        return Ok(Some((local, origin)));
    }
    let obs = match promotable::observe(db, cfg, deadline) {
        Ok(obs) => obs,
        // No schema: maybe a failed-over old origin whose own slon already
        // processed its DROP NODE (it ran while the database was back
        // before Pacemaker stopped it), which drops the node's schema.
        Err(e) if e.status() == Status::ErrInstalled && cfg.origin.failback => {
            let Some(local) = promotable::own_node_id(attrs, cfg, deadline) else {
                return Err(e);
            };
            let Some(failed) = promotable::failed_over(cfg, user, local as i32, deadline)? else {
                return Err(e);
            };
            let origin = failback::rejoin(cfg, user, db, attrs, local, &failed, false, deadline)?;
            return Ok(Some((local, origin)));
        }
        Err(e) => return Err(e),
    };
    promotable::publish_node_id(attrs, obs.local, deadline);
    if obs.role != Role::Origin {
        return Ok(None);
    }
    let Some(failed) = promotable::failed_over(cfg, user, obs.local, deadline)? else {
        return Ok(None);
    };
    let local = obs.local as u32;
    if cfg.origin.failback {
        let origin = failback::rejoin(cfg, user, db, attrs, local, &failed, true, deadline)?;
        return Ok(Some((local, origin)));
    }
    Err(OcfError::installed(format!(
        "node {local} was failed over and must not serve as the origin: {}. Rebuild it as a \
         new node (DROP NODE, drop its schema, STORE NODE, STORE PATH, SUBSCRIBE SET), or set \
         failback=auto, and clean up the resource",
        failed.why
    )))
}

/// A started instance's promotion score, at once: the origin's instance is
/// the one Pacemaker must promote, and a transition that promotes another
/// one in the meantime (the first score it sees) would move the sets away
/// or fail. A failure is logged: the monitor scores again.
fn score(cfg: &SlonConfig, db: &NodeDb, attrs: &NodeAttributes, deadline: &Deadline) {
    match promotable::observe(db, cfg, deadline) {
        Ok(obs) => promotable::score_self(attrs, &obs, deadline),
        Err(e) => warning!("no promotion score yet: {}", e.reason()),
    }
}

/// Judges this node's lock row, deletes it when stale, and returns the
/// node id. A row whose facts cannot be read (a backend whose client just
/// died, a hidden client) is read again for a while before start gives up:
/// a wrong "stale" would let two slons serve the node.
fn clear_lock(db: &NodeDb, inst: &Instance, deadline: &Deadline) -> Result<i32> {
    let patience = deadline.share(0.3);
    loop {
        let lock =
            nodelock::read(db, &inst.cluster, deadline).map_err(|e| lock_error(db, inst, e))?;
        let node = lock.local_node;
        let Some(row) = lock.slon_lock() else {
            return Ok(node);
        };
        let observed = nodelock::observe_row(row, lock.server_port);
        match nodelock::judge(&observed, &inst.expected()) {
            Verdict::Stale(why) => {
                if nodelock::delete_stale(db, &inst.cluster, node, row.backend_pid, deadline)? {
                    warning!("node {node}'s sl_nodelock row was stale ({why}): deleted it");
                    return Ok(node);
                }
                // Changed meanwhile: judge what is there now.
            }
            Verdict::HeldBy(holder) => {
                return Err(OcfError::generic(format!(
                    "another slon already serves node {node} of cluster {}: {}",
                    inst.cluster,
                    describe_holder(&holder)
                )))
            }
            Verdict::Unknown(why) if patience.is_expired() => {
                return Err(OcfError::generic(format!(
                    "node {node}'s sl_nodelock row cannot be judged ({why}); it is kept and slon \
                     is not started"
                )))
            }
            Verdict::Unknown(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100).min(deadline.remaining()));
    }
}

/// The holder of a lock, for an operator.
pub fn describe_holder(h: &Holder) -> String {
    match &h.client {
        HolderClient::Local(p) => format!(
            "slon PID {} (its watchdog is PID {}) on this host, not started by this resource, \
             holds the lock through backend {}",
            p.pid, p.ppid, h.backend_pid
        ),
        HolderClient::Remote { addr, port } => format!(
            "a slon on another host ({addr}, port {port}) holds the lock through backend {}",
            h.backend_pid
        ),
    }
}

/// A database without the cluster's schema is not this cluster's node:
/// that is true of this node only (ERR_INSTALLED), other errors are worth
/// a retry.
pub fn lock_error(db: &NodeDb, inst: &Instance, e: pgclient::Error) -> OcfError {
    // 3F000 invalid_schema_name, 42P01 undefined_table, 42883 undefined_function.
    match e.sqlstate() {
        Some("3F000" | "42P01" | "42883") => OcfError::installed(format!(
            "database {} is no node of Slony-I cluster {} (no usable schema {}): {}",
            db.dbname(),
            inst.cluster,
            inst.cluster.schema(),
            e.reason()
        )),
        _ => e.into(),
    }
}

/// Where slon writes its pid file (Debian's /var/run/slony1, on a tmpfs
/// that a reboot empties) and its log.
fn prepare_files(cfg: &SlonConfig, user: &OsUser) -> Result<std::fs::File> {
    let owner = Some((user.uid, user.gid));
    let dirs = [
        (cfg.instance.pid_file.parent(), 0o2775),
        (cfg.logfile.parent(), 0o755),
    ];
    for (dir, mode) in dirs {
        let Some(dir) = dir else { continue };
        match ocf::fs::ensure_dir(dir, mode, owner) {
            Ok(true) => info!("created {}", dir.display()),
            Ok(false) => {}
            Err(e) => {
                return Err(OcfError::perm(format!(
                    "cannot create {}: {e}",
                    dir.display()
                )))
            }
        }
    }
    ocf::fs::open_append_owned(&cfg.logfile, 0o640, owner)
        .map_err(|e| OcfError::perm(format!("cannot open {}: {e}", cfg.logfile.display())))
}

/// slon as the user, without a shell, in a session of its own (the
/// agent's process group ends with the agent), output to the log.
fn spawn(cfg: &SlonConfig, user: &OsUser, log: std::fs::File) -> Result<Child> {
    let mut cmd = user.command(&cfg.instance.slon_binary);
    let err = log
        .try_clone()
        .map_err(|e| OcfError::generic(format!("log file: {e}")))?;
    cmd.args(cfg.slon_args())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    cmd.spawn().map_err(|e| {
        OcfError::generic(format!(
            "cannot run {}: {e}",
            cfg.instance.slon_binary.display()
        ))
    })
}

/// A slon that serves the node.
#[derive(Debug, Clone, Copy)]
pub struct Serving {
    pub node: i32,
    pub worker: i32,
    pub backend: i32,
}

/// Waits until the lock row names a live backend of this instance's
/// worker. `child` is the watchdog this start spawned: its exit, with
/// whatever status, is a failed start.
pub fn wait_serving(
    daemon: &SlonDaemon,
    db: &NodeDb,
    inst: &Instance,
    mut child: Option<&mut Child>,
    deadline: &Deadline,
) -> Result<Serving> {
    let mut last_error: Option<String> = None;
    let waited = deadline.wait_for(
        "slon to hold this node's lock",
        Duration::from_millis(50),
        || {
            if let Some(child) = child.as_deref_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(OcfError::generic(format!(
                        "slon exited ({status}) before it held this node's lock{}",
                        if status.success() {
                            " (slon 2.2 exits 0 after a FATAL error)"
                        } else {
                            ""
                        }
                    )));
                }
            }
            let worker = match daemon.observe()? {
                Slon::Running {
                    worker: Some(worker),
                    ..
                } => worker,
                Slon::Stopped { .. } if child.is_none() => {
                    return Err(OcfError::generic(
                        "slon exited before it held this node's lock",
                    ))
                }
                _ => return Ok(None),
            };
            let lock = match nodelock::read(db, &inst.cluster, deadline) {
                Ok(lock) => lock,
                Err(e) => {
                    // slon itself retries a database it cannot reach.
                    last_error = Some(e.reason().to_string());
                    return Ok(None);
                }
            };
            Ok(nodelock::held_by(&lock, &worker).map(|backend| Serving {
                node: lock.local_node,
                worker: worker.pid,
                backend,
            }))
        },
    );
    waited.map_err(|e| match last_error {
        Some(db_error) => e.context(db_error),
        None => e,
    })
}

/// What slon logged after `offset` (at most 64 KiB of it).
fn log_since(logfile: &Path, offset: u64) -> String {
    let Ok(Some((mut f, meta))) = ocf::fs::open_regular(logfile) else {
        return String::new();
    };
    // A log rotated in between starts again at 0.
    let from = if offset <= meta.len() { offset } else { 0 };
    let mut text = String::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let mut bytes = Vec::new();
        let _ = f.take(64 << 10).read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    text
}

/// slon's own explanation of a failed start: the server's ERROR that
/// caused its first FATAL (the duplicate key of the lock), else that FATAL
/// line; without slon's timestamp, at most 300 characters.
pub fn reason_from_log(text: &str) -> Option<String> {
    let fatal = text.lines().find(|l| l.contains("FATAL"))?;
    let message = match fatal.find("ERROR:") {
        Some(i) => &fatal[i..],
        None => &fatal[fatal.find("FATAL")?..],
    };
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(message.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_fatal_line_explains_a_failed_start() {
        let log = "2026-12-01 22:00:00 UTC CONFIG main: slon version 2.2.11 starting up\n\
            2026-12-01 22:00:00 UTC FATAL  localListenThread: \"select \"_tusk\".cleanupNodelock(); \
            insert into \"_tusk\".sl_nodelock values (1, 0, \"pg_catalog\".pg_backend_pid()); \" - \
            ERROR:  duplicate key value violates unique constraint \"sl_nodelock-pkey\"\n\
            2026-12-01 22:00:00 UTC FATAL  Do you already have a slon running against this node?\n";
        assert_eq!(
            reason_from_log(log).as_deref(),
            Some("ERROR: duplicate key value violates unique constraint \"sl_nodelock-pkey\"")
        );
        assert_eq!(
            reason_from_log("x FATAL  main: Cannot connect to local database - sleep 10s\n")
                .as_deref(),
            Some("FATAL main: Cannot connect to local database - sleep 10s")
        );
        assert_eq!(reason_from_log("CONFIG all fine\n"), None);
        assert_eq!(
            reason_from_log(&format!("FATAL {}", "x".repeat(1000)))
                .unwrap()
                .len(),
            300
        );
    }
}
