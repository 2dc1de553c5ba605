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

/// pgpool gave up its primary search before Pacemaker promoted the
/// standby: pgpool calls the new primary a standby for good, until the
/// monitor promotes it in pgpool.
#[test]
fn a_promotion_pgpool_missed_is_followed_within_one_monitor() {
    let s = setup(
        "pgpool-missed-promotion",
        &[("search_primary_node_timeout", "2")],
    );
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
