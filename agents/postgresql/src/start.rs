//! start: bring the server up, recovering from the pid-file failures
//! PostgreSQL cannot recover from by itself.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::controldata::{ClusterState, ControlData};
use crate::postmaster::{self, State};
use crate::rebuild::{self, DataDir, Former, Need, Rebuild, Trigger};
use crate::rewind::{self, RewindMarker};
use crate::{sql, standby, stop, validate};
use ocf::attributes::resource_of;
use ocf::{command, info, warning, Deadline, OcfEnv, OcfError, OsUser, Result, Status};
use std::path::Path;

/// How the server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As its configuration says (a resource that is not a promotable clone).
    AsConfigured,
    /// As a standby, checking first that its WAL can follow the primary's.
    Standby,
    /// As a standby, right after a clean demote.
    DemotedStandby,
}

pub fn start(cfg: &PgConfig, env: &OcfEnv, mode: Mode, deadline: &Deadline) -> Result<Status> {
    start_as(cfg, env, mode, deadline, true)
}

/// The rebuild worker's start of the standby it copied: never a rebuild
/// again from there.
pub fn start_rebuilt(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Result<Status> {
    start_as(cfg, env, Mode::Standby, deadline, false)
}

fn start_as(
    cfg: &PgConfig,
    env: &OcfEnv,
    mode: Mode,
    deadline: &Deadline,
    may_rebuild: bool,
) -> Result<Status> {
    let wanted = |trigger| may_rebuild && rebuild::wanted(cfg.replication.rebuild, trigger);
    let rebuild =
        (mode == Mode::Standby && wanted(Trigger::Blank)).then(|| Rebuild::new(env, &cfg.pgdata));
    if let Some(rb) = &rebuild {
        validate::check_promotable(cfg, env)?;
        match rb.observe() {
            rebuild::Observed::None => {}
            rebuild::Observed::Running(record, _) => {
                info!(
                    "a rebuild of {} runs (worker PID {}): the monitor follows it",
                    cfg.pgdata.display(),
                    record.pid
                );
                return Ok(Status::Success);
            }
            rebuild::Observed::Interrupted(why) | rebuild::Observed::Failed(why) => {
                warning!("last rebuild: {why}; starting over");
                rb.end(&deadline.share(0.3))?;
            }
        }
        let data = DataDir::of(&cfg.pgdata)?;
        if data.is_blank() {
            let why = format!(
                "pgdata {} is {}",
                cfg.pgdata.display(),
                if data == DataDir::Missing {
                    "missing"
                } else {
                    "empty"
                }
            );
            return rebuild::begin(cfg, env, &Need { why, former: None }, deadline);
        }
    }
    let checked = validate::check(cfg, deadline)?;
    if mode != Mode::AsConfigured {
        validate::check_promotable(cfg, env)?;
    }
    match postmaster::observe(&cfg.pgdata)? {
        State::Running(pm) => {
            let state = sql::server_state(cfg, (checked.user.uid, checked.user.gid), deadline)
                .map_err(|e| e.context(format!("postmaster {} already runs, but", pm.pid)))?;
            if mode == Mode::AsConfigured || state.in_recovery {
                info!("already running (postmaster {})", pm.pid);
                return Ok(Status::Success);
            }
            // Only promote makes a primary: one found running where a
            // standby should start would be a second primary.
            warning!(
                "a primary runs here (postmaster {}) where a standby should: stopping it to \
                 start it as a standby",
                pm.pid
            );
            stop::stop(&cfg.pgdata, &deadline.share(0.5))?;
        }
        State::Orphaned { members: procs, .. } => {
            return Err(OcfError::generic(format!(
                "processes of {} still run without a postmaster (PIDs {}); stop the resource first",
                cfg.pgdata.display(),
                ocf::service::pid_list(&procs)
            )))
        }
        State::Stopped { stale: Some(why) } => move_aside_stale_pid_file(cfg, &why)?,
        State::Stopped { stale: None } => {}
    }
    let marker = RewindMarker::new(resource_of(&env.instance), &cfg.pgdata);
    if rebuild.is_some() && wanted(Trigger::RewindInterrupted) {
        if let Some(said) = marker.found() {
            let former = ControlData::read(&checked.user, &checked.bindir, &cfg.pgdata, deadline)
                .map(|c| Former {
                    was_primary: matches!(
                        c.state,
                        ClusterState::ShutDown | ClusterState::InProduction
                    ),
                    timeline: Some(c.timeline),
                })
                .unwrap_or(Former {
                    was_primary: true,
                    timeline: None,
                });
            let why = format!("{said}, and never finished");
            let need = Need {
                why,
                former: Some(former),
            };
            return rebuild::begin(cfg, env, &need, deadline);
        }
    }
    if let Some(refused) = rewind::refusal(&marker, &cfg.pgdata) {
        return Err(refused);
    }
    prepare_directories(cfg, &checked.user)?;
    if let Some(why) = postmaster::stale_socket_lock(cfg) {
        let lock = postmaster::socket_lock(cfg);
        std::fs::remove_file(&lock)
            .map_err(|e| OcfError::generic(format!("cannot remove {}: {e}", lock.display())))?;
        warning!("{why}; removed it");
    }
    let cluster = Cluster::new(env);
    cluster.keep_note(crate::monitor::SILENT_SINCE, None);
    let prepared = match mode {
        Mode::AsConfigured => None,
        Mode::Standby | Mode::DemotedStandby => match standby::prepare(
            cfg,
            &checked,
            &cluster.node,
            &marker,
            mode == Mode::Standby,
            deadline,
        )? {
            standby::Ready::Start(prepared) => Some(prepared),
            standby::Ready::Rebuild(need) if rebuild.is_some() => {
                return rebuild::begin(cfg, env, &need, deadline)
            }
            standby::Ready::Rebuild(need) => return Err(OcfError::generic(need.why)),
        },
    };
    let mut options = server_options(cfg);
    if let Some(p) = &prepared {
        options = format!("{options} {}", p.options);
        standby::own_score_before_start(cfg, &cluster, p, deadline);
    }
    let log_offset = std::fs::metadata(&cfg.logfile)
        .map(|m| m.len())
        .unwrap_or(0);

    let mut pg_ctl = checked.user.command(checked.bindir.join("pg_ctl"));
    // pg_ctl -w follows the postmaster it started and notices its death; it
    // counts whole seconds, so it is given one second less than we have.
    let wait_secs = deadline.remaining().as_secs().saturating_sub(1).max(1);
    pg_ctl
        .arg("start")
        .arg("-w")
        .args(["-t", &wait_secs.to_string()])
        .arg("-D")
        .arg(&cfg.pgdata)
        .arg("-l")
        .arg(&cfg.logfile)
        .args(["-o", &options]);
    let out = command::run(pg_ctl, deadline)?;
    if !out.status.success() {
        let why = server_log_reason(&cfg.logfile, log_offset)
            .unwrap_or_else(|| out.last_words().to_string());
        return Err(OcfError::generic(format!(
            "PostgreSQL did not start: {why}"
        )));
    }
    let state = sql::server_state(cfg, (checked.user.uid, checked.user.gid), deadline)
        .map_err(|e| e.context("PostgreSQL started but does not answer"))?;
    info!(
        "started PostgreSQL on {} ({})",
        cfg.pgdata.display(),
        if state.in_recovery {
            "in recovery"
        } else {
            "primary"
        }
    );
    Ok(Status::Success)
}

/// PostgreSQL refuses to start while postmaster.pid names a live process
/// ("lock file already exists"), even one that only reuses the PID. The file
/// is kept for inspection under another name.
fn move_aside_stale_pid_file(cfg: &PgConfig, why: &str) -> Result<()> {
    let pid_file = postmaster::pid_file(&cfg.pgdata);
    let aside = cfg.pgdata.join("postmaster.pid.tusk-stale");
    std::fs::rename(&pid_file, &aside)
        .map_err(|e| OcfError::generic(format!("cannot move {} aside: {e}", pid_file.display())))?;
    warning!("{why}; moved it to {}", aside.display());
    Ok(())
}

/// The server's options: the port and socket directory the agent monitors
/// through, the config file, then the operator's own.
fn server_options(cfg: &PgConfig) -> String {
    let mut opts = format!("-p {} -k {}", cfg.pgport, shell_quote(&cfg.socketdir));
    if let Some(config) = &cfg.config {
        opts.push_str(&format!(" -c config_file={}", shell_quote(config)));
    }
    for word in &cfg.start_opts {
        opts.push(' ');
        opts.push_str(&shell_word(word));
    }
    opts
}

/// A word as the shell reads it: plain when nothing in it is special.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=.,/:+%@".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        standby::shell_quote(word)
    }
}

/// pg_ctl hands -o to /bin/sh; paths are single-quoted for it.
fn shell_quote(p: &Path) -> String {
    standby::shell_quote(&p.to_string_lossy())
}

/// The socket directory often lives on a tmpfs that a reboot empties, and
/// the log directory may not exist on RPM-based systems.
fn prepare_directories(cfg: &PgConfig, user: &OsUser) -> Result<()> {
    ensure_dir(&cfg.socketdir, user, 0o2775)?;
    if let Some(parent) = cfg.logfile.parent() {
        ensure_dir(parent, user, 0o750)?;
    }
    // The log directory may be pguser's: never follow a symlink planted there.
    ocf::fs::open_append_owned(&cfg.logfile, 0o640, Some((user.uid, user.gid)))
        .map_err(|e| OcfError::perm(format!("cannot open {}: {e}", cfg.logfile.display())))?;
    Ok(())
}

fn ensure_dir(dir: &Path, user: &OsUser, mode: u32) -> Result<()> {
    let created = ocf::fs::ensure_dir(dir, mode, Some((user.uid, user.gid)))
        .map_err(|e| OcfError::perm(format!("cannot create {}: {e}", dir.display())))?;
    if created {
        info!("created {}", dir.display());
    }
    Ok(())
}

/// The server's own explanation of a failed start: the last FATAL or PANIC
/// it logged since `offset`, else its last line.
fn server_log_reason(logfile: &Path, offset: u64) -> Option<String> {
    reason_from_log(&ocf::fs::read_appended(logfile, offset, 1 << 20)?)
}

pub fn reason_from_log(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let fatal = lines
        .iter()
        .rev()
        .find(|l| l.contains("FATAL:") || l.contains("PANIC:"));
    let line = fatal.or(lines.last())?;
    // Keep the message, not the log_line_prefix (timestamp, pid).
    let message = ["FATAL:", "PANIC:", "ERROR:", "LOG:"]
        .iter()
        .find_map(|tag| line.find(tag).map(|i| &line[i..]))
        .unwrap_or(line);
    Some(message.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_fatal_line_explains_a_failed_start() {
        let log = "2026-11-22 06:00:00.000 UTC [42] LOG:  starting PostgreSQL 15\n\
                   2026-11-22 06:00:00.001 UTC [42] FATAL:  lock file \"postmaster.pid\" already exists\n\
                   2026-11-22 06:00:00.001 UTC [42] HINT:  Is another postmaster (PID 7) running?\n\
                   2026-11-22 06:00:00.002 UTC [42] LOG:  database system is shut down\n";
        assert_eq!(
            reason_from_log(log).as_deref(),
            Some("FATAL: lock file \"postmaster.pid\" already exists")
        );
        assert_eq!(
            reason_from_log("just one line\n").as_deref(),
            Some("just one line")
        );
        assert_eq!(reason_from_log("\n\n"), None);
    }

    #[test]
    fn options_quote_paths_for_pg_ctl_s_shell() {
        let cfg = PgConfig {
            pgdata: "/d".into(),
            bindir: None,
            config: Some(PathBuf::from("/etc/it's.conf")),
            socketdir: "/run/pg sock".into(),
            pgport: 5433,
            pguser: "postgres".into(),
            pgdb: "postgres".into(),
            start_opts: vec![
                "-c".into(),
                "work_mem=64MB".into(),
                "-c".into(),
                "log_line_prefix=%m [%p] ".into(),
            ],
            logfile: "/l".into(),
            ..crate::config::PgConfig::from_params(
                &ocf::Params::parse(crate::config::PARAMS, |n| {
                    (n == "OCF_RESKEY_pgdata").then(|| "/d".to_string())
                })
                .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(
            server_options(&cfg),
            r"-p 5433 -k '/run/pg sock' -c config_file='/etc/it'\''s.conf' -c work_mem=64MB -c 'log_line_prefix=%m [%p] '"
        );
    }
}
