//! PostgreSQL on the lab's nodes: an instance per node on the node's own
//! disk, and the `ocf:tusk:postgresql` agent managing them as a clone. What
//! the demo and the scenario tests start from.
//!
//! The agent is the one installed on the host (the tusk-agents package):
//! nodes share the host's /usr/lib/ocf.

use crate::node::NodeDir;
use crate::process::wait_for;
use crate::Lab;
use anyhow::{bail, Context, Result};
use std::time::Duration;

pub const PGDATA: &str = "/var/lib/postgresql/15/lab";
pub const BINDIR: &str = "/usr/lib/postgresql/15/bin";
pub const AGENT: &str = "/usr/lib/ocf/resource.d/tusk/postgresql";
/// The clone's primitive; its instances are `pg` in crm_mon.
pub const RESOURCE: &str = "pg";

/// initdb on every node that has no instance yet. Clients reach a node over
/// the lab's private network, which exists only inside the lab: trust there
/// keeps the workload free of passwords.
pub fn initdb_all(lab: &Lab) -> Result<()> {
    require_agent()?;
    for node in lab.nodes()? {
        if !host_path(lab, &node).join("PG_VERSION").is_file() {
            initdb(lab, &node)?;
        }
    }
    Ok(())
}

fn require_agent() -> Result<()> {
    if !std::path::Path::new(AGENT).is_file() {
        bail!("{AGENT} is not installed: build and install the tusk-agents package (packaging/build, dpkg -i dist/*.deb)");
    }
    Ok(())
}

/// A fresh instance on `node`, listening on the lab network, trusting it for
/// queries and for replication.
fn initdb(lab: &Lab, node: &str) -> Result<()> {
    let on_host = host_path(lab, node);
    run(
        lab,
        node,
        &[
            "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", PGDATA,
        ],
    )?;
    let initdb = format!("{BINDIR}/initdb");
    // Data checksums: pg_rewind needs them (or wal_log_hints) to bring a
    // diverged former primary back as a standby.
    as_postgres(
        lab,
        node,
        &[
            &initdb,
            "--no-sync",
            "--data-checksums",
            "-A",
            "peer",
            "-U",
            "postgres",
            "-D",
            PGDATA,
        ],
    )?;
    append(&on_host.join("postgresql.conf"), "listen_addresses = '*'\n")?;
    let net = lab_network(lab);
    let hba = format!("host all all {net}/24 trust\nhost replication all {net}/24 trust\n");
    append(&on_host.join("pg_hba.conf"), &hba)
}

/// Creates the clone of the postgresql agent (one instance per node) and
/// waits until it is started everywhere.
pub fn create_clone(lab: &Lab, timeout: Duration) -> Result<()> {
    let first = lab
        .nodes()?
        .into_iter()
        .next()
        .context("a lab without nodes")?;
    run(
        lab,
        &first,
        &[
            "pcs",
            "resource",
            "create",
            RESOURCE,
            "ocf:tusk:postgresql",
            &format!("pgdata={PGDATA}"),
            "op",
            "monitor",
            "interval=10s",
            "timeout=20s",
            "clone",
        ],
    )?;
    wait_started(lab, timeout)
}

/// Waits until `pg` runs on every node that is up, as the first of them sees it.
pub fn wait_started(lab: &Lab, timeout: Duration) -> Result<()> {
    let nodes = lab.nodes()?;
    wait_for("the postgresql clone to run on every node", timeout, || {
        let Some(observer) = nodes.iter().find(|n| lab.is_running(n).unwrap_or(false)) else {
            return Ok(false);
        };
        let Ok(view) = lab.view(observer) else {
            return Ok(false);
        };
        let up: Vec<&String> = nodes.iter().filter(|n| view.is_online(n)).collect();
        let started = view.nodes_in_role(RESOURCE, "Started");
        Ok(!up.is_empty() && up.iter().all(|n| started.contains(&n.as_str())))
    })
}

/// How a client in the switch reaches the instance on `node`.
pub fn conninfo(lab: &Lab, node: &str) -> Result<String> {
    Ok(format!(
        "host={} port=5432 user=postgres dbname=postgres",
        lab.address(node)?
    ))
}

fn lab_network(lab: &Lab) -> std::net::Ipv4Addr {
    let [a, b, c, _] = lab.switch_address().octets();
    std::net::Ipv4Addr::new(a, b, c, 0)
}

/// The node's data directory as the host sees it: the node's
/// /var/lib/postgresql is a bind mount of one of the lab's disks.
fn host_path(lab: &Lab, node: &str) -> std::path::PathBuf {
    let relative = PGDATA
        .strip_prefix("/var/lib/postgresql/")
        .expect("PGDATA lives on the node's /var/lib/postgresql disk");
    NodeDir::new(lab.dir(), node)
        .disk("var-lib-postgresql")
        .join(relative)
}

/// Appends to a file initdb created; appending keeps its owner and mode.
fn append(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("appending to {}", path.display()))
}

pub(crate) fn run(lab: &Lab, node: &str, args: &[&str]) -> Result<()> {
    let out = lab.exec(node, args)?;
    if !out.status.success() {
        bail!(
            "{} on {node} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn as_postgres(lab: &Lab, node: &str, args: &[&str]) -> Result<String> {
    let mut full = vec!["runuser", "-u", "postgres", "--"];
    full.extend_from_slice(args);
    let out = lab.exec(node, &full)?;
    if !out.status.success() {
        bail!(
            "{} on {node} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------
// The promotable clone: one primary, streaming standbys, a floating address.

/// The promotable clone of [`RESOURCE`].
pub const CLONE: &str = "pg-clone";
/// The floating address of the primary (IPaddr2), colocated with the
/// promoted instance: clients and standbys connect to it.
pub const VIP: &str = "pg-vip";
/// The replication role the setup creates (the agent's default `repl_user`).
pub const REPL_USER: &str = "replicator";
/// Node attributes the agent publishes.
pub const ATTR_TIMELINE: &str = "pg-timeline";
pub const ATTR_SYNC: &str = "pg-sync";
pub const ATTR_PROMOTION: &str = "master-pg";

/// The agent's `sync` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Off,
    Available,
    Strict,
}

/// The agent's `rewind` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindMode {
    Auto,
    Off,
}

/// How the promotable clone is configured.
#[derive(Debug, Clone)]
pub struct Promotable {
    /// The nodes that hold an instance; the first one is initdb'd and
    /// becomes the first primary, the others are base backups of it. Other
    /// nodes of the lab get a `-INFINITY` location constraint: they only
    /// count for quorum.
    pub nodes: Vec<String>,
    pub sync: SyncMode,
    pub rewind: RewindMode,
    /// More agent parameters, `name=value`.
    pub params: Vec<String>,
}

impl Promotable {
    /// Every node of the lab, `sync=available`, `rewind=auto` (the agent's
    /// defaults, written out so that the CIB says what the test means).
    pub fn on(nodes: &[String]) -> Promotable {
        Promotable {
            nodes: nodes.to_vec(),
            sync: SyncMode::Available,
            rewind: RewindMode::Auto,
            params: Vec::new(),
        }
    }

    pub fn sync(mut self, sync: SyncMode) -> Promotable {
        self.sync = sync;
        self
    }

    pub fn rewind(mut self, rewind: RewindMode) -> Promotable {
        self.rewind = rewind;
        self
    }

    pub fn param(mut self, name_value: &str) -> Promotable {
        self.params.push(name_value.to_string());
        self
    }
}

/// The primary's floating address: .100 of the lab's network.
pub fn primary_address(lab: &Lab) -> std::net::Ipv4Addr {
    let [a, b, c, _] = lab.switch_address().octets();
    std::net::Ipv4Addr::new(a, b, c, 100)
}

/// How a client in the switch reaches whichever node is primary.
pub fn primary_conninfo(lab: &Lab) -> String {
    format!(
        "host={} port=5432 user=postgres dbname=postgres",
        primary_address(lab)
    )
}

/// Data on every node of `nodes`: initdb on the first, the replication role,
/// then the first's server started by hand and base-backed-up over the lab
/// network by each of the others, and stopped cleanly again. Afterwards the
/// first is a cleanly shut down primary and the others hold a base backup
/// without any standby configuration: the agent writes that itself.
pub fn replicate_by_hand(lab: &Lab, nodes: &[String]) -> Result<()> {
    require_agent()?;
    let (first, others) = nodes.split_first().context("no nodes for PostgreSQL")?;
    initdb(lab, first)?;
    // A standby that was cut off for a while (scenario tests do that on
    // purpose) should find the WAL it missed still on the primary; with
    // replication slots, at most what a node that is down may keep.
    append(
        &host_path(lab, first).join("postgresql.conf"),
        "wal_keep_size = '256MB'\nmax_slot_wal_keep_size = '1GB'\n",
    )?;
    for dir in ["/run/postgresql", "/var/log/postgresql"] {
        run(
            lab,
            first,
            &[
                "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "2775", dir,
            ],
        )?;
    }
    let pg_ctl = format!("{BINDIR}/pg_ctl");
    as_postgres(
        lab,
        first,
        &[
            &pg_ctl,
            "-D",
            PGDATA,
            "-l",
            "/var/log/postgresql/lab-setup.log",
            "-w",
            "-t",
            "60",
            "start",
        ],
    )?;
    let copied = (|| -> Result<()> {
        // What pg_rewind needs as a non-superuser (PostgreSQL 15 docs,
        // pg_rewind "Notes"), so that the agent can rewind with this role.
        let role = format!(
            "CREATE ROLE {REPL_USER} LOGIN REPLICATION;
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO {REPL_USER};
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO {REPL_USER};
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO {REPL_USER};
             GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO {REPL_USER};"
        );
        sql(lab, first, &role)?;
        let source = lab.address(first)?.to_string();
        let basebackup = format!("{BINDIR}/pg_basebackup");
        for node in others {
            run(
                lab,
                node,
                &[
                    "install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", PGDATA,
                ],
            )?;
            as_postgres(
                lab,
                node,
                &[
                    &basebackup,
                    "-h",
                    &source,
                    "-U",
                    REPL_USER,
                    "-D",
                    PGDATA,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ],
            )?;
        }
        Ok(())
    })();
    let stopped = as_postgres(
        lab,
        first,
        &[
            &pg_ctl, "-D", PGDATA, "-m", "fast", "-w", "-t", "60", "stop",
        ],
    );
    copied?;
    stopped.map(drop)
}

/// Creates the promotable clone and the floating address in one CIB
/// change, and waits until one instance is primary with every other one
/// streaming from it. Returns the primary.
pub fn create_promotable(lab: &Lab, config: &Promotable, timeout: Duration) -> Result<String> {
    let first = config.nodes.first().context("no nodes for PostgreSQL")?;
    let cib = lab.dir().join("cib-promotable.xml");
    let cib = cib.to_str().context("lab directory is not UTF-8")?;
    let pcs = |args: &[&str]| -> Result<()> {
        let mut full = vec!["pcs", "-f", cib];
        full.extend_from_slice(args);
        run(lab, first, &full)
    };
    run(lab, first, &["pcs", "cluster", "cib", cib])?;
    let pgdata = format!("pgdata={PGDATA}");
    let primary_host = format!("primary_host={}", primary_address(lab));
    let sync = format!(
        "sync={}",
        match config.sync {
            SyncMode::Off => "off",
            SyncMode::Available => "available",
            SyncMode::Strict => "strict",
        }
    );
    let rewind = format!(
        "rewind={}",
        match config.rewind {
            RewindMode::Auto => "auto",
            RewindMode::Off => "off",
        }
    );
    let mut create = vec![
        "resource",
        "create",
        RESOURCE,
        "ocf:tusk:postgresql",
        &pgdata,
        &primary_host,
        &sync,
        &rewind,
    ];
    create.extend(config.params.iter().map(String::as_str));
    // The monitor intervals of the two roles must differ (Pacemaker keys
    // recurring operations by interval). migration-threshold=1: one failure
    // moves the primary instead of restarting it in place.
    create.extend_from_slice(&[
        "op",
        "monitor",
        "interval=10s",
        "role=Promoted",
        "timeout=20s",
        "op",
        "monitor",
        "interval=11s",
        "role=Unpromoted",
        "timeout=20s",
        "op",
        "start",
        "timeout=60s",
        "op",
        "stop",
        "timeout=60s",
        "op",
        "promote",
        "timeout=60s",
        "op",
        "demote",
        "timeout=120s",
        "op",
        "notify",
        "timeout=60s",
        "meta",
        "migration-threshold=1",
        "promotable",
        CLONE,
        "notify=true",
    ]);
    pcs(&create)?;
    floating_address(&pcs, VIP, primary_address(lab), CLONE, "Mandatory")?;
    for node in lab.nodes()? {
        if !config.nodes.contains(&node) {
            pcs(&["constraint", "location", CLONE, "avoids", &node])?;
        }
    }
    run(lab, first, &["pcs", "cluster", "cib-push", cib, "--config"])?;
    let _ = std::fs::remove_file(cib);
    wait_replicating(lab, config.nodes.len() - 1, timeout)
}

/// An IPaddr2 address `vip` on the lab's eth0, with the Promoted instance
/// of `clone`: started after a promote, stopped after a demote (an order
/// of kind `demote_kind`), through `pcs` (a `pcs -f CIB` runner).
pub(crate) fn floating_address(
    pcs: &dyn Fn(&[&str]) -> Result<()>,
    vip: &str,
    address: std::net::Ipv4Addr,
    clone: &str,
    demote_kind: &str,
) -> Result<()> {
    let ip = format!("ip={address}");
    pcs(&[
        "resource",
        "create",
        vip,
        "ocf:heartbeat:IPaddr2",
        &ip,
        "cidr_netmask=24",
        "nic=eth0",
        "op",
        "monitor",
        "interval=10s",
        "timeout=20s",
    ])?;
    pcs(&[
        "constraint",
        "colocation",
        "add",
        vip,
        "with",
        "Promoted",
        clone,
        "INFINITY",
    ])?;
    // The address follows a promote and goes before a demote, never the
    // other way round (symmetrical=false: a stop of the address does not
    // demote the primary).
    pcs(&[
        "constraint",
        "order",
        "promote",
        clone,
        "then",
        "start",
        vip,
        "symmetrical=false",
        "kind=Mandatory",
    ])?;
    let kind = format!("kind={demote_kind}");
    pcs(&[
        "constraint",
        "order",
        "demote",
        clone,
        "then",
        "stop",
        vip,
        "symmetrical=false",
        &kind,
    ])
}

/// A node that is powered on and cabled, to ask Pacemaker and PostgreSQL from.
pub fn observer(lab: &Lab) -> Result<String> {
    lab.state()?
        .nodes
        .into_iter()
        .find(|n| !n.partitioned && n.holder.as_ref().is_some_and(|h| h.is_running()))
        .map(|n| n.name)
        .context("no node is powered on and connected")
}

/// Where the instances run, as a connected node's Pacemaker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    pub promoted: Vec<String>,
    pub unpromoted: Vec<String>,
    /// Where the floating address runs.
    pub vip: Vec<String>,
}

pub fn roles(lab: &Lab) -> Result<Roles> {
    let view = lab.view(&observer(lab)?)?;
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

/// Waits until exactly one instance is promoted, with the floating address
/// on its node and at least `standbys` standbys streaming from it (in its
/// `pg_stat_replication`, each also Unpromoted for Pacemaker). Returns the
/// primary.
pub fn wait_replicating(lab: &Lab, standbys: usize, timeout: Duration) -> Result<String> {
    let mut last = String::new();
    let mut primary = String::new();
    let what = format!("one primary with {standbys} streaming standbys");
    let waited = wait_for(&what, timeout, || {
        let Ok(roles) = roles(lab) else {
            return Ok(false);
        };
        last = format!("{roles:?}");
        let [p] = roles.promoted.as_slice() else {
            return Ok(false);
        };
        if roles.vip != [p.clone()] {
            return Ok(false);
        }
        let Ok(replicas) = replication(lab, p) else {
            return Ok(false);
        };
        last = format!("{roles:?}, replication: {replicas:?}");
        let streaming = replicas
            .iter()
            .filter(|r| r.state == "streaming" && roles.unpromoted.contains(&r.name))
            .count();
        primary = p.clone();
        Ok(streaming >= standbys)
    });
    waited.with_context(|| format!("last seen: {last}"))?;
    Ok(primary)
}

/// Waits until the primary's commits wait for a standby: under
/// sync=available that starts only with the primary monitor that first sees
/// a standby stream, up to one monitor interval after the standbys
/// connect. A scenario that counts acknowledged writes as safe must start
/// its writer after that.
pub fn wait_synchronous(lab: &Lab, primary: &str, timeout: Duration) -> Result<()> {
    let mut last = Vec::new();
    wait_for("a synchronous standby", timeout, || {
        last = replication(lab, primary).unwrap_or_default();
        Ok(last
            .iter()
            .any(|r| r.state == "streaming" && matches!(r.sync_state.as_str(), "sync" | "quorum")))
    })
    .with_context(|| format!("last seen: {last:?}"))
}

/// Runs SQL on `node`'s instance through its unix socket as postgres and
/// returns psql's unaligned, tuples-only output (`|` between columns).
pub fn sql(lab: &Lab, node: &str, query: &str) -> Result<String> {
    let psql = format!("{BINDIR}/psql");
    let out = as_postgres(
        lab,
        node,
        &[
            &psql,
            "-X",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
            "-c",
            query,
        ],
    )?;
    Ok(out.trim_end().to_string())
}

/// One row of the primary's `pg_stat_replication`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// application_name: the standby's node name.
    pub name: String,
    pub state: String,
    /// async, sync, quorum, potential.
    pub sync_state: String,
    /// How far the standby has flushed the primary's WAL (bytes from 0/0;
    /// 0 when the walsender does not know yet).
    pub flushed: u64,
}

/// The standby a planned switchover should promote, from the primary's
/// `pg_stat_replication`: the one the primary reports `sync` (`FIRST 1`:
/// it holds every acknowledged commit); otherwise (`ANY 1`, where every
/// standby shows `quorum`, or no synchronous standby at all) the streaming
/// standby that has flushed the most WAL, ties to the first name. The
/// promoted standby then has the least to replay of the old primary's
/// shutdown. None when no standby streams.
pub fn switchover_target(replicas: &[Replica]) -> Option<&str> {
    let streaming = replicas.iter().filter(|r| r.state == "streaming");
    if let Some(sync) = streaming.clone().find(|r| r.sync_state == "sync") {
        return Some(&sync.name);
    }
    streaming
        .min_by(|a, b| b.flushed.cmp(&a.flushed).then_with(|| a.name.cmp(&b.name)))
        .map(|r| r.name.as_str())
}

pub fn replication(lab: &Lab, primary: &str) -> Result<Vec<Replica>> {
    let out = sql(
        lab,
        primary,
        "SELECT application_name, state, sync_state, \
         coalesce(flush_lsn - '0/0'::pg_lsn, 0)::bigint FROM pg_stat_replication ORDER BY 1",
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            Some(Replica {
                name: f.next()?.to_string(),
                state: f.next()?.to_string(),
                sync_state: f.next()?.to_string(),
                flushed: f.next()?.parse().unwrap_or(0),
            })
        })
        .collect())
}

/// The instance's current timeline: from the WAL being written on a
/// primary, from the WAL being received on a standby.
pub fn timeline(lab: &Lab, node: &str) -> Result<u32> {
    let out = sql(
        lab,
        node,
        "SELECT CASE WHEN pg_is_in_recovery()
                     THEN (SELECT received_tli FROM pg_stat_wal_receiver)
                     ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
                END",
    )?;
    out.trim()
        .parse()
        .with_context(|| format!("no timeline on {node} ({out:?}): no WAL receiver?"))
}

/// How far a standby has received WAL (the greater of receive and replay
/// LSN: the receive LSN restarts at a segment boundary on reconnect), in
/// bytes since 0/0.
pub fn received_lsn(lab: &Lab, node: &str) -> Result<u64> {
    let out = sql(
        lab,
        node,
        "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn",
    )?;
    out.trim()
        .parse::<f64>()
        .map(|n| n as u64)
        .with_context(|| format!("received LSN of {node}: {out:?}"))
}

/// The PID in the node's postmaster.pid (in the node's PID namespace), if
/// the file exists.
pub fn postmaster_pid(lab: &Lab, node: &str) -> Result<Option<i32>> {
    let path = host_path(lab, node).join("postmaster.pid");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().next().and_then(|l| l.trim().parse().ok())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// A file of the node's data directory, as the host sees it.
pub fn data_file(lab: &Lab, node: &str, name: &str) -> std::path::PathBuf {
    host_path(lab, node).join(name)
}

/// Whether pg_rewind ever ran on the node's data directory: it leaves a
/// `backup_label` ("BACKUP METHOD: pg_rewind") that the server renames to
/// `backup_label.old` at its next start. A base backup's label says
/// "streamed" instead. Independent of what the agent logs.
pub fn was_rewound(lab: &Lab, node: &str) -> bool {
    ["backup_label", "backup_label.old"].iter().any(|f| {
        std::fs::read_to_string(data_file(lab, node, f))
            .is_ok_and(|t| t.contains("BACKUP METHOD: pg_rewind"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(name: &str, state: &str, sync_state: &str, flushed: u64) -> Replica {
        Replica {
            name: name.into(),
            state: state.into(),
            sync_state: sync_state.into(),
            flushed,
        }
    }

    #[test]
    fn a_switchover_goes_to_the_standby_that_holds_the_acknowledged_commits() {
        // FIRST 1: the synchronous one, even when another flushed more.
        let first = [
            replica("node2", "streaming", "potential", 900),
            replica("node3", "streaming", "sync", 800),
        ];
        assert_eq!(switchover_target(&first), Some("node3"));
        // ANY 1: every standby is "quorum"; the furthest flush, not the
        // first name.
        let any = [
            replica("node2", "streaming", "quorum", 800),
            replica("node3", "streaming", "quorum", 900),
        ];
        assert_eq!(switchover_target(&any), Some("node3"));
        let tie = [
            replica("node3", "streaming", "quorum", 900),
            replica("node2", "streaming", "quorum", 900),
        ];
        assert_eq!(switchover_target(&tie), Some("node2"));
        // A standby still catching up is not a target while one streams.
        let catching_up = [
            replica("node2", "catchup", "quorum", 1000),
            replica("node3", "streaming", "quorum", 10),
        ];
        assert_eq!(switchover_target(&catching_up), Some("node3"));
        assert_eq!(switchover_target(&[]), None);
    }
}
