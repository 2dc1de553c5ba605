//! One node's disks and its cluster stack.
//!
//! Everything a node writes and keeps lives under `DIR/NODE/` on the host and
//! is bind-mounted over the real paths inside the node's mount namespace, so
//! a crashed and restarted node finds its disks as they were: the CIB,
//! corosync's state, its logs, its PostgreSQL data. /run and /dev/shm are
//! fresh tmpfs at every boot, as on a real machine.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::unistd::{Group, User};

use crate::namespace::{self, NODE_PATH};
use crate::process;
use crate::state::Holder;

/// A directory of the node's, and where it appears inside the node.
pub struct Disk {
    /// Below `DIR/NODE/`.
    pub host: &'static str,
    pub node: &'static str,
}

/// Bind-mounted in this order (`/var/log` before nothing inside it).
pub const DISKS: &[Disk] = &[
    Disk {
        host: "etc-corosync",
        node: "/etc/corosync",
    },
    Disk {
        host: "var-lib-corosync",
        node: "/var/lib/corosync",
    },
    Disk {
        host: "var-lib-pacemaker",
        node: "/var/lib/pacemaker",
    },
    Disk {
        host: "var-lib-pcsd",
        node: "/var/lib/pcsd",
    },
    // All of /var/log, not only pacemaker's and corosync's: PostgreSQL's and
    // pcs's logs must not land on the host either.
    Disk {
        host: "var-log",
        node: "/var/log",
    },
    Disk {
        host: "var-lib-postgresql",
        node: "/var/lib/postgresql",
    },
    // The postgresql agent's state that must survive a reboot (the record
    // of a rewind in progress): one node's must never be another's.
    Disk {
        host: "var-lib-tusk",
        node: "/var/lib/tusk",
    },
];

/// Where a node's things are on the host.
#[derive(Debug, Clone)]
pub struct NodeDir {
    pub name: String,
    pub root: PathBuf,
}

impl NodeDir {
    pub fn new(lab_dir: &Path, name: &str) -> NodeDir {
        NodeDir {
            name: name.to_string(),
            root: lab_dir.join(name),
        }
    }

    pub fn disk(&self, host: &str) -> PathBuf {
        self.root.join(host)
    }

    /// A file under the node's /var/log, read from the host side: this works
    /// when the node is down, which is when its logs matter most.
    pub fn log(&self, relative: &str) -> PathBuf {
        self.root.join("var-log").join(relative)
    }

    pub fn corosync_conf(&self) -> PathBuf {
        self.disk("etc-corosync").join("corosync.conf")
    }

    pub fn cib(&self) -> PathBuf {
        self.disk("var-lib-pacemaker").join("cib/cib.xml")
    }

    /// The init's own output (mount errors and the like).
    pub fn init_log(&self) -> PathBuf {
        self.root.join("init.log")
    }

    /// Created by the init once its mounts are in place.
    pub fn ready_file(&self) -> PathBuf {
        self.root.join("ready")
    }

    /// Creates the node's disks with the owners and modes the Debian packages
    /// give them. Only at `up`: a restart keeps them as they are.
    pub fn create(&self) -> Result<()> {
        let hacluster =
            User::from_name("hacluster")?.context("user hacluster missing (package pacemaker)")?;
        let haclient =
            Group::from_name("haclient")?.context("group haclient missing (package pacemaker)")?;
        let postgres = User::from_name("postgres")?;
        let ha = (Some(hacluster.uid.as_raw()), Some(haclient.gid.as_raw()));

        dir(&self.root, 0o755, (None, None))?;
        for disk in DISKS {
            dir(&self.disk(disk.host), 0o755, (None, None))?;
        }
        fs::set_permissions(self.disk("var-lib-pcsd"), fs::Permissions::from_mode(0o700))?;
        for sub in ["cib", "pengine", "blackbox", "cores"] {
            dir(&self.disk("var-lib-pacemaker").join(sub), 0o750, ha)?;
        }
        dir(&self.log("corosync"), 0o755, (None, None))?;
        dir(&self.log("pacemaker"), 0o770, ha)?;
        if let Some(pg) = postgres {
            let pg_owner = (Some(pg.uid.as_raw()), Some(pg.gid.as_raw()));
            dir(&self.disk("var-lib-postgresql"), 0o755, pg_owner)?;
            // Debian's layout: root:postgres, group-writable, sticky.
            dir(
                &self.log("postgresql"),
                0o1775,
                (None, Some(pg.gid.as_raw())),
            )?;
        }
        Ok(())
    }
}

fn dir(path: &Path, mode: u32, owner: (Option<u32>, Option<u32>)) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    chown(path, owner.0, owner.1).with_context(|| format!("chown {}", path.display()))
}

/// Opens a node log for appending, from the host side.
fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Starts corosync in the node, detached: `setsid -f` forks it away from
/// nsenter, so it becomes a child of the node's init, which reaps it and
/// takes it down with the node.
pub fn start_corosync(holder: &Holder, node: &NodeDir) -> Result<()> {
    let out = append(&node.log("corosync/corosync.out"))?;
    let mut command = namespace::enter(holder, "setsid");
    command
        .args(["-f", "corosync", "-f"])
        .env_clear()
        .env("PATH", NODE_PATH);
    command.stdout(out.try_clone()?).stderr(out);
    process::detach(&mut command);
    namespace::run(&mut command, &format!("starting corosync on {}", node.name)).map(drop)
}

/// Waits until corosync answers on its IPC. pacemakerd started before that
/// retries only a few times, with growing sleeps, so waiting here makes a
/// boot both faster and certain.
pub fn wait_corosync(holder: &Holder, node: &NodeDir) -> Result<()> {
    process::wait_for(
        &format!("corosync on {} to answer", node.name),
        Duration::from_secs(20),
        || {
            if !holder.is_running() {
                anyhow::bail!("{} died while corosync was starting", node.name);
            }
            let status = namespace::enter(holder, "corosync-cmapctl")
                .args(["-g", "runtime.config.totem.token"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()?;
            Ok(status.success())
        },
    )
    .with_context(|| process::tail(&node.log("corosync/corosync.log"), 20).unwrap_or_default())
}

pub fn start_pacemaker(holder: &Holder, node: &NodeDir) -> Result<()> {
    let out = append(&node.log("pacemaker/pacemakerd.out"))?;
    let mut command = namespace::enter(holder, "setsid");
    command
        .args(["-f", "pacemakerd"])
        .env_clear()
        .env("PATH", NODE_PATH)
        // No syslog: there is none in the node, and the host's must not get
        // the lab's messages. The logfile is Pacemaker's default, named here
        // to make it visible.
        .env("PCMK_logfacility", "none")
        .env("PCMK_logfile", "/var/log/pacemaker/pacemaker.log");
    command.stdout(out.try_clone()?).stderr(out);
    process::detach(&mut command);
    namespace::run(
        &mut command,
        &format!("starting pacemakerd on {}", node.name),
    )
    .map(drop)
}
