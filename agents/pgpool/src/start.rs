//! start: bring this pgpool up, clearing first what pgpool cannot clear by
//! itself (DESIGN.md failures 1 and 5), and hand it over in step with the
//! cluster.
//!
//! - A pid file naming a dead PID, a zombie or a process that is not this
//!   pgpool is moved aside: pgpool tests it with `kill(pid, 0)` and refuses
//!   to start while the PID lives, whatever runs there.
//! - Processes of this pgpool left without a main process (its children
//!   after a SIGKILL of the main process keep listening and serving) are
//!   stopped first: with a TCP listener a new pgpool cannot bind beside
//!   them, and with unix sockets only it would start beside them, two
//!   pgpools serving one configuration.
//! - Socket files nothing listens on, and the shared memory of a main
//!   process that was killed, are removed.
//! - With `reconcile`, pgpool_status is written from what the backends say
//!   (see [`crate::reconcile::status_file`]), neither kept nor discarded:
//!   kept, a file from an older run can mark the current primary down, and
//!   pgpool then searches for a primary for search_primary_node_timeout
//!   (300 s by default) before it answers anything (20 s measured with a 20
//!   s timeout: pgpool-II 4.3.5 creates its PCP socket after the search);
//!   discarded (`pgpool -D`), pgpool attaches every reachable backend,
//!   a stale primary not yet demoted included, and may take it as its
//!   primary. When the backends cannot tell who the primary is, pgpool's
//!   own file is left as it is.
//!
//! pgpool is started as its account, without a shell, in a session of its
//! own (so that a signal Pacemaker sends the agent's process group on a
//! timeout never reaches it), in the foreground (`-n`), its output appended
//! to the log file; start waits inside its timeout until pgpool answers on
//! PCP, reconciles once, and on failure reports pgpool's own error line.

use crate::backends;
use crate::config::{Follow, PoolConfig};
use crate::daemon::Pgpool;
use crate::live::Asker;
use crate::reconcile;
use crate::slony;
use crate::stop;
use crate::validate::{self, Checked};
use ocf::process::{self, PidFile};
use ocf::service::{self, Lock, Service, State};
use ocf::{debug, info, warning, Context, Deadline, OcfError, Result, Status};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub fn start(cfg: &PoolConfig, ctx: &Context) -> Result<Status> {
    let deadline = &ctx.deadline;
    let checked = validate::check(cfg)?;
    let user = &checked.user;
    let pgpool = Pgpool::new(cfg, &checked.layout, Some(user.uid.as_raw()));
    match pgpool.observe()? {
        State::Running(main) => {
            return match checked.pcp.node_count(&deadline.share(0.5)) {
                Ok(_) => {
                    info!("already running (pgpool {})", main.pid);
                    Ok(Status::Success)
                }
                Err(e) => Err(OcfError::generic(format!(
                    "pgpool {} already runs but does not answer: {e}",
                    main.pid
                ))),
            };
        }
        State::Orphaned { members, stale } => {
            warning!(
                "processes of this pgpool run without a main process{} (PIDs {}): stopping \
                 them before starting",
                stale.map(|s| format!(" ({s})")).unwrap_or_default(),
                service::pid_list(&members)
            );
            stop::stop_service(&pgpool, &deadline.share(0.4))?;
        }
        State::Stopped { .. } => {}
    }
    clear_leftovers(&pgpool, &checked)?;
    prepare_directories(cfg, &checked)?;
    let asker = asker(cfg, (user.uid, user.gid))?;
    let follow = cfg
        .reconcile
        .then(|| cfg.follow(&checked.settings))
        .transpose()?;
    if let Some(follow) = &follow {
        write_status_file(&checked, &asker, follow, &deadline.share(0.3));
    }

    let log_offset = std::fs::metadata(&cfg.logfile).map_or(0, |m| m.len());
    let started = Instant::now();
    let child = launch(cfg, &checked)?;
    // Leave time for one reconciliation after pgpool answers.
    let reserve = (deadline.remaining() / 5).min(Duration::from_secs(5));
    let waiting = Deadline::after(deadline.remaining().saturating_sub(reserve));
    let count = wait_until_answering(child, &checked, cfg, log_offset, &waiting)?;
    info!(
        "started pgpool with {} in {:.2}s ({count} backends)",
        cfg.config.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(follow) = &follow {
        let outcome = backends::reconcile(
            &checked.pcp,
            count,
            &asker,
            &checked.backends,
            follow,
            deadline,
        );
        let unknown: Vec<u32> = outcome.missing.iter().map(|(n, _)| *n).collect();
        crate::monitor::report(ctx, &outcome.nodes, &unknown, &checked.backends);
    }
    Ok(Status::Success)
}

/// What pgpool cannot clear by itself: a pid file naming any live process
/// (moved aside, kept for inspection), the shared memory of a killed main
/// process, and socket files that nothing listens on.
fn clear_leftovers(pgpool: &Pgpool, checked: &Checked) -> Result<()> {
    let pid_file = pgpool.pid_file();
    if let Lock::Stale(why) = service::read_lock(pid_file, &pgpool.main_process(), None) {
        let recorded = match process::read_pid_file(pid_file) {
            Ok(PidFile::Pid { pid, .. }) => Some(pid),
            _ => None,
        };
        let aside = pid_file.with_extension("pid.tusk-stale");
        std::fs::rename(pid_file, &aside).map_err(|e| {
            OcfError::generic(format!("cannot move {} aside: {e}", pid_file.display()))
        })?;
        warning!(
            "{} is stale: {why}; moved it to {}",
            pid_file.display(),
            aside.display()
        );
        if let Some(pid) = recorded {
            for s in crate::ipc::remove_leftovers(pid, checked.user.uid.as_raw()) {
                warning!(
                    "removed the shared memory segment {} ({} bytes) pgpool {pid} left",
                    s.id,
                    s.size
                );
            }
        }
    }
    let listening = pgpool
        .listeners()
        .map_err(|e| OcfError::generic(format!("reading /proc/net/unix: {e}")))?;
    for path in checked.layout.sockets() {
        let is_socket = std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
        if is_socket && !listening.iter().any(|s| s.path == path) {
            std::fs::remove_file(path)
                .map_err(|e| OcfError::generic(format!("cannot remove {}: {e}", path.display())))?;
            info!("removed {}, which nothing listened on", path.display());
        }
    }
    Ok(())
}

/// The pid file's and the sockets' directories often live on a tmpfs that a
/// reboot empties (Debian's /var/run/postgresql comes from tmpfiles.d).
fn prepare_directories(cfg: &PoolConfig, checked: &Checked) -> Result<()> {
    let owner = Some((checked.user.uid, checked.user.gid));
    let layout = &checked.layout;
    let dirs = [
        (layout.pid_file.parent(), 0o2775),
        (layout.socket.parent(), 0o2775),
        (Some(layout.pcp_socket_dir.as_path()), 0o2775),
        (cfg.logfile.parent(), 0o750),
    ];
    for (dir, mode) in dirs {
        let Some(dir) = dir else { continue };
        if ocf::fs::ensure_dir(dir, mode, owner)
            .map_err(|e| OcfError::perm(format!("cannot create {}: {e}", dir.display())))?
        {
            info!("created {}", dir.display());
        }
    }
    Ok(())
}

pub fn asker(cfg: &PoolConfig, as_user: (nix::unistd::Uid, nix::unistd::Gid)) -> Result<Asker> {
    Ok(Asker {
        dbuser: cfg.dbuser.clone(),
        dbname: cfg.dbname.clone(),
        passwords: cfg
            .db_passfile
            .as_deref()
            .map(validate::db_passwords)
            .transpose()?,
        as_user: Some(as_user),
    })
}

/// pgpool_status from the live view (see the module's description). A
/// failure costs only this: pgpool's own file is used.
fn write_status_file(checked: &Checked, asker: &Asker, follow: &Follow, deadline: &Deadline) {
    let ids: Vec<u32> = checked.backends.iter().map(|b| b.id).collect();
    let path = &checked.layout.status_file;
    let text = match follow {
        Follow::Streaming => {
            let live = asker.observe(&checked.backends, deadline);
            reconcile::status_file(&ids, &live).ok_or_else(|| {
                match reconcile::current_primary(&live) {
                    reconcile::Current::Unsure(why) => why,
                    _ => "no backend is a primary".to_string(),
                }
            })
        }
        Follow::Slony(cluster) => {
            let view = asker.observe_slony(&checked.backends, cluster, deadline);
            slony::status_file(&ids, &view).ok_or_else(|| match slony::origin(&view) {
                slony::Origin::Unsure(why) => why,
                slony::Origin::At { .. } => "no backend".to_string(),
            })
        }
    };
    let text = match text {
        Ok(text) => text,
        Err(why) => {
            warning!("{} left as pgpool wrote it: {why}", path.display());
            return;
        }
    };
    let owner = Some((checked.user.uid, checked.user.gid));
    let written = ocf::fs::open_append_owned(path, 0o644, owner).and_then(|mut f| {
        f.set_len(0)?;
        f.write_all(text.as_bytes())
    });
    match written {
        Ok(()) => debug!(
            "wrote {} from the backends: {}",
            path.display(),
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        Err(e) => warning!("cannot write {}: {e}; pgpool reads its own", path.display()),
    }
}

/// `pgpool -n -f CONF -F PCP -a HBA` as its account, in a session of its
/// own, output appended to the log file (created owned by the account
/// through its descriptor: the log directory may be the account's).
fn launch(cfg: &PoolConfig, checked: &Checked) -> Result<Child> {
    let user = &checked.user;
    let log = ocf::fs::open_append_owned(&cfg.logfile, 0o640, Some((user.uid, user.gid)))
        .map_err(|e| OcfError::perm(format!("cannot open {}: {e}", cfg.logfile.display())))?;
    let err = log
        .try_clone()
        .map_err(|e| OcfError::generic(format!("duplicating the log descriptor: {e}")))?;
    let mut cmd = user.command(&cfg.pgpool);
    cmd.arg("-n")
        .arg("-f")
        .arg(&cfg.config)
        .arg("-F")
        .arg(&cfg.pcp_config)
        .arg("-a")
        .arg(&cfg.hba_config)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(Into::into));
    }
    cmd.spawn()
        .map_err(|e| OcfError::generic(format!("cannot run {}: {e}", cfg.pgpool.display())))
}

/// Waits until pgpool answers the node count; its early exit, a refused
/// password or the end of `deadline` are failures with pgpool's own words.
fn wait_until_answering(
    mut child: Child,
    checked: &Checked,
    cfg: &PoolConfig,
    log_offset: u64,
    deadline: &Deadline,
) -> Result<u32> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let why = log_reason(cfg, log_offset).unwrap_or_else(|| status.to_string());
            return Err(OcfError::generic(format!("pgpool exited at start: {why}")));
        }
        let attempt = Deadline::after(deadline.remaining().min(Duration::from_secs(1)));
        match checked.pcp.node_count(&attempt) {
            Ok(count) => return Ok(count),
            Err(e) if matches!(e.kind, crate::pcp::PcpErrorKind::Auth) => return Err(e.into()),
            Err(_) if !deadline.is_expired() => {}
            Err(e) => {
                let why = log_reason(cfg, log_offset).unwrap_or(e.reason);
                return Err(OcfError::generic(format!(
                    "pgpool did not answer before the start timeout: {why}"
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(50).min(deadline.remaining()));
    }
}

/// pgpool's own words in what it logged since `offset`.
fn log_reason(cfg: &PoolConfig, offset: u64) -> Option<String> {
    ocf::fs::read_appended(&cfg.logfile, offset, 1 << 20).and_then(|t| reason_from_log(&t))
}

/// The last FATAL line of pgpool's log text with the DETAIL line that
/// follows it, without the time and process prefix; else a primary search
/// still going on (health checks log errors meanwhile); else the last
/// ERROR line; else the last line.
pub fn reason_from_log(text: &str) -> Option<String> {
    let said = |l: &&str| !l.is_empty();
    let lines: Vec<&str> = text.lines().map(str::trim).filter(said).collect();
    let message = |line: &str, tags: &[&str]| {
        tags.iter()
            .find_map(|tag| line.find(tag).map(|i| &line[i..]))
            .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    let with_detail = |i: usize, tag: &str| {
        let mut reason = message(lines[i], &[tag])?;
        if let Some(detail) = lines.get(i + 1).and_then(|l| message(l, &["DETAIL:"])) {
            reason = format!("{reason} {detail}");
        }
        Some(reason)
    };
    if let Some(i) = lines.iter().rposition(|l| l.contains("FATAL:")) {
        return with_detail(i, "FATAL:");
    }
    let searching = lines.iter().rposition(|l| l.contains("find_primary_node"));
    let started = lines
        .iter()
        .rposition(|l| l.contains("successfully started"));
    let still_searching = match (searching, started) {
        (Some(search), Some(start)) => start < search,
        (Some(_), None) => true,
        _ => false,
    };
    if still_searching {
        return Some(
            "pgpool is still searching for a primary backend (search_primary_node_timeout)"
                .to_string(),
        );
    }
    if let Some(i) = lines.iter().rposition(|l| l.contains("ERROR:")) {
        return with_detail(i, "ERROR:");
    }
    lines
        .last()
        .map(|l| message(l, &["LOG:"]).unwrap_or_else(|| l.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpool_s_error_line_and_its_detail_explain_a_failed_start() {
        let log = "2026-12-01 21:53:51.600: main pid 22422: LOG:  Backend status file /x/pgpool_status does not exist\n\
                   2026-12-01 21:53:51.629: main pid 22422: FATAL:  failed to create INET domain socket\n\
                   2026-12-01 21:53:51.629: main pid 22422: DETAIL:  bind on socket failed with error \"Address already in use\"\n\
                   2026-12-01 21:53:51.630: main pid 22422: LOG:  shutting down\n";
        assert_eq!(
            reason_from_log(log).as_deref(),
            Some("FATAL: failed to create INET domain socket DETAIL: bind on socket failed with error \"Address already in use\"")
        );
        let pid = "2026-12-01 21:53:51.600: main pid 9: ERROR:  pid file found. is another pgpool(1371) is running?\n";
        assert_eq!(
            reason_from_log(pid).as_deref(),
            Some("ERROR: pid file found. is another pgpool(1371) is running?")
        );
    }

    #[test]
    fn a_primary_search_in_progress_is_named() {
        let log = "2026-12-01 21:55:23.721: main pid 1: LOG:  find_primary_node_repeatedly: waiting for finding a primary node\n\
                   2026-12-01 21:55:23.729: main pid 1: LOG:  find_primary_node: standby node is 1\n";
        assert!(reason_from_log(log)
            .unwrap()
            .contains("search_primary_node_timeout"));
        let done = format!("{log}2026-12-01 21:55:28.756: main pid 1: LOG:  pgpool-II successfully started. version 4.3.5\n");
        assert_eq!(
            reason_from_log(&done).as_deref(),
            Some("LOG: pgpool-II successfully started. version 4.3.5")
        );
        assert_eq!(reason_from_log("\n"), None);
    }
}
