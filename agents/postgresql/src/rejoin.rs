//! Before an instance starts as a standby: can it follow the current
//! primary, or did its WAL diverge (a former primary that wrote on after
//! the failover point)? A diverged instance started as a standby runs and
//! answers queries while never replicating again, so start checks first,
//! and rewinds it (rewind=auto) or refuses (rewind=off).

use crate::config::{PgConfig, RewindPolicy};
use crate::controldata::ControlData;
use crate::wal::{
    history_file, newest_history_timeline, parse_history, timeline_of_walfile, Fork, Lsn,
};
use ocf::{command, error, info, warning, Deadline, OcfError, OsUser, Result};
use pgclient::{Conninfo, Passfile};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its WAL is a prefix of the primary's history: it streams from there.
    Follow,
    /// It wrote WAL the primary does not have.
    Diverged(String),
    /// It crashed: where its WAL ends is unknown without reading it all.
    Unknown(String),
    /// It is on a newer timeline than the primary: the "primary" is stale.
    Ahead(String),
}

/// Compares this instance's timeline history and where its WAL ends with
/// the primary's timeline history.
pub fn assess(
    timeline: u32,
    end: Option<Lsn>,
    history: &[Fork],
    primary_timeline: u32,
    primary_history: &[Fork],
) -> Verdict {
    if timeline > primary_timeline {
        return Verdict::Ahead(format!(
            "this node is on timeline {timeline}, newer than the primary's {primary_timeline}"
        ));
    }
    if timeline == primary_timeline {
        // Two standbys promoted independently get the same timeline number;
        // their histories tell them apart.
        return if history == primary_history {
            Verdict::Follow
        } else {
            Verdict::Diverged(format!(
                "this node and the primary are both on timeline {timeline}, created at \
                 different points (two promotions)"
            ))
        };
    }
    let shared = primary_history.get(..history.len()) == Some(history);
    let Some(fork) = primary_history
        .get(history.len())
        .filter(|f| shared && f.parent == timeline)
    else {
        return Verdict::Diverged(format!(
            "timeline {timeline} of this node is not in the primary's history"
        ));
    };
    match end {
        // The fork point is where the promoted standby stopped replaying
        // this timeline: WAL of ours that starts there or later is ours alone.
        Some(end) if end < fork.switchpoint => Verdict::Follow,
        Some(end) => Verdict::Diverged(format!(
            "this node's WAL reaches {end} on timeline {timeline}, past the primary's fork \
             point {}",
            fork.switchpoint
        )),
        None => Verdict::Unknown(format!(
            "this node crashed on timeline {timeline}, which the primary left at {}",
            fork.switchpoint
        )),
    }
}

/// The primary's view: its system identifier, timeline and history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryInfo {
    pub system_id: String,
    pub timeline: u32,
    pub history: Vec<Fork>,
}

/// A libpq connection string to the primary as the replication role, for
/// primary_conninfo and pg_rewind.
pub fn conninfo(cfg: &PgConfig, application_name: Option<&str>, with_db: bool) -> String {
    let r = &cfg.replication;
    let mut conninfo = Conninfo::new();
    conninfo.set("host", &r.primary_host);
    // libpq's default (the agent's commands run with a clean environment,
    // without PGPORT): shorter exit reasons.
    if cfg.pgport != 5432 {
        conninfo.set("port", cfg.pgport.to_string());
    }
    conninfo.set("user", &r.repl_user);
    if with_db {
        conninfo.set("dbname", &cfg.pgdb);
    }
    if let Some(name) = application_name {
        conninfo.set("application_name", name);
    }
    if let Some(passfile) = &r.repl_passfile {
        conninfo.set("passfile", passfile.to_string_lossy());
    }
    conninfo.to_string()
}

/// What a failed question to primary_host means for the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Nobody is there: no primary (start without the divergence check).
    Absent,
    /// A server that is starting up: ask again inside the timeout.
    AskAgain,
    /// Somebody is there and said no (authentication, too many clients,
    /// a slow or broken session): a primary may be running whose history
    /// this node has not compared with its own, so the start fails.
    Fail,
}

/// Fail closed: only a refused or unreachable connection, or a connection
/// attempt that timed out, means that no primary runs at primary_host.
pub fn answer_of(kind: &pgclient::ErrorKind) -> Answer {
    match kind {
        pgclient::ErrorKind::Unreachable | pgclient::ErrorKind::Timeout { connected: false } => {
            Answer::Absent
        }
        pgclient::ErrorKind::Server { sqlstate, .. } if sqlstate == "57P03" => Answer::AskAgain,
        _ => Answer::Fail,
    }
}

/// Asks the primary at primary_host, if one answers there. As the server's
/// user: a unix-socket primary_host may authenticate by peer.
pub fn ask_primary(
    cfg: &PgConfig,
    user: &OsUser,
    deadline: &Deadline,
) -> Result<Option<PrimaryInfo>> {
    let as_user = Some((user.uid, user.gid));
    let r = &cfg.replication;
    let mut pg = pgclient::Config::new();
    pg.host(&r.primary_host)
        .port(cfg.pgport)
        .user(&r.repl_user)
        .dbname(&cfg.pgdb);
    if let Some(password) = repl_password(cfg)? {
        pg.password(password);
    }
    let first = "SELECT system_identifier::text FROM pg_control_system(); \
                 SELECT pg_is_in_recovery(), \
                 CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END";
    let asking = deadline.share(0.5);
    let results = asking.wait_for(
        &format!("the server at {} to finish starting", r.primary_host),
        std::time::Duration::from_millis(500),
        || match pgclient::query(pg.clone(), as_user, &asking, first) {
            Ok(results) => Ok(Some(Some(results))),
            Err(e) => match answer_of(e.kind()) {
                Answer::Absent => {
                    info!("no primary answers at {}: {}", r.primary_host, e.reason());
                    Ok(Some(None))
                }
                Answer::AskAgain => Ok(None),
                Answer::Fail => Err(OcfError::generic(format!(
                    "the server at {} did not answer the divergence check: {}",
                    r.primary_host,
                    e.reason()
                ))),
            },
        },
    )?;
    let Some(results) = results else {
        return Ok(None);
    };
    if pgclient::value(&results, 1, 0, 0) != Some("f") {
        info!("{} is not a primary (in recovery)", r.primary_host);
        return Ok(None);
    }
    let system_id = pgclient::value(&results, 0, 0, 0)
        .unwrap_or_default()
        .to_string();
    let timeline = pgclient::value(&results, 1, 0, 1)
        .and_then(timeline_of_walfile)
        .ok_or_else(|| OcfError::generic("the primary reported no WAL file name"))?;
    let history = if timeline == 1 {
        Vec::new()
    } else {
        let q = format!(
            "SELECT convert_from(pg_read_binary_file('{}'), 'UTF8')",
            history_file(timeline)
        );
        let results = pgclient::query(pg, as_user, deadline, &q).map_err(|e| {
            e.context(format!(
                "reading the timeline history of the primary at {} (does {} have EXECUTE on \
                 pg_read_binary_file(text)?)",
                r.primary_host, r.repl_user
            ))
        })?;
        parse_history(pgclient::value(&results, 0, 0, 0).unwrap_or_default())?
    };
    Ok(Some(PrimaryInfo {
        system_id,
        timeline,
        history,
    }))
}

/// repl_user's password at primary_host from repl_passfile, for the
/// agent's own query: the operator writes the WAL receiver's line (database
/// "replication"), and it serves the query too.
fn repl_password(cfg: &PgConfig) -> Result<Option<Vec<u8>>> {
    let r = &cfg.replication;
    let Some(passfile) = &r.repl_passfile else {
        return Ok(None);
    };
    let passwords = Passfile::read(passfile)
        .map_err(|e| OcfError::configured(format!("repl_passfile {}: {e}", passfile.display())))?;
    Ok(passwords.password_for_any(
        &r.primary_host,
        cfg.pgport,
        &[&cfg.pgdb, "replication"],
        &r.repl_user,
    ))
}

/// This instance's own history of its timeline (none for timeline 1).
pub fn local_history(pgdata: &Path, timeline: u32) -> Result<Vec<Fork>> {
    if timeline == 1 {
        return Ok(Vec::new());
    }
    let file = pgdata.join(history_file(timeline));
    // A history file has a line per earlier promotion: 1 MiB is thousands.
    let text = match ocf::fs::read_bounded(&file, 1 << 20) {
        Ok(Some(f)) if !f.truncated => String::from_utf8_lossy(&f.bytes).into_owned(),
        Ok(Some(_)) => {
            return Err(OcfError::generic(format!(
                "{} is larger than 1 MiB",
                file.display()
            )))
        }
        Ok(None) => {
            return Err(OcfError::generic(format!(
                "cannot read {}: it does not exist",
                file.display()
            )))
        }
        Err(e) => {
            return Err(OcfError::generic(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    parse_history(&text)
}

/// What start does before starting the instance as a standby; says
/// whether a primary answered. `asking` bounds the questions to the
/// primary, `deadline` the rewind.
pub fn prepare(
    cfg: &PgConfig,
    user: &OsUser,
    bindir: &Path,
    control: &ControlData,
    asking: &Deadline,
    deadline: &Deadline,
) -> Result<bool> {
    let Some(primary) = ask_primary(cfg, user, asking)? else {
        // Nothing to compare with: the cluster has no primary yet, or it is
        // being promoted elsewhere. The standby waits for one.
        return Ok(false);
    };
    if primary.system_id != control.system_id {
        // This node's data is wrong, not the cluster's configuration: fail
        // here only (ERR_CONFIGURED would stop the primary too).
        return Err(OcfError::generic(format!(
            "the primary at {} is another database cluster (system identifier {}, this \
             node's is {}): rebuild this node from it with pg_basebackup",
            cfg.replication.primary_host, primary.system_id, control.system_id
        )));
    }
    let timeline = control
        .latest_timeline()
        .max(newest_history_timeline(&cfg.pgdata).unwrap_or(0));
    let history = local_history(&cfg.pgdata, timeline)?;
    // A standby wrote no WAL of its own: where its WAL ends cannot put it
    // past a fork, only the timeline it followed can.
    let end = if control.was_standby() {
        Some(Lsn(0))
    } else {
        control.clean_end()
    };
    let verdict = assess(timeline, end, &history, primary.timeline, &primary.history);
    let why = match verdict {
        Verdict::Follow => return Ok(true),
        Verdict::Ahead(why) => {
            return Err(OcfError::generic(format!(
                "{why}: refusing to follow the primary at {}",
                cfg.replication.primary_host
            )))
        }
        Verdict::Diverged(why) | Verdict::Unknown(why) => why,
    };
    let rewind = rewind_command(cfg, user, bindir);
    if cfg.replication.rewind == RewindPolicy::Off {
        // Pacemaker keeps 128 characters of an exit reason: the command
        // first, the whole story in the log.
        error!(
            "{why}; rewind=off: as {}, run {} and then clean up the resource",
            user.name,
            shown(&rewind)
        );
        return Err(OcfError::generic(format!(
            "rewind=off: pg_rewind -D {} --source-server='{}'",
            cfg.pgdata.display(),
            conninfo(cfg, None, true)
        )));
    }
    warning!(
        "{why}: rewinding with pg_rewind from {}",
        cfg.replication.primary_host
    );
    // pg_rewind recovers a crashed target in single-user mode, which
    // refuses to run with a standby.signal.
    for signal in ["standby.signal", "recovery.signal"] {
        let _ = std::fs::remove_file(cfg.pgdata.join(signal));
    }
    let out = command::run(rewind, deadline)?;
    if !out.status.success() {
        let said = out
            .stderr
            .lines()
            .find(|l| l.contains("error:") || l.contains("FATAL"))
            .unwrap_or_else(|| out.last_words());
        error!("pg_rewind failed:\n{}", out.stderr.trim());
        // "could not find previous WAL record": this node recycled the WAL
        // back to the last checkpoint before the fork.
        return Err(OcfError::generic(format!(
            "pg_rewind failed: {said} (it needs this node's WAL back to the last checkpoint \
             before the fork: keep it with wal_keep_size, or give restore_command an archive)"
        )));
    }
    info!("pg_rewind: {}", out.last_words());
    Ok(true)
}

fn rewind_command(cfg: &PgConfig, user: &OsUser, bindir: &Path) -> std::process::Command {
    let mut cmd = user.command(bindir.join("pg_rewind"));
    cmd.arg(format!("--target-pgdata={}", cfg.pgdata.display()))
        .arg(format!("--source-server={}", conninfo(cfg, None, true)));
    cmd
}

/// A command as an operator would type it.
fn shown(cmd: &std::process::Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            if a.contains([' ', '\'']) {
                let (flag, value) = a.split_once('=').unwrap_or(("", &a));
                format!("{flag}='{}'", value.replace('\'', r"'\''"))
            } else {
                a.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fork(parent: u32, at: &str) -> Fork {
        Fork {
            parent,
            switchpoint: at.parse().unwrap(),
        }
    }
    fn lsn(s: &str) -> Option<Lsn> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn a_cleanly_demoted_primary_follows_the_standby_promoted_after_its_checkpoint() {
        // Shutdown checkpoint at 0/5000028; the new primary replayed it and
        // forked at the end of that record.
        let primary = [fork(1, "0/50000A0")];
        assert_eq!(
            assess(1, lsn("0/5000028"), &[], 2, &primary),
            Verdict::Follow
        );
    }

    #[test]
    fn a_primary_that_wrote_past_the_fork_point_diverged() {
        let primary = [fork(1, "0/4000000")];
        let v = assess(1, lsn("0/5000028"), &[], 2, &primary);
        assert!(
            matches!(v, Verdict::Diverged(ref w) if w.contains("past the primary's fork point 0/4000000")),
            "{v:?}"
        );
        let v = assess(1, None, &[], 2, &primary);
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
    }

    #[test]
    fn same_timeline_numbers_from_two_promotions_are_told_apart_by_history() {
        let mine = [fork(1, "0/3000000")];
        let theirs = [fork(1, "0/3500000")];
        assert_eq!(
            assess(2, lsn("0/2000000"), &mine, 2, &mine),
            Verdict::Follow
        );
        assert!(matches!(
            assess(2, lsn("0/2000000"), &mine, 2, &theirs),
            Verdict::Diverged(_)
        ));
    }

    #[test]
    fn a_timeline_missing_from_the_primarys_history_diverged() {
        // We are on 2 (forked from 1 at 0/3000000); the primary went 1 -> 2'
        // elsewhere and then 3.
        let mine = [fork(1, "0/3000000")];
        let primary = [fork(1, "0/3800000"), fork(2, "0/6000000")];
        assert!(matches!(
            assess(2, lsn("0/2000000"), &mine, 3, &primary),
            Verdict::Diverged(_)
        ));
        let primary = [fork(1, "0/3000000"), fork(2, "0/6000000")];
        assert_eq!(
            assess(2, lsn("0/5000000"), &mine, 3, &primary),
            Verdict::Follow
        );
        assert!(matches!(
            assess(4, lsn("0/5000000"), &[], 3, &primary),
            Verdict::Ahead(_)
        ));
    }

    fn config(params: &[(&str, &str)]) -> PgConfig {
        let params = ocf::Params::parse(crate::config::PARAMS, |name| {
            let name = name.strip_prefix("OCF_RESKEY_")?;
            params
                .iter()
                .chain([("pgdata", "/d")].iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).into())
        })
        .unwrap();
        PgConfig::from_params(&params).unwrap()
    }

    #[test]
    fn conninfo_names_the_primary_as_the_replication_role() {
        let cfg = config(&[
            ("primary_host", "10.0.0.100"),
            ("pgport", "5433"),
            ("repl_passfile", "/etc/pg pass"),
        ]);
        assert_eq!(
            conninfo(&cfg, None, true),
            "host=10.0.0.100 port=5433 user=replicator dbname=postgres passfile='/etc/pg pass'"
        );
        let cfg = config(&[("primary_host", "/run/pg sock"), ("repl_user", "it's")]);
        assert_eq!(
            conninfo(&cfg, Some("node2"), false),
            r"host='/run/pg sock' user='it\'s' application_name=node2"
        );
    }

    #[test]
    fn the_password_comes_from_the_replication_line_or_the_databases() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:5432:*:replicator:nope\n\
             10.0.0.1:5432:replication:replicator:s\\:cret\n\
             10.0.0.1:5433:postgres:replicator:db\n",
        )
        .unwrap();
        let passfile = f.to_str().unwrap();
        let password = |port| {
            repl_password(&config(&[
                ("primary_host", "10.0.0.1"),
                ("pgport", port),
                ("repl_passfile", passfile),
            ]))
        };
        assert_eq!(password("5432").unwrap(), Some(b"s:cret".to_vec()));
        assert_eq!(password("5433").unwrap(), Some(b"db".to_vec()));
        assert_eq!(password("5434").unwrap(), None);
        assert_eq!(repl_password(&config(&[])).unwrap(), None);
        let none = dir.path().join("none");
        assert_eq!(
            repl_password(&config(&[("repl_passfile", none.to_str().unwrap())]))
                .unwrap_err()
                .status(),
            ocf::Status::ErrConfigured
        );
    }
}
