//! Before an instance starts as a standby: can it follow the current
//! primary, or did its WAL diverge (a former primary that wrote on after
//! the failover point)? A diverged instance started as a standby runs and
//! answers queries while never replicating again, so start checks first,
//! and rewinds it (rewind=auto) or refuses (rewind=off).

use crate::config::{PgConfig, RewindPolicy};
use crate::controldata::ControlData;
use crate::rebuild::{self, Former, Need, Trigger};
use crate::rewind::{self, RewindMarker};
use crate::wal::{history_file, history_timelines, parse_history, timeline_of_walfile, Fork};
use crate::wal_end::{self, WalEnd};
use nix::unistd::{Gid, Uid};
use ocf::{command, error, info, warning, Deadline, OcfError, OsUser, Result};
use pgclient::{Conninfo, Passfile, SslMode, Tls};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its WAL is a prefix of the primary's history: it streams from there.
    Follow,
    /// It wrote WAL the primary does not have.
    Diverged(String),
    /// It crashed: where its WAL ends could not be read.
    Unknown(String),
    /// It is on a newer timeline than the primary: the "primary" is stale.
    Ahead(String),
    /// It diverged in a way pg_rewind does not see: pg_rewind finds two
    /// instances on the same timeline number "on the same timeline" and
    /// changes nothing. Only a new copy helps.
    Rebuild(String),
}

/// What this stopped instance holds, for [`assess`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// Where its WAL ends (see [`crate::wal_end`]).
    pub wal: WalEnd,
    /// The history of `wal.timeline`.
    pub history: Vec<Fork>,
    /// The newest timeline whose history file is in its pg_wal. A WAL
    /// receiver fetches the history of the primary's timeline before it
    /// streams: that is no proof that this node ever followed it.
    pub newest_known: u32,
}

/// Compares this instance's timeline history and where its WAL ends with
/// the primary's timeline history, as pg_rewind would, and beyond: two
/// promotions to the same timeline number are told apart.
pub fn assess(local: &Local, primary_timeline: u32, primary_history: &[Fork]) -> Verdict {
    let timeline = local.wal.timeline;
    if timeline.max(local.newest_known) > primary_timeline {
        return Verdict::Ahead(format!(
            "this node knows timeline {}, newer than the primary's {primary_timeline}",
            timeline.max(local.newest_known)
        ));
    }
    if timeline == primary_timeline {
        // Only a promotion makes a primary on a timeline: two primaries on
        // one timeline number come from two promotions, even from the same
        // switchpoint, with identical history files.
        if local.wal.was_primary {
            return Verdict::Rebuild(format!(
                "this node was a primary on timeline {timeline}, and so is the primary: two                  promotions made that timeline"
            ));
        }
        return if local.history == primary_history {
            Verdict::Follow
        } else {
            Verdict::Rebuild(format!(
                "this node and the primary are both on timeline {timeline}, created at \
                 different points (two promotions)"
            ))
        };
    }
    let Some(fork) = lineage_history(primary_timeline, primary_history, timeline)
        .filter(|h| *h == local.history)
        .and_then(|h| primary_history.get(h.len()))
    else {
        return Verdict::Diverged(format!(
            "timeline {timeline} of this node is not in the primary's history"
        ));
    };
    match local.wal.end {
        // The fork point is where the promoted standby's last replayed
        // record ended: WAL of ours that ends there or before is a prefix
        // of the primary's (pg_rewind: rewind only past it).
        Some(end) if end <= fork.switchpoint => Verdict::Follow,
        Some(end) => Verdict::Diverged(format!(
            "this node's WAL reaches {end} on timeline {timeline}, past the primary's fork \
             point {}",
            fork.switchpoint
        )),
        None => Verdict::Unknown(format!(
            "this node crashed on timeline {timeline}, which the primary left at {}; where \
             its WAL ends could not be read",
            fork.switchpoint
        )),
    }
}

/// The history of `timeline` as the primary's lineage has it: `None` when
/// the primary's timeline does not descend from it. Timelines of one
/// lineage only grow, so its forks are those of lower timelines.
pub fn lineage_history(
    primary_timeline: u32,
    primary_history: &[Fork],
    timeline: u32,
) -> Option<&[Fork]> {
    if timeline == primary_timeline {
        return Some(primary_history);
    }
    let at = primary_history.iter().position(|f| f.parent == timeline)?;
    Some(&primary_history[..at])
}

/// History files in pg_wal that would steer this node away from the
/// primary: `recovery_target_timeline=latest` follows the newest history
/// file it finds, and a WAL receiver never replaces one it has. Those of
/// timelines newer than the node's own WAL that the primary's lineage does
/// not have (or has with other forks) are left from a promotion the cluster
/// abandoned.
pub fn misleading_histories(
    local: &[(u32, Vec<Fork>)],
    own_timeline: u32,
    primary_timeline: u32,
    primary_history: &[Fork],
) -> Vec<u32> {
    local
        .iter()
        .filter(|(tli, _)| *tli > own_timeline && *tli <= primary_timeline)
        .filter(|(tli, history)| {
            lineage_history(primary_timeline, primary_history, *tli) != Some(history.as_slice())
        })
        .map(|(tli, _)| *tli)
        .collect()
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
    // libpq's default needs no word.
    if r.sslmode != SslMode::Prefer {
        conninfo.set("sslmode", r.sslmode.as_str());
    }
    if let Some(root) = &r.sslrootcert {
        conninfo.set("sslrootcert", root.to_string_lossy());
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

/// A connection to primary_host as the replication role, to database pgdb.
pub fn primary_client(cfg: &PgConfig) -> Result<pgclient::Config> {
    let r = &cfg.replication;
    let mut pg = pgclient::Config::new();
    pg.host(&r.primary_host)
        .port(cfg.pgport)
        .user(&r.repl_user)
        .dbname(&cfg.pgdb);
    if let Some(password) = repl_password(cfg)? {
        pg.password(password);
    }
    pg.tls(Tls {
        mode: r.sslmode,
        root_certs: root_certs(cfg)?,
    });
    Ok(pg)
}

/// The PEM of sslrootcert, read as a file pguser may control: no symbolic
/// link, a regular file, 1 MiB at most, and its content in no message.
fn root_certs(cfg: &PgConfig) -> Result<Option<Vec<u8>>> {
    let Some(path) = &cfg.replication.sslrootcert else {
        return Ok(None);
    };
    let unusable =
        |why: String| OcfError::configured(format!("sslrootcert {}: {why}", path.display()));
    match ocf::fs::read_bounded(path, 1 << 20) {
        Ok(Some(pem)) if !pem.truncated => Ok(Some(pem.bytes)),
        Ok(Some(_)) => Err(unusable("larger than 1 MiB".into())),
        Ok(None) => Err(unusable("no such file".into())),
        Err(e) => Err(unusable(e.to_string())),
    }
}

/// Asks the primary at primary_host, if one answers there. As the server's
/// user: a unix-socket primary_host may authenticate by peer.
pub fn ask_primary(
    cfg: &PgConfig,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Result<Option<PrimaryInfo>> {
    let as_user = Some(as_user);
    let r = &cfg.replication;
    let pg = primary_client(cfg)?;
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

/// What [`prepare`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// No primary answered: nothing to compare with.
    NoPrimary,
    /// A primary answered, and this node can follow it (rewound if needed).
    Following,
    /// It cannot, and rebuild=auto may copy it anew (see [`crate::rebuild`]).
    Rebuild(Need),
}

/// What start does before starting the instance as a standby. `asking`
/// bounds the questions to the primary, `deadline` the rewind, which
/// `marker` records while it runs.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    cfg: &PgConfig,
    node: &str,
    user: &OsUser,
    bindir: &Path,
    control: &ControlData,
    marker: &RewindMarker,
    asking: &Deadline,
    deadline: &Deadline,
) -> Result<Joined> {
    let Some(primary) = ask_primary(cfg, (user.uid, user.gid), asking)? else {
        // Nothing to compare with: the cluster has no primary yet, or it is
        // being promoted elsewhere. The standby waits for one.
        return Ok(Joined::NoPrimary);
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
    let wal = wal_end::find(user, bindir, &cfg.pgdata, control, &deadline.share(0.3));
    let known: Vec<(u32, Vec<Fork>)> = history_timelines(&cfg.pgdata)
        .into_iter()
        .map(|tli| Ok((tli, local_history(&cfg.pgdata, tli)?)))
        .collect::<Result<_>>()?;
    let local = Local {
        wal,
        history: local_history(&cfg.pgdata, wal.timeline)?,
        newest_known: known.iter().map(|(tli, _)| *tli).max().unwrap_or(0),
    };
    let verdict = assess(&local, primary.timeline, &primary.history);
    let wanted = |trigger| rebuild::wanted(cfg.replication.rebuild, trigger);
    let need = |why: String| {
        Joined::Rebuild(Need {
            why,
            former: Some(Former {
                was_primary: wal.was_primary,
                timeline: Some(wal.timeline),
            }),
        })
    };
    let why = match verdict {
        Verdict::Follow => {
            if let Some(why) = wal.end.and_then(|end| {
                rebuild::wal_gone(cfg, (user.uid, user.gid), node, &primary, end, asking)
            }) {
                return Ok(need(why));
            }
            for tli in
                misleading_histories(&known, wal.timeline, primary.timeline, &primary.history)
            {
                set_aside_history(cfg, user, tli, deadline)?;
            }
            return Ok(Joined::Following);
        }
        Verdict::Ahead(why) => {
            return Err(OcfError::generic(format!(
                "{why}: refusing to follow the primary at {}",
                cfg.replication.primary_host
            )))
        }
        Verdict::Rebuild(why) if wanted(Trigger::Unrewindable) => return Ok(need(why)),
        Verdict::Rebuild(why) => {
            error!("{why}: pg_rewind cannot repair this; rebuild this node from the primary");
            return Err(OcfError::generic(format!(
                "{why}: rebuild this node from the primary (pg_basebackup)"
            )));
        }
        Verdict::Diverged(why) | Verdict::Unknown(why) => why,
    };
    if cfg.replication.rewind == RewindPolicy::Off {
        // Pacemaker keeps 128 characters of an exit reason: the command
        // first, the whole story in the log.
        error!(
            "{why}; rewind=off: as {}, run {} and then clean up the resource",
            user.name,
            shown(&rewind::command(cfg, user, bindir))
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
    match rewind::rewind(cfg, user, bindir, marker, deadline) {
        Ok(()) => Ok(Joined::Following),
        Err(e) if wanted(Trigger::RewindFailed) => Ok(need(format!("{why}, and {}", e.reason()))),
        Err(e) => Err(e),
    }
}

/// Moves a misleading history file aside (kept for inspection), as the
/// server's user: pg_wal may be a symbolic link the account controls.
fn set_aside_history(cfg: &PgConfig, user: &OsUser, tli: u32, deadline: &Deadline) -> Result<()> {
    let file = cfg.pgdata.join(history_file(tli));
    let aside = format!("{}.tusk-stale", file.display());
    let mut mv = user.command("/bin/mv");
    mv.arg("-f").arg("--").arg(&file).arg(&aside);
    let out = command::run(mv, deadline)?;
    if !out.status.success() {
        return Err(OcfError::generic(format!(
            "cannot move {} aside: {}",
            file.display(),
            out.last_words()
        )));
    }
    warning!(
        "{} is the history of a timeline {tli} the primary does not have: moved it to {aside}, \
         or recovery would follow it",
        file.display()
    );
    Ok(())
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
    use crate::wal::Lsn;

    fn lsn(s: &str) -> Option<Lsn> {
        Some(s.parse().unwrap())
    }

    fn local(timeline: u32, end: Option<Lsn>, history: &[Fork], was_primary: bool) -> Local {
        Local {
            wal: WalEnd {
                timeline,
                end,
                was_primary,
            },
            history: history.to_vec(),
            newest_known: timeline,
        }
    }

    #[test]
    fn a_cleanly_demoted_primary_follows_the_standby_promoted_after_its_checkpoint() {
        // Shutdown checkpoint at 0/5000028, its record ending at 0/50000A0;
        // the new primary replayed it and forked at the end of that record,
        // which pg_rewind counts as no divergence.
        let primary = [fork(1, "0/50000A0")];
        let mine = local(1, lsn("0/50000A0"), &[], true);
        assert_eq!(assess(&mine, 2, &primary), Verdict::Follow);
        let one_more = local(1, lsn("0/50000A8"), &[], true);
        assert!(matches!(
            assess(&one_more, 2, &primary),
            Verdict::Diverged(_)
        ));
    }

    #[test]
    fn a_primary_that_wrote_past_the_fork_point_diverged() {
        let primary = [fork(1, "0/4000000")];
        let v = assess(&local(1, lsn("0/5000028"), &[], true), 2, &primary);
        assert!(
            matches!(v, Verdict::Diverged(ref w) if w.contains("past the primary's fork point 0/4000000")),
            "{v:?}"
        );
        let v = assess(&local(1, None, &[], true), 2, &primary);
        assert!(matches!(v, Verdict::Unknown(_)), "{v:?}");
    }

    #[test]
    fn a_standby_that_replayed_past_the_fork_point_diverged_too() {
        // Its end was taken as 0 before: it started, and stuck.
        let primary = [fork(1, "0/4000000")];
        let standby = local(1, lsn("0/4800000"), &[], false);
        assert!(matches!(
            assess(&standby, 2, &primary),
            Verdict::Diverged(_)
        ));
        // The history of timeline 2 that its WAL receiver fetched changes
        // nothing: its WAL is on timeline 1, past the fork.
        let fetched = Local {
            newest_known: 2,
            ..standby
        };
        assert!(matches!(
            assess(&fetched, 2, &primary),
            Verdict::Diverged(_)
        ));
        let behind = local(1, lsn("0/3000000"), &[], false);
        assert_eq!(assess(&behind, 2, &primary), Verdict::Follow);
    }

    #[test]
    fn same_timeline_numbers_from_two_promotions_are_told_apart() {
        let mine = [fork(1, "0/3000000")];
        let theirs = [fork(1, "0/3500000")];
        let standby = local(2, lsn("0/2000000"), &mine, false);
        assert_eq!(assess(&standby, 2, &mine), Verdict::Follow);
        assert!(matches!(assess(&standby, 2, &theirs), Verdict::Rebuild(_)));
        // Same switchpoint, same history file: a node that was primary on
        // timeline 2 itself wrote WAL the other primary never had.
        let primary = local(2, lsn("0/3800000"), &mine, true);
        assert!(matches!(assess(&primary, 2, &mine), Verdict::Rebuild(_)));
    }

    #[test]
    fn a_timeline_missing_from_the_primarys_history_diverged() {
        // We are on 2 (forked from 1 at 0/3000000); the primary went 1 -> 2'
        // elsewhere and then 3.
        let mine = [fork(1, "0/3000000")];
        let primary = [fork(1, "0/3800000"), fork(2, "0/6000000")];
        assert!(matches!(
            assess(&local(2, lsn("0/2000000"), &mine, false), 3, &primary),
            Verdict::Diverged(_)
        ));
        let primary = [fork(1, "0/3000000"), fork(2, "0/6000000")];
        assert_eq!(
            assess(&local(2, lsn("0/5000000"), &mine, false), 3, &primary),
            Verdict::Follow
        );
        assert!(matches!(
            assess(&local(4, lsn("0/5000000"), &[], false), 3, &primary),
            Verdict::Ahead(_)
        ));
        // A history file of a timeline the primary never reached: stale.
        let knows_more = Local {
            newest_known: 4,
            ..local(2, lsn("0/5000000"), &mine, false)
        };
        assert!(matches!(
            assess(&knows_more, 3, &primary),
            Verdict::Ahead(_)
        ));
    }

    #[test]
    fn history_files_of_an_abandoned_promotion_are_misleading() {
        let primary = [fork(1, "0/3000000"), fork(2, "0/6000000")];
        let ours2 = vec![fork(1, "0/3000000")];
        let other2 = vec![fork(1, "0/2800000")];
        let three = primary.to_vec();
        assert_eq!(lineage_history(3, &primary, 2), Some(&primary[..1]));
        assert_eq!(lineage_history(3, &primary, 1), Some(&primary[..0]));
        assert_eq!(lineage_history(3, &primary, 5), None);
        // On timeline 1: the primary's 2 and 3 are fine, another 2 is not.
        let known = [(2, ours2.clone()), (3, three.clone())];
        assert!(misleading_histories(&known, 1, 3, &primary).is_empty());
        let known = [(2, other2), (3, three)];
        assert_eq!(misleading_histories(&known, 1, 3, &primary), [2]);
        // Its own timeline's history is never set aside.
        assert!(misleading_histories(&[(2, ours2)], 2, 3, &primary).is_empty());
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
        // The walreceiver and pg_rewind negotiate TLS as the agent does.
        let cfg = config(&[
            ("primary_host", "10.0.0.100"),
            ("sslmode", "verify-full"),
            ("sslrootcert", "/etc/tusk/root ca.pem"),
        ]);
        assert_eq!(
            conninfo(&cfg, Some("node2"), false),
            "host=10.0.0.100 user=replicator application_name=node2 sslmode=verify-full \
             sslrootcert='/etc/tusk/root ca.pem'"
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
