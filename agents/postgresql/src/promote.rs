//! promote: make this standby the primary, but only when no other
//! candidate has more WAL, and after a planned demote only once this
//! standby has replayed the old primary's shutdown checkpoint. Either
//! refusal leaves the data as it is and says which node to promote instead.

use crate::cluster::Cluster;
use crate::config::{PgConfig, SyncPolicy};
use crate::election;
use crate::monitor::set_sync_names;
use crate::postmaster::{self, State};
use crate::replication::{self, Replication};
use crate::wal::Position;
use crate::{slots, sql};
use nix::unistd::{Gid, Uid};
use ocf::attributes::Score;
use ocf::{info, warning, Deadline, OcfEnv, OcfError, Result, Status};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn promote(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Result<Status> {
    let pm = match postmaster::observe(&cfg.pgdata)? {
        State::Running(pm) => pm,
        _ => {
            return Err(OcfError::generic(
                "PostgreSQL is not running here: nothing to promote",
            ))
        }
    };
    let as_user = (Uid::from_raw(pm.uid), Gid::from_raw(pm.gid));
    let cluster = Cluster::new(env);
    let repl = replication::observe(cfg, as_user, deadline)?;
    if !repl.in_recovery {
        info!("already the primary (timeline {})", repl.timeline());
        if let Err(e) = cluster.set_score(
            &cluster.node,
            Some(election::PRIMARY_SCORE),
            "primary",
            deadline,
        ) {
            warning!("{}", e.reason());
        }
        return Ok(Status::Success);
    }
    let rivals = match compare_candidates(&cluster, repl.position, deadline)? {
        Comparison::Best(how) => how,
        Comparison::Behind { node, position } => {
            return Err(OcfError::generic(format!(
                "{node} has more WAL ({position}) than this node ({}): not promoting here, \
                 {node} should be promoted instead",
                repl.position
            )))
        }
    };
    let repl = wait_for_demoted_checkpoints(cfg, &cluster, repl, as_user, deadline)?;

    // Before the first write on the new timeline, commits wait for one of
    // the other nodes, under available too: the other standbys still hold
    // the scores the old primary gave them, and a commit acknowledged by
    // this node alone would be lost if one of them were promoted next. The
    // monitor that follows the promote, less than a second later, removes
    // those scores before it lets commits go asynchronous (while no
    // standby streams yet), or keeps them waiting for one that does.
    let sync_names = if cfg.replication.sync == SyncPolicy::Off {
        String::new()
    } else {
        let peers = match cluster.cluster_nodes(|_| true, deadline) {
            Ok(nodes) => Some(election::peers(&nodes, &cluster.node)),
            Err(e) => {
                warning!("{}; any walsender counts", e.reason());
                None
            }
        };
        election::sync_list(cfg.replication.sync, None, peers.as_deref())
    };
    set_sync_names(cfg, as_user, &sync_names, deadline)?;

    // From the moment pg_promote() is called the server may be a primary:
    // nothing after it may fail the promote, which would make Pacemaker
    // demote (restart) a primary that clients may already write to.
    let wait = deadline.remaining().as_secs().saturating_sub(2).max(1);
    let said = pgclient::query(
        sql::local(cfg),
        Some(as_user),
        deadline,
        &format!("SELECT pg_promote(true, {wait})"),
    )
    .map(|results| pgclient::value(&results, 0, 0, 0) == Some("t"))
    .map_err(|e| e.reason().to_string());
    let mut warnings = Vec::new();
    let in_recovery_now = match &said {
        Ok(true) => Some(false),
        _ => sql::server_state(cfg, as_user, deadline)
            .map(|s| s.in_recovery)
            .map_err(|e| warnings.push(format!("asking whether it finished: {}", e.reason())))
            .ok(),
    };
    match promotion_outcome(&said, in_recovery_now) {
        Outcome::Promoted(None) => {}
        Outcome::Promoted(Some(why)) => warnings.push(why),
        Outcome::NotPromoted(why) => return Err(OcfError::generic(why)),
    }

    // A promotion writes no checkpoint, only requests a spread one. Without
    // one on the new timeline, pg_rewind of the next former primary walks
    // back into the previous timeline's renamed last segment and fails
    // ("could not find previous WAL record"), and crash recovery starts on
    // the old timeline. CHECKPOINT makes it immediate; when it takes longer
    // than the time left, the checkpointer finishes it without us (the
    // primary's monitor asks again while it is missing).
    let checkpoint = deadline.share(0.7);
    if let Err(e) = pgclient::query(sql::local(cfg), Some(as_user), &checkpoint, "CHECKPOINT") {
        warnings.push(format!(
            "CHECKPOINT after the promotion: {} (the checkpointer finishes it)",
            e.reason()
        ));
    }
    let timeline = match replication::observe(cfg, as_user, deadline) {
        Ok(promoted) => {
            // The other nodes' slots, if this standby did not keep them
            // already: they reconnect through them in a few seconds.
            if cfg.replication.slots {
                if let Err(e) = slots::keep(cfg, &cluster, &promoted, None, as_user, deadline) {
                    warnings.push(e.reason().to_string());
                }
            }
            promoted.timeline()
        }
        Err(e) => {
            warnings.push(format!("reading the new timeline: {}", e.reason()));
            repl.timeline() + 1
        }
    };
    info!(
        "promoted: WAL at {} on timeline {}, now timeline {timeline}; {}",
        repl.position.lsn,
        repl.timeline(),
        rivals
    );
    let publish = cluster
        .set_score(
            &cluster.node,
            Some(election::PRIMARY_SCORE),
            "primary",
            deadline,
        )
        .and_then(|()| cluster.publish_timeline(timeline, deadline))
        .and_then(|()| {
            cluster.publish_sync(
                Some(if sync_names.is_empty() {
                    "async"
                } else {
                    "sync"
                }),
                deadline,
            )
        });
    if let Err(e) = publish {
        warnings.push(e.reason().to_string());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    cluster.keep_note(
        crate::monitor::PROMOTED_AT,
        Some(&now.as_secs().to_string()),
    );
    for w in &warnings {
        warning!("promoted, but {w}");
    }
    Ok(Status::Success)
}

/// What a promote reports once it called pg_promote().
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server is a primary; with a warning when pg_promote() did not
    /// say so itself.
    Promoted(Option<String>),
    /// Still a standby (or nobody can tell): Pacemaker may try elsewhere.
    NotPromoted(String),
}

/// `said`: pg_promote()'s answer (true: finished within its wait) or why
/// it gave none; `in_recovery_now`: what the server said afterwards, if it
/// answered. The server's own state decides: pg_promote() can time out
/// or lose its connection while the promotion finishes.
pub fn promotion_outcome(
    said: &std::result::Result<bool, String>,
    in_recovery_now: Option<bool>,
) -> Outcome {
    match (said, in_recovery_now) {
        (Ok(true), _) => Outcome::Promoted(None),
        (_, Some(false)) => Outcome::Promoted(Some(match said {
            Ok(_) => "pg_promote() did not report the end of the promotion in time".to_string(),
            Err(e) => format!("pg_promote() failed ({e}), and the promotion happened anyway"),
        })),
        (Ok(false), Some(true)) => {
            Outcome::NotPromoted("pg_promote() did not finish the promotion in time".to_string())
        }
        (Err(e), Some(true)) => Outcome::NotPromoted(format!("pg_promote(): {e}")),
        (_, None) => Outcome::NotPromoted(format!(
            "cannot tell whether the promotion finished ({})",
            match said {
                Ok(_) => "pg_promote() did not finish in time".to_string(),
                Err(e) => e.clone(),
            }
        )),
    }
}

/// How this node's WAL compares with the other candidates'.
pub enum Comparison {
    /// This node is (one of) the furthest: how it compared, for the log.
    Best(String),
    /// Another candidate has more WAL; the promotion scores now say so.
    Behind { node: String, position: Position },
}

/// Compares this node's WAL position with what the other candidates
/// published at pre-promote. When one is further, steers Pacemaker to it:
/// at pre-promote the score change aborts the transition before this
/// node's promote starts; a promote that starts anyway refuses.
pub fn compare_candidates(
    cluster: &Cluster,
    mine: Position,
    deadline: &Deadline,
) -> Result<Comparison> {
    let candidates: Vec<String> = cluster
        .candidates()
        .into_iter()
        .filter(|n| *n != cluster.node)
        .collect();
    if candidates.is_empty() {
        return Ok(Comparison::Best("no other standby".to_string()));
    }
    // The candidates publish during the same pre-promote notification; a
    // moment may pass before every value reaches this node.
    let asking = Deadline::after(
        deadline
            .remaining()
            .mul_f64(0.2)
            .min(Duration::from_secs(3)),
    );
    let mut positions = BTreeMap::new();
    let waited = asking.wait_for(
        "the candidates' WAL positions",
        Duration::from_millis(50),
        || {
            positions = cluster.positions(deadline)?;
            Ok(candidates
                .iter()
                .all(|c| positions.contains_key(c))
                .then_some(()))
        },
    );
    if let Err(e) = waited {
        warning!("{}", e.reason());
    }
    positions.retain(|node, _| candidates.contains(node));
    for missing in candidates.iter().filter(|c| !positions.contains_key(*c)) {
        warning!("{missing} published no WAL position at pre-promote: not compared");
    }
    let compared = positions.len();
    positions.insert(cluster.node.clone(), mine);
    let (best, position) =
        election::best_candidate(&positions, &cluster.node).expect("this node is a candidate");
    if best == cluster.node {
        return Ok(Comparison::Best(format!(
            "best of {} standbys",
            compared + 1
        )));
    }
    let node = best.to_string();
    let steer = cluster
        .set_score(&node, Some(election::CAUGHT_UP), "election", deadline)
        .and_then(|()| {
            cluster.set_score(&cluster.node, Some(Score::Value(1)), "election", deadline)
        });
    if let Err(e) = steer {
        warning!("{}", e.reason());
    }
    Ok(Comparison::Behind { node, position })
}

/// After a planned demote, the old primary published where its shutdown
/// checkpoint is. This standby must have replayed it: then it holds every
/// record the old primary wrote, and the old primary can follow it without
/// pg_rewind. It normally has by now (a primary's shutdown waits until its
/// walsenders sent everything); the wait covers the replay.
fn wait_for_demoted_checkpoints(
    cfg: &PgConfig,
    cluster: &Cluster,
    mut repl: Replication,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Result<Replication> {
    let markers: BTreeMap<String, Position> = cluster
        .demoted_at(deadline)?
        .into_iter()
        .filter(|(node, _)| *node != cluster.node)
        .collect();
    for (node, checkpoint) in &markers {
        let waiting = deadline.share(0.5);
        let replayed = |r: &Replication| {
            election::shutdown_checkpoint_replayed(
                r.timeline(),
                r.replayed.unwrap_or_default(),
                *checkpoint,
            )
        };
        let outcome = waiting.wait_for(
            "the old primary's shutdown checkpoint to be replayed",
            Duration::from_millis(50),
            || {
                if replayed(&repl) {
                    return Ok(Some(()));
                }
                repl = replication::observe(cfg, as_user, deadline)?;
                Ok(None)
            },
        );
        if outcome.is_err() {
            return Err(OcfError::generic(format!(
                "this standby has not replayed the shutdown checkpoint of {node} (at \
                 {checkpoint}; replayed up to {} on timeline {}): promoting it would leave \
                 {node} diverged; promote {node} again instead",
                repl.replayed.unwrap_or_default(),
                repl.timeline()
            )));
        }
        info!("replayed the shutdown checkpoint of {node} ({checkpoint})");
    }
    Ok(repl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_the_server_left_recovery_the_promotion_succeeded_whatever_pg_promote_said() {
        assert_eq!(promotion_outcome(&Ok(true), None), Outcome::Promoted(None));
        assert!(matches!(
            promotion_outcome(&Ok(false), Some(false)),
            Outcome::Promoted(Some(_))
        ));
        assert!(matches!(
            promotion_outcome(&Err("no answer within 58.0s".into()), Some(false)),
            Outcome::Promoted(Some(ref w)) if w.contains("no answer")
        ));
        assert!(matches!(
            promotion_outcome(&Ok(false), Some(true)),
            Outcome::NotPromoted(_)
        ));
        assert!(matches!(
            promotion_outcome(&Err("connection refused".into()), Some(true)),
            Outcome::NotPromoted(ref w) if w.contains("connection refused")
        ));
        assert!(matches!(
            promotion_outcome(&Err("x".into()), None),
            Outcome::NotPromoted(ref w) if w.contains("cannot tell")
        ));
    }
}
