//! This resource's slon as a [`Service`] of the core: the watchdog (the
//! process slon's pid file names, the one started) and its worker (its
//! child, which makes every connection), found through /proc by what they
//! are: the slon binary with this cluster and this conninfo as operands.
//!
//! slon 2.2.11 never checks its pid file: a second slon given the same file
//! overwrites it and removes it on its way out, leaving the running slon
//! without one (docs/slony-facts.md). So a watchdog is found without the
//! pid file too: a member whose parent is no member.

use crate::config::Instance;
use crate::nodelock::SlonArgs;
use ocf::process::{self, Expected, ProcInfo};
use ocf::service::{self, Service, State};
use ocf::Result;
use std::io;
use std::path::{Path, PathBuf};

/// The processes of one (cluster, conninfo) slon on this host.
pub struct SlonDaemon {
    cluster: String,
    conninfo: String,
    /// Canonical: /proc/PID/exe shows the resolved path.
    binary: PathBuf,
    pid_file: PathBuf,
}

/// What of this resource's slon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slon {
    /// The watchdog runs; `worker` is its child, `None` while the watchdog
    /// waits to fork one (10 s after the worker died, 20 s after a restart
    /// notification). `pid_file` says why the pid file was not believed,
    /// when the watchdog was found without it.
    Running {
        watchdog: Box<ProcInfo>,
        worker: Option<ProcInfo>,
        pid_file: Option<String>,
    },
    Stopped {
        stale: Option<String>,
    },
    /// slon processes of this instance without a watchdog: a worker whose
    /// watchdog was SIGKILLed goes on serving the node (it ignores SIGTERM).
    Orphaned {
        members: Vec<ProcInfo>,
        stale: Option<String>,
    },
}

impl SlonDaemon {
    pub fn new(instance: &Instance) -> SlonDaemon {
        SlonDaemon {
            cluster: instance.cluster.as_str().to_string(),
            conninfo: instance.conninfo.clone(),
            binary: std::fs::canonicalize(&instance.slon_binary)
                .unwrap_or_else(|_| instance.slon_binary.clone()),
            pid_file: instance.pid_file.clone(),
        }
    }

    /// A slon of this instance: the binary, this pid file, and exactly
    /// this cluster and this conninfo as its operands. A slon of another
    /// cluster on the same database or of another node has other operands;
    /// one started by hand or by an init script for this node has another
    /// pid file (or none), and is not this resource's: the probe reports
    /// it and start refuses to run beside it.
    pub fn is_instance(&self, p: &ProcInfo) -> bool {
        if p.has_exited() || p.exe.as_deref() != Some(self.binary.as_path()) {
            return false;
        }
        let args = SlonArgs::parse(&p.cmdline);
        args.operands == [self.cluster.as_str(), self.conninfo.as_str()]
            && args.option('p').map(Path::new) == Some(self.pid_file.as_path())
    }

    /// What runs, from the pid file when it names the watchdog, else from
    /// /proc.
    pub fn observe(&self) -> Result<Slon> {
        let (members, stale) = match service::observe(self)? {
            State::Running(main) if self.is_instance(&main) => {
                let worker = self.worker_of(&main)?;
                return Ok(Slon::Running {
                    watchdog: Box::new(main),
                    worker,
                    pid_file: None,
                });
            }
            State::Running(main) => (
                self.members_io()?,
                Some(format!(
                    "{} names PID {}, a slon of another cluster or node",
                    self.pid_file.display(),
                    main.pid
                )),
            ),
            State::Stopped { stale } => return Ok(Slon::Stopped { stale }),
            State::Orphaned { members, stale } => (members, stale),
        };
        if members.is_empty() {
            return Ok(Slon::Stopped { stale });
        }
        // A watchdog is a member whose parent is no member; prefer one that
        // has a worker.
        let pids: Vec<i32> = members.iter().map(|p| p.pid).collect();
        let roots = members.iter().filter(|p| !pids.contains(&p.ppid));
        let parents: Vec<&ProcInfo> = roots
            .filter(|r| members.iter().any(|m| m.ppid == r.pid))
            .collect();
        match parents.first() {
            Some(watchdog) => Ok(Slon::Running {
                watchdog: Box::new((*watchdog).clone()),
                worker: members.iter().find(|m| m.ppid == watchdog.pid).cloned(),
                pid_file: Some(
                    stale.unwrap_or_else(|| format!("{} is missing", self.pid_file.display())),
                ),
            }),
            None => Ok(Slon::Orphaned { members, stale }),
        }
    }

    /// The watchdog's worker: its child running slon. Read from the kernel's
    /// list of the watchdog's children, which saves a scan of /proc.
    fn worker_of(&self, watchdog: &ProcInfo) -> Result<Option<ProcInfo>> {
        let children = format!("/proc/{0}/task/{0}/children", watchdog.pid);
        let pids: Vec<i32> = match std::fs::read_to_string(&children) {
            Ok(text) => text
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect(),
            // A kernel without CONFIG_PROC_CHILDREN: every member's parent.
            Err(e) if e.kind() == io::ErrorKind::NotFound => self
                .members_io()?
                .iter()
                .filter(|m| m.ppid == watchdog.pid)
                .map(|m| m.pid)
                .collect(),
            Err(e) => return Err(ocf::OcfError::generic(format!("reading {children}: {e}"))),
        };
        for pid in pids {
            if let Ok(Some(p)) = ProcInfo::read(pid) {
                if p.ppid == watchdog.pid && self.is_instance(&p) {
                    return Ok(Some(p));
                }
            }
        }
        Ok(None)
    }

    fn members_io(&self) -> Result<Vec<ProcInfo>> {
        self.members()
            .map_err(|e| ocf::OcfError::generic(format!("scanning /proc for slon: {e}")))
    }
}

impl Service for SlonDaemon {
    fn name(&self) -> &str {
        "slon"
    }

    fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// The slon binary started with this pid file; [`SlonDaemon::observe`]
    /// then checks the operands too.
    fn main_process(&self) -> Expected<'_> {
        Expected {
            exe: Some(&self.binary),
            arg: Some(self.pid_file.as_os_str()),
            ..Default::default()
        }
    }

    /// Every process of this instance: the watchdog, its worker, and a
    /// worker orphaned by a killed watchdog. One readlink of /proc/PID/exe rules out nearly
    /// every process before anything else is read.
    fn members(&self) -> io::Result<Vec<ProcInfo>> {
        let mut found = Vec::new();
        for pid in process::all_pids()? {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
            if !exe.is_ok_and(|e| e == self.binary) {
                continue;
            }
            if let Ok(Some(p)) = ProcInfo::read(pid) {
                if self.is_instance(&p) {
                    found.push(p);
                }
            }
        }
        found.sort_by_key(|p| p.pid);
        Ok(found)
    }
}

/// A process stopped by a signal (SIGSTOP, SIGTSTP): it holds its lock and
/// connections but replicates nothing. A traced process (`t`) is left
/// alone: a debugger attached on purpose.
pub fn is_frozen(p: &ProcInfo) -> bool {
    p.state == 'T'
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgclient::slony::ClusterName;
    use std::ffi::OsString;
    use std::time::SystemTime;

    fn daemon() -> SlonDaemon {
        SlonDaemon::new(&Instance {
            cluster: ClusterName::parse("tusk").unwrap(),
            conninfo: "host=/run/pg dbname=app".into(),
            slon_binary: "/nonexistent/slon".into(),
            pid_file: "/nonexistent/slon.pid".into(),
            user: "postgres".into(),
        })
    }

    fn slon(pid: i32, ppid: i32, args: &[&str]) -> ProcInfo {
        ProcInfo {
            pid,
            state: 'S',
            ppid,
            uid: 104,
            gid: 104,
            started: SystemTime::UNIX_EPOCH,
            start_ticks: 1,
            exe: Some("/nonexistent/slon".into()),
            cwd: Some("/".into()),
            cmdline: std::iter::once("slon")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect(),
        }
    }

    #[test]
    fn a_slon_is_this_instance_only_with_both_operands() {
        let d = daemon();
        let p = "-p/nonexistent/slon.pid";
        assert!(d.is_instance(&slon(
            1,
            0,
            &[
                "-p",
                "/nonexistent/slon.pid",
                "tusk",
                "host=/run/pg dbname=app"
            ]
        )));
        assert!(d.is_instance(&slon(
            1,
            0,
            &["-s500", p, "tusk", "host=/run/pg dbname=app"]
        )));
        for other in [
            &[p, "tusk", "host=/run/pg dbname=other"][..],
            &[p, "billing", "host=/run/pg dbname=app"],
            &[p, "tusk"],
            &[p, "-f", "/etc/slon.conf"],
            &[p, "tusk", "host=/run/pg dbname=app", "extra"],
            &["tusk", "host=/run/pg dbname=app"],
            &["-p", "/run/other.pid", "tusk", "host=/run/pg dbname=app"],
        ] {
            assert!(!d.is_instance(&slon(1, 0, other)), "{other:?}");
        }
        let mut elsewhere = slon(1, 0, &[p, "tusk", "host=/run/pg dbname=app"]);
        elsewhere.exe = Some("/usr/lib/ocf/resource.d/tusk/slon".into());
        assert!(
            !d.is_instance(&elsewhere),
            "the agent itself is named slon too"
        );
        let mut zombie = slon(1, 0, &[p, "tusk", "host=/run/pg dbname=app"]);
        zombie.state = 'Z';
        assert!(!d.is_instance(&zombie));
    }

    #[test]
    fn only_a_stopped_process_is_frozen() {
        let mut p = slon(1, 0, &[]);
        assert!(!is_frozen(&p));
        p.state = 'T';
        assert!(is_frozen(&p));
        p.state = 't';
        assert!(!is_frozen(&p));
    }
}
