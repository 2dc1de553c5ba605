//! Files in directories that the service account can write.
//!
//! The agents run as root, but a pid file, a lock file or a log lives where
//! `postgres` (or pgpool's, slon's account) may replace it with a symlink to
//! any file on the system, a FIFO that blocks a reader forever, or a device.
//! So every such file is opened without following a symlink and without
//! blocking, must turn out to be a regular file (checked on the open
//! descriptor, not on the path), is read to a bound, and is changed through
//! its descriptor only.

use nix::fcntl::OFlag;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// A regular file read to at most a bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounded {
    pub bytes: Vec<u8>,
    /// The file held more than the bound; `bytes` is its beginning.
    pub truncated: bool,
    pub modified: std::time::SystemTime,
}

/// Opens `path` for reading, refusing a symlink, and anything that is not a
/// regular file, without ever blocking on a FIFO. `Ok(None)` when there is
/// no such file.
pub fn open_regular(path: &Path) -> io::Result<Option<(File, Metadata)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "is a symbolic link",
            ))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not a regular file ({})", kind(&meta)),
        ));
    }
    Ok(Some((file, meta)))
}

/// Reads at most `limit` bytes of the regular file at `path` (see
/// [`open_regular`]).
pub fn read_bounded(path: &Path, limit: usize) -> io::Result<Option<Bounded>> {
    let Some((file, meta)) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::with_capacity(limit.min(meta.len() as usize) + 1);
    file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
    let truncated = bytes.len() > limit;
    bytes.truncate(limit);
    Ok(Some(Bounded {
        bytes,
        truncated,
        modified: meta.modified()?,
    }))
}

/// What a log file gained since it was `offset` bytes long, read as
/// [`open_regular`] opens it, at most `limit` bytes. A file that is now
/// shorter was truncated or rotated in between (copytruncate): then it is
/// read from its start.
pub fn read_appended(path: &Path, offset: u64, limit: u64) -> Option<String> {
    use std::io::{Seek, SeekFrom};
    let (mut file, meta) = open_regular(path).ok()??;
    let from = if offset <= meta.len() { offset } else { 0 };
    file.seek(SeekFrom::Start(from)).ok()?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens a file to append to, refusing symlinks, non-regular files and
/// files with other hard links (which could be any file of the system).
/// A file it creates gets `mode` and is given to `owner` through the
/// descriptor; an existing one keeps its owner: root never truncates,
/// chowns or writes what a symlink or a hard link points at.
pub fn open_append_owned(
    path: &Path,
    mode: u32,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> io::Result<File> {
    let flags = (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits();
    // O_EXCL: a symlink in the way fails instead of being followed.
    match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(flags)
        .open(path)
    {
        Ok(file) => {
            if let Some((uid, gid)) = owner {
                nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&file), Some(uid), Some(gid))?;
            }
            return Ok(file);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(flags)
        .open(path)
        .map_err(symlink_error)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("is not a regular file ({})", kind(&meta)),
        ));
    }
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "has other hard links",
        ));
    }
    Ok(file)
}

/// Creates `path` empty (or empties it) without following a symlink or a
/// hard link, as a regular file owned by `owner`.
pub fn create_owned(
    path: &Path,
    mode: u32,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> io::Result<()> {
    let file = open_append_owned(path, mode, owner)?;
    file.set_len(0)?;
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&file), Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Makes sure the directory `dir` exists: creates it with `mode` and gives
/// it to `owner`, for the socket, pid file and log directories a reboot (a
/// tmpfs emptied) or a fresh install may lack. Missing parents are created
/// first, owned by root. Returns whether it created `dir`; an existing
/// directory is left as it is, and a symlink or a file in its place is an
/// error.
pub fn ensure_dir(
    dir: &Path,
    mode: u32,
    owner: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
) -> io::Result<bool> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "is not a directory",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), mode).create(dir)?;
    // The umask took bits away (a setgid directory wants 2775); a file
    // descriptor keeps the fchmod and fchown on this directory, not on what
    // a path might be swapped for.
    let fd = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_DIRECTORY).bits())
        .open(dir)
        .map_err(symlink_error)?;
    fd.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&fd), Some(uid), Some(gid))?;
    }
    Ok(true)
}

/// A program the agent runs: ERR_INSTALLED (missing on this node) when
/// `path` is not an executable regular file.
pub fn require_executable(path: &Path) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let ok = std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(crate::OcfError::installed(format!(
            "{} is missing or not executable",
            path.display()
        )))
    }
}

fn symlink_error(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(nix::libc::ELOOP) {
        io::Error::new(io::ErrorKind::InvalidData, "is a symbolic link")
    } else {
        e
    }
}

fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a plain file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn ensure_dir_creates_the_last_component_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        assert!(ensure_dir(&run, 0o2775, None).unwrap());
        let m = std::fs::metadata(&run).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o2775);
        assert!(!ensure_dir(&run, 0o700, None).unwrap(), "kept as it is");
        // Missing parents are made too (a log directory's /var/log/x/y).
        assert!(ensure_dir(&dir.path().join("a/b"), 0o755, None).unwrap());
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(ensure_dir(&file, 0o755, None).is_err());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&run, &link).unwrap();
        assert!(ensure_dir(&link, 0o755, None).is_err());
    }

    #[test]
    fn a_program_must_be_an_executable_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        for path in [plain.as_path(), dir.path(), &dir.path().join("none")] {
            let e = require_executable(path).unwrap_err();
            assert_eq!(
                e.status(),
                crate::Status::ErrInstalled,
                "{}",
                path.display()
            );
        }
        assert!(require_executable(Path::new("/bin/sh")).is_ok());
    }

    #[test]
    fn reads_a_regular_file_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, "12345").unwrap();
        let b = read_bounded(&f, 3).unwrap().unwrap();
        assert_eq!((b.bytes.as_slice(), b.truncated), (&b"123"[..], true));
        let whole = read_bounded(&f, 5).unwrap().unwrap();
        assert_eq!(
            (whole.bytes.as_slice(), whole.truncated),
            (&b"12345"[..], false)
        );
        assert_eq!(read_bounded(&dir.path().join("none"), 3).unwrap(), None);
    }

    #[test]
    fn refuses_symlinks_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "1").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (path, why) in [
            (&link, "symbolic link"),
            (&fifo, "FIFO"),
            (&dir.path().to_path_buf(), "directory"),
        ] {
            let e = read_bounded(path, 10).unwrap_err();
            assert!(e.to_string().contains(why), "{}: {e}", path.display());
        }
        let e = open_append_owned(&link, 0o600, None).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let hard = dir.path().join("hard");
        std::fs::hard_link(&target, &hard).unwrap();
        let e = create_owned(&hard, 0o600, None).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"1", "target untouched");
    }

    #[test]
    fn appended_text_is_read_from_the_offset_or_from_the_start_after_a_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "old\nnew\n").unwrap();
        assert_eq!(read_appended(&log, 4, 1 << 20).as_deref(), Some("new\n"));
        assert_eq!(
            read_appended(&log, 100, 1 << 20).as_deref(),
            Some("old\nnew\n")
        );
        assert_eq!(read_appended(&log, 0, 3).as_deref(), Some("old"));
        assert_eq!(read_appended(&dir.path().join("none"), 0, 10), None);
    }

    #[test]
    fn created_files_are_owned_through_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("standby.signal");
        std::fs::write(&f, "old").unwrap();
        let me = (nix::unistd::Uid::effective(), nix::unistd::Gid::effective());
        create_owned(&f, 0o600, Some(me)).unwrap();
        let meta = std::fs::metadata(&f).unwrap();
        assert_eq!((meta.len(), meta.uid()), (0, me.0.as_raw()));
    }
}
