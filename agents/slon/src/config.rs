//! The agent's parameters, declared once (meta-data, man page and parsing
//! all come from `PARAMS`), and the typed configuration the actions use.

use crate::database::{self, NodeDb};
use crate::nodelock;
use nix::unistd::{Gid, Uid};
use ocf::{OcfError, Param, Params, Result};
use pgclient::slony::ClusterName;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const PARAMS: &[Param] = &[
    Param::string("cluster_name")
        .required()
        .unique()
        .short("Slony-I cluster name")
        .long(
            "The name of the Slony-I cluster (slonik's `cluster name`, slon's first \
             argument); its schema in the database is _NAME. An ASCII letter or _, then \
             letters, digits, _ or $, and no slonik keyword.",
        ),
    Param::string("conninfo")
        .required()
        .unique()
        .short("The local node's database (libpq conninfo)")
        .long(
            "How slon reaches this node's database, as a libpq conninfo string (for example \
             \"host=/var/run/postgresql dbname=app user=slony\"); slon gets it as it is. \
             The node id is read from that database (Slony's getLocalNodeId). The agent \
             connects with the same conninfo, as the OS user of the user parameter, so \
             peer authentication over the unix socket needs no password; without a \
             password in the conninfo, the agent takes the one libpq would find in that \
             user's ~/.pgpass, as slon does. A missing user \
             means the OS user and a missing host the unix socket directory \
             /var/run/postgresql, as for libpq. The agent reads the keywords host, \
             hostaddr, port, dbname, user, password, options, application_name, \
             connect_timeout, sslmode, keepalives* and target_session_attrs, and the \
             postgresql:// form; a conninfo with another keyword (passfile, service, \
             sslcert...) is refused.",
        ),
    Param::string("slon")
        .default("/usr/bin/slon")
        .short("The slon binary")
        .long("Full path of the slon daemon."),
    Param::string("config_file")
        .default("")
        .short("slon configuration file")
        .long(
            "A slon configuration file (slon -f) for the settings that have no option \
             (for example log_level, sql_on_connection). Its cluster_name and conn_info \
             are overridden by the parameters. Empty: none.",
        ),
    Param::string("options")
        .default("")
        .short("Extra slon options")
        .long(
            "Further slon options, separated by spaces, given to slon as separate \
             arguments without a shell (for example \"-s 1000 -t 5000 -d 2\"). Allowed: \
             -d, -s, -t, -o, -g, -c, -a, -x, -q, -r, -l with their value. -p and -f are \
             the pidfile and config_file parameters; a value cannot hold a space (use \
             config_file).",
        ),
    Param::string("pidfile")
        .default("")
        .short("slon's pid file")
        .long(
            "The pid file slon writes (slon -p). Empty: /var/run/slony1/RESOURCE.pid. Its \
             directory is created, owned by user, when missing. The agent never trusts it \
             alone: the PID is checked through /proc (the slon binary, this cluster and \
             conninfo on its command line).",
        ),
    Param::string("logfile")
        .default("")
        .short("slon's log file")
        .long(
            "Where slon's output is appended. Empty: /var/log/slony1/slon-RESOURCE.log \
             (Debian's directory). Created, owned by user, when missing; start quotes its \
             last FATAL line when slon does not come up.",
        ),
    Param::string("user")
        .default("postgres")
        .short("OS user slon runs as")
        .long(
            "The operating system account slon runs as. The agent also connects to the \
             node's database (and to the other nodes, admin_conninfo) as this account: peer \
             authentication, or the password libpq would find in its ~/.pgpass.",
        ),
    Param::integer("lag_time")
        .default("120")
        .short("Lag (seconds) behind the origin before the monitor reports degraded")
        .long(
            "On a subscriber: when the newest event of a set's origin that this node has \
             confirmed is older than this, the monitor answers OCF_DEGRADED (190): slon \
             runs and holds its node, but replication is behind. The age is the origin's \
             event timestamp against this server's clock. slon's default \
             sync_interval_timeout (10 s) bounds how old an idle origin's newest event is. \
             0: not checked.",
        ),
    Param::integer("lag_events")
        .default("0")
        .short("Events waiting unconfirmed before the monitor reports degraded")
        .long(
            "On a subscriber: when more than this many events of a set's origin have \
             reached this node and wait unconfirmed, the monitor answers OCF_DEGRADED \
             (190). 0: not checked.",
        ),
    Param::string("sets")
        .default("")
        .short("Replication sets whose origin is the promoted role")
        .long(
            "Promotable clones: the ids of the replication sets (separated by spaces or \
             commas) whose origin the Promoted role is. They must share one origin. Outside \
             promotable clones: the sets whose lag the monitor checks (empty: every set \
             this node subscribes to).",
        ),
    Param::string("admin_conninfo")
        .default("")
        .short("Every node's admin conninfo, for slonik (promotable clones)")
        .long(
            "Promotable clones only (required there): how slonik reaches every node of the \
             cluster, as ID:CONNINFO entries separated by semicolons, for example \
             \"1:host=db1 dbname=app user=slony; 2:host=db2 dbname=app user=slony\". \
             Each becomes one `node ID admin conninfo = '...';` line of slonik's preamble \
             (quoted for slonik). A semicolon inside a single-quoted conninfo value is \
             part of the value. The agent also asks the other nodes through them (whether \
             a returning origin was failed over), as the user parameter's account, with \
             the password from its ~/.pgpass when the conninfo gives none.",
        ),
    Param::choice("failback", &["auto", "off"])
        .default("auto")
        .short("What start does on a failed-over old origin: auto or off")
        .long(
            "Promotable clones: a node that comes back after its sets were failed over to \
             another node still names itself the origin in its own catalog. auto: start \
             saves the rows of the sets' tables that this node holds (pg_dump --data-only \
             into failback_dir, tusk-failback-CLUSTER-nodeN-EPOCH.sql, logged: \
             rows it committed as origin and never replicated would otherwise vanish, since \
             SUBSCRIBE SET empties the tables), drops the node from the cluster if it is \
             still listed, drops its leftover schema, stores it again (STORE NODE, STORE \
             PATH with the admin_conninfo of each node) and subscribes it to the sets; it \
             can then become the origin again by a planned move. off: start fails (5) and \
             names these steps.",
        ),
    Param::string("failback_dir")
        .default("")
        .short("Where failback saves a returning node's rows")
        .long(
            "The directory, writable by user, where failback=auto keeps the pg_dump of a \
             failed-over node's rows before it is subscribed again. Empty: the user's home \
             directory.",
        ),
    Param::string("slonik")
        .default("/usr/bin/slonik")
        .short("The slonik binary")
        .long("Full path of slonik, which the promotable role runs for MOVE SET and FAILOVER."),
];

/// slon options that take a value, from `slon -h` of 2.2.11; `-p` and `-f`
/// are parameters of their own, `-h` and `-v` make slon print and exit.
const OPTIONS_WITH_VALUE: &[char] = &['d', 's', 't', 'o', 'g', 'c', 'a', 'x', 'q', 'r', 'l'];

/// When the monitor calls a subscriber's lag degraded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagLimits {
    pub time: Option<Duration>,
    pub events: Option<u64>,
}

/// What the promotable role needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRole {
    /// Empty: every set this node receives (monitor), none (promotable).
    pub sets: Vec<u32>,
    /// Rejoin a failed-over old origin at start.
    pub failback: bool,
    /// Where its rows are saved first; `None`: the user's home.
    pub failback_dir: Option<PathBuf>,
    /// `(node id, conninfo)` for slonik's preamble, in the given order.
    pub admin_conninfo: Vec<(u32, String)>,
    pub slonik: PathBuf,
}

/// The validated configuration of one slon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlonConfig {
    /// What identifies this resource's slon.
    pub instance: Instance,
    pub config_file: Option<PathBuf>,
    pub options: Vec<String>,
    pub logfile: PathBuf,
    pub lag: LagLimits,
    pub origin: OriginRole,
}

impl SlonConfig {
    /// The parameters of this call; `instance` (OCF_RESOURCE_INSTANCE)
    /// names the default pid and log files.
    pub fn from_env(instance: &str) -> Result<SlonConfig> {
        Self::from_params(&Params::from_env(PARAMS)?, instance)
    }

    pub fn from_params(p: &Params, instance: &str) -> Result<SlonConfig> {
        let ident = Instance::from_params(p, instance)?;
        database::parse_conninfo(&ident.conninfo, &ident.user)?;
        let text = |name: &str| p.string(name).unwrap_or_default().trim().to_string();
        let seconds = |name: &str| -> Result<Option<Duration>> {
            Ok(non_negative(p, name)?.map(Duration::from_secs))
        };
        let config_file = absolute_path(p, "config_file")?;
        Ok(SlonConfig {
            instance: ident,
            config_file,
            options: slon_options(&text("options"))?,
            logfile: absolute_path(p, "logfile")?
                .unwrap_or_else(|| default_file("/var/log/slony1", "slon-", instance, ".log")),
            lag: LagLimits {
                time: seconds("lag_time")?,
                events: non_negative(p, "lag_events")?,
            },
            origin: OriginRole {
                sets: set_ids(&text("sets"))?,
                failback: p.choice("failback") != Some("off"),
                failback_dir: absolute_path(p, "failback_dir")?,
                admin_conninfo: admin_conninfo(&text("admin_conninfo"))?,
                slonik: absolute_path(p, "slonik")?.expect("slonik has a default"),
            },
        })
    }

    /// slon's arguments after the program name: the options, the pid file,
    /// then the two operands the agent finds its slon by.
    pub fn slon_args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(f) = &self.config_file {
            args.push("-f".into());
            args.push(f.into());
        }
        args.extend(self.options.iter().map(Into::into));
        let i = &self.instance;
        args.push("-p".into());
        args.push(i.pid_file.clone().into());
        args.push(i.cluster.as_str().into());
        args.push(i.conninfo.clone().into());
        args
    }
}

/// What identifies this resource's slon on the host: all that stop needs,
/// parsed on its own so that a stop succeeds while another parameter is
/// invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub cluster: ClusterName,
    pub conninfo: String,
    pub slon_binary: PathBuf,
    pub pid_file: PathBuf,
    pub user: String,
}

impl Instance {
    /// The node's database, reached as `as_user`.
    pub fn database(&self, as_user: Option<(Uid, Gid)>) -> Result<NodeDb> {
        NodeDb::from_conninfo(&self.conninfo, &self.user, as_user)
    }

    /// What a slon of this node looks like, for the lock judgement.
    pub fn expected(&self) -> nodelock::Expected<'_> {
        nodelock::Expected {
            cluster: &self.cluster,
            slon_binary: &self.slon_binary,
        }
    }

    pub fn from_env(instance: &str) -> Result<Instance> {
        let names = ["cluster_name", "conninfo", "slon", "pidfile", "user"];
        let decls: Vec<Param> = PARAMS
            .iter()
            .filter(|p| names.contains(&p.name))
            .copied()
            .collect();
        Self::from_params(&Params::from_env(&decls)?, instance)
    }

    fn from_params(p: &Params, instance: &str) -> Result<Instance> {
        let cluster = ClusterName::parse(p.string("cluster_name").unwrap_or_default().trim())?;
        let conninfo = p.string("conninfo").unwrap_or_default().to_string();
        if conninfo.trim().is_empty() || conninfo.contains('\0') {
            return Err(OcfError::configured(
                "parameter conninfo is empty or holds a NUL byte",
            ));
        }
        let user = p.string("user").unwrap_or_default().trim().to_string();
        if user.is_empty() {
            return Err(OcfError::configured("parameter user is empty"));
        }
        Ok(Instance {
            cluster,
            conninfo,
            slon_binary: absolute_path(p, "slon")?.expect("slon has a default"),
            pid_file: absolute_path(p, "pidfile")?
                .unwrap_or_else(|| default_file("/var/run/slony1", "", instance, ".pid")),
            user,
        })
    }
}

/// `DIR/PREFIX<resource>SUFFIX`, the resource's name kept to characters
/// that are safe in a file name (`slon:1` is the clone instance of `slon`).
fn default_file(dir: &str, prefix: &str, instance: &str, suffix: &str) -> PathBuf {
    let resource = ocf::attributes::resource_of(instance);
    let mut name: String = resource
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name = format!("slon{name}");
    }
    Path::new(dir).join(format!("{prefix}{name}{suffix}"))
}

fn non_negative(p: &Params, name: &str) -> Result<Option<u64>> {
    let v = p.integer(name).expect("declared with a default");
    match u64::try_from(v) {
        Ok(0) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(OcfError::configured(format!(
            "parameter {name}: '{v}' is negative"
        ))),
    }
}

/// A path parameter: `None` when empty, an error when relative.
fn absolute_path(p: &Params, name: &str) -> Result<Option<PathBuf>> {
    match p.string(name).map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) if !v.starts_with('/') => Err(OcfError::configured(format!(
            "parameter {name}: '{v}' is not an absolute path"
        ))),
        Some(v) if v.contains('\0') => Err(OcfError::configured(format!(
            "parameter {name} holds a NUL byte"
        ))),
        v => Ok(v.map(PathBuf::from)),
    }
}

/// The `options` parameter as slon's argument words. slon is executed
/// directly, so nothing needs quoting; what is checked is that every word
/// is an option slon 2.2.11 knows, with its value, so that no word can be
/// taken for the cluster name or the conninfo (which the agent finds its
/// slon by) and no option replaces the pid file or configuration file.
pub fn slon_options(raw: &str) -> Result<Vec<String>> {
    let bad = |why: String| OcfError::configured(format!("parameter options: {why}"));
    let words: Vec<String> = raw.split_ascii_whitespace().map(str::to_string).collect();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let mut chars = word.chars();
        let (Some('-'), Some(opt)) = (chars.next(), chars.next()) else {
            return Err(bad(format!("{word:?} is not an option")));
        };
        if opt == 'p' || opt == 'f' {
            return Err(bad(format!(
                "-{opt} is set by the {} parameter",
                if opt == 'p' { "pidfile" } else { "config_file" }
            )));
        }
        if !OPTIONS_WITH_VALUE.contains(&opt) {
            return Err(bad(format!(
                "{word:?} is not a slon option the agent passes on"
            )));
        }
        if chars.as_str().is_empty() {
            i += 1;
            if i == words.len() {
                return Err(bad(format!("-{opt} needs a value")));
            }
        }
        i += 1;
    }
    Ok(words)
}

/// `1`, `1 2`, `1,2`: positive set ids, each once.
pub fn set_ids(raw: &str) -> Result<Vec<u32>> {
    let mut sets = Vec::new();
    for word in raw
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        let id = word
            .parse::<u32>()
            .ok()
            .filter(|id| *id > 0 && *id <= i32::MAX as u32);
        match id {
            Some(id) if !sets.contains(&id) => sets.push(id),
            Some(id) => {
                return Err(OcfError::configured(format!(
                    "parameter sets: set {id} is listed twice"
                )))
            }
            None => {
                return Err(OcfError::configured(format!(
                    "parameter sets: {word:?} is not a set id (a positive number)"
                )))
            }
        }
    }
    Ok(sets)
}

/// `ID:CONNINFO; ID:CONNINFO`. A `;` splits entries only outside a
/// single-quoted conninfo value (libpq's quoting, where `\'` is a quote
/// inside one), so a password holding `;` stays whole.
pub fn admin_conninfo(raw: &str) -> Result<Vec<(u32, String)>> {
    let bad = |why: String| OcfError::configured(format!("parameter admin_conninfo: {why}"));
    if raw.contains('\0') {
        return Err(bad("holds a NUL byte".into()));
    }
    let mut entries = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in raw.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '\'' {
            quoted = !quoted;
        } else if c == ';' && !quoted {
            entries.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    if quoted {
        return Err(bad("a single quote is not closed".into()));
    }
    entries.push(current);
    let mut nodes: Vec<(u32, String)> = Vec::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let Some((id, conninfo)) = entry.split_once(':') else {
            return Err(bad(format!(
                "entry {} has no node id (write ID:CONNINFO)",
                nodes.len() + 1
            )));
        };
        let Some(id) = id
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|id| *id > 0 && *id <= i32::MAX as u32)
        else {
            return Err(bad(format!(
                "entry {}: {:?} is not a node id",
                nodes.len() + 1,
                id.trim()
            )));
        };
        let conninfo = conninfo.trim();
        if conninfo.is_empty() {
            return Err(bad(format!("node {id} has an empty conninfo")));
        }
        if nodes.iter().any(|(n, _)| *n == id) {
            return Err(bad(format!("node {id} is listed twice")));
        }
        nodes.push((id, conninfo.to_string()));
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf::Status;

    fn parse(pairs: &[(&str, &str)]) -> Result<SlonConfig> {
        SlonConfig::from_params(&Params::from_pairs(PARAMS, pairs)?, "slon-app:1")
    }

    const MINIMAL: [(&str, &str); 2] = [
        ("cluster_name", "tusk"),
        ("conninfo", "host=/run/pg dbname=app"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v = MINIMAL.to_vec();
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn defaults_are_debian_s() {
        let c = parse(&MINIMAL).unwrap();
        assert_eq!(c.instance.cluster.as_str(), "tusk");
        assert_eq!(c.instance.slon_binary, PathBuf::from("/usr/bin/slon"));
        assert_eq!(
            c.instance.pid_file,
            PathBuf::from("/var/run/slony1/slon-app.pid")
        );
        assert_eq!(
            c.logfile,
            PathBuf::from("/var/log/slony1/slon-slon-app.log")
        );
        assert_eq!(c.instance.user, "postgres");
        assert_eq!(c.lag.time, Some(Duration::from_secs(120)));
        assert_eq!(c.lag.events, None);
        assert!(c.options.is_empty() && c.origin.sets.is_empty());
        assert_eq!(c.origin.slonik, PathBuf::from("/usr/bin/slonik"));
    }

    #[test]
    fn slon_gets_options_pid_file_and_the_two_operands_last() {
        let c = parse(&with(&[
            ("options", " -s 500  -t1000 "),
            ("config_file", "/etc/slony1/a.conf"),
            ("pidfile", "/run/s.pid"),
        ]))
        .unwrap();
        let args: Vec<String> = c
            .slon_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-f",
                "/etc/slony1/a.conf",
                "-s",
                "500",
                "-t1000",
                "-p",
                "/run/s.pid",
                "tusk",
                "host=/run/pg dbname=app"
            ]
        );
        let os: Vec<std::ffi::OsString> = std::iter::once("slon".into())
            .chain(c.slon_args())
            .collect();
        assert_eq!(crate::nodelock::slon_cluster(&os).as_deref(), Some("tusk"));
    }

    #[test]
    fn options_that_would_change_what_the_agent_finds_are_refused() {
        for (bad, why) in [
            ("-p /tmp/x.pid", "pidfile parameter"),
            ("-f /etc/x", "config_file parameter"),
            ("-s", "needs a value"),
            ("-s 500 other", "\"other\" is not an option"),
            ("tusk", "is not an option"),
            ("-v", "not a slon option"),
            ("--", "not a slon option"),
            ("-", "is not an option"),
        ] {
            let e = slon_options(bad).unwrap_err();
            assert_eq!(e.status(), Status::ErrConfigured, "{bad}");
            assert!(e.reason().contains(why), "{bad}: {}", e.reason());
        }
        assert_eq!(slon_options("-d 2 -x /bin/true").unwrap().len(), 4);
    }

    #[test]
    fn set_ids_are_positive_numbers_once() {
        assert_eq!(set_ids("1").unwrap(), [1]);
        assert_eq!(set_ids(" 1, 2 3 ").unwrap(), [1, 2, 3]);
        assert!(set_ids("").unwrap().is_empty());
        for bad in ["0", "-1", "a", "1 1", "1;2", "99999999999"] {
            assert_eq!(
                set_ids(bad).unwrap_err().status(),
                Status::ErrConfigured,
                "{bad}"
            );
        }
    }

    #[test]
    fn admin_conninfo_is_split_at_semicolons_outside_quotes() {
        let nodes =
            admin_conninfo(r"1:host=db1 dbname=app; 2: host=db2 password='a;b\'c' dbname=app ;")
                .unwrap();
        assert_eq!(
            nodes,
            [
                (1, "host=db1 dbname=app".to_string()),
                (2, r"host=db2 password='a;b\'c' dbname=app".to_string())
            ]
        );
        assert!(admin_conninfo("").unwrap().is_empty());
        for (bad, why) in [
            ("host=db1", "no node id"),
            ("x:host=db1", "not a node id"),
            ("1:", "empty conninfo"),
            ("1:a; 1:b", "listed twice"),
            ("1:password='x", "not closed"),
        ] {
            let e = admin_conninfo(bad).unwrap_err();
            assert_eq!(e.status(), Status::ErrConfigured);
            assert!(e.reason().contains(why), "{bad}: {}", e.reason());
        }
    }

    #[test]
    fn bad_values_are_configuration_errors_naming_the_parameter() {
        for (extra, needle) in [
            (vec![("cluster_name", "set")], "slonik keyword"),
            (vec![("cluster_name", "a-b")], "Slony cluster name"),
            (vec![("conninfo", "dbname='x")], "conninfo"),
            (vec![("conninfo", "passfile=/x")], "conninfo"),
            (vec![("slon", "slon")], "slon: 'slon'"),
            (vec![("pidfile", "run/x.pid")], "pidfile"),
            (vec![("lag_time", "-5")], "lag_time: '-5'"),
            (vec![("lag_events", "x")], "lag_events"),
            (vec![("user", " ")], "user"),
        ] {
            let mut pairs: Vec<(&str, &str)> = MINIMAL
                .iter()
                .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
                .copied()
                .collect();
            pairs.extend(extra.iter().copied());
            let e = parse(&pairs).unwrap_err();
            assert_eq!(e.status(), Status::ErrConfigured, "{pairs:?}");
            assert!(e.reason().contains(needle), "{} lacks {needle}", e.reason());
        }
        assert!(parse(&[("cluster_name", "tusk")]).is_err());
    }

    #[test]
    fn default_files_keep_to_safe_names() {
        assert_eq!(
            default_file("/d", "", "a/b c:2", ".pid"),
            PathBuf::from("/d/a_b_c.pid")
        );
        assert_eq!(
            default_file("/d", "", "-", ".pid"),
            PathBuf::from("/d/slon-.pid")
        );
        assert_eq!(
            default_file("/d", "", "..", ".pid"),
            PathBuf::from("/d/slon...pid")
        );
    }
}
