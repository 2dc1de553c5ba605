//! This node's database as the agent reaches it: through slon's own
//! conninfo, as the OS user slon runs as, one round trip under the
//! action's deadline (`pgclient`).

use nix::unistd::{Gid, Uid};
use ocf::{Deadline, OcfError, Result};
use std::str::FromStr;

/// libpq's default unix socket directory on Debian, which a conninfo
/// without `host` means for slon (libpq) and must mean for the agent too.
const DEFAULT_HOST: &str = pgclient::passfile::DEFAULT_SOCKET_DIR;

/// The node's database: where and as whom the agent connects.
#[derive(Debug, Clone)]
pub struct NodeDb {
    pub config: pgclient::Config,
    /// The uid and gid the connection is made with (peer authentication
    /// sees the effective ids); `None`: as the agent itself.
    pub as_user: Option<(Uid, Gid)>,
}

impl NodeDb {
    /// The database `conninfo` names, as slon (run as `os_user`) would
    /// reach it: libpq takes a missing user from the OS account and a
    /// missing host as its default socket directory; the agent's client
    /// library would refuse both, so they are filled in the same way.
    ///
    /// The agent's client library reads libpq's `key=value` and URI forms
    /// but not every libpq keyword (`passfile`, `sslcert`, `service`...):
    /// such a conninfo is a configuration error naming the problem.
    ///
    /// Without a password in `conninfo`, the agent sends the one libpq
    /// would find in `os_user`'s `~/.pgpass` (see [`password_from`]): slon
    /// (libpq) reads that file, the agent's client library does not, and a
    /// node reachable by slon must be reachable by the agent's checks.
    pub fn from_conninfo(
        conninfo: &str,
        os_user: &str,
        as_user: Option<(Uid, Gid)>,
    ) -> Result<NodeDb> {
        let mut config = parse_conninfo(conninfo, os_user)?;
        if config.get_password().is_none() {
            if let Some(password) = home_passfile(os_user).and_then(|f| password_from(&f, &config))
            {
                config.password(password);
            }
        }
        Ok(NodeDb { config, as_user })
    }

    /// Runs `sql` (one or more statements) in one round trip; each
    /// statement's rows.
    pub fn query(&self, deadline: &Deadline, sql: &str) -> pgclient::Result<Vec<pgclient::Rows>> {
        pgclient::query(self.config.clone(), self.as_user, deadline, sql)
    }

    /// The database's name, for messages.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("?")
    }
}

/// `~USER/.pgpass` of `os_user`, the home directory from the passwd entry
/// as libpq 15 takes it (slon runs with an environment of its own, without
/// PGPASSFILE; the `passfile` keyword is refused by [`parse_conninfo`]).
/// A missing file is no password, silently, as for libpq; a file libpq
/// would skip (not a regular file, group or world access) is skipped with
/// a warning, and the warning never holds the file's content.
fn home_passfile(os_user: &str) -> Option<pgclient::Passfile> {
    let home = nix::unistd::User::from_name(os_user).ok()??.dir;
    let path = home.join(".pgpass");
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            ocf::warning!("{}: {e}; no password from it", path.display());
            return None;
        }
    };
    // libpq ignores a password file others may read (and says so on
    // slon's stderr): the agent must not log in where slon cannot.
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        ocf::warning!(
            "{} has group or world access: libpq (slon) ignores it, so does the agent",
            path.display()
        );
        return None;
    }
    match pgclient::Passfile::read(&path) {
        Ok(file) => Some(file),
        Err(e) => {
            ocf::warning!("{}: {e}; no password from it", path.display());
            None
        }
    }
}

/// The password libpq would take from `file` for `config`'s first host,
/// port, database and user: the host's name (a unix socket directory, the
/// default one matching `localhost`, see [`pgclient::Passfile`]), or the
/// `hostaddr` when no host is named.
pub fn password_from(file: &pgclient::Passfile, config: &pgclient::Config) -> Option<Vec<u8>> {
    use pgclient::Host;
    let host = match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(Host::Tcp(name)), _) => name.clone(),
        (Some(Host::Unix(dir)), _) => dir.to_str()?.to_string(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    file.password(&host, port, config.get_dbname()?, config.get_user()?)
}

/// `conninfo` as the agent's client library reads it, with libpq's
/// defaults for the user and the host.
pub fn parse_conninfo(conninfo: &str, os_user: &str) -> Result<pgclient::Config> {
    if conninfo.trim().is_empty() {
        return Err(OcfError::configured("parameter conninfo is empty"));
    }
    if conninfo.contains('\0') {
        return Err(OcfError::configured("parameter conninfo holds a NUL byte"));
    }
    // tokio-postgres' error names the keyword or the syntax problem, never
    // a password's value.
    let mut config = pgclient::Config::from_str(conninfo)
        .map_err(|e| OcfError::configured(format!("parameter conninfo cannot be read: {e}")))?;
    if config.get_user().is_none() {
        config.user(os_user);
    }
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        config.host_path(DEFAULT_HOST);
    }
    if config.get_dbname().is_none() {
        let user = config.get_user().unwrap_or(os_user).to_string();
        config.dbname(&user);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres::config::Host;
    use std::path::PathBuf;

    #[test]
    fn libpq_defaults_are_filled_in() {
        let c = parse_conninfo("dbname=app", "postgres").unwrap();
        assert_eq!(c.get_user(), Some("postgres"));
        assert_eq!(
            c.get_hosts(),
            [Host::Unix(PathBuf::from("/var/run/postgresql"))]
        );
        assert_eq!(c.get_dbname(), Some("app"));
        let c = parse_conninfo("host=/run/pg user=slony", "postgres").unwrap();
        assert_eq!(c.get_dbname(), Some("slony"));
        assert_eq!(c.get_hosts(), [Host::Unix(PathBuf::from("/run/pg"))]);
    }

    #[test]
    fn quoted_values_and_uris_are_read_whole() {
        let c = parse_conninfo(r"host='/run/a b' dbname='it\'s' port=5433", "postgres").unwrap();
        assert_eq!(c.get_hosts(), [Host::Unix(PathBuf::from("/run/a b"))]);
        assert_eq!(c.get_dbname(), Some("it's"));
        assert_eq!(c.get_ports(), [5433]);
        let c = parse_conninfo("postgresql://slony@db1:5433/app", "postgres").unwrap();
        assert_eq!(c.get_user(), Some("slony"));
        assert_eq!(c.get_hosts(), [Host::Tcp("db1".into())]);
    }

    #[test]
    fn the_password_is_the_one_libpq_finds_for_the_first_host() {
        let file = pgclient::Passfile::parse(
            b"localhost:5432:app:slony:local\n\
              /run/pg:5433:app:slony:other-dir\n\
              db1:5432:app:slony:db1\n\
              10.0.0.2:5432:*:slony:by-address\n\
              db1:5432:app:*:anyone\n",
        );
        let pw = |conninfo: &str| {
            let c = parse_conninfo(conninfo, "postgres").unwrap();
            password_from(&file, &c).map(|p| String::from_utf8(p).unwrap())
        };
        // No host: the default socket directory, which is localhost.
        assert_eq!(pw("dbname=app user=slony").as_deref(), Some("local"));
        assert_eq!(
            pw("host=/var/run/postgresql dbname=app user=slony").as_deref(),
            Some("local")
        );
        assert_eq!(
            pw("host=/run/pg port=5433 dbname=app user=slony").as_deref(),
            Some("other-dir")
        );
        assert_eq!(pw("host=/run/pg dbname=app user=slony"), None);
        assert_eq!(pw("host=db1 dbname=app user=slony").as_deref(), Some("db1"));
        assert_eq!(
            pw("host=db1,db2 dbname=app user=slony").as_deref(),
            Some("db1")
        );
        assert_eq!(pw("host=db1 dbname=app user=x").as_deref(), Some("anyone"));
        assert_eq!(pw("host=db1 dbname=other user=slony"), None);
        assert_eq!(
            pw("hostaddr=10.0.0.2 dbname=x user=slony").as_deref(),
            Some("by-address")
        );
        // The user defaults to the OS user, the database to the user.
        assert_eq!(pw("host=db1 dbname=app").as_deref(), Some("anyone"));
    }

    #[test]
    fn a_password_in_the_conninfo_is_kept() {
        let c = NodeDb::from_conninfo("dbname=app password=given", "root", None).unwrap();
        assert_eq!(c.config.get_password(), Some(&b"given"[..]));
    }

    #[test]
    fn unreadable_conninfos_are_configuration_errors() {
        for bad in [
            "",
            "  ",
            "dbname",
            "dbname='x",
            "passfile=/x dbname=a",
            "a\0b",
        ] {
            let e = parse_conninfo(bad, "postgres").unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{bad:?}");
            assert!(e.reason().contains("conninfo"), "{}", e.reason());
        }
        let e = parse_conninfo("password=s3cret dbname='x", "postgres").unwrap_err();
        assert!(!e.reason().contains("s3cret"), "{}", e.reason());
    }
}
