//! PID 1 of a node (or of the switch): `tusk-lab init`, run by unshare.
//!
//! It puts the node's disks in place, then only reaps. Reaping matters: PID 1
//! of a PID namespace inherits every orphan (the daemons started with
//! `setsid -f`, a postmaster whose pg_ctl has exited), and a killed process
//! nobody reaps stays a zombie, which passes `kill -0` and fools agents.
//!
//! Runs single-threaded with no other duty, so the reaper can wait for any
//! child without stealing another thread's exit status.

use std::convert::Infallible;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::sethostname;

use crate::node::{NodeDir, DISKS};
use crate::process;

/// What this init is the init of.
pub enum Role {
    Switch { hostname: String },
    Node(NodeDir),
}

/// Sets the namespaces up, tells the host it is ready, and reaps forever.
pub fn run(role: Role, lab_dir: &Path) -> Result<Infallible> {
    // The holder's starter gave us only 0, 1 and 2, but a process that lives
    // as long as the lab must be sure not to keep anyone's pipe open.
    process::close_inherited_fds();
    // Blocked before any child exists, so that no SIGCHLD can be missed
    // between a reap and the wait for the next signal.
    let mut sigchld = SigSet::empty();
    sigchld.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&sigchld), None)
        .context("blocking SIGCHLD")?;

    let ready_file = match &role {
        Role::Switch { hostname } => {
            sethostname(hostname).context("sethostname")?;
            crate::network::switch_ready_file(lab_dir)
        }
        Role::Node(node) => {
            sethostname(&node.name).context("sethostname")?;
            mount_disks(node, lab_dir)?;
            node.ready_file()
        }
    };
    fs::write(&ready_file, b"").context("writing the ready file")?;
    eprintln!("tusk-lab init: ready");
    reap_forever(&sigchld)
}

fn reap_forever(sigchld: &SigSet) -> Result<Infallible> {
    loop {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("waitpid"),
            }
        }
        sigchld.wait().context("sigwait")?;
    }
}

/// Where `up` keeps the agents of TUSK_LAB_AGENTS and TUSK_LAB_AGENT, in
/// the lab directory, each under its name.
pub const AGENT_COPIES: &str = "ocf";
/// The agents a lab may run instead of the installed ones.
pub const AGENTS: [&str; 3] = ["postgresql", "pgpool", "slon"];
const INSTALLED_AGENTS: &str = "/usr/lib/ocf/resource.d/tusk";

/// The node's private filesystem view. unshare already made every mount
/// private, so nothing here propagates to the host.
fn mount_disks(node: &NodeDir, lab_dir: &Path) -> Result<()> {
    let none: Option<&str> = None;
    let tmpfs = |target: &str, mode: &str| {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(mode),
        )
        .with_context(|| format!("mounting a tmpfs on {target}"))
    };
    tmpfs("/run", "mode=0755")?;
    // libqb keeps its IPC ring buffers in /dev/shm; its sockets are abstract
    // unix sockets, which the network namespace already separates.
    tmpfs("/dev/shm", "mode=1777")?;
    for disk in DISKS {
        if !Path::new(disk.node).is_dir() {
            // /var/lib/postgresql on a machine without PostgreSQL: nothing
            // there to keep private, and the host is not changed to make one.
            eprintln!(
                "tusk-lab init: {} does not exist on the host; not mounted",
                disk.node
            );
            continue;
        }
        let source = node.disk(disk.host);
        mount(Some(&source), disk.node, none, MsFlags::MS_BIND, none)
            .with_context(|| format!("bind-mounting {} on {}", source.display(), disk.node))?;
    }
    // The lab fence agent appears in /usr/sbin, where Pacemaker looks for
    // fence_* agents, inside the nodes only: a read-only overlay with the
    // lab's own directory on top, so the host's /usr/sbin is not touched and
    // two labs never share (or remove) each other's agent.
    let overlay = format!("lowerdir={}:/usr/sbin", lab_dir.join("sbin").display());
    mount(
        Some("overlay"),
        "/usr/sbin",
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(overlay.as_str()),
    )
    .context("mounting the overlay that adds fence_tusklab to /usr/sbin")?;
    // The lab's own agents (TUSK_LAB_AGENTS, TUSK_LAB_AGENT), each over the
    // installed one, inside the nodes only.
    for name in AGENTS {
        let agent = lab_dir.join(AGENT_COPIES).join(name);
        let installed = Path::new(INSTALLED_AGENTS).join(name);
        if agent.is_file() && installed.is_file() {
            mount(Some(&agent), &installed, none, MsFlags::MS_BIND, none).with_context(|| {
                format!(
                    "bind-mounting {} on {}",
                    agent.display(),
                    installed.display()
                )
            })?;
        }
    }

    // What Debian's tmpfiles.d creates at boot. /run/postgresql is left out
    // on purpose: the postgresql agent creates its socket directory itself.
    symlink("/dev/shm", "/run/shm").context("/run/shm")?;
    for (dir, mode) in [("/run/lock", 0o1777), ("/run/resource-agents", 0o1755)] {
        fs::create_dir(dir).with_context(|| format!("creating {dir}"))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}
