//! monitor: the truth about this instance on this node, cheaply.
//!
//! The steady-state path reads postmaster.pid and a few /proc entries and
//! makes one connection with one query; it forks nothing.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::config::SyncPolicy;
use crate::postmaster::{self, State};
use crate::replication::{self, Replication};
use crate::sql::{self, ServerState};
use crate::{election, rebuild, rejoin, slots};
use nix::unistd::{Gid, Uid};
use ocf::attributes::Score;
use ocf::crm_mon::ClusterView;
use ocf::quorum::{Quorum, Source};
use ocf::{debug, info, warning, Deadline, OcfEnv, OcfError, Result, Status};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// What a monitor found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    NotRunning,
    Running(ServerState),
}

pub fn monitor(cfg: &PgConfig, deadline: &Deadline) -> Result<Observed> {
    match postmaster::observe(&cfg.pgdata)? {
        State::Stopped { stale } => {
            if let Some(why) = stale {
                debug!("{why}");
            }
            Ok(Observed::NotRunning)
        }
        State::Orphaned { members: procs, .. } => Err(OcfError::generic(format!(
            "processes of {} run without a postmaster (PIDs {})",
            cfg.pgdata.display(),
            ocf::service::pid_list(&procs)
        ))),
        State::Running(pm) => {
            // As the postmaster's own uid and gid: no user lookup, which
            // could fail (an LDAP outage) and read as "not installed here".
            let as_user = (Uid::from_raw(pm.uid), Gid::from_raw(pm.gid));
            let state = sql::server_state(cfg, as_user, deadline)
                .map_err(|e| e.context(format!("postmaster {} runs, but", pm.pid)))?;
            Ok(Observed::Running(state))
        }
    }
}

/// The monitor of a promotable clone's instance: 8 for a primary, 0 for a
/// standby, 7 when nothing of it runs, 9 for a primary that a newer
/// timeline elsewhere made stale. On the way it does a primary's duties
/// (the standbys' promotion scores, the synchronous fallback) and publishes
/// the node's timeline, each only when something changed.
pub fn monitor_promotable(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Result<Status> {
    let pm = match postmaster::observe(&cfg.pgdata)? {
        State::Stopped { stale } => {
            if let Some(why) = stale {
                debug!("{why}");
            }
            return Ok(Status::NotRunning);
        }
        State::Orphaned { members: procs, .. } => {
            return Err(OcfError::generic(format!(
                "processes of {} run without a postmaster (PIDs {})",
                cfg.pgdata.display(),
                ocf::service::pid_list(&procs)
            )))
        }
        State::Running(pm) => pm,
    };
    let as_user = (Uid::from_raw(pm.uid), Gid::from_raw(pm.gid));
    let repl = replication::observe(cfg, as_user, deadline)
        .map_err(|e| e.context(format!("postmaster {} runs, but", pm.pid)))?;
    let cluster = Cluster::new(env);
    // What the cluster is told matters less than what is true here: a
    // failed publication is logged, and the monitor still tells the truth.
    if let Err(e) = cluster.publish_timeline(repl.timeline(), deadline) {
        warning!("{}", e.reason());
    }
    if repl.in_recovery {
        if cfg.replication.slots {
            if let Err(e) = slots::keep(cfg, &cluster, &repl, None, as_user, deadline) {
                warning!("{}", e.reason());
            }
        }
        return standby_health(cfg, &cluster, &repl, as_user, deadline);
    }
    // Held for lack of quorum, a standby may still stream from it (one
    // whose connection outlived the partition): the question is asked
    // then too.
    if election::holds_for_quorum(&repl.sync_names)
        || !repl.standbys.iter().any(|s| s.is_streaming())
    {
        // No standby follows this primary: maybe another primary took over
        // while this one was cut off. Only then is it worth a fork.
        let timelines = cluster.timelines(deadline).unwrap_or_else(|e| {
            warning!("{}", e.reason());
            Default::default()
        });
        if let Some((node, newer)) =
            election::newer_timeline(&cluster.node, repl.timeline(), &timelines)
        {
            // Its score first: Pacemaker recovers a failed primary by
            // demoting it and promoting the node with the highest score,
            // which would otherwise be this one again.
            if let Err(e) = cluster.clear_own_score(deadline) {
                warning!("{}", e.reason());
            }
            return Err(OcfError::new(
                Status::FailedPromoted,
                format!(
                    "this primary is on timeline {}, but {node} is on timeline {newer}: it is a \
                     stale primary from before a failover",
                    repl.timeline()
                ),
            ));
        }
    }
    let duties = primary_duties(cfg, &cluster, repl, as_user, deadline);
    for failure in duties.failures {
        warning!("{}", failure.reason());
    }
    if let Some(why) = duties.failed {
        return Err(OcfError::generic(why));
    }
    match duties.blocked {
        Some(why) => Err(OcfError::new(Status::DegradedPromoted, why)),
        None => Ok(Status::RunningPromoted),
    }
}

/// The note of when a monitor first saw this standby's WAL receiver not
/// streaming; start removes it.
pub const SILENT_SINCE: &str = "receiver-silent-since";

/// A standby's monitor: 0 while its WAL receiver streams or has been
/// silent within max_receiver_silence; beyond, degraded (190: Pacemaker
/// shows it and leaves the standby running: a failure would restart every
/// standby exactly when their primary died and one must be promoted). The
/// cost in steady state: one stat of the note.
fn standby_health(
    cfg: &PgConfig,
    cluster: &Cluster,
    repl: &Replication,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Result<Status> {
    let now = SystemTime::now();
    let noted = cluster.note(SILENT_SINCE);
    if repl.is_streaming() {
        if noted.is_some() {
            cluster.keep_note(SILENT_SINCE, None);
            info!("the WAL receiver streams again");
        }
        // A position published while no primary ran is no longer true.
        if let Err(e) = cluster.withdraw_position(deadline) {
            warning!("{}", e.reason());
        }
        cluster.keep_note(ELECTION, None);
        return Ok(Status::Success);
    }
    // Not streaming: maybe no primary runs anywhere. Only then is it worth
    // a fork: publish this node's position for a promotion to compare, and
    // elect if nobody can be promoted. Never changes the answer.
    orphaned(cfg, cluster, repl, &deadline.share(0.5));
    let since = noted
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    if since.is_none() {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        cluster.keep_note(SILENT_SINCE, Some(&secs.as_secs().to_string()));
    }
    let silent = match election::receiver(false, since, now, cfg.replication.max_receiver_silence) {
        election::Receiver::TooLong(silent) => silent,
        _ => return Ok(Status::Success),
    };
    let host = &cfg.replication.primary_host;
    let receiver = repl.receiver.as_deref().unwrap_or("not running");
    // Pacemaker keeps 128 characters of the reason: short words.
    let head = format!("WAL receiver silent for {}s ({receiver})", silent.as_secs());
    // Is there a primary it should be following? Asked only in this state.
    let asking = Deadline::after(
        deadline
            .remaining()
            .mul_f64(0.5)
            .min(Duration::from_secs(3)),
    );
    let why = match rejoin::ask_primary(cfg, as_user, &asking) {
        Ok(Some(primary)) => {
            // rebuild=auto: a standby the primary left behind is not
            // waited for; its failure makes Pacemaker restart it, and
            // start rebuilds it.
            let end = repl.replayed.unwrap_or(repl.position.lsn);
            if let Some(gone) =
                rebuild::wal_gone(cfg, as_user, &cluster.node, &primary, end, &asking)
            {
                return Err(OcfError::generic(format!("{gone}: to be rebuilt")));
            }
            // Its slot may be missing there (a node new to the cluster
            // that this primary did not know yet).
            if cfg.replication.slots {
                if let Err(e) = rejoin::primary_client(cfg).and_then(|primary| {
                    slots::ensure_on_primary(primary, as_user, &cluster.node, &asking)
                }) {
                    warning!("{}", e.reason());
                }
            }
            // The primary gives no score to a node that does not stream
            // from it; this node takes its own back too, in case the
            // primary could not.
            if let Err(e) = cluster.set_score(&cluster.node, None, "silent", deadline) {
                warning!("{}", e.reason());
            }
            format!("{head} while a primary answers at {host}: no candidate until it streams")
        }
        Ok(None) => format!("{head}: no primary answers at {host}; still a candidate"),
        Err(e) => format!("{head}: {}", e.reason()),
    };
    Err(OcfError::new(Status::Degraded, why))
}

/// The note of the last election outcome, so that it is logged once.
const ELECTION: &str = "election";

/// A standby whose WAL receiver does not stream, when Pacemaker shows no
/// primary: it publishes its position (what a promotion compares, should
/// its pre-promote notification have failed), and when nobody holds a
/// promotion score (the standbys restarted, clearing theirs, and the
/// primary failed before its next monitor scored them again) the standbys
/// elect one among themselves (see [`election::elect`]).
fn orphaned(cfg: &PgConfig, cluster: &Cluster, repl: &Replication, deadline: &Deadline) {
    let view = match ClusterView::query(deadline) {
        Ok(view) => view,
        Err(e) => {
            debug!("no election: {}", e.reason());
            return;
        }
    };
    let resource = cluster.resource.as_str();
    let primary = view
        .instances
        .get(resource)
        .into_iter()
        .flatten()
        .find(|i| matches!(i.role.as_str(), "Promoted" | "Master"))
        .map(|i| i.node.clone());
    if primary.is_some() || !view.quorate {
        return;
    }
    if let Err(e) = cluster.publish_position(Some(repl.position), deadline) {
        warning!("{}", e.reason());
        return;
    }
    let outcome = (|| -> Result<election::Election> {
        let scored: Vec<String> = cluster
            .promotion_scores(deadline)?
            .into_iter()
            .filter(|(_, v)| v.parse::<Score>().is_ok())
            .map(|(node, _)| node)
            .collect();
        let positions = cluster.positions(deadline)?;
        let mut seen = election::Orphaned {
            quorate: view.quorate,
            primary: None,
            scored,
            ..Default::default()
        };
        for node in view.nodes.keys().filter(|n| **n != cluster.node) {
            if view.is_online(node) && view.runs_on(resource, node) {
                let said = match positions.get(node) {
                    Some(p) => election::Said::Position(*p),
                    None => election::Said::Nothing,
                };
                seen.candidates.insert(node.clone(), said);
            } else {
                seen.uncompared.push(node.clone());
            }
        }
        if seen.scored.is_empty() {
            seen.primary_was_synchronous =
                election::last_primary_sync(&cluster.primary_sync_records(deadline)?);
        }
        Ok(election::elect(
            &cluster.node,
            repl.position,
            cfg.replication.sync,
            &seen,
        ))
    })();
    let said = match outcome {
        Ok(election::Election::Me(how)) => {
            let set = ocf::attributes::set_promotion_score(
                resource,
                &cluster.node,
                Some(election::ELECTED),
                deadline,
            );
            cluster.forget_score(&cluster.node);
            match set {
                Ok(()) => format!("{how}: this node gives itself a promotion score"),
                Err(e) => format!("{how}, but: {}", e.reason()),
            }
        }
        Ok(election::Election::Refused(why)) => format!("no node elected: {why}"),
        Ok(election::Election::Other(how)) => format!("{how}: it elects itself"),
        Ok(election::Election::Wait(why) | election::Election::NotNeeded(why)) => {
            debug!("no election: {why}");
            return;
        }
        Err(e) => format!("no election: {}", e.reason()),
    };
    if cluster.note(ELECTION).as_deref() != Some(said.as_str()) {
        warning!("{said}");
        cluster.keep_note(ELECTION, Some(&said));
    }
}

fn primary_duties(
    cfg: &PgConfig,
    cluster: &Cluster,
    repl: Replication,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Duties {
    let mut failures = Vec::new();
    // First, so that a primary cut off acknowledges as little as possible.
    let held_now = election::holds_for_quorum(&repl.sync_names);
    let quorum = partition_quorum(cluster, deadline);
    let mut hold = election::hold_commits(&quorum, held_now);
    let mut still_held = match &quorum {
        Quorum::Unknown(why) if hold => Some(format!("quorum unknown ({why}): commits stay held")),
        _ => None,
    };
    if held_now && !hold {
        // Quorum is back, which a healed partition gives to both sides:
        // the majority may have promoted another primary meanwhile, which
        // Pacemaker has yet to reconcile with this one. One crm_mon, on
        // this transition only.
        if let Some(why) = other_primary(
            ClusterView::query(&deadline.share(0.3)),
            &cluster.resource,
            &cluster.node,
        ) {
            hold = true;
            still_held = Some(why);
        }
    }
    if repl
        .checkpoint_timeline
        .is_some_and(|t| t < repl.timeline())
    {
        // The promotion's own CHECKPOINT did not finish: until one on this
        // timeline exists, pg_rewind of a former primary fails. CHECKPOINT
        // makes the pending one immediate; waiting for it is not the
        // monitor's business, the checkpointer finishes it regardless.
        let nudge = Deadline::after(
            deadline
                .remaining()
                .mul_f64(0.2)
                .min(Duration::from_secs(1)),
        );
        info!(
            "no checkpoint on timeline {} yet: requesting one",
            repl.timeline()
        );
        if let Err(e) = pgclient::query(sql::local(cfg), Some(as_user), &nudge, "CHECKPOINT") {
            debug!("CHECKPOINT: {}", e.reason());
        }
    }
    // Which walsenders are the cluster's nodes: from a cached node list,
    // asked again when a walsender's name is missing from it.
    let named = |nodes: &[String]| {
        repl.standbys
            .iter()
            .all(|s| s.name.is_empty() || nodes.contains(&s.name))
    };
    let peers = match cluster.cluster_nodes(named, deadline) {
        Ok(nodes) => Some(election::peers(&nodes, &cluster.node)),
        Err(e) => {
            failures.push(e.context("the cluster's nodes are unknown; any walsender counts"));
            None
        }
    };
    // Before waiting for standbys: a standby whose primary changed streams
    // only once its slot exists here.
    if let (true, Some(peers)) = (cfg.replication.slots, &peers) {
        failures.extend(slots::keep(cfg, cluster, &repl, Some(peers), as_user, deadline).err());
    }
    let repl = if hold {
        repl
    } else {
        await_standbys_after_promotion(cfg, cluster, repl, peers.as_deref(), as_user, deadline)
    };
    let standbys = election::cluster_standbys(&repl.standbys, peers.as_deref());
    // One writer of synchronous_standby_names: the policy's list, or the
    // hold while this partition has no quorum.
    let wanted = if hold {
        election::no_quorum_sync_names()
    } else {
        election::wanted_sync_names(cfg.replication.sync, &standbys, peers.as_deref())
    };
    let mut blocked = None;
    let mut failed = None;
    // What synchronous_standby_names is once this monitor is done.
    let mut in_effect = repl.sync_names.clone();
    match election::sync_change(&repl.sync_names, &wanted) {
        election::SyncChange::None => {}
        // Commits first: a lost synchronous standby blocks them until this
        // runs.
        election::SyncChange::Wait => match set_sync_names(cfg, as_user, &wanted, deadline) {
            Ok(()) if hold => {
                in_effect = wanted.clone();
                warning!(
                    "this node's partition has no quorum: no commit is acknowledged from now on \
                     (synchronous_standby_names names no node), until it regains quorum or \
                     this primary is demoted"
                )
            }
            Ok(()) => {
                in_effect = wanted.clone();
                if held_now {
                    info!("this node's partition has quorum again: commits wait for a standby");
                } else {
                    info!("a standby streams: commits wait for it again (synchronous)")
                }
            }
            Err(e) => failures.push(e),
        },
        // Held for quorum under sync=off: the policy never waits for a
        // standby, so no score is at stake.
        election::SyncChange::Release if cfg.replication.sync == SyncPolicy::Off => {
            match set_sync_names(cfg, as_user, &wanted, deadline) {
                Ok(()) => {
                    in_effect = wanted.clone();
                    info!(
                        "this node's partition has quorum again: commits are acknowledged again \
                         (sync=off)"
                    );
                }
                Err(e) => failures.push(e),
            }
        }
        // Released commits are held by this primary alone: no other node
        // may hold a promotion score from then on, so every score goes
        // first, confirmed by attrd. Until then commits keep waiting.
        election::SyncChange::Release => {
            if let Err(why) = may_release(&quorum) {
                blocked = Some(format!("no standby streams, commits wait: {why}"));
            } else {
                // The record that outlives this node says "async" before any
                // commit is released: with no primary left, the standbys then
                // elect nobody.
                let removed = cluster
                    .remove_scores_except(&[&cluster.node], deadline)
                    .and_then(|removed| {
                        cluster
                            .publish_primary_sync(repl.timeline(), false, deadline)
                            .map(|()| removed)
                    });
                match removed {
                    Ok(removed) => match set_sync_names(cfg, as_user, &wanted, deadline) {
                        Ok(()) => {
                            in_effect = wanted.clone();
                            if held_now {
                                info!("this node's partition has quorum again");
                            }
                            warning!(
                                "no standby streams: removed the promotion scores of {}; commits \
                             no longer wait for a standby (asynchronous)",
                                if removed.is_empty() {
                                    "nobody".to_string()
                                } else {
                                    removed.join(", ")
                                }
                            )
                        }
                        Err(e) => failures.push(e),
                    },
                    Err(e) => {
                        blocked = Some(format!(
                            "no standby streams, commits wait: the other nodes' promotion scores \
                         could not be removed ({})",
                            e.reason()
                        ))
                    }
                }
            }
        }
    }
    let mode = if wanted.is_empty() && blocked.is_none() {
        "async"
    } else {
        "sync"
    };
    failures.extend(cluster.publish_sync(Some(mode), deadline).err());
    if election::holds_for_quorum(&in_effect) {
        // Nothing is acknowledged while commits are held, so whoever held
        // every acknowledged commit before still does: the record of
        // whether commits waited for a standby, and the scores, stay as
        // they were. Rewritten now, they would claim a standby holds
        // commits that were acknowledged asynchronously before the hold
        // (the record), or take the synchronous standby's score away
        // (strict: no walsender is "sync" under the hold).
        return Duties {
            failures,
            blocked: Some(still_held.unwrap_or_else(|| {
                "no quorum in this partition: commits wait until it regains quorum".to_string()
            })),
            failed,
        };
    }
    if hold {
        failed = Some(
            "this node's partition has no quorum and commits could not be held: a primary here \
             would acknowledge commits the majority may never see"
                .to_string(),
        );
    }
    // Written on change only: steady state forks nothing. "sync" only
    // once commits do wait (set above).
    failures.extend(
        cluster
            .publish_primary_sync(repl.timeline(), !in_effect.is_empty(), deadline)
            .err(),
    );
    // The scores this primary means: its own, one per cluster node that
    // streams from it (for that connection), none for anybody else.
    let mut wanted: BTreeMap<String, (Option<Score>, String)> = BTreeMap::new();
    for s in &standbys {
        let r = &cfg.replication;
        let score = election::score_of(repl.position.lsn, s, r.sync, r.max_lag);
        // A node seen twice (a reconnection while the old walsender lingers):
        // the connection that earns the better score.
        let entry = wanted
            .entry(s.name.clone())
            .or_insert((score, s.connection()));
        if score > entry.0 {
            *entry = (score, s.connection());
        }
    }
    wanted.insert(
        cluster.node.clone(),
        (Some(election::PRIMARY_SCORE), "primary".to_string()),
    );
    failures.extend(cluster.give_scores(&wanted, CHECK_SCORES_EVERY, deadline));
    Duties {
        failures,
        blocked,
        failed,
    }
}

/// The note of when promote made this node the primary.
pub const PROMOTED_AT: &str = "promoted-at";

/// How long after a promotion commits keep waiting for a standby to
/// connect before the primary lets them go asynchronous: the floating
/// address moves only after promote, and a WAL receiver retries every 5 s.
pub const PROMOTION_GRACE: Duration = Duration::from_secs(10);

/// Right after a promotion no standby streams yet, and the monitor that
/// follows promote would release commits (after removing every other
/// score): the standbys, reconnecting seconds later, would have no score
/// until the next monitor, and a failure of this primary meanwhile would
/// find nobody to promote. So within PROMOTION_GRACE of the promotion, the
/// monitor waits (inside its own timeout) for a cluster node to stream,
/// commits waiting meanwhile as promote left them.
fn await_standbys_after_promotion(
    cfg: &PgConfig,
    cluster: &Cluster,
    repl: Replication,
    peers: Option<&[String]>,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Replication {
    // Not merely connected: streaming with a flushed position, so that it
    // earns its score in this very monitor (a score deleted now and given
    // only at the next monitor would leave nobody to promote meanwhile).
    let streams = |r: &Replication| {
        election::cluster_standbys(&r.standbys, peers)
            .iter()
            .any(|s| {
                let c = &cfg.replication;
                election::score_of(r.position.lsn, s, c.sync, c.max_lag).is_some()
            })
    };
    if repl.sync_names.is_empty() || streams(&repl) {
        return repl;
    }
    let since = cluster
        .note(PROMOTED_AT)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .and_then(|at| SystemTime::now().duration_since(at).ok());
    let Some(left) = since.and_then(|since| PROMOTION_GRACE.checked_sub(since)) else {
        return repl;
    };
    let waiting = Deadline::after(left.min(deadline.remaining().mul_f64(0.5)));
    let mut last = repl;
    let found = waiting.wait_for("a standby to stream", Duration::from_millis(200), || {
        if let Ok(r) = replication::observe(cfg, as_user, deadline) {
            last = r;
        }
        Ok(streams(&last).then_some(()))
    });
    if found.is_ok() {
        info!("a standby streams from the new primary");
    }
    last
}

/// Whether commits may stop waiting for a standby, as far as the cluster
/// goes: only while this node's partition has quorum. A primary cut off
/// from the majority (with no standby on its side, the case in a 3-node
/// cluster) would otherwise acknowledge commits that only it holds, for as
/// long as Pacemaker leaves it running there (`no-quorum-policy=freeze`,
/// a fence that does not come, a stop that hangs), while the majority may
/// promote a standby that lacks them.
fn may_release(quorum: &Quorum) -> std::result::Result<(), String> {
    match quorum {
        Quorum::Quorate => Ok(()),
        Quorum::NotQuorate => Err(
            "this node's partition has no quorum, and the majority may promote a \
                      standby"
                .to_string(),
        ),
        Quorum::Unknown(why) => Err(format!("quorum unknown ({why})")),
    }
}

/// Why commits held for lack of quorum must stay held although quorum is
/// back: another node runs a primary of this resource (the majority
/// promoted one while this node was cut off), or the cluster cannot tell.
fn other_primary(view: Result<ClusterView>, resource: &str, me: &str) -> Option<String> {
    let view = match view {
        Ok(view) => view,
        Err(e) => {
            return Some(format!(
                "quorum is back, but whether another primary runs is unknown ({}): commits \
                 stay held",
                e.reason()
            ))
        }
    };
    view.instances
        .get(resource)
        .into_iter()
        .flatten()
        .find(|i| i.node != me && matches!(i.role.as_str(), "Promoted" | "Master"))
        .map(|i| {
            format!(
                "quorum is back, but {} is primary too: commits stay held until one primary \
                 remains",
                i.node
            )
        })
}

/// The note of why corosync's quorum API did not answer, so that falling
/// back to crm_mon is said once.
const QUORUM_FALLBACK: &str = "quorum-fallback";

/// Whether this node's partition has quorum: from corosync's quorum API
/// on every monitor of a primary (no fork: one IPC round trip), from
/// crm_mon (a fork) only where that API cannot answer (said once in the
/// log, and again when the reason changes).
pub fn partition_quorum(cluster: &Cluster, deadline: &Deadline) -> Quorum {
    let asking = Deadline::after(
        deadline
            .remaining()
            .mul_f64(0.3)
            .min(Duration::from_secs(5)),
    );
    let (quorum, source) = ocf::quorum::ask_or_crm_mon(&asking);
    let fallback = match &source {
        Source::Corosync => None,
        Source::CrmMon(why) => Some(why.as_str()),
    };
    if cluster.note(QUORUM_FALLBACK).as_deref() != fallback {
        match fallback {
            Some(why) => warning!(
                "corosync's quorum API does not answer ({why}): quorum is asked of crm_mon \
                 instead, a fork on every monitor of the primary"
            ),
            None => info!("corosync's quorum API answers again"),
        }
        cluster.keep_note(QUORUM_FALLBACK, fallback);
    }
    if let Quorum::Unknown(why) = &quorum {
        debug!("quorum unknown: {why}");
    }
    quorum
}

/// What a primary's duties left to say.
struct Duties {
    /// Logged; the monitor still tells the truth.
    failures: Vec<OcfError>,
    /// Why commits keep waiting for a standby that is not there, or for
    /// quorum: the monitor's answer (degraded).
    blocked: Option<String>,
    /// Why this primary must not go on (commits could not be held without
    /// quorum): the monitor fails.
    failed: Option<String>,
}

/// How old the primary's record of the scores it gave may get before one
/// attrd_updater query checks it against attrd. Every change the primary
/// sees (a standby connecting, disconnecting, moving a tier) is written at
/// once without it; the query catches what it cannot see: a Pacemaker
/// restart or a node that left and rejoined the cluster dropping transient
/// attributes, or any other writer.
pub const CHECK_SCORES_EVERY: Duration = Duration::from_secs(60);

/// Sets synchronous_standby_names through ALTER SYSTEM (postgresql.auto.conf,
/// which overrides postgresql.conf) and reloads: it takes effect at once,
/// releasing commits that wait.
pub fn set_sync_names(
    cfg: &PgConfig,
    as_user: (Uid, Gid),
    names: &str,
    deadline: &Deadline,
) -> Result<()> {
    let alter = format!(
        "ALTER SYSTEM SET synchronous_standby_names = '{}'",
        names.replace('\'', "''")
    );
    pgclient::query_each(
        sql::local(cfg),
        Some(as_user),
        deadline,
        &[&alter, "SELECT pg_reload_conf()"],
    )
    .map(drop)
    .map_err(|e| e.context("setting synchronous_standby_names").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_released_only_with_quorum_known() {
        assert_eq!(may_release(&Quorum::Quorate), Ok(()));
        let without = may_release(&Quorum::NotQuorate).unwrap_err();
        assert!(without.contains("no quorum"), "{without}");
        let unknown = may_release(&Quorum::Unknown("crm_mon: not connected".into())).unwrap_err();
        assert!(unknown.contains("quorum unknown"), "{unknown}");
    }

    #[test]
    fn a_hold_outlives_quorum_while_another_primary_runs() {
        use ocf::crm_mon::Instance;
        let view = |roles: &[(&str, &str)]| {
            let mut v = ClusterView {
                quorate: true,
                ..Default::default()
            };
            v.instances.insert(
                "pg".to_string(),
                roles
                    .iter()
                    .map(|(node, role)| Instance {
                        node: node.to_string(),
                        role: role.to_string(),
                    })
                    .collect(),
            );
            Ok(v)
        };
        assert_eq!(
            other_primary(
                view(&[("node1", "Promoted"), ("node2", "Unpromoted")]),
                "pg",
                "node1"
            ),
            None
        );
        let two = other_primary(
            view(&[("node1", "Promoted"), ("node3", "Promoted")]),
            "pg",
            "node1",
        )
        .unwrap();
        assert!(two.contains("node3 is primary too"), "{two}");
        assert!(other_primary(view(&[("node3", "Master")]), "pg", "node1").is_some());
        let unknown = other_primary(
            Err(OcfError::generic("crm_mon: not connected")),
            "pg",
            "node1",
        );
        assert!(unknown.unwrap().contains("unknown"));
    }
}
