//! What of this pgpool runs here: the daemon as a [`Service`] of the core,
//! found through its pid file and /proc, without trusting either alone
//! (DESIGN.md failure 1).
//!
//! The main process is the pgpool executable whose command line holds this
//! configuration's pgpool.conf (`pgpool -n -f <conf> ...`: pgpool keeps its
//! own command line, docs/pgpool-facts.md). Its children rewrite theirs
//! (`pgpool: wait for connection request`), and after a SIGKILL of the main
//! process they live on, reparented, still listening (the OOM killer's
//! doing). So the members of this pgpool are the pgpool processes that are
//! a main process of this configuration, a child of one, or that hold a
//! unix socket bound at this configuration's client or PCP socket path:
//! every child inherits the client socket, and the kernel keeps a socket's
//! path after its file is replaced by a newer pgpool. Another
//! configuration's pgpool has neither that command line nor those sockets.

use crate::config::{Layout, PoolConfig};
use ocf::process::{self, Expected, ProcInfo};
use ocf::service::{self, Service, State};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One pgpool configuration on this node.
#[derive(Debug, Clone)]
pub struct Pgpool {
    binary: PathBuf,
    config: PathBuf,
    pid_file: PathBuf,
    /// The client and PCP socket paths; empty when pgpool.conf could not
    /// be read (stop then finds members by command line and parent alone).
    sockets: Vec<PathBuf>,
    /// The account pgpool runs as, when known: an orphan found by its
    /// sockets must belong to it.
    uid: Option<u32>,
}

impl Pgpool {
    pub fn new(cfg: &PoolConfig, layout: &Layout, uid: Option<u32>) -> Pgpool {
        Pgpool {
            binary: cfg.pgpool.clone(),
            config: cfg.config.clone(),
            pid_file: layout.pid_file.clone(),
            sockets: layout.sockets().iter().map(|p| p.to_path_buf()).collect(),
            uid,
        }
    }

    /// What stop can know when pgpool.conf is unreadable: no sockets.
    pub fn without_sockets(cfg: &PoolConfig, pid_file: PathBuf, uid: Option<u32>) -> Pgpool {
        Pgpool {
            binary: cfg.pgpool.clone(),
            config: cfg.config.clone(),
            pid_file,
            sockets: Vec::new(),
            uid,
        }
    }

    pub fn observe(&self) -> ocf::Result<State> {
        service::observe(self)
    }

    fn any_pgpool(&self) -> Expected<'_> {
        Expected {
            exe: Some(&self.binary),
            exe_name: self.binary.file_name(),
            ..Default::default()
        }
    }

    /// The listening sockets bound at this configuration's paths.
    pub fn listeners(&self) -> std::io::Result<Vec<process::UnixSocket>> {
        let paths: Vec<&Path> = self.sockets.iter().map(PathBuf::as_path).collect();
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        Ok(process::unix_sockets_at(&paths)?
            .into_iter()
            .filter(|s| s.listening)
            .collect())
    }
}

impl Service for Pgpool {
    fn name(&self) -> &str {
        "pgpool"
    }

    fn pid_file(&self) -> &Path {
        &self.pid_file
    }

    /// The pgpool executable started with this pgpool.conf: that names
    /// this configuration's main process without doubt, so the pid file's
    /// mtime is not compared. The owner is left out: a main process of
    /// this configuration run by another account is still this pgpool.
    fn main_process(&self) -> Expected<'_> {
        Expected {
            arg: Some(self.config.as_os_str()),
            ..self.any_pgpool()
        }
    }

    fn members(&self) -> std::io::Result<Vec<ProcInfo>> {
        let pgpools = process::find_processes(&self.any_pgpool())?;
        let inodes: BTreeSet<u64> = {
            let paths: Vec<&Path> = self.sockets.iter().map(PathBuf::as_path).collect();
            if paths.is_empty() {
                BTreeSet::new()
            } else {
                process::unix_sockets_at(&paths)?
                    .iter()
                    .map(|s| s.inode)
                    .collect()
            }
        };
        Ok(members_of(pgpools, &self.config, self.uid, |pid| {
            process::holds_any_socket(pid, &inodes)
        }))
    }
}

/// The pure part of [`Pgpool::members`]: among the pgpool processes of
/// this node, those that are a main process of `config`, a child of one,
/// or (owned by `uid` when known) hold one of this configuration's
/// sockets.
pub fn members_of(
    pgpools: Vec<ProcInfo>,
    config: &Path,
    uid: Option<u32>,
    holds_socket: impl Fn(i32) -> bool,
) -> Vec<ProcInfo> {
    let config: &OsStr = config.as_os_str();
    let mains: BTreeSet<i32> = pgpools
        .iter()
        .filter(|p| p.cmdline.iter().any(|a| a == config))
        .map(|p| p.pid)
        .collect();
    pgpools
        .into_iter()
        .filter(|p| {
            mains.contains(&p.pid)
                || mains.contains(&p.ppid)
                || (!matches!(uid, Some(u) if u != p.uid) && holds_socket(p.pid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn proc(pid: i32, ppid: i32, uid: u32, cmdline: &str) -> ProcInfo {
        ProcInfo {
            pid,
            state: 'S',
            ppid,
            uid,
            gid: uid,
            started: UNIX_EPOCH,
            start_ticks: pid as u64,
            exe: Some(PathBuf::from("/usr/sbin/pgpool")),
            cwd: Some(PathBuf::from("/")),
            cmdline: cmdline.split(' ').map(Into::into).collect(),
        }
    }

    #[test]
    fn members_are_mains_of_this_config_their_children_and_holders_of_its_sockets() {
        let conf = Path::new("/etc/pgpool2/pgpool.conf");
        let pgpools = vec![
            proc(
                10,
                1,
                110,
                "/usr/sbin/pgpool -n -f /etc/pgpool2/pgpool.conf",
            ),
            proc(11, 10, 110, "pgpool: wait for connection request"),
            // An orphan of a killed main process: reparented, found by the
            // socket it still holds.
            proc(20, 1, 110, "pgpool: PCP: wait for connection request"),
            // Another configuration's pgpool and its child.
            proc(30, 1, 110, "/usr/sbin/pgpool -n -f /etc/pgpool2/other.conf"),
            proc(31, 30, 110, "pgpool: wait for connection request"),
            // Holding our socket but another account's: not ours.
            proc(40, 1, 0, "pgpool: worker process"),
        ];
        let ours = members_of(pgpools.clone(), conf, Some(110), |pid| {
            pid == 20 || pid == 40
        });
        let pids: Vec<i32> = ours.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 11, 20]);
        // The account unknown (stop with a broken user parameter): the
        // sockets decide.
        let ours = members_of(pgpools, conf, None, |pid| pid == 40);
        let pids: Vec<i32> = ours.iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 11, 40]);
    }
}
