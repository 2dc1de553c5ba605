//! What pgpool-II 4.3.5 does that the agent's design rests on, pinned
//! down (docs/pgpool-facts.md, "What the agent's design rests on"). pgpool
//! is started by the fixture here, not by the agent.

mod common;

use ocf::Deadline;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tusk_pgpool::pcp::{BackendStatus, Endpoint, PcpConnection, PcpErrorKind, PoolRole};
use tusk_testkit::pgpool::{pg_ctl_stop, PCP_PASSWORD, PCP_USER};
use tusk_testkit::{wait_until, Guard};

fn budget() -> Deadline {
    Deadline::after(Duration::from_secs(5))
}

fn connect(s: &common::Setup, deadline: &Deadline) -> Result<PcpConnection, String> {
    PcpConnection::connect(
        &Endpoint::unix(&s.pool.socket_dir, s.pool.pcp_port),
        PCP_USER,
        PCP_PASSWORD,
        deadline,
    )
    .map_err(|e| e.reason)
}

/// Once a shutdown has begun, pgpool ignores every other shutdown signal:
/// a smart shutdown waiting for a client locks the fast one out. So the
/// agent's stop begins with the fast shutdown.
#[test]
fn a_smart_shutdown_locks_the_fast_one_out() {
    let mut s = common::setup("pgpool-fact-smart", &[]);
    s.pool.start();
    let _client = Guard(
        s.pool
            .psql_command("SELECT pg_sleep(600)")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .processes()
        .iter()
        .any(|p| p.cmdline.ends_with("SELECT"))));
    let main = s.pool.running_pid().unwrap();
    let signal = |sig| nix::sys::signal::kill(nix::unistd::Pid::from_raw(main), sig).unwrap();
    signal(nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_secs(1));
    signal(nix::sys::signal::Signal::SIGINT);
    signal(nix::sys::signal::Signal::SIGQUIT);
    let gone = wait_until(Duration::from_secs(5), || s.pool.running_pid().is_none());
    assert!(!gone, "pgpool honoured the fast shutdown after a smart one");
    assert!(
        wait_until(Duration::from_secs(5), || s
            .pool
            .log()
            .contains("but exit handler is already in progress")),
        "{}",
        s.pool.log()
    );
}

/// At every failover pgpool restarts its PCP process, which first waits
/// for every PCP session to end and accepts nothing meanwhile: a session
/// held open keeps PCP silent. The agent closes each session at once.
#[test]
fn a_pcp_session_held_open_across_a_failover_silences_pcp() {
    let mut s = common::setup("pgpool-fact-session", &[]);
    s.pool.start();
    let mut held = connect(&s, &budget()).unwrap();
    held.detach_node(1, &budget()).unwrap();
    // The detach is a failover: the PCP process is asked to restart.
    assert!(wait_until(Duration::from_secs(10), || s
        .pool
        .log()
        .contains("restart request received in pcp child process")));
    let silent = connect(&s, &Deadline::after(Duration::from_secs(2)))
        .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason));
    assert!(silent.is_err(), "PCP answered while a session was held");
    held.close(&budget()).unwrap();
    let started = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || connect(
        &s,
        &budget()
    )
    .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason))
    .is_ok()));
    eprintln!(
        "PCP answered {:.2}s after the session closed",
        started.elapsed().as_secs_f64()
    );
}

/// A promote request for a detached backend is acknowledged, logged as
/// invalid and ignored; attaching the live primary instead makes pgpool
/// search for its primary and find it.
#[test]
fn a_detached_primary_is_attached_not_promoted() {
    let mut s = common::setup(
        "pgpool-fact-promote-detached",
        &[("search_primary_node_timeout", "3")],
    );
    // A status file from an older run marks the primary down: pgpool
    // searches for a primary for search_primary_node_timeout before it
    // answers anything.
    std::fs::write(&s.pool.status_file, "down\nup\n").unwrap();
    let took = s.pool.start();
    eprintln!(
        "start with the primary marked down: {:.2}s",
        took.as_secs_f64()
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let node0 = |s: &common::Setup| s.nodes().swap_remove(0);
    assert_eq!(node0(&s).status, BackendStatus::Down);
    let mut c = connect(&s, &budget()).unwrap();
    c.promote_node(0, &budget()).unwrap();
    c.close(&budget()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || s
        .pool
        .log()
        .contains(
            "invalid promote backend request, node id : 0 status: [3] not valid"
        )));
    assert_eq!(
        node0(&s).status,
        BackendStatus::Down,
        "the promote was ignored"
    );
    let mut c = connect(&s, &budget()).unwrap();
    c.attach_node(0, &budget()).unwrap();
    c.close(&budget()).unwrap();
    let info = s.wait_node(0, "pgpool's primary", |n| {
        n.status.is_attached() && n.role == PoolRole::Primary
    });
    eprintln!("attached: {info:?}");
}

/// What a client sees of pgpool while no backend is attached, and that
/// PCP answers meanwhile (the monitor's liveness check).
#[test]
fn pcp_answers_while_pgpool_refuses_clients() {
    let mut s = common::setup("pgpool-fact-refuses", &[]);
    s.pool.start();
    pg_ctl_stop(&s.standby);
    s.wait_node(1, "detached", |n| n.status == BackendStatus::Down);
    pg_ctl_stop(&s.primary);
    s.wait_node(0, "detached", |n| n.status == BackendStatus::Down);
    let refused = s.pool.try_psql("SELECT 1").unwrap_err();
    assert!(refused.contains("not accepting"), "{refused}");
    let started = Instant::now();
    let count = connect(&s, &budget())
        .and_then(|mut c| c.node_count(&budget()).map_err(|e| e.reason))
        .unwrap();
    assert_eq!(count, 2);
    assert!(started.elapsed() < Duration::from_millis(500));
    let e = connect(&s, &budget())
        .unwrap()
        .promote_node(5, &budget())
        .unwrap_err();
    assert!(
        matches!(e.kind, PcpErrorKind::Server | PcpErrorKind::Protocol),
        "{e}"
    );
}
