//! Physical replication slots, one per cluster node (`replication_slots`):
//! a standby that was down for a while finds on the primary the WAL it
//! needs, instead of needing a rebuild.
//!
//! Who keeps which slot:
//! - a standby's start creates its own on the primary it is about to
//!   follow, and streams through it (`primary_slot_name`);
//! - the primary keeps one for every other node of the cluster, so that a
//!   standby whose primary changed under it (a failover) finds its slot;
//! - a standby keeps its peers' slots too (PostgreSQL 15 creates and
//!   advances physical slots during recovery), advanced as it replays, so
//!   that once promoted it already retains WAL for the others;
//! - whoever keeps them drops the slots of nodes that left the cluster.

use crate::cluster::Cluster;
use crate::config::PgConfig;
use crate::replication::Replication;
use crate::sql;
use crate::wal::Lsn;
use nix::unistd::{Gid, Uid};
use ocf::{info, warning, Deadline, OcfError, Result};
use std::collections::BTreeMap;

/// The slot of a node whose name a slot name can hold as it is.
const PREFIX: &str = "tusk_";
/// The slot of any other node name: never equal to a [`PREFIX`] name,
/// whose fifth character is `_`.
const MAPPED_PREFIX: &str = "tuskx_";
/// PostgreSQL's NAMEDATALEN - 1.
const MAX_LEN: usize = 63;
/// How far behind replay a peer's slot on a standby may fall before the
/// standby's monitor advances it: one WAL segment, so that steady state
/// costs no statement.
const ADVANCE_EVERY: u64 = 16 * 1024 * 1024;

/// The slot of `node`. Slot names hold only `[a-z0-9_]` and 63 bytes: a
/// name that fits is used as it is after `tusk_`; any other is lowered,
/// its other characters become `_`, and a hash of the whole name follows,
/// so that `Node-1` and `node_1` get different slots.
pub fn slot_name(node: &str) -> String {
    let fits = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if !node.is_empty() && node.chars().all(fits) && PREFIX.len() + node.len() <= MAX_LEN {
        return format!("{PREFIX}{node}");
    }
    let hash = format!("_{:08x}", fnv1a(node.as_bytes()));
    let room = MAX_LEN - MAPPED_PREFIX.len() - hash.len();
    let mapped: String = node
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if fits(c) { c } else { '_' })
        .take(room)
        .collect();
    format!("{MAPPED_PREFIX}{mapped}{hash}")
}

/// Whether a slot is one of those the agent keeps.
fn is_ours(slot: &str) -> bool {
    slot.starts_with(PREFIX) || slot.starts_with(MAPPED_PREFIX)
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// A physical slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub active: bool,
    pub restart_lsn: Option<Lsn>,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
}

/// The query of [`crate::replication`]'s round trip that reads them.
pub const QUERY: &str = "SELECT slot_name, active, restart_lsn, wal_status, \
     current_setting('max_slot_wal_keep_size') FROM pg_replication_slots \
     WHERE slot_type = 'physical'";

/// What to change so that this node keeps exactly the slots of the other
/// cluster nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub create: Vec<String>,
    /// Slots of nodes that are not (or no longer) in the cluster, and this
    /// node's own: no node streams from itself. Active ones stay until
    /// their walsender ends.
    pub drop: Vec<String>,
    /// Peers' slots a standby advances to where it replayed.
    pub advance: Vec<String>,
    /// Slots that lost WAL to max_slot_wal_keep_size: their node cannot
    /// catch up through them.
    pub lost: Vec<String>,
    /// Nodes whose slot names collide (a hash collision): they get none.
    pub colliding: Vec<String>,
}

impl Plan {
    pub fn changes_nothing(&self) -> bool {
        self.create.is_empty() && self.drop.is_empty() && self.advance.is_empty()
    }
}

/// `replayed`: a standby's replay position (its peers' slots follow it);
/// `None` on a primary, where walsenders advance the slots.
pub fn plan(own: &str, nodes: &[String], existing: &[Slot], replayed: Option<Lsn>) -> Plan {
    let mut wanted: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for node in nodes.iter().filter(|n| *n != own) {
        wanted.entry(slot_name(node)).or_default().push(node);
    }
    let mut plan = Plan::default();
    wanted.retain(|_, names| {
        if names.len() > 1 {
            plan.colliding.extend(names.iter().map(|n| n.to_string()));
        }
        names.len() == 1
    });
    for name in wanted.keys() {
        if !existing.iter().any(|s| &s.name == name) {
            plan.create.push(name.clone());
        }
    }
    for slot in existing.iter().filter(|s| is_ours(&s.name)) {
        if !wanted.contains_key(&slot.name) {
            if !slot.active {
                plan.drop.push(slot.name.clone());
            }
            continue;
        }
        if slot.wal_status.as_deref() == Some("lost") {
            plan.lost.push(slot.name.clone());
            continue;
        }
        if let (Some(replayed), Some(at)) = (replayed, slot.restart_lsn) {
            if !slot.active && at.0.saturating_add(ADVANCE_EVERY) <= replayed.0 {
                plan.advance.push(slot.name.clone());
            }
        }
    }
    plan
}

/// The note that the monitor warned of slots keeping WAL without bound.
const UNBOUNDED: &str = "slots-unbounded";

/// A monitor's part: the slots of the other cluster nodes, on a primary
/// (`nodes` being what it already knows) or a standby (the cached node
/// list). Forks nothing unless a slot is to be dropped, when the node list
/// is asked again first (at most once a minute): a node is gone only if
/// the cluster says so now.
pub fn keep(
    cfg: &PgConfig,
    cluster: &Cluster,
    repl: &Replication,
    nodes: Option<&[String]>,
    as_user: (Uid, Gid),
    deadline: &Deadline,
) -> Result<()> {
    let replayed = repl.in_recovery.then_some(repl.replayed).flatten();
    let cached;
    let nodes = match nodes {
        Some(nodes) => nodes,
        None => {
            cached = cluster.cluster_nodes(|_| true, deadline)?;
            &cached
        }
    };
    let mut plan = plan(&cluster.node, nodes, &repl.slots, replayed);
    let own = slot_name(&cluster.node);
    if plan.drop.iter().any(|s| *s != own) {
        let fresh = cluster.cluster_nodes(|_| false, deadline)?;
        plan = self::plan(&cluster.node, &fresh, &repl.slots, replayed);
    }
    for node in &plan.colliding {
        warning!("no replication slot for {node}: its slot name collides with another node's");
    }
    for slot in &plan.lost {
        warning!(
            "replication slot {slot} lost WAL its node needs (max_slot_wal_keep_size): that \
             node must be rebuilt"
        );
    }
    // On a primary only: a standby's peers' slots are idle by design.
    let idle = !repl.in_recovery && repl.slots.iter().any(|s| is_ours(&s.name) && !s.active);
    let unbounded = idle && repl.slots_bounded == Some(false);
    if unbounded != cluster.note(UNBOUNDED).is_some() {
        if unbounded {
            warning!(
                "a replication slot of a node that does not stream keeps WAL without bound: \
                 set max_slot_wal_keep_size"
            );
        }
        cluster.keep_note(UNBOUNDED, unbounded.then_some("1"));
    }
    if plan.changes_nothing() {
        return Ok(());
    }
    apply(cfg, as_user, &plan, deadline)?;
    for (what, slots) in [("created", &plan.create), ("dropped", &plan.drop)] {
        if !slots.is_empty() {
            info!("replication slots {what}: {}", slots.join(", "));
        }
    }
    Ok(())
}

/// The slots, parsed from [`QUERY`]'s rows, and whether the server bounds
/// the WAL they keep (max_slot_wal_keep_size is not -1).
pub fn parse(rows: &pgclient::Rows) -> Result<(Vec<Slot>, Option<bool>)> {
    let mut bounded = None;
    let slots = rows
        .iter()
        .map(|r| {
            let text = |i: usize| r.get(i).cloned().flatten();
            bounded = text(4).map(|v| v != "-1");
            Ok(Slot {
                name: text(0).unwrap_or_default(),
                active: text(1).as_deref() == Some("t"),
                restart_lsn: text(2).map(|v| v.parse()).transpose()?,
                wal_status: text(3),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((slots, bounded))
}

/// Carries out `plan` on the local server, in one round trip.
pub fn apply(cfg: &PgConfig, as_user: (Uid, Gid), plan: &Plan, deadline: &Deadline) -> Result<()> {
    if plan.changes_nothing() {
        return Ok(());
    }
    let mut statements = Vec::new();
    for name in &plan.create {
        statements.push(create_statement(name)?);
    }
    for name in &plan.drop {
        let name = pgclient::quote::literal(name)?;
        // Not if a walsender took it meanwhile.
        statements.push(format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = {name} AND NOT active"
        ));
    }
    for name in &plan.advance {
        let name = pgclient::quote::literal(name)?;
        statements.push(format!(
            "SELECT pg_replication_slot_advance(slot_name, pg_last_wal_replay_lsn()) \
             FROM pg_replication_slots WHERE slot_name = {name} AND NOT active \
             AND restart_lsn < pg_last_wal_replay_lsn()"
        ));
    }
    pgclient::query(
        sql::local(cfg),
        Some(as_user),
        deadline,
        &statements.join("; "),
    )
    .map(|_| ())
    .map_err(|e| e.context("keeping the replication slots").into())
}

/// Creates `name` unless it exists, reserving WAL from now on.
fn create_statement(name: &str) -> Result<String> {
    let name = pgclient::quote::literal(name)?;
    Ok(format!(
        "SELECT pg_create_physical_replication_slot({name}, true) \
         WHERE NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = {name})"
    ))
}

/// Before a standby starts: its own slot on the primary it will stream
/// from, created by the replication role (REPLICATION allows it), so that
/// its WAL receiver finds it at once.
pub fn ensure_on_primary(
    primary: pgclient::Config,
    as_user: (Uid, Gid),
    node: &str,
    deadline: &Deadline,
) -> Result<()> {
    let slot = slot_name(node);
    pgclient::query(primary, Some(as_user), deadline, &create_statement(&slot)?)
        .map(|_| ())
        .map_err(|e| {
            OcfError::generic(format!(
                "could not create replication slot {slot} on the primary: {} (raise \
                 max_replication_slots there, or set replication_slots=off)",
                e.reason()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, active: bool, at: u64, status: &str) -> Slot {
        Slot {
            name: name.to_string(),
            active,
            restart_lsn: Some(Lsn(at)),
            wal_status: Some(status.to_string()),
        }
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn names_that_fit_are_kept_and_others_never_collide() {
        assert_eq!(slot_name("node2"), "tusk_node2");
        let mapped = [
            "Node2",
            "node-2",
            "node.2",
            "node_2x",
            "db1.example.com",
            "",
            &"n".repeat(63),
            &"n".repeat(59),
            &"n".repeat(58),
        ]
        .map(slot_name);
        for name in &mapped {
            assert!(name.len() <= MAX_LEN, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
        }
        let mut unique = mapped.to_vec();
        unique.push(slot_name("node_2"));
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), mapped.len() + 1, "{mapped:?}");
        // A name that needed mapping never takes a plain name's slot.
        assert!(slot_name("Node2").starts_with("tuskx_"));
        assert_eq!(
            slot_name(&"n".repeat(58)),
            format!("tusk_{}", "n".repeat(58))
        );
    }

    #[test]
    fn a_primary_keeps_a_slot_for_every_other_node_and_drops_the_rest() {
        let existing = [
            slot("tusk_node2", true, 100, "reserved"),
            slot("tusk_node1", false, 100, "reserved"),
            slot("tusk_node9", false, 100, "reserved"),
            slot("tusk_node8", true, 100, "reserved"),
            slot("backup_tool", false, 100, "reserved"),
        ];
        let p = plan(
            "node1",
            &nodes(&["node1", "node2", "node3"]),
            &existing,
            None,
        );
        assert_eq!(p.create, ["tusk_node3"]);
        // Its own, and a departed node's; not one still streaming, and
        // never a slot of somebody else's.
        assert_eq!(p.drop, ["tusk_node1", "tusk_node9"]);
        assert!(p.advance.is_empty());
    }

    #[test]
    fn a_standby_advances_its_peers_slots_only_a_segment_behind() {
        let mb = 1024 * 1024;
        let existing = [
            slot("tusk_node1", false, 100 * mb, "reserved"),
            slot("tusk_node3", false, 90 * mb, "reserved"),
        ];
        let p = plan(
            "node2",
            &nodes(&["node1", "node2", "node3"]),
            &existing,
            Some(Lsn(110 * mb)),
        );
        assert_eq!(p.advance, ["tusk_node3"]);
        assert!(p.create.is_empty() && p.drop.is_empty());
        let p = plan(
            "node2",
            &nodes(&["node1", "node2", "node3"]),
            &existing,
            Some(Lsn(100 * mb)),
        );
        assert!(p.changes_nothing(), "{p:?}");
    }

    #[test]
    fn a_lost_slot_is_reported_not_advanced() {
        let existing = [slot("tusk_node3", false, 0, "lost")];
        let p = plan(
            "node2",
            &nodes(&["node2", "node3"]),
            &existing,
            Some(Lsn(1 << 40)),
        );
        assert_eq!(p.lost, ["tusk_node3"]);
        assert!(p.changes_nothing());
    }
}
