//! The agent's parameters, declared once (meta-data, man page and parsing
//! all come from `PARAMS`), and the typed configuration the actions use.
//!
//! Defaults follow Debian's pgpool2 package: the binary in /usr/sbin, the
//! three configuration files in /etc/pgpool2, pgpool run as `postgres`
//! (the systemd unit's `User=`). What pgpool.conf already says (ports,
//! socket directories, the pid file) is read from it, not repeated here.

use crate::settings::Settings;
use ocf::{OcfError, Param, Params, Result};
use pgclient::slony::ClusterName;
use std::path::{Path, PathBuf};

pub const PARAMS: &[Param] = &[
    Param::string("pgpool")
        .default("/usr/sbin/pgpool")
        .short("pgpool-II binary")
        .long("Full path of the pgpool executable."),
    Param::string("config")
        .default("/etc/pgpool2/pgpool.conf")
        .unique()
        .short("pgpool.conf")
        .long(
            "Full path of pgpool.conf (pgpool -f). It identifies this pgpool: the main process \
             is the pgpool whose command line holds this path. The agent reads from it the \
             ports and socket directories (port, socket_dir, pcp_port, pcp_socket_dir), \
             pid_file_name, logdir and the backends (backend_hostnameN, backend_portN, \
             backend_application_nameN). Give the file itself, not a symbolic link.",
        ),
    Param::string("pcp_config")
        .default("/etc/pgpool2/pcp.conf")
        .short("pcp.conf")
        .long("Full path of pcp.conf (pgpool -F), which must hold pcp_user's md5 password."),
    Param::string("hba_config")
        .default("/etc/pgpool2/pool_hba.conf")
        .short("pool_hba.conf")
        .long("Full path of pool_hba.conf (pgpool -a)."),
    Param::string("pid_file")
        .default("")
        .short("pgpool's pid file")
        .long(
            "The pid file pgpool writes. Empty: pid_file_name from pgpool.conf, else \
             /var/run/postgresql/pgpool.pid (the default Debian's pgpool is built with).",
        ),
    Param::string("user")
        .default("postgres")
        .short("OS user pgpool runs as")
        .long(
            "The operating system account pgpool is started as (Debian's unit runs it as \
             postgres). It must be able to write the pid file, logdir and the socket \
             directories.",
        ),
    Param::string("logfile")
        .default("/var/log/postgresql/pgpool.log")
        .short("pgpool's log file")
        .long(
            "Where pgpool's output goes (pgpool runs in the foreground, -n, and logs to \
             stderr with log_destination = 'stderr'). Created owned by user when missing; \
             start reads it to report pgpool's own error line. Debian's logrotate \
             configuration for /var/log/postgresql/*.log uses copytruncate, which suits a \
             file pgpool keeps open.",
        ),
    Param::string("pcp_user")
        .default("postgres")
        .short("PCP user")
        .long("The user of pcp.conf the agent authenticates as on pgpool's PCP port."),
    Param::string("pcp_passfile")
        .default("/root/.pcppass")
        .short("PCP password file")
        .long(
            "A .pcppass-format file (host:port:user:password, mode 0600, as pcp_* programs \
             read it) holding pcp_user's password. For the unix socket the host field is \
             the PCP socket directory as written in pgpool.conf, or *. The agent never takes \
             a password on a command line or from the CIB.",
        ),
    Param::integer("pcp_port").short("PCP port").long(
        "The PCP port; with the socket directory it names the socket \
             (.s.PGSQL.PORT) the agent speaks PCP over. Empty: pcp_port from pgpool.conf, \
             else 9898.",
    ),
    Param::string("pcp_socket_dir")
        .default("")
        .short("PCP socket directory")
        .long(
            "The directory of the PCP unix socket. Empty: pcp_socket_dir from pgpool.conf, \
             else /var/run/postgresql (Debian's build default).",
        ),
    Param::string("dbuser")
        .default("postgres")
        .short("Database user the agent asks the backends as")
        .long(
            "To reconcile pgpool's view of the backends with theirs, the agent asks the \
             backends themselves (not through pgpool) whether they are primaries and which \
             standbys stream from them (pg_stat_replication): the user must be a superuser \
             or a member of pg_monitor. Over a unix socket the agent connects with user's \
             uid, so peer authentication works; for other hosts give db_passfile.",
        ),
    Param::string("dbname")
        .default("postgres")
        .short("Database the agent connects to on the backends")
        .long("The database of those connections."),
    Param::string("db_passfile")
        .default("")
        .short("Password file for dbuser")
        .long(
            "A .pgpass-format file with dbuser's password for the backends, as pgpool.conf \
             names them (backend_hostnameN, backend_portN). Empty: no password (peer or \
             trust authentication).",
        ),
    Param::string("slony_cluster")
        .default("")
        .short("Slony-I cluster whose set origin pgpool follows (slony mode)")
        .long(
            "With backend_clustering_mode = 'slony' in pgpool.conf and reconcile on: the name \
             of the Slony-I cluster (as slonik's cluster name, the schema is _NAME) whose \
             sets the backends replicate. pgpool in slony mode sends every write to its main \
             node, the lowest-numbered attached backend, and cannot be told which node is \
             the origin (pcp_promote_node refuses outside streaming replication), so the \
             agent asks each backend for the sets' origin (sl_set.set_origin) and its own \
             node id (getLocalNodeId), in dbname (which must be the replicated database), \
             detaches every backend numbered below the origin's, attaches the origin and \
             the subscribers numbered above it, and detaches a backend above it that does \
             not subscribe to every set; never while the origin cannot be told. Required in \
             slony mode with reconcile on; ignored otherwise.",
        ),
    Param::boolean("reconcile")
        .default("true")
        .short("Keep pgpool's view of the backends in step with the cluster")
        .long(
            "On: start writes pgpool_status from what the backends say, and every monitor \
             compares pgpool's view (status, role) with theirs: a standby that streams from \
             the current primary but is detached is attached again; the live primary pgpool \
             does not call primary is promoted in pgpool (pcp_promote_node without -s: \
             Pacemaker, not pgpool, fails over), and the standbys that detaches are attached \
             again; a backend that does not follow the current primary (a former primary \
             before its rejoin) is never attached, and a second primary attached beside the \
             current one is detached. Each change is one log line. In slony mode pgpool \
             follows the Slony-I origin instead (see slony_cluster). Off: pgpool's own view \
             is left alone.",
        ),
];

/// The validated parameters of one pgpool instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub pgpool: PathBuf,
    pub config: PathBuf,
    pub pcp_config: PathBuf,
    pub hba_config: PathBuf,
    /// `None`: pid_file_name from pgpool.conf.
    pub pid_file: Option<PathBuf>,
    pub user: String,
    pub logfile: PathBuf,
    pub pcp_user: String,
    pub pcp_passfile: PathBuf,
    /// `None`: from pgpool.conf.
    pub pcp_port: Option<u16>,
    pub pcp_socket_dir: Option<PathBuf>,
    pub dbuser: String,
    pub dbname: String,
    pub db_passfile: Option<PathBuf>,
    pub reconcile: bool,
    /// The Slony-I cluster to follow in pgpool's slony mode.
    pub slony_cluster: Option<ClusterName>,
}

impl PoolConfig {
    pub fn from_env() -> Result<PoolConfig> {
        Self::from_params(&Params::from_env(PARAMS)?)
    }

    pub fn from_params(p: &Params) -> Result<PoolConfig> {
        let required = |name: &str| {
            absolute_path(p, name)?
                .ok_or_else(|| OcfError::configured(format!("parameter {name} is empty")))
        };
        let word = |name: &str| -> Result<String> {
            let v = p.string(name).unwrap_or_default().trim().to_string();
            if v.is_empty() {
                return Err(OcfError::configured(format!("parameter {name} is empty")));
            }
            if v.chars().any(char::is_control) {
                return Err(OcfError::configured(format!(
                    "parameter {name} holds a control character"
                )));
            }
            Ok(v)
        };
        let pcp_port = match p.integer("pcp_port") {
            None => None,
            Some(n) => Some(port_number(n).ok_or_else(|| {
                OcfError::configured(format!(
                    "parameter pcp_port: '{n}' is not a port number (1-65535)"
                ))
            })?),
        };
        Ok(PoolConfig {
            pgpool: required("pgpool")?,
            config: required("config")?,
            pcp_config: required("pcp_config")?,
            hba_config: required("hba_config")?,
            pid_file: absolute_path(p, "pid_file")?,
            user: word("user")?,
            logfile: required("logfile")?,
            pcp_user: word("pcp_user")?,
            pcp_passfile: required("pcp_passfile")?,
            pcp_port,
            pcp_socket_dir: absolute_path(p, "pcp_socket_dir")?,
            dbuser: word("dbuser")?,
            dbname: word("dbname")?,
            db_passfile: absolute_path(p, "db_passfile")?,
            reconcile: p.boolean("reconcile").expect("reconcile has a default"),
            slony_cluster: match p.string("slony_cluster").map(str::trim) {
                None | Some("") => None,
                Some(name) => Some(ClusterName::parse(name).map_err(|e| {
                    OcfError::configured(format!("parameter slony_cluster: {}", e.reason()))
                })?),
            },
        })
    }

    /// What stop needs, and nothing else: the binary, pgpool.conf, the pid
    /// file and the user. A stop that fails gets the node fenced, so any
    /// other parameter that does not parse is left out rather than fatal;
    /// these four fall back to their defaults when they do not parse.
    pub fn for_stop() -> PoolConfig {
        let wanted = ["pgpool", "config", "pid_file", "user"];
        let decls: Vec<Param> = PARAMS
            .iter()
            .filter(|p| wanted.contains(&p.name))
            .copied()
            .collect();
        let fallback =
            || Params::parse(&decls, |_| None).expect("the defaults of stop's parameters parse");
        let params = Params::from_env(&decls).unwrap_or_else(|e| {
            ocf::warning!("{}; stopping with the default of each", e.reason());
            fallback()
        });
        let path = |name: &str, default: &str| {
            absolute_path(&params, name)
                .ok()
                .flatten()
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let defaults = Params::parse(PARAMS, |_| None).expect("defaults parse");
        let mut cfg = PoolConfig::from_params(&defaults).expect("defaults are valid");
        cfg.pgpool = path("pgpool", "/usr/sbin/pgpool");
        cfg.config = path("config", "/etc/pgpool2/pgpool.conf");
        cfg.pid_file = absolute_path(&params, "pid_file").ok().flatten();
        cfg.user = params
            .string("user")
            .unwrap_or("postgres")
            .trim()
            .to_string();
        cfg
    }
}

/// What reconciliation makes pgpool follow, by its clustering mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// Streaming replication: the live primary and its standbys.
    Streaming,
    /// Slony mode: the origin of the cluster's sets (see [`crate::slony`]).
    Slony(ClusterName),
}

impl PoolConfig {
    /// What reconciliation follows with this pgpool.conf: only the
    /// streaming-replication and slony modes can be followed, and slony
    /// mode needs the cluster's name.
    pub fn follow(&self, settings: &Settings) -> Result<Follow> {
        match (settings.clustering_mode(), &self.slony_cluster) {
            ("streaming_replication", _) => Ok(Follow::Streaming),
            ("slony", Some(cluster)) => Ok(Follow::Slony(cluster.clone())),
            ("slony", None) => Err(OcfError::configured(
                "pgpool.conf sets backend_clustering_mode = 'slony' and reconcile=true, but \
                 slony_cluster is empty: pgpool sends writes to its lowest-numbered attached \
                 backend, and the agent needs the Slony cluster's name to find the sets' \
                 origin and keep that backend the origin (or set reconcile=false)",
            )),
            (mode, _) => Err(OcfError::configured(format!(
                "pgpool.conf sets backend_clustering_mode = '{}': reconcile=true follows a \
                 streaming-replication primary or a Slony-I origin; set reconcile=false",
                mode.escape_default()
            ))),
        }
    }
}

/// Where this pgpool's files and sockets are: the parameters, completed
/// from pgpool.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub pid_file: PathBuf,
    /// `<socket_dir>/.s.PGSQL.<port>`, where clients connect.
    pub socket: PathBuf,
    pub pcp_socket_dir: PathBuf,
    pub pcp_port: u16,
    /// `<pcp_socket_dir>/.s.PGSQL.<pcp_port>`.
    pub pcp_socket: PathBuf,
    /// `<logdir>/pgpool_status`: pgpool's memory of detached backends.
    pub status_file: PathBuf,
}

impl Layout {
    pub fn resolve(cfg: &PoolConfig, settings: &Settings) -> Result<Layout> {
        let pcp_socket_dir = cfg
            .pcp_socket_dir
            .clone()
            .unwrap_or_else(|| settings.pcp_socket_dir());
        let pcp_port = match cfg.pcp_port {
            Some(p) => p,
            None => settings.pcp_port()?,
        };
        Ok(Layout {
            pid_file: cfg.pid_file.clone().unwrap_or_else(|| settings.pid_file()),
            socket: socket_path(&settings.socket_dir(), settings.port()?),
            pcp_socket: socket_path(&pcp_socket_dir, pcp_port),
            pcp_socket_dir,
            pcp_port,
            status_file: settings.logdir().join("pgpool_status"),
        })
    }

    /// The unix sockets that only this pgpool may hold.
    pub fn sockets(&self) -> [&Path; 2] {
        [&self.socket, &self.pcp_socket]
    }
}

/// PostgreSQL's socket naming, which pgpool uses for both of its ports.
pub fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

fn port_number(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p > 0)
}

/// A path parameter: `None` when empty, an error when relative.
fn absolute_path(p: &Params, name: &str) -> Result<Option<PathBuf>> {
    match p.string(name).map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) if !v.starts_with('/') => Err(OcfError::configured(format!(
            "parameter {name}: '{v}' is not an absolute path"
        ))),
        Some(v) if v.chars().any(char::is_control) => Err(OcfError::configured(format!(
            "parameter {name} holds a control character"
        ))),
        v => Ok(v.map(PathBuf::from)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<PoolConfig> {
        PoolConfig::from_params(&Params::from_pairs(PARAMS, pairs)?)
    }

    #[test]
    fn defaults_are_debian_s() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.pgpool, PathBuf::from("/usr/sbin/pgpool"));
        assert_eq!(c.config, PathBuf::from("/etc/pgpool2/pgpool.conf"));
        assert_eq!(c.pcp_config, PathBuf::from("/etc/pgpool2/pcp.conf"));
        assert_eq!(c.hba_config, PathBuf::from("/etc/pgpool2/pool_hba.conf"));
        assert_eq!(c.pid_file, None);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.pcp_port, None);
        assert_eq!(c.pcp_socket_dir, None);
        assert_eq!(c.pcp_passfile, PathBuf::from("/root/.pcppass"));
        assert_eq!(
            (c.dbuser.as_str(), c.dbname.as_str()),
            ("postgres", "postgres")
        );
        assert_eq!(c.db_passfile, None);
        assert!(c.reconcile);
        assert_eq!(c.slony_cluster, None);
        let c = parse(&[("slony_cluster", "Tusk_A$1")]).unwrap();
        assert_eq!(c.slony_cluster.unwrap().schema_sql(), "\"_Tusk_A$1\"");
    }

    #[test]
    fn bad_values_are_configuration_errors_naming_the_parameter() {
        for (pairs, needle) in [
            (vec![("pcp_port", "98x8")], "pcp_port: '98x8'"),
            (vec![("pcp_port", "70000")], "pcp_port: '70000'"),
            (vec![("pcp_port", "0")], "pcp_port: '0'"),
            (vec![("config", "pgpool.conf")], "config: 'pgpool.conf'"),
            (
                vec![("pid_file", "run/pgpool.pid")],
                "pid_file: 'run/pgpool.pid'",
            ),
            (vec![("pcp_socket_dir", "tmp")], "pcp_socket_dir: 'tmp'"),
            (vec![("reconcile", "maybe")], "reconcile"),
            (
                vec![("user", "post\ngres")],
                "user holds a control character",
            ),
            (vec![("pcp_user", " ")], "pcp_user is empty"),
            (
                vec![("slony_cluster", "a;b")],
                "slony_cluster: the Slony cluster name",
            ),
        ] {
            let e = parse(&pairs).unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{pairs:?}");
            assert!(e.reason().contains(needle), "{} lacks {needle}", e.reason());
        }
    }

    #[test]
    fn the_layout_comes_from_pgpool_conf_unless_a_parameter_says() {
        let settings = Settings::parse(
            "port = 5433\nsocket_dir = '/run/a'\npcp_port = 9000\npcp_socket_dir = '/run/b'\n\
             pid_file_name = '/run/a/p.pid'\nlogdir = '/var/lib/pgpool'\n",
        );
        let l = Layout::resolve(&parse(&[]).unwrap(), &settings).unwrap();
        assert_eq!(l.socket, PathBuf::from("/run/a/.s.PGSQL.5433"));
        assert_eq!(l.pcp_socket, PathBuf::from("/run/b/.s.PGSQL.9000"));
        assert_eq!(l.pid_file, PathBuf::from("/run/a/p.pid"));
        assert_eq!(
            l.status_file,
            PathBuf::from("/var/lib/pgpool/pgpool_status")
        );
        let cfg = parse(&[("pcp_port", "9001"), ("pcp_socket_dir", "/run/c")]).unwrap();
        let l = Layout::resolve(&cfg, &settings).unwrap();
        assert_eq!(l.pcp_socket, PathBuf::from("/run/c/.s.PGSQL.9001"));
        assert_eq!(
            (l.pcp_port, l.pcp_socket_dir.as_path()),
            (9001, Path::new("/run/c"))
        );
    }

    #[test]
    fn explicit_values_win() {
        let c = parse(&[
            ("pcp_port", "9899"),
            ("pcp_socket_dir", "/run/pgpool"),
            ("pid_file", "/run/pgpool/pgpool.pid"),
            ("reconcile", "off"),
        ])
        .unwrap();
        assert_eq!(c.pcp_port, Some(9899));
        assert_eq!(c.pcp_socket_dir, Some(PathBuf::from("/run/pgpool")));
        assert_eq!(c.pid_file, Some(PathBuf::from("/run/pgpool/pgpool.pid")));
        assert!(!c.reconcile);
    }
}
