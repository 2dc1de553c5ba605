//! `demo slony`: the Slony layout of the README (issue 10) on a 3-node
//! lab with fencing: PostgreSQL on every node as a plain clone (each its
//! own server), Slony set 1 holding the client's table, replicated from
//! the origin to every other node, `ocf:tusk:slon` as a promotable clone
//! whose Promoted instance is the set's origin, and the origin's floating
//! address colocated with it ([`crate::slony`]). The client writes through
//! that address and records the Slony node id of the server that took each
//! write, so the first write on a new origin is seen as such.
//!
//! The client writes through the address, not through pgpool in slony
//! mode: the lab sets pgpool up for streaming replication only, and in
//! slony mode pgpool's only lever is detaching backends numbered below the
//! origin (issue 9), which the address does without a component more.
//!
//! Two faults, each told as it plays out with the streaming demo's
//! narration ([`super::Watch`]) and figures ([`super::conclude`]):
//! a planned move of the origin (`pcs resource move slon-clone NODE
//! --promoted`: the agent's demote runs LOCK SET, MOVE SET, WAIT FOR
//! EVENT) and the origin's node losing power (fenced; a subscriber's
//! promote runs FAILOVER, then DROP NODE; switched on again, the old
//! origin's start rejoins it by itself after saving its rows in a failback
//! dump). Moving it back is a planned move with `--to`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::narrate::*;
use super::{
    client, conclude, follow, inject, instance_facts, observe, others, summary,
    undo_interrupted_failover, Fault, Layout, Outcome, PowerBack, Probe, Watch,
};
use crate::slony;
use crate::{ClusterState, Lab, LabConfig};

/// How long a fault may take to play out: a FAILOVER alone took 45–79 s
/// in the lab (issue 10), the old origin's rejoin a few seconds more.
pub const FAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The promotion score the slon agent publishes (`master-` + the
/// primitive's id; docs/attributes.md).
const SCORE: &str = "master-slon";

/// Adds Slony's facts: slon's role on each node for Pacemaker ([`SLON`]),
/// its failed operations, and each running node's own catalog: the set's
/// origin ([`SET_ORIGIN`]) and its subscription ([`SUBSCRIPTION`]).
pub struct SlonyProbe;

impl Probe for SlonyProbe {
    fn observe(&self, lab: &Lab, view: &ClusterState, facts: &mut Facts) {
        let Ok(nodes) = lab.nodes() else { return };
        let online: Vec<&str> = nodes
            .iter()
            .map(String::as_str)
            .filter(|n| view.is_online(n))
            .collect();
        instance_facts(
            facts,
            view,
            (slony::RESOURCE, "slon "),
            &online,
            SLON,
            &|role| {
                match role {
                    "Promoted" => "origin",
                    "Unpromoted" => "subscriber",
                    "Stopped" => "stopped",
                    other => other,
                }
                .to_string()
            },
        );
        for node in &nodes {
            let reachable = facts.get(node, POWER) == Some("on")
                && facts.get(node, CABLE) != Some("out")
                && view.is_online(node);
            if !reachable {
                continue;
            }
            // A node whose PostgreSQL does not answer: unknown.
            let Ok(catalog) = slony::catalog(lab, node) else {
                continue;
            };
            let (origin, subscription) = catalog_facts(node, catalog);
            facts.set(node, SET_ORIGIN, origin);
            facts.set(node, SUBSCRIPTION, subscription);
        }
    }
}

/// [`SET_ORIGIN`] and [`SUBSCRIPTION`] of `node` from its catalog (see
/// [`slony::catalog`]).
pub fn catalog_facts(node: &str, catalog: Option<(u32, Option<bool>)>) -> (String, String) {
    match catalog {
        None => (NO_SCHEMA.to_string(), "none".to_string()),
        Some((origin, active)) => {
            let origin = slony::node_name(origin);
            let subscription = match active {
                _ if origin == node => "origin",
                Some(true) => "active",
                Some(false) => "inactive",
                None => "none",
            };
            (origin, subscription.to_string())
        }
    }
}

/// What a settled Slony cluster looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The origin before; with `must_move`, another node must be origin.
    pub old: &'a str,
    pub must_move: bool,
    /// The node that must be origin, if any.
    pub target: Option<&'a str>,
}

/// The steady state every Slony fault ends with: exactly one Promoted slon
/// (as `expect` says), the floating address on its node, every node's own
/// catalog naming it the set's origin, and every other node a running
/// subscriber whose subscription is active. Returns the origin, or what is
/// still missing.
pub fn settled(facts: &Facts, nodes: &[String], expect: Expect) -> Result<String, String> {
    let origins = facts.with(SLON, "origin");
    let [origin] = origins.as_slice() else {
        return Err(format!(
            "{} origins for Pacemaker: {origins:?}",
            origins.len()
        ));
    };
    if expect.must_move && *origin == expect.old {
        return Err(format!("{origin} is still the origin"));
    }
    if expect.target.is_some_and(|t| t != *origin) {
        return Err(format!("{origin} is the origin, not {:?}", expect.target));
    }
    if facts.get(CLUSTER, ADDRESS) != Some(origin) {
        return Err(format!("the floating address is not on {origin} yet"));
    }
    for node in nodes {
        if facts.get(node, SET_ORIGIN) != Some(origin) {
            return Err(format!(
                "{node}'s catalog does not name {origin} the origin yet ({})",
                facts.get(node, SET_ORIGIN).unwrap_or("unknown")
            ));
        }
        if node == origin {
            continue;
        }
        if facts.get(node, SLON) != Some("subscriber") {
            return Err(format!("slon on {node} does not run as a subscriber yet"));
        }
        if facts.get(node, SUBSCRIPTION) != Some("active") {
            return Err(format!("{node} does not replicate from {origin} yet"));
        }
    }
    Ok(origin.to_string())
}

/// Where a planned move goes when not told: the subscriber with the
/// highest promotion score (the agent scores the subscribers that
/// confirmed the most of the origin's events highest: where Pacemaker
/// would promote), ties to the first name; a subscriber without a score
/// only when none has one.
pub fn move_target<'a>(subscribers: &[(&'a str, Option<i64>)]) -> Option<&'a str> {
    subscribers
        .iter()
        .min_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)))
        .map(|(n, _)| *n)
}

/// Brings `demo slony` up: the lab, PostgreSQL and the Slony cluster, the
/// slon clone with the origin promoted and every node subscribed, the
/// client writing through the origin's address.
pub fn up(config: &LabConfig, command: &str, out: &mut dyn Write) -> Result<Lab> {
    super::bring_up(
        config,
        (command, "slony status"),
        out,
        &|lab, started, out| set_up(lab, command, started, out),
    )
}

fn set_up(lab: &Lab, command: &str, started: Instant, out: &mut dyn Write) -> Result<()> {
    let nodes = lab.nodes()?;
    let layout = Layout::slony(lab)?;
    let at = || format!("{:5.1} s", started.elapsed().as_secs_f64());
    writeln!(
        out,
        "{}  {} nodes online with quorum, fence device lab-fence started",
        at(),
        nodes.len()
    )?;
    let timeout = Duration::from_secs(120);
    slony::prepare(lab, &nodes, timeout)?;
    writeln!(
        out,
        "{}  PostgreSQL 15 on every node (pg-clone, ocf:tusk:postgresql, a plain clone: each node its own server); \
         Slony cluster {} with set {} (the client's table) created on {}",
        at(),
        slony::CLUSTER,
        slony::SET,
        nodes[0]
    )?;
    slony::create_promotable(lab, &nodes, timeout)?;
    writeln!(
        out,
        "{}  {} (ocf:tusk:slon, promotable: the Promoted instance is the set's origin) and {} created: \
         {} is the origin, {} subscribed (SUBSCRIBE SET)",
        at(),
        slony::CLONE,
        slony::VIP,
        nodes[0],
        nodes[1..].join(" and ")
    )?;
    super::client::start(lab, &layout.client_conninfo, layout.mark)?;
    writeln!(
        out,
        "{}  client writing a row every {} ms through {}\n",
        at(),
        client::EVERY.as_millis(),
        layout.client_target
    )?;
    write!(out, "{}", summary(lab, &layout)?)?;
    write!(out, "{}", next_commands(lab, command))?;
    Ok(())
}

fn next_commands(lab: &Lab, command: &str) -> String {
    let exe = std::env::current_exe()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|_| "tusk-lab".to_string());
    let vip = slony::origin_address(lab);
    format!(
        "\nNext, while the client keeps writing (each fault is told as it happens and ends with figures):\n\
         \x20 sudo {command} slony move        planned: pcs resource move {clone} NODE --promoted (MOVE SET)\n\
         \x20 sudo {command} slony move --to NODE    the same, to NODE (the old origin, to move it back)\n\
         \x20 sudo {command} slony failover    the origin's node loses power (FAILOVER, then it rejoins by itself)\n\
         \x20 sudo {command} slony status      what runs where, and what the client sees\n\
         \x20 sudo {exe} exec node1 crm_mon -1 -A   the cluster and its node attributes\n\
         \x20 sudo {exe} exec node1 bash            a shell on node1 (pcs, crm_mon, psql -h {vip} -U postgres app)\n\
         \x20 sudo {command} down              end it all, the client included\n",
        clone = slony::CLONE,
    )
}

/// What `fault` promises about acknowledged writes in the Slony layout.
pub fn promise(fault: Fault) -> &'static str {
    match fault {
        Fault::Switchover => {
            "nothing is lost in a planned move, with no setting to choose: the agent's demote \
             runs LOCK SET (writes on the old origin wait), MOVE SET and WAIT FOR EVENT, so the \
             new origin has every row before it takes a write."
        }
        _ => {
            "no setting promises 0 lost on a failover: Slony replicates asynchronously (a \
             commit returns before any subscriber has the row; slon copies in batches), so \
             what the old origin acknowledged and no subscriber had received yet is not on the \
             new origin (FAILOVER takes the most advanced subscriber). The agent keeps those \
             rows: before the old origin rejoins, it dumps its copy of the set's tables (the \
             failback dump, logged). Writes that must never be lost need the streaming layout \
             with sync=available or strict."
        }
    }
}

/// Injects `fault` on the origin (a planned move goes to `to`, or to the
/// best subscriber), tells what the cluster does, one line per change with
/// the time since the fault, until it has settled again, and ends with the
/// figures.
pub fn run_fault(
    lab: &Lab,
    layout: &Layout,
    fault: Fault,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    if fault == Fault::Partition {
        bail!("the Slony demo has `move` and `failover`");
    }
    let not_ready = "the Slony cluster is not ready for a fault (one origin with the address, \
         every other node subscribed); `demo slony status` shows it";
    undo_interrupted_failover(lab, out)?;
    let old = wait_settled(lab, layout, Duration::from_secs(90)).context(not_ready)?;
    if !client::is_running(lab) {
        bail!("the demo's client does not run (`demo slony` starts it with the lab)");
    }
    let facts = observe(lab, layout, Some(&old));
    let subscribers = facts.with(SLON, "subscriber");
    let target = match (fault, to) {
        (Fault::Switchover, Some(to)) => {
            if !subscribers.contains(&to) {
                bail!("{to} is not a subscriber; the subscribers: {subscribers:?}");
            }
            Some(to.to_string())
        }
        (Fault::Switchover, None) => {
            let view = lab.view(&crate::postgres::observer(lab)?)?;
            let scored: Vec<(&str, Option<i64>)> = subscribers
                .iter()
                .map(|n| (*n, view.attribute(n, SCORE).and_then(|v| v.parse().ok())))
                .collect();
            Some(
                move_target(&scored)
                    .context("no subscriber to move the origin to")?
                    .to_string(),
            )
        }
        _ => None,
    };
    let before = client::report(lab)?;
    let mark_before = before.timelines.last().map_or(0, |(_, m)| *m);
    writeln!(
        out,
        "Before: {old} is the origin (Slony node {}), {} subscribe; the client has {} writes acknowledged.",
        slony::node_id(&old)?,
        subscribers.join(" and "),
        before.acknowledged.len()
    )?;
    let earlier = super::lost_so_far(lab, layout)?;
    let mut watch = Watch::new(lab, layout, facts, mark_before)?;
    let dumps_before = slony::failback_dumps(lab, &old);
    if fault == Fault::Failover {
        writeln!(
            out,
            "For this fault the fence device switches {old} off (stonith-action=off) and the demo \
             switches it on again once another node is the origin and takes writes: its agent \
             then finds it was failed over, saves its rows and subscribes it again."
        )?;
    }
    let (fault_at, mut pcs) = inject(lab, fault, &old, target.as_deref(), slony::CLONE, out)?;

    let mut power = PowerBack::new(fault, Duration::from_secs(150));
    let (settled_as, last_reason, end) = follow(
        lab,
        layout,
        (&old, fault_at, FAULT_TIMEOUT),
        &mut watch,
        &mut pcs,
        out,
        &mut |watch, out| {
            let facts = &watch.facts;
            let expect = Expect {
                old: &old,
                must_move: true,
                target: target.as_deref(),
            };
            let origin = settled(facts, &layout.pg_nodes, expect);
            let moved = facts.with(SLON, "origin").iter().any(|o| *o != old)
                && watch.narration.acknowledged_on_new_timeline >= 1;
            power.step(lab, facts, &old, moved, fault_at, out)?;
            Ok(match origin {
                Ok(_) if !power.done() => Err(format!("{old} is not on again yet")),
                other => other,
            })
        },
    )?;
    let settled_line = settled_as.as_deref().map(|o| {
        format!(
            "{o} is the origin with the address, {} subscribed and replicating from it",
            others(&layout.pg_nodes, o)
        )
    });
    let figures = conclude(
        lab,
        layout,
        fault,
        (fault_at, end),
        settled_as.as_deref(),
        settled_line.as_deref().unwrap_or(&last_reason),
        (promise(fault), &earlier),
        out,
    )?;
    let mut saved = Vec::new();
    if fault == Fault::Failover {
        let dumps: Vec<_> = slony::failback_dumps(lab, &old)
            .into_iter()
            .filter(|d| !dumps_before.contains(d))
            .collect();
        for dump in &dumps {
            saved.extend(slony::dumped_values(dump)?);
        }
        let lost_saved: Vec<i64> = figures
            .lost
            .iter()
            .copied()
            .filter(|n| saved.contains(n))
            .collect();
        // Where the operator finds them: on the node, not the lab's host.
        let names: Vec<String> = dumps
            .iter()
            .filter_map(|d| d.file_name())
            .map(|f| format!("{}/{}", slony::FAILBACK_DIR, f.to_string_lossy()))
            .collect();
        writeln!(
            out,
            "Saved: {} of the {} lost writes are in the failback dump on {old}{}{}",
            lost_saved.len(),
            figures.lost.len(),
            if names.is_empty() {
                " (none was written)".to_string()
            } else {
                format!(" {}", names.join(", "))
            },
            if figures.lost.is_empty() {
                String::new()
            } else {
                format!(
                    " (the agent wrote it before {old} rejoined; restoring them is the operator's call)"
                )
            }
        )?;
        saved = lost_saved;
    }
    Ok(Outcome {
        old_primary: old,
        saved,
        primary: settled_as,
        figures,
        unchecked_promotion: None,
    })
}

/// Waits until the Slony cluster is in its steady state (see [`settled`]);
/// returns the origin.
pub fn wait_settled(lab: &Lab, layout: &Layout, timeout: Duration) -> Result<String> {
    let mut why = String::new();
    let mut origin = String::new();
    crate::process::wait_for("the Slony cluster's steady state", timeout, || {
        let facts = observe(lab, layout, None);
        let any = facts.with(SLON, "origin").first().map(|o| o.to_string());
        let expect = Expect {
            old: any.as_deref().unwrap_or(""),
            must_move: false,
            target: None,
        };
        match settled(&facts, &layout.pg_nodes, expect) {
            Ok(o) => {
                origin = o;
                Ok(true)
            }
            Err(e) => {
                why = e;
                Ok(false)
            }
        }
    })
    .with_context(|| format!("last seen: {why}"))?;
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        let mut f = Facts::default();
        for (node, slon, sub) in [
            ("node1", "origin", "origin"),
            ("node2", "subscriber", "active"),
            ("node3", "subscriber", "active"),
        ] {
            f.set(node, SLON, slon);
            f.set(node, SET_ORIGIN, "node1");
            f.set(node, SUBSCRIPTION, sub);
        }
        f.set(CLUSTER, ADDRESS, "node1");
        f
    }

    fn nodes() -> Vec<String> {
        vec!["node1".into(), "node2".into(), "node3".into()]
    }

    #[test]
    fn settled_means_one_origin_that_every_catalog_names_and_every_other_node_replicating() {
        let stay = Expect {
            old: "node1",
            must_move: false,
            target: None,
        };
        let moves = Expect {
            must_move: true,
            ..stay
        };
        let f = healthy();
        assert_eq!(settled(&f, &nodes(), stay), Ok("node1".into()));
        assert_eq!(
            settled(&f, &nodes(), moves),
            Err("node1 is still the origin".into())
        );
        // Pacemaker promoted node2, the catalogs do not follow yet.
        let mut g = f.clone();
        g.set("node1", SLON, "subscriber");
        g.set("node2", SLON, "origin");
        g.set(CLUSTER, ADDRESS, "node2");
        assert_eq!(
            settled(&g, &nodes(), moves),
            Err("node1's catalog does not name node2 the origin yet (node1)".into())
        );
        for n in nodes() {
            g.set(&n, SET_ORIGIN, "node2");
        }
        g.set("node1", SUBSCRIPTION, "active");
        g.set("node2", SUBSCRIPTION, "origin");
        assert_eq!(settled(&g, &nodes(), moves), Ok("node2".into()));
        // After a FAILOVER: the old origin out of the Slony cluster until
        // its agent rejoins it, then its copy under way.
        let mut h = g.clone();
        h.set("node1", SET_ORIGIN, NO_SCHEMA);
        assert!(settled(&h, &nodes(), moves)
            .unwrap_err()
            .contains("node1's catalog"));
        h.set("node1", SET_ORIGIN, "node2");
        h.set("node1", SUBSCRIPTION, "inactive");
        assert_eq!(
            settled(&h, &nodes(), moves),
            Err("node1 does not replicate from node2 yet".into())
        );
        let mut two = f.clone();
        two.set("node2", SLON, "origin");
        assert!(settled(&two, &nodes(), stay)
            .unwrap_err()
            .starts_with("2 origins"));
        let mut away = f.clone();
        away.set(CLUSTER, ADDRESS, "node3");
        assert!(settled(&away, &nodes(), stay).is_err());
    }

    #[test]
    fn a_move_goes_to_the_best_scored_subscriber() {
        assert_eq!(
            move_target(&[("node2", Some(800)), ("node3", Some(900))]),
            Some("node3")
        );
        assert_eq!(
            move_target(&[("node3", Some(900)), ("node2", Some(900))]),
            Some("node2")
        );
        assert_eq!(
            move_target(&[("node2", None), ("node3", Some(800))]),
            Some("node3")
        );
        assert_eq!(
            move_target(&[("node3", None), ("node2", None)]),
            Some("node2")
        );
        assert_eq!(move_target(&[]), None);
    }

    #[test]
    fn a_node_s_catalog_is_told_as_origin_and_subscription() {
        assert_eq!(
            catalog_facts("node1", Some((1, None))),
            ("node1".into(), "origin".into())
        );
        assert_eq!(
            catalog_facts("node2", Some((1, Some(true)))),
            ("node1".into(), "active".into())
        );
        assert_eq!(
            catalog_facts("node2", Some((3, Some(false)))),
            ("node3".into(), "inactive".into())
        );
        assert_eq!(
            catalog_facts("node2", None),
            (NO_SCHEMA.into(), "none".into())
        );
    }

    #[test]
    fn a_failover_is_promised_nothing_and_a_move_everything() {
        assert!(promise(Fault::Failover).contains("no setting promises 0 lost"));
        assert!(promise(Fault::Switchover).contains("nothing is lost"));
    }
}
