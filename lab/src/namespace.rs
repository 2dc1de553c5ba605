//! Host side of the namespaces: starting a holder, entering it, ending it.
//!
//! A holder is `unshare --mount --net --pid --uts --ipc --fork --mount-proc`
//! running `tusk-lab init` (see init.rs) as PID 1 of the new PID namespace.
//! Killing that init makes the kernel kill every process in the namespace at
//! once, which is exactly a power loss; the mount and network namespaces
//! (and with the latter the node's veth, its addresses and its link) vanish
//! when the last process in them, `unshare` itself, has exited.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{self, Recorded};
use crate::state::Holder;

/// Every program run inside a node gets the node's own PATH, not the
/// caller's (a test runner's PATH may lack /usr/sbin, where pcs lives).
pub const NODE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The namespaces of a node (and of the switch): `unshare` forks so that
/// the init is PID 1 of the new PID namespace, with its own /proc.
pub const UNSHARE_NODE: [&str; 7] = [
    "--mount",
    "--net",
    "--pid",
    "--uts",
    "--ipc",
    "--fork",
    "--mount-proc",
];

/// Starts a holder running `exe init ARGS...` and records it once the init
/// has been forked. The init's stdout and stderr go to `log_path`.
pub fn spawn_holder(exe: &Path, init_args: &[&OsStr], log_path: &Path) -> Result<Holder> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let err_log = log
        .try_clone()
        .context("duplicating the init log descriptor")?;
    let mut command = Command::new("unshare");
    command
        .args(UNSHARE_NODE)
        // Private: nothing the init mounts may propagate back to the host.
        .args(["--propagation", "private", "--"])
        .arg(exe)
        .arg("init")
        .args(init_args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log);
    let mut unshare = process::detach(&mut command)
        .spawn()
        .context("starting unshare (package util-linux)")?;
    let unshare_pid = unshare.id() as i32;
    let unshare_rec = Recorded::of(unshare_pid)?;

    // unshare --fork: the init is unshare's only child.
    let mut init_pid = None;
    process::wait_for(
        "the namespace init to be forked",
        Duration::from_secs(10),
        || {
            if let Some(status) = unshare.try_wait()? {
                bail!(
                    "unshare exited ({status}) before its init was seen; {}:\n{}",
                    log_path.display(),
                    process::tail(log_path, 20).unwrap_or_default()
                );
            }
            init_pid = process::first_child(unshare_pid);
            Ok(init_pid.is_some())
        },
    )?;
    let init_pid = init_pid.expect("checked by wait_for");
    let init = Recorded::of(init_pid)?;
    let pidns = process::namespace(init_pid, "pid").context("reading the init's PID namespace")?;
    let netns =
        process::namespace(init_pid, "net").context("reading the init's network namespace")?;
    if Some(&pidns) == process::namespace(std::process::id() as i32, "pid").as_ref() {
        bail!("the init {init_pid} is in our own PID namespace; unshare did not create one");
    }
    // The Child handle is dropped without waiting: the holder outlives this
    // process when `tusk-lab up` exits. Whoever is its parent at the end
    // reaps it (see Recorded::wait_exited).
    drop(unshare);
    Ok(Holder {
        init,
        pidns,
        netns,
        unshare: unshare_rec,
    })
}

/// Ends a holder: SIGKILL to its init (after checking that the PID is still
/// that init, in that namespace), then waits until `unshare` has exited too,
/// so that the namespaces are really gone when this returns.
pub fn kill_holder(holder: &Holder) -> Result<()> {
    let timeout = Duration::from_secs(10);
    if holder.is_running() {
        holder
            .init
            .kill_and_wait(timeout)
            .context("ending the namespace init")?;
    }
    // unshare exits with its child. Not by its namespace: while it exits,
    // /proc/PID/ns is unreadable before it turns zombie. Its start time
    // tells whether the PID is still it.
    holder
        .unshare
        .wait_exited(timeout)
        .context("waiting for unshare to exit")?;
    Ok(())
}

/// A command that runs `program` inside all of a holder's namespaces.
///
/// nsenter, not setns(2) in a forked child: entering a PID namespace only
/// affects children, which nsenter handles by forking once more, and a
/// multithreaded process such as a test runner cannot setns into a mount
/// namespace at all.
pub fn enter(holder: &Holder, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg("--target")
        .arg(holder.init.pid.to_string())
        .args([
            "--mount", "--net", "--pid", "--uts", "--ipc", "--wd=/", "--",
        ])
        .arg(program)
        .env("PATH", NODE_PATH);
    command
}

/// A command that runs `program` in a holder's network namespace only; for
/// `ip`, which needs nothing else.
pub fn enter_net(holder: &Holder, program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg("--target")
        .arg(holder.init.pid.to_string())
        .args(["--net", "--"])
        .arg(program)
        .env("PATH", NODE_PATH);
    command
}

/// Runs a command to completion; a non-zero exit is an error that quotes its
/// stderr.
pub fn run(command: &mut Command, what: &str) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{what}: {:?} failed ({}): {}",
            command,
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// Feeds `script` to `ip -batch -` in a holder's network namespace.
pub fn ip_batch(holder: &Holder, script: &str, what: &str) -> Result<()> {
    use std::io::Write;
    let mut command = enter_net(holder, "ip");
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("{what}: starting ip (package iproute2)"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .context("writing to ip -batch")?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{what}: ip -batch failed ({}): {}\nscript:\n{script}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
