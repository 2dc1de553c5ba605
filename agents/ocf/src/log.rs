//! Logging the way Pacemaker operators expect: stderr (pacemaker-execd keeps
//! it), syslog when `HA_LOGFACILITY` names a facility, and the files named by
//! `HA_LOGFILE` and `HA_DEBUGLOG`; `HA_debug=1` adds debug lines.

use std::fmt;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    fn syslog_severity(self) -> u8 {
        match self {
            Level::Error => 3,
            Level::Warning => 4,
            Level::Info => 6,
            Level::Debug => 7,
        }
    }
}

/// Where log lines go; built once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logger {
    /// `postgresql(pg:1)`, as resource-agents tags its lines.
    tag: String,
    facility: Option<u8>,
    logfile: Option<PathBuf>,
    debuglog: Option<PathBuf>,
    debug: bool,
    syslog_socket: PathBuf,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl Logger {
    pub fn from_env(agent: &str, instance: &str) -> Logger {
        Self::parse(agent, instance, |n| std::env::var(n).ok())
    }

    pub fn parse(agent: &str, instance: &str, lookup: impl Fn(&str) -> Option<String>) -> Logger {
        let path = |n: &str| lookup(n).filter(|v| !v.is_empty()).map(PathBuf::from);
        Logger {
            tag: format!("{agent}({instance})"),
            facility: lookup("HA_LOGFACILITY").and_then(|f| facility_code(&f)),
            logfile: path("HA_LOGFILE"),
            debuglog: path("HA_DEBUGLOG"),
            debug: lookup("HA_debug").is_some_and(|v| v.trim() == "1"),
            syslog_socket: PathBuf::from("/dev/log"),
        }
    }

    /// Makes this the logger of the process; the first call wins.
    pub fn install(self) {
        let _ = LOGGER.set(self);
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        eprintln!("{}: {}: {msg}", self.tag, level.label());
        if let Some(facility) = self.facility {
            self.syslog(facility, level, msg);
        }
        let line = format!("{} {} {}: {msg}\n", self.tag, timestamp(), level.label());
        if level != Level::Debug {
            if let Some(f) = &self.logfile {
                append(f, &line);
            }
        }
        if let Some(f) = &self.debuglog {
            if Some(f) != self.logfile.as_ref() || level == Level::Debug {
                append(f, &line);
            }
        }
    }

    fn syslog(&self, facility: u8, level: Level, msg: &str) {
        // An RFC 3164 datagram to /dev/log, as glibc's syslog(3) sends it;
        // no syslog daemon is not an error for an agent.
        let pri = facility * 8 + level.syslog_severity();
        let datagram = format!(
            "<{pri}>{} {}[{}]: {}: {msg}",
            timestamp(),
            self.tag,
            std::process::id(),
            level.label()
        );
        if let Ok(sock) = UnixDatagram::unbound() {
            let _ = sock.send_to(datagram.as_bytes(), &self.syslog_socket);
        }
    }
}

fn append(path: &PathBuf, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Syslog's facility numbers for the names `HA_LOGFACILITY` may hold;
/// `none` (or anything unknown) turns syslog off.
fn facility_code(name: &str) -> Option<u8> {
    Some(match name.trim() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// Local time as syslog writes it: `Nov 22 06:37:56`.
fn timestamp() -> String {
    use nix::libc;
    let mut buf = [0u8; 32];
    // SAFETY: localtime_r and strftime write only into the buffers we pass,
    // and time(NULL) cannot fail.
    let n = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now, &mut tm);
        libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%b %d %T".as_ptr(),
            &tm,
        )
    };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Logs through the process's logger, or to stderr alone before one is installed.
pub fn log(level: Level, args: fmt::Arguments<'_>) {
    let msg = args.to_string();
    match LOGGER.get() {
        Some(l) => l.log(level, &msg),
        None if level != Level::Debug => eprintln!("{}: {msg}", level.label()),
        None => {}
    }
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Error, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! warning {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warning, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Info, format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Debug, format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(pairs: Vec<(&'static str, String)>) -> Logger {
        Logger::parse("postgresql", "pg:1", move |n| {
            pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn files_get_tagged_lines_and_debug_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ha.log");
        let debug = dir.path().join("ha-debug.log");
        let quiet = logger(vec![
            ("HA_LOGFILE", file.display().to_string()),
            ("HA_DEBUGLOG", debug.display().to_string()),
        ]);
        quiet.log(Level::Info, "started");
        quiet.log(Level::Debug, "hidden");
        let loud = logger(vec![
            ("HA_LOGFILE", file.display().to_string()),
            ("HA_debug", "1".into()),
        ]);
        loud.log(Level::Debug, "shown");

        let main = std::fs::read_to_string(&file).unwrap();
        assert!(main.starts_with("postgresql(pg:1) "), "{main}");
        assert!(main.contains(" INFO: started\n"), "{main}");
        assert!(
            !main.contains("hidden") && !main.contains("shown"),
            "{main}"
        );
        let dbg = std::fs::read_to_string(&debug).unwrap();
        assert!(dbg.contains("INFO: started"), "{dbg}");
    }

    #[test]
    fn syslog_facility_names_map_to_codes_and_none_disables() {
        assert_eq!(
            logger(vec![("HA_LOGFACILITY", "daemon".into())]).facility,
            Some(3)
        );
        assert_eq!(
            logger(vec![("HA_LOGFACILITY", "local7".into())]).facility,
            Some(23)
        );
        assert_eq!(
            logger(vec![("HA_LOGFACILITY", "none".into())]).facility,
            None
        );
    }

    #[test]
    fn syslog_receives_an_rfc3164_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut l = logger(vec![("HA_LOGFACILITY", "daemon".into())]);
        l.syslog_socket = path;
        l.log(Level::Warning, "x");
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        let got = String::from_utf8_lossy(&buf[..n]);
        assert!(got.starts_with("<28>"), "{got}");
        let tail = format!("postgresql(pg:1)[{}]: WARNING: x", std::process::id());
        assert!(got.ends_with(&tail), "{got}");
    }
}
