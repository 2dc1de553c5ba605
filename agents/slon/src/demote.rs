//! demote: the origin hands its sets over by a planned move (see
//! `promotable` for how demote and promote split the work).

use crate::config::SlonConfig;
use crate::failover::{self, Listening};
use crate::origin::{self, Role, ORIGIN_SCORE};
use crate::promotable;
use crate::validate;
use ocf::attributes::{NodeAttributes, Score};
use ocf::{info, warning, Context, OcfError, Result, Status};
use std::time::Duration;

pub fn demote(cfg: &SlonConfig, ctx: &Context) -> Result<Status> {
    let deadline = &ctx.deadline;
    let checked = validate::check(cfg)?;
    let user = &checked.user;
    let db = cfg.instance.database(Some((user.uid, user.gid)))?;
    let attrs = ctx.attributes();
    let obs = match promotable::observe(&db, cfg, deadline) {
        Ok(obs) => obs,
        Err(e) => {
            // Its PostgreSQL is stopped (it crashed; Pacemaker demotes
            // before restarting it): nothing can be moved, and nothing is
            // written here meanwhile. A promote elsewhere moves the sets
            // once it answers again, or fails them over while it does not.
            let Listening::Nothing(how) = failover::listening(&db.config, Duration::from_secs(1))
            else {
                return Err(e);
            };
            warning!(
                "this node's PostgreSQL is down ({how}): nothing to move; demoted ({})",
                e.reason()
            );
            promotable::set_promoted(&attrs, false);
            return Ok(Status::Success);
        }
    };
    if obs.role != Role::Origin {
        info!(
            "node {} is not the origin ({}): nothing to move",
            obs.local,
            describe(obs.role)
        );
        promotable::set_promoted(&attrs, false);
        promotable::score_self(&attrs, &obs, deadline);
        return Ok(Status::Success);
    }
    // The origin whose instance Pacemaker did not promote (only started)
    // is left where it is: demoting an unpromoted instance changes nothing,
    // and a later promote elsewhere moves the sets from there.
    if !promotable::is_promoted(&attrs) {
        info!(
            "node {} is the origin, but this instance was not promoted: nothing to move",
            obs.local
        );
        return Ok(Status::Success);
    }
    let local = obs.local as u32;
    let named = ctx
        .env
        .promote_target
        .as_deref()
        .filter(|t| *t != ctx.node)
        .and_then(|t| promotable::node_id_of(&attrs, t, deadline).map(|id| (id, t.to_string())));
    let candidates: Vec<u32> = cfg
        .origin
        .admin_conninfo
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| *id != local)
        .collect();
    let target = match &named {
        Some((id, _)) => *id,
        None => {
            origin::best_subscriber(&obs.confirms, obs.local, &candidates).ok_or_else(|| {
                OcfError::generic(format!(
                    "node {local} is the origin and no subscriber has confirmed its events: there \
                 is nowhere to move the sets"
                ))
            })?
        }
    };
    let took = promotable::planned_move(cfg, user, Some(&db), local, target, deadline)?;
    promotable::set_promoted(&attrs, false);
    info!(
        "sets {:?} moved from node {local} to node {target} in {:.2} s",
        cfg.origin.sets,
        took.as_secs_f64()
    );
    let after = promotable::observe(&db, cfg, deadline)?;
    promotable::score_self(&attrs, &after, deadline);
    give_origin_score(&attrs, named.map(|(_, n)| n), target, deadline);
    Ok(Status::Success)
}

/// Who the origin is, as a non-origin node sees it.
pub fn describe(role: Role) -> String {
    match role {
        Role::Origin => "it is the origin".into(),
        Role::Subscriber { origin } => format!("node {origin} is"),
        Role::Unlisted { set } => format!("its catalog does not list set {set} yet"),
    }
}

/// The new origin gets the origin's score now, not at its next monitor.
fn give_origin_score(
    attrs: &NodeAttributes,
    name: Option<String>,
    target: u32,
    deadline: &ocf::Deadline,
) {
    let Some(node) = name.or_else(|| promotable::node_name_of(attrs, target, deadline)) else {
        return;
    };
    if let Err(e) = attrs.set_score(&node, Some(Score::Value(ORIGIN_SCORE)), "origin", deadline) {
        warning!("{}", e.reason());
    }
}
