//! rebuild (rebuild=auto): a node that has no data, or whose data cannot
//! follow the primary, copied anew from the primary with pg_basebackup.
//!
//! A base backup takes as long as the database is large, and while an
//! action runs Pacemaker starts no new transition: a rebuild inside start
//! would delay every failover in the cluster. So start launches a worker
//! (this same binary, with an argument that is no OCF action name) in a
//! session of its own and returns once the worker has recorded itself; the
//! monitor reports the rebuild as degraded (190) with its progress; stop
//! ends it. The record lives in the agent's run directory
//! (/run/tusk/RESOURCE/rebuild-HASH of pgdata) and names the worker by PID and start time,
//! validated through /proc like any other process: a PID reused by another
//! process never counts as the worker.
//!
//! The copy is made in a new directory beside pgdata and swapped in by
//! rename once complete, so an interrupted rebuild (a killed worker, a
//! stop, a node crash) leaves the old directory as it was, and the next
//! start starts over (pg_basebackup cannot resume).

use crate::cluster::Cluster;
use crate::config::{PgConfig, RebuildPolicy};
use crate::rejoin::{self, PrimaryInfo};
use crate::rewind::RewindMarker;
use crate::wal::{Fork, Lsn};
use crate::{slots, start};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};
use ocf::attributes::resource_of;
use ocf::process::{self, Expected, ProcInfo};
use ocf::{command, error, info, warning, Deadline, OcfEnv, OcfError, OsUser, Result, Status};
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The worker's argument: not an OCF action name, so that no caller of the
/// agent's actions can reach it by accident.
pub const WORKER_ARG: &str = "--tusk-rebuild-worker";

/// The WAL position a node being rebuilt publishes at pre-promote: below
/// every real one, so that a promotion compares it and never waits for it.
pub const NO_CANDIDATE: crate::wal::Position = crate::wal::Position {
    timeline: 0,
    lsn: Lsn(0),
};

/// The node attribute (`RESOURCE-rebuild`) that shows a rebuild's progress.
pub const ATTRIBUTE: &str = "rebuild";

// ---------------------------------------------------------------- decisions

/// What pgdata holds, as far as a rebuild is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    Missing,
    Empty,
    Present,
}

impl DataDir {
    pub fn of(pgdata: &Path) -> Result<DataDir> {
        match std::fs::read_dir(pgdata) {
            Ok(mut entries) => Ok(if entries.next().is_none() {
                DataDir::Empty
            } else {
                DataDir::Present
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DataDir::Missing),
            // Not a directory, or unreadable: the usual checks say why.
            Err(_) => Ok(DataDir::Present),
        }
    }

    /// A node with nothing to lose: nothing to check, everything to copy.
    pub fn is_blank(self) -> bool {
        self != DataDir::Present
    }
}

/// What start found that a rebuild could answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// pgdata missing or empty.
    Blank,
    /// The record of a pg_rewind that never finished.
    RewindInterrupted,
    /// Diverged in a way pg_rewind cannot see (two promotions to one
    /// timeline number).
    Unrewindable,
    /// pg_rewind ran and failed.
    RewindFailed,
    /// The primary removed WAL this node needs, or its slot lost it.
    WalGone,
    /// Diverged: pg_rewind repairs that (rewind=auto), or the operator
    /// chose to (rewind=off).
    Diverged,
    /// The primary is another database cluster: a configuration mistake
    /// is likelier than a node to replace.
    OtherCluster,
    /// This node is on a newer timeline than the "primary": that one is
    /// stale, not this node.
    Ahead,
}

/// Whether start rebuilds for `trigger` (before [`permitted`] has its say).
pub fn wanted(policy: RebuildPolicy, trigger: Trigger) -> bool {
    policy == RebuildPolicy::Auto
        && matches!(
            trigger,
            Trigger::Blank
                | Trigger::RewindInterrupted
                | Trigger::Unrewindable
                | Trigger::RewindFailed
                | Trigger::WalGone
        )
}

/// What this node's data was, for [`permitted`]: `None` for a blank one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Former {
    /// It last ran as a primary (shut down or crashed as one).
    pub was_primary: bool,
    /// The timeline its WAL ends on, if known.
    pub timeline: Option<u32>,
}

/// Whether this node's data may be replaced by a copy of the primary's.
/// A node that was a primary may hold acknowledged commits nobody else
/// has, unless another node has been promoted since: the primary must be
/// on a newer timeline than the one this node was primary on.
pub fn permitted(
    former: Option<Former>,
    primary_timeline: Option<u32>,
) -> std::result::Result<(), String> {
    if former.is_none() {
        // Nothing to lose: the worker waits for a primary if none answers.
        return Ok(());
    }
    let Some(primary_timeline) = primary_timeline else {
        return Err("no primary answers at primary_host: nothing to copy from".into());
    };
    match former {
        Some(Former {
            was_primary: true,
            timeline,
        }) => match timeline {
            Some(t) if primary_timeline > t => Ok(()),
            Some(t) => Err(format!(
                "this node was a primary on timeline {t} and the primary is on timeline \
                 {primary_timeline}, not a newer one: its data may hold the only copy of \
                 acknowledged commits, so it is not rebuilt"
            )),
            None => Err(
                "this node was a primary on a timeline that cannot be read: its data may hold \
                 the only copy of acknowledged commits, so it is not rebuilt"
                    .into(),
            ),
        },
        _ => Ok(()),
    }
}

/// What a rebuild needs on pgdata's file system, and what it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Free to an unprivileged user (pg_basebackup runs as pguser).
    pub available: u64,
    /// The primary's databases (the copy's size, tablespaces included).
    pub databases: u64,
    /// WAL streamed beside the copy while it runs: the primary's
    /// max_wal_size, as much as a checkpoint cycle may write.
    pub wal_margin: u64,
}

pub fn space_check(space: Space) -> std::result::Result<(), String> {
    let needed = space.databases.saturating_add(space.wal_margin);
    if space.available >= needed {
        return Ok(());
    }
    Err(format!(
        "not enough disk space to rebuild: {} MB needed (databases {} MB + WAL {} MB), {} MB free",
        mb(needed),
        mb(space.databases),
        mb(space.wal_margin),
        mb(space.available)
    ))
}

fn mb(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// The progress shown while copying: the new directory's size against the
/// primary's databases. Capped at 99% while the worker runs: the WAL
/// streamed beside the copy makes it larger than the databases.
pub fn progress(copied: u64, total: Option<u64>) -> (Option<u8>, String) {
    match total.filter(|t| *t > 0) {
        Some(total) => {
            let percent = (copied.saturating_mul(100) / total).min(99) as u8;
            (
                Some(percent),
                format!("{percent}% ({} of {} MB)", mb(copied), mb(total)),
            )
        }
        None => (None, format!("{} MB copied", mb(copied))),
    }
}

/// postgresql.auto.conf of the copy without the settings that make sense
/// on the primary alone (ALTER SYSTEM wrote them there): a standby that
/// kept the primary's synchronous_standby_names would make its own commits
/// wait once promoted, for standbys it never chose. Returns the text and
/// the names removed.
pub fn without_primary_settings(text: &str) -> (String, Vec<String>) {
    const PRIMARY_ONLY: [&str; 1] = ["synchronous_standby_names"];
    let mut removed = Vec::new();
    let mut kept = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let name = line
            .trim_start()
            .split(|c: char| c == '=' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if PRIMARY_ONLY.contains(&name.as_str()) {
            removed.push(name);
        } else {
            kept.push_str(line);
        }
    }
    (kept, removed)
}

/// The new directory, beside the one it replaces.
pub fn building_dir(dir: &Path) -> PathBuf {
    suffixed(dir, ".tusk-rebuild")
}

/// Where the replaced directory is kept.
pub fn kept_dir(dir: &Path, when: SystemTime) -> PathBuf {
    suffixed(dir, &format!(".tusk-old-{}", utc_stamp(when)))
}

fn suffixed(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `20261202T035300Z`, from the civil-from-days algorithm (no time zone
/// database: UTC).
pub fn utc_stamp(when: SystemTime) -> String {
    let secs = when
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The timeline the primary wrote `lsn` on, from its timeline history: a
/// segment before a switchpoint lives under the older timeline's name.
pub fn timeline_at(lsn: Lsn, primary_timeline: u32, history: &[Fork]) -> u32 {
    history
        .iter()
        .find(|f| lsn < f.switchpoint)
        .map_or(primary_timeline, |f| f.parent)
}

/// The worker's record: one line of `key=value` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub pid: i32,
    /// Clock ticks after boot at which the worker started: with the PID,
    /// one process for the machine's uptime.
    pub start_ticks: u64,
    /// Seconds since 1970 when the rebuild began.
    pub started: u64,
    /// The primary's databases, once asked.
    pub total: Option<u64>,
    /// The copy is in place: the worker starts the standby.
    pub swapped: bool,
}

/// What the monitor shows of a running rebuild: the attribute's value and
/// the words of its reason.
pub fn shown(record: &Record, copied: u64) -> (String, String) {
    if record.swapped {
        return ("99%".into(), "copied, starting the standby".into());
    }
    if record.total.is_none() {
        return ("0%".into(), "asking the primary".into());
    }
    let (percent, shown) = progress(copied, record.total);
    let value = percent.map_or_else(|| format!("{}MB", mb(copied)), |p| format!("{p}%"));
    (value, shown)
}

impl Record {
    pub fn to_line(self) -> String {
        let mut line = format!(
            "pid={} ticks={} started={}",
            self.pid, self.start_ticks, self.started
        );
        if let Some(total) = self.total {
            line.push_str(&format!(" total={total}"));
        }
        if self.swapped {
            line.push_str(" swapped=1");
        }
        line.push('\n');
        line
    }

    pub fn parse(text: &str) -> Option<Record> {
        let mut pid = None;
        let mut start_ticks = None;
        let mut started = None;
        let mut total = None;
        let mut swapped = false;
        for word in text.lines().next()?.split_whitespace() {
            let (key, value) = word.split_once('=')?;
            match key {
                "pid" => pid = value.parse().ok().filter(|p| *p > 0),
                "ticks" => start_ticks = value.parse().ok(),
                "started" => started = value.parse().ok(),
                "total" => total = value.parse().ok(),
                "swapped" => swapped = value == "1",
                _ => {}
            }
        }
        Some(Record {
            pid: pid?,
            start_ticks: start_ticks?,
            started: started?,
            total,
            swapped,
        })
    }
}

// ------------------------------------------------------------------ effects

/// What the run directory says about a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// None in progress, none failed.
    None,
    Running(Record, ProcInfo),
    /// The record names a worker that no longer runs (killed, or the PID
    /// now names another process).
    Interrupted(String),
    /// The worker gave up and said why.
    Failed(String),
}

/// One data directory's rebuild, as recorded in the run directory.
pub struct Rebuild {
    dir: PathBuf,
    pub pgdata: PathBuf,
}

impl Rebuild {
    pub fn new(env: &OcfEnv, pgdata: &Path) -> Rebuild {
        Self::in_dir(
            &Path::new("/run/tusk").join(resource_of(&env.instance)),
            pgdata,
        )
    }

    pub fn of(resource: &str, pgdata: &Path) -> Rebuild {
        Self::in_dir(&Path::new("/run/tusk").join(resource), pgdata)
    }

    pub fn in_dir(dir: &Path, pgdata: &Path) -> Rebuild {
        Rebuild {
            dir: dir.to_path_buf(),
            pgdata: pgdata.to_path_buf(),
        }
    }

    /// One name per data directory, as the rewind's record.
    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!(
            "rebuild-{:016x}{suffix}",
            crate::rewind::fnv1a(&self.pgdata)
        ))
    }

    /// The worker's record: its PID, start time and progress.
    pub fn record_path(&self) -> PathBuf {
        self.file("")
    }

    fn failed_path(&self) -> PathBuf {
        self.file("-failed")
    }

    /// The worker's stderr: what pg_basebackup and the worker said.
    pub fn log_path(&self) -> PathBuf {
        self.file(".log")
    }

    /// One stat when no rebuild is recorded: the monitor calls it always.
    pub fn observe(&self) -> Observed {
        if let Ok(Some(f)) = ocf::fs::read_bounded(&self.record_path(), 512) {
            let Some(record) = Record::parse(&String::from_utf8_lossy(&f.bytes)) else {
                return Observed::Interrupted(format!(
                    "{} is not a rebuild record",
                    self.record_path().display()
                ));
            };
            return match self.worker(&record) {
                Ok(p) => Observed::Running(record, p),
                Err(why) => Observed::Interrupted(why),
            };
        }
        match ocf::fs::read_bounded(&self.failed_path(), 4096) {
            Ok(Some(f)) => Observed::Failed(
                String::from_utf8_lossy(&f.bytes)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            ),
            _ => Observed::None,
        }
    }

    /// The worker the record names, if it is still that process.
    fn worker(&self, record: &Record) -> std::result::Result<ProcInfo, String> {
        let gone = || format!("the rebuild's worker (PID {}) is gone", record.pid);
        let p = ProcInfo::read(record.pid).map_err(|e| e.to_string())?;
        let p = p.filter(|p| !p.has_exited()).ok_or_else(gone)?;
        if p.start_ticks != record.start_ticks {
            return Err(format!("{}; its PID now names another process", gone()));
        }
        let me = std::env::current_exe().ok();
        let expected = Expected {
            exe: me.as_deref(),
            arg: Some(OsStr::new(WORKER_ARG)),
            uid: Some(0),
            ..Default::default()
        };
        match process::mismatch(&p, &expected) {
            None => Ok(p),
            Some(why) => Err(format!("PID {} {why}", p.pid)),
        }
    }

    fn write_file(&self, path: &Path, text: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = ocf::fs::open_append_owned(&tmp, 0o600, None)?;
        f.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, path)
    }

    fn write_record(&self, record: Record) -> std::io::Result<()> {
        self.write_file(&self.record_path(), &record.to_line())
    }

    fn forget(&self) {
        let _ = std::fs::remove_file(self.record_path());
        let _ = std::fs::remove_file(self.failed_path());
    }

    /// Launches the worker, detached, and waits until it has recorded
    /// itself (or failed at once).
    pub fn spawn(&self, deadline: &Deadline) -> Result<()> {
        use std::os::unix::process::CommandExt;
        self.forget();
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| OcfError::generic(format!("cannot create {}: {e}", self.dir.display())))?;
        let log = ocf::fs::open_append_owned(&self.log_path(), 0o600, None).map_err(|e| {
            OcfError::generic(format!("cannot open {}: {e}", self.log_path().display()))
        })?;
        let me = std::env::current_exe()
            .map_err(|e| OcfError::generic(format!("cannot find the agent's binary: {e}")))?;
        let mut cmd = std::process::Command::new(&me);
        cmd.arg(WORKER_ARG)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        // SAFETY: setsid is async-signal-safe. A session of its own: the
        // executor's timeout handling signals the action's process group,
        // and the worker must outlive the action.
        unsafe {
            cmd.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(Into::into));
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| OcfError::generic(format!("cannot start the rebuild worker: {e}")))?;
        let pid = child.id() as i32;
        // Reaped by a thread while start waits; once start exits, by init.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        let wait = Deadline::after(deadline.remaining().min(Duration::from_secs(10)));
        wait.wait_for(
            "the rebuild worker to record itself",
            Duration::from_millis(20),
            || match self.observe() {
                Observed::Running(r, _) if r.pid == pid => Ok(Some(())),
                Observed::Failed(why) => Err(OcfError::generic(format!("rebuild failed: {why}"))),
                _ => Ok(None),
            },
        )
    }

    /// Ends whatever runs of a rebuild and removes the half-built copy, so
    /// that the old directory is all that is left: stop, and a start that
    /// finds an interrupted or failed rebuild.
    pub fn end(&self, deadline: &Deadline) -> Result<bool> {
        let mut ended = false;
        if let Observed::Running(record, p) = self.observe() {
            info!("ending the rebuild's worker (PID {})", record.pid);
            ended = true;
            end_processes(&[p], deadline);
        }
        ended |= self.clear_leftovers(deadline)?;
        self.forget();
        Ok(ended)
    }

    /// What an ended rebuild left: processes still copying (pg_basebackup
    /// dies with its worker, but one started by a worker killed before it
    /// could ask for that does not) and the half-built directories.
    fn clear_leftovers(&self, deadline: &Deadline) -> Result<bool> {
        let mut ended = false;
        let building = building_dir(&self.pgdata);
        // Whatever copies has the directory the worker made before it: no
        // directory, no /proc scan (stop runs this every time).
        if std::fs::symlink_metadata(&building).is_err() {
            for ts in tablespace_builds(&self.pgdata) {
                remove_building(&ts)?;
            }
            return Ok(false);
        }
        let left = process::find_processes(&Expected {
            arg: Some(building.as_os_str()),
            ..Default::default()
        })
        .unwrap_or_default();
        if !left.is_empty() {
            ended = true;
            warning!(
                "ending what still copies into {} (PIDs {})",
                building.display(),
                ocf::service::pid_list(&left)
            );
            end_processes(&left, deadline);
        }
        remove_building(&building)?;
        for ts in tablespace_builds(&self.pgdata) {
            remove_building(&ts)?;
        }
        Ok(ended)
    }
}

/// SIGTERM, then SIGKILL inside the deadline, each only to the same
/// process (a reused PID is never signalled).
fn end_processes(procs: &[ProcInfo], deadline: &Deadline) {
    for p in procs {
        process::signal_if_same(p, Signal::SIGTERM);
    }
    let patience = Deadline::after(deadline.remaining().mul_f64(0.5));
    let _ = patience.wait_for("the rebuild to end", Duration::from_millis(50), || {
        Ok(procs
            .iter()
            .all(|p| !process::is_same_running(p))
            .then_some(()))
    });
    for p in procs {
        process::signal_if_same(p, Signal::SIGKILL);
    }
    let _ = deadline.wait_for("the rebuild to end", Duration::from_millis(20), || {
        Ok(procs
            .iter()
            .all(|p| !process::is_same_running(p))
            .then_some(()))
    });
}

fn remove_building(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        _ => {
            // remove_dir_all follows no symbolic link inside the tree.
            std::fs::remove_dir_all(dir)
                .map_err(|e| OcfError::generic(format!("cannot remove {}: {e}", dir.display())))?;
            info!("removed the half-built {}", dir.display());
            Ok(())
        }
    }
}

/// The tablespaces' half-built copies a worker recorded beside pgdata.
fn tablespace_builds(pgdata: &Path) -> Vec<PathBuf> {
    let list = suffixed(pgdata, ".tusk-rebuild-tablespaces");
    let found = match ocf::fs::read_bounded(&list, 1 << 16) {
        Ok(Some(f)) => String::from_utf8_lossy(&f.bytes)
            .lines()
            .filter(|l| l.starts_with('/'))
            .map(|l| building_dir(Path::new(l)))
            .collect(),
        _ => Vec::new(),
    };
    let _ = std::fs::remove_file(&list);
    found
}

/// Why start wants a rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub why: String,
    pub former: Option<Former>,
}

/// Starts a rebuild after checking it is permitted: returns once the
/// worker runs. The node gives up its promotion score first.
pub fn begin(cfg: &PgConfig, env: &OcfEnv, need: &Need, deadline: &Deadline) -> Result<Status> {
    let user = OsUser::lookup(&cfg.pguser)?;
    // The copy is made beside pgdata: without its parent (which a node's
    // packages make, /var/lib/postgresql/15 on Debian) the worker could
    // only fail later, in the monitor. Not installed here, on this node.
    let parent = cfg.pgdata.parent().unwrap_or(Path::new("/"));
    if !parent.is_dir() {
        return Err(OcfError::installed(format!(
            "cannot rebuild {}: its parent directory {} does not exist on this node (create it, \
             writable by {})",
            cfg.pgdata.display(),
            parent.display(),
            cfg.pguser
        )));
    }
    let asking = Deadline::after(
        deadline
            .remaining()
            .mul_f64(0.3)
            .min(Duration::from_secs(5)),
    );
    let primary = rejoin::ask_primary(cfg, (user.uid, user.gid), &asking)?;
    if let Err(why) = permitted(need.former, primary.as_ref().map(|p| p.timeline)) {
        error!("{}: {why}", need.why);
        return Err(OcfError::generic(format!("cannot rebuild: {why}")));
    }
    if let Err(e) = Cluster::new(env).clear_own_score(deadline) {
        warning!("{}", e.reason());
    }
    warning!(
        "{}: rebuilding {} from the primary at {} (rebuild=auto)",
        need.why,
        cfg.pgdata.display(),
        cfg.replication.primary_host
    );
    Rebuild::new(env, &cfg.pgdata).spawn(deadline)?;
    Ok(Status::Success)
}

/// The monitor's part: `Some` while a rebuild is recorded (190 with its
/// progress while it runs, a failure once it failed or was interrupted,
/// which Pacemaker recovers by stop and start, and start starts over).
/// One stat otherwise.
pub fn monitor(cfg: &PgConfig, env: &OcfEnv, deadline: &Deadline) -> Option<Result<Status>> {
    let rebuild = Rebuild::new(env, &cfg.pgdata);
    let cluster = Cluster::new(env);
    let observed = rebuild.observe();
    if observed == Observed::None {
        if cluster.note("rebuild-published").is_some() {
            if let Err(e) = cluster.publish_fresh(ATTRIBUTE, None, false, deadline) {
                warning!("{}", e.reason());
            }
            cluster.keep_note("rebuild-published", None);
        }
        return None;
    }
    Some(match observed {
        Observed::Running(record, _) => {
            let (value, shown) = shown(&record, dir_size(&building_dir(&cfg.pgdata)));
            cluster.keep_note("rebuild-published", Some(&value));
            if let Err(e) = cluster.publish(ATTRIBUTE, Some(&value), false, deadline) {
                warning!("{}", e.reason());
            }
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .saturating_sub(record.started);
            Err(OcfError::new(
                Status::Degraded,
                format!(
                    "rebuilding from {} for {secs}s: {shown}",
                    cfg.replication.primary_host
                ),
            ))
        }
        Observed::Interrupted(why) => Err(OcfError::generic(format!(
            "rebuild interrupted: {why}; the next start starts over"
        ))),
        Observed::Failed(why) => Err(OcfError::generic(format!("rebuild failed: {why}"))),
        Observed::None => unreachable!(),
    })
}

/// stop's part: ends a rebuild in progress (its copy removed, the old
/// directory left as it was) and takes its attribute back.
pub fn stop(env: &OcfEnv, pgdata: &Path, deadline: &Deadline) -> Result<()> {
    let rebuild = Rebuild::new(env, pgdata);
    if rebuild.end(deadline)? {
        info!("ended the rebuild of {}", pgdata.display());
    }
    let cluster = Cluster::new(env);
    if cluster.note("rebuild-published").is_some() {
        if let Err(e) = cluster.publish_fresh(ATTRIBUTE, None, false, deadline) {
            warning!("{}", e.reason());
        }
        cluster.keep_note("rebuild-published", None);
    }
    Ok(())
}

/// Bytes of the regular files under `dir` (no symbolic link followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// Under rebuild=auto, whether the primary still has the WAL this node
/// needs to stream from `end` (its own slot not lost, the segment file
/// there). `None`: it has, or cannot tell (then streaming will say).
pub fn wal_gone(
    cfg: &PgConfig,
    as_user: (Uid, Gid),
    node: &str,
    primary: &PrimaryInfo,
    end: Lsn,
    deadline: &Deadline,
) -> Option<String> {
    if !wanted(cfg.replication.rebuild, Trigger::WalGone) {
        return None;
    }
    let timeline = timeline_at(end, primary.timeline, &primary.history);
    let slot = slots::slot_name(node);
    // pg_walfile_name() names the segment holding the byte before its
    // argument, with the primary's current timeline and segment size. A
    // segment the primary has not begun yet does not exist either: only
    // one it wrote past is missing for good.
    let q = format!(
        "SELECT (SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot}'), \
         '{timeline:08X}' || substr(pg_walfile_name('{next}'), 9), \
         (pg_stat_file('pg_wal/{timeline:08X}' || substr(pg_walfile_name('{next}'), 9), true)).size \
         IS NULL AND pg_current_wal_lsn() > '{end}'::pg_lsn",
        next = Lsn(end.0 + 1)
    );
    let pg = rejoin::primary_client(cfg).ok()?;
    match pgclient::query(pg, Some(as_user), deadline, &q) {
        Ok(rows) => {
            if cfg.replication.slots && pgclient::value(&rows, 0, 0, 0) == Some("lost") {
                return Some(format!(
                    "the primary's replication slot {slot} lost the WAL this node needs"
                ));
            }
            let segment = pgclient::value(&rows, 0, 0, 1).unwrap_or("?");
            (pgclient::value(&rows, 0, 0, 2) == Some("t")).then(|| {
                format!(
                    "the primary no longer has WAL segment {segment}, which this node needs to \
                     stream from {end}"
                )
            })
        }
        Err(e) => {
            warning!(
                "cannot ask the primary whether it still has the WAL this node needs: {}",
                e.reason()
            );
            None
        }
    }
}

// ------------------------------------------------------------------- worker

/// How long a worker waits for a primary to copy from before it gives up
/// (the monitor then fails, and Pacemaker's restart tries again).
const WAIT_FOR_PRIMARY: Duration = Duration::from_secs(3600);

/// The worker's `main`: the configuration and environment are start's own,
/// inherited.
pub fn worker_main() -> std::process::ExitCode {
    let env = match OcfEnv::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("{}", e.reason());
            return std::process::ExitCode::FAILURE;
        }
    };
    ocf::log::Logger::from_env("postgresql", &env.instance).install();
    let cfg = match PgConfig::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{}", e.reason());
            return std::process::ExitCode::FAILURE;
        }
    };
    let rebuild = Rebuild::new(&env, &cfg.pgdata);
    let me = ProcInfo::read(std::process::id() as i32)
        .ok()
        .flatten()
        .expect("the worker reads its own /proc entry");
    let mut record = Record {
        pid: me.pid,
        start_ticks: me.start_ticks,
        started: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        total: None,
        swapped: false,
    };
    if let Err(e) = rebuild.write_record(record) {
        eprintln!("cannot record the rebuild: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match work(&cfg, &env, &rebuild, &mut record) {
        Ok(()) => {
            let _ = std::fs::remove_file(rebuild.record_path());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            error!("rebuild of {} failed: {}", cfg.pgdata.display(), e.reason());
            let _ = rebuild.write_file(&rebuild.failed_path(), &format!("{}\n", e.reason()));
            let _ = std::fs::remove_file(rebuild.record_path());
            std::process::ExitCode::FAILURE
        }
    }
}

/// What the worker asks the primary before copying.
struct Source {
    major: String,
    databases: u64,
    wal_margin: u64,
    tablespaces: Vec<PathBuf>,
}

fn ask_source(cfg: &PgConfig, as_user: (Uid, Gid), deadline: &Deadline) -> Result<Source> {
    let q = "SELECT current_setting('server_version_num'), \
             (SELECT sum(pg_database_size(oid)) FROM pg_database \
              WHERE has_database_privilege(oid, 'CONNECT'))::bigint, \
             pg_size_bytes(current_setting('max_wal_size')), pg_is_in_recovery(); \
             SELECT pg_tablespace_location(oid) FROM pg_tablespace \
             WHERE pg_tablespace_location(oid) <> ''";
    let rows =
        pgclient::query(rejoin::primary_client(cfg)?, Some(as_user), deadline, q).map_err(|e| {
            e.context(format!(
                "asking the primary at {}",
                cfg.replication.primary_host
            ))
        })?;
    if pgclient::value(&rows, 0, 0, 3) != Some("f") {
        return Err(OcfError::generic(format!(
            "{} is not a primary",
            cfg.replication.primary_host
        )));
    }
    let number = |c| {
        pgclient::value(&rows, 0, 0, c)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let version = number(0);
    let major = if version >= 100_000 {
        (version / 10_000).to_string()
    } else {
        format!("{}.{}", version / 10_000, version / 100 % 100)
    };
    let mut tablespaces = Vec::new();
    let mut row = 0;
    while let Some(loc) = pgclient::value(&rows, 1, row, 0) {
        tablespaces.push(PathBuf::from(loc));
        row += 1;
    }
    Ok(Source {
        major,
        databases: number(1),
        wal_margin: number(2),
        tablespaces,
    })
}

/// pg_basebackup's -T takes OLD=NEW, with `=` in a path written `\=`.
fn tablespace_mapping(from: &Path, to: &Path) -> String {
    let esc = |p: &Path| p.to_string_lossy().replace('=', r"\=");
    format!("{}={}", esc(from), esc(to))
}

fn work(cfg: &PgConfig, env: &OcfEnv, rebuild: &Rebuild, record: &mut Record) -> Result<()> {
    let began = std::time::Instant::now();
    let user = OsUser::lookup(&cfg.pguser)?;
    let as_user = (user.uid, user.gid);
    let node = env.node_name();
    let pgdata = &cfg.pgdata;
    let building = building_dir(pgdata);
    // A copy cut short (the primary failed over, a network cut) is made
    // again from whatever primary answers next, in the worker: a failed
    // monitor would cost a restart, and under migration-threshold=1 the
    // node.
    let mut attempt = 1;
    let source = loop {
        match copy(cfg, rebuild, record, &user, &node) {
            Ok(source) => break source,
            Err(e) if attempt < COPY_ATTEMPTS && e.status() == Status::ErrGeneric => {
                warning!(
                    "copy {attempt} of {COPY_ATTEMPTS} failed: {}; starting over once a primary \
                     answers",
                    e.reason()
                );
                rebuild.clear_leftovers(&Deadline::after(Duration::from_secs(10)))?;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };

    remove_primary_settings(&building, as_user)?;
    // The copy's symbolic links name the tablespaces' building
    // directories: they must name the final ones once swapped.
    for ts in &source.tablespaces {
        relink_tablespace(&building, &building_dir(ts), ts, as_user)?;
    }
    let now = SystemTime::now();
    for ts in &source.tablespaces {
        swap_in(&building_dir(ts), ts, now)?;
    }
    swap_in(&building, pgdata, now)?;
    record.swapped = true;
    let _ = rebuild.write_record(*record);
    let _ = std::fs::remove_file(suffixed(pgdata, ".tusk-rebuild-tablespaces"));
    // The copy is whole: a rewind recorded as interrupted on the old
    // directory no longer concerns it.
    let marker = RewindMarker::new(resource_of(&env.instance), pgdata);
    if marker.found().is_some() {
        marker.finish().map_err(|e| {
            OcfError::generic(format!("cannot remove {}: {e}", marker.path().display()))
        })?;
        info!(
            "removed {}: the rebuilt directory replaces the half-rewound one",
            marker.path().display()
        );
    }
    info!(
        "rebuilt {} in {:.1}s; starting it as a standby",
        pgdata.display(),
        began.elapsed().as_secs_f64()
    );
    let deadline = env.deadline(Duration::from_secs(60));
    let starting = std::time::Instant::now();
    start::start_rebuilt(cfg, env, &deadline)?;
    info!(
        "the rebuilt standby started in {:.1}s ({:.1}s since the rebuild began)",
        starting.elapsed().as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// How many times the worker copies before it gives up.
const COPY_ATTEMPTS: u32 = 3;

/// One copy of the primary into the building directory.
fn copy(
    cfg: &PgConfig,
    rebuild: &Rebuild,
    record: &mut Record,
    user: &OsUser,
    node: &str,
) -> Result<Source> {
    let as_user = (user.uid, user.gid);
    // A blank node may be started while no primary answers (a new node
    // during a failover, the whole cluster starting): it waits for one, as
    // a standby would, with the monitor saying so.
    let asking = Deadline::after(Duration::from_secs(30));
    let mut said = false;
    let source = Deadline::after(WAIT_FOR_PRIMARY).wait_for(
        &format!("a primary at {}", cfg.replication.primary_host),
        Duration::from_secs(2),
        || match ask_source(cfg, as_user, &asking) {
            Ok(source) => Ok(Some(source)),
            Err(e) => {
                if !said {
                    info!("waiting for a primary to copy from: {}", e.reason());
                    said = true;
                }
                Ok(None)
            }
        },
    )?;
    let bindir = cfg.bindir_for(&source.major)?;
    let pg_basebackup = bindir.join("pg_basebackup");
    ocf::fs::require_executable(&pg_basebackup)?;
    let pgdata = &cfg.pgdata;
    let parent = pgdata
        .parent()
        .ok_or_else(|| OcfError::configured("pgdata has no parent directory"))?;
    check_not_mount_point(pgdata, parent)?;
    let available = nix::sys::statvfs::statvfs(parent)
        .map(|s| s.blocks_available() * s.fragment_size())
        .map_err(|e| OcfError::generic(format!("statvfs {}: {e}", parent.display())))?;
    let space = Space {
        available,
        databases: source.databases,
        wal_margin: source.wal_margin,
    };
    space_check(space).map_err(OcfError::generic)?;
    info!(
        "rebuild of {} from {}: {} MB to copy, {} MB free on {}",
        pgdata.display(),
        cfg.replication.primary_host,
        mb(source.databases),
        mb(available),
        parent.display()
    );
    record.total = Some(source.databases);
    let _ = rebuild.write_record(*record);

    // What an earlier attempt left.
    let building = building_dir(pgdata);
    rebuild.clear_leftovers(&Deadline::after(Duration::from_secs(10)))?;
    let mkdir = |dir: &Path| -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .and_then(|()| {
                std::os::unix::fs::chown(dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
            })
            .map_err(|e| OcfError::generic(format!("cannot create {}: {e}", dir.display())))
    };
    mkdir(&building)?;
    if !source.tablespaces.is_empty() {
        let list: String = source
            .tablespaces
            .iter()
            .map(|t| format!("{}\n", t.display()))
            .collect();
        rebuild
            .write_file(&suffixed(pgdata, ".tusk-rebuild-tablespaces"), &list)
            .map_err(|e| OcfError::generic(format!("cannot record the tablespaces: {e}")))?;
        for ts in &source.tablespaces {
            mkdir(&building_dir(ts))?;
        }
    }

    if cfg.replication.slots {
        // Streamed through this node's own slot, which then keeps the WAL
        // from the backup's end until the standby streams. A slot that lost
        // WAL is useless: made anew.
        let slot = slots::slot_name(node);
        let drop_lost = format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
             WHERE slot_name = '{slot}' AND wal_status = 'lost' AND NOT active"
        );
        pgclient::query(
            rejoin::primary_client(cfg)?,
            Some(as_user),
            &asking,
            &drop_lost,
        )
        .map_err(|e| e.context(format!("dropping the lost slot {slot}")))?;
        slots::ensure_on_primary(rejoin::primary_client(cfg)?, as_user, node, &asking)?;
    }
    let mut cmd = user.command(&pg_basebackup);
    cmd.arg("-D")
        .arg(&building)
        .args(["-X", "stream", "-c", "fast", "-w"])
        .arg("-d")
        // Its own application_name: never one that synchronous replication
        // or the primary's scores take for a node.
        .arg(rejoin::conninfo(
            cfg,
            Some(&format!("tusk-rebuild-{node}")),
            false,
        ));
    if cfg.replication.slots {
        cmd.args(["-S", &slots::slot_name(node)]);
    }
    for ts in &source.tablespaces {
        cmd.arg("-T").arg(tablespace_mapping(ts, &building_dir(ts)));
    }
    // SAFETY: prctl is async-signal-safe. pg_basebackup ends with the
    // worker: a killed worker leaves no copy going on behind it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(Into::into));
    }
    let copying = std::time::Instant::now();
    let out = command::run(cmd, &Deadline::after(Duration::from_secs(7 * 86_400)))?;
    if !out.status.success() {
        return Err(OcfError::generic(format!(
            "pg_basebackup failed: {}",
            out.stderr
                .lines()
                .find(|l| l.contains("error:") || l.contains("FATAL"))
                .unwrap_or_else(|| out.last_words())
        )));
    }
    let copied = dir_size(&building);
    let secs = copying.elapsed().as_secs_f64();
    info!(
        "pg_basebackup copied {} MB in {secs:.1}s ({:.1} MB/s)",
        mb(copied),
        copied as f64 / (1 << 20) as f64 / secs.max(0.001)
    );
    Ok(source)
}

/// The swap renames pgdata: a mount point cannot be renamed.
fn check_not_mount_point(pgdata: &Path, parent: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(pgdata), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) if d.dev() != p.dev() => Err(OcfError::configured(format!(
            "pgdata {} is a mount point: a rebuild builds beside it and swaps by rename; mount \
             its parent instead",
            pgdata.display()
        ))),
        _ => Ok(()),
    }
}

fn remove_primary_settings(dir: &Path, owner: (Uid, Gid)) -> Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // pguser owns the copy and the directory around it: the directory is
    // opened without following a symbolic link and checked, and the file
    // reached through that descriptor, so a directory swapped meanwhile
    // never makes root rewrite another file.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW).bits())
        .open(dir)
        .and_then(|d| {
            let meta = d.metadata()?;
            if meta.uid() != owner.0.as_raw() {
                return Err(std::io::Error::other(format!(
                    "is owned by uid {}",
                    meta.uid()
                )));
            }
            Ok(d)
        })
        .map_err(|e| OcfError::generic(format!("cannot open {}: {e}", dir.display())))?;
    let path = PathBuf::from(format!(
        "/proc/self/fd/{}/postgresql.auto.conf",
        opened.as_raw_fd()
    ));
    let text = match ocf::fs::read_bounded(&path, 1 << 20) {
        Ok(Some(f)) if !f.truncated => String::from_utf8_lossy(&f.bytes).into_owned(),
        Ok(Some(_)) => {
            return Err(OcfError::generic(format!(
                "{} is larger than 1 MiB",
                path.display()
            )))
        }
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(OcfError::generic(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let (kept, removed) = without_primary_settings(&text);
    if removed.is_empty() {
        return Ok(());
    }
    let mut f = ocf::fs::open_append_owned(&path, 0o600, Some(owner))
        .map_err(|e| OcfError::generic(format!("cannot open {}: {e}", path.display())))?;
    f.set_len(0)
        .and_then(|()| f.write_all(kept.as_bytes()))
        .and_then(|()| f.sync_all())
        .map_err(|e| OcfError::generic(format!("cannot write {}: {e}", path.display())))?;
    info!(
        "removed the primary's {} from the copy's postgresql.auto.conf",
        removed.join(", ")
    );
    Ok(())
}

fn relink_tablespace(pgdata: &Path, from: &Path, to: &Path, owner: (Uid, Gid)) -> Result<()> {
    let dir = pgdata.join("pg_tblspc");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let link = entry.path();
        if std::fs::read_link(&link).ok().as_deref() != Some(from) {
            continue;
        }
        std::fs::remove_file(&link)
            .and_then(|()| std::os::unix::fs::symlink(to, &link))
            .and_then(|()| {
                std::os::unix::fs::lchown(&link, Some(owner.0.as_raw()), Some(owner.1.as_raw()))
            })
            .map_err(|e| OcfError::generic(format!("cannot relink {}: {e}", link.display())))?;
    }
    Ok(())
}

/// Puts the complete copy `built` in place of `dir`: one atomic exchange
/// when `dir` exists (no moment without a directory at its path), the old
/// one then kept under a timestamped name, or removed when it was empty.
fn swap_in(built: &Path, dir: &Path, now: SystemTime) -> Result<()> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        OcfError::generic(format!("cannot {what} {}: {e}", dir.display()))
    };
    match DataDir::of(dir)? {
        DataDir::Missing => std::fs::rename(built, dir).map_err(|e| fail("create", &e))?,
        blank_or_not => {
            nix::fcntl::renameat2(
                None,
                built,
                None,
                dir,
                nix::fcntl::RenameFlags::RENAME_EXCHANGE,
            )
            .map_err(|e| fail("swap in the copy at", &e))?;
            // `built` now names the old directory.
            if blank_or_not == DataDir::Empty {
                std::fs::remove_dir(built).map_err(|e| fail("remove the old empty", &e))?;
            } else {
                let kept = kept_dir(dir, now);
                std::fs::rename(built, &kept).map_err(|e| fail("keep the old", &e))?;
                info!("kept the old {} as {}", dir.display(), kept.display());
            }
        }
    }
    if let Some(parent) = dir.parent() {
        let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn former(was_primary: bool, timeline: Option<u32>) -> Option<Former> {
        Some(Former {
            was_primary,
            timeline,
        })
    }

    #[test]
    fn a_node_being_rebuilt_publishes_a_position_below_every_candidates() {
        let published: crate::wal::Position = NO_CANDIDATE.to_string().parse().unwrap();
        assert_eq!(published, NO_CANDIDATE);
        let first = crate::wal::Position {
            timeline: 1,
            lsn: Lsn(0),
        };
        assert!(NO_CANDIDATE < first);
    }

    #[test]
    fn what_start_rebuilds_for() {
        use Trigger::*;
        for t in [
            Blank,
            RewindInterrupted,
            Unrewindable,
            RewindFailed,
            WalGone,
        ] {
            assert!(wanted(RebuildPolicy::Auto, t), "{t:?}");
            assert!(!wanted(RebuildPolicy::Off, t), "{t:?} under off");
        }
        for t in [Diverged, OtherCluster, Ahead] {
            assert!(!wanted(RebuildPolicy::Auto, t), "{t:?}");
        }
    }

    #[test]
    fn a_former_primary_is_rebuilt_only_behind_a_newer_timeline() {
        assert!(permitted(None, Some(1)).is_ok(), "a blank node");
        assert!(
            permitted(None, None).is_ok(),
            "a blank node waits for a primary"
        );
        assert!(
            permitted(former(false, Some(3)), Some(3)).is_ok(),
            "a standby"
        );
        assert!(permitted(former(true, Some(2)), Some(3)).is_ok());
        let same = permitted(former(true, Some(3)), Some(3)).unwrap_err();
        assert!(
            same.contains("timeline 3") && same.contains("only copy"),
            "{same}"
        );
        assert!(permitted(former(true, Some(4)), Some(3)).is_err());
        assert!(permitted(former(true, None), Some(9)).is_err());
        let none = permitted(former(false, Some(2)), None).unwrap_err();
        assert!(none.contains("no primary"), "{none}");
    }

    #[test]
    fn a_rebuild_that_cannot_fit_fails_with_the_numbers() {
        let gib = 1u64 << 30;
        let fits = Space {
            available: 3 * gib,
            databases: gib,
            wal_margin: gib,
        };
        assert!(space_check(fits).is_ok());
        let tight = Space {
            available: 2 * gib - 1,
            ..fits
        };
        let e = space_check(tight).unwrap_err();
        assert_eq!(
            e,
            "not enough disk space to rebuild: 2048 MB needed (databases 1024 MB + WAL 1024 MB), \
             2048 MB free"
        );
        assert!(space_check(Space {
            available: 0,
            databases: u64::MAX,
            wal_margin: u64::MAX
        })
        .is_err());
    }

    #[test]
    fn progress_is_the_copy_against_the_databases_never_done_while_copying() {
        assert_eq!(
            progress(50 << 20, Some(200 << 20)),
            (Some(25), "25% (50 of 200 MB)".to_string())
        );
        assert_eq!(progress(300 << 20, Some(200 << 20)).0, Some(99));
        assert_eq!(progress(5 << 20, None), (None, "5 MB copied".to_string()));
        assert_eq!(progress(5 << 20, Some(0)).0, None);
    }

    #[test]
    fn the_monitor_shows_each_phase_of_a_rebuild() {
        let r = Record {
            pid: 1,
            start_ticks: 1,
            started: 1,
            total: None,
            swapped: false,
        };
        assert_eq!(shown(&r, 0), ("0%".into(), "asking the primary".into()));
        let copying = Record {
            total: Some(400 << 20),
            ..r
        };
        assert_eq!(
            shown(&copying, 100 << 20),
            ("25%".into(), "25% (100 of 400 MB)".into())
        );
        let swapped = Record {
            swapped: true,
            ..copying
        };
        assert_eq!(shown(&swapped, 0).0, "99%");
    }

    #[test]
    fn the_primarys_synchronous_standby_names_does_not_follow_the_copy() {
        let auto = "# Do not edit this file manually!\n\
                    synchronous_standby_names = 'ANY 1 (\"node2\")'\n\
                    work_mem = '64MB'\n\
                    SYNCHRONOUS_STANDBY_NAMES='x'\n\
                    synchronous_commit = 'on'\n";
        let (kept, removed) = without_primary_settings(auto);
        assert_eq!(
            kept,
            "# Do not edit this file manually!\nwork_mem = '64MB'\nsynchronous_commit = 'on'\n"
        );
        assert_eq!(removed.len(), 2);
        assert_eq!(without_primary_settings("a = 1").0, "a = 1");
    }

    #[test]
    fn the_record_names_the_worker_by_pid_and_start_time() {
        let r = Record {
            pid: 42,
            start_ticks: 12345,
            started: 1_700_000_000,
            total: Some(1 << 30),
            swapped: false,
        };
        assert_eq!(Record::parse(&r.to_line()), Some(r));
        let swapped = Record { swapped: true, ..r };
        assert_eq!(Record::parse(&swapped.to_line()), Some(swapped));
        let no_total = Record { total: None, ..r };
        assert_eq!(Record::parse(&no_total.to_line()), Some(no_total));
        assert_eq!(Record::parse("pid=42 started=1\n"), None, "no start time");
        assert_eq!(Record::parse("pid=0 ticks=1 started=1\n"), None);
        assert_eq!(Record::parse("garbage"), None);
    }

    #[test]
    fn names_beside_the_directory() {
        let d = Path::new("/var/lib/postgresql/15/main");
        assert_eq!(
            building_dir(d),
            Path::new("/var/lib/postgresql/15/main.tusk-rebuild")
        );
        let when = UNIX_EPOCH + Duration::from_secs(1_795_931_580);
        assert_eq!(utc_stamp(when), "20261129T055300Z");
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let leap_day = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_stamp(leap_day), "20000229T000000Z");
        assert_eq!(
            kept_dir(d, when),
            Path::new("/var/lib/postgresql/15/main.tusk-old-20261129T055300Z")
        );
        assert_eq!(
            tablespace_mapping(Path::new("/ts/a=b"), Path::new("/ts/a=b.tusk-rebuild")),
            r"/ts/a\=b=/ts/a\=b.tusk-rebuild"
        );
    }

    #[test]
    fn the_wal_needed_was_written_on_the_timeline_of_its_place_in_history() {
        let history = [
            Fork {
                parent: 1,
                switchpoint: "0/5000000".parse().unwrap(),
            },
            Fork {
                parent: 2,
                switchpoint: "0/9000000".parse().unwrap(),
            },
        ];
        let at = |s: &str| timeline_at(s.parse().unwrap(), 3, &history);
        assert_eq!(at("0/3000028"), 1);
        assert_eq!(
            at("0/5000000"),
            2,
            "the switchpoint begins the new timeline"
        );
        assert_eq!(at("0/8FFFFFF"), 2);
        assert_eq!(at("1/0"), 3);
        assert_eq!(timeline_at(Lsn(7), 1, &[]), 1);
    }

    #[test]
    fn a_blank_data_directory_is_missing_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        assert_eq!(DataDir::of(&d).unwrap(), DataDir::Missing);
        std::fs::create_dir(&d).unwrap();
        assert_eq!(DataDir::of(&d).unwrap(), DataDir::Empty);
        std::fs::write(d.join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(DataDir::of(&d).unwrap(), DataDir::Present);
        assert!(!DataDir::Present.is_blank());
    }

    #[test]
    fn a_record_of_a_dead_or_foreign_pid_is_an_interrupted_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let rb = Rebuild::in_dir(dir.path(), Path::new("/srv/pg"));
        assert_eq!(rb.observe(), Observed::None);
        // This test process: alive, but not the worker (no WORKER_ARG).
        let me = ProcInfo::read(std::process::id() as i32).unwrap().unwrap();
        let record = Record {
            pid: me.pid,
            start_ticks: me.start_ticks,
            started: 1,
            total: None,
            swapped: false,
        };
        rb.write_record(record).unwrap();
        assert!(matches!(rb.observe(), Observed::Interrupted(_)));
        rb.write_record(Record {
            start_ticks: me.start_ticks + 1,
            ..record
        })
        .unwrap();
        match rb.observe() {
            Observed::Interrupted(why) => assert!(why.contains("another process"), "{why}"),
            other => panic!("{other:?}"),
        }
        rb.forget();
        rb.write_file(&rb.failed_path(), "pg_basebackup failed: x\n")
            .unwrap();
        assert_eq!(
            rb.observe(),
            Observed::Failed("pg_basebackup failed: x".into())
        );
    }
}
