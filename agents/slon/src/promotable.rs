//! What the promotable role's actions share: this node's view of the sets'
//! origin, the promotion scores, the Slony node id of each Pacemaker node,
//! and the planned move.
//!
//! How demote and promote split the work:
//! - **demote** (on the origin, which is alive) makes the planned move:
//!   LOCK SET, MOVE SET, WAIT FOR EVENT in one slonik run, bounded by the
//!   demote's timeout, to the node Pacemaker is about to promote
//!   (`notify_promote_uname`) or, without one, to the subscriber that has
//!   confirmed the most. It then gives the new origin the origin's score at
//!   once, so that a transition aborted between demote and promote
//!   promotes where the sets are.
//! - **promote** finds the sets already here after a planned move and only
//!   takes the origin's score. Otherwise the old origin is asked: if it
//!   answers, promote makes the planned move itself (a demote that did not
//!   run or did not move); if not, FAILOVER (through slonik, which picks
//!   the most advanced subscriber as provider) and DROP NODE of the old
//!   origin, only once its PostgreSQL is known stopped or its node known
//!   fenced (`failover`).

use crate::config::SlonConfig;
use crate::database::NodeDb;
use crate::origin::{self, Role};
use crate::slonik;
use ocf::attributes::NodeAttributes;
use ocf::{info, warning, Deadline, OcfError, OsUser, Result};
use std::time::{Duration, Instant};

/// This node's view of the resource's sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub local: i32,
    pub role: Role,
    /// (receiver, newest confirmed event of the origin).
    pub confirms: Vec<(i64, i64)>,
}

/// Whether Pacemaker promoted this instance (promote records it, demote,
/// start and stop forget it): a note in /run, gone with a reboot, as the
/// instance is.
pub fn is_promoted(attrs: &NodeAttributes) -> bool {
    attrs.note("promoted").is_some()
}

pub fn set_promoted(attrs: &NodeAttributes, promoted: bool) {
    attrs.keep_note("promoted", promoted.then_some("yes"));
}

/// One round trip: the local node id, the sets' origins, the confirms.
pub fn observe(db: &NodeDb, cfg: &SlonConfig, deadline: &Deadline) -> Result<Observed> {
    let cluster = &cfg.instance.cluster;
    let sql = format!(
        "{}; {}",
        origin::local_node_query(cluster),
        origin::query(cluster, &cfg.origin.sets)
    );
    let results = db
        .query(deadline, &sql)
        .map_err(|e| crate::start::lock_error(db, &cfg.instance, e))?;
    let local = pgclient::value(&results, 0, 0, 0)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| OcfError::generic("getLocalNodeId returned nothing"))?;
    from_results(&results[1..], cfg, local)
}

/// The statements of [`origin::query`] read, for `local`.
pub fn from_results(results: &[pgclient::Rows], cfg: &SlonConfig, local: i32) -> Result<Observed> {
    let rows = |i: usize| results.get(i).map(Vec::as_slice).unwrap_or_default();
    Ok(Observed {
        local,
        role: origin::role(&cfg.origin.sets, &origin::pairs(rows(0)), local)?,
        confirms: origin::pairs(rows(1)),
    })
}

/// Sets this node's promotion score from what it observed; forks only when
/// the score changes. A failure is logged: the monitor's answer is about
/// this node, and stays true.
pub fn score_self(attrs: &NodeAttributes, obs: &Observed, deadline: &Deadline) {
    let (score, basis) = match origin::score(obs.role, &obs.confirms, obs.local) {
        Some((s, basis)) => (Some(s), basis),
        None => (None, "nothing confirmed"),
    };
    if let Err(e) = attrs.set_score(&attrs.node, score, basis, deadline) {
        warning!("{}", e.reason());
    }
}

/// Publishes this node's Slony node id (`RESOURCE-node-id`) and notes the
/// ids other nodes published, so that a node whose attributes went with it
/// (fenced) is still known by name.
pub fn publish_node_id(attrs: &NodeAttributes, local: i32, deadline: &Deadline) {
    attrs.keep_note("node-id", Some(&local.to_string()));
    if let Err(e) = attrs.publish("node-id", Some(&local.to_string()), false, deadline) {
        warning!("{}", e.reason());
    }
    if let Ok(all) = attrs.everywhere("node-id", deadline) {
        for (node, id) in all {
            attrs.keep_note(&format!("node-{id}"), Some(&node));
        }
    }
}

/// Until this node has noted the Pacemaker node of every Slony node of
/// admin_conninfo, publishes its own id and notes the others' (two
/// forks); then nothing. Start notes what is published then, but the
/// instances start together and a late one is missed; and once a node is
/// fenced its attributes are gone with it, while promote needs its name to
/// see it fenced (without it, it refused to fail over a crashed origin).
pub fn learn_node_names(attrs: &NodeAttributes, cfg: &SlonConfig, local: i32, deadline: &Deadline) {
    let missing = cfg
        .origin
        .admin_conninfo
        .iter()
        .any(|(id, _)| attrs.note(&format!("node-{id}")).is_none());
    if missing {
        publish_node_id(attrs, local, deadline);
    }
}

/// The Pacemaker node that runs Slony node `id`, as published or noted.
pub fn node_name_of(attrs: &NodeAttributes, id: u32, deadline: &Deadline) -> Option<String> {
    if let Ok(all) = attrs.everywhere("node-id", deadline) {
        if let Some((node, _)) = all.iter().find(|(_, v)| v.trim() == id.to_string()) {
            return Some(node.clone());
        }
    }
    attrs.note(&format!("node-{id}"))
}

/// This node's Slony id as it published it (the attribute) or noted it,
/// for when its database no longer says (its schema is gone).
pub fn own_node_id(attrs: &NodeAttributes, cfg: &SlonConfig, deadline: &Deadline) -> Option<u32> {
    if let Some(id) = attrs.note("node-id").and_then(|v| v.trim().parse().ok()) {
        return Some(id);
    }
    node_id_of(attrs, &attrs.node, deadline).or_else(|| {
        cfg.origin
            .admin_conninfo
            .iter()
            .map(|(id, _)| *id)
            .find(|id| attrs.note(&format!("node-{id}")).as_deref() == Some(attrs.node.as_str()))
    })
}

/// The Slony node id Pacemaker node `uname` published.
pub fn node_id_of(attrs: &NodeAttributes, uname: &str, deadline: &Deadline) -> Option<u32> {
    attrs
        .everywhere("node-id", deadline)
        .ok()?
        .get(uname)
        .and_then(|v| v.trim().parse().ok())
}

/// LOCK SET, MOVE SET, WAIT FOR EVENT from `from` to `to` inside
/// `deadline`; returns how long slonik took (the longest writes can have
/// waited). A move that fails leaves the sets locked on the old origin
/// unless it went through: they are unlocked when `from`'s catalog still
/// names it the origin.
pub fn planned_move(
    cfg: &SlonConfig,
    user: &OsUser,
    db_of_from: Option<&NodeDb>,
    from: u32,
    to: u32,
    deadline: &Deadline,
) -> Result<Duration> {
    let sets = &cfg.origin.sets;
    let run_for = deadline.share(0.8);
    let timeout_s = run_for.remaining().as_secs().saturating_sub(1);
    info!(
        "moving sets {sets:?} from node {from} to node {to} (LOCK SET, MOVE SET, WAIT FOR EVENT)"
    );
    let started = Instant::now();
    match slonik::run(
        cfg,
        user,
        &slonik::move_sets(sets, from, to, timeout_s),
        &run_for,
    ) {
        Ok(()) => Ok(started.elapsed()),
        Err(e) => {
            let still_origin = db_of_from
                .and_then(|db| observe(db, cfg, deadline).ok())
                .is_some_and(|o| o.role == Role::Origin);
            if still_origin {
                match slonik::run(cfg, user, &slonik::unlock_sets(sets, from), deadline) {
                    Ok(()) => warning!("the move failed; sets {sets:?} unlocked on node {from}"),
                    Err(u) => warning!("the move failed and unlocking failed too: {}", u.reason()),
                }
            }
            Err(e.context(format!(
                "moving sets {sets:?} from node {from} to node {to}"
            )))
        }
    }
}

/// What another node says of a failed-over old origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedOver {
    /// For the log: which node said what.
    pub why: String,
    /// The origin of the sets as that node knows it, when not this node.
    pub origin: Option<u32>,
    /// That node still lists this node (failed, not dropped).
    pub listed: bool,
}

/// On a node whose own catalog names it the origin: whether another node
/// knows better. After a FAILOVER the old origin's catalog still names it
/// the origin, and it accepts writes, until its slon processes the
/// FAILOVER (docs/slony-facts.md); the other nodes say so at once: their
/// origin is another node, or they list this node as failed, or no longer
/// list it (DROP NODE). Nodes that do not answer are skipped: a node that
/// is down cannot know better than this one.
///
/// A node that refuses the agent's login (a wrong or missing password, no
/// pg_hba.conf entry) is not skipped silently: it is logged with the
/// server's reason, and when no other node says this one was failed over,
/// the check fails rather than answer "not failed over". Such a node runs,
/// and may be exactly the new origin that holds the FAILOVER: starting as
/// the origin then would let a returning old origin take writes beside the
/// new one. Unlike a node that is down, that does not mend itself, and the
/// operator can fix it (admin_conninfo, the slon user's ~/.pgpass).
pub fn failed_over(
    cfg: &SlonConfig,
    user: &OsUser,
    local: i32,
    deadline: &Deadline,
) -> Result<Option<FailedOver>> {
    let schema = cfg.instance.cluster.schema_sql();
    let Some(first) = cfg.origin.sets.first() else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT set_origin FROM {schema}.sl_set WHERE set_id = {first}; \
         SELECT no_failed FROM {schema}.sl_node WHERE no_id = {local}"
    );
    let mut refused = Vec::new();
    for (id, conninfo) in &cfg.origin.admin_conninfo {
        if *id as i32 == local {
            continue;
        }
        let Ok(db) = NodeDb::from_conninfo(conninfo, &user.name, Some((user.uid, user.gid))) else {
            continue;
        };
        let ask = Deadline::after(deadline.share(0.1).remaining().min(Duration::from_secs(3)));
        let results = match db.query(&ask, &sql) {
            Ok(results) => results,
            Err(e) if e.is_authentication() => {
                warning!(
                    "node {id} refuses the agent's login, so it cannot say whether node {local} \
                     was failed over: {}",
                    e.reason()
                );
                refused.push(format!("node {id}: {}", e.reason()));
                continue;
            }
            Err(_) => continue,
        };
        let origin = pgclient::value(&results, 0, 0, 0)
            .and_then(|o| o.parse::<u32>().ok())
            .filter(|o| *o as i32 != local);
        let failed = pgclient::value(&results, 1, 0, 0);
        let why = match (origin, failed) {
            (Some(o), _) => format!("node {id} names node {o} the origin of set {first}"),
            (None, None) => format!("node {id} no longer lists node {local} (DROP NODE)"),
            (None, Some("t")) => format!("node {id} lists node {local} as failed"),
            (None, Some(_)) => continue,
        };
        return Ok(Some(FailedOver {
            why,
            origin,
            listed: failed.is_some(),
        }));
    }
    unsure_after_refusals(local, &refused)
}

/// No node said this one was failed over: that stands only if no running
/// node refused to answer (see [`failed_over`]).
fn unsure_after_refusals(local: i32, refused: &[String]) -> Result<Option<FailedOver>> {
    if refused.is_empty() {
        return Ok(None);
    }
    Err(OcfError::generic(format!(
        "cannot tell whether node {local} was failed over: {}; give the slon user's password \
         for those nodes (its ~/.pgpass or admin_conninfo)",
        refused.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_refusing_the_login_leaves_the_failover_check_unsure() {
        assert_eq!(unsure_after_refusals(1, &[]).unwrap(), None);
        let e = unsure_after_refusals(
            1,
            &["node 2: cannot connect: FATAL: password authentication failed".into()],
        )
        .unwrap_err();
        assert_eq!(e.status(), ocf::Status::ErrGeneric);
        assert!(
            e.reason().contains("whether node 1 was failed over")
                && e.reason()
                    .contains("node 2: cannot connect: FATAL: password"),
            "{}",
            e.reason()
        );
    }
}
