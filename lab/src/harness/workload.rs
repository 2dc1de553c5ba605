//! Client load through the cluster: a writer that records which commits were
//! acknowledged (so a test can prove none was lost and time the outage), and
//! pgbench beside it so that replication lag really exists when a fault hits.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `f` on a thread that has entered the network namespace `netns`
/// (`/proc/PID/ns/net`, the lab's switch): network namespaces are per
/// thread, so the test process reaches the lab's private addresses without
/// joining it. There is no variant without a namespace: the lab's addresses
/// must never be tried from the host's network.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    spawn_in_netns(netns.to_path_buf(), f)?
        .join()
        .map_err(|_| anyhow::anyhow!("thread in the lab's network namespace panicked"))?
}

/// [`in_netns`] that gives up after `timeout`: for a question to a server
/// that may not answer (a pgpool searching for its primary holds new
/// clients). A thread still waiting is left behind; give its connection
/// keepalives and a TCP user timeout so that it ends by itself.
pub fn in_netns_within<T: Send + 'static>(
    netns: &Path,
    timeout: Duration,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let _thread = spawn_in_netns(netns.to_path_buf(), move || {
        let _ = tx.send(f());
        Ok(())
    })?;
    rx.recv_timeout(timeout)
        .map_err(|_| anyhow::anyhow!("no answer within {timeout:?}"))?
}

fn spawn_in_netns<T: Send + 'static>(
    netns: PathBuf,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    Ok(std::thread::spawn(move || {
        let ns =
            std::fs::File::open(&netns).with_context(|| format!("opening {}", netns.display()))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("entering {}", netns.display()))?;
        f()
    }))
}

/// What the writer saw: each acknowledged counter value with the moment the
/// commit returned, and each failed attempt.
#[derive(Debug, Clone, Default)]
pub struct WriterReport {
    pub acknowledged: Vec<(i64, Instant)>,
    /// The timeline of the server that acknowledged each value: a new one
    /// after every promotion, so the first write acknowledged by a new
    /// primary is the first one on a higher timeline.
    pub timelines: Vec<(i64, u32)>,
    /// Commits that returned with PostgreSQL's warning that the wait for
    /// synchronous replication was cancelled: committed locally, maybe not
    /// replicated, so not counted as acknowledged.
    pub unconfirmed: Vec<(i64, Instant)>,
    pub failures: Vec<(Instant, String)>,
}

impl WriterReport {
    /// The first acknowledged write after `fault`: the end of the outage a
    /// client sees.
    pub fn first_ack_after(&self, fault: Instant) -> Option<Instant> {
        self.acknowledged
            .iter()
            .map(|(_, at)| *at)
            .find(|at| *at > fault)
    }

    /// The first interruption after `from`: its first failed (or
    /// unconfirmed) write and the first acknowledged write after that. For
    /// a fault whose moment is not sharp (a switchover in progress), this
    /// is the outage a client saw.
    pub fn outage_after(&self, from: Instant) -> Option<(Instant, Instant)> {
        let failed = self
            .failures
            .iter()
            .map(|(at, _)| *at)
            .chain(self.unconfirmed.iter().map(|(_, at)| *at))
            .filter(|at| *at >= from)
            .min()?;
        Some((failed, self.first_ack_after(failed)?))
    }

    /// The first write acknowledged after `fault` on a timeline other than
    /// the one of the last write acknowledged before it: the first write a
    /// new primary took (timelines only grow; a Slony origin's [`Mark`] is
    /// its node id, which may be lower). With its timeline.
    pub fn first_ack_on_new_timeline(&self, fault: Instant) -> Option<(Instant, u32)> {
        let timeline = |n: i64| {
            self.timelines
                .iter()
                .find(|(m, _)| *m == n)
                .map(|(_, tl)| *tl)
        };
        let before = self
            .acknowledged
            .iter()
            .rev()
            .find(|(_, at)| *at <= fault)
            .and_then(|(n, _)| timeline(*n))
            .unwrap_or(0);
        self.acknowledged
            .iter()
            .filter(|(_, at)| *at > fault)
            .find_map(|(n, at)| timeline(*n).filter(|tl| *tl != before).map(|tl| (*at, tl)))
    }

    /// The longest time without an acknowledged write inside `[from, to]`,
    /// counting from the last acknowledgement before `from` (the gap a
    /// fault opens starts there) up to the first after `to` or `to` itself.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Option<Duration> {
        let start = self
            .acknowledged
            .iter()
            .rev()
            .find(|(_, at)| *at <= from)
            .map(|(_, at)| *at)?;
        let mut times: Vec<Instant> = vec![start];
        times.extend(
            self.acknowledged
                .iter()
                .map(|(_, at)| *at)
                .filter(|at| *at > from && *at <= to),
        );
        // A gap still open at `to` counts up to `to`.
        times.push(to.max(*times.last().expect("not empty")));
        times.windows(2).map(|w| w[1] - w[0]).max()
    }

    /// The longest pause between two acknowledged writes that ends after
    /// `from` (the last acknowledgement before it, or `from` itself when
    /// there is none, to the next one): the outage a client saw around a
    /// fault whether its writes failed, hung, or one was acknowledged just
    /// after the fault struck.
    pub fn longest_pause_after(&self, from: Instant) -> Option<(Instant, Instant)> {
        let mut acks: Vec<Instant> = self.acknowledged.iter().map(|(_, at)| *at).collect();
        acks.sort();
        let start = acks
            .iter()
            .rev()
            .find(|at| **at <= from)
            .copied()
            .unwrap_or(from);
        let after: Vec<Instant> = acks.into_iter().filter(|at| *at > from).collect();
        std::iter::once(start)
            .chain(after.iter().copied())
            .zip(after.iter().copied())
            .max_by_key(|(a, b)| *b - *a)
    }

    /// Acknowledged writes in the window `[from, to)`.
    pub fn acknowledged_between(&self, from: Instant, to: Instant) -> Vec<i64> {
        self.acknowledged
            .iter()
            .filter(|(_, at)| *at >= from && *at < to)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Acknowledged values that are not in `present`: lost commits.
    pub fn lost(&self, present: &[i64]) -> Vec<i64> {
        let present: std::collections::HashSet<i64> = present.iter().copied().collect();
        self.acknowledged
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !present.contains(n))
            .collect()
    }
}

/// Inserts a counter row every `every` into `tusk_writer`, reconnecting
/// after every error, until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<WriterReport>>,
    thread: Option<JoinHandle<Result<()>>>,
}

pub const WRITER_TABLE: &str = "CREATE TABLE IF NOT EXISTS tusk_writer (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())";

impl Writer {
    pub fn start(netns: &Path, conninfo: &str, every: Duration) -> Result<Writer> {
        Writer::start_journaled(netns, conninfo, every, Mark::Timeline, None)
    }

    /// Like [`Writer::start`], and every outcome is also appended to
    /// `journal` as it happens (see [`Journal`]), for another process to
    /// read: the demo's client runs for as long as the lab, and each
    /// `demo` command reads what it saw.
    pub fn start_journaled(
        netns: &Path,
        conninfo: &str,
        every: Duration,
        mark: Mark,
        journal: Option<Journal>,
    ) -> Result<Writer> {
        let config: postgres::Config = conninfo.parse().context("writer connection string")?;
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(WriterReport::default()));
        let (stop2, report2) = (stop.clone(), report.clone());
        let thread = spawn_in_netns(netns.to_path_buf(), move || {
            write_loop(config, every, mark, &stop2, &report2, journal.as_ref());
            Ok(())
        })?;
        Ok(Writer {
            stop,
            report,
            thread: Some(thread),
        })
    }

    /// A snapshot of what was acknowledged so far.
    pub fn report(&self) -> WriterReport {
        self.report.lock().expect("writer report").clone()
    }

    pub fn stop(mut self) -> WriterReport {
        self.finish();
        self.report()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.finish();
    }
}

fn write_loop(
    mut config: postgres::Config,
    every: Duration,
    mark: Mark,
    stop: &AtomicBool,
    report: &Mutex<WriterReport>,
    journal: Option<&Journal>,
) {
    // A write that hangs must not stall the loop forever. A server that
    // vanished with the connection open (a node lost power, its address
    // moved): keepalives and the TCP user timeout end such a connection in a
    // few seconds instead of the kernel's minutes. A primary waiting for a
    // lost synchronous standby: statement_timeout does not bound that wait
    // (PostgreSQL 15 disables it before the commit), so the watchdog
    // cancels a write still running after WRITE_TIMEOUT, as a client with a
    // timeout would.
    let unconfirmed = Arc::new(AtomicBool::new(false));
    let flag = unconfirmed.clone();
    config
        .connect_timeout(Duration::from_secs(1))
        .tcp_user_timeout(Duration::from_secs(3))
        .keepalives_idle(Duration::from_secs(1))
        .keepalives_interval(Duration::from_secs(1))
        .keepalives_retries(2)
        .options("-c statement_timeout=2000")
        .notice_callback(move |notice| {
            // A cancelled wait for a synchronous standby still reports
            // success, with this warning: PostgreSQL committed locally and
            // says it might not be replicated. That is not an
            // acknowledgement a client can rely on.
            if notice.message().contains("synchronous replication") {
                flag.store(true, Ordering::Relaxed);
            }
        });
    let watchdog = Watchdog::start();
    let mut client: Option<postgres::Client> = None;
    let mut n: i64 = journal.map_or(0, Journal::last_value);
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        n += 1;
        unconfirmed.store(false, Ordering::Relaxed);
        let outcome = (|| -> Result<u32, postgres::Error> {
            if client.is_none() {
                let mut c = config.connect(postgres::NoTls)?;
                c.batch_execute(WRITER_TABLE)?;
                client = Some(c);
            }
            let c = client.as_mut().expect("connected above");
            watchdog.arm(c.cancel_token());
            let inserted = c.query_one(mark.insert(), &[&n]);
            watchdog.disarm();
            let timeline: i32 = inserted?.get(0);
            Ok(u32::try_from(timeline).unwrap_or(0))
        })();
        let at = Instant::now();
        let entry = match outcome {
            Ok(_) if unconfirmed.load(Ordering::Relaxed) => Entry::Unconfirmed(n),
            Ok(timeline) => Entry::Acknowledged(n, timeline),
            Err(e) => {
                client = None;
                Entry::Failed(describe(&e))
            }
        };
        if let Some(journal) = journal {
            journal.append(&entry);
        }
        report.lock().expect("writer report").add(entry, at);
        std::thread::sleep(every.saturating_sub(tick.elapsed()));
    }
}

/// What the writer learns, with each acknowledgement, about the server
/// that gave it: a number that changes when another server takes the
/// writes, so that the first write a new primary (or Slony origin) took
/// is the first with a number other than the last one before a fault.
/// Written in the journal and [`WriterReport::timelines`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The server's timeline (the first 8 hex digits of the WAL file being
    /// written: a primary's current timeline, one higher after each
    /// promotion).
    Timeline,
    /// The Slony node id of the server (`getLocalNodeId` of the lab's
    /// cluster, [`crate::slony::SCHEMA`]): every node keeps timeline 1.
    SlonyNode,
}

impl Mark {
    /// The write, returning the mark.
    fn insert(self) -> &'static str {
        match self {
            Mark::Timeline => {
                "INSERT INTO tusk_writer (n) VALUES ($1) \
                 RETURNING ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"
            }
            Mark::SlonyNode => {
                "INSERT INTO tusk_writer (n) VALUES ($1) RETURNING _tusk.getlocalnodeid('_tusk')"
            }
        }
    }

    /// What the number is, in words: "timeline 2", "Slony node 2".
    pub fn word(self) -> &'static str {
        match self {
            Mark::Timeline => "timeline",
            Mark::SlonyNode => "Slony node",
        }
    }

    /// The name the demo's client takes on its command line.
    pub fn name(self) -> &'static str {
        match self {
            Mark::Timeline => "timeline",
            Mark::SlonyNode => "slony",
        }
    }

    pub fn from_name(name: &str) -> Option<Mark> {
        [Mark::Timeline, Mark::SlonyNode]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// One attempt of the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The value and the timeline of the server that acknowledged it.
    Acknowledged(i64, u32),
    Unconfirmed(i64),
    Failed(String),
}

impl WriterReport {
    fn add(&mut self, entry: Entry, at: Instant) {
        match entry {
            Entry::Acknowledged(n, timeline) => {
                self.acknowledged.push((n, at));
                self.timelines.push((n, timeline));
            }
            Entry::Unconfirmed(n) => self.unconfirmed.push((n, at)),
            Entry::Failed(e) => self.failures.push((at, e)),
        }
    }

    /// The report a journal's text records. `clock` maps the journal's
    /// times into this process's `Instant`s; a line cut short by a kill is
    /// skipped.
    pub fn from_journal(text: &str, clock: &MonotonicClock) -> WriterReport {
        let mut report = WriterReport::default();
        // The last piece is empty when the text ends with a newline, and a
        // line still being written when it does not.
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop();
        for (at, entry) in lines.into_iter().filter_map(Journal::parse) {
            report.add(entry, clock.instant(at));
        }
        report
    }
}

/// CLOCK_MONOTONIC, which is what `Instant` reads on Linux and is the same
/// for every process of the machine: journal times written by one process
/// become `Instant`s in another through a pair of readings taken together.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    instant: Instant,
    monotonic: Duration,
}

impl MonotonicClock {
    pub fn now() -> MonotonicClock {
        MonotonicClock {
            instant: Instant::now(),
            monotonic: monotonic_now(),
        }
    }

    /// The `Instant` of a CLOCK_MONOTONIC reading.
    pub fn instant(&self, monotonic: Duration) -> Instant {
        if monotonic >= self.monotonic {
            self.instant + (monotonic - self.monotonic)
        } else {
            self.instant
                .checked_sub(self.monotonic - monotonic)
                .unwrap_or(self.instant)
        }
    }
}

pub fn monotonic_now() -> Duration {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always there");
    Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
}

/// The writer's record in a file, one line per attempt, appended as it
/// happens (`O_APPEND`, one write per line, so a reader never sees two
/// lines mixed):
///
/// ```text
/// ack N TIMELINE NANOS       acknowledged by the server on TIMELINE
/// unconfirmed N NANOS        committed, replication not confirmed
/// fail NANOS MESSAGE         the attempt failed
/// ```
///
/// NANOS is CLOCK_MONOTONIC in nanoseconds.
pub struct Journal {
    file: std::fs::File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creates) the journal at `path` for appending.
    pub fn open(path: &Path) -> Result<Journal> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Journal {
            file,
            path: path.to_path_buf(),
        })
    }

    fn append(&self, entry: &Entry) {
        use std::io::Write;
        let nanos = monotonic_now().as_nanos();
        let line = match entry {
            Entry::Acknowledged(n, timeline) => format!("ack {n} {timeline} {nanos}\n"),
            Entry::Unconfirmed(n) => format!("unconfirmed {n} {nanos}\n"),
            // One line: PostgreSQL's messages may hold newlines.
            Entry::Failed(e) => format!(
                "fail {nanos} {}\n",
                e.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        };
        // A full disk must not stop the writer: the journal is a record.
        let _ = (&self.file).write_all(line.as_bytes());
    }

    /// The highest value the journal records: a writer that continues a
    /// journal (its process restarted) goes on after it, since the values
    /// are the table's primary key.
    fn last_value(&self) -> i64 {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .filter_map(Journal::parse)
            .filter_map(|(_, e)| match e {
                Entry::Acknowledged(n, _) | Entry::Unconfirmed(n) => Some(n),
                Entry::Failed(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// One line: when, and what.
    pub fn parse(line: &str) -> Option<(Duration, Entry)> {
        let nanos = |s: &str| s.parse::<u64>().ok().map(Duration::from_nanos);
        let mut words = line.splitn(3, ' ');
        match words.next()? {
            "ack" => {
                let n = words.next()?.parse().ok()?;
                let mut rest = words.next()?.split(' ');
                let timeline = rest.next()?.parse().ok()?;
                let at = nanos(rest.next()?)?;
                rest.next()
                    .is_none()
                    .then_some((at, Entry::Acknowledged(n, timeline)))
            }
            "unconfirmed" => {
                let n = words.next()?.parse().ok()?;
                Some((nanos(words.next()?)?, Entry::Unconfirmed(n)))
            }
            "fail" => {
                let at = nanos(words.next()?)?;
                Some((at, Entry::Failed(words.next().unwrap_or("").to_string())))
            }
            _ => None,
        }
    }
}

/// An error as a client would read it: a server's (or pgpool's) own
/// message, not only "db error".
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// How long the writer waits for one write before it cancels it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Cancels the write in progress once it has run for WRITE_TIMEOUT. Its
/// thread is started by the writer's thread, so it is in the same network
/// namespace, where the cancel request's connection must be made.
struct Watchdog {
    armed: Arc<Mutex<Option<(Instant, postgres::CancelToken)>>>,
    thread: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start() -> Watchdog {
        let armed: Arc<Mutex<Option<(Instant, postgres::CancelToken)>>> = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (armed2, done2) = (armed.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            while !done2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let due = {
                    let mut slot = armed2.lock().expect("watchdog");
                    match &*slot {
                        Some((since, _)) if since.elapsed() >= WRITE_TIMEOUT => slot.take(),
                        _ => None,
                    }
                };
                if let Some((_, token)) = due {
                    let _ = token.cancel_query(postgres::NoTls);
                }
            }
        });
        Watchdog {
            armed,
            thread: Some(thread),
            done,
        }
    }

    fn arm(&self, token: postgres::CancelToken) {
        *self.armed.lock().expect("watchdog") = Some((Instant::now(), token));
    }

    fn disarm(&self) {
        *self.armed.lock().expect("watchdog") = None;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The values of `tusk_writer` as the server behind `conninfo` has them.
pub fn written_values(netns: &Path, conninfo: &str) -> Result<Vec<i64>> {
    let config: postgres::Config = conninfo.parse().context("connection string")?;
    in_netns(netns, move || {
        let mut c = config
            .connect(postgres::NoTls)
            .context("connecting to read tusk_writer")?;
        let rows = c.query("SELECT n FROM tusk_writer ORDER BY n", &[])?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    })
}

/// pgbench running in the lab's network namespace until stopped; killed by
/// its PID (it is our child) when dropped.
pub struct Load {
    child: Child,
}

impl Load {
    /// Initialises pgbench's tables (scale 1), then runs `clients` clients
    /// for at most `limit`.
    pub fn start(
        netns: &Path,
        pgbench_args: &[&str],
        clients: u32,
        limit: Duration,
    ) -> Result<Load> {
        let base = |extra: &[String]| {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={}", netns.display()))
                .arg("--")
                .arg("pgbench")
                .args(extra)
                .args(pgbench_args)
                .stdin(Stdio::null());
            cmd
        };
        let init = base(&["-i".into(), "-q".into(), "-s".into(), "1".into()])
            .output()
            .context("running pgbench -i")?;
        anyhow::ensure!(
            init.status.success(),
            "pgbench -i: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let child = base(&[
            "-n".into(),
            "-c".into(),
            clients.to_string(),
            "-T".into(),
            limit.as_secs().max(1).to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting pgbench")?;
        Ok(Load { child })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_and_first_ack_are_read_from_the_report() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let r = WriterReport {
            acknowledged: vec![(1, at(100)), (2, at(200)), (5, at(900))],
            unconfirmed: vec![(3, at(250))],
            failures: vec![(at(300), "down".into())],
            ..WriterReport::default()
        };
        assert_eq!(r.acknowledged_between(at(150), at(900)), vec![2]);
        assert_eq!(r.outage_after(at(150)), Some((at(250), at(900))));
        assert_eq!(r.outage_after(at(400)), None);
        assert_eq!(r.first_ack_after(at(250)), Some(at(900)));
        assert_eq!(r.first_ack_after(at(1000)), None);
        assert_eq!(r.longest_pause_after(at(150)), Some((at(200), at(900))));
        assert_eq!(r.longest_pause_after(at(50)), Some((at(200), at(900))));
        assert_eq!(r.longest_pause_after(at(900)), None);
        assert_eq!(r.lost(&[1, 5, 6]), vec![2]);
        assert!(r.lost(&[1, 2, 5]).is_empty());
    }

    #[test]
    fn the_new_primary_is_the_first_acknowledgement_on_a_higher_timeline() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let r = WriterReport {
            // 3 was acknowledged by the old primary after the fault (a
            // switchover demotes a little after it was asked for).
            acknowledged: vec![(1, at(100)), (2, at(200)), (3, at(400)), (6, at(3000))],
            timelines: vec![(1, 1), (2, 1), (3, 1), (6, 2)],
            failures: vec![(at(500), "down".into())],
            ..WriterReport::default()
        };
        assert_eq!(r.first_ack_on_new_timeline(at(300)), Some((at(3000), 2)));
        assert_eq!(r.first_ack_on_new_timeline(at(3000)), None);
        // A Slony origin moved back to a lower node id: another server too.
        let back = WriterReport {
            timelines: vec![(1, 2), (2, 2), (3, 2), (6, 1)],
            ..r.clone()
        };
        assert_eq!(back.first_ack_on_new_timeline(at(300)), Some((at(3000), 1)));
        assert_eq!(Mark::from_name("slony"), Some(Mark::SlonyNode));
        assert_eq!(Mark::from_name(Mark::Timeline.name()), Some(Mark::Timeline));
        assert_eq!(
            r.longest_gap(at(300), at(5000)),
            Some(Duration::from_millis(2600))
        );
        // Still no write at the end: the gap runs up to the end.
        assert_eq!(
            r.longest_gap(at(300), at(2500)),
            Some(Duration::from_millis(2100))
        );
        assert_eq!(WriterReport::default().longest_gap(at(0), at(1)), None);
    }

    #[test]
    fn a_journal_is_read_back_into_a_report() {
        let clock = MonotonicClock::now();
        let base = clock.monotonic;
        let ns = |ms: u64| (base + Duration::from_millis(ms)).as_nanos();
        let text = format!(
            "ack 1 1 {}\nfail {} error connecting to server: Connection refused\nunconfirmed 2 {}\nbogus\nack 3 2 {}\nack 4 2 {}",
            ns(0),
            ns(100),
            ns(200),
            ns(300),
            ns(400)
        );
        let r = WriterReport::from_journal(&text, &clock);
        let ms = |i: Instant| (i - clock.instant).as_millis();
        assert_eq!(
            r.acknowledged
                .iter()
                .map(|(n, at)| (*n, ms(*at)))
                .collect::<Vec<_>>(),
            vec![(1, 0), (3, 300)],
            "the last line, without its newline, is still being written"
        );
        assert_eq!(r.timelines, vec![(1, 1), (3, 2)]);
        assert_eq!(r.unconfirmed.len(), 1);
        assert_eq!(
            r.failures[0].1,
            "error connecting to server: Connection refused"
        );
        assert_eq!(
            Journal::parse("ack 7 3 1000000"),
            Some((Duration::from_millis(1), Entry::Acknowledged(7, 3)))
        );
        assert_eq!(Journal::parse("ack 7 3"), None);
        assert_eq!(Journal::parse("ack 7 3 10 extra"), None);
    }
}
