//! Slony-I on the lab's nodes (issue 10): PostgreSQL on every node, each
//! its own server run by `ocf:tusk:postgresql` as a plain clone
//! ([`crate::postgres::create_clone`]); a Slony cluster whose one set holds
//! the lab writer's table, replicated from an origin to every other node;
//! and `ocf:tusk:slon` as a promotable clone whose Promoted instance is the
//! set's origin, with a floating address colocated with it, through which
//! clients write.
//!
//! Slony node N is the lab's `nodeN`. Every node's database is [`DATABASE`];
//! slon reaches its own node over the unix socket (peer authentication),
//! slonik and the other nodes' slons reach it at its lab address, which the
//! lab's `pg_hba.conf` trusts for postgres. The set is subscribed once the
//! slons run, as an operator would: SUBSCRIBE SET is slonik's part, the copy
//! slon's.
//!
//! The agent is the one installed on the host (the tusk-agents package), or
//! the one `TUSK_LAB_AGENTS` names: nodes share the host's /usr/lib/ocf.

use crate::harness::workload::WRITER_TABLE;
use crate::node::NodeDir;
use crate::postgres::run;
use crate::process::wait_for;
use crate::Lab;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const AGENT: &str = "/usr/lib/ocf/resource.d/tusk/slon";
/// The Slony cluster's name; its schema is `_tusk`.
pub const CLUSTER: &str = "tusk";
pub const SCHEMA: &str = "_tusk";
/// The database of every node.
pub const DATABASE: &str = "app";
/// The replicated table: the lab writer's.
pub const TABLE: &str = "tusk_writer";
/// The one replication set.
pub const SET: u32 = 1;
/// The clone's primitive; its instances are `slon` in crm_mon.
pub const RESOURCE: &str = "slon";
pub const CLONE: &str = "slon-clone";
/// The origin's floating address (IPaddr2), colocated with the Promoted
/// instance.
pub const VIP: &str = "slon-vip";
/// How slon reaches its own node: the unix socket of the postgresql
/// agent's default socket directory, as the OS user postgres (peer).
pub const LOCAL_CONNINFO: &str = "host=/var/run/postgresql dbname=app user=postgres";
/// slon's defaults poll for events every 2 s and back off to 10 s when
/// idle, so a MOVE SET can wait ~10 s for the new origin to see it
/// (docs/slony-facts.md); polling every 500 ms, at most 1 s apart, keeps
/// a planned move near a second. The same code paths, a shorter outage.
pub const SLON_OPTIONS: &str = "-s 500 -t 1000";
/// The Promoted and Unpromoted monitors' intervals (they must differ).
pub const MONITOR_PROMOTED: Duration = Duration::from_secs(9);
pub const MONITOR_UNPROMOTED: Duration = Duration::from_secs(11);
/// Where the agent saves a failed-over node's rows before it rejoins (its
/// `failback_dir` default: the postgres user's home, on the node's disk).
pub const FAILBACK_DIR: &str = "/var/lib/postgresql";
/// Where the setup keeps its slonik scripts, on the node's disk.
const SCRIPT_DIR: &str = "/var/lib/postgresql/slony";

/// The Slony node id of a lab node: `nodeN` is N.
pub fn node_id(node: &str) -> Result<u32> {
    node.strip_prefix("node")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .with_context(|| format!("{node} is not a lab node name"))
}

/// The lab node of Slony node `id`.
pub fn node_name(id: u32) -> String {
    format!("node{id}")
}

/// How slonik and the other nodes reach `node`'s database. A bound on
/// connecting: a node that lost power answers nothing, not even ARP, and
/// slonik's FAILOVER tries it more than once.
pub fn admin_conninfo_of(lab: &Lab, node: &str) -> Result<String> {
    Ok(format!(
        "host={} port=5432 dbname={DATABASE} user=postgres connect_timeout=3",
        lab.address(node)?
    ))
}

/// The agent's `admin_conninfo`: `1:...; 2:...` for every node of `nodes`.
pub fn admin_conninfo(lab: &Lab, nodes: &[String]) -> Result<String> {
    let entries = nodes
        .iter()
        .map(|n| Ok(format!("{}:{}", node_id(n)?, admin_conninfo_of(lab, n)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(entries.join("; "))
}

/// The origin's floating address: .100 of the lab's network.
pub fn origin_address(lab: &Lab) -> Ipv4Addr {
    let [a, b, c, _] = lab.switch_address().octets();
    Ipv4Addr::new(a, b, c, 100)
}

/// How a client in the switch reaches whichever node is the origin.
pub fn origin_conninfo(lab: &Lab) -> String {
    format!(
        "host={} port=5432 user=postgres dbname={DATABASE}",
        origin_address(lab)
    )
}

fn require_agent() -> Result<()> {
    if !Path::new(AGENT).is_file() {
        bail!("{AGENT} is not installed: build and install the tusk-agents package (packaging/build, dpkg -i dist/*.deb)");
    }
    Ok(())
}

/// PostgreSQL on every node (initdb, the postgresql clone), the database
/// and the writer's table on each, and the Slony cluster: INIT CLUSTER on
/// `nodes[0]`, STORE NODE of the others, STORE PATH between every pair,
/// CREATE SET with the table. No slon runs yet and nothing is subscribed.
pub fn prepare(lab: &Lab, nodes: &[String], timeout: Duration) -> Result<()> {
    require_agent()?;
    crate::postgres::initdb_all(lab)?;
    crate::postgres::create_clone(lab, timeout)?;
    for node in nodes {
        wait_for(&format!("PostgreSQL on {node}"), timeout, || {
            Ok(sql_in(lab, node, "postgres", "SELECT 1").is_ok())
        })?;
        sql_in(
            lab,
            node,
            "postgres",
            &format!("CREATE DATABASE {DATABASE}"),
        )?;
        sql(lab, node, WRITER_TABLE)?;
    }
    let (first, others) = nodes.split_first().context("no nodes for Slony")?;
    let origin = node_id(first)?;
    let mut script = format!("init cluster (id = {origin}, comment = '{first}');\n");
    for node in others {
        script.push_str(&format!(
            "store node (id = {}, comment = '{node}', event node = {origin});\n",
            node_id(node)?
        ));
    }
    for server in nodes {
        for client in nodes.iter().filter(|c| *c != server) {
            script.push_str(&format!(
                "store path (server = {}, client = {}, conninfo = '{}');\n",
                node_id(server)?,
                node_id(client)?,
                admin_conninfo_of(lab, server)?
            ));
        }
    }
    script.push_str(&format!(
        "create set (id = {SET}, origin = {origin}, comment = 'the writer');\n\
         set add table (set id = {SET}, origin = {origin}, id = 1, fully qualified name = 'public.{TABLE}');\n"
    ));
    slonik(lab, first, nodes, "init", &script)
}

/// The slon promotable clone and the origin's floating address in one CIB
/// change (ordered after and colocated with PostgreSQL), then SUBSCRIBE
/// SET of every other node from `nodes[0]`, the origin; returns once
/// `nodes[0]` is Promoted with the address and every subscription is
/// active.
pub fn create_promotable(lab: &Lab, nodes: &[String], timeout: Duration) -> Result<()> {
    let first = nodes.first().context("no nodes for Slony")?;
    let cib = lab.dir().join("cib-slon.xml");
    let cib = cib.to_str().context("lab directory is not UTF-8")?;
    let pcs = |args: &[&str]| -> Result<()> {
        let mut full = vec!["pcs", "-f", cib];
        full.extend_from_slice(args);
        run(lab, first, &full)
    };
    run(lab, first, &["pcs", "cluster", "cib", cib])?;
    let (cluster, conninfo, sets, admin, options) = (
        format!("cluster_name={CLUSTER}"),
        format!("conninfo={LOCAL_CONNINFO}"),
        format!("sets={SET}"),
        format!("admin_conninfo={}", admin_conninfo(lab, nodes)?),
        format!("options={SLON_OPTIONS}"),
    );
    let promoted = format!("interval={}s", MONITOR_PROMOTED.as_secs());
    let unpromoted = format!("interval={}s", MONITOR_UNPROMOTED.as_secs());
    pcs(&[
        "resource",
        "create",
        RESOURCE,
        "ocf:tusk:slon",
        &cluster,
        &conninfo,
        &sets,
        &admin,
        &options,
        "op",
        "monitor",
        &promoted,
        "role=Promoted",
        "timeout=20s",
        "op",
        "monitor",
        &unpromoted,
        "role=Unpromoted",
        "timeout=20s",
        // A rejoin (pg_dump, slonik, SUBSCRIBE SET) runs in the start; a
        // FAILOVER takes slon's 20 s worker restart delay.
        "op",
        "start",
        "timeout=120s",
        "op",
        "stop",
        "timeout=60s",
        "op",
        "promote",
        "timeout=120s",
        "op",
        "demote",
        "timeout=90s",
        "op",
        "notify",
        "timeout=20s",
        "promotable",
        CLONE,
        "notify=true",
        "promoted-max=1",
        // Each slon instance depends on its own node's PostgreSQL only:
        // without it, PostgreSQL starting on a node coming back restarts
        // every slon instance, the origin's (demote, stop, start) too.
        "interleave=true",
    ])?;
    // slon needs its node's PostgreSQL: started after it, stopped before.
    pcs(&[
        "constraint",
        "colocation",
        "add",
        CLONE,
        "with",
        &format!("{}-clone", crate::postgres::RESOURCE),
        "INFINITY",
    ])?;
    pcs(&[
        "constraint",
        "order",
        "start",
        &format!("{}-clone", crate::postgres::RESOURCE),
        "then",
        "start",
        CLONE,
    ])?;
    // The demote-then-stop order is Optional, unlike the postgresql
    // layout's: the agent's demote gives the new origin the origin's score,
    // which aborts the transition between demote and promote; in the next
    // one nothing is demoted, and Pacemaker 2.1.5 then holds a Mandatory
    // "demote then stop" back as "unrunnable slon-clone notified
    // (blocked)" until some later transition (7 s in the first run,
    // cluster-recheck-interval at worst). An old origin refuses writes
    // once the set moved, so the address may leave it unordered.
    crate::postgres::floating_address(&pcs, VIP, origin_address(lab), CLONE, "Optional")?;
    run(lab, first, &["pcs", "cluster", "cib-push", cib, "--config"])?;
    let _ = std::fs::remove_file(cib);
    let mut last = String::new();
    wait_for("the origin promoted with the address", timeout, || {
        let Ok(r) = roles(lab) else { return Ok(false) };
        last = format!("{r:?}");
        Ok(r.promoted == [first.clone()]
            && r.vip == r.promoted
            && r.unpromoted.len() + 1 == nodes.len())
    })
    .with_context(|| format!("last seen: {last}"))?;
    let origin = node_id(first)?;
    let mut subscribe = String::new();
    for node in &nodes[1..] {
        subscribe.push_str(&format!(
            "subscribe set (id = {SET}, provider = {origin}, receiver = {}, forward = yes);\n",
            node_id(node)?
        ));
    }
    slonik(lab, first, nodes, "subscribe", &subscribe)?;
    for node in &nodes[1..] {
        wait_for(&format!("{node}'s subscription"), timeout, || {
            Ok(subscription_active(lab, node).unwrap_or(false))
        })?;
    }
    Ok(())
}

/// Runs slonik as postgres on `node`, with the preamble for `nodes` and
/// `commands`, from a script file on the node's disk.
pub fn slonik(lab: &Lab, node: &str, nodes: &[String], name: &str, commands: &str) -> Result<()> {
    let mut script = format!("cluster name = {CLUSTER};\n");
    for n in nodes {
        script.push_str(&format!(
            "node {} admin conninfo = '{}';\n",
            node_id(n)?,
            admin_conninfo_of(lab, n)?
        ));
    }
    script.push_str(commands);
    let postgres = nix::unistd::User::from_name("postgres")?.context("no user postgres")?;
    let (uid, gid) = (postgres.uid.as_raw(), postgres.gid.as_raw());
    let dir = host_path(lab, node, SCRIPT_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    chown(&dir, Some(uid), Some(gid))?;
    let file = format!("{name}.slonik");
    std::fs::write(dir.join(&file), &script)?;
    chown(dir.join(&file), Some(uid), Some(gid))?;
    let inside = format!("{SCRIPT_DIR}/{file}");
    let out = lab.exec(
        node,
        &["runuser", "-u", "postgres", "--", "slonik", &inside],
    )?;
    if !out.status.success() {
        bail!(
            "slonik {name} on {node} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Where the slon instances run, as a connected node's Pacemaker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub promoted: Vec<String>,
    pub unpromoted: Vec<String>,
    /// Where the floating address runs.
    pub vip: Vec<String>,
}

pub fn roles(lab: &Lab) -> Result<Roles> {
    let view = lab.view(&crate::postgres::observer(lab)?)?;
    Ok(roles_in(&view))
}

pub fn roles_in(view: &crate::ClusterState) -> Roles {
    let names = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
    Roles {
        promoted: names(view.nodes_in_role(RESOURCE, "Promoted")),
        unpromoted: names(view.nodes_in_role(RESOURCE, "Unpromoted")),
        vip: names(view.nodes_in_role(VIP, "Started")),
    }
}

/// `sl_set.set_origin` of the set as `node`'s own catalog has it; `None`
/// when the node has no Slony schema (dropped, or not yet stored again).
pub fn set_origin(lab: &Lab, node: &str) -> Result<Option<u32>> {
    let schema = sql(
        lab,
        node,
        &format!("SELECT to_regclass('{SCHEMA}.sl_set') IS NOT NULL"),
    )?;
    if schema.trim() != "t" {
        return Ok(None);
    }
    let out = sql(
        lab,
        node,
        &format!("SELECT set_origin FROM {SCHEMA}.sl_set WHERE set_id = {SET}"),
    )?;
    let out = out.trim();
    if out.is_empty() {
        return Ok(None);
    }
    out.parse()
        .map(Some)
        .with_context(|| format!("set_origin on {node}: {out:?}"))
}

/// `node`'s own catalog in one question: the set's origin and `node`'s
/// own subscription to it (None: not subscribed; `Some(active)`). `None`
/// when the node has no Slony schema. An error when its PostgreSQL does
/// not answer.
pub fn catalog(lab: &Lab, node: &str) -> Result<Option<(u32, Option<bool>)>> {
    let id = node_id(node)?;
    let out = sql(
        lab,
        node,
        &format!(
            "SELECT s.set_origin, (SELECT sub_active FROM {SCHEMA}.sl_subscribe \
             WHERE sub_set = {SET} AND sub_receiver = {id}) \
             FROM {SCHEMA}.sl_set s WHERE s.set_id = {SET}"
        ),
    );
    let out = match out {
        Ok(out) => out,
        // Dropped by a FAILOVER or a rejoin, or not stored again yet.
        Err(e) if format!("{e:#}").contains(&format!("\"{SCHEMA}\" does not exist")) => {
            return Ok(None)
        }
        Err(e) if format!("{e:#}").contains(&format!("\"{SCHEMA}.sl_set\" does not exist")) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let out = out.trim();
    if out.is_empty() {
        return Ok(None);
    }
    let (origin, active) = out
        .split_once('|')
        .with_context(|| format!("{node}'s catalog: {out:?}"))?;
    let active = match active {
        "" => None,
        a => Some(a == "t"),
    };
    Ok(Some((
        origin
            .parse()
            .with_context(|| format!("set_origin on {node}: {origin:?}"))?,
        active,
    )))
}

/// Whether `node` receives the set, its subscription active, as its own
/// catalog says.
pub fn subscription_active(lab: &Lab, node: &str) -> Result<bool> {
    let id = node_id(node)?;
    let out = sql(
        lab,
        node,
        &format!(
            "SELECT sub_active FROM {SCHEMA}.sl_subscribe WHERE sub_set = {SET} AND sub_receiver = {id}"
        ),
    )?;
    Ok(out.trim() == "t")
}

/// The set's subscriptions as `node`'s catalog has them: `(provider,
/// receiver, active)`.
pub fn subscriptions(lab: &Lab, node: &str) -> Result<Vec<(u32, u32, bool)>> {
    let out = sql(
        lab,
        node,
        &format!(
            "SELECT sub_provider, sub_receiver, sub_active FROM {SCHEMA}.sl_subscribe \
             WHERE sub_set = {SET} ORDER BY 2"
        ),
    )?;
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            match f.as_slice() {
                [p, r, a] => Ok((p.parse()?, r.parse()?, *a == "t")),
                _ => bail!("sl_subscribe on {node}: {l:?}"),
            }
        })
        .collect()
}

/// Whether `node`'s table holds the writer's value `n`.
pub fn has_value(lab: &Lab, node: &str, n: i64) -> Result<bool> {
    Ok(sql(
        lab,
        node,
        &format!("SELECT count(*) FROM {TABLE} WHERE n = {n}"),
    )?
    .trim()
        == "1")
}

/// The failback dumps the agent left on `node` (read from the host: the
/// node may be down).
pub fn failback_dumps(lab: &Lab, node: &str) -> Vec<PathBuf> {
    let dir = host_path(lab, node, FAILBACK_DIR);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("tusk-failback-") && n.ends_with(".sql"))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// The writer's values a failback dump holds: the rows of `COPY
/// public.tusk_writer ... FROM stdin;` up to `\.` (pg_dump --data-only).
pub fn dumped_values(dump: &Path) -> Result<Vec<i64>> {
    let text =
        std::fs::read_to_string(dump).with_context(|| format!("reading {}", dump.display()))?;
    let mut values = Vec::new();
    let mut in_copy = false;
    for line in text.lines() {
        if in_copy {
            if line == "\\." {
                in_copy = false;
            } else if let Some(n) = line.split('\t').next().and_then(|n| n.parse().ok()) {
                values.push(n);
            }
        } else if line.starts_with(&format!("COPY public.{TABLE} ")) {
            in_copy = true;
        }
    }
    Ok(values)
}

/// The lines of slon's log on `node` that contain one of `needles`, read
/// from the host.
pub fn slon_log_lines(lab: &Lab, node: &str, needles: &[&str]) -> Vec<String> {
    let path = NodeDir::new(lab.dir(), node).log(&format!("slony1/slon-{RESOURCE}.log"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Runs SQL in `node`'s database [`DATABASE`] through its unix socket as
/// postgres; psql's unaligned, tuples-only output.
pub fn sql(lab: &Lab, node: &str, query: &str) -> Result<String> {
    sql_in(lab, node, DATABASE, query)
}

fn sql_in(lab: &Lab, node: &str, database: &str, query: &str) -> Result<String> {
    let psql = format!("{}/psql", crate::postgres::BINDIR);
    let out = lab.exec(
        node,
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &psql,
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "/var/run/postgresql",
            "-d",
            database,
            "-c",
            query,
        ],
    )?;
    if !out.status.success() {
        bail!(
            "psql on {node}: {query}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// A path of the node's /var/lib/postgresql as the host sees it (a bind
/// mount of one of the lab's disks).
fn host_path(lab: &Lab, node: &str, inside: &str) -> PathBuf {
    let relative = inside
        .strip_prefix("/var/lib/postgresql")
        .expect("on the node's /var/lib/postgresql disk")
        .trim_start_matches('/');
    NodeDir::new(lab.dir(), node)
        .disk("var-lib-postgresql")
        .join(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slony_node_ids_are_the_lab_node_numbers() {
        assert_eq!(node_id("node1").unwrap(), 1);
        assert_eq!(node_id("node12").unwrap(), 12);
        assert!(node_id("node0").is_err());
        assert!(node_id("db1").is_err());
        assert_eq!(node_name(3), "node3");
    }

    #[test]
    fn a_failback_dump_gives_the_writer_s_values() {
        let dir = std::env::temp_dir().join(format!("tusk-lab-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dump = dir.join("d.sql");
        std::fs::write(
            &dump,
            "SET x = 1;\nCOPY public.tusk_writer (n, at) FROM stdin;\n1\t2026-12-02 01:20:20+00\n\
             7\t2026-12-02 01:20:21+00\n\\.\nSELECT 1;\n",
        )
        .unwrap();
        assert_eq!(dumped_values(&dump).unwrap(), [1, 7]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
