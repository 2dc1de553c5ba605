//! pg_rewind of a diverged node, recorded while it runs.
//!
//! pg_rewind rewrites the data directory in place: interrupted (a timeout,
//! a power loss, a kill), it leaves a directory that is neither the old
//! instance nor a copy of the primary, and that a second pg_rewind does not
//! repair (it starts from the old pg_control, which it writes last, and
//! finds "no rewind required" or copies against a mix). So a record that a
//! rewind is in progress is written, durably, before pg_rewind starts, and
//! removed only once it succeeded; a start that finds it refuses.
//!
//! The record cannot live in the data directory: pg_rewind removes every
//! file there that the source does not have, whatever its name (measured
//! with PostgreSQL 15: a file at the top, in `global/`, in `pg_dynshmem/`,
//! and the names pg_rewind itself excludes from copying, `backup_manifest`
//! or `current_logfiles.tmp`, are all gone after a rewind). It lives in
//! `/var/lib/tusk/RESOURCE/`, a directory of root's that survives reboots,
//! one file per data directory.

use crate::config::PgConfig;
use crate::rejoin::conninfo;
use ocf::{command, error, info, Deadline, OcfError, OsUser, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the agent keeps what must survive a reboot.
const STATE_DIR: &str = "/var/lib/tusk";

/// The record that a pg_rewind of one data directory is in progress.
pub struct RewindMarker {
    path: PathBuf,
}

impl RewindMarker {
    /// The marker of `pgdata` for the resource `resource`.
    pub fn new(resource: &str, pgdata: &Path) -> RewindMarker {
        Self::in_dir(&Path::new(STATE_DIR).join(resource), pgdata)
    }

    pub fn in_dir(dir: &Path, pgdata: &Path) -> RewindMarker {
        RewindMarker {
            path: dir.join(format!("rewind-{:016x}", fnv1a(pgdata))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the marker says (its first line), when a rewind was left
    /// unfinished.
    pub fn found(&self) -> Option<String> {
        match ocf::fs::read_bounded(&self.path, 4096) {
            Ok(Some(f)) => Some(
                String::from_utf8_lossy(&f.bytes)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            Ok(None) => None,
            // Something is there that is not our marker: fail closed.
            Err(e) => Some(format!("unreadable: {e}")),
        }
    }

    /// Records, on disk, that a rewind of `pgdata` from `source` begins.
    pub fn begin(&self, pgdata: &Path, source: &str) -> std::io::Result<()> {
        let dir = self.path.parent().expect("the marker is in a directory");
        std::fs::create_dir_all(dir)?;
        let mut file = ocf::fs::open_append_owned(&self.path, 0o600, None)?;
        file.set_len(0)?;
        writeln!(
            file,
            "pg_rewind of {} from {source} started at {} (seconds since 1970)",
            pgdata.display(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        )?;
        // A power loss right after pg_rewind started must find it.
        file.sync_all()?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// The rewind finished: the data directory is a whole copy again.
    pub fn finish(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// FNV-1a: a stable file name for a data directory path of any length.
pub(crate) fn fnv1a(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Why start refuses a data directory whose rewind was interrupted.
pub fn refusal(marker: &RewindMarker, pgdata: &Path) -> Option<OcfError> {
    let said = marker.found()?;
    error!(
        "{said}, and never finished: {} may be half rewritten, and neither starting it nor \
         another pg_rewind is safe. Rebuild it from the primary (pg_basebackup), then remove \
         {} and clean up the resource",
        pgdata.display(),
        marker.path.display()
    );
    // Pacemaker keeps 128 characters: the marker's path, which says what
    // to remove, with the words around it short.
    Some(OcfError::generic(format!(
        "pg_rewind was interrupted here: rebuild pgdata, then rm {}",
        marker.path.display()
    )))
}

/// How a pg_rewind that did not succeed left the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Left {
    /// It failed before it wrote anything: the directory is as it was.
    Untouched,
    /// It may have written: the marker stays.
    Changed,
}

/// pg_rewind `--progress` says how much it will copy ("need to copy 52 MB
/// (total source directory size is 80 MB)") just before it writes to the
/// target; a failure before that line changed nothing. Without its
/// output (killed at the deadline), nobody knows.
pub fn left_by(stderr: Option<&str>) -> Left {
    match stderr {
        Some(text) if !text.contains("need to copy") => Left::Untouched,
        _ => Left::Changed,
    }
}

/// Rewinds `cfg.pgdata` from the primary with the time left until
/// `deadline`, recorded by `marker` while it runs.
pub fn rewind(
    cfg: &PgConfig,
    user: &OsUser,
    bindir: &Path,
    marker: &RewindMarker,
    deadline: &Deadline,
) -> Result<()> {
    let source = &cfg.replication.primary_host;
    marker.begin(&cfg.pgdata, source).map_err(|e| {
        OcfError::generic(format!(
            "cannot record the rewind in {}: {e}",
            marker.path.display()
        ))
    })?;
    info!(
        "pg_rewind from {source}: {}s left of start's timeout",
        deadline.remaining().as_secs()
    );
    let started = Instant::now();
    let mut cmd = command(cfg, user, bindir);
    cmd.arg("--progress");
    let out = command::run(cmd, deadline);
    let taken = started.elapsed().as_secs_f64();
    let out = match out {
        Ok(out) if out.status.success() => {
            info!("pg_rewind: {} ({taken:.1}s)", out.last_words());
            marker.finish().map_err(|e| {
                OcfError::generic(format!(
                    "pg_rewind succeeded, but {} could not be removed: {e}",
                    marker.path.display()
                ))
            })?;
            return Ok(());
        }
        Ok(out) => out,
        Err(e) => {
            error!(
                "pg_rewind did not finish within start's timeout ({taken:.1}s): {}; size the \
                 start timeout for it (see the rewind parameter)",
                e.reason()
            );
            return Err(refusal(marker, &cfg.pgdata).unwrap_or(e));
        }
    };
    let said = out
        .stderr
        .lines()
        .flat_map(|l| l.split('\r'))
        .find(|l| l.contains("error:") || l.contains("FATAL"))
        .unwrap_or_else(|| out.last_words())
        .to_string();
    error!("pg_rewind failed after {taken:.1}s:\n{}", out.stderr.trim());
    if left_by(Some(&out.stderr)) == Left::Changed {
        return Err(refusal(marker, &cfg.pgdata).expect("the marker was written"));
    }
    marker
        .finish()
        .map_err(|e| OcfError::generic(format!("cannot remove {}: {e}", marker.path.display())))?;
    // "could not find previous WAL record": this node recycled the WAL
    // back to the last checkpoint before the fork.
    Err(OcfError::generic(format!(
        "pg_rewind failed: {said} (it needs this node's WAL back to the last checkpoint \
         before the fork: keep it with wal_keep_size, or give restore_command an archive)"
    )))
}

pub fn command(cfg: &PgConfig, user: &OsUser, bindir: &Path) -> std::process::Command {
    let mut cmd = user.command(bindir.join("pg_rewind"));
    cmd.arg(format!("--target-pgdata={}", cfg.pgdata.display()))
        .arg(format!("--source-server={}", conninfo(cfg, None, true)));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_written_durably_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let marker = RewindMarker::in_dir(&dir.path().join("pg"), Path::new("/srv/pg"));
        assert_eq!(marker.found(), None);
        marker.begin(Path::new("/srv/pg"), "10.0.0.100").unwrap();
        let said = marker.found().unwrap();
        assert!(
            said.starts_with("pg_rewind of /srv/pg from 10.0.0.100 started at"),
            "{said}"
        );
        let refused = refusal(&marker, Path::new("/srv/pg")).unwrap();
        assert!(refused.reason().len() <= 128, "{}", refused.reason());
        assert!(refused.reason().contains(marker.path().to_str().unwrap()));
        marker.finish().unwrap();
        assert_eq!(marker.found(), None);
        assert!(refusal(&marker, Path::new("/srv/pg")).is_none());
        marker.finish().unwrap();
        // One marker per data directory.
        let other = RewindMarker::in_dir(&dir.path().join("pg"), Path::new("/srv/pg2"));
        assert_ne!(other.path(), marker.path());
    }

    #[test]
    fn a_rewind_that_failed_before_writing_left_the_directory_untouched() {
        let before = "pg_rewind: servers diverged at WAL location 0/3000000 on timeline 2\n\
                      pg_rewind: error: could not find previous WAL record at 0/2FFFF00\n";
        assert_eq!(left_by(Some(before)), Left::Untouched);
        let during = "pg_rewind: need to copy 52 MB (total source directory size is 80 MB)\n\
                      53248/53248 kB (100%) copied\rpg_rewind: error: could not write file\n";
        assert_eq!(left_by(Some(during)), Left::Changed);
        assert_eq!(left_by(None), Left::Changed, "killed: nobody knows");
    }
}
