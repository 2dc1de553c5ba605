//! Processes the lab starts, and how it recognises them again later.
//!
//! A PID proves nothing by itself (DESIGN.md, failure 1): the lab records each
//! process it starts together with its start time, and for a namespace init
//! also the identity of its PID namespace. It signals a PID only after /proc
//! confirms that the process there is still the one it recorded.

use std::fs;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// A process as recorded when the lab started it: the PID and the start time
/// in clock ticks since boot (field 22 of /proc/PID/stat). The pair names one
/// process for the whole life of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub pid: i32,
    pub start: u64,
}

pub use ocf::process::{all_pids, Stat};

impl Recorded {
    /// Records a process that is running now.
    pub fn of(pid: i32) -> Result<Recorded> {
        let stat = stat(pid)
            .with_context(|| format!("process {pid} exited before it could be recorded"))?;
        Ok(Recorded {
            pid,
            start: stat.start_ticks,
        })
    }

    /// True while the recorded process runs: same PID, same start time, not
    /// a zombie (a zombie passes `kill -0` but runs nothing).
    pub fn is_running(&self) -> bool {
        stat(self.pid)
            .is_some_and(|s| s.start_ticks == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// SIGKILLs the process if it is still the recorded one, then waits with
    /// a deadline until it has exited. Reaps it when it is our child.
    pub fn kill_and_wait(&self, timeout: Duration) -> Result<()> {
        if self.is_running() {
            match kill(Pid::from_raw(self.pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => return Err(e).with_context(|| format!("kill -KILL {}", self.pid)),
            }
        }
        self.wait_exited(timeout)
    }

    /// Waits until the recorded process has exited. A child of ours is
    /// reaped here; anybody else's is done once it is a zombie or gone.
    pub fn wait_exited(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if stat(self.pid).is_some_and(|s| s.start_ticks == self.start) {
                match waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(_) => return Ok(()),
                    // Not our child: its parent reaps it; exited is enough.
                    Err(Errno::ECHILD) if !self.is_running() => return Ok(()),
                    Err(Errno::ECHILD) => {}
                    Err(e) => return Err(e).with_context(|| format!("waitpid {}", self.pid)),
                }
            } else {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "process {} still running {:?} after SIGKILL",
                    self.pid,
                    timeout
                );
            }
            sleep(Duration::from_millis(20));
        }
    }
}

/// Reads /proc/PID/stat; `None` when there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    Stat::read(pid).ok().flatten()
}

/// The identity of one of a process's namespaces, e.g. `pid:[4026532281]`.
pub fn namespace(pid: i32, kind: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// The arguments a process was started with.
pub fn cmdline(pid: i32) -> Vec<String> {
    ocf::process::cmdline(pid)
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// True when the process is PID 1 of its own PID namespace, as seen from the
/// `NSpid:` line of /proc/PID/status (host PID first, innermost last).
pub fn is_namespace_init(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
            let pids: Vec<&str> = line.split_whitespace().skip(1).collect();
            Some(pids.len() > 1 && pids.last() == Some(&"1"))
        })
        .unwrap_or(false)
}

/// The first child of a process, from /proc/PID/task/PID/children.
pub fn first_child(pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Detaches a process the lab starts for the long run (a namespace holder,
/// the fence daemon, a cluster daemon): its own session, so that a Ctrl-C in
/// the terminal of `tusk-lab up` or a test runner killing its process group
/// does not reach it, and none of our inherited file descriptors.
///
/// Why the descriptors matter: a daemon holding, say, the write end of the
/// pipe in `tusk-lab up | tee log` keeps `tee` waiting for as long as the lab
/// runs. Descriptors opened by Rust are close-on-exec already; the ones this
/// process inherited without that flag are listed here, before the fork,
/// because the child may only make async-signal-safe calls.
pub fn detach(command: &mut Command) -> &mut Command {
    let inherited = inherited_fds();
    // SAFETY: setsid and close are async-signal-safe, and the closure touches
    // no memory that another thread could hold locked.
    unsafe {
        command.pre_exec(move || {
            let _ = nix::unistd::setsid();
            for fd in &inherited {
                let _ = nix::unistd::close(*fd);
            }
            Ok(())
        })
    }
}

/// Descriptors above stderr that a child would inherit.
fn inherited_fds() -> Vec<RawFd> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let Ok(entries) = fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|fd| *fd > 2)
        .filter(|fd| {
            fcntl(*fd, FcntlArg::F_GETFD)
                .map(|flags| !FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC))
                .unwrap_or(false)
        })
        .collect()
}

/// Closes every descriptor above stderr; for a process that has just become
/// a long-running daemon or init and must not keep its starter's pipes open.
pub fn close_inherited_fds() {
    for fd in inherited_fds() {
        let _ = nix::unistd::close(fd);
    }
}

/// Waits with a deadline until `ready` answers true. `ready` may fail, which
/// ends the wait with that error (for example: the process that should get
/// ready has died).
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {:.0?} waiting for {what}", timeout);
        }
        // Each poll may run crm_mon in every node: often enough to measure
        // to a few tenths of a second, rarely enough to leave the 2 cores to
        // the cluster.
        sleep(Duration::from_millis(200));
    }
}

/// The last `n` lines of a file, for error reports and `tusk-lab logs`.
pub fn tail(path: &Path, n: usize) -> Option<String> {
    let text = fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    Some(lines[start..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_recorded_and_running() {
        let me = Recorded::of(std::process::id() as i32).unwrap();
        assert!(me.is_running());
        let other = Recorded {
            start: me.start + 1,
            ..me
        };
        assert!(
            !other.is_running(),
            "a different start time is a different process"
        );
    }

    #[test]
    fn a_test_process_is_not_a_namespace_init() {
        assert!(!is_namespace_init(std::process::id() as i32));
    }
}
