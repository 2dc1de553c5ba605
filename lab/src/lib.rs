//! tusk-lab: a real multi-node Pacemaker cluster on one machine.
//!
//! Each node is a set of namespaces (mount, network, PID, UTS, IPC) held by a
//! small init; corosync 3 (knet) and Pacemaker 2.1 run in every node; the
//! nodes talk over a bridge in a switch namespace that has no way out; a lab
//! fence agent powers nodes off and on through a daemon on the host. See
//! [`Lab`] for the API and `tusk-lab --help` for the command line.
//!
//! ```no_run
//! use tusk_lab::{Lab, LabConfig};
//! // In an integration test of this crate: env!("CARGO_BIN_EXE_tusk-lab").
//! let config = LabConfig::new("/tmp/my-lab").nodes(3).exe("/usr/local/bin/tusk-lab");
//! let lab = Lab::up(&config)?;
//! let _down = lab.down_on_drop();
//! lab.partition("node3")?;
//! # Ok::<(), anyhow::Error>(())
//! ```

pub mod corosync;
pub mod crm_mon;
pub mod demo;
pub mod error;
pub mod fence;
pub mod harness;
pub mod init;
mod lab;
pub mod namespace;
pub mod network;
pub mod node;
pub mod pgpool;
pub mod postgres;
pub mod preflight;
pub mod process;
pub mod slony;
pub mod state;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use crate::crm_mon::ClusterState;
pub use crate::error::LabError;
pub use crate::fence::history::FenceEvent;
pub use crate::lab::{down, Lab, LabConfig, LabStatus, NodeStatus, FENCE_DEVICE};

/// TUSK_LAB_DIR, or /tmp/tusk-lab.
pub fn default_dir() -> PathBuf {
    std::env::var_os("TUSK_LAB_DIR").map_or_else(|| PathBuf::from("/tmp/tusk-lab"), PathBuf::from)
}

/// One line on stderr for what an operator would want to know, with the
/// time of day (UTC), so that it can be lined up with the nodes' logs.
pub fn log(message: &str) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    eprintln!("{h:02}:{m:02}:{s:02} tusk-lab: {message}");
}

/// Labs wait their turn on this machine: tests that bring up labs take this
/// lock first, so that two test binaries do not run two clusters at once on
/// two cores (corosync's token timing should measure the lab, not the
/// scheduler). Two labs *can* run side by side; this is about timing only.
pub fn wait_turn() -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    use anyhow::Context;
    let path = "/tmp/tusk-lab.turn.lock";
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .with_context(|| format!("locking {path}"))
}

/// Ends a lab when dropped, also when a test fails or panics; errors are
/// printed, not raised, because a Drop cannot return them.
#[must_use = "the lab is ended when this guard is dropped"]
pub struct DownOnDrop {
    dir: PathBuf,
}

impl DownOnDrop {
    /// A guard for the lab in `dir`, for code that has no [`Lab`] (a lab
    /// brought up by the command line, say).
    pub fn new(dir: impl Into<PathBuf>) -> DownOnDrop {
        DownOnDrop { dir: dir.into() }
    }
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        if let Err(e) = down(&self.dir) {
            log(&format!("down failed: {e:#}"));
        }
    }
}

impl Lab {
    /// A guard that ends this lab when it goes out of scope.
    pub fn down_on_drop(&self) -> DownOnDrop {
        DownOnDrop::new(self.dir())
    }
}
