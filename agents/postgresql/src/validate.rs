//! validate-all, and the checks start runs before touching anything.

use crate::config::{data_major_version, PgConfig};
use ocf::{command, Deadline, OcfEnv, OcfError, OsUser, Result};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// What a successful validation resolved.
#[derive(Debug, Clone)]
pub struct Checked {
    pub user: OsUser,
    pub bindir: PathBuf,
}

/// Checks everything start needs, mapping each problem to the code
/// Pacemaker acts on: ERR_INSTALLED bans this node only (a binary, an account
/// or a data directory missing here), ERR_PERM names an ownership or mode
/// problem, ERR_CONFIGURED a configuration that is wrong on every node.
pub fn check(cfg: &PgConfig, deadline: &Deadline) -> Result<Checked> {
    let user = OsUser::lookup(&cfg.pguser)?;
    if user.uid.is_root() {
        return Err(OcfError::perm(format!(
            "pguser {} is root; PostgreSQL refuses to run as root",
            cfg.pguser
        )));
    }
    check_data_directory(cfg, &user)?;
    let data_major = data_major_version(&cfg.pgdata)?;
    let bindir = cfg.bindir()?;
    for program in ["postgres", "pg_ctl"] {
        ocf::fs::require_executable(&bindir.join(program))?;
    }
    let server_major = server_major_version(&user, &bindir, deadline)?;
    if server_major != data_major {
        return Err(OcfError::configured(format!(
            "{} belongs to PostgreSQL {data_major}, but {} is PostgreSQL {server_major}",
            cfg.pgdata.display(),
            bindir.display()
        )));
    }
    if let Some(config) = &cfg.config {
        if !config.is_file() {
            return Err(OcfError::installed(format!(
                "config file {} does not exist on this node",
                config.display()
            )));
        }
    }
    Ok(Checked { user, bindir })
}

fn check_data_directory(cfg: &PgConfig, user: &OsUser) -> Result<()> {
    let pgdata = &cfg.pgdata;
    let meta = match std::fs::metadata(pgdata) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Node-local (an unmounted file system, a node not yet built):
            // ban this node, not the resource everywhere.
            return Err(OcfError::installed(format!(
                "pgdata {} does not exist on this node",
                pgdata.display()
            )));
        }
        Err(e) => {
            return Err(OcfError::perm(format!(
                "cannot stat pgdata {}: {e}",
                pgdata.display()
            )))
        }
    };
    if !meta.is_dir() {
        return Err(OcfError::configured(format!(
            "pgdata {} is not a directory",
            pgdata.display()
        )));
    }
    if meta.uid() != user.uid.as_raw() {
        return Err(OcfError::perm(format!(
            "pgdata {} is owned by uid {}, not by pguser {} (uid {})",
            pgdata.display(),
            meta.uid(),
            user.name,
            user.uid
        )));
    }
    // PostgreSQL itself refuses any other mode than 0700 or 0750.
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o700 != 0o700 || mode & 0o027 != 0 {
        return Err(OcfError::perm(format!(
            "pgdata {} has mode {mode:04o}; PostgreSQL needs 0700 or 0750",
            pgdata.display()
        )));
    }
    Ok(())
}

/// The major version of the server binary: `postgres (PostgreSQL) 15.20
/// (Debian 15.20-0+deb12u1)` is 15; 9.6.24 is 9.6, as PG_VERSION writes it.
fn server_major_version(
    user: &OsUser,
    bindir: &std::path::Path,
    deadline: &Deadline,
) -> Result<String> {
    let postgres = bindir.join("postgres");
    let mut cmd = user.command(&postgres);
    cmd.arg("--version");
    let out = command::run(cmd, deadline)?;
    parse_major(&out.stdout).ok_or_else(|| {
        OcfError::installed(format!(
            "{} --version said {:?}",
            postgres.display(),
            out.last_words()
        ))
    })
}

pub fn parse_major(version: &str) -> Option<String> {
    let number = version
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let digits = |p: &str| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let mut parts = number.split('.').map(digits);
    let major: u32 = parts.next()?.parse().ok()?;
    if major >= 10 {
        Some(major.to_string())
    } else {
        Some(format!("{major}.{}", parts.next()?))
    }
}

/// What a promotable clone needs beyond a single instance.
pub fn check_promotable(cfg: &PgConfig, env: &OcfEnv) -> Result<()> {
    env.check_one_promoted_with_notify()?;
    check_node_name(&env.node_name())?;
    let r = &cfg.replication;
    if r.primary_host.is_empty() {
        return Err(OcfError::configured(
            "parameter primary_host is empty: a promotable clone's standbys need the address \
             of the primary (a floating IP that follows the Promoted role)",
        ));
    }
    if let Some(passfile) = &r.repl_passfile {
        if !passfile.is_file() {
            return Err(OcfError::installed(format!(
                "repl_passfile {} does not exist on this node",
                passfile.display()
            )));
        }
    }
    Ok(())
}

/// The primary knows its standbys by `application_name`, which PostgreSQL
/// cuts to 63 bytes and in which it shows non-ASCII bytes as `?`: a node
/// whose name does not survive that would never get the score the primary
/// means for it.
pub fn check_node_name(node: &str) -> Result<()> {
    if node.len() > 63 || !node.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OcfError::configured(format!(
            "node name {node:?} cannot be a standby's application_name (at most 63 printable \
             ASCII characters): the primary would not recognise it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_node_name, parse_major};

    #[test]
    fn node_names_must_survive_application_name() {
        assert!(check_node_name("node2").is_ok());
        assert!(check_node_name(&"n".repeat(63)).is_ok());
        for bad in ["n".repeat(64), "nœud".to_string(), "node 2".to_string()] {
            let e = check_node_name(&bad).unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{bad}");
        }
    }

    #[test]
    fn major_versions_are_spelled_like_pg_version() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n").as_deref(),
            Some("15")
        );
        assert_eq!(
            parse_major("postgres (PostgreSQL) 9.6.24").as_deref(),
            Some("9.6")
        );
        assert_eq!(
            parse_major("postgres (PostgreSQL) 17beta1").as_deref(),
            Some("17")
        );
        assert_eq!(parse_major("nonsense"), None);
    }
}
