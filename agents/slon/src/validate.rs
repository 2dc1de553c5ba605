//! validate-all, and the checks start runs before touching anything.
//!
//! Nothing here asks the database: validate-all also runs where
//! PostgreSQL is not started yet (pcs resource create), and a database
//! that does not answer is no configuration error. What needs the
//! database (the node id, the lock, the sets) is start's.

use crate::config::SlonConfig;
use ocf::{OcfEnv, OcfError, OsUser, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What a successful validation resolved.
#[derive(Debug, Clone)]
pub struct Checked {
    pub user: OsUser,
}

/// Maps each problem to the code Pacemaker acts on: ERR_INSTALLED bans this
/// node only (a binary, the account or a file missing here), ERR_PERM names
/// an ownership or mode problem, ERR_CONFIGURED (from parsing the
/// parameters) a configuration that is wrong on every node.
pub fn check(cfg: &SlonConfig) -> Result<Checked> {
    let user = OsUser::lookup(&cfg.instance.user)?;
    if user.uid.is_root() {
        return Err(OcfError::perm(format!(
            "user {} is root: run slon as the database's OS account (postgres)",
            cfg.instance.user
        )));
    }
    ocf::fs::require_executable(&cfg.instance.slon_binary)?;
    if let Some(file) = &cfg.config_file {
        readable_by(file, &user, "config_file")?;
    }
    if let Some(dir) = cfg.instance.pid_file.parent() {
        writable_dir_if_present(dir, &user, "the pid file's directory")?;
    }
    Ok(Checked { user })
}

/// What a promotable clone needs beyond one slon.
pub fn check_promotable(cfg: &SlonConfig, env: &OcfEnv) -> Result<()> {
    env.check_one_promoted_with_notify()?;
    let origin = &cfg.origin;
    if origin.sets.is_empty() {
        return Err(OcfError::configured(
            "parameter sets is empty: a promotable clone's Promoted role is the origin of \
             the sets it names",
        ));
    }
    if origin.admin_conninfo.len() < 2 {
        return Err(OcfError::configured(
            "parameter admin_conninfo must give every node of the cluster (ID:CONNINFO; \
             ID:CONNINFO...): slonik reaches the nodes through it",
        ));
    }
    ocf::fs::require_executable(&origin.slonik)
}

/// A regular file the user can read (by its mode bits: slon opens it as
/// the user).
fn readable_by(path: &Path, user: &OsUser, what: &str) -> Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OcfError::installed(format!(
                "{what} {} does not exist on this node",
                path.display()
            )))
        }
        Err(e) => {
            return Err(OcfError::perm(format!(
                "cannot stat {what} {}: {e}",
                path.display()
            )))
        }
    };
    if !meta.is_file() {
        return Err(OcfError::configured(format!(
            "{what} {} is not a regular file",
            path.display()
        )));
    }
    if !permits(&meta, user, 0o4) {
        return Err(OcfError::perm(format!(
            "{what} {} (mode {:04o}, uid {}) is not readable by {}",
            path.display(),
            meta.mode() & 0o7777,
            meta.uid(),
            user.name
        )));
    }
    Ok(())
}

/// slon writes its pid file as the user; a missing directory is created by
/// start.
fn writable_dir_if_present(dir: &Path, user: &OsUser, what: &str) -> Result<()> {
    let Ok(meta) = std::fs::metadata(dir) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(OcfError::configured(format!(
            "{what} {} is not a directory",
            dir.display()
        )));
    }
    if !permits(&meta, user, 0o3) {
        return Err(OcfError::perm(format!(
            "{what} {} (mode {:04o}, uid {}) is not writable by {}",
            dir.display(),
            meta.mode() & 0o7777,
            meta.uid(),
            user.name
        )));
    }
    Ok(())
}

/// The permission bits (`0o4` read, `0o2` write, `0o1` execute) the user
/// gets on a file, as the kernel picks the owner, group or other class.
/// Supplementary groups are not looked at: only the primary group counts,
/// which at worst refuses a set-up that would have worked.
pub fn permits(meta: &std::fs::Metadata, user: &OsUser, bits: u32) -> bool {
    let mode = meta.mode();
    let class = if meta.uid() == user.uid.as_raw() {
        (mode >> 6) & 0o7
    } else if meta.gid() == user.gid.as_raw() {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    class & bits == bits
}
