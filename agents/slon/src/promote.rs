//! promote: this node becomes the origin of the sets, by a planned move
//! when the old origin answers, by FAILOVER only when it is known stopped
//! or fenced (see `promotable` for how demote and promote split the work).

use crate::config::SlonConfig;
use crate::database;
use crate::failover::{self, Listening, OldOrigin};
use crate::origin::Role;
use crate::promotable;
use crate::slonik;
use crate::validate;
use ocf::{info, warning, Context, Deadline, OcfError, OsUser, Result, Status};
use std::time::{Duration, Instant};

pub fn promote(cfg: &SlonConfig, ctx: &Context) -> Result<Status> {
    let deadline = &ctx.deadline;
    let checked = validate::check(cfg)?;
    let user = &checked.user;
    let db = cfg.instance.database(Some((user.uid, user.gid)))?;
    let attrs = ctx.attributes();
    let obs = promotable::observe(&db, cfg, deadline)?;
    promotable::publish_node_id(&attrs, obs.local, deadline);
    let local = obs.local as u32;
    if let Role::Unlisted { set } = obs.role {
        return Err(OcfError::generic(format!(
            "node {local} cannot become the origin: its catalog does not list set {set} (its \
             slon has not processed the set's creation, or it is not subscribed)",
            local = obs.local
        )));
    }
    let Role::Subscriber { origin } = obs.role else {
        info!("node {local} is the origin of sets {:?}", cfg.origin.sets);
        promotable::score_self(&attrs, &obs, deadline);
        promotable::set_promoted(&attrs, true);
        return Ok(Status::Success);
    };
    let origin = origin as u32;
    match old_origin(cfg, user, &attrs, origin, deadline) {
        (OldOrigin::Answers, Some(old_db)) => {
            let took = promotable::planned_move(cfg, user, Some(&old_db), origin, local, deadline)?;
            info!(
                "sets {:?} moved from node {origin} to node {local} in {:.2} s",
                cfg.origin.sets,
                took.as_secs_f64()
            );
        }
        (old, _) => {
            let why = failover::may_fail_over(&old).map_err(|why| {
                OcfError::generic(format!(
                    "node {origin} is still the origin of sets {:?} and cannot be failed over: \
                     {why}",
                    cfg.origin.sets
                ))
            })?;
            warning!("failing node {origin} over to node {local}: {why}");
            let started = Instant::now();
            slonik::run(cfg, user, &slonik::failover(origin, local), deadline)?;
            info!(
                "FAILOVER of node {origin} to node {local} and DROP NODE {origin} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let after = promotable::observe(&db, cfg, deadline)?;
    if after.role != Role::Origin {
        return Err(OcfError::generic(format!(
            "node {local} is still not the origin of sets {:?} after the move",
            cfg.origin.sets
        )));
    }
    promotable::score_self(&attrs, &after, deadline);
    promotable::set_promoted(&attrs, true);
    Ok(Status::Success)
}

/// What is known of the old origin: it answers (with a connection to it
/// for the move), its PostgreSQL is stopped, its node is fenced, or
/// nothing is known.
fn old_origin(
    cfg: &SlonConfig,
    user: &OsUser,
    attrs: &ocf::attributes::NodeAttributes,
    origin: u32,
    deadline: &Deadline,
) -> (OldOrigin, Option<database::NodeDb>) {
    let Some((_, conninfo)) = cfg
        .origin
        .admin_conninfo
        .iter()
        .find(|(id, _)| *id == origin)
    else {
        return (
            OldOrigin::Unknown(format!(
                "admin_conninfo gives no conninfo for node {origin}"
            )),
            None,
        );
    };
    let db = match database::NodeDb::from_conninfo(conninfo, &user.name, Some((user.uid, user.gid)))
    {
        Ok(db) => db,
        Err(e) => return (OldOrigin::Unknown(e.reason().to_string()), None),
    };
    let ask = Deadline::after(deadline.share(0.15).remaining().min(Duration::from_secs(5)));
    let asked = db.query(&ask, "SELECT 1");
    if asked.is_ok() {
        return (OldOrigin::Answers, Some(db));
    }
    let unanswered = asked
        .err()
        .map(|e| e.reason().to_string())
        .unwrap_or_default();
    let state = match failover::listening(&db.config, Duration::from_secs(2)) {
        Listening::Nothing(how) => OldOrigin::Stopped(how),
        Listening::Something => OldOrigin::Unknown(format!(
            "something accepts connections there but does not answer: {unanswered}"
        )),
        Listening::Unknown(why) => OldOrigin::Unknown(format!("{unanswered}; {why}")),
    };
    // Not known stopped: maybe Pacemaker fenced its node.
    if let OldOrigin::Unknown(_) = state {
        if let Some(node) = fenced(attrs, origin, deadline) {
            return (OldOrigin::Fenced(node), None);
        }
    }
    (state, None)
}

/// The Pacemaker node of Slony node `origin`, when crm_mon shows it
/// offline and clean.
fn fenced(
    attrs: &ocf::attributes::NodeAttributes,
    origin: u32,
    deadline: &Deadline,
) -> Option<String> {
    let node = promotable::node_name_of(attrs, origin, deadline)?;
    let mut cmd = std::process::Command::new("/usr/sbin/crm_mon");
    cmd.args(["--output-as=xml", "--one-shot"]);
    let out = ocf::command::run(cmd, &deadline.share(0.2)).ok()?;
    failover::offline_and_clean(&out.stdout, &node)?.then_some(node)
}
