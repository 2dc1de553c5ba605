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
    pub fn from_conninfo(
        conninfo: &str,
        os_user: &str,
        as_user: Option<(Uid, Gid)>,
    ) -> Result<NodeDb> {
        let config = parse_conninfo(conninfo, os_user)?;
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
