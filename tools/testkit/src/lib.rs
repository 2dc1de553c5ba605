//! A real PostgreSQL 15 instance per test, a real Slony-I cluster
//! ([`slony`]), and a tiny builder to run an
//! agent against it, for the agents' tests and the benchmarks. Everything
//! an instance creates is removed when it is dropped, pass or fail, and only
//! processes of its own data directory are killed.

pub mod pgpool;
pub mod slony;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Pid, User};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const BINDIR: &str = "/usr/lib/postgresql/15/bin";

pub struct Instance {
    root: tempfile::TempDir,
    agent: PathBuf,
    pub pgdata: PathBuf,
    pub socketdir: PathBuf,
    pub logfile: PathBuf,
}

pub fn postgres_user() -> User {
    User::from_name("postgres")
        .unwrap()
        .expect("the postgres OS user (install postgresql-15)")
}

fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "these tests start PostgreSQL as the postgres user and need root: run ./run-tests"
    );
}

impl Instance {
    /// initdb into a fresh directory; the server listens on its own unix
    /// socket only (no TCP), so tests never collide on a port.
    /// `agent` is the postgresql agent's binary
    /// (`env!("CARGO_BIN_EXE_postgresql")` in its tests).
    pub fn new(agent: impl Into<PathBuf>) -> Instance {
        let instance = Instance::empty(agent);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(BINDIR).join("initdb"))
            .args(["--no-sync", "-A", "peer", "-U", "postgres", "-D"])
            .arg(&instance.pgdata)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        append(
            &instance.pgdata.join("postgresql.conf"),
            "listen_addresses = ''\nfsync = off\n",
        );
        instance
    }

    /// A fresh directory with an empty data directory owned by postgres
    /// (a node to be built).
    pub fn empty(agent: impl Into<PathBuf>) -> Instance {
        require_root();
        let root = tempfile::Builder::new()
            .prefix("tusk-pg-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let pgdata = root.path().join("data");
        let pg = postgres_user();
        std::fs::create_dir(&pgdata).unwrap();
        std::fs::set_permissions(&pgdata, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&pgdata, Some(pg.uid), Some(pg.gid)).unwrap();
        Instance {
            socketdir: root.path().join("run"),
            logfile: root.path().join("log/postgresql.log"),
            pgdata,
            root,
            agent: agent.into(),
        }
    }

    /// A streaming standby of this running instance, not yet started: a
    /// `pg_basebackup` over this instance's unix socket, `standby.signal`,
    /// and `primary_conninfo` naming the standby `application_name`, with
    /// `recovery_target_timeline = 'latest'`. Both settings go at the end of
    /// its `postgresql.conf` (not `postgresql.auto.conf`, which would win
    /// over any include an agent adds later). It listens on its own socket
    /// directory, same port number.
    pub fn standby(&self, application_name: &str) -> Instance {
        let standby = Instance::empty(&self.agent);
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(BINDIR).join("pg_basebackup"))
            .args([
                "-U", "postgres", "-p", "5432", "-X", "stream", "-c", "fast", "-h",
            ])
            .arg(&self.socketdir)
            .arg("-D")
            .arg(&standby.pgdata)
            .output()
            .expect("pg_basebackup");
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        standby.write_owned(&standby.pgdata.join("standby.signal"), "");
        append(
            &standby.pgdata.join("postgresql.conf"),
            &self.replication_settings(application_name),
        );
        standby
    }

    /// The `primary_conninfo` and `recovery_target_timeline` lines by which
    /// a standby named `application_name` follows this instance.
    pub fn replication_settings(&self, application_name: &str) -> String {
        format!(
            "primary_conninfo = 'host={} port=5432 user=postgres application_name={application_name}'\n\
             recovery_target_timeline = 'latest'\n",
            self.socketdir.display()
        )
    }

    /// `state` of the walsender serving `application_name` in
    /// `pg_stat_replication`, if one is connected ("streaming" once caught up).
    pub fn replication_state(&self, application_name: &str) -> Option<String> {
        let state = self.psql(&format!(
            "select state from pg_stat_replication where application_name = '{application_name}'"
        ));
        (!state.is_empty()).then_some(state)
    }

    /// Writes a file owned by postgres (mode 0600), as PostgreSQL's own are.
    pub fn write_owned(&self, path: &Path, content: &str) {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let pg = postgres_user();
        chown(path, Some(pg.uid), Some(pg.gid)).unwrap();
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The agent, with this instance's parameters set.
    pub fn agent(&self) -> Agent {
        Agent::new(&self.agent)
            .param("pgdata", &self.pgdata)
            .param("socketdir", &self.socketdir)
            .param("logfile", &self.logfile)
            .param("pgport", "5432")
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pgdata.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs one statement with psql as the postgres user.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.psql_command(sql).output().expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn psql_command(&self, sql: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args([
            "-u", "postgres", "--", "psql", "-X", "-At", "-p", "5432", "-d", "postgres", "-h",
        ])
        .arg(&self.socketdir)
        .args(["-c", sql]);
        cmd
    }

    /// A power loss as the server sees it: its postmaster killed at once
    /// (SIGKILL), its children after it, and pg_control still saying the
    /// server runs.
    pub fn crash(&self) {
        let pid = self.postmaster_pid().expect("running");
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        assert!(wait_until(Duration::from_secs(10), || self
            .processes()
            .is_empty()));
    }

    /// Every process working in this data directory (postmaster and
    /// backends), as the agent itself finds them.
    pub fn processes(&self) -> Vec<i32> {
        use ocf::service::Service;
        tusk_postgresql::postmaster::Postmaster::of(&self.pgdata)
            .members()
            .unwrap()
            .iter()
            .map(|p| p.pid)
            .collect()
    }

    pub fn write_pid_file(&self, content: &str) {
        let path = self.pgdata.join("postmaster.pid");
        std::fs::write(&path, content).unwrap();
        let pg = postgres_user();
        chown(&path, Some(pg.uid), Some(pg.gid)).unwrap();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        for pid in self.processes() {
            let p = Pid::from_raw(pid);
            let _ = kill(p, Signal::SIGCONT);
            let _ = kill(p, Signal::SIGKILL);
        }
        wait_until(Duration::from_secs(10), || self.processes().is_empty());
        self.remove_shared_memory();
    }
}

impl Instance {
    /// A postmaster killed with SIGKILL leaves its System V segment behind.
    /// PostgreSQL keys it by the data directory's inode (and the next few
    /// numbers on a collision), so only this instance's segments are removed,
    /// and only once nothing is attached.
    fn remove_shared_memory(&self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(inode) = std::fs::metadata(&self.pgdata).map(|m| m.ino()) else {
            return;
        };
        let table = std::fs::read_to_string("/proc/sysvipc/shm").unwrap_or_default();
        for row in table.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            let (Some(Ok(key)), Some(Ok(id)), Some(&"0")) = (
                f.first().map(|k| k.parse::<i64>()),
                f.get(1).map(|i| i.parse::<i32>()),
                f.get(6),
            ) else {
                continue;
            };
            if (inode as i64..inode as i64 + 16).contains(&key) {
                // SAFETY: IPC_RMID on a segment id takes no buffer.
                unsafe { nix::libc::shmctl(id, nix::libc::IPC_RMID, std::ptr::null_mut()) };
            }
        }
    }
}

pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// The agent runner lives in the core's test support.
pub use ocf::testing::{Agent, Outcome};

/// A child process killed and reaped when the test ends.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    pub fn is_alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}
