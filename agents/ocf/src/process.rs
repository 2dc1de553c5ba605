//! PID validation (DESIGN.md failure 1): a PID proves nothing by itself.
//!
//! A pid file names a process; before an agent believes that process is its
//! service it looks at what the process is, through /proc alone (no fork):
//! its executable, its working directory or command line, its owner, its
//! start time against the pid file's mtime, and whether it is a zombie.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one process is, as /proc tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    pub pid: i32,
    /// `R`, `S`, `Z`... from /proc/PID/stat.
    pub state: char,
    pub ppid: i32,
    pub uid: u32,
    pub gid: u32,
    /// Wall-clock start time: boot time plus `start_ticks`. Boot time moves
    /// when the clock is stepped, so compare `start_ticks` to tell whether a
    /// PID still names the same process.
    pub started: SystemTime,
    /// Clock ticks after boot; with the PID it names one process for the
    /// machine's whole uptime.
    pub start_ticks: u64,
    /// The executable; a binary replaced by a package upgrade still counts
    /// (the kernel's ` (deleted)` suffix is removed).
    pub exe: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub cmdline: Vec<OsString>,
}

impl ProcInfo {
    /// Reads /proc/PID; `None` when there is no such process.
    pub fn read(pid: i32) -> io::Result<Option<ProcInfo>> {
        Self::read_from(Path::new("/proc"), pid)
    }

    fn read_from(proc: &Path, pid: i32) -> io::Result<Option<ProcInfo>> {
        if pid <= 0 {
            return Ok(None);
        }
        let dir = proc.join(pid.to_string());
        let stat = match std::fs::read_to_string(dir.join("stat")) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // ESRCH: the process exited while we read it.
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Stat {
            state,
            ppid,
            start_ticks,
        } = Stat::parse(&stat).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable /proc/{pid}/stat"),
            )
        })?;
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let uid = parse_id(&status, "Uid:").unwrap_or(u32::MAX);
        let gid = parse_id(&status, "Gid:").unwrap_or(u32::MAX);
        let link = |name: &str| std::fs::read_link(dir.join(name)).ok().map(strip_deleted);
        let cmdline = read_cmdline(&dir);
        Ok(Some(ProcInfo {
            pid,
            state,
            ppid,
            uid,
            gid,
            started: boot_time(proc)? + ticks_to_duration(start_ticks),
            start_ticks,
            exe: link("exe"),
            cwd: link("cwd"),
            cmdline,
        }))
    }

    /// A zombie or dead task has exited: it passes `kill -0` but runs nothing.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// What a process must be to count as the service.
#[derive(Debug, Clone, Default)]
pub struct Expected<'a> {
    /// The service's executable (canonicalised before comparing).
    pub exe: Option<&'a Path>,
    /// The executable's file name, in whatever directory: a postmaster of
    /// this data directory started from another bindir is still one.
    pub exe_name: Option<&'a std::ffi::OsStr>,
    /// The working directory: PostgreSQL's postmaster and backends chdir to
    /// their data directory.
    pub cwd: Option<&'a Path>,
    /// An argument the command line must hold, such as a config file.
    pub arg: Option<&'a std::ffi::OsStr>,
    pub uid: Option<u32>,
}

/// Signals `p` only if its PID still names the same process (same start
/// time, not exited): between the check and the signal the PID might have
/// been reused. Returns whether the signal was sent.
pub fn signal_if_same(p: &ProcInfo, signal: nix::sys::signal::Signal) -> bool {
    is_same_running(p) && nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), signal).is_ok()
}

/// Whether the process `p` names still runs (its PID was not reused).
pub fn is_same_running(p: &ProcInfo) -> bool {
    matches!(Stat::read(p.pid), Ok(Some(now)) if now.start_ticks == p.start_ticks
        && !matches!(now.state, 'Z' | 'X' | 'x'))
}

/// The verdict on one PID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidCheck {
    /// The process is the service.
    Ours(ProcInfo),
    /// No process has this PID.
    Dead,
    /// The process has exited and waits to be reaped.
    Zombie,
    /// A live process that is not the service; the reason says why.
    Foreign(String),
}

/// Decides whether `pid` is the service described by `expected`. With
/// `written`, the pid file's mtime, a process that started after the file was
/// written cannot be the one that wrote it; that test trusts the wall clock
/// (a clock stepped forward makes every process look younger), so a service
/// whose process `expected` already identifies without doubt passes `None`.
pub fn check_pid(
    pid: i32,
    expected: &Expected<'_>,
    written: Option<SystemTime>,
) -> io::Result<PidCheck> {
    match ProcInfo::read(pid)? {
        None => Ok(PidCheck::Dead),
        Some(info) => Ok(judge(info, expected, written)),
    }
}

/// The pure part of [`check_pid`], for a process already read.
pub fn judge(info: ProcInfo, expected: &Expected<'_>, written: Option<SystemTime>) -> PidCheck {
    if info.has_exited() {
        return PidCheck::Zombie;
    }
    if let Some(reason) = mismatch(&info, expected) {
        return PidCheck::Foreign(format!("PID {} {reason}", info.pid));
    }
    if let Some(written) = written {
        // /proc's boot time has one-second resolution; allow for it.
        if info.started > written + Duration::from_secs(2) {
            return PidCheck::Foreign(format!(
                "PID {} started after the pid file was written",
                info.pid
            ));
        }
    }
    PidCheck::Ours(info)
}

/// Why `info` is not the expected process, or `None` when it matches.
pub fn mismatch(info: &ProcInfo, expected: &Expected<'_>) -> Option<String> {
    if let Some(uid) = expected.uid {
        if info.uid != uid {
            return Some(format!("belongs to uid {}, not {uid}", info.uid));
        }
    }
    if let Some(want) = expected.exe {
        let want = canonical(want);
        match &info.exe {
            Some(exe) if *exe == want => {}
            Some(exe) => return Some(format!("runs {}, not {}", exe.display(), want.display())),
            None => return Some("has an unreadable executable".to_string()),
        }
    }
    if let Some(want) = expected.exe_name {
        match info.exe.as_deref().and_then(Path::file_name) {
            Some(name) if name == want => {}
            Some(name) => {
                return Some(format!(
                    "runs {}, not {}",
                    name.to_string_lossy(),
                    want.to_string_lossy()
                ))
            }
            None => return Some("has an unreadable executable".to_string()),
        }
    }
    if let Some(want) = expected.cwd {
        let want = canonical(want);
        match &info.cwd {
            Some(cwd) if *cwd == want => {}
            Some(cwd) => {
                return Some(format!(
                    "works in {}, not {}",
                    cwd.display(),
                    want.display()
                ))
            }
            None => return Some("has an unreadable working directory".to_string()),
        }
    }
    if let Some(arg) = expected.arg {
        if !info.cmdline.iter().any(|a| a == arg) {
            return Some(format!("was not started with {}", arg.to_string_lossy()));
        }
    }
    None
}

/// Every live process that matches `expected`, by a scan of /proc: used to
/// find what is left of a service without its main process (orphaned
/// PostgreSQL backends, for instance).
pub fn find_processes(expected: &Expected<'_>) -> io::Result<Vec<ProcInfo>> {
    let mut found = Vec::new();
    for pid in all_pids()? {
        // One readlink rules out almost every process before the full read.
        if let Some(name) = expected.exe_name {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map(strip_deleted);
            if !exe.is_ok_and(|e| e.file_name() == Some(name)) {
                continue;
            }
        }
        if let Ok(Some(info)) = ProcInfo::read(pid) {
            if !info.has_exited() && mismatch(&info, expected).is_none() {
                found.push(info);
            }
        }
    }
    found.sort_by_key(|p| p.pid);
    Ok(found)
}

/// The contents of a pid file, read without trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFile {
    Missing,
    /// Empty, or not starting with a positive number; says what it holds
    /// (never the content itself: the service account writes it).
    Garbage(String),
    Pid {
        pid: i32,
        written: SystemTime,
    },
}

/// The most a pid file is read: postmaster.pid is about 100 bytes.
const PID_FILE_LIMIT: usize = 4096;

/// Reads a pid file whose first token is a PID, ended by a newline (the
/// postmaster.pid, httpd and slon convention), a NUL byte (pgpool writes
/// the PID and a NUL) or the end of the file. The file is opened as
/// [`crate::fs::open_regular`] does: a symlink, a FIFO or a device is an
/// error, as is an unreadable file: guessing would mean either a second
/// instance or a refused start.
pub fn read_pid_file(path: &Path) -> io::Result<PidFile> {
    let Some(file) = crate::fs::read_bounded(path, PID_FILE_LIMIT)? else {
        return Ok(PidFile::Missing);
    };
    Ok(parse_pid_file(&file.bytes, file.truncated)
        .map(|pid| PidFile::Pid {
            pid,
            written: file.modified,
        })
        .unwrap_or_else(PidFile::Garbage))
}

/// The PID at the start of a pid file, or what is wrong with it.
pub fn parse_pid_file(bytes: &[u8], truncated: bool) -> std::result::Result<i32, String> {
    let first = bytes
        .split(|b| *b == b'\n' || *b == 0)
        .next()
        .unwrap_or_default();
    let token = std::str::from_utf8(first).map(str::trim);
    match token.map(str::parse::<i32>) {
        Ok(Ok(pid)) if pid > 0 => Ok(pid),
        _ if bytes.is_empty() => Err("it is empty".to_string()),
        _ if truncated => Err(format!("it holds no PID (over {PID_FILE_LIMIT} bytes)")),
        _ => Err(format!("it holds no PID ({} bytes)", bytes.len())),
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn strip_deleted(p: PathBuf) -> PathBuf {
    match p.as_os_str().as_bytes().strip_suffix(b" (deleted)") {
        Some(b) => PathBuf::from(std::ffi::OsStr::from_bytes(b)),
        None => p,
    }
}

/// The fields of /proc/PID/stat that say what a process is doing and, with
/// the PID, name it for the machine's whole uptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `Z`...
    pub state: char,
    pub ppid: i32,
    /// The start time, in clock ticks after boot.
    pub start_ticks: u64,
}

impl Stat {
    /// `None` when there is no such process.
    pub fn read(pid: i32) -> io::Result<Option<Stat>> {
        if pid <= 0 {
            return Ok(None);
        }
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(line) => Ok(Stat::parse(&line)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The command name may hold spaces and parentheses, so the fields are
    /// counted from the last `)`.
    pub fn parse(line: &str) -> Option<Stat> {
        let rest = &line[line.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] is field 3 (state) of proc(5); starttime is field 22.
        Some(Stat {
            state: fields.first()?.chars().next()?,
            ppid: fields.get(1)?.parse().ok()?,
            start_ticks: fields.get(19)?.parse().ok()?,
        })
    }
}

/// A unix socket as the kernel lists it in /proc/net/unix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocket {
    /// The socket's inode: /proc/PID/fd shows a descriptor on it as
    /// `socket:[INODE]`.
    pub inode: u64,
    /// The path it was bound at. The kernel keeps it after the file is
    /// unlinked or replaced, so a socket that no path reaches any more
    /// (a listener orphaned beside a newer daemon) is still found by it.
    pub path: PathBuf,
    /// A stream socket accepting connections.
    pub listening: bool,
}

/// /proc/net/unix's flag for a socket that accepts connections
/// (`__SO_ACCEPTCON`).
const SO_ACCEPTCON: u32 = 0x0001_0000;

/// The bound sockets of a /proc/net/unix table: `Num RefCount Protocol
/// Flags Type St Inode Path`, the path being the rest of the line (it may
/// hold spaces) and absent for an unbound socket.
pub fn parse_unix_sockets(table: &str) -> Vec<UnixSocket> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let mut rest = row.trim_start();
            let mut fields = Vec::with_capacity(7);
            for _ in 0..7 {
                let end = rest.find(char::is_whitespace)?;
                fields.push(&rest[..end]);
                rest = rest[end..].trim_start();
            }
            if rest.is_empty() {
                return None;
            }
            let flags = u32::from_str_radix(fields[3], 16).ok()?;
            Some(UnixSocket {
                inode: fields[6].parse().ok()?,
                path: PathBuf::from(rest),
                listening: flags & SO_ACCEPTCON != 0,
            })
        })
        .collect()
}

/// The unix sockets bound at any of `paths` in this network namespace.
pub fn unix_sockets_at(paths: &[&Path]) -> io::Result<Vec<UnixSocket>> {
    let table = std::fs::read_to_string("/proc/net/unix")?;
    Ok(parse_unix_sockets(&table)
        .into_iter()
        .filter(|s| paths.iter().any(|p| s.path == *p))
        .collect())
}

/// The inodes of the sockets process `pid` holds open; empty for a
/// process that is gone or whose descriptors cannot be read.
pub fn socket_inodes(pid: i32) -> std::collections::BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Default::default();
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Whether process `pid` holds an open descriptor on any of `inodes`.
pub fn holds_any_socket(pid: i32, inodes: &std::collections::BTreeSet<u64>) -> bool {
    !inodes.is_empty() && !socket_inodes(pid).is_disjoint(inodes)
}

/// Every PID visible in this PID namespace.
pub fn all_pids() -> io::Result<Vec<i32>> {
    Ok(std::fs::read_dir("/proc")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// The arguments a process was started with (empty for a kernel thread or
/// a process that is gone).
pub fn cmdline(pid: i32) -> Vec<OsString> {
    read_cmdline(&Path::new("/proc").join(pid.to_string()))
}

fn read_cmdline(dir: &Path) -> Vec<OsString> {
    std::fs::read(dir.join("cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The real id from a `Uid:` or `Gid:` line of /proc/PID/status.
fn parse_id(status: &str, field: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn boot_time(proc: &Path) -> io::Result<SystemTime> {
    let stat = std::fs::read_to_string(proc.join("stat"))?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_sockets_are_read_with_their_paths_and_listening_state() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/pool/.s.PGSQL.9999\n\
            0000000000000000: 00000003 00000000 00000000 0001 03 4243 /run/pool/.s.PGSQL.9999\n\
            0000000000000000: 00000002 00000000 00000000 0001 03 4244\n\
            0000000000000000: 00000002 00000000 00010000 0001 01 4245 /run/a dir/with spaces\n\
            garbage\n";
        let sockets = parse_unix_sockets(table);
        assert_eq!(sockets.len(), 3, "{sockets:?}");
        assert_eq!(
            sockets[0],
            UnixSocket {
                inode: 4242,
                path: PathBuf::from("/run/pool/.s.PGSQL.9999"),
                listening: true
            }
        );
        assert!(!sockets[1].listening, "an accepted connection");
        assert_eq!(sockets[2].path, PathBuf::from("/run/a dir/with spaces"));
    }

    #[test]
    fn a_process_holding_a_socket_bound_at_a_path_is_found_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.9999");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let found = unix_sockets_at(&[&path, Path::new("/nonexistent")]).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].listening);
        let inodes = found.iter().map(|s| s.inode).collect();
        assert!(holds_any_socket(std::process::id() as i32, &inodes));
        let mut other = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        assert!(!holds_any_socket(other.id() as i32, &inodes));
        let _ = other.kill();
        let _ = other.wait();
        assert!(!holds_any_socket(
            std::process::id() as i32,
            &Default::default()
        ));
        // The kernel keeps the path of a socket whose file is gone.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(unix_sockets_at(&[&path]).unwrap().len(), 1);
        drop(listener);
        assert!(unix_sockets_at(&[&path]).unwrap().is_empty());
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (post gres) (x)) S 1 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        let want = Stat {
            state: 'S',
            ppid: 1,
            start_ticks: 98765,
        };
        assert_eq!(Stat::parse(stat), Some(want));
        assert_eq!(Stat::parse("garbage"), None);
    }

    #[test]
    fn deleted_executables_still_compare_equal() {
        let p = strip_deleted(PathBuf::from(
            "/usr/lib/postgresql/15/bin/postgres (deleted)",
        ));
        assert_eq!(p, PathBuf::from("/usr/lib/postgresql/15/bin/postgres"));
    }

    fn info() -> ProcInfo {
        ProcInfo {
            pid: 100,
            state: 'S',
            ppid: 1,
            uid: 26,
            gid: 26,
            started: UNIX_EPOCH + Duration::from_secs(1_000),
            start_ticks: 100_000,
            exe: Some(PathBuf::from("/nonexistent/bin/postgres")),
            cwd: Some(PathBuf::from("/nonexistent/data")),
            cmdline: vec!["postgres".into(), "-D".into(), "/nonexistent/data".into()],
        }
    }

    fn pg() -> Expected<'static> {
        Expected {
            exe: Some(Path::new("/nonexistent/bin/postgres")),
            exe_name: Some(std::ffi::OsStr::new("postgres")),
            cwd: Some(Path::new("/nonexistent/data")),
            arg: Some(std::ffi::OsStr::new("/nonexistent/data")),
            uid: Some(26),
        }
    }

    #[test]
    fn a_matching_process_started_before_its_pid_file_is_ours() {
        let written = UNIX_EPOCH + Duration::from_secs(1_001);
        assert!(matches!(
            judge(info(), &pg(), Some(written)),
            PidCheck::Ours(_)
        ));
    }

    #[test]
    fn a_process_younger_than_the_pid_file_is_foreign() {
        let written = UNIX_EPOCH + Duration::from_secs(900);
        let v = judge(info(), &pg(), Some(written));
        assert_eq!(
            v,
            PidCheck::Foreign("PID 100 started after the pid file was written".into())
        );
    }

    #[test]
    fn each_mismatch_is_named() {
        let mut other_dir = info();
        other_dir.cwd = Some(PathBuf::from("/srv/other"));
        assert_eq!(
            judge(other_dir, &pg(), None),
            PidCheck::Foreign("PID 100 works in /srv/other, not /nonexistent/data".into())
        );
        let mut other_user = info();
        other_user.uid = 0;
        assert_eq!(
            judge(other_user, &pg(), None),
            PidCheck::Foreign("PID 100 belongs to uid 0, not 26".into())
        );
        let mut other_exe = info();
        other_exe.exe = Some(PathBuf::from("/usr/bin/sleep"));
        assert!(
            matches!(judge(other_exe, &pg(), None), PidCheck::Foreign(r) if r.contains("runs /usr/bin/sleep"))
        );
        let mut other_args = info();
        other_args.cmdline = vec!["postgres".into()];
        assert!(
            matches!(judge(other_args, &pg(), None), PidCheck::Foreign(r) if r.contains("not started with"))
        );
    }

    #[test]
    fn a_zombie_is_not_running() {
        let mut z = info();
        z.state = 'Z';
        assert_eq!(judge(z, &pg(), None), PidCheck::Zombie);
    }
}
