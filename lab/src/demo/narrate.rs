//! What the demo tells while a fault plays out: the cluster reduced to
//! facts (subject, aspect, value), observed again and again, and one line
//! per fact that changed, phrased for someone who has never read the
//! agents' source. Observing is effects; comparing and phrasing are pure.

use std::collections::BTreeMap;

/// A node's power: `on` or `off` (the lab's record).
pub const POWER: &str = "power";
/// A node's boot: its init's PID, which changes when it boots again.
pub const BOOT: &str = "boot";
/// A node's cable: `in` or `out` of the switch.
pub const CABLE: &str = "cable";
/// A node as the cluster sees it: `online`, `lost` (offline, unclean: not
/// yet fenced), `offline`.
pub const MEMBERSHIP: &str = "membership";
/// The cluster's DC (subject [`CLUSTER`]): a node name or `none`.
pub const DC: &str = "dc";
/// PostgreSQL on a node for Pacemaker: `primary`, `standby`, `stopped`,
/// with ` (failed)` when crm_mon says so.
pub const POSTGRESQL: &str = "postgresql";
/// Where the floating address runs (subject [`CLUSTER`]): a node or `nowhere`.
pub const ADDRESS: &str = "address";
/// The node attribute `pg-timeline`.
pub const TIMELINE: &str = "timeline";
/// A standby in the primary's `pg_stat_replication`: `STATE, SYNC_STATE`,
/// `not streaming`, or [`IS_PRIMARY`] for the primary itself.
pub const REPLICATION: &str = "replication";
pub const IS_PRIMARY: &str = "is the primary";
/// The node attribute `pg-sync` on the primary: `sync` or `async`.
pub const SYNC: &str = "pg-sync";
/// A cut-off node's own view of the cluster.
pub const OWN_VIEW: &str = "own view";
/// Aspects starting with this are failed operations (`failed monitor`).
pub const FAILED: &str = "failed ";
/// The subject of cluster-wide facts.
pub const CLUSTER: &str = "cluster";

/// What was observed at one moment. A fact that an observation could not
/// establish (no primary to ask, a node that does not answer) is absent,
/// which means "unknown", not "gone": see [`Facts::merge`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts(BTreeMap<(String, String), String>);

impl Facts {
    pub fn set(&mut self, subject: &str, aspect: &str, value: impl Into<String>) {
        self.0
            .insert((subject.to_string(), aspect.to_string()), value.into());
    }

    pub fn get(&self, subject: &str, aspect: &str) -> Option<&str> {
        self.0
            .get(&(subject.to_string(), aspect.to_string()))
            .map(String::as_str)
    }

    /// The subjects that have `aspect` = `value`.
    pub fn with(&self, aspect: &str, value: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|((_, a), v)| a == aspect && v.as_str() == value)
            .map(|((s, _), _)| s.as_str())
            .collect()
    }

    /// What is known after `observed`: its facts, and for what it could not
    /// establish, the last known value.
    pub fn merge(&self, observed: &Facts) -> Facts {
        let mut merged = self.clone();
        merged
            .0
            .extend(observed.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    /// One line for each fact of `next` that differs from this one, in the
    /// order a reader follows a failover (power and membership first, the
    /// replication last).
    pub fn changes(&self, next: &Facts) -> Vec<String> {
        let mut changed: Vec<(usize, &str, String)> = next
            .0
            .iter()
            .filter(|(k, v)| self.0.get(*k) != Some(*v))
            .filter_map(|((subject, aspect), new)| {
                let old = self.0.get(&(subject.clone(), aspect.clone()));
                let line = describe(subject, aspect, old.map(String::as_str), new)?;
                Some((order(aspect), subject.as_str(), line))
            })
            .collect();
        changed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        changed.into_iter().map(|(_, _, line)| line).collect()
    }
}

fn order(aspect: &str) -> usize {
    const ORDER: [&str; 11] = [
        POWER,
        BOOT,
        CABLE,
        MEMBERSHIP,
        OWN_VIEW,
        DC,
        POSTGRESQL,
        ADDRESS,
        TIMELINE,
        REPLICATION,
        SYNC,
    ];
    ORDER
        .iter()
        .position(|a| *a == aspect)
        .unwrap_or(ORDER.len())
}

/// The line for one change, or None when it is not worth one (a first
/// value nobody needs told, the primary's own replication entry). Aspects
/// not known here (a later agent's) get a plain `subject: aspect old -> new`.
pub fn describe(subject: &str, aspect: &str, old: Option<&str>, new: &str) -> Option<String> {
    let s = subject;
    Some(match (aspect, old, new) {
        (POWER, _, "off") => format!("{s} is powered off"),
        // A boot says it better.
        (POWER, _, _) => return None,
        (BOOT, Some(_), _) => format!("{s} boots again (power-cycled by the fence device)"),
        (CABLE, _, "out") => {
            format!("{s}'s cable is out: it is cut off from the other nodes and from clients")
        }
        (CABLE, Some(_), "in") => format!("{s}'s cable is back in"),
        (MEMBERSHIP, _, "lost") => format!(
            "{s} is lost (offline, unclean): the others fence it before they touch its resources"
        ),
        (MEMBERSHIP, Some("lost"), "offline") => {
            format!("{s} is fenced: confirmed off, its resources may now run elsewhere")
        }
        (MEMBERSHIP, _, "offline") => format!("{s} is offline"),
        (MEMBERSHIP, Some(_), "online") => format!("{s} is online again: it rejoined the cluster"),
        (DC, _, "none") => "no DC: the nodes elect one".to_string(),
        (DC, _, node) => format!("{node} is the DC (the node that decides for the cluster)"),
        (POSTGRESQL, _, "primary") => {
            format!("PostgreSQL on {s} is promoted: {s} is the primary")
        }
        (POSTGRESQL, Some("primary"), "standby") => {
            format!("PostgreSQL on {s} is demoted: a standby now")
        }
        (POSTGRESQL, _, "standby") => format!("PostgreSQL on {s} runs as a standby"),
        (POSTGRESQL, Some("primary"), "stopped") => {
            format!("PostgreSQL on {s} is stopped (it was the primary)")
        }
        (POSTGRESQL, _, "stopped") => format!("PostgreSQL on {s} is stopped"),
        (POSTGRESQL, _, "Promoting") => format!("PostgreSQL on {s} is being promoted"),
        (POSTGRESQL, _, "Demoting") => format!("PostgreSQL on {s} is being demoted"),
        (POSTGRESQL, _, "Starting") => format!("PostgreSQL on {s} is starting"),
        (POSTGRESQL, _, "Stopping") => format!("PostgreSQL on {s} is stopping"),
        (POSTGRESQL, _, other) => format!("PostgreSQL on {s}: {other}"),
        (ADDRESS, _, "nowhere") => "the floating address is down: no node holds it".to_string(),
        (ADDRESS, _, node) => format!("the floating address is up on {node}"),
        (TIMELINE, Some(old), new) => format!("{s} is on timeline {new} (was {old})"),
        (TIMELINE, None, new) => format!("{s} is on timeline {new}"),
        (REPLICATION, _, IS_PRIMARY) => return None,
        (REPLICATION, Some(IS_PRIMARY) | None, "not streaming") => return None,
        (REPLICATION, _, "not streaming") => format!("{s} no longer streams from the primary"),
        (REPLICATION, _, state) => match state.split_once(", ") {
            Some(("streaming", sync)) => format!("{s} streams from the primary ({sync})"),
            _ => format!("{s} replicates: {state}"),
        },
        (SYNC, _, "sync") => {
            format!("commits on {s} wait for a synchronous standby (pg-sync=sync)")
        }
        (SYNC, _, "async") => {
            format!("commits on {s} no longer wait for a standby: none streams (pg-sync=async)")
        }
        (OWN_VIEW, _, view) => format!("{s} (cut off) sees itself: {view}"),
        (failed, _, how) if failed.starts_with(FAILED) => {
            format!("{s}: the {} failed ({how})", &failed[FAILED.len()..])
        }
        (_, None, _) => format!("{s}: {aspect} {new}"),
        (_, Some(old), _) => format!("{s}: {aspect} {old} -> {new}"),
    })
}

/// What a settled cluster looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The primary before; with `must_move`, another node must be primary.
    pub old: &'a str,
    pub must_move: bool,
    /// The node that must be primary, if any.
    pub target: Option<&'a str>,
    /// The primary's commits wait for a synchronous standby (pg-sync=sync):
    /// what `sync=available` and `strict` settle to while standbys stream.
    pub sync: bool,
}

/// The steady state every fault ends with: exactly one primary (as
/// `expect` says), the floating address on it, every other PostgreSQL node
/// online, a standby streaming from it, on its timeline; pg-sync=sync when
/// expected. Returns the primary, or what is still missing.
pub fn settled(facts: &Facts, pg_nodes: &[String], expect: Expect) -> Result<String, String> {
    let Expect {
        old,
        must_move,
        target,
        sync,
    } = expect;
    let primaries = facts.with(POSTGRESQL, "primary");
    let [primary] = primaries.as_slice() else {
        return Err(format!("{} primaries: {primaries:?}", primaries.len()));
    };
    if must_move && *primary == old {
        return Err(format!("{old} is still the primary"));
    }
    if target.is_some_and(|t| t != *primary) {
        return Err(format!(
            "{primary} is the primary, not {}",
            target.unwrap_or("")
        ));
    }
    if facts.get(CLUSTER, ADDRESS) != Some(*primary) {
        return Err(format!("the floating address is not on {primary}"));
    }
    for node in pg_nodes.iter().filter(|n| n.as_str() != *primary) {
        if facts.get(node, MEMBERSHIP) != Some("online") {
            return Err(format!("{node} is not online"));
        }
        if facts.get(node, POSTGRESQL) != Some("standby") {
            return Err(format!("{node} is not a standby"));
        }
        if !facts
            .get(node, REPLICATION)
            .is_some_and(|r| r.starts_with("streaming"))
        {
            return Err(format!("{node} does not stream from {primary}"));
        }
        if facts.get(node, TIMELINE) != facts.get(primary, TIMELINE) {
            return Err(format!("{node} has not published {primary}'s timeline yet"));
        }
    }
    if sync && facts.get(primary, SYNC) != Some("sync") {
        return Err(format!(
            "{primary}'s commits do not wait for a synchronous standby yet (pg-sync)"
        ));
    }
    Ok(primary.to_string())
}

/// A short form of a client's error for one line of narration.
pub fn short_error(message: &str) -> String {
    let message = message.strip_prefix("db error: ").unwrap_or(message).trim();
    if message.chars().count() <= 90 {
        return message.to_string();
    }
    let cut: String = message.chars().take(87).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        let mut f = Facts::default();
        for (node, role, repl) in [
            ("node1", "primary", IS_PRIMARY),
            ("node2", "standby", "streaming, sync"),
            ("node3", "standby", "streaming, potential"),
        ] {
            f.set(node, POWER, "on");
            f.set(node, MEMBERSHIP, "online");
            f.set(node, POSTGRESQL, role);
            f.set(node, REPLICATION, repl);
            f.set(node, TIMELINE, "1");
        }
        f.set(CLUSTER, ADDRESS, "node1");
        f.set("node1", SYNC, "sync");
        f
    }

    fn nodes() -> Vec<String> {
        vec!["node1".into(), "node2".into(), "node3".into()]
    }

    #[test]
    fn a_failover_is_told_in_the_order_it_is_followed() {
        let before = healthy();
        // node1 lost and fenced, node2 promoted, in one observation.
        let mut seen = Facts::default();
        seen.set("node1", POWER, "off");
        seen.set("node1", MEMBERSHIP, "lost");
        seen.set("node2", POSTGRESQL, "primary");
        seen.set("node2", REPLICATION, IS_PRIMARY);
        seen.set("node2", TIMELINE, "2");
        seen.set(CLUSTER, ADDRESS, "node2");
        let after = before.merge(&seen);
        assert_eq!(
            before.changes(&after),
            vec![
                "node1 is powered off",
                "node1 is lost (offline, unclean): the others fence it before they touch its resources",
                "PostgreSQL on node2 is promoted: node2 is the primary",
                "the floating address is up on node2",
                "node2 is on timeline 2 (was 1)",
            ]
        );
        // What was not observed (node1's role, node3's replication) is kept.
        assert_eq!(after.get("node1", POSTGRESQL), Some("primary"));
        assert_eq!(
            after.get("node3", REPLICATION),
            Some("streaming, potential")
        );
        assert!(after.changes(&after).is_empty());
    }

    #[test]
    fn the_old_primary_coming_back_as_a_standby_is_told() {
        let mut before = healthy();
        before.set("node1", MEMBERSHIP, "lost");
        before.set("node1", BOOT, "100");
        let mut seen = Facts::default();
        seen.set("node1", MEMBERSHIP, "offline");
        seen.set("node1", POSTGRESQL, "stopped");
        let fenced = before.merge(&seen);
        assert_eq!(
            before.changes(&fenced),
            vec![
                "node1 is fenced: confirmed off, its resources may now run elsewhere",
                "PostgreSQL on node1 is stopped (it was the primary)",
            ]
        );
        let mut seen = Facts::default();
        seen.set("node1", BOOT, "200");
        seen.set("node1", POWER, "on");
        seen.set("node1", MEMBERSHIP, "online");
        seen.set("node1", POSTGRESQL, "standby");
        seen.set("node1", REPLICATION, "streaming, async");
        let back = fenced.merge(&seen);
        assert_eq!(
            fenced.changes(&back),
            vec![
                "node1 boots again (power-cycled by the fence device)",
                "node1 is online again: it rejoined the cluster",
                "PostgreSQL on node1 runs as a standby",
                "node1 streams from the primary (async)",
            ]
        );
    }

    #[test]
    fn unknown_aspects_and_failures_get_a_plain_line() {
        let before = healthy();
        let mut seen = Facts::default();
        seen.set("node1", "failed monitor", "exit 7: not running");
        seen.set("node2", "pgpool sees node1", "down");
        seen.set("node3", REPLICATION, "not streaming");
        assert_eq!(
            before.changes(&before.merge(&seen)),
            vec![
                "node3 no longer streams from the primary",
                "node1: the monitor failed (exit 7: not running)",
                "node2: pgpool sees node1 down",
            ]
        );
    }

    #[test]
    fn settled_means_one_primary_with_every_other_node_streaming() {
        let f = healthy();
        let stay = Expect {
            old: "node1",
            must_move: false,
            target: None,
            sync: true,
        };
        let moves = Expect {
            must_move: true,
            ..stay
        };
        assert_eq!(settled(&f, &nodes(), stay), Ok("node1".into()));
        assert_eq!(
            settled(&f, &nodes(), moves),
            Err("node1 is still the primary".into())
        );
        let mut two = f.clone();
        two.set("node2", POSTGRESQL, "primary");
        assert!(settled(&two, &nodes(), stay).is_err());
        let mut moved = f.clone();
        moved.set("node1", POSTGRESQL, "standby");
        moved.set("node1", REPLICATION, "streaming, async");
        moved.set("node2", POSTGRESQL, "primary");
        moved.set("node2", TIMELINE, "2");
        moved.set(CLUSTER, ADDRESS, "node2");
        let to_node2 = Expect {
            target: Some("node2"),
            sync: false,
            ..moves
        };
        assert_eq!(
            settled(&moved, &nodes(), to_node2),
            Err("node1 has not published node2's timeline yet".into())
        );
        moved.set("node1", TIMELINE, "2");
        moved.set("node3", TIMELINE, "2");
        assert_eq!(settled(&moved, &nodes(), to_node2), Ok("node2".into()));
        assert_eq!(
            settled(
                &moved,
                &nodes(),
                Expect {
                    sync: true,
                    ..to_node2
                }
            ),
            Err("node2's commits do not wait for a synchronous standby yet (pg-sync)".into())
        );
        moved.set("node1", REPLICATION, "not streaming");
        assert_eq!(
            settled(&moved, &nodes(), moves),
            Err("node1 does not stream from node2".into())
        );
    }

    #[test]
    fn errors_are_shortened_to_one_line() {
        assert_eq!(
            short_error("db error: FATAL: the database system is shutting down"),
            "FATAL: the database system is shutting down"
        );
        let long = "x".repeat(200);
        assert_eq!(short_error(&long).chars().count(), 90);
    }
}
