//! Slony-I's node lock: who holds this node's `sl_nodelock` row, judged
//! from what the row's backend really is, never from whether its PID exists.
//!
//! slon's local listen connection registers its backend's PID as the row
//! `(node, 0)` of `sl_nodelock` and nothing removes it when slon ends (not
//! even a clean SIGTERM). At its next start slon deletes a row only when
//! `kill(pid, 0)` fails; when the PID has meanwhile gone to any process the
//! postgres user may signal, the row survives and slon exits with a
//! duplicate-key FATAL (docs/slony-facts.md). Here a row is held only when
//! pg_stat_activity shows that PID as a slon local listen connection to this
//! node's database, and, when its client is on this host, that client is a
//! slon of this cluster.

use crate::database::NodeDb;
use crate::peer::{self, Client, Peer};
use ocf::process::ProcInfo;
use ocf::{Deadline, OcfError, Result};
use pgclient::quote;
use pgclient::slony::ClusterName;
use std::net::IpAddr;
use std::path::Path;

/// The `application_name` slon 2.2 gives its local listen connection, the
/// one whose backend PID is the node's lock.
pub const LOCAL_LISTEN: &str = "slon.local_listen";

/// This node's lock rows, as one statement shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLock {
    /// `getLocalNodeId()`: the node this database is.
    pub local_node: i32,
    /// The server's `port`, which a TCP client's socket is connected to.
    pub server_port: u16,
    /// The rows of `sl_nodelock` for `local_node`, in `nl_conncnt` order;
    /// slon's lock is the row with `conn_cnt` 0.
    pub rows: Vec<LockRow>,
}

/// One row of `sl_nodelock`, with the backend its PID names, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRow {
    pub node_id: i32,
    pub conn_cnt: i32,
    pub backend_pid: i32,
    /// pg_stat_activity's row for `backend_pid`; `None` when no backend of
    /// this server has that PID.
    pub backend: Option<Backend>,
}

/// What pg_stat_activity says about the backend a lock row names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Connected to this node's database (not another database of the
    /// same server, and not a process without one such as a walsender).
    pub in_this_database: bool,
    /// `None`: hidden from the agent's role.
    pub application_name: Option<String>,
    pub usename: Option<String>,
    pub backend_start: Option<String>,
    pub client: Client,
}

/// The one statement that reads this node's lock rows together with the
/// backends they name, so both come from one snapshot (pg_stat_activity is
/// read once per transaction). The first row always exists and carries the
/// local node id even when there is no lock row.
///
/// `getLocalNodeId` takes the schema name as a value and quotes it itself
/// (2.2.11 builds `select last_value from <quote_ident(name)>.sl_local_node_id`).
pub fn query(cluster: &ClusterName) -> String {
    let schema = cluster.schema_sql();
    let schema_value =
        quote::literal(&cluster.schema()).expect("a validated cluster name is a valid SQL string");
    format!(
        "SELECT s.node, current_setting('port'), \
                l.nl_conncnt, l.nl_backendpid, \
                a.pid IS NOT NULL, coalesce(a.datname = current_database(), false), \
                a.application_name, a.usename, a.backend_start::text, \
                host(a.client_addr), a.client_port \
         FROM (SELECT {schema}.getLocalNodeId({schema_value}) AS node) s \
         LEFT JOIN {schema}.sl_nodelock l ON l.nl_nodeid = s.node \
         LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.nl_backendpid \
         ORDER BY l.nl_conncnt"
    )
}

impl NodeLock {
    /// Reads the rows of [`query`].
    pub fn from_rows(rows: &[Vec<Option<String>>]) -> Result<NodeLock> {
        let bad =
            |what: &str| OcfError::generic(format!("unexpected sl_nodelock query result: {what}"));
        let first = rows.first().ok_or_else(|| bad("no row"))?;
        let local_node = int(first, 0).ok_or_else(|| bad("no local node id"))?;
        let server_port = int(first, 1)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| bad("no server port"))?;
        let mut lock = NodeLock {
            local_node,
            server_port,
            rows: Vec::new(),
        };
        for row in rows {
            // The LEFT JOIN's empty side: the node has no lock row.
            let (Some(conn_cnt), Some(backend_pid)) = (int(row, 2), int(row, 3)) else {
                continue;
            };
            let backend = (text(row, 4) == Some("t")).then(|| Backend {
                in_this_database: text(row, 5) == Some("t"),
                application_name: text(row, 6).map(str::to_string),
                usename: text(row, 7).map(str::to_string),
                backend_start: text(row, 8).map(str::to_string),
                client: crate::connections::client(text(row, 9), int(row, 10)),
            });
            lock.rows.push(LockRow {
                node_id: local_node,
                conn_cnt,
                backend_pid,
                backend,
            });
        }
        Ok(lock)
    }

    /// slon's lock: the row `(local_node, 0)`.
    pub fn slon_lock(&self) -> Option<&LockRow> {
        self.rows.iter().find(|r| r.conn_cnt == 0)
    }
}

fn text(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i)?.as_deref()
}

fn int(row: &[Option<String>], i: usize) -> Option<i32> {
    text(row, i)?.parse().ok()
}

/// Reads this node's lock rows: one round trip. A failure keeps its kind
/// (a probe tells an unreachable database from a refusing one).
pub fn read(db: &NodeDb, cluster: &ClusterName, deadline: &Deadline) -> pgclient::Result<NodeLock> {
    let results = db
        .query(deadline, &query(cluster))
        .map_err(|e| e.context(format!("reading {}.sl_nodelock", cluster.schema())))?;
    NodeLock::from_rows(results.first().map(Vec::as_slice).unwrap_or_default())
        .map_err(|e| pgclient::Error::new(pgclient::ErrorKind::Other, e.reason()))
}

/// The lock's backend, when the lock row names a live `slon.local_listen`
/// backend of this database whose client is `worker`: that slon serves
/// the node. Reads `worker`'s descriptors only, no scan of /proc.
pub fn held_by(lock: &NodeLock, worker: &ProcInfo) -> Option<i32> {
    let row = lock.slon_lock()?;
    let backend = row.backend.as_ref()?;
    if !backend.in_this_database || backend.application_name.as_deref() != Some(LOCAL_LISTEN) {
        return None;
    }
    peer::is_client(
        row.backend_pid,
        &backend.client,
        lock.server_port,
        worker.pid,
    )
    .ok()?
    .then_some(row.backend_pid)
}

/// Deletes this node's lock row `(node, 0)` if it still names
/// `backend_pid`: the row start judged stale, and no other.
pub fn delete_stale(
    db: &NodeDb,
    cluster: &ClusterName,
    node: i32,
    backend_pid: i32,
    deadline: &Deadline,
) -> pgclient::Result<bool> {
    let sql = format!(
        "DELETE FROM {}.sl_nodelock \
         WHERE nl_nodeid = {node} AND nl_conncnt = 0 AND nl_backendpid = {backend_pid} \
         RETURNING 1",
        cluster.schema_sql()
    );
    let results = db
        .query(deadline, &sql)
        .map_err(|e| e.context(format!("deleting node {node}'s lock row")))?;
    Ok(results.first().is_some_and(|rows| !rows.is_empty()))
}

/// After a stop: deletes this node's lock row unless a live
/// `slon.local_listen` backend of this database has its PID (or hides its
/// name), so that the next start finds no row. Returns the PID the
/// deleted row named.
pub fn release(
    db: &NodeDb,
    cluster: &ClusterName,
    deadline: &Deadline,
) -> pgclient::Result<Option<i32>> {
    let schema = cluster.schema_sql();
    let schema_value =
        quote::literal(&cluster.schema()).expect("a validated cluster name is a valid SQL string");
    let sql = format!(
        "DELETE FROM {schema}.sl_nodelock l \
         WHERE l.nl_nodeid = {schema}.getLocalNodeId({schema_value}) AND l.nl_conncnt = 0 \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a \
                         WHERE a.pid = l.nl_backendpid AND a.datname = current_database() \
                         AND coalesce(a.application_name, '{LOCAL_LISTEN}') = '{LOCAL_LISTEN}') \
         RETURNING l.nl_backendpid"
    );
    let results = db
        .query(deadline, &sql)
        .map_err(|e| e.context("removing this node's lock row"))?;
    Ok(pgclient::value(&results, 0, 0, 0).and_then(|p| p.parse().ok()))
}

/// A lock row with what this host knows about the other end of its
/// backend's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub row: LockRow,
    /// `None` when the PID is no backend, so there is no connection.
    pub peer: Option<Peer>,
    /// What /proc says the row's PID is here (for the log only: a PID of
    /// this host says nothing about a backend of this server).
    pub pid_process: Option<ProcInfo>,
}

/// Adds the /proc facts to each row of `lock`.
pub fn observe(lock: &NodeLock) -> Vec<Observed> {
    lock.rows
        .iter()
        .map(|row| observe_row(row, lock.server_port))
        .collect()
}

/// Adds the /proc facts to one row; `server_port` is [`NodeLock::server_port`].
pub fn observe_row(row: &LockRow, server_port: u16) -> Observed {
    Observed {
        peer: row
            .backend
            .as_ref()
            .map(|b| peer::find(row.backend_pid, &b.client, server_port)),
        pid_process: ProcInfo::read(row.backend_pid).ok().flatten(),
        row: row.clone(),
    }
}

/// Who holds a lock row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No slon holds it: the row may be deleted. Why, for the log.
    Stale(String),
    /// A live slon connection of this node holds it.
    HeldBy(Holder),
    /// The agent cannot tell: the row must stay. Why.
    Unknown(String),
}

/// The slon connection that holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub backend_pid: i32,
    pub client: HolderClient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderClient {
    /// The slon process on this host (slon's worker, whose parent is its
    /// watchdog).
    Local(ProcInfo),
    /// A slon on another host, known only by its address.
    Remote { addr: IpAddr, port: u16 },
}

/// What a slon of this node looks like on this host.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub cluster: &'a ClusterName,
    /// The configured slon binary; any executable named `slon` counts too.
    pub slon_binary: &'a Path,
}

/// Judges one lock row. Only a live backend of this database named
/// `slon.local_listen`, whose client is a slon of this cluster or on
/// another host, holds the lock. A row that cannot be that is stale; one
/// whose facts are hidden or contradictory is unknown (the row stays and
/// slon is not started: a wrong "stale" would let two slons serve a node).
pub fn judge(obs: &Observed, expected: &Expected<'_>) -> Verdict {
    let pid = obs.row.backend_pid;
    let Some(backend) = &obs.row.backend else {
        return Verdict::Stale(format!(
            "PID {pid} is no backend of this server ({})",
            describe_pid(obs.pid_process.as_ref())
        ));
    };
    if !backend.in_this_database {
        return Verdict::Stale(format!("PID {pid} is a backend of another database now"));
    }
    let Some(application) = &backend.application_name else {
        return Verdict::Unknown(format!(
            "pg_stat_activity hides backend {pid}'s application_name (grant pg_read_all_stats)"
        ));
    };
    if application != LOCAL_LISTEN {
        return Verdict::Stale(format!(
            "PID {pid} is now the backend of {application:?}, not a slon's local listen connection"
        ));
    }
    let Some(peer) = &obs.peer else {
        return Verdict::Unknown(format!("the client of backend {pid} was not looked up"));
    };
    let local = match peer {
        Peer::Remote { addr, port } => {
            return Verdict::HeldBy(Holder {
                backend_pid: pid,
                client: HolderClient::Remote {
                    addr: *addr,
                    port: *port,
                },
            })
        }
        Peer::Hidden => {
            return Verdict::Unknown(format!(
                "pg_stat_activity hides where backend {pid}'s client is (grant pg_read_all_stats)"
            ))
        }
        Peer::LocalUnseen => {
            return Verdict::Unknown(format!(
            "backend {pid} is a slon connection from this host, but no process here holds its end"
        ))
        }
        Peer::Unreadable(why) => return Verdict::Unknown(why.clone()),
        Peer::Local(p) => p,
    };
    if !is_slon(local, expected.slon_binary) {
        return Verdict::Unknown(format!(
            "backend {pid} calls itself {LOCAL_LISTEN} but its client, PID {} ({}), is not slon",
            local.pid,
            describe_pid(Some(local))
        ));
    }
    match slon_cluster(&local.cmdline) {
        Some(other) if other != expected.cluster.as_str() => Verdict::Stale(format!(
            "PID {pid} is now the lock connection of slon PID {} of cluster {other:?}",
            local.pid
        )),
        // Named on the command line as this cluster, or in a -f
        // configuration file: either way a slon is connected to this
        // node's database as its local node.
        _ => Verdict::HeldBy(Holder {
            backend_pid: pid,
            client: HolderClient::Local(local.clone()),
        }),
    }
}

/// The executable is the configured slon, or a file named `slon`.
fn is_slon(p: &ProcInfo, slon_binary: &Path) -> bool {
    p.exe
        .as_deref()
        .is_some_and(|exe| exe == slon_binary || exe.file_name().is_some_and(|n| n == "slon"))
}

/// The cluster name a slon command line gives: its first operand
/// (`slon [options] clustername conninfo`). `None` when there is no operand
/// (the name is in a `-f` file).
pub fn slon_cluster(cmdline: &[std::ffi::OsString]) -> Option<String> {
    SlonArgs::parse(cmdline).operands.into_iter().next()
}

/// A slon command line, read as slon 2.2.11's getopt reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlonArgs {
    /// Each option with its value (`-s500` and `-s 500` alike); a flag
    /// without a value (`-v`) has an empty one.
    pub options: Vec<(char, String)>,
    /// The cluster name and the conninfo, when given.
    pub operands: Vec<String>,
}

impl SlonArgs {
    /// Options take a value either attached (`-s500`) or as the next
    /// argument; glibc's getopt finds options after operands too.
    pub fn parse(cmdline: &[std::ffi::OsString]) -> SlonArgs {
        const WITH_VALUE: &[u8] = b"dstogcpfaxqrl";
        let mut args = cmdline.iter().skip(1).map(|a| a.to_string_lossy());
        let mut parsed = SlonArgs::default();
        while let Some(arg) = args.next() {
            if arg == "--" {
                parsed.operands.extend(args.map(|a| a.into_owned()));
                break;
            }
            match arg.as_bytes() {
                [b'-', opt, rest @ ..] => {
                    let value = if !WITH_VALUE.contains(opt) {
                        String::new()
                    } else if rest.is_empty() {
                        args.next().map(|a| a.into_owned()).unwrap_or_default()
                    } else {
                        String::from_utf8_lossy(rest).into_owned()
                    };
                    parsed.options.push((*opt as char, value));
                }
                _ => parsed.operands.push(arg.into_owned()),
            }
        }
        parsed
    }

    /// The value of the last `-opt` (getopt's last one wins).
    pub fn option(&self, opt: char) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(o, _)| *o == opt)
            .map(|(_, v)| v.as_str())
    }
}

/// A process for an operator: `/usr/bin/sleep (uid 104)`, `no process`.
fn describe_pid(p: Option<&ProcInfo>) -> String {
    match p {
        None => "no process has it on this host".to_string(),
        Some(p) if p.has_exited() => format!("a zombie of uid {}", p.uid),
        Some(p) => format!(
            "{} of uid {}",
            p.exe
                .as_deref()
                .map(|e| e.display().to_string())
                .unwrap_or_else(|| "a process".to_string()),
            p.uid
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;
    use std::time::SystemTime;

    const POSTGRES_UID: u32 = 104;

    fn cluster() -> ClusterName {
        ClusterName::parse("tusk").unwrap()
    }

    fn expected(c: &ClusterName) -> Expected<'_> {
        Expected {
            cluster: c,
            slon_binary: Path::new("/usr/bin/slon"),
        }
    }

    fn process(pid: i32, uid: u32, exe: &str, cmdline: &[&str]) -> ProcInfo {
        ProcInfo {
            pid,
            state: 'S',
            ppid: 1,
            uid,
            gid: uid,
            started: SystemTime::UNIX_EPOCH,
            start_ticks: 1000,
            exe: Some(PathBuf::from(exe)),
            cwd: Some(PathBuf::from("/")),
            cmdline: cmdline.iter().map(OsString::from).collect(),
        }
    }

    fn slon_worker(pid: i32, cluster: &str) -> ProcInfo {
        process(
            pid,
            POSTGRES_UID,
            "/usr/bin/slon",
            &[
                "slon",
                "-p",
                "/run/slon.pid",
                cluster,
                "host=/run/pg dbname=app",
            ],
        )
    }

    fn backend(application: Option<&str>, client: Client) -> Backend {
        Backend {
            in_this_database: true,
            application_name: application.map(str::to_string),
            usename: Some("postgres".into()),
            backend_start: Some("2026-12-01 21:20:57.772761+00".into()),
            client,
        }
    }

    fn row(pid: i32, backend: Option<Backend>) -> LockRow {
        LockRow {
            node_id: 1,
            conn_cnt: 0,
            backend_pid: pid,
            backend,
        }
    }

    fn judged(row: LockRow, peer: Option<Peer>, pid_process: Option<ProcInfo>) -> Verdict {
        let c = cluster();
        judge(
            &Observed {
                row,
                peer,
                pid_process,
            },
            &expected(&c),
        )
    }

    fn assert_stale(v: &Verdict, says: &str) {
        match v {
            Verdict::Stale(why) => assert!(why.contains(says), "{why}"),
            other => panic!("expected stale ({says}), got {other:?}"),
        }
    }

    fn assert_unknown(v: &Verdict, says: &str) {
        match v {
            Verdict::Unknown(why) => assert!(why.contains(says), "{why}"),
            other => panic!("expected unknown ({says}), got {other:?}"),
        }
    }

    // (a) The PID is a live backend, but of psql (or any non-slon client).
    #[test]
    fn a_live_non_slon_backend_is_stale() {
        let psql = process(
            2001,
            POSTGRES_UID,
            "/usr/lib/postgresql/15/bin/psql",
            &["psql"],
        );
        let v = judged(
            row(2000, Some(backend(Some("psql"), Client::UnixSocket))),
            Some(Peer::Local(psql)),
            Some(process(
                2000,
                POSTGRES_UID,
                "/usr/lib/postgresql/15/bin/postgres",
                &["postgres: postgres app [local] idle"],
            )),
        );
        assert_stale(
            &v,
            "backend of \"psql\", not a slon's local listen connection",
        );
    }

    // (b) The PID went to an unrelated process of the postgres user: the
    // field failure (Slony's kill(pid, 0) succeeds, so it keeps the row).
    #[test]
    fn a_live_process_of_the_postgres_user_that_is_no_backend_is_stale() {
        let sleep = process(3000, POSTGRES_UID, "/usr/bin/sleep", &["sleep", "1000"]);
        let v = judged(row(3000, None), None, Some(sleep));
        assert_stale(
            &v,
            "PID 3000 is no backend of this server (/usr/bin/sleep of uid 104)",
        );
    }

    // (c) A root-owned process (Slony's kill(pid, 0) gets EPERM and deletes
    // the row itself; the judgement does not depend on who owns it).
    #[test]
    fn a_root_owned_process_is_stale() {
        let cron = process(4000, 0, "/usr/sbin/cron", &["/usr/sbin/cron", "-f"]);
        let v = judged(row(4000, None), None, Some(cron));
        assert_stale(&v, "/usr/sbin/cron of uid 0");
    }

    // (d) No process has the PID.
    #[test]
    fn a_dead_pid_is_stale() {
        let v = judged(row(5000, None), None, None);
        assert_stale(
            &v,
            "PID 5000 is no backend of this server (no process has it on this host)",
        );
    }

    // (e) The lock's backend is slon's local listen connection and its
    // client is a slon of this cluster on this host.
    #[test]
    fn a_slon_backend_whose_client_is_a_local_slon_of_this_cluster_holds_the_lock() {
        let worker = slon_worker(6001, "tusk");
        let v = judged(
            row(6000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
            Some(Peer::Local(worker.clone())),
            None,
        );
        assert_eq!(
            v,
            Verdict::HeldBy(Holder {
                backend_pid: 6000,
                client: HolderClient::Local(worker)
            })
        );
    }

    // (f) The lock's backend is a slon connection from another host.
    #[test]
    fn a_slon_backend_from_another_host_holds_the_lock() {
        let addr: IpAddr = "10.0.0.7".parse().unwrap();
        let v = judged(
            row(
                7000,
                Some(backend(
                    Some(LOCAL_LISTEN),
                    Client::Tcp { addr, port: 40312 },
                )),
            ),
            Some(Peer::Remote { addr, port: 40312 }),
            None,
        );
        assert_eq!(
            v,
            Verdict::HeldBy(Holder {
                backend_pid: 7000,
                client: HolderClient::Remote { addr, port: 40312 }
            })
        );
    }

    #[test]
    fn a_backend_of_another_database_is_stale() {
        let mut b = backend(Some(LOCAL_LISTEN), Client::UnixSocket);
        b.in_this_database = false;
        let v = judged(
            row(8000, Some(b)),
            Some(Peer::Local(slon_worker(8001, "tusk"))),
            None,
        );
        assert_stale(&v, "another database");
    }

    #[test]
    fn another_slon_thread_of_a_live_slon_is_not_the_lock() {
        // After a restart, the lock's old PID may go to a remote worker's
        // connection of the node's own new slon or of another node's slon.
        let v = judged(
            row(
                9000,
                Some(backend(
                    Some("slon.remoteWorkerThread_2"),
                    Client::UnixSocket,
                )),
            ),
            Some(Peer::Local(slon_worker(9001, "tusk"))),
            None,
        );
        assert_stale(&v, "\"slon.remoteWorkerThread_2\"");
    }

    #[test]
    fn the_local_listen_connection_of_another_clusters_slon_is_stale() {
        let v = judged(
            row(10000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
            Some(Peer::Local(slon_worker(10001, "billing"))),
            None,
        );
        assert_stale(&v, "slon PID 10001 of cluster \"billing\"");
    }

    #[test]
    fn a_slon_configured_by_file_is_taken_as_holding_the_lock() {
        let worker = process(
            11001,
            POSTGRES_UID,
            "/usr/bin/slon",
            &["/usr/bin/slon", "-f", "/etc/slony1/node1/slon.conf"],
        );
        let v = judged(
            row(11000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
            Some(Peer::Local(worker)),
            None,
        );
        assert!(matches!(v, Verdict::HeldBy(h) if h.backend_pid == 11000));
    }

    #[test]
    fn the_configured_slon_binary_counts_whatever_its_name() {
        let worker = process(
            12001,
            POSTGRES_UID,
            "/opt/slony/bin/slon-2.2",
            &["slon-2.2", "tusk", "dbname=app"],
        );
        let c = cluster();
        let v = judge(
            &Observed {
                row: row(12000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
                peer: Some(Peer::Local(worker)),
                pid_process: None,
            },
            &Expected {
                cluster: &c,
                slon_binary: Path::new("/opt/slony/bin/slon-2.2"),
            },
        );
        assert!(matches!(v, Verdict::HeldBy(_)), "{v:?}");
    }

    #[test]
    fn a_local_client_that_only_calls_itself_slon_is_unknown() {
        // psql "application_name=slon.local_listen": not slon, but nothing
        // says where the real lock holder is; refuse rather than guess.
        let psql = process(
            13001,
            POSTGRES_UID,
            "/usr/lib/postgresql/15/bin/psql",
            &["psql"],
        );
        let v = judged(
            row(13000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
            Some(Peer::Local(psql)),
            None,
        );
        assert_unknown(
            &v,
            "its client, PID 13001 (/usr/lib/postgresql/15/bin/psql of uid 104), is not slon",
        );
    }

    #[test]
    fn hidden_or_unreadable_facts_are_unknown() {
        let slon_backend = || Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket));
        assert_unknown(
            &judged(
                row(14000, Some(backend(None, Client::Hidden))),
                Some(Peer::Hidden),
                None,
            ),
            "hides backend 14000's application_name",
        );
        assert_unknown(
            &judged(row(14000, slon_backend()), Some(Peer::Hidden), None),
            "hides where backend 14000's client is",
        );
        assert_unknown(
            &judged(row(14000, slon_backend()), Some(Peer::LocalUnseen), None),
            "no process here holds its end",
        );
        assert_unknown(
            &judged(
                row(14000, slon_backend()),
                Some(Peer::Unreadable("cannot read /proc/net/tcp".into())),
                None,
            ),
            "cannot read /proc/net/tcp",
        );
    }

    #[test]
    fn a_backend_whose_client_was_not_looked_up_is_unknown() {
        let v = judged(
            row(15000, Some(backend(Some(LOCAL_LISTEN), Client::UnixSocket))),
            None,
            None,
        );
        assert_unknown(&v, "the client of backend 15000 was not looked up");
    }

    #[test]
    fn slon_command_lines_give_their_cluster() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            slon_cluster(&args(&[
                "slon",
                "-p",
                "/run/x.pid",
                "-s",
                "500",
                "tusk",
                "dbname=a"
            ])),
            Some("tusk".into())
        );
        assert_eq!(
            slon_cluster(&args(&["slon", "-s500", "-d2", "Tusk_A$1", "dbname=a"])),
            Some("Tusk_A$1".into())
        );
        assert_eq!(
            slon_cluster(&args(&["slon", "-v", "--", "-odd", "dbname=a"])),
            Some("-odd".into())
        );
        assert_eq!(slon_cluster(&args(&["slon", "-f", "/etc/slon.conf"])), None);
        assert_eq!(slon_cluster(&args(&["slon"])), None);
        let a = SlonArgs::parse(&args(&[
            "slon",
            "-s",
            "500",
            "-p/r/x.pid",
            "tusk",
            "host=/run dbname=a",
        ]));
        assert_eq!(a.operands, ["tusk", "host=/run dbname=a"]);
        assert_eq!(a.option('s'), Some("500"));
        assert_eq!(a.option('p'), Some("/r/x.pid"));
        assert_eq!(a.option('f'), None);
        let a = SlonArgs::parse(&args(&[
            "slon", "tusk", "-p", "/a", "dbname=a", "-p", "/b", "-v",
        ]));
        assert_eq!(a.operands, ["tusk", "dbname=a"]);
        assert_eq!(a.option('p'), Some("/b"));
        assert_eq!(a.option('v'), Some(""));
    }

    fn text_row(values: &[Option<&str>]) -> Vec<Option<String>> {
        values.iter().map(|v| v.map(str::to_string)).collect()
    }

    #[test]
    fn rows_of_the_query_are_read() {
        let rows = vec![
            text_row(&[
                Some("1"),
                Some("5432"),
                Some("0"),
                Some("12597"),
                Some("t"),
                Some("t"),
                Some("slon.local_listen"),
                Some("postgres"),
                Some("2026-12-01 21:20:57.772761+00"),
                None,
                Some("-1"),
            ]),
            text_row(&[
                Some("1"),
                Some("5432"),
                Some("3"),
                Some("4242"),
                Some("f"),
                Some("f"),
                None,
                None,
                None,
                None,
                None,
            ]),
            text_row(&[
                Some("1"),
                Some("5432"),
                Some("4"),
                Some("4343"),
                Some("t"),
                Some("t"),
                Some("slon.local_listen"),
                Some("slony"),
                Some("2026-12-01 21:21:00+00"),
                Some("10.0.0.7"),
                Some("40312"),
            ]),
        ];
        let lock = NodeLock::from_rows(&rows).unwrap();
        assert_eq!(lock.local_node, 1);
        assert_eq!(lock.server_port, 5432);
        assert_eq!(lock.rows.len(), 3);
        let held = lock.slon_lock().unwrap();
        assert_eq!(held.backend_pid, 12597);
        let b = held.backend.as_ref().unwrap();
        assert_eq!(b.client, Client::UnixSocket);
        assert!(b.in_this_database);
        assert_eq!(lock.rows[1].backend, None);
        assert_eq!(
            lock.rows[2].backend.as_ref().unwrap().client,
            Client::Tcp {
                addr: "10.0.0.7".parse().unwrap(),
                port: 40312
            }
        );
    }

    #[test]
    fn a_node_without_lock_rows_has_none() {
        let rows = vec![text_row(&[
            Some("2"),
            Some("5433"),
            None,
            None,
            Some("f"),
            Some("f"),
            None,
            None,
            None,
            None,
            None,
        ])];
        let lock = NodeLock::from_rows(&rows).unwrap();
        assert_eq!(lock.local_node, 2);
        assert!(lock.rows.is_empty());
        assert!(lock.slon_lock().is_none());
        assert!(NodeLock::from_rows(&Vec::new()).is_err());
    }

    #[test]
    fn the_query_quotes_the_schema_as_a_name_and_as_a_value() {
        let q = query(&ClusterName::parse("Tusk_A$1").unwrap());
        assert!(
            q.contains("FROM (SELECT \"_Tusk_A$1\".getLocalNodeId(E'_Tusk_A$1') AS node)"),
            "{q}"
        );
        assert!(q.contains("JOIN \"_Tusk_A$1\".sl_nodelock l"), "{q}");
    }
}
