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
use ocf::crm_mon::ClusterView;
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
    // Every candidate's pre-promote notification has run by now; what is
    // missing is slow (attrd, a throttled cluster) or failed, and its
    // monitor publishes again: half of promote's own time for it, the rest
    // for the promotion.
    let waiting = deadline.share(0.5);
    let budget = waiting.remaining();
    let rivals = match compare_candidates(cfg, &cluster, repl.position, &waiting, deadline)? {
        Comparison::Best(how) => how,
        Comparison::Refused { why, instead } => {
            return Err(OcfError::generic(match instead {
                Some(node) => format!("{why}: not promoting here, promote {node} instead"),
                None => format!("{why}: not promoting any node"),
            }))
        }
        Comparison::Undecided(missing) => {
            return Err(OcfError::generic(format!(
                "no WAL position from {} within {:.0}s: not promoting a node that may lack \
                 acknowledged commits",
                missing.join(", "),
                budget.as_secs_f64()
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// This node holds every acknowledged commit: how it compared, for the
    /// log.
    Best(String),
    /// Not this node: why, and the node the scores now point Pacemaker to
    /// (none: no node may be promoted without a person).
    Refused {
        why: String,
        instead: Option<String>,
    },
    /// These candidates told nothing within the time given.
    Undecided(Vec<String>),
}

/// Compares this node's WAL position with every other candidate's: those
/// the pre-promote notification named, and every instance Pacemaker shows
/// running unpromoted, started in this transition or not. Each publishes
/// its position at pre-promote, and again from its monitor while no
/// primary runs; one that has not yet is waited for until `waiting` ends,
/// unless its node is offline or fenced or its instance is not running
/// (see [`election::judge`]). When another node should be promoted, the
/// scores are set so that Pacemaker picks it next, not this node again.
pub fn compare_candidates(
    cfg: &PgConfig,
    cluster: &Cluster,
    mine: Position,
    waiting: &Deadline,
    deadline: &Deadline,
) -> Result<Comparison> {
    let noted = cluster.candidates();
    // What attrd holds now, before this promotion steers anything: the
    // node with the synchronous score is the one the primary last
    // reported synchronous.
    let scores = cluster.promotion_scores(deadline).unwrap_or_else(|e| {
        warning!("{}", e.reason());
        Default::default()
    });
    let synchronous = election::synchronous_of(&scores).map(str::to_string);
    let mut view_failed = false;
    let mut judged = election::Judgement::Wait(Vec::new());
    let mut polls = 0u32;
    let outcome = waiting.wait_for(
        "the other candidates' WAL positions",
        Duration::from_millis(500),
        || {
            polls += 1;
            let view = match ClusterView::query(deadline) {
                Ok(v) => Some(v),
                Err(e) => {
                    if !view_failed {
                        warning!(
                            "{}; comparing with the notified candidates only",
                            e.reason()
                        );
                        view_failed = true;
                    }
                    None
                }
            };
            let others = what_candidates_said(cluster, &noted, view.as_ref(), deadline)?;
            judged = election::judge(
                &cluster.node,
                mine,
                cfg.replication.sync,
                synchronous.as_deref(),
                &others,
            );
            if let election::Judgement::Wait(missing) = &judged {
                if polls == 1 {
                    info!(
                        "waiting up to {:.0}s for the WAL position of {}",
                        waiting.remaining().as_secs_f64(),
                        missing.join(", ")
                    );
                }
                return Ok(None);
            }
            Ok(Some(()))
        },
    );
    match (outcome, judged) {
        (_, election::Judgement::Promote(how)) => Ok(Comparison::Best(how)),
        (_, election::Judgement::Refuse { why, instead }) => {
            if let Some(node) = &instead {
                for (n, score) in election::steering(&cluster.node, node, &scores) {
                    let set = ocf::attributes::set_promotion_score(
                        &cluster.resource,
                        &n,
                        Some(score),
                        deadline,
                    );
                    cluster.forget_score(&n);
                    if let Err(e) = set {
                        warning!("{}", e.reason());
                    }
                }
            }
            Ok(Comparison::Refused { why, instead })
        }
        (_, election::Judgement::Wait(missing)) => Ok(Comparison::Undecided(missing)),
    }
}

/// What each other candidate told so far (see [`said`]).
fn what_candidates_said(
    cluster: &Cluster,
    noted: &[String],
    view: Option<&ClusterView>,
    deadline: &Deadline,
) -> Result<BTreeMap<String, election::Said>> {
    let positions = cluster.positions(deadline)?;
    Ok(said(
        &cluster.node,
        &cluster.resource,
        noted,
        view,
        &positions,
    ))
}

/// What each other candidate told so far: its published position, or why
/// it never will (node offline or fenced, instance not running), or
/// nothing yet. Candidates: those noted at pre-promote (`noted`) and every
/// instance of `resource` that `view` shows running unpromoted.
pub fn said(
    me: &str,
    resource: &str,
    noted: &[String],
    view: Option<&ClusterView>,
    positions: &BTreeMap<String, Position>,
) -> BTreeMap<String, election::Said> {
    let mut candidates: Vec<String> = noted.to_vec();
    if let Some(view) = view {
        for i in view.instances.get(resource).into_iter().flatten() {
            if !matches!(i.role.as_str(), "Promoted" | "Master") {
                candidates.push(i.node.clone());
            }
        }
    }
    candidates.retain(|c| c != me);
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|c| {
            let said = match (positions.get(&c), view) {
                (Some(p), _) => election::Said::Position(*p),
                (None, Some(v)) if !v.is_online(&c) => {
                    election::Said::Gone("node offline".to_string())
                }
                (None, Some(v)) if !v.runs_on(resource, &c) => {
                    election::Said::Gone("instance not running".to_string())
                }
                (None, _) => election::Said::Nothing,
            };
            (c, said)
        })
        .collect()
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
    use election::Said;
    use ocf::crm_mon::{Instance, NodeState};

    #[test]
    fn candidates_are_the_noted_and_the_running_unpromoted_and_told_apart() {
        let mut view = ClusterView {
            quorate: true,
            ..Default::default()
        };
        for (node, online) in [
            ("node1", false),
            ("node2", true),
            ("node3", true),
            ("node4", true),
        ] {
            view.nodes.insert(
                node.into(),
                NodeState {
                    online,
                    unclean: false,
                },
            );
        }
        view.instances.insert(
            "pg".into(),
            ["node2", "node3"]
                .iter()
                .map(|n| Instance {
                    node: n.to_string(),
                    role: "Unpromoted".into(),
                })
                .collect(),
        );
        let positions: BTreeMap<String, Position> =
            [("node3".to_string(), "2:0/5000000".parse().unwrap())].into();
        // node1 offline, node4 online without an instance, node3 told,
        // node2 is this node; node5 only noted, and not in the view.
        let noted: Vec<String> = ["node1", "node4", "node5"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let s = said("node2", "pg", &noted, Some(&view), &positions);
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!(s["node1"], Said::Gone("node offline".into()));
        assert_eq!(s["node3"], Said::Position("2:0/5000000".parse().unwrap()));
        assert_eq!(s["node4"], Said::Gone("instance not running".into()));
        assert_eq!(
            s["node5"],
            Said::Gone("node offline".into()),
            "unknown to the cluster"
        );
        // Without crm_mon: the noted ones, waited for.
        let s = said("node2", "pg", &noted, None, &positions);
        assert_eq!(s["node1"], Said::Nothing);
        assert!(!s.contains_key("node3"));
    }

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
