//! A real pgpool-II 4.3 (Debian's `/usr/sbin/pgpool`) in front of real
//! PostgreSQL instances, for the pgpool agent's tests.
//!
//! pgpool runs as the postgres user, as Debian runs it, in streaming
//! replication mode with load balancing and health checks, and with
//! `failover_command` empty (Pacemaker, not pgpool, fails over). It
//! listens on unix sockets only (`listen_addresses = ''` and
//! `pcp_listen_addresses = ''`: pgpool-II 4.3 then opens no TCP socket),
//! in the test's own directory, so port numbers only name socket files
//! and tests never collide.
//!
//! Clients authenticate with passwords: `pool_hba.conf` has no `peer`
//! method, so anything that asks pgpool (psql here, the agent's monitor
//! later) needs one, read from a password file (`.pgpass`, `.pcppass`),
//! never from a command line.
//!
//! Dropping a [`Pgpool`] ends only its own processes: the main process it
//! started and every pgpool process of its process group or holding one of
//! its sockets, checked by executable under /proc; then it removes the
//! System V memory and semaphores that this pgpool created and a SIGKILL
//! left behind (pgpool-II 4.3 removes them only on a clean shutdown), and
//! the directory.

use crate::{postgres_user, wait_until, Instance, BINDIR};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Pid};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PGPOOL: &str = "/usr/sbin/pgpool";
/// The PCP user of pcp.conf, and its password (in `.pcppass`).
pub const PCP_USER: &str = "tusk_pcp";
pub const PCP_PASSWORD: &str = "pcp-secret";
/// The database user clients connect through pgpool as, and its password
/// (in pool_passwd and `.pgpass`). pgpool reaches the backends over their
/// unix sockets as the postgres OS user, where peer authentication lets it
/// in without a password.
pub const DB_USER: &str = "postgres";
pub const DB_PASSWORD: &str = "pool-secret";
/// pgpool's port and PCP port: with no TCP listener they only name the
/// socket files `.s.PGSQL.<port>` in [`Pgpool::socket_dir`].
pub const PORT: u16 = 9999;
pub const PCP_PORT: u16 = 9898;

/// For `Instance::new` when PostgreSQL is run with pg_ctl rather than the
/// postgresql agent (whose binary only its own crate's tests can name).
pub const NO_AGENT: &str = "/nonexistent/tusk-postgresql-agent";

/// A backend as pgpool.conf names it: the server and the
/// `application_name` its walreceiver uses (pgpool matches it against the
/// primary's `pg_stat_replication` to show the replication state).
pub struct Backend<'a> {
    pub instance: &'a Instance,
    pub application_name: &'a str,
}

/// One line of `SHOW pool_nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolNode {
    pub node_id: u32,
    pub hostname: String,
    pub port: u16,
    /// pgpool's view: "up", "waiting", "down".
    pub status: String,
    /// What pgpool's checks saw of the server: "up", "down", "unknown".
    pub pg_status: String,
    pub lb_weight: String,
    /// pgpool's view: "primary" or "standby".
    pub role: String,
    /// What the server says: "primary", "standby", "unknown".
    pub pg_role: String,
    pub replication_state: String,
    pub replication_sync_state: String,
}

/// A process of this pgpool, as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolProcess {
    pub pid: i32,
    pub ppid: i32,
    /// pgpool rewrites its children's command lines
    /// ("pgpool: wait for connection request").
    pub cmdline: String,
}

pub struct Pgpool {
    root: tempfile::TempDir,
    /// Owned by postgres: configuration, sockets, pid file, log,
    /// pgpool_status.
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub pcp_conf: PathBuf,
    pub hba_conf: PathBuf,
    pub pool_passwd: PathBuf,
    /// Where pgpool's and PCP's unix sockets are (`socket_dir`,
    /// `pcp_socket_dir`).
    pub socket_dir: PathBuf,
    pub pid_file: PathBuf,
    /// pgpool's stderr (its log), appended across starts.
    pub log_file: PathBuf,
    /// `<logdir>/pgpool_status`, pgpool's memory of which backends were
    /// down, read at start unless `-D` is given.
    pub status_file: PathBuf,
    /// Root's password files (mode 0600): `.pcppass` for PCP, `.pgpass`
    /// for psql through pgpool.
    pub pcppass: PathBuf,
    pub pgpass: PathBuf,
    pub port: u16,
    pub pcp_port: u16,
    main: Option<Child>,
    /// The process group pgpool was started in (its main PID).
    pgid: Option<i32>,
    shared_memory: BTreeSet<i32>,
    semaphores: BTreeSet<i32>,
}

impl Pgpool {
    /// Writes the configuration for `backends` (node 0 first); nothing
    /// runs until [`Pgpool::start`].
    pub fn new(backends: &[Backend<'_>]) -> Pgpool {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "these tests start pgpool as the postgres user and need root: run ./run-tests"
        );
        let root = tempfile::Builder::new()
            .prefix("tusk-pgpool-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = root.path().join("pgpool");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let pg = postgres_user();
        chown(&dir, Some(pg.uid), Some(pg.gid)).unwrap();
        let pool = Pgpool {
            conf: dir.join("pgpool.conf"),
            pcp_conf: dir.join("pcp.conf"),
            hba_conf: dir.join("pool_hba.conf"),
            pool_passwd: dir.join("pool_passwd"),
            socket_dir: dir.clone(),
            pid_file: dir.join("pgpool.pid"),
            log_file: dir.join("pgpool.log"),
            status_file: dir.join("pgpool_status"),
            pcppass: root.path().join(".pcppass"),
            pgpass: root.path().join(".pgpass"),
            port: PORT,
            pcp_port: PCP_PORT,
            dir,
            root,
            main: None,
            pgid: None,
            shared_memory: BTreeSet::new(),
            semaphores: BTreeSet::new(),
        };
        pool.write_configuration(backends);
        pool
    }

    /// The usual pair: `primary` as node 0 (its WAL receiver would be
    /// `node1`) and `standby`, streaming as `node2`, as node 1.
    pub fn for_pair(primary: &Instance, standby: &Instance) -> Pgpool {
        Pgpool::new(&[
            Backend {
                instance: primary,
                application_name: "node1",
            },
            Backend {
                instance: standby,
                application_name: "node2",
            },
        ])
    }

    /// pgpool in slony mode in front of every node of `cluster`: node N-1
    /// is Slony node N (so node 0 is the first origin). Clients use the
    /// cluster's database ([`crate::slony::DATABASE`]).
    pub fn for_slony(cluster: &crate::slony::SlonyCluster) -> Pgpool {
        let names: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|n| format!("slony{}", n.id))
            .collect();
        let backends: Vec<Backend<'_>> = cluster
            .nodes()
            .iter()
            .zip(&names)
            .map(|(n, name)| Backend {
                instance: &n.instance,
                application_name: name,
            })
            .collect();
        let pool = Pgpool::new(&backends);
        pool.set("backend_clustering_mode", "'slony'");
        pool
    }

    /// The pgpool agent `binary` with this configuration's parameters, as
    /// the resource `resource`.
    pub fn agent(&self, binary: impl AsRef<std::ffi::OsStr>, resource: &str) -> crate::Agent {
        crate::Agent::new(binary)
            .env("OCF_RESOURCE_INSTANCE", resource)
            .param("config", &self.conf)
            .param("pcp_config", &self.pcp_conf)
            .param("hba_config", &self.hba_conf)
            .param("logfile", &self.log_file)
            .param("pcp_user", PCP_USER)
            .param("pcp_passfile", &self.pcppass)
    }

    fn write_configuration(&self, backends: &[Backend<'_>]) {
        let dir = quoted(&self.dir);
        let mut conf = format!(
            "# Written by tusk's testkit for pgpool-II 4.3.\n\
             backend_clustering_mode = 'streaming_replication'\n\
             listen_addresses = ''\n\
             port = {port}\n\
             socket_dir = {dir}\n\
             pcp_listen_addresses = ''\n\
             pcp_port = {pcp_port}\n\
             pcp_socket_dir = {dir}\n\
             pid_file_name = {pid}\n\
             logdir = {dir}\n\
             log_destination = 'stderr'\n\
             num_init_children = 4\n\
             max_pool = 2\n\
             # The query cache is off, but its shared memory is still\n\
             # allocated: 134 MB by default, 8.7 MB with these.\n\
             memqcache_total_size = 8MB\n\
             memqcache_max_num_cache = 1000\n\
             enable_pool_hba = on\n\
             pool_passwd = {pool_passwd}\n\
             allow_clear_text_frontend_auth = off\n\
             load_balance_mode = on\n\
             sr_check_period = 1\n\
             sr_check_user = '{user}'\n\
             sr_check_database = 'postgres'\n\
             health_check_period = 1\n\
             health_check_timeout = 5\n\
             health_check_user = '{user}'\n\
             health_check_database = 'postgres'\n\
             health_check_max_retries = 0\n\
             failover_command = ''\n\
             follow_primary_command = ''\n\
             use_watchdog = off\n",
            port = self.port,
            pcp_port = self.pcp_port,
            pid = quoted(&self.pid_file),
            pool_passwd = quoted(&self.pool_passwd),
            user = DB_USER,
        );
        for (i, b) in backends.iter().enumerate() {
            assert!(
                b.application_name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "application_name {:?}",
                b.application_name
            );
            conf.push_str(&format!(
                "backend_hostname{i} = {host}\n\
                 backend_port{i} = 5432\n\
                 backend_weight{i} = 1\n\
                 backend_data_directory{i} = {data}\n\
                 backend_flag{i} = 'ALLOW_TO_FAILOVER'\n\
                 backend_application_name{i} = '{name}'\n",
                host = quoted(&b.instance.socketdir),
                data = quoted(&b.instance.pgdata),
                name = b.application_name,
            ));
        }
        self.write_owned(&self.conf, &conf, 0o600);
        self.write_owned(
            &self.pcp_conf,
            &format!("{PCP_USER}:{}\n", md5_hex(PCP_PASSWORD.as_bytes())),
            0o600,
        );
        self.write_owned(
            &self.pool_passwd,
            &format!(
                "{DB_USER}:md5{}\n",
                md5_hex(format!("{DB_PASSWORD}{DB_USER}").as_bytes())
            ),
            0o600,
        );
        // No `peer` in pool_hba: every client brings a password.
        self.write_owned(&self.hba_conf, "local all all md5\n", 0o600);
        write_private(
            &self.pcppass,
            &format!(
                "{}:{}:{PCP_USER}:{PCP_PASSWORD}\n",
                self.socket_dir.display(),
                self.pcp_port
            ),
        );
        write_private(&self.pgpass, &format!("*:*:*:{DB_USER}:{DB_PASSWORD}\n"));
    }

    fn write_owned(&self, path: &Path, content: &str, mode: u32) {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        let pg = postgres_user();
        chown(path, Some(pg.uid), Some(pg.gid)).unwrap();
    }

    /// Appends `name = value` to pgpool.conf (the last setting wins), for
    /// a test that needs another value; takes effect at the next start.
    pub fn set(&self, name: &str, value: &str) {
        crate::append(&self.conf, &format!("{name} = {value}\n"));
    }

    /// Clients may also connect over TCP, on 127.0.0.1 at `port` (a free
    /// port the test picked), with a password as over the socket; pgpool's
    /// `port` then names the unix socket file too. Takes effect at the next
    /// start.
    pub fn listen_on_tcp(&mut self, port: u16) {
        self.set("listen_addresses", "'127.0.0.1'");
        self.set("port", &port.to_string());
        crate::append(&self.hba_conf, "host all all 127.0.0.1/32 md5\n");
        self.port = port;
    }

    /// The command line the fixture starts pgpool with (not as a daemon:
    /// `-n`), as Debian's unit does apart from the paths.
    pub fn command(&self) -> Command {
        let pg = postgres_user();
        let mut cmd = Command::new(PGPOOL);
        cmd.arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-F")
            .arg(&self.pcp_conf)
            .arg("-a")
            .arg(&self.hba_conf)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.dir)
            .uid(pg.uid.as_raw())
            .gid(pg.gid.as_raw());
        cmd
    }

    /// Starts pgpool and waits until it has started its children and
    /// listens; returns how long that took. Panics with pgpool's log when
    /// it does not come up.
    pub fn start(&mut self) -> Duration {
        self.start_with(&[])
    }

    /// `start` with extra pgpool options (`-D` discards pgpool_status).
    pub fn start_with(&mut self, extra: &[&str]) -> Duration {
        match self.try_start_with(extra) {
            Ok(took) => took,
            Err(e) => panic!("{e}\n--- pgpool log ---\n{}", self.log()),
        }
    }

    /// Starts pgpool; `Err` says why it did not come up (exit status, or
    /// no answer after 30 s).
    pub fn try_start_with(&mut self, extra: &[&str]) -> Result<Duration, String> {
        assert!(self.running_pid().is_none(), "pgpool already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .unwrap();
        let log_start = log.metadata().unwrap().len();
        // pgpool creates its semaphores with IPC_PRIVATE, which names no
        // owner: the sets that appear while this pgpool starts, with the
        // lock held so that no other fixture's start overlaps, are its own.
        let lock = ipc_lock();
        let before = semaphore_ids();
        let started = Instant::now();
        let mut cmd = self.command();
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| format!("spawn {PGPOOL}: {e}"))?;
        let pid = child.id() as i32;
        self.pgid = Some(pid);
        self.main = Some(child);
        let outcome = self.wait_started(pid, log_start, started);
        self.semaphores
            .extend(semaphore_ids().difference(&before).copied());
        drop(lock);
        self.shared_memory.extend(self.attached_shared_memory());
        outcome
    }

    fn wait_started(
        &mut self,
        pid: i32,
        log_start: u64,
        started: Instant,
    ) -> Result<Duration, String> {
        let limit = Duration::from_secs(30);
        loop {
            if let Some(status) = self.main.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(format!(
                    "pgpool exited with {status} after {:.2}s",
                    started.elapsed().as_secs_f64()
                ));
            }
            let logged = std::fs::read(&self.log_file)
                .map(|l| {
                    String::from_utf8_lossy(l.get(log_start as usize..).unwrap_or(&[]))
                        .contains("pgpool-II successfully started")
                })
                .unwrap_or(false);
            if logged
                && self.main_pid() == Some(pid)
                && self.socket(self.port).exists()
                && self.socket(self.pcp_port).exists()
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > limit {
                return Err(format!("pgpool did not come up within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The fixture's temporary directory (removed on drop).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `<socket_dir>/.s.PGSQL.<port>`.
    pub fn socket(&self, port: u16) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{port}"))
    }

    /// The PID in the pid file: pgpool writes it followed by a NUL byte,
    /// no newline.
    pub fn main_pid(&self) -> Option<i32> {
        let raw = std::fs::read(&self.pid_file).ok()?;
        let digits: Vec<u8> = raw.into_iter().take_while(u8::is_ascii_digit).collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    }

    /// The process this fixture started, whatever the pid file says,
    /// while it has not exited (it is this fixture's child, so its PID
    /// cannot be reused before it is reaped).
    pub fn running_pid(&mut self) -> Option<i32> {
        let child = self.main.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id() as i32)
    }

    /// Every live process of this pgpool: executable `/usr/sbin/pgpool`,
    /// and in the process group it was started in or holding a unix socket
    /// under this fixture's directory (children orphaned by a SIGKILL of
    /// the main process keep both).
    pub fn processes(&self) -> Vec<PoolProcess> {
        let ours = socket_inodes_under(&self.dir);
        let mut found = Vec::new();
        for pid in pids() {
            let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else {
                continue;
            };
            if exe != Path::new(PGPOOL) {
                continue;
            }
            let Some((ppid, pgrp)) = stat_parents(pid) else {
                continue;
            };
            if Some(pgrp) == self.pgid || holds_socket(pid, &ours) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| {
                        String::from_utf8_lossy(&c)
                            .trim_end_matches('\0')
                            .replace('\0', " ")
                    })
                    .unwrap_or_default();
                found.push(PoolProcess { pid, ppid, cmdline });
            }
        }
        found
    }

    /// SIGSTOP to every process of this pgpool: it still accepts
    /// connections (the kernel queues them) but answers nothing.
    pub fn freeze(&self) {
        for p in self.processes() {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGSTOP);
        }
    }

    pub fn thaw(&self) {
        for p in self.processes() {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGCONT);
        }
    }

    /// SIGKILL to the main process only, as the OOM killer does; its
    /// children are left running. The main process is reaped.
    pub fn kill_main(&mut self) {
        if let Some(mut child) = self.main.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.main = Some(child);
        }
    }

    /// A fast shutdown (SIGINT) of the main process, waited for (10 s):
    /// pgpool then removes its sockets, pid file and shared memory.
    pub fn stop(&mut self) {
        if let Some(pid) = self.running_pid() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
        }
        let gone = wait_until(Duration::from_secs(10), || self.processes().is_empty());
        assert!(gone, "pgpool did not stop: {:?}", self.processes());
        if let Some(child) = self.main.as_mut() {
            let _ = child.wait();
        }
    }

    /// pgpool's log since the fixture was created.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_file)
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default()
    }

    /// psql through pgpool as [`DB_USER`] with the password from
    /// `.pgpass`: `-X -At`, one statement.
    pub fn psql_command(&self, sql: &str) -> Command {
        self.psql_command_in("postgres", sql)
    }

    /// [`Pgpool::psql_command`] in `database`.
    pub fn psql_command_in(&self, database: &str, sql: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-At", "-d", database, "-U", DB_USER, "-h"])
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", sql])
            .env("PGPASSFILE", &self.pgpass)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `sql` through pgpool; `Err` holds psql's stderr.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.try_psql_in("postgres", sql)
    }

    /// [`Pgpool::try_psql`] in `database`.
    pub fn try_psql_in(&self, database: &str, sql: &str) -> Result<String, String> {
        let out = self.psql_command_in(database, sql).output().expect("psql");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }

    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql)
            .unwrap_or_else(|e| panic!("psql through pgpool {sql}: {e}"))
    }

    /// `SHOW pool_nodes` through pgpool.
    pub fn pool_nodes(&self) -> Vec<PoolNode> {
        self.try_pool_nodes()
            .unwrap_or_else(|e| panic!("SHOW pool_nodes: {e}"))
    }

    pub fn try_pool_nodes(&self) -> Result<Vec<PoolNode>, String> {
        let out = Command::new("psql")
            .args([
                "-X",
                "-A",
                "-F",
                "|",
                "-P",
                "footer=off",
                "-d",
                "postgres",
                "-U",
                DB_USER,
            ])
            .arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "SHOW pool_nodes"])
            .env("PGPASSFILE", &self.pgpass)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .expect("psql");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        parse_pool_nodes(&String::from_utf8_lossy(&out.stdout))
    }

    /// A pgpool setting as pgpool uses it (`PGPOOL SHOW name`).
    pub fn setting(&self, name: &str) -> String {
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        self.psql(&format!("PGPOOL SHOW {name}"))
    }

    /// A `pcp_*` program aimed at this pgpool (`-h`, `-p`, `-U`, `-w`,
    /// password from `.pcppass`); add its own options.
    pub fn pcp_command(&self, program: &str) -> Command {
        let mut cmd = Command::new(Path::new("/usr/sbin").join(program));
        cmd.arg("-h")
            .arg(&self.socket_dir)
            .arg("-p")
            .arg(self.pcp_port.to_string())
            .args(["-U", PCP_USER, "-w"])
            .env("PCPPASSFILE", &self.pcppass)
            .stdin(Stdio::null());
        cmd
    }

    /// The System V shared memory segments and semaphore sets this pgpool
    /// created, as far as the fixture has seen them: removed on drop.
    pub fn system_v_ids(&self) -> (Vec<i32>, Vec<i32>) {
        let mut shm = self.shared_memory.clone();
        shm.extend(self.attached_shared_memory());
        (
            shm.into_iter().collect(),
            self.semaphores.iter().copied().collect(),
        )
    }

    /// The shared memory segments pgpool's processes have attached (their
    /// /proc/PID/maps name them `/SYSV<key>`, the inode is the id).
    fn attached_shared_memory(&self) -> BTreeSet<i32> {
        let mut ids = BTreeSet::new();
        for p in self.processes() {
            let maps = std::fs::read_to_string(format!("/proc/{}/maps", p.pid)).unwrap_or_default();
            for line in maps.lines() {
                let f: Vec<&str> = line.split_whitespace().collect();
                if f.get(5).is_some_and(|path| path.starts_with("/SYSV")) {
                    if let Some(Ok(id)) = f.get(4).map(|i| i.parse()) {
                        ids.insert(id);
                    }
                }
            }
        }
        ids
    }
}

impl Drop for Pgpool {
    fn drop(&mut self) {
        let attached = self.attached_shared_memory();
        self.shared_memory.extend(attached);
        // A main process this fixture started, or one an agent started with
        // this configuration: a fast shutdown lets pgpool remove its own
        // System V memory and semaphores.
        let mains: Vec<i32> = match self.running_pid() {
            Some(pid) => vec![pid],
            None => self
                .processes()
                .iter()
                .filter(|p| p.cmdline.split(' ').any(|a| Path::new(a) == self.conf))
                .map(|p| p.pid)
                .collect(),
        };
        if !mains.is_empty() {
            self.thaw();
            for pid in mains {
                let _ = kill(Pid::from_raw(pid), Signal::SIGINT);
            }
            wait_until(Duration::from_secs(5), || self.processes().is_empty());
        }
        for p in self.processes() {
            let p = Pid::from_raw(p.pid);
            let _ = kill(p, Signal::SIGCONT);
            let _ = kill(p, Signal::SIGKILL);
        }
        if let Some(mut child) = self.main.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let gone = wait_until(Duration::from_secs(10), || self.processes().is_empty());
        if gone {
            remove_ipc(&self.shared_memory, &self.semaphores);
        } else {
            eprintln!(
                "pgpool processes survived SIGKILL, IPC left: {:?}",
                self.processes()
            );
        }
    }
}

/// `SHOW pool_nodes` as `psql -A -F'|' -P footer=off` prints it: a header
/// line names the columns, so their order does not matter.
pub fn parse_pool_nodes(text: &str) -> Result<Vec<PoolNode>, String> {
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().ok_or("no header")?.split('|').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name} in {header:?}"))
    };
    let idx: HashMap<&str, usize> = [
        "node_id",
        "hostname",
        "port",
        "status",
        "pg_status",
        "lb_weight",
        "role",
        "pg_role",
        "replication_state",
        "replication_sync_state",
    ]
    .into_iter()
    .map(|n| column(n).map(|i| (n, i)))
    .collect::<Result<_, _>>()?;
    lines
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let get = |n: &str| f.get(idx[n]).copied().unwrap_or("").to_string();
            Ok(PoolNode {
                node_id: get("node_id")
                    .parse()
                    .map_err(|_| format!("node_id in {line}"))?,
                hostname: get("hostname"),
                port: get("port").parse().map_err(|_| format!("port in {line}"))?,
                status: get("status"),
                pg_status: get("pg_status"),
                lb_weight: get("lb_weight"),
                role: get("role"),
                pg_role: get("pg_role"),
                replication_state: get("replication_state"),
                replication_sync_state: get("replication_sync_state"),
            })
        })
        .collect()
}

/// A primary started with pg_ctl and a standby `standby_name` streaming
/// from it, for tests that need no postgresql agent.
pub fn primary_and_standby(standby_name: &str) -> (Instance, Instance) {
    let primary = Instance::new(NO_AGENT);
    pg_ctl_start(&primary);
    let standby = primary.standby(standby_name);
    pg_ctl_start(&standby);
    assert!(
        wait_until(Duration::from_secs(30), || primary
            .replication_state(standby_name)
            .as_deref()
            == Some("streaming")),
        "{standby_name} does not stream from the primary"
    );
    (primary, standby)
}

/// Starts `pg` with pg_ctl as postgres, listening on its own socket
/// directory; waits until it accepts connections.
pub fn pg_ctl_start(pg: &Instance) {
    let owner = postgres_user();
    for dir in [pg.socketdir.as_path(), pg.logfile.parent().unwrap()] {
        if !dir.exists() {
            std::fs::create_dir_all(dir).unwrap();
            chown(dir, Some(owner.uid), Some(owner.gid)).unwrap();
        }
    }
    let conf = pg.pgdata.join("postgresql.conf");
    let setting = format!("unix_socket_directories = {}\n", quoted(&pg.socketdir));
    if !std::fs::read_to_string(&conf).unwrap().contains(&setting) {
        crate::append(&conf, &setting);
    }
    pg_ctl(
        pg,
        &[
            "-l",
            &pg.logfile.to_string_lossy(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    );
}

/// A fast shutdown of `pg`, waited for.
pub fn pg_ctl_stop(pg: &Instance) {
    pg_ctl(pg, &["-m", "fast", "-w", "-t", "60", "stop"]);
}

/// Promotes the standby `pg` and waits until it is out of recovery.
pub fn pg_ctl_promote(pg: &Instance) {
    pg_ctl(pg, &["-w", "-t", "60", "promote"]);
}

fn pg_ctl(pg: &Instance, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(BINDIR).join("pg_ctl"))
        .arg("-D")
        .arg(&pg.pgdata)
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

fn quoted(path: &Path) -> String {
    let s = path.to_str().expect("a UTF-8 path");
    assert!(!s.contains(['\'', '\\', '\n']), "unquotable path {s:?}");
    format!("'{s}'")
}

fn write_private(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What pcp.conf and pool_passwd hold: the hex md5 (as `pg_md5` prints).
fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// (ppid, process group) from /proc/PID/stat; `None` for a zombie or a
/// process that is gone.
fn stat_parents(pid: i32) -> Option<(i32, i32)> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = line[line.rfind(')')? + 1..].split_whitespace().collect();
    if f.first() == Some(&"Z") {
        return None;
    }
    Some((f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?))
}

/// Inodes of the unix sockets bound under `dir` (/proc/net/unix keeps a
/// socket's path even after its file is unlinked or replaced).
fn socket_inodes_under(dir: &Path) -> BTreeSet<u64> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            let path = Path::new(f.get(7)?);
            path.starts_with(dir).then(|| f.get(6)?.parse().ok())?
        })
        .collect()
}

fn holds_socket(pid: i32, inodes: &BTreeSet<u64>) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .any(|inode: u64| inodes.contains(&inode))
}

/// An exclusive lock shared by every fixture on this machine while pgpool
/// starts (released when the file closes). It is taken on pgpool's binary
/// itself, which every such fixture has and none writes, so no lock file
/// is left behind.
fn ipc_lock() -> std::fs::File {
    let file = std::fs::File::open(PGPOOL).unwrap();
    // SAFETY: flock on an open descriptor we own.
    let rc = unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    file
}

/// System V semaphore sets created by the postgres user (PostgreSQL 15
/// itself uses none on Linux).
fn semaphore_ids() -> BTreeSet<i32> {
    let uid = postgres_user().uid.as_raw().to_string();
    std::fs::read_to_string("/proc/sysvipc/sem")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            (f.get(6) == Some(&uid.as_str())).then(|| f.get(1)?.parse().ok())?
        })
        .collect()
}

/// Removes the given segments (once nothing is attached) and semaphore
/// sets, if they still exist.
fn remove_ipc(shared_memory: &BTreeSet<i32>, semaphores: &BTreeSet<i32>) {
    let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
    for row in table.lines().skip(1) {
        let f: Vec<&str> = row.split_whitespace().collect();
        let (Some(Ok(id)), Some(&"0")) = (f.get(1).map(|i| i.parse::<i32>()), f.get(6)) else {
            continue;
        };
        if shared_memory.contains(&id) {
            // SAFETY: IPC_RMID on a segment id takes no buffer.
            unsafe { nix::libc::shmctl(id, nix::libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
    let existing = semaphore_ids();
    for id in semaphores.intersection(&existing) {
        // SAFETY: IPC_RMID on a semaphore set takes no argument.
        unsafe { nix::libc::semctl(*id, 0, nix::libc::IPC_RMID) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_nodes_are_read_by_column_name() {
        let text = "node_id|hostname|port|status|pg_status|lb_weight|role|pg_role|select_cnt|load_balance_node|replication_delay|replication_state|replication_sync_state|last_status_change\n\
                    0|/tmp/p/run|5432|up|up|0.500000|primary|primary|0|false|0|||2026-12-01 21:21:51\n\
                    1|/tmp/s/run|5432|down|up|0.500000|standby|standby|0|true|0|streaming|async|2026-12-01 21:22:04\n";
        let nodes = parse_pool_nodes(text).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].role, "primary");
        assert_eq!(nodes[0].replication_state, "");
        assert_eq!(nodes[1].node_id, 1);
        assert_eq!(nodes[1].hostname, "/tmp/s/run");
        assert_eq!(nodes[1].status, "down");
        assert_eq!(nodes[1].pg_status, "up");
        assert_eq!(nodes[1].replication_state, "streaming");
        assert!(parse_pool_nodes("node_id|hostname\n").is_err());
    }
}
