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
        let config: postgres::Config = conninfo.parse().context("writer connection string")?;
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(WriterReport::default()));
        let (stop2, report2) = (stop.clone(), report.clone());
        let thread = spawn_in_netns(netns.to_path_buf(), move || {
            write_loop(config, every, &stop2, &report2);
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
    stop: &AtomicBool,
    report: &Mutex<WriterReport>,
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
    let mut n: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        n += 1;
        unconfirmed.store(false, Ordering::Relaxed);
        let outcome = (|| -> Result<(), postgres::Error> {
            if client.is_none() {
                let mut c = config.connect(postgres::NoTls)?;
                c.batch_execute(WRITER_TABLE)?;
                client = Some(c);
            }
            let c = client.as_mut().expect("connected above");
            watchdog.arm(c.cancel_token());
            let inserted = c.execute("INSERT INTO tusk_writer (n) VALUES ($1)", &[&n]);
            watchdog.disarm();
            inserted?;
            Ok(())
        })();
        let mut r = report.lock().expect("writer report");
        match outcome {
            Ok(()) if unconfirmed.load(Ordering::Relaxed) => {
                r.unconfirmed.push((n, Instant::now()));
            }
            Ok(()) => r.acknowledged.push((n, Instant::now())),
            Err(e) => {
                client = None;
                r.failures.push((Instant::now(), describe(&e)));
            }
        }
        drop(r);
        std::thread::sleep(every.saturating_sub(tick.elapsed()));
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
}
