//! Starting an instance of a promotable clone: always as a standby of
//! whatever primary answers at primary_host, after making sure its WAL can
//! follow that primary's.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::controldata::{ClusterState, ControlData};
use crate::election::{self, Former};
use crate::rebuild::Need;
use crate::rejoin::Joined;
use crate::rewind::RewindMarker;
use crate::validate::Checked;
use crate::{rejoin, slots};
use ocf::attributes::Score;
use ocf::{warning, Deadline, OcfError, Result};
use std::time::Duration;

/// What start learnt while preparing the standby.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Server options that make it a standby of primary_host.
    pub options: String,
    /// What the directory was before: a primary shut down cleanly or
    /// crashed, or a standby (or a fresh base backup).
    pub former: Former,
    /// A primary answered at primary_host.
    pub primary_seen: bool,
}

/// What start does next.
#[derive(Debug, Clone)]
pub enum Ready {
    Start(Prepared),
    /// The node cannot follow the primary, and rebuild=auto may copy it.
    Rebuild(Need),
}

/// `check_divergence` is false after a demote: a primary that just shut
/// down cleanly holds nothing another node lacks.
pub fn prepare(
    cfg: &PgConfig,
    checked: &Checked,
    node: &str,
    marker: &RewindMarker,
    check_divergence: bool,
    deadline: &Deadline,
) -> Result<Ready> {
    let control = ControlData::read(&checked.user, &checked.bindir, &cfg.pgdata, deadline)?;
    let former = match control.state {
        _ if cfg.pgdata.join("backup_label").exists() => Former::Standby,
        ClusterState::ShutDown => Former::PrimaryShutDown,
        ClusterState::InProduction => Former::PrimaryCrashed,
        _ => Former::Standby,
    };
    let primary_seen = if check_divergence {
        // An address nobody holds (the floating IP between two nodes)
        // costs a connect timeout: keep it short.
        let asking = Deadline::after(
            deadline
                .remaining()
                .mul_f64(0.3)
                .min(Duration::from_secs(5)),
        );
        match rejoin::prepare(
            cfg,
            node,
            &checked.user,
            &checked.bindir,
            &control,
            marker,
            &asking,
            deadline,
        )? {
            Joined::NoPrimary => false,
            Joined::Following => true,
            Joined::Rebuild(need) => return Ok(Ready::Rebuild(need)),
        }
    } else {
        false
    };
    if primary_seen && cfg.replication.slots {
        let user = (checked.user.uid, checked.user.gid);
        slots::ensure_on_primary(rejoin::primary_client(cfg)?, user, node, deadline)?;
    }
    write_standby_signal(cfg, checked)?;
    Ok(Ready::Start(Prepared {
        options: options(cfg, node),
        former,
        primary_seen,
    }))
}

/// standby.signal makes the server start in recovery, as a standby
/// (PostgreSQL 12 and later); pg_rewind removes it, so it is written last.
fn write_standby_signal(cfg: &PgConfig, checked: &Checked) -> Result<()> {
    // pguser owns pgdata: the file may be a symlink planted to make root
    // truncate or give away another file.
    let signal = cfg.pgdata.join("standby.signal");
    ocf::fs::create_owned(&signal, 0o600, Some((checked.user.uid, checked.user.gid)))
        .map_err(|e| OcfError::perm(format!("cannot write {}: {e}", signal.display())))
}

/// On the command line, where they override any configuration file and so
/// need no file of the operator's rewritten: the standby streams from
/// primary_host under this node's name (which the primary's
/// pg_stat_replication shows, and synchronous replication matches), follows
/// new timelines, and answers the monitor's queries.
fn options(cfg: &PgConfig, node: &str) -> String {
    let conninfo = rejoin::conninfo(cfg, Some(node), false);
    let mut options = format!(
        "-c hot_standby=on -c recovery_target_timeline=latest -c {}",
        shell_quote(&format!("primary_conninfo={conninfo}"))
    );
    if cfg.replication.slots {
        // A slot name is [a-z0-9_] alone: nothing for the shell.
        options.push_str(&format!(" -c primary_slot_name={}", slots::slot_name(node)));
    }
    options
}

/// pg_ctl hands -o to /bin/sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Before the server starts: no promotion score left from an earlier run
/// (the primary gives one once it streams), and with no primary anywhere,
/// make it a candidate. Before, not after: once the server runs, its WAL
/// receiver may connect and the primary score it at once, and a later
/// write of this node's own would undo the primary's (seen in the lab: a
/// standby streaming for minutes with no score). From the moment the
/// server starts, only the primary writes this node's score.
pub fn own_score_before_start(
    cfg: &PgConfig,
    cluster: &Cluster,
    prepared: &Prepared,
    deadline: &Deadline,
) {
    // Asked only with no primary around: a fork at start is cheap.
    let last_primary_sync = if prepared.primary_seen {
        None
    } else {
        match cluster.primary_sync_records(deadline) {
            Ok(records) => election::last_primary_sync(&records),
            Err(e) => {
                warning!("{}", e.reason());
                None
            }
        }
    };
    let scored_elsewhere = prepared.former == Former::PrimaryShutDown
        && !prepared.primary_seen
        && scored_elsewhere(cluster, deadline);
    let score = election::start_score(
        cfg.replication.sync,
        prepared.former,
        prepared.primary_seen,
        last_primary_sync,
        scored_elsewhere,
    );
    let result = match score {
        None => cluster.clear_own_score(deadline),
        Some(score) => {
            cluster.forget_score(&cluster.node);
            cluster.set_score(&cluster.node, Some(score), "no-primary", deadline)
        }
    };
    if let Err(e) = result {
        warning!("{}", e.reason());
    }
}

/// Whether another node holds a promotion score; when attrd cannot say,
/// as if one did (a former primary then waits for the comparison of
/// positions instead of claiming the promotion).
fn scored_elsewhere(cluster: &Cluster, deadline: &Deadline) -> bool {
    match cluster.promotion_scores(deadline) {
        Ok(scores) => scores.iter().any(|(node, score)| {
            *node != cluster.node && matches!(score.parse(), Ok(Score::Value(_)))
        }),
        Err(e) => {
            warning!("{}", e.reason());
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Params;

    #[test]
    fn the_standby_streams_from_primary_host_under_the_node_name() {
        let params = Params::parse(crate::config::PARAMS, |n| match n {
            "OCF_RESKEY_pgdata" => Some("/d".into()),
            "OCF_RESKEY_primary_host" => Some("10.0.0.100".into()),
            "OCF_RESKEY_repl_passfile" => Some("/etc/it's".into()),
            _ => None,
        })
        .unwrap();
        let cfg = PgConfig::from_params(&params).unwrap();
        assert_eq!(
            options(&cfg, "node2"),
            r"-c hot_standby=on -c recovery_target_timeline=latest -c 'primary_conninfo=host=10.0.0.100 user=replicator application_name=node2 passfile='\''/etc/it\'\''s'\''' -c primary_slot_name=tusk_node2"
        );
    }
}
