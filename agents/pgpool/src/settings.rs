//! pgpool.conf, read the way pgpool reads it, for what the agent must know
//! of this pgpool: where it listens, where its pid file and status file
//! are, its backends, and the settings that would make it fight Pacemaker.
//!
//! The file may belong to the service account: it is opened without
//! following a symbolic link, must be a regular file, and is read to a
//! bound (`ocf::fs`); its content never appears in a message.
//!
//! The format, as pgpool-II 4.3's lexer takes it: `name = value` per line,
//! `=` optional, `#` starts a comment outside quotes, a value is a bare word
//! or a single-quoted string in which `''` and `\'` stand for a quote and
//! `\n`, `\t`... for their characters. Names are case-insensitive. When a
//! name is set twice the last one wins (docs/pgpool-facts.md).

use ocf::{OcfError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Debian's pgpool.conf is about 50 KB.
const MAX_SIZE: usize = 1 << 20;

/// pgpool-II 4.3's defaults, as Debian builds it (`strings /usr/sbin/pgpool`
/// and the commented defaults of Debian's pgpool.conf).
pub const DEFAULT_PORT: u16 = 9999;
pub const DEFAULT_PCP_PORT: u16 = 9898;
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PID_FILE: &str = "/var/run/postgresql/pgpool.pid";
pub const DEFAULT_LOGDIR: &str = "/var/log/postgresql";
const DEFAULT_BACKEND_PORT: u16 = 5432;

/// The settings of one pgpool.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

/// One backend as pgpool.conf configures it (`backend_*N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendConf {
    /// N, pgpool's node id.
    pub id: u32,
    /// A host name, an address, or a unix socket directory.
    pub hostname: String,
    pub port: u16,
    /// The `application_name` of this backend's WAL receiver, by which the
    /// primary's `pg_stat_replication` names it; empty when not set.
    pub application_name: String,
}

impl Settings {
    /// Reads pgpool.conf at `path`. Missing on this node: ERR_INSTALLED;
    /// unreadable or not a regular file: ERR_PERM.
    pub fn read(path: &Path) -> Result<Settings> {
        match ocf::fs::read_bounded(path, MAX_SIZE) {
            Ok(Some(f)) if f.truncated => Err(OcfError::configured(format!(
                "{} is larger than {} KiB: not a pgpool.conf",
                path.display(),
                MAX_SIZE / 1024
            ))),
            Ok(Some(f)) => Ok(Settings::parse(&String::from_utf8_lossy(&f.bytes))),
            Ok(None) => Err(OcfError::installed(format!(
                "{} does not exist on this node",
                path.display()
            ))),
            Err(e) => Err(OcfError::perm(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    pub fn parse(text: &str) -> Settings {
        // Inserted in file order: a later setting replaces an earlier one.
        let values = text
            .lines()
            .filter_map(parse_line)
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Settings { values }
    }

    /// The value of `name`, when set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A non-empty string setting.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A boolean setting as pgpool spells it (on/off, true/false, yes/no,
    /// 1/0); `None` when unset, an error when it is something else.
    pub fn flag(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => ocf::params::parse_bool(v).map(Some).ok_or_else(|| {
                OcfError::configured(format!("pgpool.conf: {name} is not a boolean"))
            }),
        }
    }

    fn port_setting(&self, name: &str, default: u16) -> Result<u16> {
        match self.text(name) {
            None => Ok(default),
            Some(v) => {
                v.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    OcfError::configured(format!("pgpool.conf: {name} is not a port"))
                })
            }
        }
    }

    fn dir_setting(&self, name: &str, default: &str) -> PathBuf {
        PathBuf::from(self.text(name).unwrap_or(default))
    }

    /// `port`: with socket_dir it names pgpool's client socket.
    pub fn port(&self) -> Result<u16> {
        self.port_setting("port", DEFAULT_PORT)
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir_setting("socket_dir", DEFAULT_SOCKET_DIR)
    }

    pub fn pcp_port(&self) -> Result<u16> {
        self.port_setting("pcp_port", DEFAULT_PCP_PORT)
    }

    pub fn pcp_socket_dir(&self) -> PathBuf {
        self.dir_setting("pcp_socket_dir", DEFAULT_SOCKET_DIR)
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir_setting("pid_file_name", DEFAULT_PID_FILE)
    }

    /// `backend_clustering_mode`: pgpool-II 4.3's default is streaming
    /// replication.
    pub fn clustering_mode(&self) -> &str {
        self.text("backend_clustering_mode")
            .unwrap_or("streaming_replication")
    }

    /// Where pgpool keeps `pgpool_status`.
    pub fn logdir(&self) -> PathBuf {
        self.dir_setting("logdir", DEFAULT_LOGDIR)
    }

    /// The backends, by node id. pgpool counts a backend as configured
    /// when its backend_hostnameN is set.
    pub fn backends(&self) -> Result<Vec<BackendConf>> {
        let mut backends = Vec::new();
        for (name, value) in &self.values {
            let Some(id) = name.strip_prefix("backend_hostname") else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            backends.push(BackendConf {
                id,
                hostname: value.trim().to_string(),
                port: self.port_setting(&format!("backend_port{id}"), DEFAULT_BACKEND_PORT)?,
                application_name: self
                    .text(&format!("backend_application_name{id}"))
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        backends.sort_by_key(|b| b.id);
        Ok(backends)
    }
}

/// `name [=] value [# comment]`, or `None` for a blank, comment or
/// malformed line (pgpool itself refuses to start on those; the agent
/// only needs the settings it can read).
fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_start();
    let name_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(line.len());
    if name_len == 0 {
        return None;
    }
    let (name, rest) = line.split_at(name_len);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
    let value = if let Some(quoted) = rest.strip_prefix('\'') {
        unquote(quoted)?
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '#')
            .unwrap_or(rest.len());
        rest[..end].to_string()
    };
    Some((name.to_string(), value))
}

/// The body of a single-quoted value up to its closing quote, unescaped;
/// `None` when it is not closed.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                out.push('\'');
            }
            '\'' => return Some(out),
            '\\' => match chars.next()? {
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_pgpool_reads_them() {
        let s = Settings::parse(
            "# a comment\n\
             port = 9999\n\
             socket_dir = '/run/pool' # trailing comment\n\
             pcp_port 9898\n\
             Listen_Addresses = ''\n\
             failover_command = 'echo ''%d'' \\'x\\' # not a comment'\n\
             broken = 'never closed\n\
             = 3\n\
             \n",
        );
        assert_eq!(s.get("port"), Some("9999"));
        assert_eq!(s.socket_dir(), PathBuf::from("/run/pool"));
        assert_eq!(s.get("pcp_port"), Some("9898"));
        assert_eq!(s.get("listen_addresses"), Some(""));
        assert_eq!(s.text("listen_addresses"), None);
        assert_eq!(
            s.get("failover_command"),
            Some("echo '%d' 'x' # not a comment")
        );
        assert_eq!(s.get("broken"), None);
    }

    #[test]
    fn the_last_setting_wins() {
        let s =
            Settings::parse("search_primary_node_timeout = 300\nsearch_primary_node_timeout = 2\n");
        assert_eq!(s.get("search_primary_node_timeout"), Some("2"));
    }

    #[test]
    fn defaults_are_debian_s_build() {
        let s = Settings::parse("");
        assert_eq!(s.port().unwrap(), 9999);
        assert_eq!(s.pcp_port().unwrap(), 9898);
        assert_eq!(s.socket_dir(), PathBuf::from("/var/run/postgresql"));
        assert_eq!(s.pcp_socket_dir(), PathBuf::from("/var/run/postgresql"));
        assert_eq!(
            s.pid_file(),
            PathBuf::from("/var/run/postgresql/pgpool.pid")
        );
        assert_eq!(s.logdir(), PathBuf::from("/var/log/postgresql"));
        assert!(s.backends().unwrap().is_empty());
    }

    #[test]
    fn backends_are_listed_by_node_id() {
        let s = Settings::parse(
            "backend_hostname1 = '/run/s'\n\
             backend_port1 = 5433\n\
             backend_application_name1 = 'node2'\n\
             backend_hostname0 = '10.0.0.1'\n\
             backend_hostname2 = ''\n\
             backend_hostnamex = 'ignored'\n",
        );
        let b = s.backends().unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0],
            BackendConf {
                id: 0,
                hostname: "10.0.0.1".into(),
                port: 5432,
                application_name: String::new()
            }
        );
        assert_eq!((b[1].id, b[1].port), (1, 5433));
        assert_eq!(b[1].application_name, "node2");
    }

    #[test]
    fn bad_numbers_and_booleans_are_configuration_errors() {
        let s = Settings::parse(
            "port = 'x'\nuse_watchdog = perhaps\nbackend_hostname0 = 'h'\nbackend_port0 = 99999\n",
        );
        assert_eq!(s.port().unwrap_err().status(), ocf::Status::ErrConfigured);
        assert_eq!(
            s.flag("use_watchdog").unwrap_err().status(),
            ocf::Status::ErrConfigured
        );
        assert!(s.backends().is_err());
        let s = Settings::parse("use_watchdog = on\nauto_failback = 'off'\n");
        assert_eq!(s.flag("use_watchdog").unwrap(), Some(true));
        assert_eq!(s.flag("auto_failback").unwrap(), Some(false));
        assert_eq!(s.flag("detach_false_primary").unwrap(), None);
    }

    #[test]
    fn an_unsafe_file_is_a_permission_error_and_a_missing_one_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("pgpool.conf");
        assert_eq!(
            Settings::read(&conf).unwrap_err().status(),
            ocf::Status::ErrInstalled
        );
        std::os::unix::fs::symlink("/etc/hostname", &conf).unwrap();
        let e = Settings::read(&conf).unwrap_err();
        assert_eq!(e.status(), ocf::Status::ErrPerm);
        assert!(e.reason().contains("symbolic link"), "{}", e.reason());
    }
}
