//! A real Slony-I 2.2 cluster for the slon agent's tests: one PostgreSQL 15
//! instance per node (each on its own unix socket, database `app`), the
//! table `accounts` replicated from node 1 to every other node by set 1,
//! slonik scripts generated with every value quoted, and slon processes
//! started, signalled and reaped by PID.
//!
//! [`SlonyCluster::new`] returns the set subscribed and no slon running, as
//! after a clean stop of every slon: each node's `sl_nodelock` then still
//! holds rows naming backends that are gone (slon never removes its row).
//! Dropping the cluster stops the slons it started and the servers, and
//! removes every file.

use crate::{postgres_user, Instance, BINDIR};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Pid};
use ocf::process::ProcInfo;
use ocf::{Deadline, OcfError};
use pgclient::slony::ClusterName;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tusk_slon::quote;

pub const SLON: &str = "/usr/bin/slon";
pub const SLONIK: &str = "/usr/bin/slonik";
/// The database of every node.
pub const DATABASE: &str = "app";
/// The replicated table: `id bigint primary key, note text`.
pub const TABLE: &str = "accounts";
/// The one replication set, with origin node 1 at first.
pub const SET: u32 = 1;
/// slon's defaults poll for events every 2 s, backing off to 10 s when
/// idle, so that a MOVE SET or a row takes up to ~10 s to travel
/// (docs/slony-facts.md). The fixture's slons poll every 500 ms, at most
/// 1 s apart: the same code paths, faster tests.
pub const SLON_OPTIONS: &[&str] = &["-s", "500", "-t", "1000"];

/// The text rows of one statement, NULL as `None`.
pub type Rows = Vec<Vec<Option<String>>>;

pub struct SlonyCluster {
    name: ClusterName,
    /// slonik scripts and their output, slon pid files and logs; owned by
    /// postgres, which slon writes its pid file as.
    root: tempfile::TempDir,
    nodes: Vec<SlonyNode>,
    started: std::sync::atomic::AtomicU32,
}

/// One node: its own PostgreSQL instance and database.
pub struct SlonyNode {
    pub id: u32,
    pub instance: Instance,
}

impl SlonyNode {
    /// libpq conninfo of this node's database over its unix socket, as the
    /// postgres user (peer authentication), every value quoted.
    pub fn conninfo(&self) -> String {
        let q = |v: &str| pgclient::conninfo::quote(v).into_owned();
        format!(
            "host={} port=5432 dbname={} user=postgres",
            q(self.instance.socketdir.to_str().unwrap()),
            q(DATABASE)
        )
    }

    /// A connection to this node's database. The test runs as root; the
    /// fixture's `pg_ident.conf` lets root in as postgres.
    pub fn connect(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Config::new()
            .host_path(&self.instance.socketdir)
            .port(5432)
            .user("postgres")
            .dbname(DATABASE)
            .application_name("tusk-testkit")
            .connect_timeout(Duration::from_secs(10))
            .connect(postgres::NoTls)
    }

    /// Runs `sql` (simple query protocol) and returns every row.
    pub fn try_query(&self, sql: &str) -> Result<Rows, String> {
        let mut client = self.connect().map_err(|e| e.to_string())?;
        let messages = client
            .simple_query(sql)
            .map_err(|e| match e.as_db_error() {
                Some(db) => format!("{}: {}", db.severity(), db.message()),
                None => e.to_string(),
            })?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    }

    pub fn query(&self, sql: &str) -> Rows {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("node {}: {sql}: {e}", self.id))
    }

    /// Stops this node's PostgreSQL with `pg_ctl stop -m MODE` (`fast`,
    /// `immediate`), as a crash of the node's database would.
    pub fn stop_server(&self, mode: &str) {
        pg_ctl(&self.instance, &["-m", mode, "-w", "-t", "60", "stop"]);
    }

    /// Starts this node's PostgreSQL again and waits until it accepts
    /// connections.
    pub fn start_server(&self) {
        pg_ctl(
            &self.instance,
            &[
                "-l",
                self.instance.logfile.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// The first column of the first row, if any and not NULL.
    pub fn value(&self, sql: &str) -> Option<String> {
        self.query(sql).first()?.first()?.clone()
    }
}

/// One row of `sl_nodelock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeLockRow {
    pub node_id: i32,
    pub conn_cnt: i32,
    pub backend_pid: i32,
}

/// The newest event of `origin` that `received` has confirmed, as one
/// node's `sl_confirm` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub origin: i32,
    pub received: i32,
    pub seqno: i64,
    pub timestamp: String,
}

/// What a slonik run printed and how it ended.
#[derive(Debug)]
pub struct SlonikOutcome {
    /// `None` when the deadline passed and slonik was killed.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub script: String,
}

impl SlonikOutcome {
    pub fn expect_success(self) -> SlonikOutcome {
        assert_eq!(
            self.code,
            Some(0),
            "slonik failed after {:?}\nscript:\n{}\nstdout:\n{}\nstderr:\n{}",
            self.took,
            self.script,
            self.stdout,
            self.stderr
        );
        self
    }
}

impl SlonyCluster {
    /// A cluster named `tusk` with `nodes` nodes (at least 2).
    pub fn new(nodes: u32) -> SlonyCluster {
        SlonyCluster::with_name("tusk", nodes)
    }

    /// A cluster of any valid name, such as one whose schema needs quoting
    /// (`Tusk_A$1` is the schema `"_Tusk_A$1"`).
    pub fn with_name(name: &str, nodes: u32) -> SlonyCluster {
        assert!(
            nodes >= 2,
            "a Slony cluster for these tests has 2 nodes or more"
        );
        let name = ClusterName::parse(name).expect("a valid cluster name");
        let root = tempfile::Builder::new()
            .prefix("tusk-slony-")
            .tempdir()
            .unwrap();
        let pg = postgres_user();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        chown(root.path(), Some(pg.uid), Some(pg.gid)).unwrap();
        let nodes = (1..=nodes)
            .map(|id| SlonyNode {
                id,
                instance: start_instance(),
            })
            .collect();
        let cluster = SlonyCluster {
            name,
            root,
            nodes,
            started: Default::default(),
        };
        cluster.build();
        cluster
    }

    /// INIT CLUSTER, STORE NODE and STORE PATH between every pair, CREATE
    /// SET, SET ADD TABLE; then, with a slon per node, SUBSCRIBE SET for
    /// every other node, until each receiver's subscription is active.
    fn build(&self) {
        let mut script = String::new();
        let lit = |v: &str| quote::slonik_literal(v).unwrap();
        let _ = writeln!(
            script,
            "init cluster (id = 1, comment = {});",
            lit("node 1")
        );
        for n in &self.nodes[1..] {
            let _ = writeln!(
                script,
                "store node (id = {id}, comment = {}, event node = 1);",
                lit(&format!("node {}", n.id)),
                id = n.id
            );
        }
        for server in &self.nodes {
            for client in self.nodes.iter().filter(|c| c.id != server.id) {
                let _ = writeln!(
                    script,
                    "store path (server = {}, client = {}, conninfo = {});",
                    server.id,
                    client.id,
                    lit(&server.conninfo())
                );
            }
        }
        let _ = writeln!(
            script,
            "create set (id = {SET}, origin = 1, comment = {});",
            lit("the accounts")
        );
        let _ = writeln!(
            script,
            "set add table (set id = {SET}, origin = 1, id = 1, fully qualified name = {});",
            lit(&format!("public.{TABLE}"))
        );
        self.slonik(&script, Deadline::after(Duration::from_secs(60)))
            .expect_success();

        let mut slons: Vec<Slon> = self.nodes.iter().map(|n| self.start_slon(n.id)).collect();
        let mut subscribe = String::new();
        for n in &self.nodes[1..] {
            let _ = writeln!(
                subscribe,
                "subscribe set (id = {SET}, provider = 1, receiver = {}, forward = yes);",
                n.id
            );
        }
        self.slonik(&subscribe, Deadline::after(Duration::from_secs(60)))
            .expect_success();
        let deadline = Deadline::after(Duration::from_secs(120));
        for n in &self.nodes[1..] {
            let active = format!(
                "SELECT sub_active FROM {}.sl_subscribe WHERE sub_set = {SET} AND sub_receiver = {}",
                self.schema_sql(),
                n.id
            );
            deadline
                .wait_for(
                    &format!("node {}'s subscription to set {SET}", n.id),
                    Duration::from_millis(100),
                    || Ok((n.value(&active).as_deref() == Some("t")).then_some(())),
                )
                .unwrap_or_else(|e| panic!("{e}; slon logs:\n{}", logs(&slons)));
        }
        for s in &mut slons {
            s.terminate(Deadline::after(Duration::from_secs(20)))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    pub fn name(&self) -> &ClusterName {
        &self.name
    }

    /// `"_<name>"`, the quoted schema of the cluster.
    pub fn schema_sql(&self) -> String {
        self.name.schema_sql()
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn nodes(&self) -> &[SlonyNode] {
        &self.nodes
    }

    pub fn node(&self, id: u32) -> &SlonyNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// slonik's preamble for this cluster: its name and every node's admin
    /// conninfo.
    pub fn preamble(&self) -> String {
        let mut s = format!("cluster name = {};\n", self.name);
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "node {} admin conninfo = {};",
                n.id,
                quote::slonik_literal(&n.conninfo()).unwrap()
            );
        }
        s
    }

    /// Runs the preamble and `commands` through slonik as the postgres user;
    /// slonik is killed if the deadline passes.
    pub fn slonik(&self, commands: &str, deadline: Deadline) -> SlonikOutcome {
        let script = format!("{}{commands}", self.preamble());
        let n = self.next_serial();
        let (stdout_path, stderr_path) = (
            self.root().join(format!("slonik-{n}.out")),
            self.root().join(format!("slonik-{n}.err")),
        );
        let pg = postgres_user();
        let started = Instant::now();
        let mut child = Command::new(SLONIK)
            .current_dir(self.root())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw())
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("run slonik");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(script.as_bytes()).unwrap();
        }
        let code = wait_child(&mut child, &deadline).map(|s| s.code().unwrap_or(-1));
        if code.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        SlonikOutcome {
            code,
            stdout: read_bounded(&stdout_path),
            stderr: read_bounded(&stderr_path),
            took: started.elapsed(),
            script,
        }
    }

    /// A slon for `node`, with the fixture's options and pid file
    /// `ROOT/slon-NODE.pid`.
    pub fn start_slon(&self, node: u32) -> Slon {
        let pid_file = self.root().join(format!("slon-{node}.pid"));
        self.start_slon_with(node, &pid_file, SLON_OPTIONS)
    }

    /// A slon for `node` as a plain process of the postgres user (no
    /// shell, no runuser): `slon OPTIONS -p PID_FILE CLUSTER CONNINFO`, its
    /// output in `ROOT/slon-NODE-SERIAL.log`. The process is slon's
    /// watchdog; it forks the worker that connects.
    pub fn start_slon_with(&self, node: u32, pid_file: &Path, options: &[&str]) -> Slon {
        let log = self
            .root()
            .join(format!("slon-{node}-{}.log", self.next_serial()));
        let out = std::fs::File::create(&log).unwrap();
        let pg = postgres_user();
        let child = Command::new(SLON)
            .current_dir(self.root())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw())
            .args(options)
            .arg("-p")
            .arg(pid_file)
            .arg(self.name.as_str())
            .arg(self.node(node).conninfo())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start slon");
        Slon {
            child,
            node,
            pid_file: pid_file.to_path_buf(),
            log,
            started: Instant::now(),
            worker: None,
            exit: None,
        }
    }

    fn next_serial(&self) -> u32 {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Every row of `node`'s `sl_nodelock`.
    pub fn nodelock(&self, node: u32) -> Vec<NodeLockRow> {
        self.node(node)
            .query(&format!(
                "SELECT nl_nodeid, nl_conncnt, nl_backendpid FROM {}.sl_nodelock ORDER BY 1, 2",
                self.schema_sql()
            ))
            .iter()
            .map(|r| NodeLockRow {
                node_id: int(&r[0]) as i32,
                conn_cnt: int(&r[1]) as i32,
                backend_pid: int(&r[2]) as i32,
            })
            .collect()
    }

    /// The PID slon's lock row `(node, 0)` names on the node itself.
    pub fn lock_pid(&self, node: u32) -> Option<i32> {
        self.nodelock(node)
            .iter()
            .find(|r| r.node_id == node as i32 && r.conn_cnt == 0)
            .map(|r| r.backend_pid)
    }

    /// Makes `node`'s lock row name `pid`, as a reboot that gave the PID to
    /// another process would.
    pub fn forge_lock(&self, node: u32, pid: i32) {
        let rows = self.node(node).query(&format!(
            "UPDATE {}.sl_nodelock SET nl_backendpid = {pid} \
             WHERE nl_nodeid = {node} AND nl_conncnt = 0 RETURNING 1",
            self.schema_sql()
        ));
        assert_eq!(rows.len(), 1, "node {node} has no lock row to forge");
    }

    /// Waits until `node`'s lock row names a live backend whose
    /// application_name is `slon.local_listen`: slon serves the node.
    /// Returns that backend's PID.
    pub fn wait_serving(&self, node: u32, deadline: Deadline) -> ocf::Result<i32> {
        let sql = format!(
            "SELECT l.nl_backendpid FROM {}.sl_nodelock l \
             JOIN pg_stat_activity a ON a.pid = l.nl_backendpid \
             WHERE l.nl_nodeid = {node} AND l.nl_conncnt = 0 \
             AND a.application_name = 'slon.local_listen'",
            self.schema_sql()
        );
        deadline.wait_for(
            &format!("a slon to serve node {node}"),
            Duration::from_millis(20),
            || Ok(self.node(node).value(&sql).map(|p| int(&Some(p)) as i32)),
        )
    }

    /// Waits until no backend of `node`'s server has `pid`.
    pub fn wait_backend_gone(&self, node: u32, pid: i32, deadline: Deadline) -> ocf::Result<()> {
        let sql = format!("SELECT 1 FROM pg_stat_activity WHERE pid = {pid}");
        deadline.wait_for(
            &format!("backend {pid} of node {node} to end"),
            Duration::from_millis(20),
            || Ok(self.node(node).query(&sql).is_empty().then_some(())),
        )
    }

    /// `sl_set.set_origin` of `set` as `node` sees it.
    pub fn set_origin(&self, node: u32, set: u32) -> Option<u32> {
        self.node(node)
            .value(&format!(
                "SELECT set_origin FROM {}.sl_set WHERE set_id = {set}",
                self.schema_sql()
            ))
            .map(|v| v.parse().unwrap())
    }

    /// The newest confirmation of each (origin, receiver) pair in `node`'s
    /// `sl_confirm`.
    pub fn confirms(&self, node: u32) -> Vec<Confirm> {
        self.node(node)
            .query(&format!(
                "SELECT con_origin, con_received, max(con_seqno), max(con_timestamp)::text \
                 FROM {}.sl_confirm GROUP BY 1, 2 ORDER BY 1, 2",
                self.schema_sql()
            ))
            .iter()
            .map(|r| Confirm {
                origin: int(&r[0]) as i32,
                received: int(&r[1]) as i32,
                seqno: int(&r[2]),
                timestamp: r[3].clone().unwrap_or_default(),
            })
            .collect()
    }

    /// Inserts the rows `ids` into the table on `node` (the origin).
    pub fn insert_rows(&self, node: u32, ids: std::ops::Range<i64>) {
        self.node(node).query(&format!(
            "INSERT INTO {TABLE} SELECT g, 'row ' || g FROM generate_series({}, {}) g",
            ids.start,
            ids.end - 1
        ));
    }

    /// Waits until every row of `ids` is in the table on `node`; returns how
    /// long that took.
    pub fn wait_rows(
        &self,
        node: u32,
        ids: std::ops::Range<i64>,
        deadline: Deadline,
    ) -> ocf::Result<Duration> {
        let started = Instant::now();
        let sql = format!(
            "SELECT count(*) FROM {TABLE} WHERE id >= {} AND id < {}",
            ids.start, ids.end
        );
        let want = (ids.end - ids.start).to_string();
        deadline.wait_for(
            &format!("rows {ids:?} on node {node}"),
            Duration::from_millis(20),
            || Ok((self.node(node).value(&sql) == Some(want.clone())).then(|| started.elapsed())),
        )
    }

    /// A planned move of the set's origin: LOCK SET, MOVE SET, WAIT FOR
    /// EVENT (the new origin confirmed the move), in one slonik run.
    pub fn move_set(&self, from: u32, to: u32, deadline: Deadline) -> SlonikOutcome {
        self.slonik(
            &format!(
                "lock set (id = {SET}, origin = {from});\n\
                 move set (id = {SET}, old origin = {from}, new origin = {to});\n\
                 wait for event (origin = {from}, confirmed = {to}, wait on = {from});\n"
            ),
            deadline,
        )
    }

    /// Every slon process started for this cluster that still runs: a
    /// slon whose command line names a path that only this cluster has (its
    /// root for the pid file, a node's socket directory in the conninfo).
    pub fn slon_processes(&self) -> Vec<ProcInfo> {
        let ours: Vec<String> = std::iter::once(self.root().display().to_string())
            .chain(
                self.nodes
                    .iter()
                    .map(|n| n.instance.socketdir.display().to_string()),
            )
            .collect();
        ocf::process::all_pids()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| ProcInfo::read(pid).ok().flatten())
            .filter(|p| {
                !p.has_exited()
                    && is_slon(p)
                    && p.cmdline.iter().any(|a| {
                        let a = a.to_string_lossy();
                        ours.iter().any(|o| a.contains(o.as_str()))
                    })
            })
            .collect()
    }
}

impl Drop for SlonyCluster {
    /// The Slon handles stop their own processes; a worker orphaned by a
    /// killed watchdog, or a Slon leaked by a test, is found by its
    /// command line and killed by PID, before the servers are.
    fn drop(&mut self) {
        for p in self.slon_processes() {
            kill_verified(&p);
        }
        let _ = Deadline::after(Duration::from_secs(10)).wait_for(
            "this cluster's slons to exit",
            Duration::from_millis(20),
            || Ok(self.slon_processes().is_empty().then_some(())),
        );
    }
}

/// initdb, a socket directory and peer authentication with root mapped to
/// postgres, the server started with pg_ctl, the database and the table.
fn start_instance() -> Instance {
    let instance = Instance::new(PathBuf::new());
    let pg = postgres_user();
    for dir in [
        &instance.socketdir,
        &instance.logfile.parent().unwrap().to_path_buf(),
    ] {
        std::fs::create_dir_all(dir).unwrap();
        chown(dir.as_path(), Some(pg.uid), Some(pg.gid)).unwrap();
    }
    crate::append(
        &instance.pgdata.join("postgresql.conf"),
        &format!(
            "unix_socket_directories = {}\nshared_buffers = 16MB\n",
            sql_string(instance.socketdir.to_str().unwrap())
        ),
    );
    instance.write_owned(
        &instance.pgdata.join("pg_hba.conf"),
        "local all all peer map=tusk\n",
    );
    instance.write_owned(
        &instance.pgdata.join("pg_ident.conf"),
        "tusk postgres postgres\ntusk root postgres\n",
    );
    pg_ctl(
        &instance,
        &[
            "-l",
            instance.logfile.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
    let mut admin = postgres::Config::new()
        .host_path(&instance.socketdir)
        .port(5432)
        .user("postgres")
        .dbname("postgres")
        .connect(postgres::NoTls)
        .expect("connect to the new server");
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {}",
            pgclient::quote::identifier(DATABASE).unwrap()
        ))
        .unwrap();
    let mut app = postgres::Config::new()
        .host_path(&instance.socketdir)
        .port(5432)
        .user("postgres")
        .dbname(DATABASE)
        .connect(postgres::NoTls)
        .unwrap();
    app.batch_execute(&format!(
        "CREATE TABLE {TABLE} (id bigint PRIMARY KEY, note text NOT NULL)"
    ))
    .unwrap();
    instance
}

/// `pg_ctl -D PGDATA ARGS` as the postgres user; panics when it fails.
fn pg_ctl(instance: &Instance, args: &[&str]) {
    let pg = postgres_user();
    let out = Command::new(Path::new(BINDIR).join("pg_ctl"))
        .current_dir(instance.root())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .uid(pg.uid.as_raw())
        .gid(pg.gid.as_raw())
        .arg("-D")
        .arg(&instance.pgdata)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl");
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A string literal for postgresql.conf.
fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn int(v: &Option<String>) -> i64 {
    v.as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v:?}"))
}

/// A file's first 1 MiB, as text.
fn read_bounded(path: &Path) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(1 << 20).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn logs(slons: &[Slon]) -> String {
    slons
        .iter()
        .map(|s| format!("--- node {}:\n{}", s.node, s.log_text()))
        .collect()
}

fn wait_child(child: &mut Child, deadline: &Deadline) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if deadline.is_expired() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10).min(deadline.remaining()));
    }
}

fn is_slon(p: &ProcInfo) -> bool {
    p.exe.as_deref() == Some(Path::new(SLON))
}

/// SIGKILLs `p` if that PID is still the same slon process (same start
/// time), so a PID that went to another process is never signalled.
fn kill_verified(p: &ProcInfo) -> bool {
    match ProcInfo::read(p.pid) {
        Ok(Some(now)) if now.start_ticks == p.start_ticks && is_slon(&now) && !now.has_exited() => {
            kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok()
        }
        _ => false,
    }
}

/// One slon started by the fixture. The child process is slon's watchdog;
/// it forks the worker, which makes every connection. Until the watchdog
/// is reaped its PID cannot go to another process, so it is signalled
/// directly; the worker is signalled only after /proc shows it is still
/// the same slon process.
pub struct Slon {
    child: Child,
    pub node: u32,
    pub pid_file: PathBuf,
    pub log: PathBuf,
    pub started: Instant,
    worker: Option<ProcInfo>,
    exit: Option<ExitStatus>,
}

impl Slon {
    pub fn watchdog_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The worker: the slon process whose parent is the watchdog, as long
    /// as the watchdog has not been reaped. Remembered once seen, so that
    /// an orphaned worker is still known.
    pub fn worker(&mut self) -> Option<ProcInfo> {
        if let Some(w) = &self.worker {
            if let Ok(Some(now)) = ProcInfo::read(w.pid) {
                if now.start_ticks == w.start_ticks && !now.has_exited() {
                    return Some(now);
                }
            }
            self.worker = None;
        }
        if self.exit.is_some() {
            return None;
        }
        let watchdog = self.watchdog_pid();
        self.worker = ocf::process::all_pids()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|pid| ProcInfo::read(pid).ok().flatten())
            .find(|p| p.ppid == watchdog && is_slon(p) && !p.has_exited());
        self.worker.clone()
    }

    pub fn worker_pid(&mut self) -> Option<i32> {
        self.worker().map(|w| w.pid)
    }

    pub fn wait_worker(&mut self, deadline: Deadline) -> ocf::Result<i32> {
        deadline.wait_for("slon's worker process", Duration::from_millis(10), || {
            Ok(self.worker_pid())
        })
    }

    /// The exit status, once the watchdog has exited (reaped here).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().unwrap();
        }
        self.exit
    }

    /// Waits for the watchdog to exit on its own.
    pub fn wait_exit(&mut self, deadline: Deadline) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if deadline.is_expired() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5).min(deadline.remaining()));
        }
    }

    /// Sends `signal` to the watchdog, unless it has exited.
    pub fn signal_watchdog(&mut self, signal: Signal) {
        if self.try_exit().is_none() {
            let _ = kill(Pid::from_raw(self.watchdog_pid()), signal);
        }
    }

    /// A clean stop: SIGTERM to the watchdog, which SIGKILLs its worker and
    /// removes the pid file; returns the watchdog's exit status once both
    /// are gone.
    pub fn terminate(&mut self, deadline: Deadline) -> ocf::Result<ExitStatus> {
        self.worker();
        self.signal_watchdog(Signal::SIGTERM);
        let status = self.wait_exit(deadline).ok_or_else(|| {
            OcfError::generic(format!(
                "slon {} ignored SIGTERM; its log ends:\n{}",
                self.watchdog_pid(),
                self.log_tail(4000)
            ))
        })?;
        self.wait_worker_gone(deadline)?;
        Ok(status)
    }

    /// A crash: SIGKILL to the watchdog and then to the worker, so that
    /// neither can react; returns once both are gone.
    pub fn crash(&mut self, deadline: Deadline) -> ocf::Result<()> {
        self.worker();
        self.signal_watchdog(Signal::SIGKILL);
        if let Some(w) = &self.worker {
            kill_verified(w);
        }
        self.wait_exit(deadline)
            .ok_or_else(|| OcfError::generic("slon's watchdog survived SIGKILL"))?;
        self.wait_worker_gone(deadline)
    }

    fn wait_worker_gone(&mut self, deadline: Deadline) -> ocf::Result<()> {
        deadline.wait_for("slon's worker to exit", Duration::from_millis(10), || {
            Ok(self.worker().is_none().then_some(()))
        })
    }

    /// The log so far (first 1 MiB).
    pub fn log_text(&self) -> String {
        read_bounded(&self.log)
    }

    /// The last `bytes` of the log (or of its first 1 MiB).
    pub fn log_tail(&self, bytes: usize) -> String {
        let log = self.log_text();
        let mut start = log.len().saturating_sub(bytes);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_string()
    }
}

impl Drop for Slon {
    fn drop(&mut self) {
        self.worker();
        self.signal_watchdog(Signal::SIGKILL);
        if let Some(w) = self.worker.take() {
            kill_verified(&w);
        }
        let _ = self.child.wait();
    }
}
