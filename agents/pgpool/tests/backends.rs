//! Reconciliation against a real pgpool-II 4.3 and real PostgreSQL 15
//! servers: pgpool follows the cluster within one monitor, without a
//! restart of pgpool (DESIGN.md failure 2), and never lets a stale
//! primary in.

mod common;

use common::setup;
use ocf::Status;
use std::time::{Duration, Instant};
use tusk_pgpool::pcp::{BackendStatus, LiveRole, LiveStatus, PoolRole};
use tusk_testkit::pgpool::{pg_ctl_promote, pg_ctl_start, pg_ctl_stop};
use tusk_testkit::wait_until;

#[test]
fn a_restarted_standby_is_attached_again_by_the_monitor() {
    let s = setup("pgpool-standby-back", &[]);
    s.agent().run("start").expect(Status::Success);
    let main = s.main_pid().unwrap();
    s.stop_backend(&s.standby, 1);
    // Detached and down: nothing to do, and the monitor says running.
    s.agent().run("monitor").expect(Status::Success);
    pg_ctl_start(&s.standby);
    assert!(wait_until(Duration::from_secs(30), || s
        .primary
        .replication_state("node2")
        .as_deref()
        == Some("streaming")));
    s.wait_node(1, "seen up by pgpool", |n| n.pg_status == LiveStatus::Up);
    assert_eq!(
        s.nodes()[1].status,
        BackendStatus::Down,
        "pgpool keeps it down"
    );
    let monitor = s.agent().run("monitor").expect(Status::Success);
    eprintln!("{}", monitor.stderr);
    assert!(
        monitor.stderr.contains("attach node 1") && monitor.stderr.contains("streams from"),
        "{}",
        monitor.stderr
    );
    // What it sums up (the log, and RESOURCE-backends under Pacemaker) is
    // pgpool's view after the attach, named by node.
    assert!(
        monitor
            .stderr
            .contains("backends: 2/2 attached, primary node1 (id 0)"),
        "{}",
        monitor.stderr
    );
    s.wait_node(1, "attached", |n| n.status.is_attached());
    assert_eq!(s.main_pid(), Some(main), "pgpool was not restarted");
    // In step: the next monitor changes nothing.
    let again = s.agent().run("monitor").expect(Status::Success);
    assert!(!again.stderr.contains("attach node"), "{}", again.stderr);
    s.agent().run("stop").expect(Status::Success);
}

/// A standby that runs but does not stream (here: its primary_conninfo
/// names no server) is left detached.
#[test]
fn a_standby_that_follows_nobody_stays_detached() {
    let s = setup("pgpool-standby-lost", &[]);
    s.agent().run("start").expect(Status::Success);
    s.stop_backend(&s.standby, 1);
    tusk_testkit::append(
        &s.standby.pgdata.join("postgresql.conf"),
        "primary_conninfo = 'host=/nonexistent port=5432 user=postgres'\n",
    );
    pg_ctl_start(&s.standby);
    s.wait_node(1, "seen up by pgpool", |n| n.pg_status == LiveStatus::Up);
    let monitor = s
        .agent()
        .env("HA_debug", "1")
        .run("monitor")
        .expect(Status::Success);
    assert!(
        monitor
            .stderr
            .contains("node 1 stays detached: node2 does not stream from node 0"),
        "{}",
        monitor.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.nodes()[1].status, BackendStatus::Down);
    s.agent().run("stop").expect(Status::Success);
}

/// The agent started pgpool; the primary stopped; pgpool gave up its
/// primary search (2 s) before the standby was promoted, and calls the new
/// primary a standby. Returns the setup, pgpool's main PID and when the
/// standby was promoted.
fn missed_promotion(resource: &str) -> (common::Setup, i32, Instant) {
    let s = setup(resource, &[("search_primary_node_timeout", "2")]);
    s.agent().run("start").expect(Status::Success);
    let main = s.main_pid().unwrap();
    pg_ctl_stop(&s.primary);
    assert!(
        wait_until(Duration::from_secs(20), || s
            .pool
            .log()
            .contains("failover: set new primary node: -1")),
        "pgpool never gave up its search:\n{}",
        s.pool.log()
    );
    let promoted = Instant::now();
    pg_ctl_promote(&s.standby);
    let seen = s.wait_node(1, "seen as a live primary", |n| {
        n.pg_role == LiveRole::Primary
    });
    assert_eq!(seen.role, PoolRole::Standby, "pgpool missed the promotion");
    (s, main, promoted)
}

/// pgpool gave up its primary search before Pacemaker promoted the
/// standby: pgpool calls the new primary a standby for good, until the
/// monitor promotes it in pgpool.
#[test]
fn a_promotion_pgpool_missed_is_followed_within_one_monitor() {
    let (s, main, promoted) = missed_promotion("pgpool-missed-promotion");
    let monitor = s.agent().run("monitor").expect(Status::Success);
    eprintln!("{}", monitor.stderr);
    assert!(
        monitor.stderr.contains("promote node 1 in pgpool"),
        "{}",
        monitor.stderr
    );
    let info = &s.nodes()[1];
    assert_eq!(info.role, PoolRole::Primary, "after one monitor: {info:?}");
    assert!(info.status.is_attached());
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .try_psql("CREATE TABLE after_failover (v int)")
        .is_ok()));
    eprintln!(
        "promotion to the first write through pgpool: {:.2}s (one monitor: {:.2}s)",
        promoted.elapsed().as_secs_f64(),
        monitor.took.as_secs_f64()
    );
    assert_eq!(s.main_pid(), Some(main), "pgpool was not restarted");
    s.agent().run("monitor").expect(Status::Success);
    s.agent().run("stop").expect(Status::Success);
}

/// Two primaries: node 1 promoted (timeline 2) while node 0 still runs as
/// a primary on timeline 1, as after a partition. pgpool takes node 1 and
/// never node 0, at start and in the monitor.
#[test]
fn a_stale_primary_is_never_used_and_the_newer_one_is_followed() {
    let s = setup("pgpool-two-primaries", &[]);
    s.agent().run("start").expect(Status::Success);
    assert_eq!(s.nodes()[0].role, PoolRole::Primary);
    pg_ctl_promote(&s.standby);
    s.wait_node(1, "seen as a live primary", |n| {
        n.pg_role == LiveRole::Primary
    });
    let monitor = s.agent().run("monitor").expect(Status::Success);
    eprintln!("{}", monitor.stderr);
    assert!(
        monitor.stderr.contains("promote node 1 in pgpool"),
        "{}",
        monitor.stderr
    );
    let nodes = s.nodes();
    assert_eq!(nodes[1].role, PoolRole::Primary, "{nodes:?}");
    assert_eq!(nodes[0].status, BackendStatus::Down, "{nodes:?}");
    let again = s.agent().run("monitor").expect(Status::Success);
    assert!(!again.stderr.contains("attach node 0"), "{}", again.stderr);
    assert_eq!(s.nodes()[0].status, BackendStatus::Down);

    // A restart with both still primaries: pgpool_status is written from
    // the backends, so pgpool never attaches the stale one, even for a
    // moment.
    s.agent().run("stop").expect(Status::Success);
    std::fs::remove_file(&s.pool.status_file).unwrap();
    let log_before = s.pool.log().len();
    s.agent().run("start").expect(Status::Success);
    assert_eq!(
        std::fs::read_to_string(&s.pool.status_file).unwrap(),
        "down\nup\n"
    );
    let nodes = s.nodes();
    assert_eq!(nodes[0].status, BackendStatus::Down, "{nodes:?}");
    assert_eq!(nodes[1].role, PoolRole::Primary, "{nodes:?}");
    let log = s.pool.log()[log_before..].to_string();
    assert!(
        log.contains("find_primary_node: primary node is 1"),
        "{log}"
    );
    assert!(
        !log.contains("find_primary_node: primary node is 0"),
        "{log}"
    );
    s.agent().run("stop").expect(Status::Success);
}

/// A pgpool_status from an older run marks the current primary down:
/// pgpool itself would search for a primary for search_primary_node_timeout
/// before it answers anything; the agent's start does not wait for that.
#[test]
fn a_stale_status_file_neither_delays_the_start_nor_keeps_a_backend_down() {
    let s = setup(
        "pgpool-stale-status",
        &[("search_primary_node_timeout", "60")],
    );
    std::fs::write(&s.pool.status_file, "down\ndown\n").unwrap();
    let start = s.agent().run("start").expect(Status::Success);
    eprintln!(
        "start over a stale status file: {:.2}s",
        start.took.as_secs_f64()
    );
    assert!(start.took < Duration::from_secs(10), "{:?}", start.took);
    let nodes = s.nodes();
    assert!(nodes.iter().all(|n| n.status.is_attached()), "{nodes:?}");
    assert_eq!(nodes[0].role, PoolRole::Primary);
    s.agent().run("stop").expect(Status::Success);
}

/// With reconcile=false pgpool's own view is left alone.
#[test]
fn reconcile_off_leaves_pgpool_alone() {
    let s = setup("pgpool-no-reconcile", &[]);
    s.agent()
        .param("reconcile", "false")
        .run("start")
        .expect(Status::Success);
    let mut pcp = s.pcp();
    let d = ocf::Deadline::after(Duration::from_secs(5));
    pcp.detach_node(1, &d).unwrap();
    pcp.close(&d).unwrap();
    s.wait_node(1, "detached", |n| n.status == BackendStatus::Down);
    s.agent()
        .param("reconcile", "false")
        .run("monitor")
        .expect(Status::Success);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.nodes()[1].status, BackendStatus::Down);
    // With it on, the next monitor attaches it.
    s.agent().run("monitor").expect(Status::Success);
    s.wait_node(1, "attached", |n| n.status.is_attached());
    s.agent().run("stop").expect(Status::Success);
}

/// All backends down is a failover in progress, not a pgpool failure.
#[test]
fn backends_all_down_is_still_running() {
    let s = setup("pgpool-all-down", &[]);
    s.agent().run("start").expect(Status::Success);
    s.stop_backend(&s.standby, 1);
    s.stop_backend(&s.primary, 0);
    let monitor = s.agent().run("monitor").expect(Status::Success);
    assert!(
        monitor.stderr.contains("0/2 attached") && monitor.stderr.contains("refuses every client"),
        "{}",
        monitor.stderr
    );
    // Said once, on the change, not at every monitor.
    let again = s.agent().run("monitor").expect(Status::Success);
    assert!(!again.stderr.contains("refuses"), "{}", again.stderr);
    // The primary comes back: attached, and pgpool serves again.
    pg_ctl_start(&s.primary);
    s.wait_node(0, "seen up by pgpool", |n| n.pg_status == LiveStatus::Up);
    let monitor = s.agent().run("monitor").expect(Status::Success);
    assert!(
        monitor.stderr.contains("attach node 0"),
        "{}",
        monitor.stderr
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .try_psql("SELECT 1")
        .is_ok()));
    s.agent().run("stop").expect(Status::Success);
}

/// pgpool answers node info by connecting to the backend: a backend that
/// hangs (SIGSTOP) would hang node info. The monitor still answers, 0,
/// inside its timeout.
#[test]
fn a_hung_backend_does_not_hang_the_monitor() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let s = setup("pgpool-hung-backend", &[]);
    s.agent().run("start").expect(Status::Success);
    let frozen = s.standby.processes();
    for pid in &frozen {
        kill(Pid::from_raw(*pid), Signal::SIGSTOP).unwrap();
    }
    let started = Instant::now();
    let monitor = s.agent().timeout_ms(10_000).run("monitor");
    let took = started.elapsed();
    for pid in &frozen {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
    }
    eprintln!(
        "monitor with a hung standby: {:.2}s\n{}",
        took.as_secs_f64(),
        monitor.stderr
    );
    let monitor = monitor.expect(Status::Success);
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(
        monitor
            .stderr
            .contains("1/2 attached, primary node1 (id 0), node2 (id 1) unknown"),
        "{}",
        monitor.stderr
    );
    s.agent().run("stop").expect(Status::Success);
}

/// pgpool takes the new primary itself (here: someone else's
/// pcp_promote_node; pgpool's own primary search does the same) while the
/// monitor, which read pgpool's view before, is still asking the backends.
/// The monitor reads the node again before promoting it: no second
/// promotion (pgpool would refuse it, "already primary"; one it accepted
/// would drop every client session), an info line instead of a warning.
#[test]
fn a_primary_pgpool_took_meanwhile_is_not_promoted_again() {
    let (s, _, _) = missed_promotion("pgpool-primary-meanwhile");
    // The stopped primary's socket answers nothing: the monitor's question
    // to node 0 waits out its share of the timeout, long enough to act
    // behind the monitor's back.
    let node0 = Silent::listen(&s.primary.socketdir.join(".s.PGSQL.5432"));
    let monitor = {
        let agent = s.agent().timeout_ms(20_000);
        std::thread::spawn(move || agent.run("monitor"))
    };
    assert!(
        node0.wait_agent(Duration::from_secs(15)),
        "the monitor never asked node 0"
    );
    let mut pcp = s.pcp();
    let d = ocf::Deadline::after(Duration::from_secs(5));
    pcp.promote_node(1, &d).unwrap();
    pcp.close(&d).unwrap();
    s.wait_node(1, "pgpool's primary", |n| {
        n.role == PoolRole::Primary && n.status.is_attached()
    });
    let monitor = monitor.join().unwrap();
    eprintln!("{}", monitor.stderr);
    let monitor = monitor.expect(Status::Success);
    common::assert_said(
        &monitor.stderr,
        &["node 1 (", "is pgpool's primary already"],
        &["could not promote"],
    );
    assert!(
        !s.pool.log().contains("already primary node"),
        "the monitor promoted node 1 again:\n{}",
        s.pool.log()
    );
    drop(node0);
    s.agent().run("stop").expect(Status::Success);
}

/// A unix socket that accepts and never answers the agent, standing for a
/// backend that hangs; pgpool's own connections are closed at once, as if
/// nothing listened (so that no pgpool process waits on it).
struct Silent {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    asked: std::sync::mpsc::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: std::path::PathBuf,
}

impl Silent {
    fn listen(path: &std::path::Path) -> Silent {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tell, asked) = std::sync::mpsc::channel();
        let agent = std::fs::canonicalize(common::AGENT).unwrap();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let cred = nix::sys::socket::getsockopt(
                            &stream,
                            nix::sys::socket::sockopt::PeerCredentials,
                        )
                        .unwrap();
                        let exe = std::fs::read_link(format!("/proc/{}/exe", cred.pid()));
                        if exe.is_ok_and(|e| e == agent) {
                            let _ = tell.send(());
                            held.push(stream);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Silent {
            stop,
            asked,
            thread: Some(thread),
            path: path.to_path_buf(),
        }
    }

    /// Whether the agent connected within `limit`.
    fn wait_agent(&self, limit: Duration) -> bool {
        self.asked.recv_timeout(limit).is_ok()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
