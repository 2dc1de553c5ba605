//! The agent's parameters, declared once (meta-data, man page and parsing
//! all come from `PARAMS`), and the typed configuration actions use.

use ocf::{OcfError, Param, Params, Result};
use std::path::{Path, PathBuf};

pub const PARAMS: &[Param] = &[
    Param::string("pgdata")
        .required()
        .unique()
        .short("PostgreSQL data directory")
        .long("The data directory of the instance (the directory holding PG_VERSION and postmaster.pid)."),
    Param::string("bindir")
        .default("")
        .short("Directory of the PostgreSQL server binaries")
        .long(
            "The directory holding postgres and pg_ctl. Empty: found from the major version in \
             pgdata's PG_VERSION: /usr/lib/postgresql/MAJOR/bin (Debian, Ubuntu), then \
             /usr/pgsql-MAJOR/bin (PGDG RPMs), then /usr/bin.",
        ),
    Param::string("config")
        .default("")
        .short("postgresql.conf outside the data directory")
        .long(
            "Full path of postgresql.conf when it does not live in pgdata (Debian keeps it in \
             /etc/postgresql/MAJOR/CLUSTER/). Empty: pgdata/postgresql.conf.",
        ),
    Param::string("socketdir")
        .default("/var/run/postgresql")
        .short("Unix socket directory")
        .long(
            "The directory of the server's unix socket; the agent starts the server with it \
             and monitors through it. Created, owned by pguser, when missing (it is often on a \
             tmpfs that a reboot empties).",
        ),
    Param::integer("pgport")
        .default("5432")
        .short("Port")
        .long("The port the server listens on; it also names the unix socket (.s.PGSQL.PORT)."),
    Param::string("pguser")
        .default("postgres")
        .short("OS user the server runs as")
        .long(
            "The operating system account that owns pgdata and runs the server. The agent \
             connects as the database role of the same name over the unix socket, so peer \
             authentication works without a password.",
        ),
    Param::string("pgdb")
        .default("postgres")
        .short("Database the monitor connects to")
        .long("The database the agent's monitor queries connect to."),
    Param::string("start_opts")
        .default("")
        .short("Extra server options")
        .long("Additional options for the postgres server, as pg_ctl -o passes them (for example \"-c work_mem=64MB\").")
    ,
    Param::string("logfile")
        .default("/var/log/postgresql/tusk-postgresql.log")
        .short("Server log file for start-up")
        .long(
            "Where the server's output goes (pg_ctl -l). The agent reads it to explain a failed \
             start. Its directory is created, owned by pguser, when missing. Give each instance \
             on a node its own file.",
        ),
    Param::string("primary_host")
        .default("")
        .short("Address standbys reach the primary at")
        .long(
            "Promotable clones only (required there): the host name or address every standby \
             streams from, normally a floating IP address that Pacemaker keeps with the \
             promoted instance (an IPaddr2 resource colocated with the Promoted role and \
             ordered after promote). It goes into primary_conninfo, and start asks it whether \
             this node's data has diverged.",
        ),
    Param::string("repl_user")
        .default("replicator")
        .short("Replication role")
        .long(
            "The database role standbys connect to the primary as (LOGIN REPLICATION). \
             pg_rewind and the divergence check connect as it too, to database pgdb: grant \
             it EXECUTE on pg_ls_dir(text, boolean, boolean), pg_stat_file(text, boolean), \
             pg_read_binary_file(text) and pg_read_binary_file(text, bigint, bigint, boolean).",
        ),
    Param::string("repl_passfile")
        .default("")
        .short("Password file of the replication role")
        .long(
            "A .pgpass-format file, readable by pguser, holding repl_user's password for \
             primary_host. Empty: no password (trust or certificate authentication).",
        ),
    Param::choice(
        "sslmode",
        &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
    )
    .default("prefer")
    .short("TLS towards the primary (libpq's sslmode)")
    .long(
        "How every connection to primary_host negotiates TLS: the standby's WAL receiver \
         (primary_conninfo), pg_rewind, and the agent's own questions at start and while a \
         standby does not stream. prefer (libpq's default) uses TLS when the primary offers \
         it; require insists on it; verify-ca and verify-full also check the primary's \
         certificate against sslrootcert (verify-full: and that it names primary_host). \
         Connections over a unix socket never use TLS. With a hostssl-only pg_hba.conf, \
         choose require or stronger: a start the primary refuses fails with its reason.",
    ),
    Param::string("sslrootcert")
        .default("")
        .short("Root certificates for verify-ca and verify-full")
        .long(
            "A PEM file of the certificate authorities the primary's certificate must chain \
             to, readable by pguser (its WAL receiver reads it too). Required by \
             sslmode=verify-ca and verify-full, ignored otherwise.",
        ),
    Param::choice("sync", &["off", "available", "strict"])
        .default("available")
        .short("Synchronous replication: off, available or strict")
        .long(
            "off: asynchronous replication; a failover may lose the last acknowledged \
             commits. available: a streaming standby is synchronous; when the last one is \
             lost, the primary falls back to asynchronous within one monitor interval (the \
             node attribute RESOURCE-sync says which), and back when one reconnects. strict: \
             never falls back: commits wait until a standby holds them, and only a standby \
             that was synchronous may be promoted. Under every setting, a primary whose \
             partition has no quorum acknowledges no commit from the monitor that notices it \
             (asked of corosync on every monitor) until quorum returns.",
        ),
    Param::choice("rewind", &["auto", "off"])
        .default("auto")
        .short("What start does with a diverged former primary: auto or off")
        .long(
            "auto: a node whose WAL diverged from the current primary's (a former primary \
             after a failover, a standby that replayed past the new primary's fork point) is \
             rewound with pg_rewind and rejoins as a standby. off: its start fails, naming the \
             pg_rewind command to run. The rewind runs inside start's timeout, and one that is \
             interrupted leaves the data directory half rewritten: later starts refuse until \
             the node is rebuilt (pg_basebackup) and the file the reason names, under \
             /var/lib/tusk/RESOURCE/, is removed. So size the start timeout for a rewind: \
             pg_rewind copies from the primary the WAL written since the fork and every block \
             changed on either side since the last checkpoint before it (after a crash it first \
             runs crash recovery). pg_rewind --dry-run --progress prints how much (need to copy \
             N MB): allow that at the network's rate plus the server's start, and at least the \
             default. A node that was a primary on the primary's own timeline number cannot be \
             rewound: its start fails, saying to rebuild it.",
        ),
    Param::choice("rebuild", &["off", "auto"])
        .default("off")
        .short("Rebuild a node that cannot follow the primary: off or auto")
        .long(
            "Promotable clones only. auto: start rebuilds this node from the primary at \
             primary_host with pg_basebackup (-X stream, -c fast) when pgdata is missing or \
             empty (a new node, a lost disk), when its WAL cannot follow the primary and \
             pg_rewind cannot help (a rewind impossible, failed or interrupted), or when the \
             primary no longer has the WAL it needs (removed, or its replication slot lost). \
             The copy is made beside pgdata (PGDATA.tusk-rebuild, tablespaces likewise) by a \
             detached worker, so start returns at once and no Pacemaker transition waits for \
             it; the monitor reports it as degraded (190) with its progress (node attribute \
             RESOURCE-rebuild), and the node holds no promotion score until it streams. Once \
             the copy is complete, the directories are swapped (rename), the old one is kept \
             as PGDATA.tusk-old-TIMESTAMP for the operator to inspect and remove, and the \
             worker starts the standby. stop ends a rebuild and removes the half-built copy; \
             an interrupted rebuild leaves the old directory untouched and the next start \
             starts over. The free space of pgdata's file system must hold the primary's \
             databases plus its max_wal_size, beside the old directory: a rebuild that cannot \
             fit fails with the numbers. A node that was a primary is rebuilt only once \
             another node is primary on a newer timeline. pgdata must not be a mount point \
             (the swap renames it). off (the default): none of this; a missing pgdata is \
             ERR_INSTALLED and a node that cannot follow needs an operator. The trade-off: \
             auto copies the whole database over the network and writes as much to disk \
             without asking anyone, and keeps the old directory until someone removes it; \
             off leaves a failed node out of the cluster until a person acts.",
        ),
    Param::choice("replication_slots", &["on", "off"])
        .default("on")
        .short("Physical replication slots, one per cluster node: on or off")
        .long(
            "on: the primary keeps a physical replication slot for every other node of the \
             cluster (tusk_NODE; a node name with characters a slot name cannot hold becomes \
             tuskx_ with a hash of the name), each standby streams through its own \
             (primary_slot_name), and standbys keep their peers' slots too, advanced as they \
             replay, so that a newly promoted primary already retains WAL for its standbys. A \
             standby that was down for a while then catches up without a rebuild. A slot of a \
             node that is down keeps WAL on the primary: set max_slot_wal_keep_size in \
             postgresql.conf to what the disk can spare (PostgreSQL's default, -1, keeps WAL \
             without bound; the monitor warns then); a standby whose slot lost WAL to that \
             bound must be rebuilt. Slots of nodes that left the cluster are dropped. The \
             replication role creates its own slot on the primary when a standby starts \
             (LOGIN REPLICATION allows it); max_replication_slots must cover every node. off: \
             no slots; a standby finds only the WAL that wal_keep_size keeps.",
        ),
    Param::integer("max_receiver_silence")
        .default("30")
        .short("Seconds a standby's WAL receiver may go without streaming")
        .long(
            "A standby whose WAL receiver has not been streaming for longer than this many \
             seconds reports itself degraded (190: Pacemaker shows it and keeps it running). \
             If a primary answers at primary_host meanwhile, the standby is not following it \
             (refused, diverged, or unable to connect): it gives up its promotion score until \
             it streams again, as the primary does. If none answers, the silence is the \
             primary's absence and the standby stays a candidate. 0: no bound.",
        ),
    Param::integer("max_lag")
        .default("0")
        .short("Most WAL (bytes) a standby may lag and still be promoted")
        .long(
            "A standby further behind the primary than this, as the primary sees it, gets no \
             promotion score. 0: no bound.",
        ),
];

/// When the primary waits for a standby to hold a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    Off,
    Available,
    Strict,
}

/// What start does with a diverged former primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindPolicy {
    Auto,
    Off,
}

/// What start does with a node that cannot follow the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildPolicy {
    Off,
    Auto,
}

/// How the instances of a promotable clone replicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Empty outside promotable clones.
    pub primary_host: String,
    pub repl_user: String,
    pub repl_passfile: Option<PathBuf>,
    /// TLS towards the primary; `sslrootcert` is `Some` under the
    /// verifying modes.
    pub sslmode: pgclient::SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub sync: SyncPolicy,
    pub rewind: RewindPolicy,
    /// `None`: no bound.
    pub max_lag: Option<u64>,
    /// How long a standby's WAL receiver may go without streaming; `None`:
    /// no bound.
    pub max_receiver_silence: Option<std::time::Duration>,
    /// One physical replication slot per cluster node.
    pub slots: bool,
    pub rebuild: RebuildPolicy,
}

/// The validated configuration of one PostgreSQL instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    pub pgdata: PathBuf,
    /// `None` when the parameter is empty: resolved from PG_VERSION when needed.
    pub bindir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub socketdir: PathBuf,
    pub pgport: u16,
    pub pguser: String,
    pub pgdb: String,
    /// The operator's extra server options, as words (see [`option_words`]).
    pub start_opts: Vec<String>,
    pub logfile: PathBuf,
    pub replication: Replication,
}

impl PgConfig {
    pub fn from_env() -> Result<PgConfig> {
        Self::from_params(&Params::from_env(PARAMS)?)
    }

    pub fn from_params(p: &Params) -> Result<PgConfig> {
        let port = p.integer("pgport").expect("pgport has a default");
        let pgport = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| {
            OcfError::configured(format!(
                "parameter pgport: '{port}' is not a port number (1-65535)"
            ))
        })?;
        let text = |name: &str| p.string(name).unwrap_or_default().to_string();
        let required = |name: &str| {
            absolute_path(p, name)?
                .ok_or_else(|| OcfError::configured(format!("parameter {name} is empty")))
        };
        // pg_ctl runs the server through /bin/sh with -D and -l inside
        // double quotes, where these characters still act.
        let shell_safe = |name: &str| -> Result<PathBuf> {
            let path = required(name)?;
            let raw = path.to_string_lossy();
            match raw.chars().find(|c| matches!(c, '"' | '$' | '`' | '\\') || c.is_control()) {
                Some(c) => Err(OcfError::configured(format!(
                    "parameter {name}: {c:?} is not allowed in the path (pg_ctl hands it to a shell)"
                ))),
                None => Ok(path),
            }
        };
        Ok(PgConfig {
            pgdata: shell_safe("pgdata")?,
            bindir: absolute_path(p, "bindir")?,
            config: absolute_path(p, "config")?,
            socketdir: required("socketdir")?,
            pgport,
            pguser: text("pguser"),
            pgdb: text("pgdb"),
            start_opts: option_words(&text("start_opts"))?,
            logfile: shell_safe("logfile")?,
            replication: replication(p)?,
        })
    }

    /// pgdata alone, for a stop that must succeed even when another
    /// parameter is invalid.
    pub fn pgdata_from_env() -> Result<PathBuf> {
        let decl: Vec<Param> = PARAMS
            .iter()
            .filter(|p| p.name == "pgdata")
            .copied()
            .collect();
        let params = Params::from_env(&decl)?;
        Ok(absolute_path(&params, "pgdata")?.expect("pgdata is required"))
    }

    /// The server binaries' directory: the parameter, or the one that
    /// matches the data directory's major version.
    pub fn bindir(&self) -> Result<PathBuf> {
        if let Some(b) = &self.bindir {
            return Ok(b.clone());
        }
        self.bindir_for(&data_major_version(&self.pgdata)?)
    }

    /// The server binaries' directory for PostgreSQL `major`: the
    /// parameter, or the packages' usual places.
    pub fn bindir_for(&self, major: &str) -> Result<PathBuf> {
        if let Some(b) = &self.bindir {
            return Ok(b.clone());
        }
        let candidates = [
            PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
            PathBuf::from(format!("/usr/pgsql-{major}/bin")),
            PathBuf::from("/usr/bin"),
        ];
        candidates
            .iter()
            .find(|d| d.join("postgres").is_file())
            .cloned()
            .ok_or_else(|| {
                OcfError::installed(format!(
                    "no PostgreSQL {major} server binaries found (looked in {}); set bindir",
                    candidates
                        .iter()
                        .map(|c| c.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

fn replication(p: &Params) -> Result<Replication> {
    let text = |name: &str| p.string(name).unwrap_or_default().trim().to_string();
    // Params checked the values against the declared choices.
    let sync = match p.choice("sync") {
        Some("off") => SyncPolicy::Off,
        Some("strict") => SyncPolicy::Strict,
        _ => SyncPolicy::Available,
    };
    let rewind = match p.choice("rewind") {
        Some("off") => RewindPolicy::Off,
        _ => RewindPolicy::Auto,
    };
    let max_lag = p.integer("max_lag").expect("max_lag has a default");
    let max_lag = match u64::try_from(max_lag) {
        Ok(0) => None,
        Ok(bytes) => Some(bytes),
        Err(_) => {
            return Err(OcfError::configured(format!(
                "parameter max_lag: '{max_lag}' is negative"
            )))
        }
    };
    let silence = p
        .integer("max_receiver_silence")
        .expect("max_receiver_silence has a default");
    let max_receiver_silence = match u64::try_from(silence) {
        Ok(0) => None,
        Ok(secs) => Some(std::time::Duration::from_secs(secs)),
        Err(_) => {
            return Err(OcfError::configured(format!(
                "parameter max_receiver_silence: '{silence}' is negative"
            )))
        }
    };
    let repl_user = text("repl_user");
    if repl_user.is_empty() {
        return Err(OcfError::configured("parameter repl_user is empty"));
    }
    // Params checked the value against the declared choices.
    let sslmode: pgclient::SslMode = p
        .choice("sslmode")
        .unwrap_or("prefer")
        .parse()
        .map_err(OcfError::configured)?;
    let sslrootcert = absolute_path(p, "sslrootcert")?.filter(|_| sslmode.verifies());
    if sslmode.verifies() && sslrootcert.is_none() {
        return Err(OcfError::configured(format!(
            "parameter sslmode={sslmode} needs sslrootcert (the primary's certificate \
             authority)"
        )));
    }
    Ok(Replication {
        primary_host: text("primary_host"),
        repl_user,
        repl_passfile: absolute_path(p, "repl_passfile")?,
        sslmode,
        sslrootcert,
        sync,
        rewind,
        max_lag,
        max_receiver_silence,
        slots: p.choice("replication_slots") != Some("off"),
        rebuild: match p.choice("rebuild") {
            Some("auto") => RebuildPolicy::Auto,
            _ => RebuildPolicy::Off,
        },
    })
}

/// start_opts split into words as a shell would split plain words and
/// single-quoted strings (`-c log_line_prefix='%m [%p] '`). Everything a
/// shell would act on (`$`, backquotes, double quotes, backslashes,
/// redirections, `;`, `|`, `&`, parentheses, control characters) is refused:
/// the agent quotes each word itself, so no option reaches the shell that
/// pg_ctl starts the server through.
pub fn option_words(raw: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in raw.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if quoted && !c.is_control() => word.get_or_insert_with(String::new).push(c),
            ' ' | '\t' if !quoted => words.extend(word.take()),
            '"' | '$' | '`' | '\\' | ';' | '|' | '&' | '<' | '>' | '(' | ')' => {
                return Err(OcfError::configured(format!(
                    "parameter start_opts: {c:?} is not allowed (write values in single quotes)"
                )))
            }
            c if c.is_control() => {
                return Err(OcfError::configured(
                    "parameter start_opts: control characters are not allowed",
                ))
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quoted {
        return Err(OcfError::configured(
            "parameter start_opts: a single quote is not closed",
        ));
    }
    words.extend(word);
    Ok(words)
}

/// A path parameter: `None` when empty, an error when relative.
fn absolute_path(p: &Params, name: &str) -> Result<Option<PathBuf>> {
    match p.string(name).filter(|s| !s.is_empty()).map(PathBuf::from) {
        Some(v) if v.is_relative() => Err(OcfError::configured(format!(
            "parameter {name}: '{}' is not an absolute path",
            v.display()
        ))),
        v => Ok(v),
    }
}

/// The major version a data directory was created by, from its PG_VERSION.
pub fn data_major_version(pgdata: &Path) -> Result<String> {
    let file = pgdata.join("PG_VERSION");
    // pguser owns the file: read it as a regular file, a few bytes at most.
    let version = match ocf::fs::read_bounded(&file, 16) {
        Ok(Some(v)) => String::from_utf8_lossy(&v.bytes).trim().to_string(),
        Ok(None) => {
            return Err(OcfError::configured(format!(
                "{} is not a PostgreSQL data directory (no PG_VERSION)",
                pgdata.display()
            )))
        }
        Err(e) => {
            return Err(OcfError::perm(format!(
                "cannot read {}: {e}",
                file.display()
            )))
        }
    };
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(OcfError::configured(format!(
            "{} holds no version number",
            file.display()
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<PgConfig> {
        PgConfig::from_params(&Params::from_pairs(PARAMS, pairs)?)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = parse(&[("pgdata", "/srv/pg")]).unwrap();
        assert_eq!(c.pgport, 5432);
        assert_eq!(c.pguser, "postgres");
        assert_eq!(c.socketdir, PathBuf::from("/var/run/postgresql"));
        assert_eq!(c.bindir, None);
        assert_eq!(c.config, None);
        assert_eq!(c.replication.sync, SyncPolicy::Available);
        assert_eq!(c.replication.rewind, RewindPolicy::Auto);
        assert_eq!(c.replication.rebuild, RebuildPolicy::Off);
        assert_eq!(c.replication.max_lag, None);
        assert_eq!(
            c.replication.max_receiver_silence,
            Some(std::time::Duration::from_secs(30))
        );
        assert_eq!(c.replication.repl_user, "replicator");
        assert_eq!(c.replication.primary_host, "");
    }

    #[test]
    fn replication_policies_parse() {
        let c = parse(&[
            ("pgdata", "/srv/pg"),
            ("sync", "strict"),
            ("rewind", "off"),
            ("max_lag", "16777216"),
            ("primary_host", "10.0.0.100"),
        ])
        .unwrap();
        assert_eq!(c.replication.sync, SyncPolicy::Strict);
        assert_eq!(c.replication.rewind, RewindPolicy::Off);
        assert_eq!(c.replication.max_lag, Some(16 << 20));
        assert_eq!(c.replication.primary_host, "10.0.0.100");
    }

    #[test]
    fn bad_values_are_configuration_errors_naming_the_parameter() {
        for (pairs, needle) in [
            (
                vec![("pgdata", "/srv/pg"), ("pgport", "abc")],
                "pgport: 'abc'",
            ),
            (
                vec![("pgdata", "/srv/pg"), ("pgport", "70000")],
                "pgport: '70000'",
            ),
            (vec![("pgdata", "/srv/pg"), ("pgport", "0")], "pgport: '0'"),
            (vec![("pgdata", "relative/dir")], "pgdata: 'relative/dir'"),
            (
                vec![("pgdata", "/srv/pg"), ("bindir", "bin")],
                "bindir: 'bin'",
            ),
            (vec![], "pgdata"),
            (vec![("pgdata", "/srv/pg"), ("sync", "on")], "sync: 'on'"),
            (
                vec![("pgdata", "/srv/pg"), ("rewind", "yes")],
                "rewind: 'yes'",
            ),
            (
                vec![("pgdata", "/srv/pg"), ("max_lag", "-1")],
                "max_lag: '-1'",
            ),
            (
                vec![("pgdata", "/srv/pg"), ("max_receiver_silence", "-5")],
                "max_receiver_silence: '-5'",
            ),
            (
                vec![("pgdata", "/srv/pg"), ("repl_passfile", "pgpass")],
                "repl_passfile: 'pgpass'",
            ),
        ] {
            let e = parse(&pairs).unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{pairs:?}");
            assert!(e.reason().contains(needle), "{} lacks {needle}", e.reason());
        }
    }

    #[test]
    fn start_opts_are_words_and_nothing_reaches_a_shell() {
        assert_eq!(
            option_words("-c work_mem=64MB  -c log_line_prefix='%m [%p] '").unwrap(),
            ["-c", "work_mem=64MB", "-c", "log_line_prefix=%m [%p] "]
        );
        assert_eq!(option_words("").unwrap(), Vec::<String>::new());
        assert_eq!(option_words("-c x=''").unwrap(), ["-c", "x="]);
        for bad in [
            "-c x=$(id)",
            "-c x=`id`",
            "-c \"x=1\"",
            "-c x=1; id",
            "-c x=1 | id",
            "-c x=1 > /etc/passwd",
            "-c x=1\nid",
            "-c x='1",
            "-c x=a\\b",
        ] {
            let e = option_words(bad).unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{bad:?}");
        }
    }

    #[test]
    fn paths_pg_ctl_hands_to_a_shell_are_refused() {
        for (name, value) in [
            ("pgdata", "/srv/pg$(id)"),
            ("pgdata", "/srv/pg\"x"),
            ("logfile", "/var/log/`id`.log"),
            ("logfile", "/var/log/a\nb.log"),
        ] {
            let pairs = if name == "pgdata" {
                vec![(name, value)]
            } else {
                vec![("pgdata", "/srv/pg"), (name, value)]
            };
            let e = parse(&pairs).unwrap_err();
            assert_eq!(e.status(), ocf::Status::ErrConfigured, "{name}={value:?}");
            assert!(e.reason().contains(name), "{}", e.reason());
        }
    }

    #[test]
    fn bindir_follows_the_data_directory_version() {
        let dir = tempfile::tempdir().unwrap();
        let c = parse(&[("pgdata", dir.path().to_str().unwrap())]).unwrap();
        assert_eq!(c.bindir().unwrap_err().status(), ocf::Status::ErrConfigured);
        std::fs::write(dir.path().join("PG_VERSION"), "7\n").unwrap();
        let e = c.bindir().unwrap_err();
        assert_eq!(e.status(), ocf::Status::ErrInstalled);
        assert!(
            e.reason().contains("/usr/lib/postgresql/7/bin"),
            "{}",
            e.reason()
        );
    }

    #[test]
    fn pg_version_is_read_as_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("PG_VERSION");
        std::os::unix::fs::symlink("/etc/hostname", &version).unwrap();
        let e = data_major_version(dir.path()).unwrap_err();
        assert_eq!(e.status(), ocf::Status::ErrPerm);
        assert!(e.reason().contains("symbolic link"), "{}", e.reason());
        std::fs::remove_file(&version).unwrap();
        std::fs::write(&version, "secret words\n").unwrap();
        let e = data_major_version(dir.path()).unwrap_err();
        assert_eq!(e.status(), ocf::Status::ErrConfigured);
        assert!(!e.reason().contains("secret"), "{}", e.reason());
        std::fs::write(&version, "15\n").unwrap();
        assert_eq!(data_major_version(dir.path()).unwrap(), "15");
    }
}
