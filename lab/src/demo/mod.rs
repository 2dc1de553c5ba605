//! The README's demo: a 3-node lab with PostgreSQL as a promotable clone
//! (one primary, streaming standbys, the floating address), pgpool in
//! front of it on every node, and a client writing through pgpool in the
//! background; then faults injected one command at a time, told as they
//! play out, each ending with figures.
//!
//! What runs is described by [`Layout`]: [`Layout::with_pgpool`], the
//! demo's, [`Layout::streaming`] (the client on the floating address), or
//! [`Layout::slony`] (`demo slony`, see [`slony`]): the address the client
//! writes through, what it records of the server that took each write,
//! and [`Probe`]s that add their own facts (pgpool's view of its backends,
//! Slony's origin and subscriptions) to what is narrated and summed up.
//! The narration ([`Watch`]) and the figures ([`conclude`]) are shared.

pub mod client;
pub mod figures;
pub mod narrate;
pub mod pgpool_view;
pub mod slony;
pub mod tail;

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::workload::{written_values, Mark};
use crate::pgpool::{self, Pool};
use crate::postgres::{self, Promotable};
use crate::{ClusterState, Lab, LabConfig};
pub use figures::{Fault, Figures};
use narrate::*;

/// Adds facts to each observation: what a component on top of PostgreSQL
/// (pgpool, slon) shows, as (subject, aspect, value). A new aspect is told
/// as `subject: aspect old -> new` unless [`narrate::describe`] learns a
/// better phrase for it.
pub trait Probe {
    fn observe(&self, lab: &Lab, view: &ClusterState, facts: &mut Facts);
}

/// What the demo sets up on the lab and how its client reaches it.
pub struct Layout {
    /// The nodes that hold PostgreSQL.
    pub pg_nodes: Vec<String>,
    /// The nodes that run pgpool (the pgpool clone); none without pgpool.
    pub pgpool_nodes: Vec<String>,
    /// Where the client connects: the floating address, or pgpool.
    pub client_conninfo: String,
    /// What the client's address is, in words, for the summary.
    pub client_target: String,
    pub probes: Vec<Box<dyn Probe>>,
    /// What the client records of the server that acknowledged each write.
    pub mark: Mark,
    /// The floating address the writes follow (its resource id).
    pub address: &'static str,
    /// Where the demo reads the table of the server that takes the writes
    /// (its floating address: a read through pgpool may be balanced to a
    /// standby that has not replayed the last commits).
    pub table_conninfo: String,
    /// What the server that takes the writes is called.
    pub role: &'static str,
}

impl Layout {
    /// PostgreSQL on every node of the lab, the client on the floating
    /// address.
    pub fn streaming(lab: &Lab) -> Result<Layout> {
        Ok(Layout {
            pg_nodes: lab.nodes()?,
            pgpool_nodes: Vec::new(),
            client_conninfo: postgres::primary_conninfo(lab),
            client_target: format!("the floating address {}", postgres::primary_address(lab)),
            probes: Vec::new(),
            mark: Mark::Timeline,
            address: postgres::VIP,
            table_conninfo: postgres::primary_conninfo(lab),
            role: "primary",
        })
    }

    /// The demo's: PostgreSQL on every node of the lab, pgpool as a clone
    /// on every node in front of it (the README's first layout), and the
    /// client writing through pgpool: every node's pgpool is in its
    /// connection string, and it connects to the first that answers, as
    /// an application that knows each node's pgpool does.
    pub fn with_pgpool(lab: &Lab) -> Result<Layout> {
        let nodes = lab.nodes()?;
        let addresses = nodes
            .iter()
            .map(|n| Ok(lab.address(n)?.to_string()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Layout {
            client_conninfo: pgpool::conninfo_any(lab, &nodes)?,
            client_target: format!(
                "pgpool (port {} of {}, the first that answers)",
                pgpool::PORT,
                addresses.join(", ")
            ),
            probes: vec![Box::new(pgpool_view::PgpoolProbe::new(&nodes))],
            pgpool_nodes: nodes.clone(),
            pg_nodes: nodes,
            mark: Mark::Timeline,
            address: postgres::VIP,
            table_conninfo: postgres::primary_conninfo(lab),
            role: "primary",
        })
    }

    /// `demo slony`'s: PostgreSQL on every node (a plain clone, each its
    /// own server), the Slony set replicated from the origin to the others
    /// by slon (a promotable clone whose Promoted instance is the origin),
    /// and the client writing through the origin's floating address,
    /// recording the Slony node id of the server that took each write.
    pub fn slony(lab: &Lab) -> Result<Layout> {
        Ok(Layout {
            pg_nodes: lab.nodes()?,
            pgpool_nodes: Vec::new(),
            client_conninfo: crate::slony::origin_conninfo(lab),
            client_target: format!(
                "the origin's floating address {} ({})",
                crate::slony::origin_address(lab),
                crate::slony::VIP
            ),
            probes: vec![Box::new(slony::SlonyProbe)],
            mark: Mark::SlonyNode,
            address: crate::slony::VIP,
            table_conninfo: crate::slony::origin_conninfo(lab),
            role: "origin",
        })
    }
}

/// How long a fault may take to play out, recovery of the old primary
/// included, before the demo gives up waiting.
pub const FAULT_TIMEOUT: Duration = Duration::from_secs(240);

/// Brings the demo up: the lab, PostgreSQL replicated and handed to
/// Pacemaker, the client writing. Prints progress, then the summary and
/// the next commands (`command`: how the user calls the demo).
pub fn up(config: &LabConfig, command: &str, out: &mut dyn Write) -> Result<Lab> {
    bring_up(config, (command, "status"), out, &|lab, started, out| {
        set_up(lab, command, started, out)
    })
}

/// The lab of `config`, then `set_up` on it (given when it started);
/// when that fails the lab stays up and the error says how to look
/// (`COMMAND STATUS`) and end it.
pub(crate) fn bring_up(
    config: &LabConfig,
    (command, status): (&str, &str),
    out: &mut dyn Write,
    set_up: &dyn Fn(&Lab, Instant, &mut dyn Write) -> Result<()>,
) -> Result<Lab> {
    let started = Instant::now();
    writeln!(
        out,
        "bringing up {} nodes (corosync, Pacemaker, fencing) in {}",
        config.nodes,
        config.dir.display()
    )?;
    let lab = Lab::up(config)?;
    set_up(&lab, started, out).with_context(|| {
        format!("the lab stays up for a look (`{command} {status}`); end it with `{command} down`")
    })?;
    Ok(lab)
}

fn set_up(lab: &Lab, command: &str, started: Instant, out: &mut dyn Write) -> Result<()> {
    let nodes = lab.nodes()?.len();
    let layout = Layout::with_pgpool(lab)?;
    writeln!(
        out,
        "{:5.1} s  {} nodes online with quorum, fence device lab-fence started",
        started.elapsed().as_secs_f64(),
        nodes
    )?;
    postgres::replicate_by_hand(lab, &layout.pg_nodes)?;
    writeln!(
        out,
        "{:5.1} s  PostgreSQL 15: initdb on {}, base backups on the others (pg_basebackup)",
        started.elapsed().as_secs_f64(),
        layout.pg_nodes[0]
    )?;
    let primary = postgres::create_promotable(
        lab,
        &Promotable::on(&layout.pg_nodes),
        Duration::from_secs(120),
    )?;
    writeln!(
        out,
        "{:5.1} s  pg-clone (ocf:tusk:postgresql, promotable) and pg-vip created: {primary} promoted, {} standbys streaming",
        started.elapsed().as_secs_f64(),
        layout.pg_nodes.len() - 1
    )?;
    if !layout.pgpool_nodes.is_empty() {
        pgpool::configure(lab, &Pool::on(&layout.pg_nodes))?;
        pgpool::create_clone(lab, Duration::from_secs(120))?;
        writeln!(
            out,
            "{:5.1} s  pgpool-clone (ocf:tusk:pgpool) started on {}: pgpool-II on port {} of each node, every PostgreSQL node its backend",
            started.elapsed().as_secs_f64(),
            layout.pgpool_nodes.join(", "),
            pgpool::PORT
        )?;
    }
    wait_settled(lab, &layout, &primary, Duration::from_secs(60))?;
    writeln!(
        out,
        "{:5.1} s  every standby on {primary}'s timeline, {primary}'s commits wait for a synchronous standby{}",
        started.elapsed().as_secs_f64(),
        if layout.pgpool_nodes.is_empty() {
            ""
        } else {
            ", every pgpool sends writes to it"
        }
    )?;
    client::start(lab, &layout.client_conninfo, layout.mark)?;
    writeln!(
        out,
        "{:5.1} s  client writing a row every {} ms through {}\n",
        started.elapsed().as_secs_f64(),
        client::EVERY.as_millis(),
        layout.client_target
    )?;
    write!(out, "{}", summary(lab, &layout)?)?;
    write!(out, "{}", next_commands(lab, command))?;
    Ok(())
}

/// Waits until the cluster is in its steady state with `primary` (see
/// [`narrate::settled`]): the agents publish timelines and pg-sync from
/// their monitors, up to one interval after a promotion.
pub fn wait_settled(lab: &Lab, layout: &Layout, primary: &str, timeout: Duration) -> Result<()> {
    let sync = sync_setting(lab) != "off";
    let mut why = String::new();
    crate::process::wait_for("the cluster's steady state", timeout, || {
        let expect = Expect {
            old: primary,
            must_move: false,
            target: Some(primary),
            sync,
            pgpool: &layout.pgpool_nodes,
        };
        match settled(&observe(lab, layout, None), &layout.pg_nodes, expect) {
            Ok(_) => Ok(true),
            Err(e) => {
                why = e;
                Ok(false)
            }
        }
    })
    .with_context(|| format!("last seen: {why}"))
}

/// What runs where, and what the client sees.
pub fn summary(lab: &Lab, layout: &Layout) -> Result<String> {
    let facts = observe(lab, layout, None);
    let report = client::report(lab)?;
    let mut text = String::from("What runs where:\n");
    let nodes = lab.nodes()?;
    for node in &nodes {
        let get = |aspect| facts.get(node, aspect);
        let mut parts: Vec<String> = Vec::new();
        parts.push(
            match (get(POWER), get(CABLE)) {
                (Some("off"), _) => "powered off",
                (_, Some("out")) => "cable out",
                _ => get(MEMBERSHIP).unwrap_or("?"),
            }
            .to_string(),
        );
        if layout.pg_nodes.contains(node) {
            let role = get(POSTGRESQL).unwrap_or("?");
            let mut pg = format!("PostgreSQL {role}");
            if let Some(tl) = get(TIMELINE) {
                pg += &format!(", timeline {tl}");
            }
            match get(REPLICATION) {
                Some(IS_PRIMARY) | None => {}
                Some(r) => pg += &format!(", {r}"),
            }
            parts.push(pg);
        }
        if let Some(slon) = get(SLON) {
            let catalog = match (get(SET_ORIGIN), get(SUBSCRIPTION)) {
                (Some(NO_SCHEMA), _) => format!(" ({NO_SCHEMA})"),
                (Some(origin), _) if origin == node => " (its catalog: the set's origin)".into(),
                (Some(origin), Some(sub)) => {
                    format!(" (its catalog: origin {origin}, subscription {sub})")
                }
                _ => String::new(),
            };
            parts.push(format!("slon {slon}{catalog}"));
        }
        if facts.get(CLUSTER, ADDRESS) == Some(node.as_str()) {
            parts.push(format!(
                "holds the floating address {}",
                postgres::primary_address(lab)
            ));
        }
        // Only the primary's: a former primary keeps its last pg-sync.
        if let Some(sync) = get(SYNC).filter(|_| get(POSTGRESQL) == Some("primary")) {
            parts.push(format!("pg-sync={sync}"));
        }
        if layout.pgpool_nodes.contains(node) {
            let mut pool = format!("pgpool {}", get(PGPOOL).unwrap_or("?"));
            if let Some(backends) = get(PGPOOL_BACKENDS) {
                pool += &format!(" (pgpool-backends: {backends})");
            }
            parts.push(pool);
        }
        text += &format!("  {node:<6} {}\n", parts.join(", "));
    }
    if let Some(dc) = facts.get(CLUSTER, DC) {
        text +=
            &format!("  DC: {dc}; fencing: lab-fence (fence_tusklab, the lab's power switch)\n");
    }
    if layout.mark == Mark::SlonyNode {
        text += "  Slony-I: set 1 (the client's table) replicated from the origin to every \
                 subscriber by slon, asynchronously: a commit does not wait for any subscriber\n";
    } else {
        let sync = sync_setting(lab);
        text += &format!(
            "  sync={sync}: {}\n",
            match sync.as_str() {
                "available" =>
                    "a commit waits for one standby (synchronous_standby_names = ANY 1 of the others) while one streams",
                "strict" => "a commit always waits for a synchronous standby",
                _ => "commits do not wait for standbys",
            }
        );
    }
    if !layout.pgpool_nodes.is_empty() {
        text += &pgpool_summary(&facts, layout);
    }
    let last = report.acknowledged.last().map(|(_, at)| at.elapsed());
    let timeline = report.timelines.last().map(|(_, tl)| *tl);
    text += &format!(
        "  client ({}): {} writes acknowledged through {}{}{}\n",
        if client::is_running(lab) {
            "running"
        } else {
            "NOT running"
        },
        report.acknowledged.len(),
        layout.client_target,
        last.map_or(String::new(), |d| format!(
            ", the last {:.1} s ago",
            d.as_secs_f64()
        )),
        timeline.map_or(String::new(), |tl| format!(
            " ({} {tl})",
            layout.mark.word()
        )),
    );
    Ok(text)
}

/// What each pgpool shows of its backends, and whether that agrees with
/// Pacemaker's primary and standbys.
fn pgpool_summary(facts: &Facts, layout: &Layout) -> String {
    let mut text = format!(
        "What each pgpool sees (SHOW pool_nodes through it, port {}; it sends writes to its primary):\n",
        pgpool::PORT
    );
    let primaries = facts.with(POSTGRESQL, "primary");
    for node in &layout.pgpool_nodes {
        let line = match (facts.get(node, PGPOOL), facts.get(node, PGPOOL_ANSWERS)) {
            (Some("running"), Some("yes")) => {
                let view = facts.get(node, PGPOOL_VIEW).unwrap_or("?");
                let agrees = match primaries.as_slice() {
                    [primary] => match pgpool_agrees(facts, node, primary, &layout.pg_nodes) {
                        Ok(()) => "agrees with Pacemaker".to_string(),
                        Err(why) => format!("not in step yet: {why}"),
                    },
                    _ => format!("Pacemaker has {} primaries", primaries.len()),
                };
                format!("{view}  ({agrees})")
            }
            (Some("running"), _) => "does not answer a new client".to_string(),
            (Some(runs), _) => runs.to_string(),
            (None, _) => "unknown".to_string(),
        };
        text += &format!("  {node:<6} {line}\n");
    }
    text
}

fn next_commands(lab: &Lab, command: &str) -> String {
    let exe = std::env::current_exe()
        .map(|e| e.display().to_string())
        .unwrap_or_else(|_| "tusk-lab".to_string());
    let vip = postgres::primary_address(lab);
    let pgpass = format!("{}/pgpass", pgpool::DIR);
    let port = pgpool::PORT;
    let node1 = lab
        .nodes()
        .ok()
        .and_then(|n| lab.address(n.first()?).ok())
        .map_or("NODE1".to_string(), |a| a.to_string());
    format!(
        "\nNext, while the client keeps writing (each fault is told as it happens and ends with figures):\n\
         \x20 sudo {command} failover      the primary's node loses power\n\
         \x20 sudo {command} switchover    planned: pcs resource move pg-clone NODE --promoted\n\
         \x20 sudo {command} partition     the primary's cable is pulled, and plugged back in later\n\
         \x20 sudo {command} status        what runs where, and what the client sees\n\
         \x20 sudo {exe} exec node1 crm_mon -1 -A   the cluster and its node attributes, as Pacemaker shows them\n\
         \x20 sudo {exe} exec node1 bash            a shell on node1 (pcs, crm_mon, psql -h {vip} -U postgres)\n\
         \x20 sudo {exe} exec node1 env PGPASSFILE={pgpass} psql -h {node1} -p {port} -U postgres -c 'SHOW pool_nodes'\n\
         \x20                                       pgpool's view of its backends, through node1's pgpool\n\
         \x20 sudo {command} down          end it all, the client included\n"
    )
}

/// The agent's `sync` parameter as the CIB has it (`available`, the
/// agent's default, when it is not set or cannot be read).
pub fn sync_setting(lab: &Lab) -> String {
    postgres::observer(lab)
        .and_then(|node| {
            lab.exec(
                &node,
                &[
                    "crm_resource",
                    "--resource",
                    postgres::RESOURCE,
                    "--get-parameter",
                    "sync",
                ],
            )
        })
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "available".to_string())
}

/// One observation of the lab: power, cables and boots from the lab's
/// record; membership, roles, the address and the agent's attributes from
/// a connected node's crm_mon; replication from the primary's
/// `pg_stat_replication`; a cut-off node's own view from its crm_mon; then
/// the layout's probes. What cannot be established is left out (unknown).
///
/// Cluster facts come from a connected node other than `avoid` when there
/// is one: a node that has just rejoined (the faulted one) reports the
/// others as lost for a moment, which is its own view, not news.
pub fn observe(lab: &Lab, layout: &Layout, avoid: Option<&str>) -> Facts {
    let mut facts = Facts::default();
    let Ok(state) = lab.state() else {
        return facts;
    };
    for node in &state.nodes {
        let running = node.holder.as_ref().filter(|h| h.is_running());
        facts.set(
            &node.name,
            POWER,
            if running.is_some() { "on" } else { "off" },
        );
        if let Some(holder) = running {
            facts.set(&node.name, BOOT, holder.init.pid.to_string());
        }
        facts.set(
            &node.name,
            CABLE,
            if node.partitioned { "out" } else { "in" },
        );
        if node.partitioned && running.is_some() {
            if let Ok(view) = lab.view(&node.name) {
                facts.set(&node.name, OWN_VIEW, own_view(&node.name, &view));
            }
        }
    }
    let fenced = std::fs::read_to_string(lab.dir().join("fence-daemon.log"))
        .map(|log| fencings(&log))
        .unwrap_or_default();
    for node in &state.nodes {
        let value = fenced
            .get(&node.name)
            .map_or("0".to_string(), |(n, action)| format!("{n} {action}"));
        facts.set(&node.name, FENCED, value);
    }
    let connected: Vec<&str> = state
        .nodes
        .iter()
        .filter(|n| !n.partitioned && n.holder.as_ref().is_some_and(|h| h.is_running()))
        .map(|n| n.name.as_str())
        .collect();
    let observer = connected
        .iter()
        .find(|n| Some(**n) != avoid)
        .or(connected.first());
    let Some(Ok(view)) = observer.map(|o| lab.view(o)) else {
        return facts;
    };
    facts.set(CLUSTER, DC, view.dc().unwrap_or("none"));
    for node in &view.nodes.list {
        let membership = match (node.online, node.unclean) {
            (true, _) => "online",
            (false, true) => "lost",
            (false, false) => "offline",
        };
        facts.set(&node.name, MEMBERSHIP, membership);
        if !node.online && !node.unclean && layout.pg_nodes.contains(&node.name) {
            // Fenced or cleanly gone: nothing of it runs.
            facts.set(&node.name, POSTGRESQL, "stopped");
        }
    }
    let online: Vec<&str> = layout
        .pg_nodes
        .iter()
        .map(String::as_str)
        .filter(|n| view.is_online(n))
        .collect();
    instance_facts(
        &mut facts,
        &view,
        (postgres::RESOURCE, ""),
        &online,
        POSTGRESQL,
        &|role| {
            match role {
                "Promoted" => "primary",
                "Unpromoted" => "standby",
                "Stopped" => "stopped",
                // A plain clone (the Slony layout): each node its own server.
                "Started" => "running",
                other => other,
            }
            .to_string()
        },
    );
    let address = view.nodes_in_role(layout.address, "Started");
    facts.set(
        CLUSTER,
        ADDRESS,
        address.first().copied().unwrap_or("nowhere"),
    );
    for node in &layout.pg_nodes {
        for (attribute, aspect) in [
            (postgres::ATTR_TIMELINE, TIMELINE),
            (postgres::ATTR_SYNC, SYNC),
        ] {
            if let Some(value) = view.attribute(node, attribute) {
                facts.set(node, aspect, value);
            }
        }
    }
    let primaries = view.nodes_in_role(postgres::RESOURCE, "Promoted");
    if let [primary] = primaries.as_slice() {
        if connected.contains(primary) {
            if let Ok(replicas) = postgres::replication(lab, primary) {
                for node in &layout.pg_nodes {
                    let value = if node == primary {
                        IS_PRIMARY.to_string()
                    } else {
                        replicas
                            .iter()
                            .find(|r| &r.name == node)
                            .map_or("not streaming".to_string(), |r| {
                                format!("{}, {}", r.state, r.sync_state)
                            })
                    };
                    facts.set(node, REPLICATION, value);
                }
            }
        }
    }
    for probe in &layout.probes {
        probe.observe(lab, &view, &mut facts);
    }
    facts
}

/// The role of the instance of a clone on each of the `online` nodes, as
/// crm_mon lists them: (node, role, failed). crm_mon lists an instance in
/// the middle of an operation (`Demoting`, `Promoting`) without its node:
/// when there is one such and exactly one online node without an
/// instance, it is that node's; an online node without an instance is
/// `Stopped`, unless an instance without a node could be its (then it is
/// left out: unknown).
pub fn instance_roles(
    instances: &[&crate::crm_mon::Resource],
    online: &[&str],
) -> Vec<(String, String, bool)> {
    let mut roles: Vec<(String, String, bool)> = Vec::new();
    for instance in instances {
        for node in &instance.nodes {
            if online.contains(&node.name.as_str()) {
                roles.push((node.name.clone(), instance.role.clone(), instance.failed));
            }
        }
    }
    let unlisted: Vec<&str> = online
        .iter()
        .copied()
        .filter(|n| !roles.iter().any(|(m, _, _)| m == n))
        .collect();
    let pending: Vec<&&crate::crm_mon::Resource> = instances
        .iter()
        .filter(|r| r.nodes.is_empty() && r.role != "Stopped")
        .collect();
    match (pending.as_slice(), unlisted.as_slice()) {
        ([one], [node]) => roles.push((node.to_string(), one.role.clone(), one.failed)),
        ([], _) => {
            roles.extend(
                unlisted
                    .iter()
                    .map(|n| (n.to_string(), "Stopped".to_string(), false)),
            );
        }
        _ => {}
    }
    roles
}

/// How a cut-off node sees the cluster and itself.
fn own_view(node: &str, view: &ClusterState) -> String {
    let quorum = if view.has_quorum() {
        "quorum"
    } else {
        "no quorum"
    };
    let roles = postgres::roles_in(view);
    let role = if roles.promoted.iter().any(|n| n == node) {
        "primary"
    } else if roles.unpromoted.iter().any(|n| n == node) {
        "standby"
    } else {
        "stopped"
    };
    format!("{quorum}, PostgreSQL {role}")
}

/// What a fault ended with.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub old_primary: String,
    /// Of the lost writes, those the slon agent saved in the failed
    /// origin's failback dump before it rejoined (Slony: empty otherwise).
    pub saved: Vec<i64>,
    /// The primary at the end (None: it did not settle in time).
    pub primary: Option<String>,
    pub figures: Figures,
    /// The new primary was not the synchronous standby before the fault,
    /// and the agent said it did not compare it with the one that was: no
    /// loss is promised for such a promotion, whatever the figures show.
    pub unchecked_promotion: Option<String>,
}

impl Outcome {
    /// Settled with one primary, every standby streaming, nothing lost
    /// (but what the agent saved where Slony loses it).
    pub fn ok(&self) -> bool {
        self.primary.is_some() && self.figures.lost.iter().all(|n| self.saved.contains(n))
    }
}

/// Injects `fault` on the primary (a switchover moves it to `to`, or to the
/// synchronous standby), tells what the cluster does, one line per change
/// with the time since the fault, until it has settled again, and ends with
/// the figures.
pub fn run_fault(
    lab: &Lab,
    layout: &Layout,
    fault: Fault,
    to: Option<&str>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let standbys = layout.pg_nodes.len() - 1;
    let not_ready = "the cluster is not ready for a fault (one primary, every standby streaming, \
         every pgpool in step); `demo status` shows it";
    undo_interrupted_failover(lab, out)?;
    let old =
        postgres::wait_replicating(lab, standbys, Duration::from_secs(60)).context(not_ready)?;
    wait_settled(lab, layout, &old, Duration::from_secs(60)).context(not_ready)?;
    if !client::is_running(lab) {
        bail!("the demo's client does not run (`demo` starts it with the lab)");
    }
    let sync = sync_setting(lab);
    let facts = observe(lab, layout, Some(&old));
    // Why the switchover goes where it goes, when not told.
    let mut chosen = String::new();
    let target = match (fault, to) {
        (Fault::Switchover, Some(to)) => {
            if to == old || !layout.pg_nodes.iter().any(|n| n == to) {
                bail!(
                    "{to} is not a standby; the standbys: {:?}",
                    facts.with(POSTGRESQL, "standby")
                );
            }
            Some(to.to_string())
        }
        (Fault::Switchover, None) => {
            // The primary's own view: under ANY 1 every standby shows
            // "quorum", and the one that flushed the most holds every
            // acknowledged commit.
            let replicas = postgres::replication(lab, &old)?;
            let target = postgres::switchover_target(&replicas)
                .context("no standby streams: nothing to switch over to")?
                .to_string();
            chosen = match replicas.iter().find(|r| r.name == target) {
                Some(r) if r.sync_state == "sync" => {
                    format!("Target: {target}, the standby {old} reports synchronous.")
                }
                Some(r) => format!(
                    "Target: {target}, the streaming standby that has flushed the most of \
                     {old}'s WAL (pg_stat_replication: flushed to byte {}, sync_state {}).",
                    r.flushed, r.sync_state
                ),
                None => String::new(),
            };
            Some(target)
        }
        _ => None,
    };
    let before = client::report(lab)?;
    let timeline_before = before.timelines.last().map_or(0, |(_, tl)| *tl);
    let earlier = lost_so_far(lab, layout)?;
    let mut watch = Watch::new(lab, layout, facts, timeline_before)?;
    let facts = &watch.facts;
    writeln!(
        out,
        "Before: {old} is the primary (timeline {timeline_before}), {} stream from it; the client has {} writes acknowledged.",
        facts.with(POSTGRESQL, "standby").join(" and "),
        before.acknowledged.len()
    )?;
    if !chosen.is_empty() {
        writeln!(out, "{chosen}")?;
    }
    if fault == Fault::Failover {
        writeln!(
            out,
            "For this fault the fence device switches {old} off (stonith-action=off) and the demo \
             switches it on again once another node is the primary: a real server takes minutes \
             to boot, the lab's nodes a second, and one back before the promotion would have it \
             compared with the standbys (the most WAL is promoted, itself included)."
        )?;
    }

    let old_boot = facts.get(&old, BOOT).map(str::to_string);
    let sync_before: Option<String> = layout
        .pg_nodes
        .iter()
        .find(|n| facts.get(n, REPLICATION) == Some("streaming, sync"))
        .cloned();
    let (fault_at, mut pcs) = inject(lab, fault, &old, target.as_deref(), postgres::CLONE, out)?;
    let mut healed = fault != Fault::Partition;
    let mut power = PowerBack::new(fault, Duration::from_secs(90));
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
                sync: sync != "off",
                pgpool: &layout.pgpool_nodes,
            };
            let primary = settled(facts, &layout.pg_nodes, expect);
            let promoted = facts.with(POSTGRESQL, "primary").iter().any(|p| *p != old)
                && watch.narration.acknowledged_on_new_timeline >= 1;
            power.step(lab, facts, &old, promoted, fault_at, out)?;
            if !healed && ready_to_heal(lab, facts, &old, old_boot.as_deref(), fault_at) {
                lab.heal(&old)?;
                healed = true;
                writeln!(
                    out,
                    "{}  {old}'s cable goes back in (tusk-lab heal {old})",
                    stamp(fault_at, Instant::now())
                )?;
            }
            Ok(match primary {
                Ok(_) if !healed || !power.done() => Err("the old node is not back yet".into()),
                other => other,
            })
        },
    )?;
    let settled_line = settled_as.as_deref().map(|p| {
        format!(
            "{p} is the primary, {} stream from it{}",
            others(&layout.pg_nodes, p),
            if layout.pgpool_nodes.is_empty() {
                String::new()
            } else {
                format!(
                    "; pgpool on {} sends writes to {p} and has the standbys attached",
                    layout.pgpool_nodes.join(", ")
                )
            }
        )
    });
    let figures = conclude(
        lab,
        layout,
        fault,
        (fault_at, end),
        settled_as.as_deref(),
        settled_line.as_deref().unwrap_or(&last_reason),
        (&figures::promise(fault, &sync), &earlier),
        out,
    )?;
    let unchecked_promotion = unchecked_promotion(
        fault,
        settled_as.as_deref(),
        sync_before.as_deref(),
        watch.not_compared,
    );
    if let Some(caution) = &unchecked_promotion {
        writeln!(out, "Caution: {caution}")?;
    }
    Ok(Outcome {
        unchecked_promotion,
        saved: Vec::new(),
        old_primary: old,
        primary: settled_as,
        figures,
    })
}

/// What a fault's narration follows, poll after poll: the cluster reduced
/// to facts ([`observe`]), the agents' own log lines in each node's
/// pacemaker.log (each decision: why a promotion waited, what a start
/// found, a FAILOVER), and the client's record.
pub struct Watch {
    pub facts: Facts,
    tail: client::Tail,
    agent_logs: Vec<(String, tail::LineTail)>,
    pub narration: client::ClientNarration,
    /// A postgresql agent said it promoted without comparing a candidate.
    pub not_compared: bool,
}

impl Watch {
    /// From now on, with `facts` as the cluster before the fault and
    /// `before` the client's mark (timeline, origin) of its last write.
    pub fn new(lab: &Lab, layout: &Layout, facts: Facts, before: u32) -> Result<Watch> {
        let agent_logs = lab
            .nodes()?
            .into_iter()
            .map(|node| {
                let path =
                    crate::node::NodeDir::new(lab.dir(), &node).log("pacemaker/pacemaker.log");
                (node, tail::LineTail::from_end(path))
            })
            .collect();
        Ok(Watch {
            facts,
            tail: client::Tail::from_end(lab),
            agent_logs,
            narration: client::ClientNarration::new(before, layout.mark),
            not_compared: false,
        })
    }

    /// Observes again: the lines for what changed since the last poll,
    /// each with when it was seen (`avoid`: the faulted node, not asked for
    /// the cluster's view).
    pub fn poll(
        &mut self,
        lab: &Lab,
        layout: &Layout,
        avoid: &str,
    ) -> Result<Vec<(Instant, String)>> {
        let polled = Instant::now();
        let next = self.facts.merge(&observe(lab, layout, Some(avoid)));
        let mut lines: Vec<(Instant, String)> = self
            .facts
            .changes(&next)
            .into_iter()
            .map(|l| (polled, l))
            .collect();
        self.facts = next;
        for (node, log) in &mut self.agent_logs {
            for line in log
                .read()?
                .iter()
                .filter_map(|l| tail::agent_line(l))
                // pgpool's view, as the agent summed it up at its monitor:
                // the pgpool lines tell it as it changes.
                .filter(|l| !l.contains(") INFO: backends: "))
            {
                self.not_compared |= line.contains("not compared");
                lines.push((polled, format!("{node}: {line}")));
            }
        }
        for (at, entry) in self.tail.read()? {
            if let Some(line) = self.narration.feed(&entry) {
                lines.push((at, line));
            }
        }
        Ok(lines)
    }
}

/// Injects `fault` on `old`, the node whose instance of the promotable
/// `clone` is Promoted (a switchover moves it to `target` with pcs, in
/// the background), and tells it; returns the moment of the fault and the
/// pcs child. For a failover the fence device is first set to switch the
/// node off (before the clock starts: pcs takes a second).
pub(crate) fn inject(
    lab: &Lab,
    fault: Fault,
    old: &str,
    target: Option<&str>,
    clone: &str,
    out: &mut dyn Write,
) -> Result<(Instant, Option<Child>)> {
    if fault == Fault::Failover {
        set_stonith_action(lab, old, OFF)?;
    }
    let fault_at = Instant::now();
    let mut pcs = None;
    let line = match fault {
        Fault::Failover => {
            lab.crash(old)?;
            format!("{old} loses power (tusk-lab crash {old}): every process on it dies at once")
        }
        Fault::Partition => {
            lab.partition(old)?;
            format!("{old}'s cable is pulled (tusk-lab partition {old}): it runs on, alone")
        }
        Fault::Switchover => {
            let target = target.context("no target for a switchover")?;
            pcs = Some(move_promoted(lab, old, clone, target)?);
            format!("pcs resource move {clone} {target} --promoted (on {old})")
        }
    };
    writeln!(out, "{}  {line}", stamp(fault_at, fault_at))?;
    out.flush()?;
    Ok((fault_at, pcs))
}

/// The facts of the instances of the clone of `resource` on the `online`
/// nodes: `aspect` = its role in the layout's words (`word`), with
/// ` (failed)` when crm_mon says so; and its failed operations,
/// `failed LABEL OPERATION` (see [`instance_roles`]).
pub fn instance_facts(
    facts: &mut Facts,
    view: &ClusterState,
    (resource, label): (&str, &str),
    online: &[&str],
    aspect: &str,
    word: &dyn Fn(&str) -> String,
) {
    for (node, role, failed) in instance_roles(&view.instances(resource), online) {
        let role = word(&role);
        let role = if failed {
            format!("{role} (failed)")
        } else {
            role
        };
        facts.set(&node, aspect, role);
    }
    for failure in view.failures_of(resource) {
        let reason = if failure.exitreason.is_empty() {
            String::new()
        } else {
            format!(": {}", failure.exitreason)
        };
        facts.set(
            &failure.node,
            &format!("{FAILED}{label}{}", failure.task),
            format!("exit {}{reason}", failure.exitcode),
        );
    }
}

/// The time of `at` since the fault, as each line of narration starts.
pub(crate) fn stamp(fault_at: Instant, at: Instant) -> String {
    let secs = at.saturating_duration_since(fault_at).as_secs_f64();
    format!("{secs:+6.1} s")
}

/// The nodes of `nodes` but `but`, in words ("node1 and node3").
pub(crate) fn others(nodes: &[String], but: &str) -> String {
    nodes
        .iter()
        .filter(|n| *n != but)
        .cloned()
        .collect::<Vec<_>>()
        .join(" and ")
}

/// What [`follow`] asks after each poll: act on what is known, then the
/// server taking writes once settled, or what is missing.
pub(crate) type Check<'a> =
    dyn FnMut(&Watch, &mut dyn Write) -> Result<Result<String, String>> + 'a;

/// Follows a fault: every 500 ms the [`Watch`] polls and its lines are
/// told (with the end of the background `pcs`), then `check` acts on what
/// is known (switches a node on, plugs a cable back) and says whether the
/// cluster settled (`Ok`: the server taking writes) or what is missing.
/// Ends once settled with `pcs` returned and 3 writes acknowledged by the
/// new server (`layout.mark`), or after `timeout`. Returns the server it
/// settled with, the last thing missing, and when it ended.
pub(crate) fn follow(
    lab: &Lab,
    layout: &Layout,
    (old, fault_at, timeout): (&str, Instant, Duration),
    watch: &mut Watch,
    pcs: &mut Option<Child>,
    out: &mut dyn Write,
    check: &mut Check,
) -> Result<(Option<String>, String, Instant)> {
    let deadline = fault_at + timeout;
    let mut last_reason = String::new();
    let mut settled_as = None;
    loop {
        let polled = Instant::now();
        let mut lines = watch.poll(lab, layout, old)?;
        lines.extend(poll_pcs(pcs)?);
        lines.sort_by_key(|(at, _)| *at);
        for (at, line) in &lines {
            writeln!(out, "{}  {line}", stamp(fault_at, *at))?;
        }
        out.flush()?;
        match check(watch, out)? {
            Ok(server) if pcs.is_none() && watch.narration.acknowledged_on_new_timeline >= 3 => {
                settled_as = Some(server);
                break;
            }
            Ok(_) if pcs.is_some() => last_reason = "waiting for pcs resource move".into(),
            Ok(_) => {
                last_reason = format!("waiting for the client's writes on the new {}", layout.role)
            }
            Err(why) => last_reason = why,
        }
        if Instant::now() >= deadline {
            writeln!(
                out,
                "{}  not settled after {} s: {last_reason}",
                stamp(fault_at, Instant::now()),
                timeout.as_secs()
            )?;
            break;
        }
        std::thread::sleep(Duration::from_millis(500).saturating_sub(polled.elapsed()));
    }
    end_child(pcs);
    Ok((settled_as, last_reason, Instant::now()))
}

/// After a power loss: the fence device set back to reboot once the old
/// node is fenced (offline), and the node switched on again once another
/// node took writes (`ready`) or after `within`, as an operator would.
pub(crate) struct PowerBack {
    fence_reset: bool,
    switched_on: bool,
    within: Duration,
}

impl PowerBack {
    /// Nothing to do but for a failover.
    pub(crate) fn new(fault: Fault, within: Duration) -> PowerBack {
        PowerBack {
            fence_reset: fault != Fault::Failover,
            switched_on: fault != Fault::Failover,
            within,
        }
    }

    pub(crate) fn step(
        &mut self,
        lab: &Lab,
        facts: &Facts,
        old: &str,
        ready: bool,
        fault_at: Instant,
        out: &mut dyn Write,
    ) -> Result<()> {
        if !self.fence_reset && facts.get(old, MEMBERSHIP) == Some("offline") {
            let on = postgres::observer(lab)?;
            set_stonith_action(lab, &on, REBOOT)?;
            self.fence_reset = true;
        }
        if self.fence_reset && !self.switched_on && (ready || fault_at.elapsed() > self.within) {
            lab.power_on(old)?;
            self.switched_on = true;
            writeln!(
                out,
                "{}  {old} is switched on again (tusk-lab restart {old}), as an operator would once the cluster runs without it",
                stamp(fault_at, Instant::now())
            )?;
        }
        Ok(())
    }

    /// The node is on again (or never was off).
    pub(crate) fn done(&self) -> bool {
        self.switched_on
    }
}

/// `pcs resource move CLONE TARGET --promoted`, run on `on` in the
/// background (it waits for the move, then removes its constraint).
pub(crate) fn move_promoted(lab: &Lab, on: &str, clone: &str, target: &str) -> Result<Child> {
    lab.command(on, "pcs")?
        .args(["resource", "move", clone, target, "--promoted"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pcs resource move")
}

/// The line for the end of the background `pcs resource move`, once it
/// ended (then `pcs` is None).
fn poll_pcs(pcs: &mut Option<Child>) -> Result<Option<(Instant, String)>> {
    let Some(child) = pcs.as_mut() else {
        return Ok(None);
    };
    let Some(status) = child.try_wait()? else {
        return Ok(None);
    };
    let output = pcs.take().expect("checked").wait_with_output()?;
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.lines().last().unwrap_or("").trim().to_string();
    Ok(Some((
        Instant::now(),
        if status.success() {
            "pcs resource move returned: done, its temporary constraint removed".to_string()
        } else {
            format!("pcs resource move failed ({status}): {said}")
        },
    )))
}

/// Ends our own `pcs` child, still running at the deadline.
fn end_child(pcs: &mut Option<Child>) {
    if let Some(mut child) = pcs.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The client's acknowledged writes missing from the table of the server
/// taking writes now: before a fault, what an earlier one lost (Slony).
pub fn lost_so_far(lab: &Lab, layout: &Layout) -> Result<Vec<i64>> {
    let report = client::report(lab)?;
    let present = written_values(&lab.switch_netns()?, &layout.table_conninfo)
        .context("reading the client's rows through the floating address")?;
    Ok(report.lost(&present))
}

/// The end of a fault: the settled state (`settled`: the sentence for it,
/// or why it did not settle), then the figures from the client's record
/// against the table of the server now taking writes, and the promise.
/// The client's record is read first: every value in it was committed
/// before the table is read.
#[allow(clippy::too_many_arguments)]
pub fn conclude(
    lab: &Lab,
    layout: &Layout,
    fault: Fault,
    (fault_at, end): (Instant, Instant),
    primary: Option<&str>,
    settled: &str,
    (promise, earlier): (&str, &[i64]),
    out: &mut dyn Write,
) -> Result<Figures> {
    let report = client::report(lab)?;
    let present = written_values(&lab.switch_netns()?, &layout.table_conninfo)
        .context("reading the client's rows through the floating address")?;
    let figures = Figures::of(&report, fault_at, end, &present, earlier);
    match primary {
        Some(_) => writeln!(
            out,
            "\nSettled after {:.1} s: {settled}.",
            (end - fault_at).as_secs_f64()
        )?,
        None => writeln!(out, "\nNOT settled: {settled}")?,
    }
    writeln!(
        out,
        "Figures (the client writes a row every {} ms through {}):",
        client::EVERY.as_millis(),
        layout.client_target
    )?;
    write!(
        out,
        "{}",
        figures.render(primary.unwrap_or("?"), fault, layout.role, layout.mark)
    )?;
    writeln!(out, "Promised: {promise}")?;
    Ok(figures)
}

/// What an interrupted failover leaves: the fence device switching fenced
/// nodes off, and the node it switched off.
pub(crate) fn undo_interrupted_failover(lab: &Lab, out: &mut dyn Write) -> Result<()> {
    let on = postgres::observer(lab)?;
    if stonith_action(lab, &on).as_deref() == Some(OFF) {
        set_stonith_action(lab, &on, REBOOT)?;
    }
    for node in lab.nodes()? {
        if !lab.is_running(&node)? {
            writeln!(
                out,
                "{node} is powered off (an interrupted failover?): switching it on first"
            )?;
            lab.power_on(&node)?;
        }
    }
    Ok(())
}

/// What the fence device does to a fenced node: the cluster property
/// `stonith-action`, as `node` reads it (None: not set, Pacemaker's
/// default, reboot).
fn stonith_action(lab: &Lab, node: &str) -> Option<String> {
    lab.exec(
        node,
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "stonith-action",
            "--query",
            "--quiet",
        ],
    )
    .ok()
    .filter(|out| out.status.success())
    .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
    .filter(|v| !v.is_empty())
}

pub(crate) const OFF: &str = "off";
pub(crate) const REBOOT: &str = "reboot";

pub(crate) fn set_stonith_action(lab: &Lab, node: &str, action: &str) -> Result<()> {
    let out = lab.exec(
        node,
        &[
            "pcs",
            "property",
            "set",
            &format!("stonith-action={action}"),
        ],
    )?;
    if !out.status.success() {
        bail!(
            "pcs property set stonith-action={action} on {node}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A partition is healed once the majority has promoted a new primary and
/// fenced the old one, and the old node has booted again, alone without
/// quorum, as after a real fencing reboot behind a pulled cable; or after
/// 90 s whatever happened.
fn ready_to_heal(
    lab: &Lab,
    facts: &Facts,
    old: &str,
    old_boot: Option<&str>,
    fault: Instant,
) -> bool {
    if fault.elapsed() > Duration::from_secs(90) {
        return true;
    }
    let promoted = facts.with(POSTGRESQL, "primary").iter().any(|p| *p != old);
    let rebooted = facts.get(old, BOOT).is_some_and(|b| Some(b) != old_boot);
    promoted
        && rebooted
        && lab
            .view(old)
            .is_ok_and(|v| v.dc() == Some(old) && !v.has_quorum())
}

/// Whether a promotion after a crash or a partition went to a standby that
/// was not the synchronous one, with the agent saying it did not compare
/// WAL positions: then the synchronous standby alone may have held the
/// last acknowledged commits, and nothing ruled that out.
pub fn unchecked_promotion(
    fault: Fault,
    promoted: Option<&str>,
    sync_before: Option<&str>,
    not_compared: bool,
) -> Option<String> {
    let (Some(promoted), Some(sync_before)) = (promoted, sync_before) else {
        return None;
    };
    (fault != Fault::Switchover && promoted != sync_before && not_compared).then(|| {
        format!(
            "{promoted} was promoted, but {sync_before} was the synchronous standby before \
             the fault and the agent did not compare their WAL (its WARNING above): a write \
             acknowledged just before the fault may have been on {sync_before} only, and no \
             setting promises that such a promotion loses nothing (the figures above say \
             whether this one did)."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(role: &str, nodes: &[&str]) -> crate::crm_mon::Resource {
        crate::crm_mon::Resource {
            id: "slon".into(),
            agent: "ocf:tusk:slon".into(),
            role: role.into(),
            active: !nodes.is_empty(),
            blocked: false,
            failed: false,
            managed: true,
            nodes: nodes
                .iter()
                .map(|n| crate::crm_mon::NodeRef {
                    name: n.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_instance_crm_mon_lists_without_its_node_mid_demote_is_the_unlisted_node_s() {
        let online = ["node1", "node2", "node3"];
        let role = |roles: &[(String, String, bool)], node: &str| {
            roles
                .iter()
                .find(|(n, _, _)| n == node)
                .map(|(_, r, _)| r.clone())
        };
        // crm_mon during a demote: the demoting instance has no node.
        let (a, b, c) = (
            instance("Unpromoted", &["node3"]),
            instance("Demoting", &[]),
            instance("Unpromoted", &["node2"]),
        );
        let roles = instance_roles(&[&a, &b, &c], &online);
        assert_eq!(role(&roles, "node1").as_deref(), Some("Demoting"));
        assert_eq!(role(&roles, "node2").as_deref(), Some("Unpromoted"));
        // A stopped instance has no node either: an online node without
        // one is stopped.
        let d = instance("Stopped", &[]);
        let roles = instance_roles(&[&a, &d, &c], &online);
        assert_eq!(role(&roles, "node1").as_deref(), Some("Stopped"));
        // Two nodes without an instance and one pending: unknown.
        let roles = instance_roles(&[&a, &b], &online);
        assert_eq!(role(&roles, "node1"), None);
        assert_eq!(role(&roles, "node2"), None);
    }

    #[test]
    fn a_promotion_is_unchecked_only_when_it_skipped_the_synchronous_standby_uncompared() {
        let f = Fault::Failover;
        assert!(unchecked_promotion(f, Some("node2"), Some("node3"), true).is_some());
        assert!(unchecked_promotion(f, Some("node3"), Some("node3"), true).is_none());
        assert!(unchecked_promotion(f, Some("node2"), Some("node3"), false).is_none());
        assert!(
            unchecked_promotion(Fault::Switchover, Some("node2"), Some("node3"), true).is_none()
        );
        assert!(unchecked_promotion(f, None, Some("node3"), true).is_none());
    }
}
