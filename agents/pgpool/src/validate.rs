//! validate-all, and the checks start runs before touching anything.
//!
//! Each problem gets the code Pacemaker acts on: ERR_INSTALLED (5) for what
//! is missing on this node (the binary, a file, the account), ERR_PERM (4)
//! for a file the agent may not or must not read, ERR_CONFIGURED (6) for a
//! configuration wrong on every node, among them the pgpool settings that
//! would make pgpool fight Pacemaker.

use crate::config::{Follow, Layout, PoolConfig};
use crate::pcp::{md5_hex, Endpoint};
use crate::session::Pcp;
use crate::settings::{BackendConf, Settings};
use ocf::{warning, OcfError, OsUser, Result};
use std::path::Path;

/// What a successful validation read and resolved.
pub struct Checked {
    pub settings: Settings,
    pub layout: Layout,
    pub backends: Vec<BackendConf>,
    pub user: OsUser,
    pub pcp: Pcp,
}

pub fn check(cfg: &PoolConfig) -> Result<Checked> {
    ocf::fs::require_executable(&cfg.pgpool)?;
    let settings = Settings::read(&cfg.config)?;
    read_small_file(&cfg.hba_config, "hba_config")?;
    let pcp_conf = read_small_file(&cfg.pcp_config, "pcp_config")?;
    let user = OsUser::lookup(&cfg.user)?;
    for warning in conflicts(&settings, cfg)? {
        warning!("{warning}");
    }
    let layout = Layout::resolve(cfg, &settings)?;
    let backends = settings.backends()?;
    if backends.is_empty() {
        return Err(OcfError::configured(format!(
            "{} configures no backend (backend_hostname0...)",
            cfg.config.display()
        )));
    }
    let pcp = pcp(cfg, &layout)?;
    match pcp_conf_hash(&pcp_conf, &cfg.pcp_user) {
        None => {
            return Err(OcfError::configured(format!(
                "{} has no line for pcp_user {}",
                cfg.pcp_config.display(),
                cfg.pcp_user
            )))
        }
        Some(hash) if !hash.eq_ignore_ascii_case(&md5_hex(pcp.password().as_bytes())) => {
            return Err(OcfError::configured(format!(
                "the password pcp_passfile {} gives pcp_user {} is not the one {} holds",
                cfg.pcp_passfile.display(),
                cfg.pcp_user,
                cfg.pcp_config.display()
            )))
        }
        Some(_) => {}
    }
    if let Some(passfile) = &cfg.db_passfile {
        db_passwords(passfile)?;
    }
    Ok(Checked {
        settings,
        layout,
        backends,
        user,
        pcp,
    })
}

/// In slony mode validate-all also asks the backends for the sets' origin.
/// Sets of one cluster with different origins leave pgpool no backend that
/// takes every write (it sends all writes to one). That is warned about, not
/// refused: the origins live in the databases, not in the configuration,
/// they split for a while whenever an operator moves one set after
/// another, and ERR_CONFIGURED would make Pacemaker stop pgpool on every
/// node for a state that the next MOVE SET ends. While it lasts, the
/// monitor leaves pgpool's view as it is and says why.
pub fn slony_origin(cfg: &PoolConfig, checked: &Checked, deadline: &ocf::Deadline) -> Result<()> {
    let Ok(Follow::Slony(cluster)) = cfg.follow(&checked.settings) else {
        return Ok(());
    };
    if !cfg.reconcile {
        return Ok(());
    }
    let asker = crate::start::asker(cfg, (checked.user.uid, checked.user.gid))?;
    let view = asker.observe_slony(&checked.backends, &cluster, deadline);
    match crate::slony::origin(&view) {
        crate::slony::Origin::At { backend, node } => {
            ocf::info!("the origin of every set of Slony cluster {cluster} is node {backend} (Slony node {node})")
        }
        crate::slony::Origin::Unsure(why) => warning!(
            "the origin of the sets of Slony cluster {cluster} cannot be told now: {why}; \
             while this lasts the monitor leaves pgpool's view of the backends as it is"
        ),
    }
    Ok(())
}

/// A configuration file, read safely: missing is ERR_INSTALLED (this
/// node), unreadable or not a regular file ERR_PERM.
fn read_small_file(path: &Path, param: &str) -> Result<String> {
    match ocf::fs::read_bounded(path, 1 << 20) {
        Ok(Some(f)) => Ok(String::from_utf8_lossy(&f.bytes).into_owned()),
        Ok(None) => Err(OcfError::installed(format!(
            "{param} {} does not exist on this node",
            path.display()
        ))),
        Err(e) => Err(OcfError::perm(format!(
            "cannot read {param} {}: {e}",
            path.display()
        ))),
    }
}

/// pcp.conf's md5 of `user`'s password (`user:md5hex` lines).
pub fn pcp_conf_hash<'a>(pcp_conf: &'a str, user: &str) -> Option<&'a str> {
    pcp_conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (u, hash) = l.split_once(':')?;
            (u == user).then(|| hash.trim())
        })
}

/// PCP as the agent speaks it to this pgpool: over the unix socket, with
/// pcp_user's password from pcp_passfile.
pub fn pcp(cfg: &PoolConfig, layout: &Layout) -> Result<Pcp> {
    let file = &cfg.pcp_passfile;
    if let Err(e) = std::fs::symlink_metadata(file) {
        return Err(if e.kind() == std::io::ErrorKind::NotFound {
            OcfError::installed(format!(
                "pcp_passfile {} does not exist on this node",
                file.display()
            ))
        } else {
            OcfError::perm(format!("pcp_passfile {}: {e}", file.display()))
        });
    }
    let host = layout.pcp_socket_dir.to_string_lossy();
    let password = crate::pcppass::read_password(file, &host, layout.pcp_port, &cfg.pcp_user)
        .map_err(|e| OcfError::perm(e.reason))?
        .ok_or_else(|| {
            OcfError::configured(format!(
                "pcp_passfile {} has no line for {host}:{}:{}",
                file.display(),
                layout.pcp_port,
                cfg.pcp_user
            ))
        })?;
    Ok(Pcp::new(
        Endpoint::unix(&layout.pcp_socket_dir, layout.pcp_port),
        &cfg.pcp_user,
        password,
    ))
}

/// dbuser's passwords for the backends.
pub fn db_passwords(passfile: &Path) -> Result<pgclient::Passfile> {
    pgclient::Passfile::read(passfile).map_err(|e| {
        let what = format!("db_passfile {}: {e}", passfile.display());
        if e.kind() == std::io::ErrorKind::NotFound {
            OcfError::installed(what)
        } else {
            OcfError::perm(what)
        }
    })
}

/// The settings of pgpool.conf that would make pgpool fight Pacemaker
/// (refused, ERR_CONFIGURED) or only surprise the operator (returned, to
/// be logged as warnings).
pub fn conflicts(s: &Settings, cfg: &PoolConfig) -> Result<Vec<String>> {
    let reconcile = cfg.reconcile;
    for command in ["failover_command", "follow_primary_command"] {
        if s.text(command).is_some() {
            return Err(OcfError::configured(format!(
                "pgpool.conf sets {command}: pgpool would run it on a backend failure and \
                 fail PostgreSQL over itself, racing Pacemaker, which owns failover here; \
                 set {command} = ''"
            )));
        }
    }
    if s.flag("use_watchdog")? == Some(true) {
        return Err(OcfError::configured(
            "pgpool.conf sets use_watchdog = on: pgpool's watchdog would move a virtual IP \
             and decide failovers by its own quorum beside Pacemaker's; set use_watchdog = \
             off and let Pacemaker place pgpool (and its address)",
        ));
    }
    let follow = if reconcile {
        Some(cfg.follow(s)?)
    } else {
        None
    };
    let mut warnings = Vec::new();
    if let (Some(cluster), false) = (&cfg.slony_cluster, s.clustering_mode() == "slony") {
        warnings.push(format!(
            "slony_cluster is {cluster}, but pgpool.conf does not set backend_clustering_mode \
             = 'slony': the parameter is ignored"
        ));
    }
    if s.flag("auto_failback")? == Some(true) {
        warnings.push(
            "pgpool.conf sets auto_failback = on: pgpool itself attaches a detached standby \
             once its streaming check sees it stream from pgpool's primary, much as the agent \
             does; they agree, but a node may come back before the agent logs it"
                .to_string(),
        );
    }
    if follow == Some(Follow::Streaming) {
        for b in s.backends()? {
            if b.application_name.is_empty() {
                warnings.push(format!(
                    "backend_application_name{} is not set: the agent cannot tell whether \
                     node {} streams from the primary and will not attach it (set it to the \
                     application_name of its WAL receiver: the node name, with \
                     ocf:tusk:postgresql)",
                    b.id, b.id
                ));
            }
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> PoolConfig {
        PoolConfig::from_params(&ocf::Params::from_pairs(crate::config::PARAMS, pairs).unwrap())
            .unwrap()
    }

    fn refused(conf: &str) -> OcfError {
        conflicts(&Settings::parse(conf), &cfg(&[])).unwrap_err()
    }

    #[test]
    fn settings_that_fight_pacemaker_are_refused_with_the_reason() {
        for (conf, needle) in [
            (
                "failover_command = '/etc/pgpool2/failover.sh %d'\n",
                "failover_command",
            ),
            ("follow_primary_command = 'x'\n", "follow_primary_command"),
            ("use_watchdog = on\n", "use_watchdog"),
            (
                "backend_clustering_mode = 'raw'\n",
                "backend_clustering_mode",
            ),
        ] {
            let e = refused(conf);
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{conf}");
            assert!(e.reason().contains(needle), "{}", e.reason());
        }
        // Empty commands and watchdog off are what the agent needs.
        let fine = "failover_command = ''\nfollow_primary_command = ''\nuse_watchdog = off\n";
        assert_eq!(
            conflicts(&Settings::parse(fine), &cfg(&[])).unwrap(),
            Vec::<String>::new()
        );
        // Another mode is fine without reconciliation.
        let off = cfg(&[("reconcile", "false")]);
        assert!(conflicts(&Settings::parse("backend_clustering_mode = 'raw'\n"), &off).is_ok());
    }

    #[test]
    fn surprising_settings_are_warned_about() {
        let w = conflicts(
            &Settings::parse(
                "auto_failback = on\nbackend_hostname0 = 'a'\nbackend_application_name0 = 'n0'\n\
                 backend_hostname1 = 'b'\n",
            ),
            &cfg(&[]),
        )
        .unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("auto_failback"));
        assert!(w[1].starts_with("backend_application_name1 is not set"));
    }

    #[test]
    fn slony_mode_needs_the_cluster_name_and_names_no_walreceiver() {
        let slony = "backend_clustering_mode = 'slony'\nbackend_hostname0 = 'a'\n";
        let e = refused(slony);
        assert_eq!(e.status(), ocf::Status::ErrConfigured);
        assert!(
            e.reason().contains("slony_cluster is empty")
                && e.reason().contains("lowest-numbered attached backend"),
            "{}",
            e.reason()
        );
        let named = cfg(&[("slony_cluster", "tusk")]);
        let s = Settings::parse(slony);
        assert_eq!(conflicts(&s, &named).unwrap(), Vec::<String>::new());
        assert_eq!(
            named.follow(&s).unwrap(),
            Follow::Slony(pgclient::slony::ClusterName::parse("tusk").unwrap())
        );
        // Without reconciliation the agent follows nothing and needs no name.
        let off = cfg(&[("reconcile", "false")]);
        assert!(conflicts(&s, &off).is_ok());
        // A name without slony mode is said to be ignored.
        let w = conflicts(
            &Settings::parse("backend_hostname0 = 'a'\nbackend_application_name0 = 'n'\n"),
            &named,
        )
        .unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("slony_cluster is tusk"), "{w:?}");
    }

    #[test]
    fn pcp_conf_is_read_per_user() {
        let conf = "# USERID:MD5PASSWD\npostgres:e8a48653851e28c69d0506508fb27fc5\n tusk:5ebe2294ecd0e0f08eab7690d2a6ee69\n";
        assert_eq!(
            pcp_conf_hash(conf, "tusk"),
            Some("5ebe2294ecd0e0f08eab7690d2a6ee69")
        );
        assert_eq!(pcp_conf_hash(conf, "nobody"), None);
        assert_eq!(pcp_conf_hash(conf, "# USERID"), None);
    }
}
