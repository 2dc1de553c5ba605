//! A daemon observed through its pid file and /proc, and stopped by a
//! ladder of signals.
//!
//! A pid file proves nothing by itself (DESIGN.md, failure 1): after a crash
//! or a reboot it may name a dead PID, a zombie, or a PID that an unrelated
//! process now uses. An agent describes its daemon once, by implementing
//! [`Service`]: where the pid file is, what the process it names must be, and
//! how to find every process of the daemon without it. [`observe`] then says
//! what runs, and [`stop`] ends all of it inside the deadline.
//!
//! ```text
//! observe:  pid file --(names)--> PID --(/proc: is it the daemon?)--> Running
//!                                                   no --> stale reason
//!           no believable main process: scan /proc for members --> Orphaned | Stopped
//! stop:     Running: each step of the ladder (signal, share of the time left)
//!           then SIGKILL every member until none is left
//! ```

use crate::process::{self, Expected, PidCheck, PidFile, ProcInfo};
use crate::{info, warning, Deadline, OcfError, Result};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

/// What an agent tells the core about its daemon.
pub trait Service {
    /// How the daemon is called in messages: `postmaster`, `pgpool`, `slon`.
    fn name(&self) -> &str;

    /// The file in which the daemon records its main process's PID.
    fn pid_file(&self) -> &Path;

    /// What the main process must be. Name what identifies the daemon
    /// without doubt: the executable, and the working directory or a
    /// command-line argument (its configuration file) that tells this
    /// instance from others on the host.
    fn main_process(&self) -> Expected<'_>;

    /// Whether a process that started after the pid file was last written
    /// can still be the daemon. Comparing start time and mtime rules out a
    /// reused PID when the identity above is weak, but trusts the wall
    /// clock: a clock stepped forward makes every running process look
    /// younger than its file. `None` (the default) when
    /// [`Service::main_process`] identifies the daemon without doubt; else
    /// the slack to allow, which should cover the daemon's own rewrites of
    /// its pid file (postmaster.pid is rewritten after start, which only
    /// makes the file newer, so that needs none).
    fn pid_file_slack(&self) -> Option<Duration> {
        None
    }

    /// Every live process of this daemon instance, main process included,
    /// found without the pid file: children whose command line the daemon
    /// rewrote, and orphans that outlived a killed main process.
    fn members(&self) -> std::io::Result<Vec<ProcInfo>>;
}

/// What of a daemon runs, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// The main process the pid file names, verified through /proc.
    Running(ProcInfo),
    /// Nothing of the daemon runs; `stale` says why a pid file that is
    /// present was not believed.
    Stopped { stale: Option<String> },
    /// Processes of the daemon run without a believable main process (it
    /// was killed and its children or backends outlived it, or its pid file
    /// is gone or unreadable). `stale` as above.
    Orphaned {
        members: Vec<ProcInfo>,
        stale: Option<String>,
    },
}

/// A lock file (pid file) judged against what its process must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    Absent,
    Held(ProcInfo),
    /// Present but naming no live process of the expected kind, or not
    /// safely readable; says why, in words for the operator.
    Stale(String),
}

/// Reads the pid file at `path` and judges the PID it names. A file that
/// cannot be read safely (a symlink, a FIFO, a device, an I/O error) is
/// reported as stale with the reason rather than as an error, so that a
/// caller such as stop goes on to scan /proc instead of failing.
pub fn read_lock(path: &Path, expected: &Expected<'_>, slack: Option<Duration>) -> Lock {
    let (pid, written) = match process::read_pid_file(path) {
        Ok(PidFile::Missing) => return Lock::Absent,
        Ok(PidFile::Garbage(why)) => return Lock::Stale(why),
        Ok(PidFile::Pid { pid, written }) => (pid, written),
        Err(e) => return Lock::Stale(format!("it cannot be read safely: {e}")),
    };
    let written = slack.map(|s| written + s);
    match process::check_pid(pid, expected, written) {
        Ok(PidCheck::Ours(info)) => Lock::Held(info),
        Ok(PidCheck::Dead) => Lock::Stale(format!("PID {pid} does not exist")),
        // A daemon killed where nothing reaps orphans stays a zombie, and a
        // zombie passes the kill(pid, 0) test daemons use on their own files.
        Ok(PidCheck::Zombie) => Lock::Stale(format!("PID {pid} has exited")),
        Ok(PidCheck::Foreign(why)) => Lock::Stale(why),
        Err(e) => Lock::Stale(format!("/proc/{pid} cannot be read: {e}")),
    }
}

/// What of `service` runs here.
pub fn observe(service: &dyn Service) -> Result<State> {
    let path = service.pid_file();
    let stale = match read_lock(path, &service.main_process(), service.pid_file_slack()) {
        Lock::Held(main) => return Ok(State::Running(main)),
        Lock::Absent => None,
        Lock::Stale(why) => Some(format!("{} is stale: {why}", path.display())),
    };
    let members = members(service)?;
    Ok(if members.is_empty() {
        State::Stopped { stale }
    } else {
        State::Orphaned { members, stale }
    })
}

fn members(service: &dyn Service) -> Result<Vec<ProcInfo>> {
    service
        .members()
        .map_err(|e| OcfError::generic(format!("scanning /proc for {}: {e}", service.name())))
}

/// `1, 2, 3`, for messages.
pub fn pid_list(procs: &[ProcInfo]) -> String {
    procs
        .iter()
        .map(|p| p.pid.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One rung of a stop ladder: a signal to the main process, what it means
/// to the daemon (`fast shutdown`), and the share of the time left that the
/// daemon gets to exit after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub signal: Signal,
    pub name: &'static str,
    pub share: f64,
}

impl Step {
    pub const fn new(signal: Signal, name: &'static str, share: f64) -> Step {
        Step {
            signal,
            name,
            share,
        }
    }
}

/// Stops `service` completely inside `deadline`: the main process gets
/// each step of `ladder` in turn (each with its share of what is left, so
/// that the last resort always has time), then every member still alive is
/// SIGKILLed until none is. Succeeds only when nothing of the daemon runs.
/// Signals go to a PID only while it still names the process observed.
pub fn stop(service: &dyn Service, ladder: &[Step], deadline: &Deadline) -> Result<()> {
    match observe(service)? {
        State::Running(main) => stop_main(service, &main, ladder, deadline),
        State::Orphaned { members, stale } => warning!(
            "killing processes of {} left without a main process{}: PIDs {}",
            service.name(),
            stale.map(|s| format!(" ({s})")).unwrap_or_default(),
            pid_list(&members)
        ),
        State::Stopped { .. } => {}
    }
    kill_members(service, deadline)
}

/// The ladder of [`stop`] for a main process the agent found itself (slon's
/// watchdog after a second slon removed its pid file): each step's signal
/// while `main` is still the same process, until it exits. What it leaves
/// is for [`kill_members`].
pub fn stop_main(service: &dyn Service, main: &ProcInfo, ladder: &[Step], deadline: &Deadline) {
    for step in ladder {
        if !process::signal_if_same(main, step.signal) {
            break; // already gone
        }
        if wait_gone(main, &deadline.share(step.share)) {
            info!(
                "stopped {} (PID {}, {})",
                service.name(),
                main.pid,
                step.name
            );
            break;
        }
        warning!(
            "{} of {} {} did not finish in time",
            step.name,
            service.name(),
            main.pid
        );
    }
}

/// SIGKILLs whatever of `service` still runs until nothing does.
pub fn kill_members(service: &dyn Service, deadline: &Deadline) -> Result<()> {
    let mut killed = Vec::new();
    let outcome = deadline.wait_for(
        &format!("the processes of {} to exit", service.name()),
        Duration::from_millis(50),
        || {
            let procs = members(service)?;
            if procs.is_empty() {
                return Ok(Some(()));
            }
            for p in &procs {
                if !killed.contains(&p.pid) && process::signal_if_same(p, Signal::SIGKILL) {
                    killed.push(p.pid);
                }
            }
            Ok(None)
        },
    );
    if !killed.is_empty() {
        warning!("sent SIGKILL to PIDs {killed:?} of {}", service.name());
    }
    outcome.map_err(|e| {
        let left = members(service).map(|p| pid_list(&p)).unwrap_or_default();
        OcfError::generic(format!("{e}; still running: {left}"))
    })
}

/// Whether `p` exits before `deadline`.
pub fn wait_gone(p: &ProcInfo, deadline: &Deadline) -> bool {
    deadline
        .wait_for("the process to exit", Duration::from_millis(50), || {
            Ok((!process::is_same_running(p)).then_some(()))
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::process::CommandExt;
    use std::path::PathBuf;
    use std::process::{Child, Command};
    use std::time::Instant;

    /// A `sleep` started with a marker argument, standing in for a daemon.
    struct Sleeper {
        pid_file: PathBuf,
        marker: String,
    }

    impl Service for Sleeper {
        fn name(&self) -> &str {
            "sleeper"
        }
        fn pid_file(&self) -> &Path {
            &self.pid_file
        }
        fn main_process(&self) -> Expected<'_> {
            Expected {
                exe_name: Some(OsStr::new("sleep")),
                arg: Some(OsStr::new(&self.marker)),
                ..Default::default()
            }
        }
        fn members(&self) -> std::io::Result<Vec<ProcInfo>> {
            process::find_processes(&self.main_process())
        }
    }

    /// Every test gets its own marker, so tests running at once never see
    /// each other's sleepers.
    fn sleeper(dir: &Path, tag: u8) -> Sleeper {
        Sleeper {
            pid_file: dir.join("sleeper.pid"),
            marker: format!("{}.{tag}", 100_000 + std::process::id()),
        }
    }

    struct Reaped(Child);
    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn spawn(s: &Sleeper, ignore_term: bool) -> Reaped {
        let mut cmd = Command::new("sleep");
        cmd.arg(&s.marker);
        if ignore_term {
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::signal::signal(Signal::SIGTERM, nix::sys::signal::SigHandler::SigIgn)
                        .map(drop)
                        .map_err(std::io::Error::from)
                });
            }
        }
        Reaped(cmd.spawn().unwrap())
    }

    fn wait_until(mut cond: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < end, "timed out");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_pid_file_naming_the_daemon_is_running_and_a_foreign_pid_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let s = sleeper(dir.path(), 1);
        let child = spawn(&s, false);
        let pid = child.0.id() as i32;
        wait_until(|| process::cmdline(pid).len() == 2);
        std::fs::write(&s.pid_file, format!("{pid}\n")).unwrap();
        assert!(matches!(observe(&s).unwrap(), State::Running(p) if p.pid == pid));
        // pgpool's format: the PID then a NUL byte.
        std::fs::write(&s.pid_file, format!("{pid}\0")).unwrap();
        assert!(matches!(observe(&s).unwrap(), State::Running(p) if p.pid == pid));

        // Our own PID is alive but not the daemon: the daemon is orphaned.
        std::fs::write(&s.pid_file, format!("{}\n", std::process::id())).unwrap();
        match observe(&s).unwrap() {
            State::Orphaned { members, stale } => {
                assert_eq!(pid_list(&members), pid.to_string());
                assert!(stale.unwrap().contains("is stale: PID"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsafe_or_garbage_pid_files_are_stale_and_answered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = sleeper(dir.path(), 2);
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, format!("{}\n", std::process::id())).unwrap();
        type Make<'a> = Box<dyn Fn(&Path) + 'a>;
        let cases: Vec<(&str, Make, &str)> = vec![
            (
                "symlink",
                Box::new(|p| std::os::unix::fs::symlink(&target, p).unwrap()),
                "symbolic link",
            ),
            (
                "fifo",
                Box::new(|p| {
                    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
                }),
                "FIFO",
            ),
            (
                "empty",
                Box::new(|p| std::fs::write(p, "").unwrap()),
                "empty",
            ),
            (
                "huge",
                Box::new(|p| std::fs::write(p, vec![b'7'; 1 << 20]).unwrap()),
                "over 4096 bytes",
            ),
            (
                "garbage",
                Box::new(|p| std::fs::write(p, "secret\n").unwrap()),
                "holds no PID (7 bytes)",
            ),
            (
                "directory",
                Box::new(|p| std::fs::create_dir(p).unwrap()),
                "directory",
            ),
        ];
        for (name, make, why) in cases {
            let _ = std::fs::remove_file(&s.pid_file);
            let _ = std::fs::remove_dir(&s.pid_file);
            make(&s.pid_file);
            let started = Instant::now();
            match observe(&s).unwrap() {
                State::Stopped {
                    stale: Some(reason),
                } => {
                    assert!(reason.contains(why), "{name}: {reason}");
                    assert!(!reason.contains("secret"), "{name}: content echoed");
                }
                other => panic!("{name}: {other:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{name} blocked");
        }
    }

    #[test]
    fn stop_climbs_the_ladder_and_kills_what_ignores_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = sleeper(dir.path(), 3);
        let stubborn = spawn(&s, true);
        let orphan = spawn(&s, true);
        let pid = stubborn.0.id() as i32;
        wait_until(|| process::cmdline(pid).len() == 2);
        std::fs::write(&s.pid_file, format!("{pid}\n")).unwrap();
        let ladder = [Step::new(Signal::SIGTERM, "polite stop", 0.3)];
        let deadline = Deadline::after(Duration::from_secs(3));
        stop(&s, &ladder, &deadline).unwrap();
        assert!(s.members().unwrap().is_empty());
        for child in [stubborn, orphan] {
            let mut child = child;
            let status = child.0.wait().unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9)
            );
        }
        // Nothing runs: stop succeeds again at once.
        stop(&s, &ladder, &deadline).unwrap();
    }
}
