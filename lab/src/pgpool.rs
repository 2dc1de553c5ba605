//! pgpool-II on the lab's nodes, in front of the postgresql promotable
//! clone ([`crate::postgres`]), run by the `ocf:tusk:pgpool` agent as a
//! clone on every node: the layout the README calls "pgpool as a clone on
//! every node, applications connecting to the local one".
//!
//! Each node keeps its pgpool's configuration on its own disk, under
//! [`DIR`] (the node's /var/lib/postgresql), with `pgpool_status` beside it
//! (`logdir`), so a node that reboots finds pgpool's memory of its backends
//! as a real machine would. Sockets and the pid file are on the node's
//! fresh /run, pgpool's log in its /var/log/postgresql. pgpool listens on
//! the node's lab address, port [`PORT`], where clients in the switch reach
//! it; PCP only on its unix socket, where the agent speaks it. The backends
//! are the PostgreSQL instances at the nodes' lab addresses, which trust the
//! lab network for postgres (`postgres::replicate_by_hand`): pgpool's health
//! checks and the agent's own questions need no password there. Clients of
//! pgpool do: `pool_hba.conf` has no `peer` or trust here, only md5 against
//! `pool_passwd`.
//!
//! The agent is the one installed on the host (the tusk-agents package):
//! nodes share the host's /usr/lib/ocf.

use crate::harness::workload::in_netns_within;
use crate::node::NodeDir;
use crate::process::wait_for;
use crate::Lab;
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const AGENT: &str = "/usr/lib/ocf/resource.d/tusk/pgpool";
/// The clone's primitive; its instances are `pgpool` in crm_mon.
pub const RESOURCE: &str = "pgpool";
pub const CLONE: &str = "pgpool-clone";
/// The node attribute the agent publishes with pgpool's view of its
/// backends (`3/3 attached, primary node 0`).
pub const ATTR_BACKENDS: &str = "pgpool-backends";
/// Configuration, password files and `pgpool_status`, on the node's disk.
pub const DIR: &str = "/var/lib/postgresql/pgpool";
/// Debian's socket directory: pgpool's client and PCP sockets and its pid
/// file, on the node's /run (emptied at every boot; the agent creates it).
pub const SOCKET_DIR: &str = "/var/run/postgresql";
pub const PID_FILE: &str = "/var/run/postgresql/pgpool.pid";
/// pgpool's output, as the agent appends it (its `logfile` default).
pub const LOG_FILE: &str = "/var/log/postgresql/pgpool.log";
pub const PORT: u16 = 9999;
pub const PCP_PORT: u16 = 9898;
/// The user of pcp.conf the agent speaks PCP as (its `pcp_user` default).
pub const PCP_USER: &str = "postgres";
const PCP_PASSWORD: &str = "lab-pcp-secret";
/// What clients log in to pgpool as (pool_passwd), and its password.
pub const DB_USER: &str = "postgres";
const DB_PASSWORD: &str = "lab-pool-secret";
/// The resource's monitor interval: how long a change pgpool does not
/// follow by itself may go unnoticed (the agent's advice: 10 s).
pub const MONITOR_INTERVAL: Duration = Duration::from_secs(10);

/// How pgpool is configured on every node.
#[derive(Debug, Clone)]
pub struct Pool {
    /// The PostgreSQL nodes, in pgpool's node id order (node id 0 first).
    pub backends: Vec<String>,
    /// How long pgpool searches for a new primary after its primary fails,
    /// while new clients wait; a promotion within it is found by pgpool
    /// itself, one after it only by the agent's monitor.
    pub search_primary_node_timeout: u32,
}

impl Pool {
    /// `backends` as pgpool's nodes 0, 1..., with a primary search a little
    /// longer than a promotion by Pacemaker takes in the lab (the
    /// postgresql monitor's 10 s interval, then the promote): what the
    /// agent's meta-data advises.
    pub fn on(backends: &[String]) -> Pool {
        Pool {
            backends: backends.to_vec(),
            search_primary_node_timeout: 30,
        }
    }

    pub fn search_primary_node_timeout(mut self, seconds: u32) -> Pool {
        self.search_primary_node_timeout = seconds;
        self
    }
}

/// The agent must be the packaged one, with the pgpool agent in it.
fn require_agent() -> Result<()> {
    if !Path::new(AGENT).is_file() {
        bail!("{AGENT} is not installed: build and install the tusk-agents package (packaging/build, dpkg -i dist/*.deb)");
    }
    Ok(())
}

/// Writes pgpool's files on every node of the lab (a node without a
/// PostgreSQL instance may run pgpool too): pgpool.conf, pcp.conf,
/// pool_hba.conf and pool_passwd owned by postgres, and root's PCP
/// password file (mode 0600) for the agent, and a .pgpass for psql by hand.
pub fn configure(lab: &Lab, pool: &Pool) -> Result<()> {
    require_agent()?;
    let mut backends = Vec::new();
    for node in &pool.backends {
        backends.push((node.clone(), lab.address(node)?));
    }
    let postgres = nix::unistd::User::from_name("postgres")?.context("no user postgres")?;
    let owner = (postgres.uid.as_raw(), postgres.gid.as_raw());
    let net = lab_network(lab);
    for node in lab.nodes()? {
        let dir = host_dir(lab, &node);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        chown(&dir, Some(owner.0), Some(owner.1))?;
        let conf = pgpool_conf(lab.address(&node)?, pool, &backends);
        write(&dir.join("pgpool.conf"), &conf, 0o600, Some(owner))?;
        write(
            &dir.join("pcp.conf"),
            &format!("{PCP_USER}:{}\n", md5_hex(PCP_PASSWORD.as_bytes())),
            0o600,
            Some(owner),
        )?;
        write(
            &dir.join("pool_hba.conf"),
            &format!("local all all md5\nhost all all {net}/24 md5\n"),
            0o600,
            Some(owner),
        )?;
        write(
            &dir.join("pool_passwd"),
            &format!(
                "{DB_USER}:md5{}\n",
                md5_hex(format!("{DB_PASSWORD}{DB_USER}").as_bytes())
            ),
            0o600,
            Some(owner),
        )?;
        // For the socket, the host field is the directory as pgpool.conf
        // writes it.
        write(
            &dir.join("pcppass"),
            &format!("{SOCKET_DIR}:{PCP_PORT}:{PCP_USER}:{PCP_PASSWORD}\n"),
            0o600,
            None,
        )?;
        write(
            &dir.join("pgpass"),
            &format!("*:{PORT}:*:{DB_USER}:{DB_PASSWORD}\n"),
            0o600,
            None,
        )?;
    }
    Ok(())
}

/// One node's pgpool.conf: streaming replication, health checks and the
/// streaming check every second (pgpool detaches a dead backend well
/// before Pacemaker's 10 s monitor acts), no failover or follow command
/// and no watchdog (Pacemaker owns failover; the agent refuses them), and
/// each backend's `backend_application_nameN`, the node name the
/// postgresql agent gives its WAL receiver, by which the pgpool agent
/// tells a standby streams from the primary.
fn pgpool_conf(listen: Ipv4Addr, pool: &Pool, backends: &[(String, Ipv4Addr)]) -> String {
    let mut conf = format!(
        "# Written by tusk-lab for pgpool-II 4.3, run by ocf:tusk:pgpool.\n\
         backend_clustering_mode = 'streaming_replication'\n\
         listen_addresses = '{listen}'\n\
         port = {PORT}\n\
         socket_dir = '{SOCKET_DIR}'\n\
         pcp_listen_addresses = ''\n\
         pcp_port = {PCP_PORT}\n\
         pcp_socket_dir = '{SOCKET_DIR}'\n\
         pid_file_name = '{PID_FILE}'\n\
         logdir = '{DIR}'\n\
         log_destination = 'stderr'\n\
         num_init_children = 8\n\
         max_pool = 2\n\
         # The query cache is off, but its shared memory is allocated all\n\
         # the same: 134 MB by default, 8.7 MB with these.\n\
         memqcache_total_size = 8MB\n\
         memqcache_max_num_cache = 1000\n\
         enable_pool_hba = on\n\
         pool_passwd = '{DIR}/pool_passwd'\n\
         allow_clear_text_frontend_auth = off\n\
         load_balance_mode = on\n\
         sr_check_period = 1\n\
         sr_check_user = 'postgres'\n\
         sr_check_database = 'postgres'\n\
         health_check_period = 1\n\
         health_check_timeout = 2\n\
         health_check_user = 'postgres'\n\
         health_check_database = 'postgres'\n\
         health_check_max_retries = 0\n\
         connect_timeout = 2000\n\
         search_primary_node_timeout = {search}\n\
         failover_command = ''\n\
         follow_primary_command = ''\n\
         failback_command = ''\n\
         use_watchdog = off\n",
        search = pool.search_primary_node_timeout,
    );
    for (id, (node, addr)) in backends.iter().enumerate() {
        conf.push_str(&format!(
            "backend_hostname{id} = '{addr}'\n\
             backend_port{id} = 5432\n\
             backend_weight{id} = 1\n\
             backend_flag{id} = 'ALLOW_TO_FAILOVER'\n\
             backend_application_name{id} = '{node}'\n"
        ));
    }
    conf
}

/// Creates the pgpool clone in one CIB change (as the README shows it:
/// started after the first promotion, never stopped or restarted by a
/// PostgreSQL failover) and waits until pgpool runs on every online node.
pub fn create_clone(lab: &Lab, timeout: Duration) -> Result<()> {
    let first = crate::postgres::observer(lab)?;
    let cib = lab.dir().join("cib-pgpool.xml");
    let cib = cib.to_str().context("lab directory is not UTF-8")?;
    let pcs = |args: &[&str]| -> Result<()> {
        let mut full = vec!["pcs", "-f", cib];
        full.extend_from_slice(args);
        run(lab, &first, &full)
    };
    run(lab, &first, &["pcs", "cluster", "cib", cib])?;
    let file = |name: &str| format!("{DIR}/{name}");
    let (config, pcp_config, hba_config, pcp_passfile) = (
        format!("config={}", file("pgpool.conf")),
        format!("pcp_config={}", file("pcp.conf")),
        format!("hba_config={}", file("pool_hba.conf")),
        format!("pcp_passfile={}", file("pcppass")),
    );
    let interval = format!("interval={}s", MONITOR_INTERVAL.as_secs());
    pcs(&[
        "resource",
        "create",
        RESOURCE,
        "ocf:tusk:pgpool",
        &config,
        &pcp_config,
        &hba_config,
        &pcp_passfile,
        "op",
        "monitor",
        &interval,
        "timeout=20s",
        "op",
        "start",
        "timeout=60s",
        "op",
        "stop",
        "timeout=60s",
        "clone",
    ])?;
    // Optional: a PostgreSQL failover (a demote, a stop) never stops or
    // restarts pgpool, which would drop every client; pgpool follows.
    pcs(&[
        "constraint",
        "order",
        "promote",
        crate::postgres::CLONE,
        "then",
        "start",
        CLONE,
        "kind=Optional",
    ])?;
    run(
        lab,
        &first,
        &["pcs", "cluster", "cib-push", cib, "--config"],
    )?;
    let _ = std::fs::remove_file(cib);
    wait_started(lab, timeout)
}

/// Waits until pgpool runs on every online node, as a connected node sees it.
pub fn wait_started(lab: &Lab, timeout: Duration) -> Result<()> {
    let mut last = String::new();
    wait_for("pgpool to run on every online node", timeout, || {
        let Ok(view) = lab.view(&crate::postgres::observer(lab)?) else {
            return Ok(false);
        };
        let online = view.online_nodes();
        let started = view.nodes_in_role(RESOURCE, "Started");
        last = format!("online {online:?}, pgpool started on {started:?}");
        Ok(!online.is_empty() && online.iter().all(|n| started.contains(n)))
    })
    .with_context(|| format!("last seen: {last}"))
}

/// How a client in the switch reaches the pgpool of `node`.
pub fn conninfo(lab: &Lab, node: &str) -> Result<String> {
    Ok(format!(
        "host={} port={PORT} user={DB_USER} password={DB_PASSWORD} dbname=postgres",
        lab.address(node)?
    ))
}

/// How a client in the switch reaches pgpool on any of `nodes`: every
/// node's address in turn, on [`PORT`], the first that accepts the
/// connection (libpq's and rust-postgres's multi-host rule), as an
/// application does that knows each node's pgpool: when a node is gone, it
/// connects to the next one.
pub fn conninfo_any(lab: &Lab, nodes: &[String]) -> Result<String> {
    let hosts = nodes
        .iter()
        .map(|n| Ok(lab.address(n)?.to_string()))
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "host={} port={PORT} user={DB_USER} password={DB_PASSWORD} dbname=postgres",
        hosts.join(",")
    ))
}

/// One row of `SHOW pool_nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNode {
    pub node_id: u32,
    /// The backend's address.
    pub hostname: String,
    /// pgpool's view: `up`, `waiting` (attached, not used yet) or `down`.
    pub status: String,
    /// What pgpool's checks saw of the server: `up`, `down`.
    pub pg_status: String,
    /// pgpool's view: `primary` or `standby`.
    pub role: String,
    /// What the server said: `primary`, `standby`, `unknown`.
    pub pg_role: String,
    pub replication_state: String,
}

impl PoolNode {
    /// pgpool sends clients to it.
    pub fn is_attached(&self) -> bool {
        matches!(self.status.as_str(), "up" | "waiting")
    }
}

/// pgpool's view of its backends, as one client of it sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolView {
    pub nodes: Vec<PoolNode>,
}

impl PoolView {
    /// The backend at `addr`.
    pub fn node(&self, addr: Ipv4Addr) -> Option<&PoolNode> {
        let addr = addr.to_string();
        self.nodes.iter().find(|n| n.hostname == addr)
    }

    /// The backend pgpool sends writes to: attached, role primary.
    pub fn primary(&self) -> Option<&PoolNode> {
        self.nodes
            .iter()
            .find(|n| n.is_attached() && n.role == "primary")
    }

    pub fn is_attached(&self, addr: Ipv4Addr) -> bool {
        self.node(addr).is_some_and(PoolNode::is_attached)
    }

    /// pgpool's primary is the backend at `addr`, the only one attached as
    /// primary.
    pub fn has_primary(&self, addr: Ipv4Addr) -> bool {
        let primaries = self
            .nodes
            .iter()
            .filter(|n| n.is_attached() && n.role == "primary")
            .count();
        primaries == 1
            && self
                .primary()
                .is_some_and(|p| p.hostname == addr.to_string())
    }

    /// One line: `node1 up primary, node2 down standby (pg up), ...`, with
    /// the node names of `names` (by address).
    pub fn summary(&self, names: &BTreeMap<String, String>) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let name = names.get(&n.hostname).unwrap_or(&n.hostname);
                let mut s = format!("{name} {} {}", n.status, n.role);
                if n.pg_role != n.role || n.pg_status != "up" {
                    s.push_str(&format!(" (pg {} {})", n.pg_status, n.pg_role));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The lab's node names by address, for [`PoolView::summary`].
pub fn names(lab: &Lab) -> Result<BTreeMap<String, String>> {
    lab.nodes()?
        .into_iter()
        .map(|n| Ok((lab.address(&n)?.to_string(), n)))
        .collect()
}

/// `SHOW pool_nodes` through the pgpool of `node`, from the switch as a
/// client, inside `timeout` (during pgpool's primary search new clients
/// wait: that is an error here, as for any client).
pub fn pool_nodes(lab: &Lab, node: &str, timeout: Duration) -> Result<PoolView> {
    let config = client_config(&conninfo(lab, node)?)?;
    let netns = lab.switch_netns()?;
    in_netns_within(&netns, timeout, move || {
        let mut client = config.connect(postgres::NoTls)?;
        let view = show_pool_nodes(&mut client)?;
        let _ = client.close();
        Ok(view)
    })
    .with_context(|| format!("SHOW pool_nodes through {node}'s pgpool"))
}

fn client_config(conninfo: &str) -> Result<postgres::Config> {
    let mut config: postgres::Config = conninfo.parse().context("pgpool connection string")?;
    config
        .connect_timeout(Duration::from_secs(2))
        .tcp_user_timeout(Duration::from_secs(3))
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(2);
    Ok(config)
}

fn show_pool_nodes(client: &mut postgres::Client) -> Result<PoolView> {
    let mut view = PoolView::default();
    for message in client.simple_query("SHOW pool_nodes")? {
        let postgres::SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        let text = |name: &str| -> Result<String> {
            Ok(row
                .try_get(name)
                .with_context(|| format!("column {name} of SHOW pool_nodes"))?
                .unwrap_or_default()
                .to_string())
        };
        view.nodes.push(PoolNode {
            node_id: text("node_id")?.parse().context("node_id")?,
            hostname: text("hostname")?,
            status: text("status")?,
            pg_status: text("pg_status")?,
            role: text("role")?,
            pg_role: text("pg_role")?,
            replication_state: text("replication_state")?,
        });
    }
    Ok(view)
}

/// The PID of the running main process of `node`'s pgpool: the one in the
/// pid file (a PID and a NUL byte), checked against /proc inside the node
/// to be pgpool with this configuration.
pub fn main_pid(lab: &Lab, node: &str) -> Result<i32> {
    let out = lab.exec(node, &["cat", PID_FILE])?;
    if !out.status.success() {
        bail!("no pgpool pid file on {node}");
    }
    let digits: String = String::from_utf8_lossy(&out.stdout)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let pid: i32 = digits
        .parse()
        .with_context(|| format!("{PID_FILE} on {node}"))?;
    let cmdline = lab.exec(node, &["cat", &format!("/proc/{pid}/cmdline")])?;
    let cmdline = String::from_utf8_lossy(&cmdline.stdout).replace('\0', " ");
    if !(cmdline.contains("pgpool") && cmdline.contains(&format!("{DIR}/pgpool.conf"))) {
        bail!("PID {pid} of {PID_FILE} on {node} is not its pgpool: {cmdline:?}");
    }
    Ok(pid)
}

/// The main processes of pgpool running in `node` (those started with
/// this configuration: `pgpool -n -f DIR/pgpool.conf`, which children do
/// not keep).
pub fn main_processes(lab: &Lab, node: &str) -> Result<Vec<i32>> {
    let out = lab.exec(
        node,
        &[
            "pgrep",
            "-f",
            &format!("^/usr/sbin/pgpool .*{DIR}/pgpool.conf"),
        ],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Lines of `node`'s pgpool log that contain one of `needles`, read from
/// the host (the node may be down).
pub fn log_lines(lab: &Lab, node: &str, needles: &[&str]) -> Vec<String> {
    let relative = LOG_FILE
        .strip_prefix("/var/log/")
        .expect("pgpool's log is under /var/log");
    let path = NodeDir::new(lab.dir(), node).log(relative);
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Watches one pgpool's `SHOW pool_nodes` from the switch, as a client
/// would, and records every change of what it shows (or of why it does
/// not answer) with the moment it was seen: what pgpool's view did when.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Since when it waits for pgpool to take a new connection, if it does.
    connecting: Arc<Mutex<Option<Instant>>>,
    thread: Option<JoinHandle<()>>,
}

/// One change a [`Watcher`] saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// What pgpool showed, or `None` when it did not answer.
    pub view: Option<PoolView>,
    /// The view's summary, or why there was none.
    pub line: String,
}

impl Watcher {
    pub fn start(lab: &Lab, node: &str) -> Result<Watcher> {
        let config = client_config(&conninfo(lab, node)?)?;
        let netns = lab.switch_netns()?;
        let names = names(lab)?;
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connecting: Arc<Mutex<Option<Instant>>> = Arc::default();
        let (stop2, seen2, connecting2) = (stop.clone(), seen.clone(), connecting.clone());
        let thread = std::thread::spawn(move || {
            let entered = std::fs::File::open(&netns)
                .map_err(|e| e.to_string())
                .and_then(|ns| {
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = entered {
                seen2.lock().expect("watcher").push(Seen {
                    at: Instant::now(),
                    view: None,
                    line: format!("cannot enter the switch: {e}"),
                });
                return;
            }
            let mut client: Option<postgres::Client> = None;
            while !stop2.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let answer = (|| -> Result<PoolView> {
                    if client.is_none() {
                        *connecting2.lock().expect("watcher") = Some(Instant::now());
                        let connected = config.connect(postgres::NoTls);
                        *connecting2.lock().expect("watcher") = None;
                        client = Some(connected?);
                    }
                    show_pool_nodes(client.as_mut().expect("connected above"))
                })();
                let (view, line) = match answer {
                    Ok(view) => {
                        let line = view.summary(&names);
                        (Some(view), line)
                    }
                    Err(e) => {
                        client = None;
                        let why = format!("no answer: {}", first_line(&format!("{e:#}")));
                        (None, why)
                    }
                };
                let mut seen = seen2.lock().expect("watcher");
                if seen.last().map(|s| &s.line) != Some(&line) {
                    seen.push(Seen {
                        at: Instant::now(),
                        view,
                        line,
                    });
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(200).saturating_sub(tick.elapsed()));
            }
        });
        Ok(Watcher {
            stop,
            seen,
            connecting,
            thread: Some(thread),
        })
    }

    /// What it saw last: pgpool's view, or why it had none; `None` before
    /// its first question was answered or failed.
    pub fn latest(&self) -> Option<Seen> {
        self.seen.lock().expect("watcher").last().cloned()
    }

    /// How long it has been waiting for pgpool to take a new connection
    /// (pgpool makes new clients wait while it fails over), if it is.
    pub fn connecting_for(&self) -> Option<Duration> {
        self.connecting
            .lock()
            .expect("watcher")
            .map(|since| since.elapsed())
    }

    /// Stops watching without waiting for the thread: one blocked in a
    /// question to a pgpool that holds new clients ends by itself, at
    /// the latest when the process exits.
    pub fn detach(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take();
    }

    /// Every change seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("watcher").clone()
    }

    /// The changes as lines, each with its time relative to `zero`.
    pub fn timeline(&self, zero: Instant) -> Vec<String> {
        self.seen()
            .into_iter()
            .map(|Seen { at, line, .. }| {
                let t = if at >= zero {
                    format!("+{:.1}", (at - zero).as_secs_f64())
                } else {
                    format!("-{:.1}", (zero - at).as_secs_f64())
                };
                format!("{t:>7} s  {line}")
            })
            .collect()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A query stuck in a pgpool that does not answer would keep the
        // thread; its connection has keepalives and a TCP user timeout, so
        // it ends within seconds. Wait that long, no longer.
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn lab_network(lab: &Lab) -> Ipv4Addr {
    let [a, b, c, _] = lab.switch_address().octets();
    Ipv4Addr::new(a, b, c, 0)
}

/// [`DIR`] of `node` as the host sees it: the node's /var/lib/postgresql is
/// a bind mount of one of the lab's disks.
fn host_dir(lab: &Lab, node: &str) -> PathBuf {
    let relative = DIR
        .strip_prefix("/var/lib/postgresql/")
        .expect("pgpool's directory is on the node's /var/lib/postgresql disk");
    NodeDir::new(lab.dir(), node)
        .disk("var-lib-postgresql")
        .join(relative)
}

/// Writes a whole file with `mode` and `owner` (uid, gid); root's when
/// `None`.
fn write(path: &Path, content: &str, mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn run(lab: &Lab, node: &str, args: &[&str]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u32, host: &str, status: &str, role: &str) -> PoolNode {
        PoolNode {
            node_id: id,
            hostname: host.into(),
            status: status.into(),
            pg_status: "up".into(),
            role: role.into(),
            pg_role: role.into(),
            replication_state: String::new(),
        }
    }

    #[test]
    fn the_primary_is_the_one_attached_as_primary() {
        let a: Ipv4Addr = "10.0.0.11".parse().unwrap();
        let b: Ipv4Addr = "10.0.0.12".parse().unwrap();
        let view = PoolView {
            nodes: vec![
                node(0, "10.0.0.11", "down", "primary"),
                node(1, "10.0.0.12", "waiting", "primary"),
            ],
        };
        assert!(view.has_primary(b));
        assert!(!view.has_primary(a));
        assert!(!view.is_attached(a));
        assert!(view.is_attached(b));
        let two = PoolView {
            nodes: vec![
                node(0, "10.0.0.11", "up", "primary"),
                node(1, "10.0.0.12", "up", "primary"),
            ],
        };
        assert!(!two.has_primary(a), "two primaries: neither is the one");
    }

    #[test]
    fn the_summary_names_nodes_and_says_where_pgpool_disagrees() {
        let names = BTreeMap::from([("10.0.0.11".to_string(), "node1".to_string())]);
        let mut standby = node(1, "10.0.0.12", "down", "standby");
        standby.pg_role = "primary".into();
        let view = PoolView {
            nodes: vec![node(0, "10.0.0.11", "up", "primary"), standby],
        };
        assert_eq!(
            view.summary(&names),
            "node1 up primary, 10.0.0.12 down standby (pg up primary)"
        );
    }

    #[test]
    fn the_configuration_names_every_backend_and_fights_nobody() {
        let pool = Pool::on(&["node1".into(), "node2".into()]).search_primary_node_timeout(5);
        let conf = pgpool_conf(
            "10.0.0.12".parse().unwrap(),
            &pool,
            &[
                ("node1".into(), "10.0.0.11".parse().unwrap()),
                ("node2".into(), "10.0.0.12".parse().unwrap()),
            ],
        );
        for line in [
            "listen_addresses = '10.0.0.12'",
            "backend_hostname1 = '10.0.0.12'",
            "backend_application_name0 = 'node1'",
            "search_primary_node_timeout = 5",
            "failover_command = ''",
            "use_watchdog = off",
        ] {
            assert!(conf.lines().any(|l| l == line), "{line} missing:\n{conf}");
        }
    }
}
