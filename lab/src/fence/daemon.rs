//! `tusk-lab fence-daemon`: the lab's power switch, on the host.
//!
//! Started by `up` (recorded, detached, logging to `DIR/fence-daemon.log`),
//! ended by `down`. One request at a time, which is also what a real power
//! switch does, and it keeps the reaping below safe: nodes this daemon powers
//! on are its children, and between requests no other wait is in flight.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::protocol::{self, Request};
use crate::{log, Lab};

pub fn run(lab_dir: &Path) -> Result<()> {
    crate::process::close_inherited_fds();
    let socket = protocol::socket_path(lab_dir);
    // A socket file left by a daemon that died; `up` made sure no daemon of
    // this lab is running.
    let _ = std::fs::remove_file(&socket);
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("binding {}", socket.display()))?;
    // Root only: whoever can connect can power nodes off.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    log(&format!("fence daemon listening on {}", socket.display()));
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = serve(lab_dir, stream) {
                    log(&format!("fence daemon: {e:#}"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                reap_children();
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e).context("accepting on the fence socket"),
        }
    }
}

fn serve(lab_dir: &Path, stream: UnixStream) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .context("reading a request")?;
    let started = Instant::now();
    let (answer, changes_power) = match Request::parse(&line) {
        Ok((request, _from)) => {
            let answer = handle(lab_dir, &request)
                .unwrap_or_else(|e| format!("error {}", format!("{e:#}").replace('\n', " ")));
            let changes_power = matches!(
                request,
                Request::Off(_) | Request::On(_) | Request::Reboot(_)
            );
            (answer, changes_power)
        }
        Err(e) => (format!("error {e:#}"), false),
    };
    // Pacemaker's monitor pings every minute: only what changes a node, or
    // fails, is worth a line.
    if changes_power || answer.starts_with("error") {
        log(&format!(
            "fence: {}: {answer} ({:.1} s)",
            line.trim(),
            started.elapsed().as_secs_f64()
        ));
    }
    match (&stream).write_all(format!("{answer}\n").as_bytes()) {
        // The agent that asked ran on the node just switched off.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && changes_power => {
            log("fence daemon: the requester is gone (it ran on the node switched off)");
            Ok(())
        }
        written => written.context("answering"),
    }
}

fn handle(lab_dir: &Path, request: &Request) -> Result<String> {
    let lab = Lab::attach(lab_dir)?;
    Ok(match request {
        Request::Ping => "ok".to_string(),
        Request::List => format!("ok {}", lab.nodes()?.join(" ")),
        Request::Status(node) => format!("ok {}", if lab.is_running(node)? { "on" } else { "off" }),
        Request::Off(node) => {
            lab.power_off(node)?;
            "ok".to_string()
        }
        Request::On(node) => {
            lab.power_on(node)?;
            "ok".to_string()
        }
        Request::Reboot(node) => {
            lab.power_off(node)?;
            lab.power_on(node)?;
            "ok".to_string()
        }
    })
}

/// Nodes powered on by this daemon are its children (through unshare); they
/// are reaped here once powered off, whoever powered them off.
fn reap_children() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
