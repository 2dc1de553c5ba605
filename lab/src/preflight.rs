//! What the lab needs from the machine, checked before anything is started,
//! so that a missing package is named instead of surfacing as an obscure
//! failure halfway through `up`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Result;
use nix::unistd::geteuid;

use crate::error::LabError;

/// Program, and the Debian 12 package that ships it.
const PROGRAMS: &[(&str, &str)] = &[
    ("corosync", "corosync"),
    ("corosync-cmapctl", "corosync"),
    ("pacemakerd", "pacemaker"),
    ("crm_mon", "pacemaker-cli-utils"),
    ("stonith_admin", "pacemaker-cli-utils"),
    ("cibadmin", "pacemaker-cli-utils"),
    ("pcs", "pcs"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setsid", "util-linux"),
    ("ip", "iproute2"),
];

const SEARCH_PATH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

pub fn find_program(program: &str) -> Option<PathBuf> {
    SEARCH_PATH
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}

pub fn check() -> Result<()> {
    if !geteuid().is_root() {
        return Err(LabError::NotRoot.into());
    }
    for (program, package) in PROGRAMS {
        if find_program(program).is_none() {
            return Err(LabError::MissingProgram { program, package }.into());
        }
    }
    for kind in ["mnt", "net", "pid", "uts", "ipc"] {
        if !Path::new("/proc/self/ns").join(kind).exists() {
            return Err(LabError::NamespacesUnavailable(format!(
                "the kernel has no {kind} namespaces"
            ))
            .into());
        }
    }
    // The real thing, once: a container may forbid unshare(2) even though
    // the kernel has namespaces.
    let output = Command::new("unshare")
        .args(crate::namespace::UNSHARE_NODE)
        .arg("true")
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(LabError::NamespacesUnavailable(why).into());
    }
    Ok(())
}
