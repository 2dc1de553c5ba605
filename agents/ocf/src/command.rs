//! Running a program as another OS user, with a deadline, without a shell.
//!
//! Agents run as root; PostgreSQL, pgpool and slon run as their own users.
//! `su` would fork a shell, read PAM and mangle arguments; this switches
//! groups and ids in the child between fork and exec instead.

use crate::{Deadline, OcfError, Result};
use nix::unistd::{Gid, Uid, User};
use std::ffi::{CString, OsStr};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// An OS account a service runs as, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: PathBuf,
    groups: Vec<Gid>,
}

impl OsUser {
    /// Looks the account up; a missing account means the service is not
    /// installed here (resource-agents' convention: ERR_INSTALLED).
    pub fn lookup(name: &str) -> Result<OsUser> {
        let user = User::from_name(name)
            .map_err(|e| OcfError::installed(format!("looking up OS user {name}: {e}")))?
            .ok_or_else(|| OcfError::installed(format!("OS user {name} does not exist")))?;
        let cname = CString::new(name)
            .map_err(|_| OcfError::configured(format!("OS user name {name:?} holds a NUL byte")))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| OcfError::installed(format!("reading the groups of {name}: {e}")))?;
        Ok(OsUser {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
            groups,
        })
    }

    /// A command that will run as this user, with a clean environment.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name);
        for keep in ["LANG", "LC_ALL", "TZ"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        cmd.current_dir(if self.home.is_dir() {
            &self.home
        } else {
            std::path::Path::new("/")
        });
        if Uid::effective() != self.uid {
            let (uid, gid, groups) = (self.uid, self.gid, self.groups.clone());
            // SAFETY: between fork and exec only async-signal-safe system
            // calls run here; the group list was resolved before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    nix::unistd::setgroups(&groups)?;
                    nix::unistd::setgid(gid)?;
                    nix::unistd::setuid(uid)?;
                    Ok(())
                });
            }
        }
        cmd
    }
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The last line of stderr (or stdout) that says something, for a reason line.
    pub fn last_words(&self) -> &str {
        [&self.stderr, &self.stdout]
            .iter()
            .flat_map(|s| s.lines().rev())
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("no output")
    }
}

/// Runs `cmd` to completion within `deadline`; a command still running then
/// is killed and reaped, and the error says so.
pub fn run(mut cmd: Command, deadline: &Deadline) -> Result<Output> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| OcfError::generic(format!("cannot run {name}: {e}")))?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.is_expired() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(OcfError::generic(format!(
                    "{name} did not finish before the action timeout; killed it"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10).min(deadline.remaining())),
            Err(e) => return Err(OcfError::generic(format!("waiting for {name}: {e}"))),
        }
    };
    // A daemon the command started may keep the pipes open; what it printed
    // after the command exited does not belong to the command.
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

type Reader = std::sync::mpsc::Receiver<String>;

fn reader(pipe: Option<impl Read + Send + 'static>) -> Option<Reader> {
    let mut pipe = pipe?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    Some(rx)
}

fn collect(rx: Option<Reader>) -> String {
    rx.and_then(|rx| rx.recv_timeout(Duration::from_millis(200)).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> OsUser {
        let name = User::from_uid(Uid::effective()).unwrap().unwrap().name;
        OsUser::lookup(&name).unwrap()
    }

    #[test]
    fn a_missing_user_is_not_installed() {
        let e = OsUser::lookup("tusk-no-such-user").unwrap_err();
        assert_eq!(e.status(), crate::Status::ErrInstalled);
        assert_eq!(e.reason(), "OS user tusk-no-such-user does not exist");
    }

    #[test]
    fn run_captures_output_and_status() {
        let mut cmd = me().command("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run(cmd, &Deadline::after(Duration::from_secs(10))).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.last_words(), "err");
    }

    #[test]
    fn run_kills_a_command_that_outlives_the_deadline() {
        let mut cmd = me().command("/bin/sleep");
        cmd.arg("30");
        let started = std::time::Instant::now();
        let e = run(cmd, &Deadline::after(Duration::from_millis(200))).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            e.reason()
                .contains("did not finish before the action timeout"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn the_environment_is_clean() {
        std::env::set_var("TUSK_SECRET_FROM_PARENT", "1");
        let cmd = me().command("/usr/bin/env");
        let out = run(cmd, &Deadline::after(Duration::from_secs(10))).unwrap();
        assert!(
            !out.stdout.contains("TUSK_SECRET_FROM_PARENT"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
            "{}",
            out.stdout
        );
    }
}
